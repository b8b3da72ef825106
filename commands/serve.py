"""`commands serve`: the read-only web page over the same views and documents as the CLI."""

from __future__ import annotations

import signal
from types import FrameType

import click
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from commands.errors import EXIT_USAGE, CommandError
from commands.session import Session
from ledger.bootstrap import open_ledger
from ledger.brokers.port import BrokerAnswer, OrderTicket

# Long enough that guessing it over HTTP is hopeless.
MIN_TOKEN_LENGTH = 16
# waitress' worker threads: requests are short reads; more would only queue on the database.
THREADS = 4


class WebSettings(BaseSettings):
    """The page's own setting, from the environment or .env like every other."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    token: SecretStr | None = Field(None, alias="LEDGER_WEB_TOKEN")


class NoBroker:
    """The page's ledger reaches no broker, and needs no broker credentials: an order that a
    bug routed from here would be refused on the spot, never sent."""

    name = "none"
    paper = True

    def place_order(self, ticket: OrderTicket) -> BrokerAnswer:
        raise RuntimeError("the web page is read-only: it never routes an order")

    def find_order(self, client_order_id: str) -> BrokerAnswer | None:
        raise RuntimeError("the web page is read-only: it never asks a broker")


def is_loopback_host(host: str) -> bool:
    """Only this machine can reach it (127.0.0.0/8, ::1, localhost): no token needed."""
    from commands.web.guard import is_loopback

    return is_loopback(host)


def web_token() -> str | None:
    secret = WebSettings().token  # type: ignore[call-arg]
    if secret is None or not secret.get_secret_value():
        return None
    token = secret.get_secret_value()
    if len(token) < MIN_TOKEN_LENGTH or not token.isascii() or not token.isprintable():
        raise CommandError(
            f"LEDGER_WEB_TOKEN must be at least {MIN_TOKEN_LENGTH} printable ASCII characters "
            "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')",
            EXIT_USAGE,
        )
    return token


def _stop(signum: int, frame: FrameType | None) -> None:
    # waitress closes its sockets and threads on SystemExit from its loop.
    raise SystemExit(0)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any but this machine's own needs LEDGER_WEB_TOKEN.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed at start).")
@click.pass_obj
def serve(session: Session, host: str, port: int) -> None:
    """Serve the read-only web page: both books and their difference, every order and
    fill, any day's audit, the reconciliation runs, and a chart.

    Only GET and HEAD are answered: nothing on the page can place, change or cancel an
    order. With LEDGER_WEB_TOKEN set, every request must carry it (Authorization: Bearer
    TOKEN, or ?token=TOKEN once, which sets a cookie).
    """
    token = web_token()
    local = is_loopback_host(host)
    if not local and token is None:
        raise CommandError(
            f"--host {host} opens the page to other machines: set LEDGER_WEB_TOKEN (at least "
            f"{MIN_TOKEN_LENGTH} characters), which every request must then carry",
            EXIT_USAGE,
        )
    from waitress import create_server

    from commands.web import create_app
    from commands.web.context import WebContext
    from commands.web.pages import warm_up

    settings = session.settings
    context = WebContext(open_ledger(settings, adapter=NoBroker()), timezone=settings.timezone,
                         health=(settings.health_host, settings.health_port))
    try:
        click.echo("Bringing the views up to date...")
        # Only the catch-up comes before listening; the explanations of the differences
        # (seconds on a long history) are worked out in the background meanwhile, and the
        # books page shows the rest until they are in.
        warm_up(context)
        app = create_app(context, token=token, loopback_only=local and token is None)
        try:
            server = create_server(app, host=host, port=port, threads=THREADS,
                                   ident="tradeledger")
        except OSError as error:
            raise CommandError(
                f"cannot listen on {host}:{port}: {error.strerror or error}", EXIT_USAGE
            ) from None
        shown = f"[{host}]" if ":" in host else host
        bound = getattr(server, "effective_port", port)
        guarded = ", token required" if token is not None else ""
        click.echo(f"tradeledger page at http://{shown}:{bound}/ (read-only{guarded}; "
                   "Ctrl-C stops it)")
        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            server.run()
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        context.close()
    click.echo("tradeledger page stopped.")
