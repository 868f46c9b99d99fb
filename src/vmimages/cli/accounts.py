"""`vmimages accounts`, `keys` and `tokens`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from vmimages import admin
from vmimages.accounts import Credential, check_account_name
from vmimages.cli import (
    database_option,
    json_option,
    key_file_option,
    main,
    settings_from,
    with_store,
)
from vmimages.store import OperatorStore

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
        click.echo(json.dumps([
            {"account": a.name, "createdAt": a.created_at, "imageQuota": a.image_quota,
             "status": a.status}
            for a in found
        ]))  # fmt: skip
    else:
        click.echo("ACCOUNT\tCREATED\tIMAGE QUOTA\tSTATUS")
        for account in found:
            quota = "default" if account.image_quota is None else account.image_quota
            click.echo(f"{account.name}\t{account.created_at}\t{quota}\t{account.status}")


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


@accounts.command("disable")
@click.argument("name")
@database_option
def accounts_disable(name: str, **options: Any) -> None:
    """Refuse every credential of account NAME (401), on every node from its next request,
    until `accounts enable NAME`. Its images, instances and credentials stay."""
    with_store(settings_from(**options), lambda store: store.set_account_enabled(name, False))
    click.echo(f"disabled account {name}: its access keys and tokens are refused")


@accounts.command("enable")
@click.argument("name")
@database_option
def accounts_enable(name: str, **options: Any) -> None:
    """Accept the credentials of account NAME again (those not revoked)."""
    with_store(settings_from(**options), lambda store: store.set_account_enabled(name, True))
    click.echo(f"enabled account {name}")


@accounts.command("delete")
@click.argument("name")
@click.option(
    "--with-images", is_flag=True, help="Delete the account's custom images too (else refused)."
)
@click.option("--yes", is_flag=True, help="Do not ask; needed where no one can be asked.")
@database_option
@json_option
def accounts_delete(name: str, with_images: bool, yes: bool, as_json: bool, **options: Any) -> None:
    """Delete account NAME: its instances, its credentials (revoked) and, with --with-images,
    its custom images (each deletion in the history). It cannot be undone: the name stays
    taken by the deleted account and nothing comes back. Asks for the name to be typed again
    unless --yes."""
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(f"deleting account {name} cannot be undone: add --yes")
        typed = click.prompt(f"Deleting account {name} cannot be undone. Type its name")
        if typed != name:
            raise click.ClickException("the name typed is not the account's: nothing deleted")
    settings = settings_from(**options)
    gone = with_store(settings, lambda store: store.delete_account(name, with_images=with_images))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "account": gone.name,
                    "images": gone.images,
                    "instances": gone.instances,
                    "credentials": gone.credentials,
                }
            )
        )
    else:
        click.echo(
            f"deleted account {gone.name}: {gone.images} custom images,"
            f" {gone.instances} instances, {gone.credentials} credentials revoked"
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

    async def create(store: OperatorStore) -> tuple[str, str]:
        vault = await admin.check_server_key(store, settings)
        return await admin.create_access_key(store, vault, account)

    key_id, password = with_store(settings, create)
    if as_json:
        click.echo(json.dumps({"accessKeyId": key_id, "accessKeyPassword": password}))
    else:
        click.echo(f"accessKeyId:       {key_id}\naccessKeyPassword: {password}")


@keys.command("rotate-server-key")
@database_option
@key_file_option
def keys_rotate_server_key(**options: Any) -> None:
    """Seal every access-key password under a newer server key, in one transaction.

    The newer key is the first of the key source when the database records another one (put
    it there on every node first: docs/deploy.md gives the order for a fleet); otherwise a new
    key is made and put first in the key file, the old one kept after it. Servers reading that
    file follow by themselves; others need the new key before this runs."""
    settings = settings_from(**options)
    count, fingerprint = with_store(
        settings, lambda store: admin.rotate_server_key(store, settings)
    )
    click.echo(
        f"sealed {count} access-key passwords under the server key {fingerprint}, first in"
        f" {admin.key_source(settings)}."
    )


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
    click.echo(f"{id_name.upper()}\tACCOUNT\tSTATUS\tCREATED\tREVOKED")
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
