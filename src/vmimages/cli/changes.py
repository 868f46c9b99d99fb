"""`vmimages changes`: the history of the catalog, with who made each change (docs/changes.md).

vmimages changes --image img-AbCd1234          who made, changed and deleted it, and when
vmimages changes --account alice --json        an account's changes, a JSON object a line
vmimages changes --since 1200 --follow         from change 1200 on, then as they come
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import click

from vmimages.accounts import AccountNotFound
from vmimages.catalog import PUBLIC_OWNER
from vmimages.cli import database_option, json_option, main, settings_from, with_store
from vmimages.history import Recorded
from vmimages.store import OperatorStore

FOLLOW_EVERY = 1.0  # seconds between looks with --follow
PAGE = 1000


@main.command("changes")
@click.option("--since", type=click.IntRange(min=0), default=0, help="After this change number.")
@click.option("--image", "image_id", help="Only this image's changes.")
@click.option("--account", help="Only the changes of this account's custom images.")
@click.option("--follow", is_flag=True, help="Keep printing changes as they are made (Ctrl-C).")
@database_option
@json_option
def changes(
    since: int,
    image_id: str | None,
    account: str | None,
    follow: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """The history of the catalog, oldest first: each change to an image, its number, when,
    what changed, and who made it (an account with its credential and request id, or the
    command that did)."""
    settings = settings_from(**options)

    async def work(store: OperatorStore) -> None:
        names = {a.id: a.name for a in await store.list_accounts()} | {PUBLIC_OWNER: "public"}
        owner = None
        if account is not None:
            owner = next((i for i, name in names.items() if name == account), None)
            if owner is None or owner == PUBLIC_OWNER:
                raise AccountNotFound(account)
        after = since
        while True:
            found = await store.list_history(
                since=after, image_id=image_id, owner=owner, limit=PAGE
            )
            for change in found:
                click.echo(line(change, names, as_json))
                after = change.seq
            if len(found) == PAGE:
                continue
            if not follow:
                return
            await asyncio.sleep(FOLLOW_EVERY)

    with contextlib.suppress(KeyboardInterrupt):  # --follow ends with Ctrl-C
        with_store(settings, work)


def line(change: Recorded, names: dict[int, str], as_json: bool) -> str:
    owner = names.get(change.owner, f"account {change.owner}")
    if as_json:
        return json.dumps({
            "seq": change.seq, "at": change.at, "changeType": change.kind,
            "imageId": change.image_id, "owner": owner, "regionId": change.region_id,
            "zoneId": change.zone_id, "by": change.actor, "detail": change.detail,
        }, ensure_ascii=False)  # fmt: skip
    what = ""
    if change.detail:
        what = " " + ", ".join(
            f"{k} {v[0]!r} -> {v[1]!r}" if isinstance(v, list) else f"{k} {v!r}"
            for k, v in change.detail.items()
        )
    return (
        f"{change.seq:>8} {change.at} {change.kind:<8} {change.image_id} ({owner},"
        f" {change.zone_id}){what} by {change.actor}"
    )
