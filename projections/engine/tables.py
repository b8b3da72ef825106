"""The view tables: their columns, and how fold state becomes rows and back.

Every value is stored as text (decimals in canonical form, datetimes as ISO 8601 with
their offset, UUIDs hyphenated) or as an integer (notification ids, counts), so a row
dump is byte-identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from projections.engine.audit_index import AuditDay
from projections.model.numbers import CONTEXT, ONE, canonical, optional_parse
from projections.model.positions import Line, Position
from projections.model.records import BrokerAccountState, OrderRecord

Row = tuple[Any, ...]

_divide = CONTEXT.divide


@dataclass(frozen=True)
class Table:
    name: str  # the live table's name; a rebuild writes beside it under name + suffix
    columns: tuple[tuple[str, str], ...]  # (column, "TEXT" | "INTEGER")
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()
    # Rows stored in key order (SQLite: WITHOUT ROWID). Right for narrow rows whose keys
    # arrive roughly in order; wide rows under random keys (orders by UUID) are cheaper
    # appended, with the key in an index.
    clustered: bool = True

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def key_of(self, row: Row) -> Row:
        positions = [self.column_names.index(k) for k in self.key]
        return tuple(row[i] for i in positions)


@dataclass(frozen=True)
class View:
    name: str
    tables: tuple[Table, ...]
    # Views whose rows this one is computed from: rebuilding those rebuilds this one too.
    depends_on: tuple[str, ...] = ()
    description: str = ""
    # Views whose state as of each event this one's fold needs (not today's rows): a
    # rebuild of this view folds them from event 1 beside it.
    folded_with: tuple[str, ...] = ()
    # Raised when what a row holds changes though the tables' shape does not.
    revision: int = 1

    @property
    def layout(self) -> str:
        """Changes whenever a table's shape or a row's content does: such views are
        rebuilt before use."""
        spec = [(t.name, t.columns, t.key, t.indexes, t.clustered) for t in self.tables]
        return hashlib.sha256(json.dumps([spec, self.revision]).encode()).hexdigest()[:16]


_POSITION_COLUMNS = (
    ("symbol", "TEXT"),
    ("qty", "TEXT"),
    ("avg_price", "TEXT"),
    ("cost_basis", "TEXT"),
    ("realised_pnl", "TEXT"),
)
_LINE_COLUMNS = (
    ("symbol", "TEXT"),
    ("seq", "INTEGER"),
    ("n", "INTEGER"),
    ("kind", "TEXT"),
    ("qty", "TEXT"),
    ("price", "TEXT"),
    ("ratio", "TEXT"),
    ("ref", "TEXT"),
)

ORDERS = Table(
    "view_orders",
    (
        ("order_id", "TEXT"),
        ("client_order_id", "TEXT"),
        ("purpose", "TEXT"),
        ("decision_id", "TEXT"),
        ("reconciliation_id", "TEXT"),
        ("symbol", "TEXT"),
        ("side", "TEXT"),
        ("qty", "TEXT"),
        ("notional", "TEXT"),
        ("order_type", "TEXT"),
        ("time_in_force", "TEXT"),
        ("limit_price", "TEXT"),
        ("status", "TEXT"),
        ("broker", "TEXT"),
        ("broker_order_id", "TEXT"),
        ("filled_qty", "TEXT"),
        ("filled_value", "TEXT"),
        ("avg_fill_price", "TEXT"),
        ("error", "TEXT"),
        ("requested_seq", "INTEGER"),
        ("requested_at", "TEXT"),
        ("updated_seq", "INTEGER"),
        ("updated_at", "TEXT"),
    ),
    ("order_id",),
    (("client_order_id",), ("status",), ("symbol",)),
    clustered=False,
)
LOCAL_POSITIONS = Table("view_local_positions", _POSITION_COLUMNS, ("symbol",))
LOCAL_LINES = Table("view_local_lines", _LINE_COLUMNS, ("symbol", "seq", "n"))
BROKER_POSITIONS = Table("view_broker_positions", _POSITION_COLUMNS, ("symbol",))
BROKER_LINES = Table("view_broker_lines", _LINE_COLUMNS, ("symbol", "seq", "n"))
BROKER_ACCOUNT = Table(
    "view_broker_account",
    (
        ("account_key", "TEXT"),
        ("snapshot_id", "TEXT"),
        ("snapshot_seq", "INTEGER"),
        ("broker", "TEXT"),
        ("account_id", "TEXT"),
        ("paper", "INTEGER"),
        ("cash", "TEXT"),
        ("equity", "TEXT"),
        ("buying_power", "TEXT"),
        ("broker_time", "TEXT"),
        ("synced_at", "TEXT"),
        ("open_orders", "TEXT"),
    ),
    ("account_key",),
)
AUDIT_DAYS = Table(
    "view_audit_days",
    (
        ("day", "TEXT"),
        ("first_seq", "INTEGER"),
        ("last_seq", "INTEGER"),
        ("events", "INTEGER"),
        ("closing", "TEXT"),
    ),
    ("day",),
    (("last_seq",),),
)

ORDERS_VIEW = View("orders", (ORDERS,), description="every order: status, fills, broker ids")
LOCAL_BOOK = View(
    "local_book",
    (LOCAL_POSITIONS, LOCAL_LINES),
    ("orders",),
    "positions from fills of decision orders, adjustments and corporate actions",
)
BROKER_BOOK = View(
    "broker_book",
    (BROKER_POSITIONS, BROKER_LINES, BROKER_ACCOUNT),
    ("orders",),
    "the latest broker sync plus broker fills after it",
)
AUDIT_INDEX = View(
    "audit_index",
    (AUDIT_DAYS,),
    ("local_book", "broker_book"),
    "trading day -> its notification ids, closing books and open orders",
    # A close holds both books and the ids of the orders open at it: a fill reversed days
    # later replays the book's earlier lines, and an order's status after an event
    # depends on its status before, so both must be as they were, not as the live views
    # hold them today.
    folded_with=("orders", "local_book", "broker_book"),
    revision=2,  # 2: each close lists the orders open at it
)
VIEWS: tuple[View, ...] = (ORDERS_VIEW, LOCAL_BOOK, BROKER_BOOK, AUDIT_INDEX)
VIEWS_BY_NAME = {view.name: view for view in VIEWS}
VIEW_NAMES = tuple(VIEWS_BY_NAME)

# The one broker account row: the view holds the latest sync only.
ACCOUNT_KEY = "latest"


def rebuilt_together(names: Sequence[str]) -> tuple[str, ...]:
    """The views a rebuild of `names` builds: those computed from them, and those any of
    them is folded with."""
    chosen = set(with_dependents(names))
    while True:
        wanted = set(with_dependents([*chosen, *(
            other for view in VIEWS if view.name in chosen for other in view.folded_with
        )]))
        if wanted == chosen:
            return tuple(name for name in VIEW_NAMES if name in chosen)
        chosen = wanted


def with_dependents(names: Sequence[str]) -> tuple[str, ...]:
    """The views to rebuild so that `names` are rebuilt and nothing built from them is stale."""
    chosen = set(names)
    grew = True
    while grew:
        grew = False
        for view in VIEWS:
            if view.name not in chosen and chosen.intersection(view.depends_on):
                chosen.add(view.name)
                grew = True
    return tuple(name for name in VIEW_NAMES if name in chosen)


# -- rows -----------------------------------------------------------------------------------


def _uuid_text(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def _uuid(value: str | None) -> UUID | None:
    return None if value is None else UUID(value)


def order_row(record: OrderRecord) -> Row:
    # Written once per order per page of a rebuild: plain conditionals, no helper calls.
    qty, notional, limit = record.qty, record.notional, record.limit_price
    decision, reconciliation = record.decision_id, record.reconciliation_id
    filled_qty, filled_value = record.filled_qty, record.filled_value
    return (
        record.key,
        record.client_order_id,
        record.purpose,
        None if decision is None else str(decision),
        None if reconciliation is None else str(reconciliation),
        record.symbol,
        record.side,
        None if qty is None else canonical(qty),
        None if notional is None else canonical(notional),
        record.order_type,
        record.time_in_force,
        None if limit is None else canonical(limit),
        record.status,
        record.broker,
        record.broker_order_id,
        canonical(filled_qty),
        canonical(filled_value),
        canonical(_divide(filled_value, filled_qty)) if filled_qty else None,
        record.error,
        record.requested_seq,
        record.requested_at.isoformat(),
        record.updated_seq,
        record.updated_at.isoformat(),
    )


def order_from_row(row: Row) -> OrderRecord:
    # The fields in `OrderRecord`'s order, which is the columns'; the average fill price
    # (column 17) is derived, not read back.
    return OrderRecord(
        UUID(row[0]), row[1], row[2], _uuid(row[3]), _uuid(row[4]), row[5], row[6],
        optional_parse(row[7]), optional_parse(row[8]), row[9], row[10], optional_parse(row[11]),
        row[12], row[13], row[14], Decimal(row[15]), Decimal(row[16]), row[18], row[19],
        datetime.fromisoformat(row[20]), row[21], datetime.fromisoformat(row[22]), key=row[0],
    )


def position_row(symbol: str, position: Position) -> Row:
    return (
        symbol,
        canonical(position.qty),
        canonical(position.avg_price),
        canonical(position.cost),
        canonical(position.realised_pnl),
    )


def position_from_row(row: Row) -> tuple[str, Position]:
    # The average is derived from the cost basis: the exact cost is what the fold carries on.
    return row[0], Position(Decimal(row[1]), Decimal(row[3]), Decimal(row[4]))


def line_row(symbol: str, line: Line) -> Row:
    return (
        symbol,
        line.seq,
        line.n,
        line.kind,
        canonical(line.qty),
        canonical(line.price),
        "1" if line.ratio is ONE else canonical(line.ratio),
        line.ref,
    )


def line_from_row(row: Row) -> Line:
    # Rows are selected without their symbol: (seq, n, kind, qty, price, ratio, ref).
    return Line(row[0], row[1], row[2], Decimal(row[3]), Decimal(row[4]), Decimal(row[5]), row[6])


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def account_row(account: BrokerAccountState) -> Row:
    return (
        ACCOUNT_KEY,
        str(account.snapshot_id),
        account.snapshot_seq,
        account.broker,
        account.account_id,
        1 if account.paper else 0,
        canonical(account.cash),
        canonical(account.equity),
        canonical(account.buying_power),
        account.broker_time.isoformat(),
        account.synced_at.isoformat(),
        canonical_json(account.open_orders),
    )


def account_from_row(row: Row) -> BrokerAccountState:
    return BrokerAccountState(
        snapshot_id=UUID(row[1]),
        snapshot_seq=row[2],
        broker=row[3],
        account_id=row[4],
        paper=bool(row[5]),
        cash=Decimal(row[6]),
        equity=Decimal(row[7]),
        buying_power=Decimal(row[8]),
        broker_time=datetime.fromisoformat(row[9]),
        synced_at=datetime.fromisoformat(row[10]),
        open_orders=json.loads(row[11]),
    )


def day_row(day: AuditDay) -> Row:
    return (day.day.isoformat(), day.first_seq, day.last_seq, day.events, day.closing)


def day_from_row(row: Row) -> AuditDay:
    return AuditDay(date.fromisoformat(row[0]), row[1], row[2], row[3], row[4])
