"""Alpaca's failures as the ledger's: a `BrokerError` with a `FailureKind`.

This module alone reads Alpaca's HTTP statuses, error codes and messages; the router and
reconciliation act on the kind decided here, so Alpaca's numbering goes no further.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from pydantic import ValidationError
from urllib3.exceptions import NewConnectionError

from ledger.brokers.port import BrokerError, FailureKind

log = logging.getLogger(__name__)

# Alpaca's error codes, stored when a reply lacks one.
DUPLICATE_OR_INVALID = "40010001"
RATE_LIMITED = "42910000"
# Alpaca's codes are coarse (40010001: any invalid request; 42210000: any unprocessable
# one; 40310000: any forbidden one), so the kind of a refusal is read from its message.
_CLIENT_ORDER_ID_TAKEN = re.compile(
    r"client_order_id.*\b(unique|duplicate|already (exists|used|in use|taken))\b"
)
_BY_MESSAGE = (
    (FailureKind.NOT_FOUND, re.compile(
        r"\b(asset|symbol)\b.*\bnot found\b|\bnot found\b.*\b(asset|symbol)\b"
        r"|could not find (asset|symbol)|\b(unknown|invalid) (asset|symbol)\b"
    )),
    (FailureKind.NOT_FRACTIONABLE, re.compile(
        r"not fractionable|fractional (trading|orders?|shares?) (is |are )?not "
        r"(supported|allowed|enabled|available)"
    )),
    (FailureKind.NOT_TRADABLE, re.compile(
        r"not trad(e)?able|\basset\b.*\bis not active\b|\binactive asset\b"
    )),
    (FailureKind.BLOCKED, re.compile(
        r"blocked|not (authorized|allowed|permitted) to trade|account is not active"
        r"|account (is )?(restricted|suspended|closed|disabled)"
        r"|trading (is )?(suspended|restricted|disabled)|pattern day trad"
    )),
    (FailureKind.BUYING_POWER, re.compile(r"buying power|insufficient (funds|balance|cash)")),
    (FailureKind.MARKET_CLOSED, re.compile(
        r"\bmarket\b.*\bclosed\b|\bclosed\b.*\bmarket\b"
        r"|outside (of )?(the )?(regular |market |trading )*hours"
    )),
)


def http_status(error: APIError) -> int | None:
    try:
        return error.status_code
    except Exception:  # a malformed error must not hide the real one
        return None


def never_connected(error: requests.exceptions.ConnectionError) -> bool:
    reason: Any = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, NewConnectionError)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def validation_line(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "reply"
    return f"{where}: {first.get('msg')}"


def as_broker_error(
    error: BaseException, base_url: str, timeout: float, *, posted: bool
) -> BrokerError:
    """One failure talking to Alpaca in the ledger's terms. `posted`: the request was an
    order POST, so a failure that may come after Alpaca acted on it leaves the order's
    existence unknown."""
    if isinstance(error, APIError):
        return _refusal(error, posted=posted)
    return _transport_failure(error, f"Alpaca at {base_url}", f"{timeout:g} s", posted=posted)


def _transport_failure(error: BaseException, where: str, within: str, *,
                       posted: bool) -> BrokerError:
    """A failure with no answer from Alpaca to read: every one may go away if asked again."""

    def failed(
        code: str, message: str, kind: FailureKind, *, may_exist: bool = posted
    ) -> BrokerError:
        return BrokerError(code=code, message=message, retryable=True,
                           outcome_unknown=may_exist, kind=kind)

    exceptions = requests.exceptions
    if isinstance(error, exceptions.JSONDecodeError):
        return failed("malformed_reply", "Alpaca's reply is not valid JSON",
                      FailureKind.BROKER_FAILED)
    if isinstance(error, ValidationError):
        return failed("malformed_reply",
                      f"Alpaca's reply could not be read: {validation_line(error)}",
                      FailureKind.BROKER_FAILED)
    if isinstance(error, exceptions.ConnectTimeout):
        # The connection was never made, so no order can exist: a network or address
        # problem, not a slow broker.
        return failed("timeout", f"could not connect to {where} within {within}",
                      FailureKind.UNREACHABLE, may_exist=False)
    if isinstance(error, exceptions.Timeout):
        return failed("timeout", f"no answer from {where} within {within}", FailureKind.TIMEOUT)
    if isinstance(error, exceptions.ConnectionError) and never_connected(error):
        return failed("unreachable", f"cannot reach {where} (connection refused or no route)",
                      FailureKind.UNREACHABLE, may_exist=False)
    if isinstance(error, exceptions.ConnectionError):
        return failed("connection_lost",
                      f"the connection to {where} was lost before an answer came",
                      FailureKind.UNREACHABLE)
    if isinstance(error, exceptions.RequestException):
        return failed("transport_error", f"talking to {where} failed: {type(error).__name__}",
                      FailureKind.UNREACHABLE)
    log.exception("unexpected error talking to Alpaca")
    # A bug of ours or alpaca-py's as much as the broker's: nothing says which.
    return failed("unexpected_error", f"unexpected {type(error).__name__} while talking to Alpaca",
                  FailureKind.UNKNOWN)


def _error_body(error: APIError) -> tuple[str | None, str | None]:
    """Alpaca's code and message, read defensively: `APIError.code` raises on HTML."""
    text = str(error)
    try:
        body = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code = body.get("code")
    message = body.get("message")
    return (None if code is None else str(code)), (None if message is None else str(message))


def failure_kind(status: int | None, code: str | None, message: str | None) -> FailureKind:
    """Alpaca's refusal as a kind: by HTTP status where that decides, else by its message.

    `message` is Alpaca's own (the body's `message`), not the line built from it.
    """
    said = (message or "").lower()
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status is not None and status >= 500:
        return FailureKind.BROKER_FAILED
    if status == 403 and _by_message(said) is FailureKind.BLOCKED:
        # A 403 that says the account may not trade is about the account, not the keys.
        return FailureKind.BLOCKED
    if status == 401 or (status == 403 and code is None):
        return FailureKind.UNAUTHORIZED
    if _CLIENT_ORDER_ID_TAKEN.search(said):
        return FailureKind.DUPLICATE_ID
    by_message = _by_message(said)
    if by_message is not None:
        return by_message
    if status == 404:
        return FailureKind.NOT_FOUND
    if status is not None and 400 <= status < 500:
        return FailureKind.REJECTED
    return FailureKind.UNKNOWN


def _by_message(said: str) -> FailureKind | None:
    return next((kind for kind, pattern in _BY_MESSAGE if pattern.search(said)), None)


def _refusal(error: APIError, *, posted: bool) -> BrokerError:
    """An answer from Alpaca that refused the request, or failed on Alpaca's side."""
    status = http_status(error)
    code, said = _error_body(error)
    kind = failure_kind(status, code, said)
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    if said is None:
        reason = getattr(response, "reason", "") or ""
        message = f"HTTP {status} {reason}".strip() + " with a body that is not Alpaca's JSON"
    elif code is not None:
        message = f"{said} (HTTP {status}, code {code})"
    else:
        message = f"{said} (HTTP {status})"
    retry_after = headers.get("Retry-After")
    wait = f"; retry after {retry_after} s" if retry_after else ""
    stored_code = code or f"http_{status}"
    retryable = may_exist = False
    if kind is FailureKind.BLOCKED and code is None:
        stored_code = "forbidden"
        message = f"Alpaca refuses to let this account trade: {message}"
    elif kind is FailureKind.UNAUTHORIZED:
        stored_code = "unauthorized" if status == 401 else "forbidden"
        message = f"Alpaca refused the API keys: {message}"
    elif kind is FailureKind.RATE_LIMITED:
        stored_code, retryable = code or RATE_LIMITED, True
        message = f"Alpaca's rate limit was reached{wait}: {message}"
    elif kind is FailureKind.BROKER_FAILED:
        # A gateway error after a POST does not say whether the order was created.
        retryable, may_exist = True, posted
        message = f"Alpaca failed on its side{wait}: {message}"
    elif kind is FailureKind.DUPLICATE_ID:
        stored_code = code or DUPLICATE_OR_INVALID
        message = f"Alpaca already has an order with this client order id: {message}"
    return BrokerError(
        code=stored_code,
        message=message,
        retryable=retryable,
        http_status=status,
        outcome_unknown=may_exist,
        kind=kind,
    )
