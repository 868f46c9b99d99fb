"""`vmimages serve`."""

from __future__ import annotations

import atexit
import logging
import logging.config
import os
import shlex
import shutil
import sys
import tempfile
from typing import Any

import click

from vmimages import __version__, admin, build, dev, logs, stale_modules
from vmimages.cli import (
    database_option,
    key_file_option,
    main,
    no_catalog_option,
    settings_from,
    with_store,
)
from vmimages.config import DEFAULT_DATABASE, POSTGRES_SCHEMES, Settings
from vmimages.logs import LOG_FORMATS
from vmimages.metrics import MULTIPROCESS_DIR
from vmimages.store import OperatorStore

log = logging.getLogger("vmimages")


@main.command()
@click.option("--host", help="Address to listen on.  [default: 127.0.0.1]")
@click.option("--port", type=int, help="Port to listen on.  [default: 8080]")
@database_option
@click.option(
    "--read-database",
    help="A PostgreSQL hot standby of --database to read from; writes go to --database"
    " (docs/deploy.md, Regions and read replicas).",
)
@click.option(
    "--max-replica-lag",
    type=click.FloatRange(min=0),
    help="Seconds the read database may be behind; further behind, reads go to --database"
    " until it catches up.  [default: 1]",
)
@key_file_option
@no_catalog_option
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Server log level.  [default: info]",
)
@click.option(
    "--image-build-seconds",
    type=click.FloatRange(min=0),
    help="How long building a custom image takes; `inf`: until ended through --dev's"
    " /_vmimages/builds.  [default: 10]",
)
@click.option(
    "--history-retention-days",
    type=click.FloatRange(min=0, min_open=True),
    help="How long the history of changes is kept for DescribeImageChanges; an older cursor"
    " must start again.  [default: 7]",
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
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    help="Every log line as text, or as one JSON object.  [default: text]",
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="Log one line per request (docs/deploy.md, Logs).  [default: on]",
)
@click.option(
    "--metrics/--no-metrics",
    default=None,
    help="Serve Prometheus metrics at GET /metrics (docs/deploy.md, Metrics).  [default: on]",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    help="Serve GET /metrics on this port instead of the API's (0: the API's).  [default: 0]",
)
@click.option(
    "--metrics-host",
    help="The address the --metrics-port listener binds.  [default: 127.0.0.1]",
)
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
    help="Strict mode, for clients that sign their action (the official SDKs do not): refuse"
    " signed CreateImage, ModifyImagesAttributes and DeleteImages unless x-zc-action is among"
    " the SignedHeaders, and carry out an identical one once (docs/auth.md, Replays).",
)
@click.option(
    "--console/--no-console",
    default=None,
    help="Serve the web console at GET /console (docs/console.md).  [default: on]",
)
@click.option(
    "--dev",
    is_flag=True,
    default=None,
    help="Turn on the control endpoints for tests under /_vmimages/ (docs/testing.md).",
)
@click.option(
    "--accept-any-credentials",
    is_flag=True,
    default=None,
    help="With --dev: answer any access key id (unchecked signature) or bearer token as the"
    " account of that name, made on first use (as moto accepts `testing`).",
)
@click.option(
    "--dev-allow-remote",
    is_flag=True,
    default=None,
    help="Let --dev listen on an address beyond loopback (anyone who reaches it can reset).",
)
def serve(no_catalog: bool | None, **options: Any) -> None:
    """Serve the API on HOST:PORT from DATABASE.

    On a database without accounts, an account `default` is made with one access key and one
    token, printed once.
    """
    import uvicorn

    from vmimages.app import create_app
    from vmimages.transport import SHUTDOWN_GRACE, BoundedHttpToolsProtocol

    settings = settings_from(
        **options, load_default_catalog=None if no_catalog is None else not no_catalog
    )
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise click.UsageError("give --tls-cert and --tls-key together")
    if settings.dev and not settings.dev_allow_remote and not dev.is_loopback(settings.host):
        raise click.UsageError(
            f"--dev serves unauthenticated control endpoints; it listens on loopback only, not"
            f" on {settings.host}, unless --dev-allow-remote is given too"
        )
    if settings.read_database and not (
        settings.store_kind == "postgres" and settings.read_database.startswith(POSTGRES_SCHEMES)
    ):
        raise click.UsageError(
            "--read-database is a PostgreSQL hot standby of a PostgreSQL --database"
            " (postgresql:// URLs, both)"
        )
    if settings.accept_any_credentials and not settings.dev:
        raise click.UsageError("--accept-any-credentials is for --dev servers only")
    if settings.log_format not in LOG_FORMATS:
        raise click.UsageError(f"VMIMAGES_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
    log_config = logs.log_config(settings.log_format, settings.log_level)
    logging.config.dictConfig(log_config)
    logs.hide(settings.secrets)
    json_logs = settings.log_format == "json"

    async def prepare(store: OperatorStore) -> admin.FirstCredentials | str | None:
        vault = await admin.check_server_key(store, settings)  # refuses a key that does not fit
        if json_logs:  # no secret in a log: the first account gets no credentials
            return await admin.first_account(store)
        return await admin.bootstrap(store, vault)

    try:
        first = with_store(settings, prepare, create=True)
    except click.ClickException as exc:
        if not json_logs:
            raise
        log.error("%s", exc.format_message())
        sys.exit(exc.exit_code)
    url = f"{'https' if settings.tls_cert else 'http'}://{settings.host}:{settings.port}"
    where = same_database(settings)
    if isinstance(first, admin.FirstCredentials):
        click.echo(first_run_message(first, url, where), err=True)
    elif first is not None:
        log.info(
            "a new database: made account `%s` without credentials (JSON logs never show a"
            " secret); make them with `vmimages keys create --account %s%s` and"
            " `vmimages tokens create --account %s%s`",
            first, first, where, first, where,
        )  # fmt: skip
    for source in stale_modules():
        log.warning("%s changed since it was compiled: this server runs it as it was; run"
                    " `pip install -e .` again", source)  # fmt: skip
    log.info(
        "vmimages %s (%s build): serving the Zenlayer VM image API on %s/api/v2/vm from %s%s",
        __version__, build(), url, settings.database_shown,
        f", reading from {settings.read_database_shown}" if settings.read_database else "",
    )  # fmt: skip
    if settings.dev:
        log.warning("--dev: control endpoints for tests are on under %s%s", url, dev.PREFIX)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": BoundedHttpToolsProtocol,  # httptools, with limits (transport.py)
        "lifespan": "on",
        "access_log": False,  # the app logs each request itself (logs.py)
        "log_config": log_config,
        "log_level": settings.log_level,
        "server_header": False,
        "date_header": False,
        "proxy_headers": False,  # the app reads no client address
        # Past the grace, uvicorn ends what is left: the process exits within the drain and
        # about 4 s after SIGTERM, whatever its clients do (docs/deploy.md, "Shutdown").
        "timeout_graceful_shutdown": SHUTDOWN_GRACE,
        # TLS is the protocol's (transport.py), so the limits hold from the TCP accept on.
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    # Worker processes build their own app from the same settings, passed in the environment;
    # their metrics meet in a folder of files that lives as long as this process.
    os.environ.update(settings.to_env())
    if settings.read_database:  # the node's write position, shared by its workers (replica.py)
        from vmimages.store.replica import MARK_FILE

        handle, mark = tempfile.mkstemp(prefix="vmimages-replica-mark-")
        os.write(handle, bytes(8))
        os.close(handle)
        atexit.register(os.unlink, mark)
        os.environ[MARK_FILE] = mark
    if settings.metrics:
        folder = tempfile.mkdtemp(prefix="vmimages-metrics-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ[MULTIPROCESS_DIR] = folder
    uvicorn.run("vmimages.app:from_environment", factory=True, workers=settings.workers, **common)


@main.command()
@database_option
@key_file_option
@no_catalog_option
def init(no_catalog: bool | None, **options: Any) -> None:
    """Make the database DATABASE (and its server key) without serving it.

    Only this and `serve` make a database; every other command refuses one that does not exist.
    On a database that exists already it applies pending migrations and checks the server key.
    No account is made: `vmimages accounts create`, or the first `serve`, makes one.
    """
    settings = settings_from(
        **options, load_default_catalog=None if no_catalog is None else not no_catalog
    )

    async def prepare(store: OperatorStore) -> str:
        vault = await admin.check_server_key(store, settings)
        return vault.fingerprint

    fingerprint = with_store(settings, prepare, create=True)
    click.echo(
        f"{settings.database_shown} is a vmimages database; its server key ({fingerprint}) is"
        f" in {admin.key_source(settings)}"
    )


def same_database(settings: Settings) -> str:
    """The options that make a pasted command use this server's database and key."""
    where = ""
    if settings.database != DEFAULT_DATABASE:
        where += f" --database {shlex.quote(settings.database_shown)}"
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
