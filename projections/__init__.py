"""The read side: views folded from events, kept current, rebuilt and verified.

Callers need little more than this:

    from projections import catch_up
    views = catch_up(ledger, timezone=settings.timezone)   # every view at the newest event
    views.local_book(); views.broker_book(); views.diff(); views.orders(open_only=True)

and, for the pure folds a test or an audit calls without a database, `projections.model.positions`
(positions, lines, netting), `projections.model.fold` (the fold over whole events, each
doing what `projections.model.catalogue` says) and `projections.engine.memory_fold` (that
fold with its lines and audit days in memory).
"""

from projections.engine.audit_index import AuditDay
from projections.engine.day_replay import DayReplay, replay_day
from projections.engine.memory_fold import MemoryFold, fold_events
from projections.engine.rebuilder import RebuildReport, UnknownProjection, rebuild
from projections.engine.tables import VIEW_NAMES
from projections.model.fold import FoldState
from projections.model.positions import DiffRow, Position, apply_ratio, apply_trade, fold_trades
from projections.model.records import OrderRecord
from projections.queries.as_of import BooksAt, books_at
from projections.queries.views import BrokerBook, PositionRow, Views, catch_up

__all__ = [
    "VIEW_NAMES",
    "AuditDay",
    "BooksAt",
    "BrokerBook",
    "DayReplay",
    "DiffRow",
    "FoldState",
    "MemoryFold",
    "OrderRecord",
    "Position",
    "PositionRow",
    "RebuildReport",
    "UnknownProjection",
    "Views",
    "apply_ratio",
    "apply_trade",
    "books_at",
    "catch_up",
    "fold_events",
    "fold_trades",
    "rebuild",
    "replay_day",
]
