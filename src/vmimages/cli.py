"""The `vmimages` command: the operator's entry point. Each command calls the app's own code."""

from __future__ import annotations

import logging
from typing import Any

import click

from vmimages import __version__
from vmimages.config import Settings

DATABASE_HELP = "SQLite file of the catalog (created and filled on first start)."


@click.group()
@click.version_option(__version__, prog_name="vmimages")
def main() -> None:
    """vmimages: a VM image catalog that speaks the Zenlayer Cloud API 2.0 (VM)."""


@main.command()
@click.option("--host", help="Address to listen on.  [default: 127.0.0.1]")
@click.option("--port", type=int, help="Port to listen on.  [default: 8080]")
@click.option("--database", help=DATABASE_HELP + "  [default: vmimages.db]")
@click.option(
    "--no-default-catalog",
    is_flag=True,
    default=None,
    help="Leave a new database empty instead of loading the shipped catalog.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Server log level.  [default: info]",
)
@click.option("--access-log/--no-access-log", default=None, help="Log every request.")
def serve(**options: Any) -> None:
    """Serve the API on HOST:PORT from DATABASE."""
    import uvicorn

    from vmimages.app import create_app

    no_catalog = options.pop("no_default_catalog")
    settings = Settings.from_env(
        **options, load_default_catalog=None if no_catalog is None else not no_catalog
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    click.echo(
        f"vmimages {__version__}: serving the Zenlayer VM image API on"
        f" http://{settings.host}:{settings.port}/api/v2/vm from {settings.database}",
        err=True,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=settings.access_log,
        log_level=settings.log_level,
        server_header=False,
        date_header=False,
    )
