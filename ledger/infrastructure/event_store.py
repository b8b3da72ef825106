"""The event store: eventsourcing's `Application`, tuned for the ledger's saves, with the
reads of the log that every part of the ledger shares.

The tuning stays within what the library stores: the same rows, the same bytes. A save
of thousands of events (a sync, a reconciliation's plan) spends its time in Python per
event, so `save` tells aggregates from events by class, a large save pauses the cycle
collector, the transcoder encodes each value in one call, and PostgreSQL receives the rows
in binary or by COPY (`ledger.infrastructure.recording`).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import BaseAggregate
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Notification,
    Recording,
    Transcoder,
    UUIDAsHex,
)
from eventsourcing.utils import get_topic

from ledger.domain import BrokerSnapshot, Order, Reconciliation
from ledger.infrastructure.collector import CollectorPaused
from ledger.infrastructure.event_log import StoredEvent, newest_first
from ledger.infrastructure.recording import DateAsISO, LedgerTranscoder, insert_in_binary

# A save that meets another writer is mapped again on fresh aggregates, this often.
SAVE_ATTEMPTS = 3
# A save of at least this many events runs with the cycle collector paused: it makes a
# stored event, a notification and a recording per event, none in a cycle.
PAUSE_COLLECTOR_FROM = 500

SYNCED_TOPIC = get_topic(BrokerSnapshot.Synced)
_STARTED_TOPIC = get_topic(Reconciliation.Started)


class EventStore(Application[UUID]):
    # The PostgreSQL tables are named after the application: tradeledger_events.
    name = "TradeLedger"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        insert_in_binary(self.recorder)

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """`Application.save`, with aggregates told apart from events by their class.

        eventsourcing asks `isinstance(obj, DomainEventProtocol)` of every object saved: a
        runtime-checkable Protocol, which Python 3.11 answers by walking the protocol's
        attributes on every call (a large share of a sync that brings thousands of fills:
        docs/performance.md). The library offers no hook for that one question, so the
        rest is its own `save`, step by step, through the methods its `save` calls."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, BaseAggregate):
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            else:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        with CollectorPaused(when=len(processing_event.events) >= PAUSE_COLLECTOR_FROM):
            recordings = self._record(processing_event)
            self._take_snapshots(processing_event)
            self._notify(recordings)
            self.notify(processing_event.events)  # deprecated, but the library still calls it
        return recordings

    def construct_transcoder(self) -> Transcoder:
        # The library's JSON, written with fewer Python calls per value (same bytes).
        transcoder = LedgerTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        # Decimal is stored as its exact string (DecimalAsStr), datetimes as ISO 8601
        # with their offset, UUIDs as hex: nothing passes through a float. These are
        # eventsourcing's own transcodings; `test_decimal_round_trip` holds them to it.
        transcoder.register(UUIDAsHex())
        transcoder.register(DecimalAsStr())
        transcoder.register(DatetimeAsISO())
        transcoder.register(DateAsISO())

    # -- aggregates ------------------------------------------------------------------

    def get_order(self, order_id: UUID) -> Order:
        return self.repository.get(order_id)

    def load_order(self, order_id: UUID) -> Order | None:
        try:
            order: Order = self.repository.get(order_id)
        except AggregateNotFoundError:
            return None
        return order

    def has_aggregate(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self.repository

    # -- the log -------------------------------------------------------------------

    def last_notification_id(self) -> int:
        return self.recorder.max_notification_id() or 0

    def stored_event(self, notification: Notification) -> StoredEvent:
        return StoredEvent(notification.id, self.mapper.to_domain_event(notification))

    def events_after(self, notification_id: int, limit: int) -> Iterator[StoredEvent]:
        for notification in self.recorder.select_notifications(
            start=notification_id, limit=limit, inclusive_of_start=False
        ):
            yield self.stored_event(notification)

    def newest_events(self, limit: int) -> list[StoredEvent]:
        """The last `limit` events of the store, oldest first."""
        if limit <= 0:
            return []
        newest = islice(newest_first(self.recorder, first=limit, largest=None), limit)
        return [self.stored_event(n) for n in reversed(list(newest))]

    def newest_of(self, topic: str) -> Iterator[Notification]:
        """The events of one topic, newest first, read back only as far as the caller reads."""
        return newest_first(self.recorder, topics=[topic])

    def latest_sync(self) -> BrokerSnapshot | None:
        """The newest broker snapshot, found from the end of the log (syncs are frequent)."""
        newest = next(self.newest_of(SYNCED_TOPIC), None)
        if newest is None:
            return None
        snapshot: BrokerSnapshot = self.repository.get(newest.originator_id)
        return snapshot

    def recent_reconciliations(
        self, limit: int, *, include_dry_runs: bool = True
    ) -> list[Reconciliation]:
        """The newest reconciliation runs, newest first."""
        ids: list[UUID] = []
        for notification in self.newest_of(_STARTED_TOPIC):
            if len(ids) >= limit:
                break
            # A run's start says whether it was a dry run: only the runs asked for are
            # loaded (a plan holds a row per symbol held, so a run is costly to load).
            if include_dry_runs or not self.mapper.to_domain_event(notification).dry_run:
                ids.append(notification.originator_id)
        return [self.repository.get(run_id) for run_id in ids]
