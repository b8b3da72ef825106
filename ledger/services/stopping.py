"""A person's request to stop (SIGINT, SIGTERM), as the service layer sees it.

The entry points turn signals into `StopRequest.request`; a run asks `check` before every
step that would reach the broker, so what is in flight finishes (or times out) and is
recorded, and nothing more is sent.
"""

from __future__ import annotations

import threading


class Interrupted(Exception):
    """A stop was requested: nothing more is sent."""


class StopRequest:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def request(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Interrupted(self.reason)
