"""The `commands` program: a thin layer over the `Ledger` service object."""

from __future__ import annotations

import logging
from typing import Any

import click
from eventsourcing.persistence import IntegrityError, PersistenceError

from commands.adopt import adopt
from commands.audit import audit
from commands.errors import EXIT_ATTENTION, EXIT_USAGE, CommandError
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
from ledger.brokers.port import BrokerReadError
from ledger.domain.reconciliation_lock import LockHeld
from ledger.domain.values import InvalidInput
from ledger.infrastructure.store import StoreUnavailable
from ledger.services.reconcile_refusals import AccountCannotTrade
from ledger.settings import ConfigurationError


def usage_line(error: click.UsageError) -> str:
    """click's usage error as one line (click prints four, the usage text first)."""
    where = error.ctx.command_path if error.ctx is not None else "commands"
    message = " ".join(error.format_message().split())  # "Choose from:" lists span lines
    return f"Error: {message} (see '{where} --help')"


def store_failure(error: PersistenceError, session: Any) -> tuple[str, int]:
    """One line and an exit code for a store that failed mid-command. Every save is one
    transaction: the step that failed recorded nothing, and what came before it stands."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    cause = lines[0] if lines else type(error).__name__
    if isinstance(session, Session):
        cause = session.scrub(cause)
    lowered = cause.lower()
    if "locked" in lowered or "busy" in lowered:
        return (
            f"the event store is busy: another process kept it locked too long ({cause}); "
            "this step recorded nothing: run the command again",
            EXIT_ATTENTION,
        )
    if "connection" in lowered or "server closed" in lowered or "terminating" in lowered:
        return (
            f"the event store's server went away ({cause}); this step recorded nothing: "
            "run the command again",
            EXIT_ATTENTION,
        )
    if "disk is full" in lowered or "no space" in lowered:
        return (
            f"the event store's disk is full ({cause}); this step recorded nothing: free "
            "some space and run the command again",
            EXIT_USAGE,
        )
    if "readonly" in lowered or "read-only" in lowered:
        return (
            f"the event store is read-only ({cause}); this step recorded nothing: make the "
            "database writable",
            EXIT_USAGE,
        )
    return f"the event store failed ({cause}); this step recorded nothing", EXIT_USAGE


def broker_read_exit(error: BrokerReadError) -> int:
    """Refused keys are configuration (2); a broker that is down, slow or failing needs
    attention and a later run (1), as nothing about the command or its settings is wrong."""
    return EXIT_USAGE if error.auth else EXIT_ATTENTION


class LedgerErrors(click.Command):
    """Turns the errors a user can fix into one line on stderr and a documented exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise  # `commands` alone prints the help
        except click.UsageError as error:
            click.echo(usage_line(error), err=True)
            ctx.exit(EXIT_USAGE)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as error:
            click.echo(usage_line(error), err=True)
            ctx.exit(EXIT_USAGE)
        except (LockHeld, AccountCannotTrade) as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(1)
        except CommandError as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(error.exit_code)
        except (ConfigurationError, StoreUnavailable, InvalidInput) as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(EXIT_USAGE)
        except BrokerReadError as error:
            # Commands say more where they can; this keeps any other read failure one line.
            click.echo(f"Error: the broker could not be read: {error}", err=True)
            ctx.exit(broker_read_exit(error))
        except IntegrityError as error:
            click.echo(
                f"Error: another writer changed the same record first ({error}); run the "
                "command again",
                err=True,
            )
            ctx.exit(1)
        except PersistenceError as error:
            message, code = store_failure(error, ctx.obj)
            click.echo(f"Error: {message}", err=True)
            ctx.exit(code)


class LedgerGroup(LedgerErrors, click.Group):
    """The `commands` program: every subcommand's errors as one line and an exit code."""


class LedgerCommand(LedgerErrors):
    """One command run as a program of its own (the old script names)."""


def ledger_command(command: click.Command, *, name: str) -> click.Command:
    """`command` as a program called `name`: its own usage line and error messages, the
    session `commands` would give it, the same error handling."""

    @click.pass_context
    def run(ctx: click.Context, **params: Any) -> Any:
        logging.basicConfig(level=logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        ctx.obj = ctx.with_resource(Session())
        assert command.callback is not None
        return ctx.invoke(command.callback, **params)

    return LedgerCommand(
        name=name,
        params=list(command.params),
        callback=run,
        help=command.help,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


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
cli.add_command(adopt)
cli.add_command(audit)
cli.add_command(positions)
cli.add_command(rebuild)
cli.add_command(reconciliations)
cli.add_command(serve)


def main() -> None:
    cli(prog_name="commands")
