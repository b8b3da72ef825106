"""One trading day's audit, from the events alone: what happened, in order, and how it left
both books. The CLI (`commands audit`) and the web page serve the same document:

    document = audit_document(views, date(2026, 1, 5), symbol=None)  # Decimal, datetime, UUID
    commands.output.print_json(document)                             # decimal strings in JSON

    {"day", "timezone", "starts_at", "ends_at",      # local midnights (23 or 25 h apart at DST)
     "symbol", "events", "first_seq", "last_seq",    # events: the day's count, before --symbol
     "timeline": [{TIMELINE_FIELDS..., "details": {...}}],   # one entry per event, in order
     "opening": {"local": [position], "broker": [position]},  # position: symbol, qty,
     "closing": {"local": [position], "broker": [position]},  #   avg_price, realised_pnl
     "broker_account": {"opening": account | None, "closing": account | None},
     "pnl": [{"symbol", "local", "broker"}], "pnl_total": {"local", "broker"},
     "pnl_notes": [{"symbol", "book", "execution_id", "text"}],  # what a figure leaves out
     "unresolved": {"open_orders": [order], "differences": [{"symbol", "local_qty",
                    "broker_qty", "open_qty", "delta"}]},
     "drift_windows": [{"drift_id", "began_at", "ended_at", "open", "symbols"}]}
                                # drifts that began or ended on the day (projections.queries.drift)

The day's events are read from the audit index (notification ids first_seq..last_seq) and
folded with the views' own `FoldState` by the one paged replay (`projections.engine.replay`),
starting from the previous day's closing books that the same fold stored in the index: the
cost is the day's events, plus a few reads per order the day touched and per order open at
the day's start (the previous close lists their ids).

This is `projections.engine.day_replay.replay_day` with one difference: an order the day
touches but requested earlier is loaded as it stood when the day began (its own stream
folded up to the version before its first event that day), not as the orders view holds it
today, so each event's status and filled quantity are the day's (`orders`). How realised
P&L is counted per book is in `pnl`.
"""

from projections.model.timeline import TIMELINE_FIELDS
from projections.queries.audit.day import DaySpan, day_span, listed_days, parse_day
from projections.queries.audit.document import audit_document

__all__ = [
    "TIMELINE_FIELDS",
    "DaySpan",
    "audit_document",
    "day_span",
    "listed_days",
    "parse_day",
]
