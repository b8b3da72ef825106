"""Reading events in pages: whole, or light (events no view reads a field of as a `Stamp`).

Applying a page to the view tables is `projections.engine.writer`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from ledger.application import Ledger
from projections.model.catalogue import STAMPED_EVENTS, STATUS_ONLY_EVENTS, Stamp

Page = list[tuple[int, Any]]

# Large enough that per-page costs (a transaction, a few queries) vanish, small enough
# that a page of decoded events stays a few tens of megabytes.
DEFAULT_PAGE_SIZE = 10_000

# Views change on what orders, syncs, corporate actions and adjustments say; the other
# events only place themselves in the audit index.
STAMPED_TOPICS = {get_topic(cls): cls for cls in STAMPED_EVENTS}
# A fold also needs no more than a Stamp of an order's status events.
FOLD_STAMPED_TOPICS = {
    **STAMPED_TOPICS,
    **{get_topic(cls): cls for cls in STATUS_ONLY_EVENTS},
}
# eventsourcing's JSON transcoder writes the timestamp first, as an ISO string.
_TIMESTAMP_PREFIX = b'{"timestamp":{"_type_":"datetime_iso","_data_":"'


def stored_timestamp(state: bytes) -> str | None:
    """An event's timestamp as stored (ISO text), read from the start of its JSON state
    without decoding the rest; None if the state does not start with it (a cipher, say)."""
    if not state.startswith(_TIMESTAMP_PREFIX):
        return None
    start = len(_TIMESTAMP_PREFIX)
    end = state.find(b'"', start)
    return None if end < 0 else state[start:end].decode()


def read_page(
    ledger: Ledger,
    after: int,
    limit: int,
    stop: int | None = None,
    *,
    full: bool = True,
    statuses: bool = False,
) -> Page:
    """Up to `limit` events after notification `after` (and up to `stop`), decoded.

    With `full=False`, events in STAMPED_TOPICS come back as a `Stamp` read from the
    start of their stored state, skipping the decoding of fields no view uses (a
    decision's trades, a plan's rows): a rebuild is mostly decoding. With `statuses`
    too, so do an order's status-only events, for callers that only fold the page.
    """
    notifications = ledger.recorder.select_notifications(
        start=after, limit=limit, stop=stop, inclusive_of_start=False
    )
    decode = ledger.mapper.to_domain_event
    plain = ledger.mapper.cipher is None and ledger.mapper.compressor is None
    if full or not plain:
        return [(n.id, decode(n)) for n in notifications]
    stamped = FOLD_STAMPED_TOPICS if statuses else STAMPED_TOPICS
    page: Page = []
    for n in notifications:
        event_class = stamped.get(n.topic)
        stamp = None if event_class is None else _stamp(n, event_class)
        page.append((n.id, stamp if stamp is not None else decode(n)))
    return page


def _stamp(notification: Notification, event_class: type) -> Stamp | None:
    text = stored_timestamp(notification.state)
    if text is None:
        return None
    try:
        timestamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return Stamp(
        notification.originator_id, notification.originator_version, timestamp, event_class
    )


def pages(
    ledger: Ledger, after: int, limit: int, stop: int | None = None, **reading: bool
) -> Iterator[Page]:
    """Every page after notification `after`, in order; `reading`: `read_page`'s options.

    (Not on a thread beside the fold: under the GIL the two would only take turns. A
    long rebuild reads ahead in a second process instead: `projections.engine.read_ahead`.)
    """
    while True:
        page = read_page(ledger, after, limit, stop, **reading)
        if not page:
            return
        yield page
        after = page[-1][0]
