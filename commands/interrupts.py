"""Ctrl-C and SIGTERM while a command talks to the broker.

The first signal asks the run to stop (`ledger.services.stopping.StopRequest`): the broker call in
flight finishes or times out and its answer is recorded, nothing more is sent, the lock is
released, and the command says what was sent and what was not. A second signal forces the
exit at once; an order then in flight stays "outcome unknown" for the next run to settle.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from ledger.services.stopping import StopRequest

_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    stop = StopRequest()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            raise KeyboardInterrupt  # the second signal: leave now
        stop.request(f"interrupted by {_NAMES.get(signal.Signals(signum), signum)}")
        print(
            "Stopping: the broker call in flight is finished and recorded, nothing more is "
            "sent (press Ctrl-C again to leave at once).",
            file=sys.stderr,
            flush=True,
        )

    previous = {sig: signal.signal(sig, on_signal) for sig in _NAMES}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
