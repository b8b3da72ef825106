"""The sandbox's trade_updates stream, read by alpaca-py's own TradingStream (and, where the
wire itself is the point, by a raw WebSocket client): the handshake, every event parsed as
alpaca-py's TradeUpdate, refused auth, drops and reconnects, delayed and duplicated updates,
binary frames, and REST that a stalled stream client cannot slow down."""

from __future__ import annotations

import base64
import json
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce, TradeEvent
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest
from alpaca.trading.stream import TradingStream
from websockets.sync.client import connect

from sandbox import AlpacaSandbox

WAIT = 10.0


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def listening(sandbox: AlpacaSandbox) -> list[dict[str, Any]]:
    return [c for c in sandbox.stream_connections() if c["streams"] == ["trade_updates"]]


class Listener:
    """alpaca-py's TradingStream on its own thread; every update parsed, with its arrival."""

    def __init__(self, sandbox: AlpacaSandbox, key: str | None = None) -> None:
        self.sandbox = sandbox
        self.updates: queue.Queue[tuple[int, TradeUpdate]] = queue.Queue()
        self.stream = TradingStream(
            key or sandbox.key, sandbox.secret, paper=True, url_override=sandbox.stream_url
        )

        async def on_update(update: TradeUpdate) -> None:
            self.updates.put((time.time_ns(), update))

        self.stream.subscribe_trade_updates(on_update)
        self.thread = threading.Thread(target=self.stream.run, daemon=True)
        self.thread.start()

    def next(self, timeout: float = WAIT) -> TradeUpdate:
        return self.updates.get(timeout=timeout)[1]

    def take(self, count: int) -> list[TradeUpdate]:
        return [self.next() for _ in range(count)]

    def nothing_more(self, wait: float = 0.3) -> bool:
        try:
            self.updates.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def stop(self) -> None:
        wait_for(lambda: self.stream._loop is not None, "the stream's loop")
        self.stream.stop()
        # TradingStream notices a stop only between 5 s receive timeouts; a hang-up wakes it
        self.sandbox.drop_stream_connections()
        self.thread.join(timeout=WAIT)
        assert not self.thread.is_alive()


@pytest.fixture
def stream_sandbox(sandbox: AlpacaSandbox) -> Iterator[AlpacaSandbox]:
    yield sandbox
    sandbox.drop_stream_connections()  # no connection outlives its test


@pytest.fixture
def listener(stream_sandbox: AlpacaSandbox) -> Iterator[Listener]:
    started = Listener(stream_sandbox)
    wait_for(lambda: listening(stream_sandbox), "TradingStream to listen")
    yield started
    started.stop()


def buy(client: TradingClient, symbol: str, qty: str, **extra: Any) -> Any:
    return client.submit_order(
        MarketOrderRequest(
            symbol=symbol,
            qty=Decimal(qty),
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            **extra,
        )
    )


def raw_session(sandbox: AlpacaSandbox) -> Any:
    """A plain WebSocket client: it sees frames as they are (bytes for binary)."""
    return connect(sandbox.stream_url, open_timeout=WAIT)


def auth(ws: Any, sandbox: AlpacaSandbox, key: str | None = None) -> Any:
    ws.send(
        json.dumps(
            {
                "action": "authenticate",
                "data": {"key_id": key or sandbox.key, "secret_key": sandbox.secret},
            }
        )
    )
    return ws.recv(timeout=WAIT)


# ------------------------------------------------------------------ every event


def test_fill_and_new_parse_as_trade_updates(
    listener: Listener, client: TradingClient, stream_sandbox: AlpacaSandbox
) -> None:
    order = buy(client, "AAPL", "3")
    new, fill = listener.take(2)
    assert new.event == TradeEvent.NEW and fill.event == TradeEvent.FILL
    assert new.order.id == order.id and new.order.status == OrderStatus.NEW
    assert new.execution_id is None and new.price is None and new.position_qty is None
    assert fill.order.id == order.id and fill.order.status == OrderStatus.FILLED
    assert fill.order.filled_qty == "3" and fill.order.symbol == "AAPL"
    assert (fill.qty, fill.price, fill.position_qty) == (3, 190, 3)
    assert isinstance(fill.execution_id, uuid.UUID)
    # the execution id is the FILL activity's, so a poll names the same execution
    [activity] = client.get("/account/activities/FILL")
    assert activity["id"].endswith(f"::{fill.execution_id}")
    assert fill.timestamp == datetime.fromisoformat(activity["transaction_time"])
    # the update's order is what GET /v2/orders/{id} says now
    assert fill.order == client.get_order_by_id(order.id)
    emitted = stream_sandbox.stream_emitted()
    assert [(e["event"], e["order_id"], e["execution_id"]) for e in emitted] == [
        ("new", str(order.id), None),
        ("fill", str(order.id), str(fill.execution_id)),
    ]
    assert all(isinstance(e["at_ns"], int) for e in emitted)
    assert emitted[0]["at_ns"] <= emitted[1]["at_ns"] <= time.time_ns()


def test_partial_fills_then_the_rest(
    listener: Listener, client: TradingClient, stream_sandbox: AlpacaSandbox
) -> None:
    stream_sandbox.set_symbol("MSFT", behavior="partial", partial_fraction="0.4")
    stream_sandbox.set_position("MSFT", "2")
    order = buy(client, "MSFT", "10")
    new, partial = listener.take(2)
    assert new.event == TradeEvent.NEW
    assert partial.event == TradeEvent.PARTIAL_FILL
    assert partial.order.status == OrderStatus.PARTIALLY_FILLED
    assert (partial.qty, partial.position_qty) == (4, 6)
    stream_sandbox.fill_order(str(order.id), qty="1", price="411.5")
    second = listener.next()
    assert second.event == TradeEvent.PARTIAL_FILL and second.price == 411.5
    assert (second.qty, second.position_qty, second.order.filled_qty) == (1, 7, "5")
    stream_sandbox.fill_order(str(order.id))
    last = listener.next()
    assert last.event == TradeEvent.FILL and last.order.status == OrderStatus.FILLED
    assert (last.qty, last.position_qty, last.order.filled_qty) == (5, 12, "10")
    ids = {partial.execution_id, second.execution_id, last.execution_id}
    assert len(ids) == 3


def test_canceled_expired_rejected(
    listener: Listener, client: TradingClient, stream_sandbox: AlpacaSandbox
) -> None:
    stream_sandbox.set_symbol("NVDA", behavior="hold")
    orders = [buy(client, "NVDA", "1") for _ in range(3)]
    assert [u.event for u in listener.take(3)] == [TradeEvent.NEW] * 3
    client.cancel_order_by_id(orders[0].id)
    stream_sandbox.cancel_order(str(orders[1].id), "expired")
    stream_sandbox.cancel_order(str(orders[2].id), "rejected")
    canceled, expired, rejected = listener.take(3)
    assert (canceled.event, canceled.order.status) == (TradeEvent.CANCELED, OrderStatus.CANCELED)
    assert canceled.order.canceled_at is not None
    assert (expired.event, expired.order.status) == (TradeEvent.EXPIRED, OrderStatus.EXPIRED)
    assert (rejected.event, rejected.order.status) == (TradeEvent.REJECTED, OrderStatus.REJECTED)
    assert [u.order.id for u in (canceled, expired, rejected)] == [o.id for o in orders]
    assert rejected.execution_id is None and rejected.qty is None


def test_ioc_rest_canceled_and_cancel_all(
    listener: Listener, client: TradingClient, stream_sandbox: AlpacaSandbox
) -> None:
    stream_sandbox.set_symbol("TSLA", behavior="partial")
    client.submit_order(
        MarketOrderRequest(symbol="TSLA", qty=4, side=OrderSide.BUY, time_in_force=TimeInForce.IOC)
    )
    assert [u.event for u in listener.take(3)] == [
        TradeEvent.NEW,
        TradeEvent.PARTIAL_FILL,
        TradeEvent.CANCELED,
    ]
    stream_sandbox.set_symbol("META", behavior="hold")
    for _ in range(2):
        client.submit_order(
            LimitOrderRequest(
                symbol="META",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=500,
            )
        )
    listener.take(2)
    client.cancel_orders()
    assert [u.event for u in listener.take(2)] == [TradeEvent.CANCELED] * 2


def test_replace_sends_replaced_then_new(
    listener: Listener, client: TradingClient, stream_sandbox: AlpacaSandbox
) -> None:
    stream_sandbox.set_symbol("AAPL", price="200")
    old = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=2,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=180,
        )
    )
    assert listener.next().event == TradeEvent.NEW
    new = client.replace_order_by_id(old.id, ReplaceOrderRequest(qty=3, limit_price=181))
    assert new.replaces == old.id and new.qty == "3" and new.limit_price == "181"
    replaced, created = listener.take(2)
    assert (replaced.event, replaced.order.id) == (TradeEvent.REPLACED, old.id)
    assert replaced.order.status == OrderStatus.REPLACED
    assert replaced.order.replaced_by == new.id and replaced.order.replaced_at is not None
    assert (created.event, created.order.id, created.order.replaces) == (
        TradeEvent.NEW,
        new.id,
        old.id,
    )
    assert client.get_order_by_id(old.id) == replaced.order
    stream_sandbox.set_symbol("AAPL", price="181")
    fill = listener.next()
    assert (fill.event, fill.order.id, fill.qty) == (TradeEvent.FILL, new.id, 3)
    # a closed order is not replaceable
    with pytest.raises(APIError) as refused:
        client.replace_order_by_id(new.id, ReplaceOrderRequest(qty=4))
    assert refused.value.status_code == 422
    assert listener.nothing_more()


def test_queued_order_is_accepted_then_new_when_the_market_opens(
    listener: Listener, client: TradingClient, stream_sandbox: AlpacaSandbox
) -> None:
    stream_sandbox.set_clock(is_open=False)
    order = buy(client, "SPY", "1")
    accepted = listener.next()
    assert accepted.event == TradeEvent.ACCEPTED
    assert accepted.order.status == OrderStatus.ACCEPTED
    stream_sandbox.set_clock(is_open=True)
    new, fill = listener.take(2)
    assert (new.event, new.order.status) == (TradeEvent.NEW, OrderStatus.NEW)
    assert fill.event == TradeEvent.FILL and fill.order.id == order.id


def test_limit_order_fills_when_the_price_crosses_and_external_orders(
    listener: Listener, client: TradingClient, stream_sandbox: AlpacaSandbox
) -> None:
    client.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=2,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=180,
        )
    )
    assert listener.next().event == TradeEvent.NEW
    assert listener.nothing_more()
    stream_sandbox.set_symbol("AAPL", price="179.5")
    fill = listener.next()
    assert fill.event == TradeEvent.FILL and fill.price == 179.5
    # an order placed outside the ledger streams too
    external = stream_sandbox.create_external_order("BTC/USD", "buy", "0.01")
    new, crypto = listener.take(2)
    assert new.order.id == crypto.order.id == uuid.UUID(external["id"])
    assert crypto.event == TradeEvent.FILL and crypto.order.symbol == "BTC/USD"
    assert crypto.qty == 0.01 and crypto.position_qty == 0.01


# ------------------------------------------------------------- auth and frames


def test_handshake_auth_listen_and_binary_frames(stream_sandbox: AlpacaSandbox) -> None:
    with raw_session(stream_sandbox) as ws:
        reply = auth(ws, stream_sandbox)
        # the paper endpoint's frames are binary: the client gets bytes, not str
        assert isinstance(reply, bytes)
        assert json.loads(reply) == {
            "stream": "authorization",
            "data": {"action": "authenticate", "status": "authorized"},
        }
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates", "x"]}}))
        ack = ws.recv(timeout=WAIT)
        assert isinstance(ack, bytes)
        assert json.loads(ack) == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
        assert ws.ping(b"are you there").wait(WAIT)  # answered with a pong
        stream_sandbox.create_external_order("AAPL", "buy", "1")
        frames = [ws.recv(timeout=WAIT) for _ in range(2)]
        assert all(isinstance(f, bytes) for f in frames)
        messages = [json.loads(f) for f in frames]
        assert [m["stream"] for m in messages] == ["trade_updates"] * 2
        assert [m["data"]["event"] for m in messages] == ["new", "fill"]
        # decimal strings, as Alpaca sends them
        assert messages[1]["data"]["qty"] == "1" and messages[1]["data"]["price"] == "190"
        # an empty list stops the updates
        ws.send(json.dumps({"action": "listen", "data": {"streams": []}}))
        assert json.loads(ws.recv(timeout=WAIT)) == {"stream": "listening", "data": {"streams": []}}
        stream_sandbox.create_external_order("AAPL", "buy", "1")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)


@pytest.mark.parametrize("how", ["wrong key", "refuse_auth fault"])
def test_auth_refused(stream_sandbox: AlpacaSandbox, how: str) -> None:
    if how == "refuse_auth fault":
        stream_sandbox.set_stream_faults(refuse_auth=True)
    key = "not-the-key" if how == "wrong key" else None
    with raw_session(stream_sandbox) as ws:
        reply = json.loads(auth(ws, stream_sandbox, key))
        assert reply == {
            "stream": "authorization",
            "data": {"action": "authenticate", "status": "unauthorized"},
        }
    # alpaca-py's TradingStream never gets to listen, and keeps trying
    refused = Listener(stream_sandbox, key)
    try:
        time.sleep(1.0)
        assert not listening(stream_sandbox)
        stream_sandbox.create_external_order("AAPL", "buy", "1")
        assert refused.nothing_more()
        if how == "refuse_auth fault":
            stream_sandbox.set_stream_faults()  # lifted: the next attempt gets in
            wait_for(lambda: listening(stream_sandbox), "the retry to be let in")
    finally:
        refused.stop()


def test_secrets_never_in_the_stream_or_its_log(stream_sandbox: AlpacaSandbox) -> None:
    with raw_session(stream_sandbox) as ws:
        auth(ws, stream_sandbox)
    dumped = json.dumps(
        [
            stream_sandbox.stream_connections(),
            stream_sandbox.stream_emitted(),
            stream_sandbox.stream_faults(),
        ]
    )
    assert stream_sandbox.secret not in dumped


def test_plain_get_stream_is_still_a_404(stream_sandbox: AlpacaSandbox) -> None:
    headers = {"APCA-API-KEY-ID": stream_sandbox.key, "APCA-API-SECRET-KEY": stream_sandbox.secret}
    reply = requests.get(f"{stream_sandbox.base_url}/stream", headers=headers, timeout=5)
    assert (reply.status_code, reply.text) == (404, "404 page not found")


# ------------------------------------------------------------------------ faults


def test_drop_then_trading_stream_reconnects_by_itself(
    listener: Listener, client: TradingClient, stream_sandbox: AlpacaSandbox
) -> None:
    buy(client, "AAPL", "1")
    listener.take(2)
    assert stream_sandbox.drop_stream_connections() == 1
    # what happens while it is down is not replayed (Alpaca does not either): the
    # client must poll for it after reconnecting
    stream_sandbox.create_external_order("AAPL", "buy", "1")
    wait_for(lambda: listening(stream_sandbox), "TradingStream to reconnect", timeout=15)
    order = buy(client, "AAPL", "2")
    updates = listener.take(2)
    assert [u.order.id for u in updates] == [order.id] * 2
    assert [u.event for u in updates] == [TradeEvent.NEW, TradeEvent.FILL]


def test_duplicate_next_sends_updates_twice(
    listener: Listener, client: TradingClient, stream_sandbox: AlpacaSandbox
) -> None:
    stream_sandbox.set_stream_faults(duplicate_next=2)
    buy(client, "AAPL", "1")
    buy(client, "AAPL", "1")
    events = [(u.event, u.order.id, u.execution_id) for u in listener.take(6)]
    assert events[0] == events[1] and events[2] == events[3]
    assert [e[0] for e in events] == [TradeEvent.NEW] * 2 + [TradeEvent.FILL] * 2 + [
        TradeEvent.NEW,
        TradeEvent.FILL,
    ]
    assert listener.nothing_more()
    assert stream_sandbox.stream_faults()["duplicate_next"] == 0
    # the log counts what the sandbox produced, once each
    assert len(stream_sandbox.stream_emitted()) == 4


def test_delay_holds_updates_without_holding_rest(
    listener: Listener, client: TradingClient, stream_sandbox: AlpacaSandbox
) -> None:
    stream_sandbox.set_stream_faults(delay_ms=400)
    started = time.monotonic()
    for _ in range(3):
        buy(client, "AAPL", "1")
    assert time.monotonic() - started < 0.4  # REST never waits for the stream
    arrivals = [listener.updates.get(timeout=WAIT) for _ in range(6)]
    emitted = stream_sandbox.stream_emitted()
    lags = [(at - e["at_ns"]) / 1e9 for (at, _), e in zip(arrivals, emitted, strict=True)]
    assert all(lag >= 0.39 for lag in lags), lags
    # each is held its own delay, not the sum of the ones before it
    assert max(lags) < 1.5, lags
    assert [u.event for _, u in arrivals] == [TradeEvent.NEW, TradeEvent.FILL] * 3


def test_control_endpoints(listener: Listener, stream_sandbox: AlpacaSandbox) -> None:
    base = f"{stream_sandbox.base_url}/_sandbox/stream"
    faults = requests.post(
        f"{base}/faults", json={"delay_ms": 5, "duplicate_next": 1}, timeout=5
    ).json()
    assert faults == {"delay_ms": 5, "duplicate_next": 1, "refuse_auth": False}
    assert requests.get(f"{base}/faults", timeout=5).json() == faults
    bad = requests.post(f"{base}/faults", json={"delay_ms": -1}, timeout=5)
    assert bad.status_code == 422 and "delay_ms" in bad.json()["message"]
    [conn] = requests.get(f"{base}/connections", timeout=5).json()
    assert conn["authenticated"] is True and conn["streams"] == ["trade_updates"]
    stream_sandbox.create_external_order("AAPL", "buy", "1")
    listener.take(3)
    emitted = requests.get(f"{base}/emitted", timeout=5).json()
    assert [e["event"] for e in emitted] == ["new", "fill"]
    assert requests.post(f"{base}/drop", timeout=5).json() == {"ok": True, "dropped": 1}
    requests.post(f"{stream_sandbox.base_url}/_sandbox/reset", timeout=5)
    assert stream_sandbox.stream_emitted() == []
    assert stream_sandbox.stream_faults() == {
        "delay_ms": 0,
        "duplicate_next": 0,
        "refuse_auth": False,
    }


# -------------------------------------------------------------- slow consumers


def _masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def test_a_stalled_client_does_not_slow_rest_or_other_listeners(
    listener: Listener, client: TradingClient, stream_sandbox: AlpacaSandbox
) -> None:
    # a client that authenticates, listens, then never reads a byte again
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((stream_sandbox.host, stream_sandbox.port))
    key = base64.b64encode(os.urandom(16)).decode()
    stalled.sendall(
        (
            f"GET /stream HTTP/1.1\r\nHost: {stream_sandbox.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert stalled.recv(4096).startswith(b"HTTP/1.1 101")
    login = {
        "action": "authenticate",
        "data": {"key_id": stream_sandbox.key, "secret_key": stream_sandbox.secret},
    }
    stalled.sendall(_masked(0x1, json.dumps(login, separators=(",", ":")).encode()))
    stalled.sendall(_masked(0x1, b'{"action":"listen","data":{"streams":["trade_updates"]}}'))
    try:
        wait_for(lambda: len(listening(stream_sandbox)) == 2, "both to listen")
        started = time.monotonic()
        for _ in range(400):  # ~1 MB of updates: more than the stalled socket takes
            stream_sandbox.create_external_order("AAPL", "buy", "1")
        assert buy(client, "AAPL", "1").status == OrderStatus.FILLED
        assert time.monotonic() - started < 10
        got = [listener.next() for _ in range(802)]
        assert got[-1].event == TradeEvent.FILL
    finally:
        stalled.close()
