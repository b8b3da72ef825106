"""The `commands` program: a thin layer over the `Ledger` service object."""

from __future__ import annotations

import logging
from typing import Any

import click
from eventsourcing.persistence import IntegrityError, PersistenceError

from commands.audit import audit
from commands.errors import EXIT_USAGE, CommandError
from commands.events import events
from commands.positions import positions
from commands.rebuild import rebuild
from commands.reconcile import reconcile
from commands.reconciliations import reconciliations
from commands.run import run
from commands.serve import serve
from commands.session import Session
from commands.sync import sync
from commands.trade import trade
from ledger.domain.reconciliation_lock import LockHeld
from ledger.domain.values import InvalidInput
from ledger.settings import ConfigurationError
from ledger.storage import StoreUnavailable


class LedgerGroup(click.Group):
    """Turns the errors a user can fix into one line on stderr and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LockHeld as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(1)
        except CommandError as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(error.exit_code)
        except (ConfigurationError, StoreUnavailable, InvalidInput) as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(EXIT_USAGE)
        except IntegrityError as error:
            click.echo(
                f"Error: another writer changed the same record first ({error}); run the "
                "command again",
                err=True,
            )
            ctx.exit(1)
        except PersistenceError as error:
            click.echo(f"Error: the event store failed: {error}", err=True)
            ctx.exit(EXIT_USAGE)


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (secrets are never logged).")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """tradeledger: an event-sourced trading ledger that keeps your decisions and your
    Alpaca account honest with each other.

    Configuration comes from the environment and from .env in the working directory
    (see .env.example). Exit codes: 0 done, 1 needs attention, 2 bad usage or configuration.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = ctx.with_resource(Session())


cli.add_command(trade)
cli.add_command(events)
cli.add_command(run)
cli.add_command(sync)
cli.add_command(reconcile)
cli.add_command(audit)
cli.add_command(positions)
cli.add_command(rebuild)
cli.add_command(reconciliations)
cli.add_command(serve)


def main() -> None:
    cli(prog_name="commands")
