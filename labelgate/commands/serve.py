"""``labelgate serve``: the review web app for a database, standalone (deployments, worker runs, later reviews)."""

from __future__ import annotations

import click

from labelgate.clikit import db_option, handle_errors, verbose_option
from labelgate.web.server import DEFAULT_HOST, DEFAULT_PORT


@click.command("serve")
@db_option
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to bind; non-loopback needs --token.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535), help="Port to bind.")
@click.option(
    "--token",
    envvar="LABELGATE_TOKEN",
    default=None,
    help="Access token: requests need 'Authorization: Bearer TOKEN' or a login.  [env: LABELGATE_TOKEN]",
)
@click.option("--reviewer", default=None, help="Reviewer name when the page names none.  [default: your user name]")
@verbose_option
@handle_errors
def serve_cmd(db_path: str, host: str, port: int, token: str | None, reviewer: str | None, verbose: bool) -> None:
    """Serve the review page and its JSON API for the runs in --db.

    "Finish review" resumes a run's paused flow through the Prefect API (PREFECT_API_URL, or the
    ephemeral API of PREFECT_HOME shared with the process that runs the flow).
    """
    from pathlib import Path

    from labelgate.errors import RunNotFoundError
    from labelgate.web.app import create_app
    from labelgate.web.server import check_host, serve

    check_host(host, token)
    if not Path(db_path).exists():
        raise RunNotFoundError(f"database {db_path!r} does not exist; run `labelgate run` first or pass --db")
    app = create_app(db_path, token=token, reviewer=reviewer)

    def announce(url: str) -> None:
        click.echo(f"labelgate serve for {db_path}  (Ctrl-C stops)")
        click.echo(f"  review     {url}/runs/latest")
        click.echo(f"  dashboard  {url}/dashboard")
        click.echo(f"  runs       {url}/")
        if token:
            click.echo("  access needs the token: sign in on the page, or send 'Authorization: Bearer TOKEN'")

    serve(app, host=host, port=port, token=token, announce=announce)
