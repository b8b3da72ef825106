"""The event catalogue knows every event class of every aggregate in ledger.domain, and an event
it does not know stops the fold instead of being dropped without a word."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from eventsourcing.domain import Aggregate, AggregateCreated, DomainEvent

import ledger.domain
from ledger.domain import Order
from projections.model.catalogue import (
    CATALOGUE,
    STAMPED_EVENTS,
    STATUS_ONLY_EVENTS,
    BookEffect,
    Stamp,
    UnknownEvent,
)
from projections.model.fold import FoldState


def aggregates() -> Iterator[type[Aggregate]]:
    """Every aggregate class defined in a module of ledger.domain."""
    for info in pkgutil.iter_modules(ledger.domain.__path__):
        module = importlib.import_module(f"{ledger.domain.__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Aggregate)
                and value.__module__ == module.__name__
            ):
                yield value


def event_classes(aggregate: type[Aggregate]) -> list[type]:
    """The event classes nested in an aggregate that it can record: all but its base `Event`
    and, when its `__init__` names its own creation event, the library's default `Created`."""
    nested = [
        value
        for value in vars(aggregate).values()
        if isinstance(value, type) and issubclass(value, DomainEvent)
    ]
    created = [cls for cls in nested if issubclass(cls, AggregateCreated)]
    return [
        cls
        for cls in nested
        if cls is not aggregate.Event and not (len(created) > 1 and cls.__name__ == "Created")
    ]


def every_event_class() -> list[type]:
    return [cls for aggregate in aggregates() for cls in event_classes(aggregate)]


def test_the_walk_finds_every_aggregate() -> None:
    names = {aggregate.__name__ for aggregate in aggregates()}
    assert names == {
        "Adjustment", "BrokerSnapshot", "CorporateAction", "Decision", "Drift", "Order",
        "Reconciliation", "ReconciliationLock",
    }
    assert Order.Requested in every_event_class() and Order.Created not in every_event_class()


def test_every_event_class_of_every_aggregate_is_in_the_catalogue() -> None:
    missing = [
        f"{cls.__module__}:{cls.__qualname__}" for cls in every_event_class()
        if cls not in CATALOGUE
    ]
    assert not missing, f"add these to projections/model/catalogue.py: {missing}"


def test_the_catalogue_holds_only_event_classes_of_the_domain() -> None:
    stale = set(CATALOGUE) - set(every_event_class())
    assert not stale, stale


def test_what_the_tables_derived_from_the_catalogue_hold() -> None:
    assert set(STATUS_ONLY_EVENTS) == {Order.Accepted, Order.Completed, Order.Canceled,
                                       Order.Expired}
    # Events that change no view are carried as stamps; none of them moves a book.
    assert all(CATALOGUE[cls].book is BookEffect.NONE for cls in STAMPED_EVENTS)
    assert not set(STAMPED_EVENTS) & {cls for cls, kind in CATALOGUE.items() if kind.of_order}


def test_an_event_the_catalogue_lacks_stops_the_fold() -> None:
    class Unlisted(Order.Event):
        pass

    state = FoldState(ZoneInfo("America/New_York"))
    with pytest.raises(UnknownEvent, match="Unlisted"):
        state.apply(1, Stamp(uuid4(), 1, datetime.now(UTC), Unlisted))
