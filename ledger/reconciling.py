"""Reconciliation: sync, replay both books, diff, and route compensating orders.

Safe at any time, any number of times: a lock lets one run at once; each run first
settles what an earlier, crashed run left unresolved; pending orders are netted out
before a delta is computed; compensating orders have deterministic ids; and a dry run
only reads from the broker.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from ledger.brokers.port import MarketClock
from ledger.collector import CollectorPaused
from ledger.domain import Order, Reconciliation
from ledger.domain.order import compensation_order_id
from ledger.domain.planning import PlanRow, PlanRules, SymbolFacts, plan
from ledger.domain.reconciliation_lock import LOCK_ID, LockHeld, ReconciliationLock
from ledger.domain.values import InvalidInput, OrderIntent, Purpose, validate
from ledger.failpoints import failpoint
from ledger.settings import ConfigurationError, Settings

if TYPE_CHECKING:
    from ledger.application import Ledger

log = logging.getLogger(__name__)

# A crashed run cannot hold the lock longer than this.
LOCK_LEASE = timedelta(minutes=10)
# How many earlier runs decide whether a symbol oscillates.
OSCILLATION_RUNS = 3


class BooksPort(Protocol):
    """What reconciliation reads from the views (implemented by `projections`)."""

    def catch_up(self) -> int: ...

    def unsent_compensations(self) -> list[UUID]:
        """Compensating orders still 'requested': never answered by the broker."""
        ...

    def symbol_facts(
        self,
        *,
        now: datetime,
        recent_runs: list[Reconciliation],
        since: date | None,
        broker_positions: list[dict[str, Any]] | None = None,
    ) -> list[SymbolFacts]:
        """`broker_positions`: what the sync just read (its prices), so the snapshot it
        stored need not be read back; None: from the latest snapshot."""
        ...


@dataclass(frozen=True)
class ReconcileRequest:
    dry_run: bool = False
    since: date | None = None
    symbols: tuple[str, ...] = ()
    extended_hours: bool = False
    confirmed: bool = False  # --yes


@dataclass
class OrderOutcome:
    symbol: str
    side: str
    qty: Decimal
    order_type: str
    limit_price: Decimal | None
    client_order_id: str
    order_id: UUID
    status: str  # planned | submitted | failed
    error: str | None = None
    hint: str | None = None
    broker_status: str | None = None


@dataclass
class ReconcileResult:
    run_id: UUID
    dry_run: bool
    broker: str
    paper: bool
    sync_id: UUID | None
    clock: MarketClock | None
    rows: list[PlanRow]
    orders: list[OrderOutcome] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "planned": sum(1 for r in self.rows if r.order is not None),
            "submitted": sum(1 for o in self.orders if o.status == "submitted"),
            "failed": sum(1 for o in self.orders if o.status == "failed"),
            "skipped": sum(1 for r in self.rows if r.status == "skipped"),
        }

    @property
    def failed(self) -> bool:
        return any(o.status == "failed" for o in self.orders)


# What a person can do about each broker refusal (DESIGN.md: each failed order shows why and
# what to do).
_HINTS = {
    "40310000": "the account lacks buying power: add funds or reduce the position by hand",
    "42210000": "the asset is not tradable at Alpaca: adjust the local book with an adjustment",
    "40010001": "an order with this client order id exists: the next sync records it",
    "429": "Alpaca is rate limiting: run reconcile again in a minute",
    # The adapter reports Alpaca's own code for a rate limit.
    "42910000": "Alpaca is rate limiting: run reconcile again in a minute",
    "timeout": "the broker did not answer in time: the next run looks the order up first",
}
# The adapter's codes for a broker that failed or could not be reached (an order whose
# outcome is unknown is looked up by the next run before anything is sent).
_BROKER_FAILED_CODES = frozenset(
    {"connection", "connection_lost", "outcome_unknown", "malformed_reply", "lookup_failed",
     "transport_error", "unexpected_error", "unreachable"}
)


def hint_for(code: str, message: str) -> str:
    if code in _HINTS:
        return _HINTS[code]
    if "market" in message.lower() and "closed" in message.lower():
        return "the market is closed: run again when it opens, or use --extended-hours"
    if code.startswith(("5", "http_5")) or code in _BROKER_FAILED_CODES:
        return "the broker failed: run reconcile again; it settles this order first"
    return "see the broker's message; fix the cause and run reconcile again"


class Reconciler:
    def __init__(
        self,
        ledger: Ledger,
        books: BooksPort,
        settings: Settings,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.ledger = ledger
        self.books = books
        self.settings = settings
        self.now = clock or (lambda: datetime.now(UTC))
        self._settled: list[str] = []

    # -- the run -----------------------------------------------------------------------

    def check(self, request: ReconcileRequest) -> None:
        """Refusals that need no broker call: exit 2, nothing written."""
        if self.settings.broker_provider != "alpaca":
            raise ConfigurationError(
                f"BROKER_PROVIDER is set to '{self.settings.broker_provider}', not 'alpaca': "
                "reconcile compares the ledger with an Alpaca account"
            )
        if not request.dry_run and not self.settings.alpaca_paper_mode and not request.confirmed:
            raise ConfigurationError(
                "ALPACA_PAPER_MODE=false sends orders to the live account: pass --yes to "
                "confirm, or use --dry-run"
            )

    def run(self, request: ReconcileRequest) -> ReconcileResult:
        self.check(request)
        run_id = uuid4()
        if not request.dry_run:
            self._acquire(run_id)
        try:
            # Thousands of symbols: JSON, models, records and plan rows, none in a cycle.
            with CollectorPaused():
                return self._run(run_id, request)
        finally:
            if not request.dry_run:
                self._release(run_id)

    def _run(self, run_id: UUID, request: ReconcileRequest) -> ReconcileResult:
        report = self.ledger.sync()
        self.books.catch_up()
        if not request.dry_run and self._settle_unsent():
            self.books.catch_up()
        settled = self._settled
        clock = self._market_clock()
        now = self.now()
        facts = self.books.symbol_facts(
            now=now, recent_runs=self.recent_runs(), since=request.since,
            broker_positions=report.positions,
        )
        if request.symbols:
            wanted = set(request.symbols)
            facts = [f for f in facts if f.symbol in wanted]
        rules = PlanRules(
            since=request.since,
            recent_fill_seconds=self.settings.recent_fill_seconds,
            oscillation_runs=OSCILLATION_RUNS,
            max_order_notional=self.settings.max_order_notional,
            max_run_notional=self.settings.max_run_notional,
            extended_hours=request.extended_hours,
            extended_hours_slippage=self.settings.extended_hours_slippage,
        )
        rows = plan(facts, rules, now)
        result = ReconcileResult(
            run_id=run_id,
            dry_run=request.dry_run,
            broker=self.settings.broker_provider,
            paper=self.settings.alpaca_paper_mode,
            sync_id=report.sync_id,
            clock=clock,
            rows=rows,
            settled=settled,
        )
        run = Reconciliation(
            id=run_id,
            dry_run=request.dry_run,
            broker=result.broker,
            paper=result.paper,
            sync_id=report.sync_id,
            filters={
                "since": request.since,
                "symbols": list(request.symbols),
                "extended_hours": request.extended_hours,
            },
        )
        orders = [self._compensation(run_id, row) for row in rows if row.order is not None]
        result.orders = [self._outcome(order) for order in orders]
        by_symbol = facts_by_symbol(facts)  # once: per row, 5,000 symbols took seconds
        run.plan(
            rows=[row_record(row, by_symbol) for row in rows],
            orders=[outcome_record(o) for o in result.orders],
            market=None if clock is None else clock_record(clock),
        )
        failpoint("reconcile:planned")
        if request.dry_run:
            run.complete(**result.counts)
            self.ledger.save(run)
            return result
        # The plan and every compensating order's intent are stored together, before any
        # broker call: a crash after this leaves requested orders that the next run
        # settles by looking them up, never by sending them twice.
        self.ledger.save(run, *orders)
        failpoint("reconcile:requested")
        for outcome in result.orders:
            self._submit(outcome)
        failpoint("reconcile:submitted")
        run = self.ledger.repository.get(run_id)
        run.complete(**result.counts)
        self.ledger.save(run)
        return result

    # -- steps -------------------------------------------------------------------------

    def _acquire(self, run_id: UUID) -> None:
        try:
            lock: ReconciliationLock = self.ledger.repository.get(LOCK_ID)
        except AggregateNotFoundError:
            lock = ReconciliationLock(id=LOCK_ID)
        now = self.now()
        lock.acquire(
            run_id,
            now,
            LOCK_LEASE,
            this_process(),
            holder_is_dead=not lock.is_free(now) and process_is_gone(lock.process),
        )
        try:
            self.ledger.save(lock)
        except IntegrityError:
            raise LockHeld(
                "another reconciliation started at the same moment: nothing was sent; "
                "run again after it ends"
            ) from None

    def _release(self, run_id: UUID) -> None:
        for _ in range(3):
            lock: ReconciliationLock = self.ledger.repository.get(LOCK_ID)
            lock.release(run_id)
            try:
                self.ledger.save(lock)
                return
            except IntegrityError:
                continue
        log.warning("could not release the reconciliation lock; its lease ends it")

    def _settle_unsent(self) -> list[str]:
        """Compensating orders an earlier run requested but never got to the broker.

        The sync just looked every unresolved order up by its client order id; one still
        'requested' is not at the broker. Its plan is stale, so it is canceled and this
        run plans afresh from the books.
        """
        settled = self._settled = []
        for order_id in self.books.unsent_compensations():
            order: Order = self.ledger.repository.get(order_id)
            if order.status != "requested":
                continue
            answer = self.ledger.router.settle(order)
            if answer is not None and answer.broker_order_id is not None:
                continue  # at the broker after all: the next sync records it
            order.mark_canceled(reason="never reached the broker; superseded by a new plan")
            self.ledger.save(order)
            settled.append(order.client_order_id)
        return settled

    def _market_clock(self) -> MarketClock | None:
        reader = self.ledger.router.reader
        get = getattr(reader, "get_market_clock", None)
        return None if get is None else get()

    def recent_runs(self) -> list[Reconciliation]:
        return self.ledger.recent_reconciliations(OSCILLATION_RUNS, include_dry_runs=False)

    def _compensation(self, run_id: UUID, row: PlanRow) -> Order:
        assert row.order is not None
        planned = row.order
        intent = validate(
            OrderIntent,
            symbol=row.symbol,
            side=planned.side,
            qty=planned.qty,
            order_type=planned.order_type,
            time_in_force=planned.time_in_force,
            limit_price=planned.limit_price,
            extended_hours=planned.extended_hours,
        )
        return Order.request(
            intent,
            order_id=compensation_order_id(run_id, row.symbol),
            purpose=Purpose.COMPENSATION,
            reconciliation_id=run_id,
            reason=f"reconciliation: {row.reason}",
        )

    @staticmethod
    def _outcome(order: Order) -> OrderOutcome:
        assert order.qty is not None
        return OrderOutcome(
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            order_type=order.order_type,
            limit_price=order.limit_price,
            client_order_id=order.client_order_id,
            order_id=order.id,
            status="planned",
        )

    def _submit(self, outcome: OrderOutcome) -> None:
        order, answer = self.ledger.submit(outcome.order_id)
        outcome.broker_status = answer.status
        if order.status in ("submission_failed", "rejected"):
            outcome.status = "failed"
            if answer.error is not None:
                outcome.error = answer.error.message
                outcome.hint = hint_for(answer.error.code, answer.error.message)
            else:
                outcome.error = answer.rejection_reason or "rejected by the broker"
                outcome.hint = hint_for("", outcome.error)
        else:
            outcome.status = "submitted"


def this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def process_is_gone(process: dict[str, Any]) -> bool:
    """True only when the lock's holder ran on this host and its process no longer exists:
    a crashed run must not block every later one until its lease ends."""
    if process.get("host") != socket.gethostname() or not process.get("pid"):
        return False
    try:
        os.kill(int(process["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# -- records stored in the plan, and shown -------------------------------------------------


def facts_by_symbol(facts: list[SymbolFacts]) -> dict[str, SymbolFacts]:
    return {f.symbol: f for f in facts}


def row_record(row: PlanRow, facts: dict[str, SymbolFacts]) -> dict[str, Any]:
    """One plan row as stored: enough to show, years later, why an order was (not) sent."""
    fact = facts.get(row.symbol)
    return {
        "symbol": row.symbol,
        "local_qty": row.local_qty,
        "broker_qty": row.broker_qty,
        "open_qty": row.open_qty,
        "delta": row.delta,
        "reason": row.reason,
        "status": row.status,
        "skip_reason": row.skip_reason,
        "notional": row.notional,
        "last_price": None if fact is None else fact.last_price,
        "in_flight": None if fact is None else fact.in_flight,
        "last_broker_fill_at": None if fact is None else fact.last_broker_fill_at,
    }


def outcome_record(outcome: OrderOutcome) -> dict[str, Any]:
    return {
        "symbol": outcome.symbol,
        "side": outcome.side,
        "qty": outcome.qty,
        "type": outcome.order_type,
        "limit_price": outcome.limit_price,
        "client_order_id": outcome.client_order_id,
        "order_id": outcome.order_id,
    }


def clock_record(clock: MarketClock) -> dict[str, Any]:
    return {
        "timestamp": clock.timestamp,
        "is_open": clock.is_open,
        "next_open": clock.next_open,
        "next_close": clock.next_close,
    }


def parse_symbols(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    from ledger.domain.values import normalise_symbol

    symbols = []
    for part in text.split(","):
        if part.strip():
            try:
                symbols.append(normalise_symbol(part))
            except InvalidInput as error:
                raise InvalidInput(f"--symbols: {error}") from None
    return tuple(dict.fromkeys(symbols))
