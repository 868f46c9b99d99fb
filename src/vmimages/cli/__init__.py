"""The `vmimages` command: the operator's entry point. Each command calls the app's own code.

The commands live in `serve`, `accounts` (accounts, keys, tokens) and `catalog` (instances,
public images); this module holds what they share.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from vmimages import __version__, admin, history
from vmimages.catalog import DomainError, NoDatabase
from vmimages.catalogfile import CatalogFileError
from vmimages.config import Settings, masked
from vmimages.store import OperatorStore
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
no_catalog_option = click.option(
    "--no-default-catalog",
    "no_catalog",
    is_flag=True,
    default=None,
    help="Leave a new database empty instead of loading the shipped catalog.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
quiet_option = click.option(
    "--quiet", "-q", is_flag=True, help="Print nothing but errors: no progress, no summary."
)

BAR_FROM_IMAGES = 10_000  # work this large shows a progress bar (a second or more)
BAR_FROM_BYTES = 1 << 20


@contextmanager
def progress_bar(
    label: str, total: int, quiet: bool, at_least: int = BAR_FROM_IMAGES
) -> Iterator[Callable[[int], None]]:
    """Something to tell how much more of `total` is done: a bar on stderr when the work is at
    least `at_least` and stderr is a terminal (never with --quiet), else nothing."""
    if quiet or total < at_least or not sys.stderr.isatty():
        yield lambda done: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def operator() -> str:
    """Who runs the command, as the history records it: the OS user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown user"


def settings_from(**options: Any) -> Settings:
    try:
        return Settings.from_env(**options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def with_store(
    settings: Settings, work: Callable[[OperatorStore], Awaitable[T]], *, create: bool = False
) -> T:
    """Run one piece of admin work on an open store; domain errors become clean CLI errors.
    Only `serve` and `init` make a database (create=True); other commands refuse a path or URL
    that holds none, so a typo makes nothing."""

    who = history.Actor(command=f"{click.get_current_context().command_path} (by {operator()})")

    async def run() -> T:
        history.set_actor(who)  # the changes the command makes are the operator's (history.py)
        async with admin.opened_store(settings, create=create) as store:
            return await work(store)

    try:
        return asyncio.run(run())
    except CatalogFileError as exc:
        raise not_imported(exc) from exc
    except NoDatabase as exc:
        raise click.ClickException(
            f"{exc}: check --database (or VMIMAGES_DATABASE); `vmimages init` or"
            " `vmimages serve` makes one"
        ) from exc
    except (DomainError, VaultError, admin.ServerKeyError) as exc:
        raise click.ClickException(masked(str(exc), settings.secrets)) from exc


def not_imported(exc: CatalogFileError) -> click.ClickException:
    return click.ClickException(
        "the catalog file was not imported; nothing changed:\n  " + "\n  ".join(exc.problems)
    )


@click.group()
@click.version_option(__version__, prog_name="vmimages")
def main() -> None:
    """vmimages: a VM image catalog that speaks the Zenlayer Cloud API 2.0 (VM)."""


# The commands register themselves on `main` when their modules are imported.
from vmimages.cli import accounts, backup, catalog, certs, changes, serve  # noqa: E402

__all__ = ["accounts", "backup", "catalog", "certs", "changes", "main", "serve"]
