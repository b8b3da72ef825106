"""The sandbox as a server: `AlpacaSandbox` puts the layers together (state, activities,
account, market, orders, the API routes; faults and the trade_updates stream beside them),
serves them over HTTP on a daemon thread, and sends ``/_sandbox/...`` to the control API,
a WebSocket upgrade of ``/stream`` to the stream, and the rest to the API."""

from __future__ import annotations

import socket
import threading
import time
import traceback
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox import control, shapes
from sandbox.api import Api
from sandbox.faults import PRE_FAULTS, FaultInjection, distort, fault_reply
from sandbox.state import DEFAULT_CASH, DEFAULT_KEY, DEFAULT_SECRET
from sandbox.stream import STREAM_PATH, Streaming, accept_key
from sandbox.wire import Reply, public


class AlpacaSandbox(Api, FaultInjection, Streaming):
    """The sandbox: in-memory account state, the v2 API, the control API, a server.

    All state sits behind one re-entrant lock; the HTTP server answers each connection
    on its own thread. The Python control methods and the ``/_sandbox/`` endpoints are the
    same operations.
    """

    def __init__(
        self,
        key: str = DEFAULT_KEY,
        secret: str = DEFAULT_SECRET,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cash: Decimal | str | int = DEFAULT_CASH,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.verbose = verbose
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        super().__init__(key, secret, cash)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> AlpacaSandbox:
        """Serve on a daemon thread; ``port=0`` (the default) picks a free port."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.sandbox = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, name="alpaca-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        # stream connections live on their handler threads; end them with the server
        self.drop_stream_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> AlpacaSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Root URL without ``/v2``: alpaca-py appends ``/v2/...`` to ``url_override``."""
        return f"http://{self.host}:{self.port}"

    @property
    def stream_url(self) -> str:
        """The trade_updates WebSocket, for TradingStream's ``url_override``."""
        return f"ws://{self.host}:{self.port}{STREAM_PATH}"

    # ----------------------------------------------------------------- requests

    def state(self) -> dict[str, Any]:
        """Everything, in API shapes: account, positions, orders, activities, and more."""
        with self._lock:
            return {
                "account": self._account_json(),
                "positions": [self._position_json(p) for p in self._positions.values()],
                "orders": [
                    {**shapes.order_json(o), "_origin": o.origin} for o in self._orders.values()
                ],
                "activities": [public(a) for a in self._sorted_activities()],
                "symbols": self.symbols(),
                "clock": self._clock_json(),
                "faults": self.faults(),
            }

    def symbols(self) -> dict[str, dict[str, Any]]:
        """Every symbol's configuration, by symbol."""
        with self._lock:
            return {s: shapes.symbol_json(c) for s, c in self._symbols.items()}

    def handle_api(
        self, method: str, path: str, query: dict[str, str], raw: bytes, headers: Any
    ) -> Reply:
        """One API request end to end: log, faults, auth, routing."""
        entry, delay, fault = self._admit(method, path, query, raw)
        if delay:
            time.sleep(delay)  # outside the lock: other requests carry on
        if fault is not None and fault.kind in PRE_FAULTS:
            reply = fault_reply(fault)
        else:
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)  # outside the lock: other requests carry on
            reply = self._route(method, path, query, raw, headers)
            if fault is not None:
                reply = distort(fault, reply)
        self._answered(entry, reply)
        return reply

    def handle_control(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Reply:
        return control.handle(self, method, path, query, raw)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: AlpacaSandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' pooled sessions expect
    # Headers and body go out in separate writes; without this, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every reply.
    disable_nagle_algorithm = True
    server: _Server
    server_version = "alpaca-sandbox/1.0"

    def do_GET(self) -> None:
        if self._is_stream_upgrade():
            self._serve_stream()
            return
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox.verbose:
            super().log_message(format, *args)

    def _is_stream_upgrade(self) -> bool:
        # Only a WebSocket upgrade of /stream: a plain GET /stream stays the API's 404.
        connection = {t.strip().lower() for t in (self.headers.get("Connection") or "").split(",")}
        return (
            urlsplit(self.path).path == STREAM_PATH
            and (self.headers.get("Upgrade") or "").lower() == "websocket"
            and "upgrade" in connection
        )

    def _serve_stream(self) -> None:
        """The RFC 6455 opening handshake (4.2.2), then the connection is the stream's."""
        self.close_connection = True  # no HTTP request follows on this socket
        key = self.headers.get("Sec-WebSocket-Key")
        if not key or self.headers.get("Sec-WebSocket-Version") != "13":
            self.send_response(400)
            self.send_header("Sec-WebSocket-Version", "13")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(key))
        self.end_headers()
        host, port = self.client_address[:2]
        self.server.sandbox._serve_stream(self.connection, self.rfile, f"{host}:{port}")

    def _handle(self) -> None:
        sandbox = self.server.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        method = self.command.upper()
        try:
            if split.path == "/_sandbox" or split.path.startswith("/_sandbox/"):
                reply = sandbox.handle_control(method, split.path, query, raw)
            else:
                reply = sandbox.handle_api(method, split.path, query, raw, self.headers)
        except Exception:
            traceback.print_exc()
            reply = Reply(500, {"code": 50010000, "message": "internal server error occurred"})
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        if reply.drop:
            # Hang up without a status line, as a dying proxy or a reset network would.
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        body = reply.body()
        try:
            self.send_response(reply.status)
            if body or reply.status != 204:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (say, its read timeout fired during a "slow" fault).
            self.close_connection = True
