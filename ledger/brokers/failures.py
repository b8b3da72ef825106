"""What a person can do about each kind of broker failure: each failed order shows why and
what to do (docs/design.md, "Broker failures").

One table keyed by `FailureKind`: the adapter decides the kind from its broker's own
codes and messages, so these lines hold for any broker and name no broker's numbering.
"""

from __future__ import annotations

from types import MappingProxyType

from ledger.brokers.port import BrokerError, FailureKind

HINTS: MappingProxyType[FailureKind, str] = MappingProxyType({
    FailureKind.NOT_FOUND: (
        "the broker does not know this symbol: check it, or adopt the position into the "
        "local book with `commands adopt`"
    ),
    FailureKind.NOT_TRADABLE: (
        "the broker does not trade this asset now: wait until it does, or take the broker's "
        "quantity into the local book with `commands adopt`"
    ),
    FailureKind.NOT_FRACTIONABLE: (
        "the broker takes only whole shares of this asset: trade the fraction by hand, or "
        "take the broker's quantity into the local book with `commands adopt`"
    ),
    FailureKind.BUYING_POWER: (
        "the account lacks buying power: add funds or reduce the position by hand"
    ),
    FailureKind.MARKET_CLOSED: (
        "the market is closed: run again when it opens, or use --extended-hours"
    ),
    FailureKind.DUPLICATE_ID: (
        "an order with this client order id exists: the next sync records it"
    ),
    FailureKind.BLOCKED: (
        "the account may not trade (blocked, restricted or not ACTIVE): check it with the "
        "broker, then run reconcile again"
    ),
    FailureKind.RATE_LIMITED: "the broker is rate limiting: run reconcile again in a minute",
    FailureKind.UNAUTHORIZED: (
        "the broker refused the API keys: check ALPACA_API_KEY, ALPACA_SECRET_KEY and "
        "ALPACA_PAPER_MODE"
    ),
    FailureKind.REJECTED: (
        "the broker refused the order as given: see its message, fix the cause and run "
        "reconcile again"
    ),
    FailureKind.BROKER_FAILED: (
        "the broker failed: run reconcile again; it settles this order first"
    ),
    FailureKind.UNREACHABLE: (
        "the broker could not be reached or the connection dropped: check the network and "
        "ALPACA_BASE_URL, then run reconcile again; it looks the order up first"
    ),
    FailureKind.TIMEOUT: (
        "the broker did not answer in time: the next run looks the order up first"
    ),
    FailureKind.UNKNOWN: "see the broker's message; fix the cause and run reconcile again",
})


# An order sent, but no answer says whether the broker has it (whatever the kind).
OUTCOME_UNKNOWN_HINT = (
    "the broker may have this order although no answer said so: the next run looks it up, "
    "or sends it again under the same client order id, which the broker takes only once"
)


def hint(kind: FailureKind | None) -> str:
    """The line for a kind; None (a failure that names no kind) gets the general one."""
    return HINTS[kind or FailureKind.UNKNOWN]


def hint_for(error: BrokerError | None) -> str:
    """What a person can do about a failed order, by the kind the broker's adapter gave its
    error. An error without a kind, or no error at all (the broker took the order, then
    rejected it), gets the general line."""
    return hint(None if error is None else error.kind)
