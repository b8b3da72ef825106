"""The read side: views folded from events, kept current, rebuilt and verified.

Callers need little more than this:

    from projections import catch_up
    views = catch_up(ledger, timezone=settings.timezone)   # every view at the newest event
    views.local_book(); views.broker_book(); views.diff(); views.orders(open_only=True)

and, for the pure folds a test or an audit calls without a database, `projections.model.positions`
(positions, lines, netting) and `projections.model.fold` (the fold over whole events).
"""

from projections.engine.audit_index import DayReplay, replay_day
from projections.engine.rebuilder import RebuildReport, UnknownProjection, rebuild
from projections.engine.tables import VIEW_NAMES
from projections.model.fold import AuditDay, FoldState, MemoryFold, OrderRecord, fold_events
from projections.model.positions import DiffRow, Position, apply_ratio, apply_trade, fold_trades
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
