"""What one command invocation opens: settings and the ledger, lazily and once."""

from __future__ import annotations

from ledger.application import Ledger
from ledger.bootstrap import open_ledger
from ledger.infrastructure.store import parse_database_url
from ledger.settings import ConfigurationError, Settings, load_settings


class Session:
    def __init__(self) -> None:
        self._ledger: Ledger | None = None
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = open_ledger(self.settings)
        return self._ledger

    def scrub(self, text: str) -> str:
        """`text` without the database password, for messages about the store."""
        if self._settings is None:
            return text
        try:
            config = parse_database_url(self._settings.database_url.get_secret_value())
        except ConfigurationError:
            return text
        return config.scrub(text)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ledger is not None:
            self._ledger.close()
