"""The domain: aggregates and the events they record. No I/O here."""

from __future__ import annotations

from typing import Any

from ledger.domain.adjustment import Adjustment
from ledger.domain.broker_snapshot import BrokerSnapshot
from ledger.domain.corporate_action import CorporateAction
from ledger.domain.decision import Decision
from ledger.domain.drift import Drift
from ledger.domain.order import Order
from ledger.domain.reconciliation import Reconciliation

__all__ = [
    "Adjustment",
    "BrokerSnapshot",
    "CorporateAction",
    "Decision",
    "Drift",
    "Order",
    "Reconciliation",
    "event_name",
]

# Names users read in the audit trail (docs/design.md, "Event names"); the rest are the
# aggregate's name followed by the event's (Drift.Began is "DriftBegan").
_RENAMED = {"BrokerSnapshot.Synced": "BrokerSynced"}


def event_name(domain_event: Any) -> str:
    qualname = type(domain_event).__qualname__
    return _RENAMED.get(qualname) or qualname.replace(".", "")
