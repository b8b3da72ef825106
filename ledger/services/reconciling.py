"""Reconciliation: sync, replay both books, diff, and route compensating orders.

Safe at any time, any number of times: a lock lets one run send at once, its lease kept
renewed while it works; each run first settles what an earlier, crashed or interrupted
run left unresolved (by client order id, never under a new one); pending orders are
netted out before a delta is computed; compensating orders have deterministic ids; an
interrupted run finishes the call in flight and sends nothing more; and a dry run only
reads from the broker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID, uuid4

from eventsourcing.persistence import IntegrityError

from ledger.application import SAVE_ATTEMPTS, Ledger, NotSent
from ledger.brokers.answers import apply_answer
from ledger.brokers.failures import hint
from ledger.brokers.port import BrokerAnswer, BrokerError, MarketClock, MarketReader
from ledger.brokers.router import LANDING_WINDOW
from ledger.domain import Order, Reconciliation
from ledger.domain.order import OUTCOME_UNKNOWN, OrderStateError, compensation_order_id
from ledger.domain.planning import (
    PlanRow,
    PlanRules,
    SymbolFacts,
    day_trade_refusal,
    plan,
)
from ledger.domain.reconciliation_lock import LockLost
from ledger.domain.values import InvalidInput, OrderIntent, Purpose, validate
from ledger.infrastructure.collector import CollectorPaused
from ledger.infrastructure.failpoints import failpoint
from ledger.infrastructure.reconcile_lock import HeldLock
from ledger.services.market_facts import with_market_facts
from ledger.services.stopping import Interrupted, StopRequest
from ledger.settings import ConfigurationError, Settings

log = logging.getLogger(__name__)

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
    confirmed: bool = False  # --yes
    include_external: bool = False  # also trade away what the ledger did not originate


class AccountCannotTrade(Exception):
    """The broker account is blocked, suspended, not active, or may not day-trade: nothing
    is sent (exit 1)."""


@dataclass
class OrderOutcome:
    symbol: str
    side: str
    qty: Decimal
    order_type: str
    limit_price: Decimal | None
    client_order_id: str
    order_id: UUID
    status: str  # planned | submitted | failed | not_sent
    error: str | None = None
    hint: str | None = None
    broker_status: str | None = None
    # Sent, but no answer says whether the broker has it: the next run settles it.
    outcome_unknown: bool = False


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
    # Orders earlier runs left unsettled, and what this run made of them.
    settled: list[dict[str, Any]] = field(default_factory=list)
    # Why the run stopped sending before its plan was done (a signal, a lost lock).
    interrupted: str | None = None
    # Why the account cannot take this plan (a dry run reports it; a real run refuses).
    account_problem: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return {
            "planned": sum(1 for r in self.rows if r.order is not None),
            "submitted": sum(1 for o in self.orders if o.status == "submitted"),
            "failed": sum(1 for o in self.orders if o.status == "failed"),
            "skipped": sum(1 for r in self.rows if r.status == "skipped"),
            "not_sent": sum(1 for o in self.orders if o.status == "not_sent"),
            "unknown": sum(1 for o in self.orders if o.outcome_unknown),
        }

    @property
    def failed(self) -> bool:
        return (
            self.interrupted is not None
            or self.account_problem is not None
            or any(o.status == "failed" for o in self.orders)
        )


# What a person can do about each broker refusal (docs/design.md: each failed order shows
# why and what to do).
UNKNOWN_HINT = (
    "the broker may have this order although no answer said so: the next run looks it up, "
    "or sends it again under the same client order id, which the broker takes only once"
)


def hint_for(error: BrokerError | None) -> str:
    """What a person can do about a failed order, by the kind the broker's adapter gave its
    error (ledger/brokers/failures.py holds the lines). An error without a kind, or no
    error at all (the broker took the order, then rejected it), gets the general line."""
    return hint(None if error is None else error.kind)


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

    # -- the run -----------------------------------------------------------------------

    def check(self, request: ReconcileRequest) -> None:
        """Refusals that need no broker call: exit 2, nothing written."""
        refusal = self.settings.not_alpaca(
            "reconcile compares the ledger with an Alpaca account"
        )
        if refusal is not None:
            raise ConfigurationError(refusal)
        if not request.dry_run and not self.settings.alpaca_paper_mode and not request.confirmed:
            raise ConfigurationError(
                "ALPACA_PAPER_MODE=false sends orders to the live account: pass --yes to "
                "confirm, or use --dry-run"
            )

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
        refusal = None if report.account is None else report.account.refusal()
        if refusal is not None and not request.dry_run:
            raise AccountCannotTrade(f"nothing was sent: {refusal}")
        self.books.catch_up()
        # The sync looks every unsettled order up: what it found is this run's settling too.
        settled = [_settled_entry(order, how=f"found by the sync: {_how_settled(order)}")
                   for order in map(self.ledger.get_order, (o.id for o in unknown))
                   if not order.outcome_unknown]
        if held is not None and not stop.requested:
            settled += self._settle_unresolved(run_id, stop, held)
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
        rules = PlanRules(
            since=request.since,
            recent_fill_seconds=self.settings.recent_fill_seconds,
            oscillation_runs=OSCILLATION_RUNS,
            max_order_notional=self.settings.max_order_notional,
            max_run_notional=self.settings.max_run_notional,
            extended_hours=request.extended_hours,
            extended_hours_slippage=self.settings.extended_hours_slippage,
            include_external=request.include_external,
        )
        market = self.ledger.router.reader
        if isinstance(market, MarketReader):
            facts = with_market_facts(facts, market, report.positions or [], rules, now)
        rows = plan(facts, rules, now)
        if refusal is None and report.account is not None:
            refusal = day_trade_refusal(
                rows, facts, pattern_day_trader=report.account.pattern_day_trader,
                equity=report.account.equity,
            )
            if refusal is not None and not request.dry_run:
                raise AccountCannotTrade(f"nothing was sent: {refusal}")
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
        result.orders = [self._outcome(order) for order in orders]
        by_symbol = facts_by_symbol(facts)  # once: per row, 5,000 symbols took seconds
        run.plan(
            rows=[row_record(row, by_symbol) for row in rows],
            orders=[outcome_record(o) for o in result.orders],
            market=None if clock is None else clock_record(clock),
            settled=settled,
        )
        failpoint("reconcile:planned")
        if request.dry_run:
            run.complete(**result.counts, interrupted=None)
            self.ledger.save(run)
            return result
        if stop.requested:
            # Nothing of this plan is stored as requested: the next run plans afresh.
            for outcome in result.orders:
                outcome.status = "not_sent"
                outcome.error = f"not sent: {stop.reason}"
            result.interrupted = stop.reason
            run.complete(**result.counts, interrupted=stop.reason)
            self.ledger.save(run)
            return result
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
                self._withdraw(outcome.order_id, f"not sent: {result.interrupted}")
                outcome.status = "not_sent"
                outcome.error = f"not sent: {result.interrupted}"
        failpoint("reconcile:submitted")
        run = self.ledger.repository.get(run_id)
        run.complete(**result.counts, interrupted=result.interrupted)
        self.ledger.save(run)
        return result

    # -- steps -------------------------------------------------------------------------

    def _settle_unresolved(
        self, run_id: UUID, stop: StopRequest, held: HeldLock
    ) -> list[dict[str, Any]]:
        """What earlier runs (or trades) left unsettled, settled before this run plans.

        A compensating order still 'requested' provably never left (every send is stored
        as started first, and that store loses to this withdrawal if it comes second):
        its plan is stale, so it is withdrawn and this run plans afresh. An order of
        unknown outcome keeps its client order id: the router looks it up and, for a
        compensation, sends it again under that id, which the broker takes only once. A
        decision order of unknown outcome is only looked up (a decision is the engine's
        to repeat), and settled as never landed once its send is long past landing.
        """
        settled: list[dict[str, Any]] = []
        broker = self.ledger.router.broker
        for order_id in self.books.unresolved_orders():
            if stop.requested:
                break
            order = self.ledger.get_order(order_id)
            if order.status == "requested" and order.purpose == Purpose.COMPENSATION.value:
                reason = f"never sent; superseded by the plan of run {run_id}"
                if self._withdraw(order_id, reason):
                    settled.append(_settled_entry(
                        order, how="withdrawn: no send of it ever began", status="canceled"))
            elif order.outcome_unknown and order.broker == broker:
                after = self._settle_unknown(order, held)
                settled.append(_settled_entry(after, how=_how_settled(after), was=order.status))
        return settled

    def _settle_unknown(self, order: Order, held: HeldLock) -> Order:
        if order.purpose == Purpose.COMPENSATION.value:
            try:
                order, _ = self.ledger.submit(order.id, may_send=held.check)
            except NotSent as skipped:
                return skipped.order
            return order
        answer = self.ledger.router.settle(order)
        started = order.send_started_at
        if answer is None and (started is None or self.now() - started < LANDING_WINDOW):
            return order  # may still land: the symbol waits (in flight)
        if answer is None:
            answer = never_landed(order, self.ledger.router.broker)
        try:
            apply_answer(order, answer)
            self.ledger.save(order)
        except (IntegrityError, OrderStateError):
            return self.ledger.get_order(order.id)  # another process settled it first
        return order

    def _withdraw(self, order_id: UUID, reason: str) -> bool:
        """Cancel an order no send of which began; False when it turns out one did."""
        for _ in range(SAVE_ATTEMPTS):
            order = self.ledger.get_order(order_id)
            if order.status != "requested":
                return False
            order.withdraw_unsent(reason=reason)
            try:
                self.ledger.save(order)
                return True
            except IntegrityError:
                continue  # a send began meanwhile, or a sync wrote: look again
        return False

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
            outcome.hint = UNKNOWN_HINT
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


def _settled_entry(order: Order, *, how: str, status: str | None = None,
                   was: str = OUTCOME_UNKNOWN) -> dict[str, Any]:
    """One order an earlier run (or a trade) left unsettled, as the settling run stores it."""
    return {
        "order_id": order.id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "from_run": order.reconciliation_id,
        "was": "requested" if status == "canceled" else was,
        "status": status or order.status,
        "how": how,
    }


def _how_settled(order: Order) -> str:
    if order.outcome_unknown:
        return "still of unknown outcome: the next run asks again"
    if order.status == "submission_failed":
        failure = order.failures[-1] if order.failures else {}
        return f"not at the broker: {failure.get('message', 'refused')}"
    return f"at the broker as {order.broker_order_id}"


def never_landed(order: Order, broker: str) -> BrokerAnswer:
    started = order.send_started_at
    when = "" if started is None else f" since {started:%Y-%m-%d %H:%M:%S} UTC"
    return BrokerAnswer(
        broker=broker,
        error=BrokerError(
            code="never_landed",
            message=(
                f"the broker has no order under this client order id{when}, long after a "
                "send could land: it never reached the broker"
            ),
            retryable=False,
        ),
    )


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
        "price": row.price,
        "remainder": row.remainder,
        "remainder_reason": row.remainder_reason,
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
