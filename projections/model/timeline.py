"""How a day's audit describes each event: one timeline entry per event, its columns first
(`TIMELINE_FIELDS`, the CSV's), then `details`, what is particular to the event.

Each describer fills the entry of one event class (the catalogue names which); the entry
already holds what every event has, and an order's event its order's fields.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ledger.domain import event_name
from ledger.domain.order import client_order_id_for, decision_order_id
from projections.model.records import OrderRecord

# Every timeline entry has these keys, in this order (the CSV columns); None when the
# event has nothing to say there. `details` holds what is particular to the event.
TIMELINE_FIELDS = (
    "seq",
    "ledger_time",
    "local_time",
    "event",
    "symbol",
    "side",
    "qty",
    "price",
    "execution_id",
    "broker_time",
    "client_order_id",
    "purpose",
    "status",
    "filled_qty",
    "text",
    "aggregate_id",
    "version",
    "order_id",
    "decision_id",
    "reconciliation_id",
)

_ORDER_FIELDS = (
    "symbol",
    "side",
    "order_id",
    "client_order_id",
    "purpose",
    "status",
    "filled_qty",
    "decision_id",
    "reconciliation_id",
)


def plain_text(value: Any) -> str:
    """A value as the timeline's text shows it: decimals in full, without an exponent."""
    if value is None:
        return ""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def blank_entry(seq: int, event: Any, zone: ZoneInfo) -> dict[str, Any]:
    entry: dict[str, Any] = dict.fromkeys(TIMELINE_FIELDS)
    entry.update(
        seq=seq,
        ledger_time=event.timestamp,
        local_time=event.timestamp.astimezone(zone),
        event=event_name(event),
        aggregate_id=event.originator_id,
        version=event.originator_version,
        text="",
        details={},
    )
    return entry


def order_fields(record: OrderRecord) -> dict[str, Any]:
    """What every entry of an order's event says of the order, as it is after the event."""
    return {name: getattr(record, name) for name in _ORDER_FIELDS}


# (the event, its order after it if it is an order's, the entry to fill in)
Describer = Callable[[Any, OrderRecord | None, dict[str, Any]], None]


def decision(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    trades = list(e.trades)
    symbols = sorted({str(t["symbol"]) for t in trades})
    # The decision's orders have ids derived from it: the same ones the ledger requested.
    caused = [
        client_order_id_for(decision_order_id(e.originator_id, index))
        for index in range(len(trades))
    ]
    entry.update(symbol=", ".join(symbols), decision_id=e.originator_id,
                 text=f"{e.source}: {e.rationale}")
    if len(trades) == 1:
        entry.update(side=trades[0]["side"], qty=trades[0].get("qty"))
    entry["details"] = {"source": e.source, "rationale": e.rationale, "trades": trades,
                        "orders": caused}


def requested(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    amount = plain_text(e.qty) if e.qty is not None else f"${plain_text(e.notional)}"
    limit = f" limit {plain_text(e.limit_price)}" if e.limit_price is not None else ""
    what = f"{e.side} {amount} {e.symbol} {e.order_type}{limit} {e.time_in_force}"
    entry.update(qty=e.qty, price=e.limit_price, text=f"{what}: {e.reason}" if e.reason else what)
    entry["details"] = {
        "order_type": e.order_type,
        "time_in_force": e.time_in_force,
        "limit_price": e.limit_price,
        "notional": e.notional,
        "extended_hours": e.extended_hours,
        "reason": e.reason,
    }


def submitted(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    found = " (found at the broker by its client order id)" if e.via_lookup else ""
    entry["text"] = f"at {e.broker} as {e.broker_order_id}{found}"
    entry["details"] = {"broker": e.broker, "broker_order_id": e.broker_order_id,
                        "via_lookup": e.via_lookup}


def send_started(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    entry["text"] = (f"sending to {e.broker}: from here the order may exist at the broker "
                     "until its answer says")
    entry["details"] = {"broker": e.broker, "at": e.at}


def submission_failed(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    unknown = getattr(e, "outcome_unknown", False)
    retry = "retrying may help" if e.retryable else "retrying will not help"
    entry["text"] = (
        f"outcome unknown at {e.broker}: {e.code}: {e.message} (the next run settles it by "
        "its client order id)" if unknown
        else f"{e.broker} refused: {e.code}: {e.message} ({retry})"
    )
    entry["details"] = {"broker": e.broker, "code": e.code, "message": e.message,
                        "retryable": e.retryable, "http_status": e.http_status,
                        "outcome_unknown": unknown}


def accepted(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    entry["text"] = f"broker status {e.broker_status}"
    entry["details"] = {"broker_status": e.broker_status}


def with_reason(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    entry["text"] = e.reason
    entry["details"] = {"reason": e.reason}


def fill(e: Any, record: OrderRecord | None, entry: dict[str, Any]) -> None:
    entry.update(qty=e.qty, price=e.price, execution_id=e.execution_id, broker_time=e.filled_at)
    if record is not None:
        of = f" of {plain_text(record.qty)}" if record.qty is not None else ""
        entry["text"] = f"{plain_text(record.filled_qty)}{of} filled"


def fill_reversed(e: Any, record: OrderRecord | None, entry: dict[str, Any]) -> None:
    entry.update(qty=e.qty, price=e.price, execution_id=e.execution_id,
                 text=f"execution {e.execution_id} taken back: {e.reason}")
    entry["details"] = {"reason": e.reason}


def nothing_more(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    """The entry says all there is: what the event is, and its order's fields."""


def synced(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    held = ", ".join(f"{p['symbol']} {plain_text(Decimal(str(p['qty'])))}" for p in e.positions)
    entry.update(broker_time=e.broker_time, text=(
        f"{e.broker} account ({'paper' if e.paper else 'LIVE'}): cash {plain_text(e.cash)}, "
        f"equity {plain_text(e.equity)}, buying power {plain_text(e.buying_power)}; "
        f"positions: {held or 'none'}; {len(e.open_orders)} open order(s)"
    ))
    entry["details"] = {
        "broker": e.broker,
        "paper": e.paper,
        "account_id": e.account_id,
        "cash": e.cash,
        "equity": e.equity,
        "buying_power": e.buying_power,
        "positions": list(e.positions),
        "open_orders": list(e.open_orders),
        "request": e.request,
    }


def corporate_action(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    target = e.new_symbol or e.symbol
    entry.update(symbol=e.symbol, text=e.description or f"{e.kind} {e.symbol} -> {target}")
    entry["details"] = {"broker": e.broker, "activity_id": e.activity_id, "kind": e.kind,
                        "new_symbol": e.new_symbol, "ratio": e.ratio,
                        "effective_date": e.effective_date}


def adjustment(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    entry.update(symbol=e.symbol, qty=e.qty, price=e.price,
                 text=f"{e.book} book adjusted by {e.who}: {e.why}")
    entry["details"] = {"book": e.book, "who": e.who, "why": e.why}


def run_started(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    mode = "dry run" if e.dry_run else "run"
    filters = {k: v for k, v in e.filters.items() if v not in (None, [], False)}
    shown = f"; filters {filters}" if filters else ""
    entry.update(reconciliation_id=e.originator_id,
                 text=f"{mode} against {e.broker} ({'paper' if e.paper else 'LIVE'}){shown}")
    entry["details"] = {"dry_run": e.dry_run, "broker": e.broker, "paper": e.paper,
                        "sync_id": e.sync_id, "filters": e.filters}


def run_planned(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    rows, orders = list(e.rows), list(e.orders)
    parts = [f"{o['side']} {plain_text(o['qty'])} {o['symbol']}" for o in orders]
    differing = [r for r in rows if r.get("delta")]
    settled = list(getattr(e, "settled", None) or [])
    shown = "".join(
        f"; settled {item['client_order_id']} of run {item.get('from_run') or '-'}: "
        f"{item.get('how')}" for item in settled
    )
    entry.update(reconciliation_id=e.originator_id, text=(
        f"{len(differing)} difference(s); "
        + (f"compensating: {', '.join(parts)}" if parts else "no compensating order")
        + shown
    ))
    entry["details"] = {"rows": rows, "orders": orders, "market": e.market, "settled": settled}


def run_completed(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    counts = {"planned": e.planned, "submitted": e.submitted, "failed": e.failed,
              "skipped": e.skipped, "not_sent": getattr(e, "not_sent", 0),
              "unknown": getattr(e, "unknown", 0)}
    interrupted = getattr(e, "interrupted", None)
    text = ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in counts.items())
    entry.update(reconciliation_id=e.originator_id,
                 text=f"INTERRUPTED ({interrupted}): {text}" if interrupted else text)
    entry["details"] = {**counts, "interrupted": interrupted}


def lock(verb: str) -> Describer:
    """The reconciliation lock's events; `verb`: what happened to the lock."""

    def describe(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
        run_id = getattr(e, "run_id", None)
        until = getattr(e, "expires_at", None)
        by = "" if run_id is None else f" by run {run_id}"
        lease = "" if until is None else f" until {until.isoformat()}"
        entry.update(reconciliation_id=run_id, text=f"the reconciliation lock {verb}{by}{lease}")

    return describe


def drift_began(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    symbols = [dict(item) for item in e.symbols]
    parts = [f"{item['symbol']} delta {item['delta']} ({item['cause']})" for item in symbols]
    entry.update(symbol=", ".join(sorted(item["symbol"] for item in symbols)),
                 text=f"the books drifted apart: {'; '.join(parts)}")
    entry["details"] = {"began_at": e.began_at, "symbols": symbols}


def drift_ended(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> None:
    entry["text"] = f"the books agree again: drift {e.originator_id} ended"
    entry["details"] = {"ended_at": e.ended_at}
