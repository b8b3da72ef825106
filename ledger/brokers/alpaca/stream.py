"""Alpaca's `trade_updates` stream through alpaca-py's `TradingStream`, in a thread.

Alpaca announces every order change on a WebSocket (wss://paper-api.alpaca.markets/stream:
an `authenticate` then a `listen` for `trade_updates`, then one message per change; see
https://docs.alpaca.markets/docs/websocket-streaming). This adapter turns that into three
callbacks of `ledger.brokers.port.StreamListener`: connected, disconnected (why), and an
update, so the service never sees an alpaca-py type.

`TradingStream` (alpaca-py 0.44.0; pyproject.toml pins >=0.44,<0.45) has no connect or disconnect
callback; the subclass below overrides the private steps `_start_ws` (connect, auth, listen),
`_consume` (reads until the socket fails) and `_cast` (parses an update) to report them. A
new alpaca-py release may rename these: tests/broker/test_streaming.py runs this class
against the sandbox's stream and fails if it no longer reports. Reconnecting is
`TradingStream`'s own: exponential backoff from 1 s to 30 s with jitter, reset once a
connection has carried data.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import websockets
from alpaca.trading.stream import TradingStream

from ledger.brokers.port import OrderUpdate, StreamListener
from ledger.settings import Settings

log = logging.getLogger(__name__)

# How long `stop()` waits for the stream's thread: a connect in progress gives up at its
# own timeout (10 s in websockets), but the socket is closed at once.
STOP_WAIT_SECONDS = 5.0


def _reason(error: BaseException) -> str:
    """Why the stream is not connected, in one line with nothing secret in it."""
    # The legacy client's InvalidStatusCode (a deprecated name to import) carries the code.
    status = getattr(error, "status_code", None)
    if isinstance(error, websockets.WebSocketException) and isinstance(status, int):
        return f"the stream refused the connection with HTTP {status}"
    if isinstance(error, websockets.exceptions.ConnectionClosed):
        return "connection lost"
    if isinstance(error, websockets.WebSocketException):
        return f"WebSocket error: {type(error).__name__}"
    if isinstance(error, ValueError) and "authenticate" in str(error):
        # alpaca-py raises this when the auth reply is not "authorized".
        return "authentication refused: check ALPACA_API_KEY and ALPACA_SECRET_KEY"
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return "no answer from the stream in time"
    if isinstance(error, OSError):
        return f"cannot connect: {error.strerror or type(error).__name__}"
    return f"stream failed: {type(error).__name__}"


class _ReportingStream(TradingStream):
    """`TradingStream` that tells a listener when it connects, drops, or hears an update."""

    def __init__(self, listener: StreamListener, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.listener = listener
        self.stopping = False

    def _down(self, error: BaseException) -> None:
        if self.stopping:
            return
        self.listener.on_disconnected(_reason(error))

    async def _start_ws(self) -> None:
        try:
            await super()._start_ws()  # connect, authenticate, listen to trade_updates
        except Exception as error:
            self._down(error)
            raise
        if not self.stopping:
            self.listener.on_connected()

    async def _consume(self) -> None:
        try:
            await super()._consume()
        except (websockets.WebSocketException, OSError) as error:
            # The socket is gone; `_run_forever` reconnects after its backoff. Anything
            # else (a failing callback) keeps the connection, as alpaca-py does.
            self._down(error)
            raise

    def _cast(self, msg: dict[str, Any]) -> Any:
        try:
            return super()._cast(msg)
        except Exception as error:
            # Unreadable, but still news that an order changed: the listener polls.
            log.warning("an order update could not be read (%s); polling instead",
                        type(error).__name__)
            return None

    async def _on_update(self, update: Any) -> None:
        if update is None:
            self.listener.on_update(None)
            return
        order = getattr(update, "order", None)
        event = getattr(update, "event", "")
        self.listener.on_update(OrderUpdate(
            event=str(getattr(event, "value", event)),
            broker_order_id=None if order is None else str(order.id),
            execution_id=None if update.execution_id is None else str(update.execution_id),
        ))

    async def _shut(self) -> None:
        await self.stop_ws()
        # `_consume` notices the stop only between messages (it waits 5 s for one):
        # closing the socket ends the wait now.
        await self.close()


class AlpacaOrderStream:
    """`ledger.brokers.port.OrderUpdateStream` for Alpaca's trade_updates."""

    def __init__(self, *, api_key: str, secret_key: str, paper: bool = True,
                 url: str | None = None) -> None:
        self._keys = (api_key, secret_key)
        self.paper = paper
        self.url = url  # None: alpaca-py's own, by paper or live
        self._stream: _ReportingStream | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AlpacaOrderStream:
        api_key, secret_key = settings.require_alpaca_keys()
        return cls(api_key=api_key, secret_key=secret_key, paper=settings.alpaca_paper_mode,
                   url=settings.alpaca_stream_url)

    def start(self, listener: StreamListener) -> None:
        # alpaca-py logs every failed attempt with a traceback; the listener reports each
        # drop in one line instead, so its own log is kept to what would be a bug.
        logging.getLogger("alpaca.trading.stream").setLevel(logging.CRITICAL)
        # websockets logs every frame at DEBUG (`commands -v`), the authenticate message
        # with the keys in it included: never below INFO.
        logging.getLogger("websockets").setLevel(logging.INFO)
        api_key, secret_key = self._keys
        stream = _ReportingStream(listener, api_key=api_key, secret_key=secret_key,
                                  paper=self.paper, url_override=self.url)
        stream.subscribe_trade_updates(stream._on_update)
        self._stream = stream
        self._thread = threading.Thread(target=self._run, args=(stream,),
                                        name="trade-updates", daemon=True)
        self._thread.start()

    def _run(self, stream: _ReportingStream) -> None:
        try:
            # Not `stream.run()`: it prints on KeyboardInterrupt, which only the main
            # thread receives anyway.
            asyncio.run(stream._run_forever())
        except Exception as error:  # a bug in alpaca-py or here: polling goes on
            log.exception("the trade_updates stream stopped")
            if not stream.stopping:
                stream.listener.on_disconnected(_reason(error))

    def stop(self) -> None:
        stream, thread = self._stream, self._thread
        if stream is None or thread is None:
            return
        stream.stopping = True
        deadline = STOP_WAIT_SECONDS
        # The loop exists a moment after the thread starts; a stop before it would be lost
        # (`_run_forever` empties the stop queue when it begins).
        while stream._loop is None and thread.is_alive() and deadline > 0:
            thread.join(0.01)
            deadline -= 0.01
        loop = stream._loop
        if loop is not None and loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(stream._shut(), loop).result(STOP_WAIT_SECONDS)
            except Exception as error:  # the loop ended meanwhile: nothing left to stop
                log.debug("stopping the stream: %s", error)
        thread.join(STOP_WAIT_SECONDS)
