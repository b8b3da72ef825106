"""Why a reconciliation run refuses to send: the settings it runs under, and the account.

The messages state the facts; the command line words its own options (`commands
reconcile` says which flag confirms a live run)."""

from __future__ import annotations

from ledger.settings import ConfigurationError, Settings


class AccountCannotTrade(Exception):
    """The broker account is blocked, suspended, not active, or may not day-trade: nothing
    is sent (exit 1)."""


class LiveRunUnconfirmed(ConfigurationError):
    """A run that would send orders to a live account, without the person's confirmation."""


def check_settings(settings: Settings, *, dry_run: bool, confirmed: bool) -> None:
    """Refusals that need no broker call: nothing is written."""
    refusal = settings.not_alpaca("reconcile compares the ledger with an Alpaca account")
    if refusal is not None:
        raise ConfigurationError(refusal)
    if not dry_run and not settings.alpaca_paper_mode and not confirmed:
        raise LiveRunUnconfirmed(
            "ALPACA_PAPER_MODE=false sends orders to the live account: a run that sends "
            "needs the person's confirmation"
        )


def refuse_to_send(refusal: str | None, *, dry_run: bool) -> None:
    """A run that would send stops at an account that cannot take its orders; a dry run
    reports the refusal instead."""
    if refusal is not None and not dry_run:
        raise AccountCannotTrade(f"nothing was sent: {refusal}")
