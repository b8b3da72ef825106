"""Wiring: settings -> event store and broker router -> the `Ledger` service object."""

from __future__ import annotations

import os
import sqlite3
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

from eventsourcing.persistence import PersistenceError

from ledger.application import Ledger
from ledger.brokers.paper import PaperBroker
from ledger.brokers.port import BrokerAdapter
from ledger.brokers.router import BrokerRouter
from ledger.infrastructure.store import StoreUnavailable, parse_database_url, prepare_postgres
from ledger.settings import Settings


def make_adapter(settings: Settings) -> BrokerAdapter:
    if settings.broker_provider == "alpaca":
        from ledger.brokers.alpaca.broker import AlpacaBroker

        return AlpacaBroker.from_settings(settings)
    return PaperBroker()


def open_ledger(settings: Settings, adapter: BrokerAdapter | None = None) -> Ledger:
    """Open the event store named by LEDGER_DATABASE_URL, with the router BROKER_PROVIDER picks."""
    config = parse_database_url(settings.database_url.get_secret_value())
    if config.dialect == "sqlite":
        timeout = str(settings.sqlite_lock_timeout_seconds)
        config = replace(config, env={**config.env, "SQLITE_LOCK_TIMEOUT": timeout})
    router = BrokerRouter(adapter or make_adapter(settings))
    setup = prepare_postgres(config) if config.dialect == "postgres" else nullcontext()
    try:
        with setup:
            return Ledger(env=config.env, router=router)
    except (PersistenceError, sqlite3.Error, OSError) as error:
        lines = str(error).strip().splitlines()
        cause = config.scrub(lines[0]) if lines else ""
        hint = sqlite_hint(config.env["SQLITE_DBNAME"]) if config.dialect == "sqlite" else ""
        raise StoreUnavailable(
            f"Cannot open the event store at {config.display}: "
            f"{cause or type(error).__name__}{hint}"
        ) from None


def sqlite_hint(name: str) -> str:
    """What the file system says about a SQLite file that would not open: SQLite itself
    reports a full disk or a read-only mount as "disk I/O error" or "unable to open"."""
    if name == ":memory:" or name.startswith("file:"):
        return ""
    path = Path(name).expanduser()
    folder = path.parent
    try:
        stats = os.statvfs(folder)
    except OSError:
        return ""
    if stats.f_blocks == 0:
        # /proc, /sys and the like report no blocks at all: no disk to fill, no file to make.
        return f" ({folder} is on a virtual file system, not a disk: choose a folder on a disk)"
    if stats.f_flag & os.ST_RDONLY:
        return f" ({folder} is on a read-only file system)"
    if stats.f_bavail * stats.f_frsize < 64 * 1024:
        return f" (the disk holding {folder} is full: free some space)"
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f" ({path} or its folder is not writable)"
    return ""
