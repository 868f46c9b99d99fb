"""`vmimages backup` and `vmimages restore` (store/sql/backup.py; docs/deploy.md, Backups)."""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from vmimages.admin import key_source
from vmimages.cli import (
    database_option,
    json_option,
    key_file_option,
    main,
    settings_from,
    with_store,
)
from vmimages.store import OperatorStore
from vmimages.store.sql.backup import BackupProblem
from vmimages.vault import VaultError, load_vault


def opened(path: Path, mode: str, name: Path | None = None) -> IO[str]:
    """A backup file as text: gzip when it is named (or `name` is) .gz."""
    if (name or path).suffix == ".gz":
        return io.TextIOWrapper(gzip.GzipFile(path, mode + "b"), encoding="utf-8")
    return path.open(mode, encoding="utf-8")


@main.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The backup file to write (.gz: compressed).")  # fmt: skip
@database_option
@json_option
def backup(out: Path, as_json: bool, **options: Any) -> None:
    """Write everything in DATABASE to a backup file: accounts, credentials (passwords still
    sealed), instances, images and the history, read in one snapshot while servers run.

    The server key is not in the file: keep it apart, as for the database itself."""
    settings = settings_from(**options)
    partial = out.with_name(out.name + ".partial")

    async def write(store: OperatorStore) -> tuple[dict[str, int], str | None]:
        key, counts = None, {}
        with opened(partial, "w", name=out) as file:
            async for line in store.backup_lines():
                file.write(json.dumps(line, separators=(",", ":")) + "\n")
                if isinstance(line, dict) and "serverKey" in line:
                    key = line["serverKey"]
                if isinstance(line, dict) and line.get("complete"):
                    counts = line["rows"]
            file.flush()
        return counts, key

    try:
        counts, key = with_store(settings, write)
        with partial.open("rb") as done:
            os.fsync(done.fileno())
        partial.replace(out)  # a whole backup or none under its name
    finally:
        partial.unlink(missing_ok=True)
    if as_json:
        click.echo(json.dumps({"file": str(out), "rows": counts, "serverKey": key}))
        return
    click.echo(
        f"backed up {settings.database_shown} to {out}: {counts.get('accounts', 0) - 1}"
        f" accounts, {counts.get('images', 0)} images, {counts.get('image_changes', 0)} changes"
        f" of history. Access-key passwords are sealed under server key {key or '(none yet)'},"
        " which the file does not hold: keep that key to restore."
    )


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@database_option
@key_file_option
@json_option
def restore(file: Path, as_json: bool, **options: Any) -> None:
    """Restore a backup FILE into DATABASE, which must be new or empty (it is made if missing,
    without the shipped catalog). The server key (VMIMAGES_SECRET_KEY or --key-file) must be
    the one the backup's access-key passwords are sealed under."""
    settings = settings_from(**options, load_default_catalog=False)
    with opened(file, "r") as text:
        header = json.loads(text.readline() or "null")
    recorded = header.get("serverKey") if isinstance(header, dict) else None
    if recorded is not None:
        try:
            vault = load_vault(settings.secret_key, settings.key_path, create=False,
                               previous_keys=settings.previous_secret_keys)  # fmt: skip
        except VaultError as exc:
            raise click.ClickException(
                f"{exc}: the backup's access-key passwords are sealed under server key"
                f" {recorded}; give that key (VMIMAGES_SECRET_KEY or --key-file)"
            ) from None
        if not vault.holds(recorded):
            raise click.ClickException(
                f"the server key in {key_source(settings)} (fingerprint"
                f" {', '.join(vault.fingerprints)}) is not the one the backup's access-key"
                f" passwords are sealed under ({recorded}): give that key"
            )

    def lines() -> Iterator[Any]:
        with opened(file, "r") as text:
            for number, line in enumerate(text, start=1):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    raise BackupProblem(f"line {number} is not JSON: the file is damaged") from None

    try:
        written = with_store(settings, lambda store: store.restore_lines(lines()), create=True)
    except BackupProblem as exc:
        raise click.ClickException(f"not restored, nothing changed: {exc}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise click.ClickException(f"not restored, nothing changed: {file}: {exc}") from None
    if as_json:
        click.echo(json.dumps({"database": settings.database_shown, "rows": written}))
    else:
        click.echo(
            f"restored {file} into {settings.database_shown}:"
            f" {written.get('accounts', 1) - 1} accounts, {written.get('images', 0)} images,"
            f" {written.get('image_changes', 0)} changes of history"
        )
