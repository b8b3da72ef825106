"""Named crash points, so tests can kill a real process at an exact step.

`LEDGER_FAILPOINT=name` makes the process SIGKILL itself when it reaches `failpoint(name)`:
no cleanup, no flush, exactly like a power cut or the OOM killer. Unset, a failpoint
costs one dictionary look-up.
"""

from __future__ import annotations

import os
import signal

ENV = "LEDGER_FAILPOINT"


def failpoint(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
