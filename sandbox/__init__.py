"""A local, in-memory stand-in for Alpaca's trading API v2 and the parts of its market data
API a ledger reads (latest trades).

It speaks the same JSON as ``paper-api.alpaca.markets`` and ``data.alpaca.markets`` closely
enough that alpaca-py's ``TradingClient``, ``StockHistoricalDataClient`` and
``CryptoHistoricalDataClient`` (each pointed at it with ``url_override``) parse every reply
with their own models, and it adds a control API under ``/_sandbox/`` so tests can script
the broker: per-symbol fill behaviour, prices, positions the ledger did not create (dust,
crypto, option contracts), broker-side fills and cancels, fills whose order is gone,
corporate actions, account flags, the market clock, and transport faults.

Run it::

    python -m sandbox [--host 127.0.0.1] [--port 8765] [--key K] [--secret S]

or embed it::

    from sandbox import AlpacaSandbox

    with AlpacaSandbox() as sb:
        client = TradingClient(sb.key, sb.secret, paper=True, url_override=sb.base_url)
        data = StockHistoricalDataClient(sb.key, sb.secret, url_override=sb.base_url)

Only the standard library is used, so the package runs in any Python 3.11 environment.
Every amount is a ``Decimal``; amounts leave the server as strings, as Alpaca sends them
(market data prices and sizes are JSON numbers, as the market data API sends them).

The modules, one concern each: ``wire`` (decimal strings, times, JSON, the error shape),
``model`` (symbols, positions, orders; the default universe), ``state`` (the account in
memory and its clock), ``activities``, ``account`` (cash, positions, flags, buying power),
``market`` (prices, crypto pairs, options, fills), ``orders`` (what an order POST accepts,
and the order lifecycle), ``shapes`` (Alpaca's JSON), ``api`` and ``market_data`` (the
routes), ``faults`` (faults, delays, the request log), ``control`` (the control API and
its table of endpoints), ``server`` (``AlpacaSandbox``: HTTP, start and stop).

The universe
------------
Stocks AAPL, MSFT, NVDA, TSLA, META (NASDAQ) and SPY (ARCA), and the crypto pairs BTC/USD
and ETH/USD (``class: crypto``, ``exchange: CRYPTO``, fractionable, not shortable, with
``min_order_size``, ``min_trade_increment`` and ``price_increment``). Crypto follows Alpaca's
two symbologies: orders, fills and assets say ``BTC/USD`` while positions say ``BTCUSD``;
``/v2/assets/BTCUSD``, ``/v2/assets/BTC%2FUSD``, ``/v2/positions/BTCUSD`` and
``/v2/positions/BTC/USD`` all find the pair. Crypto trades around the clock (the market
clock is ignored), accepts only ``gtc`` and ``ioc`` orders, settles against cash only and
cannot be sold short. Option contracts (OCC symbols such as ``AAPL240119C00150000``) exist
only once a test places a position in one; they are served at
``/v2/options/contracts/{symbol_or_id}`` and are not assets (``/v2/assets/{occ}`` is a 404).

The API served
--------------
Trading (``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY`` required, else 401):
``GET /v2/account``, ``GET /v2/positions``, ``GET /v2/positions/{symbol_or_asset_id}``,
``GET|POST|DELETE /v2/orders``, ``GET|PATCH|DELETE /v2/orders/{order_id}`` (PATCH
replaces an order),
``GET /v2/orders:by_client_order_id``, ``GET /v2/account/activities[/{activity_type}]``,
``GET /v2/clock``, ``GET /v2/assets`` (``status``, ``asset_class`` filters; us_equity by
default), ``GET /v2/assets/{symbol_or_asset_id}``, ``GET /v2/options/contracts/{symbol_or_id}``.

Market data (same headers; a missing or wrong key is a 403 for stocks; crypto needs none):
``GET /v2/stocks/trades/latest?symbols=A,B``, ``GET /v2/stocks/{symbol}/trades/latest``,
``GET /v1beta3/crypto/{loc}/latest/trades?symbols=BTC/USD,ETH/USD``. The latest trade's price
is the symbol's configured price; a symbol the sandbox does not know, or one set with
``latest_trade=False``, is left out of the map.

Faults and delays match on the request path, so they can target market data too.

The trade_updates stream
------------------------
``ws://host:port/stream`` (``AlpacaSandbox.stream_url``), on the same port: alpaca-py's
``TradingStream`` (``url_override=sb.stream_url``) authenticates, listens to
``trade_updates`` and gets an update for every order change (new, accepted, partial_fill,
fill, canceled, expired, rejected, replaced) in binary frames, as Alpaca's paper endpoint
sends them. ``sandbox/stream.py`` documents it and its faults.

The control API under ``/_sandbox/`` is documented in ``sandbox/control.py``;
``python -m sandbox --help`` prints this text and that one.
"""

from sandbox.account import ACCOUNT_STATUSES, CRYPTO_STATUSES
from sandbox.faults import FAULT_KINDS
from sandbox.model import ASSET_CLASSES, BEHAVIORS
from sandbox.server import AlpacaSandbox
from sandbox.state import DEFAULT_KEY, DEFAULT_SECRET
from sandbox.wire import SandboxError

__all__ = [
    "ACCOUNT_STATUSES",
    "ASSET_CLASSES",
    "BEHAVIORS",
    "CRYPTO_STATUSES",
    "DEFAULT_KEY",
    "DEFAULT_SECRET",
    "FAULT_KINDS",
    "AlpacaSandbox",
    "SandboxError",
]
