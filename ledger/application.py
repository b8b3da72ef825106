"""The ledger: the one object every caller uses.

The CLI, the service loop, a decision engine and the tests all record decisions and
orders through `Ledger`; none of them touches aggregates, the event store or a broker
directly. It is the event store (`ledger.infrastructure.event_store`: storage and the
reads of the log) with a broker router, and the use cases of the service layer as its
methods: each is a function of the ledger in `ledger.services.trading` or
`ledger.services.syncing`, so `ledger.trade(...)` is `trading.trade(ledger, ...)`.
Reconciliation, which needs a view of both books, is `ledger.services.reconciling`.
"""

from __future__ import annotations

from ledger.brokers.paper import PaperBroker
from ledger.brokers.router import BrokerRouter
from ledger.infrastructure.event_store import EventStore
from ledger.services import live, syncing, trading
from ledger.services.syncing import OwnSync


class Ledger(EventStore):
    # eventsourcing names a subclass after itself; the tables keep the store's name.
    name = EventStore.name

    def __init__(
        self, env: dict[str, str] | None = None, *, router: BrokerRouter | None = None
    ) -> None:
        super().__init__(env)
        self.router = router or BrokerRouter(PaperBroker())

    record_decision = trading.record_decision
    trade = trading.trade
    submit = trading.submit
    adopt = trading.adopt

    # The newest snapshot this process stored: a sync continues from it without reading
    # it back (`syncing.last_cursor`).
    own_sync: OwnSync | None = None
    sync = syncing.sync
    poll = syncing.poll
    # `commands run`'s service loop (polls, the stream, the watchdog's hooks).
    keep_current = live.keep_current
