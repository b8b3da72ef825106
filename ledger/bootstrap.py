"""Wiring: settings -> event store and broker router -> the `Ledger` service object."""

from __future__ import annotations

import sqlite3

from eventsourcing.persistence import PersistenceError

from ledger.application import Ledger
from ledger.brokers.paper import PaperBroker
from ledger.brokers.port import BrokerAdapter
from ledger.brokers.router import BrokerRouter
from ledger.settings import Settings
from ledger.storage import StoreUnavailable, parse_database_url, prepare_postgres


def make_adapter(settings: Settings) -> BrokerAdapter:
    if settings.broker_provider == "alpaca":
        from ledger.brokers.alpaca import AlpacaBroker

        return AlpacaBroker.from_settings(settings)
    return PaperBroker()


def open_ledger(settings: Settings, adapter: BrokerAdapter | None = None) -> Ledger:
    """Open the event store named by LEDGER_DATABASE_URL, with the router BROKER_PROVIDER picks."""
    config = parse_database_url(settings.database_url.get_secret_value())
    if config.dialect == "postgres":
        prepare_postgres(config)
    router = BrokerRouter(adapter or make_adapter(settings))
    try:
        return Ledger(env=config.env, router=router)
    except (PersistenceError, sqlite3.Error, OSError) as error:
        lines = str(error).strip().splitlines()
        cause = config.scrub(lines[0]) if lines else ""
        raise StoreUnavailable(
            f"Cannot open the event store at {config.display}: {cause or type(error).__name__}"
        ) from None
