"""`vmimages serve`."""

from __future__ import annotations

import logging
import os
import shlex
from typing import Any

import click

from vmimages import __version__, admin
from vmimages.cli import (
    database_option,
    key_file_option,
    main,
    settings_from,
    with_store,
)
from vmimages.config import DEFAULT_DATABASE, Settings
from vmimages.store import Store


@main.command()
@click.option("--host", help="Address to listen on.  [default: 127.0.0.1]")
@click.option("--port", type=int, help="Port to listen on.  [default: 8080]")
@database_option
@key_file_option
@click.option(
    "--no-default-catalog",
    "no_catalog",
    is_flag=True,
    default=None,
    help="Leave a new database empty instead of loading the shipped catalog.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Server log level.  [default: info]",
)
@click.option(
    "--image-build-seconds",
    type=click.FloatRange(min=0),
    help="How long building a custom image takes.  [default: 10]",
)
@click.option(
    "--image-quota",
    type=click.IntRange(min=0),
    help="Custom images per account and location, unless set for the account.  [default: 5]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Server processes sharing the port (and the database).  [default: 1]",
)
@click.option("--access-log/--no-access-log", default=None, help="Log every request.")
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="Serve https with this certificate (PEM; `vmimages certs create` makes one).",
)
@click.option(
    "--tls-key", type=click.Path(exists=True, dir_okay=False), help="The certificate's key."
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0),
    help="Requests a second per account and action, in bursts as large; 0 for none.  [default: 0]",
)
@click.option(
    "--require-signed-action",
    is_flag=True,
    default=None,
    help="Refuse CreateImage, ModifyImagesAttributes and DeleteImages unless signed with"
    " x-zc-action among the SignedHeaders.",
)
def serve(no_catalog: bool | None, **options: Any) -> None:
    """Serve the API on HOST:PORT from DATABASE.

    On a database without accounts, an account `default` is made with one access key and one
    token, printed once.
    """
    import uvicorn

    from vmimages.app import create_app
    from vmimages.transport import BoundedHttpToolsProtocol

    settings = settings_from(
        **options, load_default_catalog=None if no_catalog is None else not no_catalog
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def prepare(store: Store) -> admin.FirstCredentials | None:
        vault = await admin.check_server_key(store, settings)  # refuses a key that does not fit
        return await admin.bootstrap(store, vault)

    first = with_store(settings, prepare)
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise click.UsageError("give --tls-cert and --tls-key together")
    url = f"{'https' if settings.tls_cert else 'http'}://{settings.host}:{settings.port}"
    if first is not None:
        click.echo(first_run_message(first, url, same_database(settings)), err=True)
    click.echo(
        f"vmimages {__version__}: serving the Zenlayer VM image API on {url}/api/v2/vm"
        f" from {settings.database}",
        err=True,
    )
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": BoundedHttpToolsProtocol,  # httptools, with limits (transport.py)
        "lifespan": "on",
        "access_log": settings.access_log,
        "log_level": settings.log_level,
        "server_header": False,
        "date_header": False,
        "proxy_headers": False,  # the app reads no client address
        "ssl_certfile": settings.tls_cert,
        "ssl_keyfile": settings.tls_key,
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    # Worker processes build their own app from the same settings, passed in the environment.
    os.environ.update(settings.to_env())
    uvicorn.run("vmimages.app:from_environment", factory=True, workers=settings.workers, **common)


def same_database(settings: Settings) -> str:
    """The options that make a pasted command use this server's database and key."""
    where = ""
    if settings.database != DEFAULT_DATABASE:
        where += f" --database {shlex.quote(settings.database)}"
    if settings.key_file and not settings.secret_key:
        where += f" --key-file {shlex.quote(settings.key_file)}"
    return where


def first_run_message(first: admin.FirstCredentials, url: str, where: str = "") -> str:
    return f"""
A new database: made account `{first.account}` and its first credentials.
They are shown this once and stored only sealed or hashed; keep them now.

  accessKeyId:       {first.access_key_id}
  accessKeyPassword: {first.access_key_password}
  token:             {first.token}

Try it:
  curl -s -X POST {url}/ -H 'Content-Type: application/json' \\
    -H 'X-TC-Action: DescribeImages' -H 'Authorization: Bearer {first.token}' -d '{{}}'

More credentials: vmimages keys create --account {first.account}{where}
                  vmimages tokens create --account {first.account}{where}
"""
