"""The `vmimages` command: the operator's entry point. Each command calls the app's own code."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from vmimages import __version__, admin
from vmimages.accounts import Credential, check_account_name
from vmimages.catalog import DomainError, Instance
from vmimages.catalogfile import (
    CatalogFileError,
    dump_document,
    is_yaml,
    read_catalog_file,
    to_document,
)
from vmimages.config import Settings
from vmimages.store import Store
from vmimages.vault import VaultError

T = TypeVar("T")

database_option = click.option(
    "--database",
    help="SQLite file of the catalog (created and filled on first use).  [default: vmimages.db]",
)
key_file_option = click.option(
    "--key-file",
    help="Server key file sealing access-key passwords (ignored when VMIMAGES_SECRET_KEY is"
    " set).  [default: DATABASE.key]",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def settings_from(**options: Any) -> Settings:
    try:
        return Settings.from_env(**options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run one piece of admin work on an open store; domain errors become clean CLI errors."""

    async def run() -> T:
        async with admin.opened_store(settings) as store:
            return await work(store)

    try:
        return asyncio.run(run())
    except CatalogFileError as exc:
        raise click.ClickException(
            "the catalog file was not imported; nothing changed:\n  " + "\n  ".join(exc.problems)
        ) from exc
    except (DomainError, VaultError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
@click.version_option(__version__, prog_name="vmimages")
def main() -> None:
    """vmimages: a VM image catalog that speaks the Zenlayer Cloud API 2.0 (VM)."""


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
def serve(no_catalog: bool | None, **options: Any) -> None:
    """Serve the API on HOST:PORT from DATABASE.

    On a database without accounts, an account `default` is made with one access key and one
    token, printed once.
    """
    import uvicorn

    from vmimages.app import create_app

    settings = settings_from(
        **options, load_default_catalog=None if no_catalog is None else not no_catalog
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    vault = admin.server_vault(settings)
    first = with_store(settings, lambda store: admin.bootstrap(store, vault))
    url = f"http://{settings.host}:{settings.port}"
    if first is not None:
        click.echo(first_run_message(first, url), err=True)
    click.echo(
        f"vmimages {__version__}: serving the Zenlayer VM image API on {url}/api/v2/vm"
        f" from {settings.database}",
        err=True,
    )
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": settings.access_log,
        "log_level": settings.log_level,
        "server_header": False,
        "date_header": False,
        "proxy_headers": False,  # the app reads no client address
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    # Worker processes build their own app from the same settings, passed in the environment.
    os.environ.update(settings.to_env())
    uvicorn.run("vmimages.app:from_environment", factory=True, workers=settings.workers, **common)


def first_run_message(first: admin.FirstCredentials, url: str) -> str:
    return f"""
A new database: made account `{first.account}` and its first credentials.
They are shown this once and stored only sealed or hashed; keep them now.

  accessKeyId:       {first.access_key_id}
  accessKeyPassword: {first.access_key_password}
  token:             {first.token}

Try it:
  curl -s -X POST {url}/ -H 'Content-Type: application/json' \\
    -H 'X-TC-Action: DescribeImages' -H 'Authorization: Bearer {first.token}' -d '{{}}'

More credentials: vmimages keys create --account {first.account}
                  vmimages tokens create --account {first.account}
"""


# Accounts ---------------------------------------------------------------------------------


@main.group()
def accounts() -> None:
    """Accounts own custom images, access keys and tokens."""


@accounts.command("create")
@click.argument("name")
@database_option
@json_option
def accounts_create(name: str, as_json: bool, **options: Any) -> None:
    """Make an account NAME."""
    try:
        check_account_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from exc
    account = with_store(settings_from(**options), lambda store: store.create_account(name))
    assert account is not None
    if as_json:
        click.echo(json.dumps({"account": account.name, "createdAt": account.created_at}))
    else:
        click.echo(f"made account {account.name}")


@accounts.command("list")
@database_option
@json_option
def accounts_list(as_json: bool, **options: Any) -> None:
    """List the accounts."""
    found = with_store(settings_from(**options), lambda store: store.list_accounts())
    if as_json:
        click.echo(json.dumps([{"account": a.name, "createdAt": a.created_at} for a in found]))
    else:
        for account in found:
            click.echo(f"{account.name}\t{account.created_at}")


@accounts.command("set-quota")
@click.argument("name")
@click.argument("max_count", metavar="MAX", required=False, type=click.IntRange(min=0))
@database_option
def accounts_set_quota(name: str, max_count: int | None, **options: Any) -> None:
    """Allow account NAME at most MAX custom images per location (no MAX: the server default)."""
    with_store(settings_from(**options), lambda store: store.set_image_quota(name, max_count))
    click.echo(
        f"quota of {name}: " + ("the server default" if max_count is None else str(max_count))
    )


# Instances ----------------------------------------------------------------------------------


@main.group()
def instances() -> None:
    """The instances CreateImage can image (ours is a directory; the VMs live elsewhere)."""


def _instance_doc(instance: Instance) -> dict[str, Any]:
    return {
        "instanceId": instance.instance_id,
        "account": instance.account,
        "regionId": instance.region_id,
        "zoneId": instance.zone_id,
        "diskSize": instance.disk_size_gb,
        "category": instance.category,
        "osType": instance.os_type,
        "version": instance.version,
        "createdAt": instance.created_at,
    }


@instances.command("add")
@click.argument("instance_id")
@click.option("--account", required=True, help="The account that owns the instance.")
@click.option("--location", required=True, help="Its region id or zone id.")
@click.option("--disk-size", type=click.IntRange(1, 65536), help="System disk in GB.")
@click.option(
    "--image",
    help="The public image it runs (its OS passes to images of it).  [default: the location's"
    " newest available Linux image]",
)
@database_option
@json_option
def instances_add(
    instance_id: str,
    account: str,
    location: str,
    disk_size: int | None,
    image: str | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Record instance INSTANCE_ID of an account."""
    if not 1 <= len(instance_id) <= 64:
        raise click.BadParameter("must be 1 to 64 characters", param_hint="INSTANCE_ID")
    instance = with_store(
        settings_from(**options),
        lambda store: store.add_instance(instance_id, account, location, disk_size, image),
    )
    if as_json:
        click.echo(json.dumps(_instance_doc(instance)))
    else:
        click.echo(
            f"added instance {instance.instance_id} of {instance.account} in {instance.zone_id}"
            f" ({instance.category} {instance.version}, {instance.disk_size_gb} GB)"
        )


@instances.command("list")
@click.option("--account", help="Only this account's.")
@database_option
@json_option
def instances_list(account: str | None, as_json: bool, **options: Any) -> None:
    """List the instances."""
    found = with_store(
        settings_from(**options), lambda store: store.list_instances(account=account)
    )
    if as_json:
        click.echo(json.dumps([_instance_doc(i) for i in found]))
    else:
        for i in found:
            click.echo(
                f"{i.instance_id}\t{i.account}\t{i.zone_id}\t{i.category} {i.version}"
                f"\t{i.disk_size_gb} GB"
            )


@instances.command("remove")
@click.argument("instance_id")
@database_option
def instances_remove(instance_id: str, **options: Any) -> None:
    """Forget an instance; images still being built from it fail (UNAVAILABLE)."""
    with_store(settings_from(**options), lambda store: store.remove_instance(instance_id))
    click.echo(f"removed instance {instance_id}")


# The public catalog ---------------------------------------------------------------------------


@main.group()
def images() -> None:
    """Publish and maintain the public catalog from JSON or YAML files."""


@images.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@database_option
def images_import(file: Path, **options: Any) -> None:
    """Publish or update the locations and public images of FILE (.json, .yaml or .yml).

    The whole file is checked first; any problem and nothing changes. Importing the same file
    twice changes nothing the second time. Public images not in FILE are kept.
    """
    report = with_store(
        settings_from(**options), lambda store: store.import_catalog(read_catalog_file(file))
    )
    click.echo(
        f"imported {file}: locations {report.locations_added} added,"
        f" {report.locations_updated} updated; images {report.images_added} added,"
        f" {report.images_updated} updated; {report.unchanged} unchanged"
    )


@images.command("export")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="File to write."
)
@click.option(
    "--format", "fmt", type=click.Choice(["json", "yaml"]),
    help="[default: from the output's name, else json]",
)  # fmt: skip
@database_option
def images_export(output: Path | None, fmt: str | None, **options: Any) -> None:
    """Write every location and public image in the format `images import` reads."""
    catalog = with_store(settings_from(**options), lambda store: store.export_catalog())
    as_yaml = fmt == "yaml" or (fmt is None and output is not None and is_yaml(output))
    text = dump_document(to_document(catalog), as_yaml)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(
            f"exported {len(catalog.locations)} locations and {len(catalog.images)} images"
            f" to {output}",
            err=True,
        )


# Access keys and tokens ---------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Access keys sign requests with ZC2-HMAC-SHA256."""


@keys.command("create")
@click.option("--account", required=True, help="The account the key belongs to.")
@database_option
@key_file_option
@json_option
def keys_create(account: str, as_json: bool, **options: Any) -> None:
    """Make an access key; its password is printed this once."""
    settings = settings_from(**options)
    vault = admin.server_vault(settings)
    key_id, password = with_store(
        settings, lambda store: admin.create_access_key(store, vault, account)
    )
    if as_json:
        click.echo(json.dumps({"accessKeyId": key_id, "accessKeyPassword": password}))
    else:
        click.echo(f"accessKeyId:       {key_id}\naccessKeyPassword: {password}")


@main.group()
def tokens() -> None:
    """Personal access tokens, sent as `Authorization: Bearer <token>`."""


@tokens.command("create")
@click.option("--account", required=True, help="The account the token belongs to.")
@database_option
@json_option
def tokens_create(account: str, as_json: bool, **options: Any) -> None:
    """Make a token; it is printed this once."""
    token = with_store(settings_from(**options), lambda store: admin.create_token(store, account))
    click.echo(json.dumps({"token": token}) if as_json else token)


def _print_credentials(found: list[Credential], as_json: bool, id_name: str) -> None:
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        id_name: c.id,
                        "account": c.account,
                        "status": c.status,
                        "createdAt": c.created_at,
                        "revokedAt": c.revoked_at,
                    }
                    for c in found
                ]
            )
        )
        return
    for c in found:
        click.echo(f"{c.id}\t{c.account}\t{c.status}\t{c.created_at}\t{c.revoked_at or ''}")


def _add_list_and_revoke(group: click.Group, kind: str, id_name: str, noun: str) -> None:
    @group.command("list")
    @click.option("--account", help="Only this account's.")
    @database_option
    @json_option
    def list_(account: str | None, as_json: bool, **options: Any) -> None:
        found = with_store(
            settings_from(**options), lambda store: store.list_credentials(kind, account)
        )
        _print_credentials(found, as_json, id_name)

    list_.help = f"List {noun}s (never their secrets)."

    @group.command("revoke")
    @click.argument("ident")
    @database_option
    def revoke(ident: str, **options: Any) -> None:
        ident = admin.credential_ident(kind, ident)
        revoked = with_store(
            settings_from(**options), lambda store: store.revoke_credential(kind, ident)
        )
        click.echo(f"revoked {noun} {revoked.id} of account {revoked.account}")

    revoke.help = f"Revoke a {noun}; every server process refuses it from the next request on." + (
        " IDENT is the token id or the token itself." if kind == "token" else ""
    )


_add_list_and_revoke(keys, "key", "accessKeyId", "access key")
_add_list_and_revoke(tokens, "token", "tokenId", "token")
