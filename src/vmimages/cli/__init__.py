"""The `vmimages` command: the operator's entry point. Each command calls the app's own code.

The commands live in `serve`, `accounts` (accounts, keys, tokens) and `catalog` (instances,
public images); this module holds what they share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from vmimages import __version__, admin
from vmimages.catalog import DomainError
from vmimages.catalogfile import CatalogFileError
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
    " set).  [default: DATABASE.key for a SQLite file, vmimages.key for PostgreSQL]",
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
    except (DomainError, VaultError, admin.ServerKeyError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
@click.version_option(__version__, prog_name="vmimages")
def main() -> None:
    """vmimages: a VM image catalog that speaks the Zenlayer Cloud API 2.0 (VM)."""


# The commands register themselves on `main` when their modules are imported.
from vmimages.cli import accounts, catalog, certs, serve  # noqa: E402

__all__ = ["accounts", "catalog", "certs", "main", "serve"]
