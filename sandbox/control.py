"""The control API
---------------
Every endpoint is under ``/_sandbox``, takes and returns JSON, and answers 200 with the
result (``{"ok": true}`` when there is nothing else to say); a refused request is a 4xx in
Alpaca's ``{"code": ..., "message": ...}`` shape. Each one is also a Python method of
``AlpacaSandbox``.

=======  ==============================  ===============================================
method   path                            body / query  -> Python method
=======  ==============================  ===============================================
POST     /reset                          {cash?} -> reset()
GET      /state                          -> state(): account, positions, orders, ...
GET      /requests                       ?method=&path= (glob) -> requests()
DELETE   /requests                       -> clear_requests()
GET      /symbols                        -> symbols(): every symbol's configuration
POST     /symbols/{symbol}               {behavior?, price?, partial_fraction?,
                                         tradable?, lastday_price?, fractionable?,
                                         shortable?, exchange?, name?, asset_class?,
                                         status?, marginable?, min_order_size?,
                                         min_trade_increment?, price_increment?,
                                         latest_trade?} -> set_symbol()
                                         (``BTC/USD`` may be sent as ``BTC%2FUSD`` or as
                                         two path segments)
POST     /positions                      {symbol, qty, avg_entry_price?} -> set_position()
                                         (qty 0 removes; dust such as 0.000000001 is kept)
POST     /option_positions               {symbol, qty, avg_entry_price?, price?,
                                         lastday_price?} -> set_option_position()
POST     /account                        {status?, crypto_status?, trading_blocked?,
                                         account_blocked?, trade_suspended_by_user?,
                                         transfers_blocked?, shorting_enabled?,
                                         pattern_day_trader?, daytrade_count?}
                                         -> set_account_flags(); null for the last two
                                         leaves them out of /v2/account
POST     /orders/{order_id}/fill         {qty?, price?} -> fill_order()
POST     /orders/{order_id}/cancel       {status?: canceled|expired|rejected}
                                         -> cancel_order()
POST     /external_orders                {symbol, side, qty, price?, client_order_id?}
                                         -> create_external_order()
POST     /orphan_fills                   {symbol, side, qty, price?, order_id?, at?,
                                         apply?} -> add_orphan_fill(): a FILL whose
                                         order the orders endpoint does not know
POST     /splits                         {symbol, ratio, date?} -> add_split()
POST     /symbol_changes                 {old_symbol, new_symbol, date?} -> change_symbol()
POST     /activities                     {activity_type, net_amount?, symbol?, qty?,
                                         per_share_amount?, sub_type?, description?,
                                         date?, apply_cash?} -> add_activity()
POST     /clock                          {is_open?, next_open?, next_close?, timestamp?}
                                         -> set_clock()
POST     /cash                           {cash, last_equity?} -> set_cash()
POST     /faults                         {kind, method?, path?, count?, retry_after?,
                                         delay?, field?, value?} -> add_fault()
GET      /faults                         -> faults()
DELETE   /faults                         -> clear_faults()
POST     /delays                         {seconds, method?, path?} -> set_delay()
GET      /delays                         -> delays()
DELETE   /delays                         -> clear_delays()
POST     /stream/faults                  {delay_ms?, duplicate_next?, refuse_auth?}
                                         -> set_stream_faults(): replaces the stream
                                         faults (see ``sandbox/stream.py``)
GET      /stream/faults                  -> stream_faults()
POST     /stream/drop                    -> drop_stream_connections(): hang up on every
                                         /stream socket at once; {"dropped": n}
GET      /stream/connections             -> stream_connections(): each open /stream
                                         connection, authenticated?, streams
GET      /stream/emitted                 -> stream_emitted(): every trade update
                                         produced, {at_ns, event, order_id,
                                         execution_id}
=======  ==============================  ===============================================
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sandbox.wire import Reply, SandboxError, error_reply, loads

if TYPE_CHECKING:
    from sandbox.server import AlpacaSandbox

SYMBOL_FIELDS = (
    "behavior",
    "price",
    "partial_fraction",
    "tradable",
    "lastday_price",
    "fractionable",
    "shortable",
    "exchange",
    "name",
    "asset_class",
    "status",
    "marginable",
    "min_order_size",
    "min_trade_increment",
    "price_increment",
    "latest_trade",
)
ACCOUNT_FIELDS = (
    "status",
    "crypto_status",
    "trading_blocked",
    "account_blocked",
    "trade_suspended_by_user",
    "transfers_blocked",
    "shorting_enabled",
    "pattern_day_trader",
    "daytrade_count",
)
ACTIVITY_FIELDS = (
    "net_amount",
    "symbol",
    "qty",
    "per_share_amount",
    "sub_type",
    "description",
    "apply_cash",
)
STREAM_FAULT_FIELDS = ("delay_ms", "duplicate_next", "refuse_auth")
FAULT_FIELDS = ("method", "path", "count", "retry_after", "delay", "field", "value")


def pick(body: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {name: body[name] for name in names if name in body}


def handle(
    sandbox: AlpacaSandbox, method: str, path: str, query: dict[str, str], raw: bytes
) -> Reply:
    """One request to ``/_sandbox/...``: its JSON body parsed, the method called."""
    parts = [unquote(p) for p in path.strip("/").split("/")][1:]
    try:
        body = loads(raw) if raw else {}
    except ValueError:
        return Reply(400, {"code": 40010000, "message": "request body is not JSON"})
    if not isinstance(body, dict):
        return Reply(400, {"code": 40010000, "message": "request body must be an object"})
    try:
        return dispatch(sandbox, method, parts, query, body)
    except SandboxError as error:
        return error_reply(error)
    except (TypeError, KeyError, ValueError) as error:
        return Reply(400, {"code": 40010000, "message": f"bad control request: {error}"})


def dispatch(
    sb: AlpacaSandbox,
    method: str,
    parts: list[str],
    query: dict[str, str],
    body: dict[str, Any],
) -> Reply:
    """The table in this module's documentation, as code: one case per endpoint."""
    ok = lambda payload=None: Reply(200, {"ok": True} if payload is None else payload)  # noqa: E731
    match method, parts:
        case "POST", ["reset"]:
            sb.reset(body.get("cash"))
            return ok()
        case "GET", ["state"]:
            return ok(sb.state())
        case "GET", ["requests"]:
            return ok(sb.requests(query.get("method"), query.get("path")))
        case "DELETE", ["requests"]:
            sb.clear_requests()
            return ok()
        case "GET", ["symbols"]:
            return ok(sb.symbols())
        case "POST", ["symbols", *symbol] if symbol:
            # a pair may come as BTC%2FUSD or as two segments, BTC/USD
            return ok(sb.set_symbol("/".join(symbol), **pick(body, SYMBOL_FIELDS)))
        case "POST", ["positions"]:
            position = sb.set_position(body["symbol"], body["qty"], body.get("avg_entry_price"))
            return ok(position or {"ok": True, "removed": body["symbol"]})
        case "POST", ["option_positions"]:
            position = sb.set_option_position(
                body["symbol"],
                body["qty"],
                body.get("avg_entry_price"),
                **pick(body, ("price", "lastday_price")),
            )
            return ok(position or {"ok": True, "removed": body["symbol"]})
        case "POST", ["account"]:
            return ok(sb.set_account_flags(**pick(body, ACCOUNT_FIELDS)))
        case "POST", ["orphan_fills"]:
            return ok(
                sb.add_orphan_fill(
                    body["symbol"],
                    body["side"],
                    body["qty"],
                    body.get("price"),
                    **pick(body, ("order_id", "at", "apply")),
                )
            )
        case "POST", ["orders", order_id, "fill"]:
            return ok(sb.fill_order(order_id, body.get("qty"), body.get("price")))
        case "POST", ["orders", order_id, "cancel"]:
            return ok(sb.cancel_order(order_id, body.get("status", "canceled")))
        case "POST", ["external_orders"]:
            return ok(
                sb.create_external_order(
                    body["symbol"],
                    body["side"],
                    body["qty"],
                    body.get("price"),
                    body.get("client_order_id"),
                )
            )
        case "POST", ["splits"]:
            return ok(sb.add_split(body["symbol"], body["ratio"], body.get("date")))
        case "POST", ["symbol_changes"]:
            return ok(sb.change_symbol(body["old_symbol"], body["new_symbol"], body.get("date")))
        case "POST", ["activities"]:
            extra = pick(body, ACTIVITY_FIELDS)
            return ok(sb.add_activity(body["activity_type"], on=body.get("date"), **extra))
        case "POST", ["clock"]:
            kwargs = pick(body, ("is_open", "next_open", "next_close"))
            if "timestamp" in body:
                kwargs["timestamp"] = body["timestamp"]
            return ok(sb.set_clock(**kwargs))
        case "POST", ["cash"]:
            return ok(sb.set_cash(body["cash"], body.get("last_equity")))
        case "POST", ["faults"]:
            kwargs = pick(body, FAULT_FIELDS)
            if "count" in kwargs:
                kwargs["count"] = int(kwargs["count"])
            return ok(sb.add_fault(str(body["kind"]), **kwargs))
        case "GET", ["faults"]:
            return ok(sb.faults())
        case "DELETE", ["faults"]:
            sb.clear_faults()
            return ok()
        case "POST", ["delays"]:
            return ok(sb.set_delay(body["seconds"], **pick(body, ("method", "path"))))
        case "GET", ["delays"]:
            return ok(sb.delays())
        case "DELETE", ["delays"]:
            sb.clear_delays()
            return ok()
        case "POST", ["stream", "faults"]:
            return ok(sb.set_stream_faults(**pick(body, STREAM_FAULT_FIELDS)))
        case "GET", ["stream", "faults"]:
            return ok(sb.stream_faults())
        case "POST", ["stream", "drop"]:
            return ok({"ok": True, "dropped": sb.drop_stream_connections()})
        case "GET", ["stream", "connections"]:
            return ok(sb.stream_connections())
        case "GET", ["stream", "emitted"]:
            return ok(sb.stream_emitted())
    return Reply(404, {"code": 40410000, "message": "no such control endpoint"})
