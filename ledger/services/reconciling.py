"""Reconciliation: sync, replay both books, diff, and route compensating orders.

Safe at any time, any number of times: a lock lets one run send at once, its lease kept
renewed while it works; each run first settles what an earlier, crashed or interrupted
run left unresolved (by client order id, never under a new one: `settling`); pending
orders are netted out before a delta is computed; compensating orders have deterministic
ids; an interrupted run finishes the call in flight and sends nothing more; and a dry run
only reads from the broker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

from ledger.application import Ledger
from ledger.brokers.failures import OUTCOME_UNKNOWN_HINT, hint_for
from ledger.brokers.port import MarketClock, MarketReader
from ledger.domain import Order, Reconciliation
from ledger.domain.order import compensation_order_id
from ledger.domain.planning import PlanRow, PlanRules, SymbolFacts, day_trade_refusal, plan
from ledger.domain.reconciliation_lock import LockLost
from ledger.domain.values import OrderIntent, Purpose, validate
from ledger.infrastructure.collector import CollectorPaused
from ledger.infrastructure.failpoints import failpoint
from ledger.infrastructure.reconcile_lock import HeldLock
from ledger.services.market_facts import with_market_facts
from ledger.services.reconcile_records import (
    OrderOutcome,
    ReconcileResult,
    clock_record,
    facts_by_symbol,
    outcome_record,
    planned_outcome,
    row_record,
)
from ledger.services.reconcile_refusals import check_settings, refuse_to_send
from ledger.services.settling import Settler
from ledger.services.stopping import Interrupted, StopRequest
from ledger.services.trading import NotSent
from ledger.settings import Settings

# How many earlier runs decide whether a symbol oscillates.
OSCILLATION_RUNS = 3


class BooksPort(Protocol):
    """What reconciliation reads from the views (implemented by `projections`)."""

    def catch_up(self) -> int: ...

    def unresolved_orders(self) -> list[UUID]:
        """Orders a crash or an interruption may have left unsettled: compensating orders
        still 'requested' and any order whose outcome at a broker is unknown."""
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
    confirmed: bool = False  # a person confirmed a run that sends to a live account
    include_external: bool = False  # also trade away what the ledger did not originate


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
        self.settler = Settler(ledger, self.now)

    # -- the run -----------------------------------------------------------------------

    def check(self, request: ReconcileRequest) -> None:
        """Refusals that need no broker call: nothing is written (`reconcile_refusals`)."""
        check_settings(self.settings, dry_run=request.dry_run, confirmed=request.confirmed)

    def run(self, request: ReconcileRequest, stop: StopRequest | None = None) -> ReconcileResult:
        """Sync, settle what earlier runs left, plan, and (unless a dry run) send.

        `stop`: once requested, the broker call in flight finishes and is recorded and
        nothing more is sent; the result says so (`interrupted`)."""
        self.check(request)
        stop = stop or StopRequest()
        run_id = uuid4()
        held = None
        if not request.dry_run:
            lease = timedelta(seconds=self.settings.lock_lease_seconds)
            held = HeldLock.acquire(self.ledger, run_id, lease, self.now)
        try:
            # Thousands of symbols: JSON, models, records and plan rows, none in a cycle.
            with CollectorPaused():
                return self._run(run_id, request, stop, held)
        finally:
            if held is not None:
                held.release()

    def _run(
        self, run_id: UUID, request: ReconcileRequest, stop: StopRequest, held: HeldLock | None
    ) -> ReconcileResult:
        self.books.catch_up()
        unknown = [o for o in map(self.ledger.get_order, self.books.unresolved_orders())
                   if o.outcome_unknown]
        report = self.ledger.sync()
        account = report.account
        refusal = None if account is None else account.refusal()
        refuse_to_send(refusal, dry_run=request.dry_run)
        self.books.catch_up()
        settled = self.settler.found_by_sync(unknown)
        if held is not None and not stop.requested:
            settled += self.settler.settle(self.books.unresolved_orders(), run_id, stop, held)
            if settled:
                self.books.catch_up()
        clock = self._market_clock()
        now = self.now()
        facts = self.books.symbol_facts(
            now=now, recent_runs=self.recent_runs(), since=request.since,
            broker_positions=report.positions,
        )
        if request.symbols:
            wanted = set(request.symbols)
            facts = [f for f in facts if f.symbol in wanted]
        rules = self._rules(request)
        market = self.ledger.router.reader
        if isinstance(market, MarketReader):
            facts = with_market_facts(facts, market, report.positions or [], rules, now)
        rows = plan(facts, rules, now)
        if refusal is None and account is not None:
            refusal = day_trade_refusal(
                rows, facts, pattern_day_trader=account.pattern_day_trader,
                equity=account.equity,
            )
            refuse_to_send(refusal, dry_run=request.dry_run)
        result = ReconcileResult(
            run_id=run_id,
            dry_run=request.dry_run,
            broker=self.settings.broker_provider,
            paper=self.settings.alpaca_paper_mode,
            sync_id=report.sync_id,
            clock=clock,
            rows=rows,
            settled=settled,
            account_problem=refusal,
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
                "include_external": request.include_external,
            },
        )
        orders = [self._compensation(run_id, row) for row in rows if row.order is not None]
        result.orders = [planned_outcome(order) for order in orders]
        by_symbol = facts_by_symbol(facts)  # once, not per row: a row per symbol held
        run.plan(
            rows=[row_record(row, by_symbol) for row in rows],
            orders=[outcome_record(o) for o in result.orders],
            market=None if clock is None else clock_record(clock),
            settled=settled,
        )
        failpoint("reconcile:planned")
        if request.dry_run or stop.requested:
            return self._stored_unsent(run, result, stop)
        return self._send(run, orders, result, stop, held)

    def _stored_unsent(
        self, run: Reconciliation, result: ReconcileResult, stop: StopRequest
    ) -> ReconcileResult:
        """A dry run, or a run stopped before it sent: the plan is stored, no order of it
        is (the next run plans afresh)."""
        if not result.dry_run:
            for outcome in result.orders:
                outcome.status = "not_sent"
                outcome.error = f"not sent: {stop.reason}"
            result.interrupted = stop.reason
        run.complete(**result.counts, interrupted=result.interrupted)
        self.ledger.save(run)
        return result

    def _send(
        self,
        run: Reconciliation,
        orders: list[Order],
        result: ReconcileResult,
        stop: StopRequest,
        held: HeldLock | None,
    ) -> ReconcileResult:
        # The plan and every compensating order's intent are stored together, before any
        # broker call: a crash after this leaves requested orders that no send ever began
        # (the next run withdraws them) or orders of unknown outcome (it settles them by
        # their client order ids), never an order sent twice.
        self.ledger.save(run, *orders)
        failpoint("reconcile:requested")
        assert held is not None
        for outcome in result.orders:
            if result.interrupted is None:
                result.interrupted = self._submit(outcome, stop, held)
            if result.interrupted is not None and outcome.status == "planned":
                self.settler.withdraw(outcome.order_id, f"not sent: {result.interrupted}")
                outcome.status = "not_sent"
                outcome.error = f"not sent: {result.interrupted}"
        failpoint("reconcile:submitted")
        run = self.ledger.repository.get(result.run_id)
        run.complete(**result.counts, interrupted=result.interrupted)
        self.ledger.save(run)
        return result

    # -- steps -------------------------------------------------------------------------

    def _rules(self, request: ReconcileRequest) -> PlanRules:
        settings = self.settings
        return PlanRules(
            since=request.since,
            recent_fill_seconds=settings.recent_fill_seconds,
            oscillation_runs=OSCILLATION_RUNS,
            max_order_notional=settings.max_order_notional,
            max_run_notional=settings.max_run_notional,
            extended_hours=request.extended_hours,
            extended_hours_slippage=settings.extended_hours_slippage,
            include_external=request.include_external,
        )

    def _market_clock(self) -> MarketClock | None:
        reader = self.ledger.router.reader
        get = getattr(reader, "get_market_clock", None)
        return None if get is None else get()

    def recent_runs(self) -> list[Reconciliation]:
        return self.ledger.recent_reconciliations(OSCILLATION_RUNS, include_dry_runs=False)

    def _compensation(self, run_id: UUID, row: PlanRow) -> Order:
        assert row.order is not None
        planned = row.order
        intent = validate(OrderIntent, symbol=row.symbol, **asdict(planned))
        return Order.request(
            intent,
            order_id=compensation_order_id(run_id, row.symbol),
            purpose=Purpose.COMPENSATION,
            reconciliation_id=run_id,
            reason=f"reconciliation: {row.reason}",
        )


    def _submit(self, outcome: OrderOutcome, stop: StopRequest, held: HeldLock) -> str | None:
        """Send one planned order; returns why the run must stop sending, or None."""

        def may_send() -> None:
            stop.check()
            held.check()

        try:
            order, answer = self.ledger.submit(outcome.order_id, may_send=may_send)
        except Interrupted as interrupted:
            return str(interrupted) or "interrupted"
        except LockLost as lost:
            return str(lost)
        except NotSent as skipped:
            # A run that took the lock over withdrew it first: it was never sent.
            outcome.status = "not_sent"
            outcome.error = str(skipped)
            return None
        outcome.broker_status = answer.status
        if order.outcome_unknown:
            outcome.status = "failed"
            outcome.outcome_unknown = True
            outcome.error = (
                f"outcome unknown: {answer.error.message}" if answer.error else "outcome unknown"
            )
            outcome.hint = OUTCOME_UNKNOWN_HINT
        elif order.status in ("submission_failed", "rejected"):
            outcome.status = "failed"
            if answer.error is not None:
                outcome.error = answer.error.message
                outcome.hint = hint_for(answer.error)
            else:
                outcome.error = answer.rejection_reason or "rejected by the broker"
                outcome.hint = hint_for(None)
        else:
            outcome.status = "submitted"
        return stop.reason if stop.requested else None

