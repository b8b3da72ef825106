"""Errors a user can act on: one line naming the problem and the fix, and an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2


class CommandError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code
