"""The facts a reconciliation plans from, read from the views (and, for recent fills, the
tail of the event log)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from ledger.application import Ledger
from ledger.domain import Order, Reconciliation
from ledger.domain.order_status import (
    FAILED_STATUSES,
    OPEN_STATUSES,
    OUTCOME_UNKNOWN,
    REQUESTED,
)
from ledger.domain.planning import SymbolFacts
from ledger.infrastructure.event_log import newest_windows
from ledger.settings import Settings
from projections.engine.runner import stored_timestamp
from projections.model.positions import MOVE_IN, MOVE_OUT, RATIO, signed
from projections.model.records import OrderRecord
from projections.queries.views import Views

ZERO = Decimal(0)
_FILL_TOPICS = [get_topic(Order.Filled), get_topic(Order.PartiallyFilled)]
# Clocks disagree a little: read the log back this much further than the fill window.
_CLOCK_MARGIN = timedelta(seconds=120)
_TAIL_PAGE = 1000
_TAIL_LIMIT = 100_000


def _at_a_broker(order: OrderRecord) -> bool:
    return order.broker not in (None, "paper")


def _recorded_at(ledger: Ledger, notification: Notification) -> datetime:
    """When an event was stored (its `timestamp`), read from the front of its stored state
    as the rebuild does (`projections.engine.runner`), without decoding the rest of it."""
    state = notification.state
    mapper = ledger.mapper
    text = stored_timestamp(state) if mapper.cipher is None and mapper.compressor is None else None
    if text is not None:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(text)
    timestamp: datetime = mapper.to_domain_event(notification).timestamp
    return timestamp


class ReconcileBooks:
    """`ledger.services.reconciling.BooksPort` over the live views."""

    def __init__(self, views: Views, *, recent_fill_seconds: Decimal = Decimal(30)) -> None:
        self.views = views
        self.recent_fill_seconds = recent_fill_seconds

    def catch_up(self) -> int:
        return self.views.catch_up()

    def unresolved_orders(self) -> list[UUID]:
        return [
            order.order_id
            for order in self.views.orders(open_only=True)
            if order.status == OUTCOME_UNKNOWN
            or (order.status == REQUESTED and order.purpose == "compensation")
        ]

    def symbol_facts(
        self,
        *,
        now: datetime,
        recent_runs: list[Reconciliation],
        since: date | None = None,
        broker_positions: list[dict[str, Any]] | None = None,
    ) -> list[SymbolFacts]:
        views = self.views
        account = views.broker_account()
        snapshot_orders = list(account.open_orders) if account else []
        open_orders = views.orders(open_only=True)
        in_flight = in_flight_symbols(snapshot_orders, open_orders)
        unknown: dict[str, list[str]] = {}
        for order in open_orders:
            if order.status == OUTCOME_UNKNOWN:
                unknown.setdefault(order.symbol, []).append(order.client_order_id)
        # The sync just read the positions: reading its snapshot back would decode a row
        # per symbol held again.
        prices = last_prices(
            snapshot_positions(views) if broker_positions is None else broker_positions
        )
        recent = self.recent_broker_fills(now)
        filled, failed = compensation_streaks(recent_runs, views.order)
        traded = set() if since is None else views.traded_symbols_since(since)
        facts = []
        for row in views.diff():
            symbol = row.symbol
            fact = SymbolFacts(
                symbol=symbol,
                local_qty=row.local_qty,
                broker_qty=row.broker_qty,
                pending_qty=row.open_qty,
                in_flight=symbol in in_flight,
                last_broker_fill_at=recent.get(symbol),
                last_price=prices.get(symbol),
                consecutive_compensations=filled.get(symbol, 0),
                consecutive_failures=failed.get(symbol, (0, ""))[0],
                last_failure=failed.get(symbol, (0, None))[1],
                unknown_orders=tuple(unknown.get(symbol, ())),
                # Only "on or after --since" matters to the plan, not the exact day.
                last_local_trade_day=since if symbol in traded else None,
            )
            if row.delta:
                fact = self._explain(fact)
            facts.append(fact)
        return facts

    def _explain(self, fact: SymbolFacts) -> SymbolFacts:
        """The history a cause is read from, fetched only for symbols that differ."""
        paper_decisions = external = ZERO
        today = datetime.now(self.views.zone).date()
        sides_today: set[str] = set()
        for order in self.views.orders(symbol=fact.symbol):
            if order.filled_qty:
                moved = signed(order.side, order.filled_qty)
                if order.purpose == "decision" and order.broker == "paper":
                    paper_decisions += moved
                elif order.purpose == "external":
                    external += moved
                if _at_a_broker(order) and order.updated_at.astimezone(
                    self.views.zone
                ).date() == today:
                    sides_today.add(order.side)
        kinds = {
            line.kind
            for book in ("local", "broker")
            for line in self.views.lines(book, fact.symbol)
        }
        return SymbolFacts(
            **{
                **fact.__dict__,
                "paper_decision_qty": paper_decisions,
                "external_qty": external,
                "has_corporate_action": bool(kinds & {RATIO, MOVE_IN, MOVE_OUT}),
                # Never the ledger's own fill price: a paper fill's price is whatever was
                # typed. No broker price here: the reconciler asks the market data API.
                "last_price": fact.last_price,
                "broker_sides_today": frozenset(sides_today),
            }
        )

    def recent_broker_fills(self, now: datetime) -> dict[str, datetime]:
        """Symbol -> newest broker fill time, for fills within the recent-fill window.

        A fill is recorded after it happens, so every recent fill is in the tail of the
        log: read back from the end until events are older than the window.
        """
        ledger = self.views.ledger
        window = timedelta(seconds=float(self.recent_fill_seconds))
        cutoff = now - window
        found: dict[str, datetime] = {}
        order_cache: dict[UUID, OrderRecord | None] = {}
        last = ledger.last_notification_id()
        # Only fills are read: the tail also holds syncs and plans with a row per symbol
        # held, which cost far more to read and decode than they tell here. Pages stay one
        # size: the page's oldest event decides, page by page, whether to read further.
        for page in newest_windows(
            ledger.recorder,
            topics=_FILL_TOPICS,
            low=max(1, last - _TAIL_LIMIT + 1),
            high=last,
            first=_TAIL_PAGE,
            largest=_TAIL_PAGE,
        ):
            for notification in reversed(page.notifications):
                event = ledger.mapper.to_domain_event(notification)
                if event.filled_at < cutoff:
                    continue
                if event.originator_id not in order_cache:
                    order_cache[event.originator_id] = self.views.order(event.originator_id)
                order = order_cache[event.originator_id]
                if order is not None and _at_a_broker(order):
                    newest = found.get(order.symbol)
                    if newest is None or event.filled_at > newest:
                        found[order.symbol] = event.filled_at
            first = ledger.recorder.select_notifications(
                start=page.start, limit=1, stop=page.stop
            )
            if first and _recorded_at(ledger, first[0]) < cutoff - _CLOCK_MARGIN:
                break
        return found


def in_flight_symbols(
    snapshot_orders: list[dict[str, Any]], open_orders: Iterable[OrderRecord]
) -> set[str]:
    """Symbols with an order live at the broker, or maybe there (of unknown outcome): its
    fills would race a compensation."""
    symbols = {str(o.get("symbol", "")).upper() for o in snapshot_orders}
    symbols |= {
        o.symbol
        for o in open_orders
        if _at_a_broker(o) and o.status in OPEN_STATUSES and o.status != REQUESTED
    }
    return symbols


def snapshot_positions(views: Views) -> list[dict[str, Any]]:
    account = views.broker_account()
    if account is None:
        return []
    snapshot = views.ledger.repository.get(account.snapshot_id)
    return list(snapshot.positions)


def last_prices(positions: list[dict[str, Any]]) -> dict[str, Decimal]:
    """The broker's last price per held symbol: market value over quantity."""
    prices = {}
    for position in positions:
        qty = Decimal(position.get("qty") or 0)
        value = position.get("market_value")
        if qty and value is not None:
            prices[str(position["symbol"])] = abs(Decimal(value) / qty)
    return prices


def compensation_streaks(
    recent_runs: list[Reconciliation], order_of: Callable[[UUID], OrderRecord | None]
) -> tuple[dict[str, int], dict[str, tuple[int, str | None]]]:
    """Per symbol, in how many of the newest runs in a row its compensating order filled,
    and in how many in a row it failed (with the newest failure's reason).

    Only fills make a symbol oscillate: orders that failed, or whose outcome is unknown,
    moved nothing, and are reported as what they are."""
    filled: dict[str, int] = {}
    failed: dict[str, tuple[int, str | None]] = {}
    still_filling: set[str] | None = None
    still_failing: set[str] | None = None
    for run in recent_runs:  # newest first
        fills, failures = set(), {}
        for planned in run.orders:
            record = order_of(_as_uuid(planned.get("order_id")))
            if record is None:
                continue
            if record.filled_qty:
                fills.add(record.symbol)
            elif record.status in FAILED_STATUSES:
                failures[record.symbol] = record.error
        still_filling = fills if still_filling is None else still_filling & fills
        still_failing = set(failures) if still_failing is None else still_failing & set(failures)
        for symbol in still_filling:
            filled[symbol] = filled.get(symbol, 0) + 1
        for symbol in still_failing:
            count, newest = failed.get(symbol, (0, failures[symbol]))
            failed[symbol] = (count + 1, newest)
    return filled, failed


def _as_uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def reconcile_books(ledger: Ledger, settings: Settings) -> ReconcileBooks:
    """The books reconcile reads, for a long-running caller (the watchdog of `commands
    run`): the views are brought up to date at each read (`catch_up`), not here, so a
    service starts at once on a large store."""
    return ReconcileBooks(
        Views(ledger, timezone=settings.timezone),
        recent_fill_seconds=settings.recent_fill_seconds,
    )
