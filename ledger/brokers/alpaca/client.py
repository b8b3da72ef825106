"""alpaca-py's clients, with the habits that would hurt a ledger worked around.

alpaca-py 0.44 sets no HTTP timeout (a hung broker would hang us), retries 429/504 itself
(POSTs too, after a fixed wait, ignoring Retry-After), and holds order amounts as floats.
So the clients run with `raw_data=True` on a session that always has a timeout and reads
JSON numbers as `Decimal`, retry by the ledger's own rule (`retry_delay`), and send
quantities and prices as the exact decimal strings they were given.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from ledger.brokers.alpaca.errors import http_status, never_connected

log = logging.getLogger(__name__)

# A command waits this long at most for one retry; a broker asking for longer gets its
# error reported ("retry after N s") instead of a command that seems to hang.
LONGEST_WAIT_SECONDS = 30.0
# Answers that say the request was not acted on, so sending it again cannot duplicate it.
_NOT_ACTED_ON = frozenset({429})
# Answers after which a read may simply be asked again; a POST may have been acted on.
_READ_AGAIN = frozenset({429, 500, 502, 503, 504})


def retry_delay(
    method: str, status: int | None, retry_after: str | None, attempt: int, *, base: float
) -> float | None:
    """Seconds to wait before sending a failed request again, or None when it must not be.

    Only what is safe is retried: any request Alpaca refused unseen (429: rate limited),
    and reads after a server error or a dropped connection (`status` None). An order POST
    that met a server error may have created the order: the router looks it up instead.
    The wait doubles each time, and is at least what the broker's Retry-After asks.
    """
    safe = _NOT_ACTED_ON if method.upper() not in ("GET", "HEAD") else _READ_AGAIN | {None}
    if status not in safe:
        return None
    wait = base * 2**attempt
    if retry_after is not None:
        try:
            asked = float(retry_after.strip())
        except ValueError:
            asked = 0.0  # an HTTP date: rare from Alpaca; the backoff stands
        wait = max(wait, asked)
    return wait if wait <= LONGEST_WAIT_SECONDS else None


class BrokerSession(requests.Session):
    """A requests session that never waits forever and never turns a price into a float."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        # alpaca-py passes no timeout at all: without one a hung broker hangs the caller.
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        response = super().request(method, url, **kwargs)
        plain_json = response.json

        def exact_json(**options: Any) -> Any:
            # alpaca-py calls response.json(); a JSON number must become a Decimal, as written.
            options.setdefault("parse_float", Decimal)
            return plain_json(**options)

        response.json = exact_json  # type: ignore[method-assign]
        return response


def _decimal_text(value: Decimal) -> str:
    return format(value, "f")


class _ExactOrderFields:
    """Sends qty, notional and limit price as the exact decimal strings the spec asks for.

    alpaca-py's request models hold them as floats; these subclasses hold Decimals and
    turn them into strings on the way out, keeping the SDK's own checks and its POST.
    """

    def to_request_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = super().to_request_fields()  # type: ignore[misc]
        return {k: _decimal_text(v) if isinstance(v, Decimal) else v for k, v in fields.items()}


class ExactMarketOrderRequest(_ExactOrderFields, MarketOrderRequest):
    qty: Decimal | None = None  # type: ignore[assignment]
    notional: Decimal | None = None  # type: ignore[assignment]


class ExactLimitOrderRequest(_ExactOrderFields, LimitOrderRequest):
    qty: Decimal | None = None  # type: ignore[assignment]
    notional: Decimal | None = None  # type: ignore[assignment]
    limit_price: Decimal | None = None  # type: ignore[assignment]


class RetryingTradingClient(TradingClient):
    """alpaca-py's client with the ledger's retry rule (`retry_delay`) in place of its own.

    alpaca-py's loop runs with `_retry = 0` (one attempt per call); this one decides per
    method and status, backs off, honours Retry-After, and stops after `retry_attempts`.
    """

    retry_attempts: int = 0

    def _request(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                return super()._request(method, path, *args, **kwargs)
            except APIError as error:
                response = getattr(error, "response", None)
                headers = getattr(response, "headers", None) or {}
                status, retry_after = http_status(error), headers.get("Retry-After")
                failure: BaseException = error
            except requests.exceptions.ConnectionError as error:
                if isinstance(error, requests.exceptions.ConnectTimeout) or never_connected(
                    error
                ):
                    raise  # nothing listening: asking again at once will not help
                status, retry_after, failure = None, None, error
            wait = None
            if attempt < self.retry_attempts:
                wait = retry_delay(method, status, retry_after, attempt, base=self._retry_wait)
            if wait is None:
                raise failure
            attempt += 1
            # INFO, not WARNING: a retry that works is no news; `-v` shows each one.
            log.info(
                "Alpaca answered %s %s with %s; trying again in %.2f s (retry %d of %d)",
                method,
                path,
                f"HTTP {status}" if status else "a dropped connection",
                wait,
                attempt,
                self.retry_attempts,
            )
            time.sleep(wait)

