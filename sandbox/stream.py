"""Alpaca's ``trade_updates`` stream: a WebSocket at ``/stream`` on the sandbox's own HTTP
port, as ``wss://paper-api.alpaca.markets/stream`` sits beside the paper REST API (so a
stream URL derived from the base URL, http -> ws and path ``/stream``, finds it).

What Alpaca documents (docs.alpaca.markets/docs/websocket-streaming) and this module does:

- RFC 6455: the opening handshake, then frames; the server's are unmasked, the client's
  masked; ping is answered with pong, close with close.
- ``{"action": "authenticate", "data": {"key_id", "secret_key"}}`` is answered with
  ``{"stream": "authorization", "data": {"action": "authenticate", "status":
  "authorized"}}`` (or ``"unauthorized"``, after which the sandbox closes the connection).
- ``{"action": "listen", "data": {"streams": ["trade_updates"]}}`` is answered with
  ``{"stream": "listening", "data": {"streams": [...the known ones asked for...]}}``; an
  empty list stops the updates.
- Every order change is sent as ``{"stream": "trade_updates", "data": {"event",
  "timestamp", "order", ...}}``: ``order`` is the REST API's order JSON at that moment; fills
  and partial fills add ``execution_id``, ``price``, ``qty`` and ``position_qty`` (decimal
  strings, as Alpaca sends them). Events: ``new`` (``accepted`` for an order queued while the
  market is closed, then ``new`` when it opens), ``partial_fill``, ``fill``, ``canceled``,
  ``expired``, ``rejected``, ``replaced``.
- "The trade_updates stream coming from wss://paper-api.alpaca.markets/stream uses binary
  frames, which differs from the text frames that comes from the
  wss://data.alpaca.markets/stream stream" (the same page): every message the sandbox sends
  is a binary frame holding UTF-8 JSON.

A fill's ``execution_id`` is the uuid after ``::`` in its FILL activity's id, so an update
and a later poll of the activities name the same execution.

Each connection has its own send queue and thread: an update is queued under the
sandbox's lock (so updates leave in the order the changes happened) and written by that
thread, so a slow or stalled client never holds up a REST request.

Faults for tests: ``drop_stream_connections()`` hangs up on every stream socket at once
(no close frame, as a dying network does); ``set_stream_faults(delay_ms, duplicate_next,
refuse_auth)`` holds each update ``delay_ms`` before it is sent, sends each of the next
``duplicate_next`` updates twice, and refuses every authentication. ``stream_emitted()``
logs every update the sandbox produced, with ``time.time_ns()`` when it was handed to the
connections (whether or not any was listening).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, BinaryIO

from sandbox import shapes
from sandbox.model import Fill, Order
from sandbox.state import SandboxState
from sandbox.wire import SandboxError, dumps, fmt, iso

STREAM_PATH = "/stream"
KNOWN_STREAMS = ("trade_updates",)
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
MAX_MESSAGE = 1 << 20  # a client only sends small JSON commands

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(client_key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    digest = hashlib.sha1((client_key.strip() + WS_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def encode_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One final, unmasked frame: a server never masks (RFC 6455 5.1)."""
    size = len(payload)
    head = bytes([0x80 | opcode])
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + size.to_bytes(2, "big")
    else:
        head += bytes([127]) + size.to_bytes(8, "big")
    return head + payload


class ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _read_exactly(rfile: BinaryIO, size: int) -> bytes:
    data = rfile.read(size) if size else b""
    if len(data) != size:
        raise EOFError
    return data


def read_frame(rfile: BinaryIO) -> tuple[bool, int, bytes]:
    """(fin, opcode, unmasked payload) of the next client frame."""
    first, second = _read_exactly(rfile, 2)
    if first & 0x70:
        raise ProtocolError(1002, "reserved bits set without an extension")
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(_read_exactly(rfile, 2), "big")
    elif size == 127:
        size = int.from_bytes(_read_exactly(rfile, 8), "big")
    if not second & 0x80:
        raise ProtocolError(1002, "client frames must be masked")
    if size > MAX_MESSAGE:
        raise ProtocolError(1009, "message too big")
    mask = _read_exactly(rfile, 4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(_read_exactly(rfile, size)))
    return bool(first & 0x80), first & 0x0F, payload


@dataclass
class StreamFaults:
    delay_ms: int = 0
    duplicate_next: int = 0
    refuse_auth: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "delay_ms": self.delay_ms,
            "duplicate_next": self.duplicate_next,
            "refuse_auth": self.refuse_auth,
        }


@dataclass
class _Outgoing:
    frame: bytes
    due_ns: int = 0  # hold until time.monotonic_ns() reaches it (the delay fault)
    copies: int = 1  # 2 under the duplicate fault
    close_after: bool = False


@dataclass(eq=False)
class StreamConnection:
    """One WebSocket client: its socket, what it has done, and its sender thread."""

    sock: socket.socket
    peer: str
    authenticated: bool = False
    streams: tuple[str, ...] = ()
    closed: bool = False
    close_sent: bool = False
    outbox: queue.SimpleQueue[_Outgoing | None] = field(default_factory=queue.SimpleQueue)
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def listening(self) -> bool:
        return self.authenticated and "trade_updates" in self.streams and not self.closed

    def write(self, frame: bytes) -> bool:
        """Send one frame now; False once the socket is gone."""
        try:
            with self.write_lock:
                self.sock.sendall(frame)
            return True
        except OSError:
            self.closed = True
            return False

    def send_loop(self) -> None:
        while True:
            item = self.outbox.get()
            if item is None or self.closed:
                return
            wait = item.due_ns - time.monotonic_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            for _ in range(item.copies):
                if not self.write(item.frame):
                    return
            if item.close_after:
                # the client answers with its own close frame, which ends the reader
                self.send_close(1008, "unauthorized")
                return

    def send_close(self, code: int, reason: str = "") -> None:
        """The closing handshake's frame, once (RFC 6455 5.5.1: nothing is sent after it)."""
        if not self.close_sent:
            self.close_sent = True
            self.write(encode_frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode()))

    def hang_up(self) -> None:
        """Shut the socket both ways: the reader sees EOF, the client a dead connection."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.outbox.put(None)


def message(payload: dict[str, Any]) -> bytes:
    """A server message: JSON in a binary frame, as the paper endpoint sends them."""
    return encode_frame(OP_BINARY, dumps(payload).encode("utf-8"))


class Streaming(SandboxState):
    """The ``/stream`` endpoint's state: connections, stream faults, the emitted log; and
    the hook every order change calls."""

    def __init__(self, key: str, secret: str, cash: Decimal | str | int) -> None:
        # Connections outlive reset(): they are transport, not account state.
        self._stream_lock = threading.Lock()
        self._stream_conns: list[StreamConnection] = []
        super().__init__(key, secret, cash)

    def _reset_state(self, cash: Decimal) -> None:
        with self._lock:
            super()._reset_state(cash)
            self._stream_faults = StreamFaults()
            self._stream_log: list[dict[str, Any]] = []

    # -------------------------------------------------------------------- control

    def drop_stream_connections(self) -> int:
        """Hang up on every stream connection at once, without a close frame; how many."""
        with self._stream_lock:
            conns, self._stream_conns = self._stream_conns, []
        for conn in conns:
            conn.hang_up()
        return len(conns)

    def set_stream_faults(
        self, delay_ms: int = 0, duplicate_next: int = 0, refuse_auth: bool = False
    ) -> dict[str, Any]:
        """Replace the stream faults: hold each update ``delay_ms`` before sending it, send
        each of the next ``duplicate_next`` updates twice, refuse every authentication."""
        if isinstance(delay_ms, bool) or not 0 <= int(delay_ms) <= 600_000:
            raise SandboxError(422, 40010001, "delay_ms must be from 0 to 600000")
        if isinstance(duplicate_next, bool) or int(duplicate_next) < 0:
            raise SandboxError(422, 40010001, "duplicate_next must be 0 or more")
        if not isinstance(refuse_auth, bool):
            raise SandboxError(422, 40010001, "refuse_auth must be a boolean")
        with self._lock:
            self._stream_faults = StreamFaults(int(delay_ms), int(duplicate_next), refuse_auth)
            return self._stream_faults.to_json()

    def stream_faults(self) -> dict[str, Any]:
        with self._lock:
            return self._stream_faults.to_json()

    def stream_emitted(self) -> list[dict[str, Any]]:
        """Every update produced, oldest first: ``{"at_ns": time.time_ns() when it was
        handed to the connections, "event", "order_id", "execution_id"}``."""
        with self._lock:
            return [dict(entry) for entry in self._stream_log]

    def stream_connections(self) -> list[dict[str, Any]]:
        """The open stream connections: whether each is authenticated, what it listens to."""
        with self._stream_lock:
            return [
                {"peer": c.peer, "authenticated": c.authenticated, "streams": list(c.streams)}
                for c in self._stream_conns
                if not c.closed
            ]

    # ------------------------------------------------------------------- internal

    def _order_event(self, event: str, order: Order, fill: Fill | None = None) -> None:
        """Queue a ``trade_updates`` message for an order change to every listener.

        Called under the sandbox's lock by whatever changed the order, so messages are
        built from the order as it is now and queued in the order the changes happened.
        """
        data: dict[str, Any] = {"event": event}
        if fill is not None:
            data["execution_id"] = fill.activity_id.rpartition("::")[2]
        data["order"] = shapes.order_json(order)
        if fill is not None:
            data["timestamp"] = iso(fill.at)
            data["price"] = fmt(fill.price)
            data["qty"] = fmt(fill.qty)
            data["position_qty"] = fmt(self._held(order.symbol))
        else:
            data["timestamp"] = iso(order.updated_at)
        frame = message({"stream": "trade_updates", "data": data})
        # taken before the update is queued, so no client can hold it before this instant
        sent_ns = time.time_ns()
        faults = self._stream_faults
        copies = 1
        if faults.duplicate_next > 0:
            faults.duplicate_next -= 1
            copies = 2
        due = time.monotonic_ns() + faults.delay_ms * 1_000_000 if faults.delay_ms else 0
        outgoing = _Outgoing(frame, due, copies)
        with self._stream_lock:
            for conn in self._stream_conns:
                if conn.listening:
                    conn.outbox.put(outgoing)
        self._stream_log.append(
            {
                "at_ns": sent_ns,
                "event": event,
                "order_id": order.id,
                "execution_id": data.get("execution_id"),
            }
        )

    def _serve_stream(self, sock: socket.socket, rfile: BinaryIO, peer: str) -> None:
        """Run one WebSocket connection, after the handshake, until it ends."""
        conn = StreamConnection(sock, peer)
        sender = threading.Thread(
            target=conn.send_loop, name=f"sandbox-stream-send {peer}", daemon=True
        )
        sender.start()
        with self._stream_lock:
            self._stream_conns.append(conn)
        try:
            self._read_loop(conn, rfile)
        except ProtocolError as error:
            conn.send_close(error.code, error.reason)
        except (EOFError, OSError, ValueError):
            pass  # the client went away, or drop_stream_connections() hung up
        finally:
            conn.hang_up()
            with self._stream_lock:
                if conn in self._stream_conns:
                    self._stream_conns.remove(conn)
            sender.join(timeout=1)

    def _read_loop(self, conn: StreamConnection, rfile: BinaryIO) -> None:
        pieces: list[bytes] = []
        while not conn.closed:
            fin, opcode, payload = read_frame(rfile)
            if opcode == OP_PING:
                conn.write(encode_frame(OP_PONG, payload))
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                # echo the status code back (RFC 6455 5.5.1)
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1000
                conn.send_close(code)
                return
            if opcode not in (OP_CONT, OP_TEXT, OP_BINARY):
                raise ProtocolError(1002, "unknown opcode")
            pieces.append(payload)
            if sum(len(p) for p in pieces) > MAX_MESSAGE:
                raise ProtocolError(1009, "message too big")
            if fin:
                text, pieces = b"".join(pieces), []
                self._on_message(conn, text)

    def _on_message(self, conn: StreamConnection, raw: bytes) -> None:
        try:
            msg = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            msg = None
        action = msg.get("action") if isinstance(msg, dict) else None
        data = msg.get("data") if isinstance(msg, dict) else None
        data = data if isinstance(data, dict) else {}
        if action == "authenticate":
            with self._lock:
                refuse = self._stream_faults.refuse_auth
            # compare both, always, so a wrong key and a wrong secret look alike
            good = (data.get("key_id") == self.key) & (data.get("secret_key") == self.secret)
            status = "authorized" if good and not refuse else "unauthorized"
            answer = {"action": "authenticate", "status": status}
            reply = {"stream": "authorization", "data": answer}
            conn.authenticated = status == "authorized"
            conn.outbox.put(_Outgoing(message(reply), close_after=not conn.authenticated))
        elif action == "listen":
            if not conn.authenticated:
                # Listening before authenticating: the docs show no reply for it; the
                # sandbox says "unauthorized" in the authorization message's shape.
                refused = {"action": "listen", "status": "unauthorized"}
                conn.outbox.put(_Outgoing(message({"stream": "authorization", "data": refused})))
                return
            asked = data.get("streams")
            wanted = tuple(s for s in KNOWN_STREAMS if isinstance(asked, list) and s in asked)
            # Under the sandbox's lock, so no update falls between the acknowledgement and
            # the first update this connection is sent.
            with self._lock, self._stream_lock:
                ack = {"stream": "listening", "data": {"streams": list(wanted)}}
                conn.outbox.put(_Outgoing(message(ack)))
                conn.streams = wanted
        # Anything else is ignored: Alpaca documents no reply to it.
