"""``python -m sandbox``: serve the Alpaca sandbox until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

import sandbox
from sandbox import control
from sandbox.server import AlpacaSandbox
from sandbox.state import DEFAULT_CASH, DEFAULT_KEY, DEFAULT_SECRET

DEFAULT_PORT = 8765


def main(argv: list[str] | None = None) -> int:
    # --help prints the whole documentation: the API served and the control API.
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description=f"{sandbox.__doc__}\n{control.__doc__}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--key", default=None, help="API key id (env ALPACA_API_KEY)")
    parser.add_argument("--secret", default=None, help="API secret (env ALPACA_SECRET_KEY)")
    parser.add_argument("--cash", default=str(DEFAULT_CASH))
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    key = args.key or os.environ.get("ALPACA_API_KEY") or DEFAULT_KEY
    secret = args.secret or os.environ.get("ALPACA_SECRET_KEY") or DEFAULT_SECRET

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server = AlpacaSandbox(
        key, secret, host=args.host, port=args.port, cash=args.cash, verbose=args.verbose
    )
    try:
        server.start()
    except OSError as error:
        print(f"alpaca sandbox: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    print(f"Alpaca sandbox listening on {server.base_url}", flush=True)
    # A timed wait keeps the main thread responsive to signals.
    while not stopping.wait(0.2):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
