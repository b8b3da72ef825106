"""`/healthz` and `/metrics` of `commands run`: what an operator's probe and Prometheus read.

A small threaded HTTP server of the standard library, in a daemon thread, on loopback
unless LEDGER_HEALTH_HOST says otherwise. Both answers are computed when asked, from the
service's `ServiceStatus` (what the running process knows of itself) and, for orders by
status, from the orders view: nothing is cached between scrapes, so a probe never reads a
stale answer.

    server = serve_health(status, "127.0.0.1", 9464, orders_by_status)
    server.address  # ("127.0.0.1", 9464); port 0 binds any free port
    server.close()
"""

from __future__ import annotations

import errno
import json
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from commands.errors import EXIT_USAGE, CommandError
from ledger.services.service_status import ServiceStatus

log = logging.getLogger(__name__)

OrdersByStatus = Callable[[], dict[str, int]]


class HealthPortInUse(CommandError):
    """The health port is taken (another `commands run`, or another program): one line
    naming the setting to change, exit 2."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(
            f"cannot serve /healthz and /metrics on {host}:{port}: {reason}; set "
            "LEDGER_HEALTH_PORT to a free port (0 picks one) or stop what holds it",
            EXIT_USAGE,
        )


class StatusCollector(Collector):
    """Reads the `ServiceStatus` at scrape time (a custom collector, not gauges set by the
    service): every figure is as of the scrape, and the service never has to remember to
    update a metric."""

    def __init__(self, status: ServiceStatus, orders_by_status: OrdersByStatus) -> None:
        self.status = status
        self.orders_by_status = orders_by_status

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        # One snapshot, taken under the status' lock: the figures of a scrape agree.
        snapshot = self.status.snapshot(now)
        age = snapshot["last_sync_age_seconds"]
        if age is None:
            age = (now - datetime.fromisoformat(snapshot["started_at"])).total_seconds()
        yield GaugeMetricFamily(
            "tradeledger_last_sync_age_seconds",
            "Seconds since the last successful broker sync or poll (since the service "
            "started while none succeeded yet)",
            value=max(0.0, float(age)),
        )
        yield GaugeMetricFamily(
            "tradeledger_stream_connected",
            "1 when the trade_updates stream is connected, else 0 (polling is the fallback)",
            value=1 if snapshot["stream_connected"] else 0,
        )
        drift = snapshot["open_drift"]
        yield GaugeMetricFamily(
            "tradeledger_open_drift_symbols",
            "Symbols in the open drift between the books (0: no drift open)",
            value=0 if drift is None else len(drift["symbols"]),
        )
        orders = GaugeMetricFamily(
            "tradeledger_orders", "Orders in the orders view, by status", labels=["status"]
        )
        try:
            counts = self.orders_by_status()
        except Exception:
            # A store that fails this scrape must not hide the service's own figures.
            log.warning("metrics: the orders view could not be read", exc_info=True)
            counts = {}
        for name, count in sorted(counts.items()):
            orders.add_metric([name], count)
        yield orders
        # prometheus_client adds the `_total` suffix to a counter's samples.
        yield CounterMetricFamily(
            "tradeledger_fills_recorded",
            "Fills this process recorded (from the stream or a poll)",
            value=snapshot["fills_recorded"],
        )
        errors = CounterMetricFamily(
            "tradeledger_broker_errors",
            "Broker calls that failed, by kind (FailureKind, or read)",
            labels=["kind"],
        )
        for kind, count in sorted(snapshot["broker_errors"].items()):
            errors.add_metric([kind], count)
        yield errors


def health_document(status: ServiceStatus, now: datetime) -> tuple[bool, dict[str, Any]]:
    healthy, reasons = status.health(now)
    return healthy, {"healthy": healthy, "reasons": list(reasons), **status.snapshot(now)}


class _Handler(BaseHTTPRequestHandler):
    server: _HealthHTTPServer
    server_version = "tradeledger-health"
    sys_version = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            healthy, document = health_document(self.server.status, datetime.now(UTC))
            body = (json.dumps(document, default=str, indent=2) + "\n").encode()
            self._answer(200 if healthy else 503, "application/json", body)
        elif path == "/metrics":
            self._answer(200, CONTENT_TYPE_LATEST, generate_latest(self.server.registry))
        else:
            self._answer(404, "text/plain; charset=utf-8", b"not found: /healthz or /metrics\n")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _answer(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes every few seconds would drown the service's own lines.
        pass


class _HealthHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], status: ServiceStatus,
                 registry: CollectorRegistry) -> None:
        # ThreadingHTTPServer binds IPv4 only: an IPv6 literal needs its own family.
        if ":" in address[0]:
            import socket

            self.address_family = socket.AF_INET6
        self.status = status
        self.registry = registry
        super().__init__(address, _Handler)


class HealthServer:
    def __init__(self, httpd: _HealthHTTPServer) -> None:
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
            name="tradeledger-health", daemon=True,
        )
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def serve_health(status: ServiceStatus, host: str, port: int,
                 orders_by_status: OrdersByStatus) -> HealthServer:
    """Serve /healthz and /metrics in a daemon thread; raises `HealthPortInUse` (a
    `CommandError`, exit 2) when the address cannot be bound."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status, orders_by_status))
    try:
        httpd = _HealthHTTPServer((host, port), status, registry)
    except OSError as error:
        reason = "address already in use" if error.errno == errno.EADDRINUSE else (
            error.strerror or str(error))
        raise HealthPortInUse(host, port, reason) from None
    return HealthServer(httpd)
