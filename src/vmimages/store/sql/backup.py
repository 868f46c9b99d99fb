"""Backups: every table's rows, read in one snapshot, as JSON lines; restored into an empty
database of either kind (`vmimages backup` and `vmimages restore`, docs/deploy.md).

The file: a header line, then for each table a line naming it and its columns, its rows (one
JSON array a line) and a line counting them; then a last line that says the backup is whole.
Values are written by their column's kind, so a backup of SQLite restores into PostgreSQL and
the other way round: booleans as true/false, bytes (sealed passwords, token hashes) as base64.
Access-key passwords stay sealed: the server key is not in the backup, and a restore checks that
the key it is given is the one they are sealed under.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterable
from typing import Any

from vmimages.store.sql.base import CATALOG_SCOPE, CREDENTIALS_SCOPE, SqlBase, migrations

# Every table a backup holds, in the order a restore writes them (what a row refers to comes
# first): (table, key column, columns). A column is "name" (text or number as it is),
# "name:bool" or "name:bytes". used_signatures is left out: it only guards a few minutes of
# replays (docs/auth.md). tests/test_backup.py checks this list against the database's own.
TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("accounts", "id", ("id", "name", "created_at", "image_quota", "disabled_at", "deleted_at")),
    ("locations", "id", ("id", "region_id", "zone_id", "name", "support_security_group:bool",
                         "support_network_type", "support_ipv6:bool",
                         "support_cpu_pass_through:bool", "network_line_type")),
    ("images", "pk", ("pk", "image_id", "owner", "location", "name", "name_folded",
                      "description", "category", "os_type", "version", "size_gb", "status",
                      "create_time", "instance_id", "build_lease")),
    ("instances", "instance_id", ("instance_id", "account_id", "location", "disk_size_gb",
                                  "category", "os_type", "version", "created_at")),
    ("access_keys", "key_id", ("key_id", "account_id", "sealed:bytes", "created_at",
                               "revoked_at")),
    ("tokens", "token_id", ("token_id", "account_id", "token_hash:bytes", "created_at",
                            "revoked_at")),
    ("image_changes", "seq", ("seq", "image_id", "owner", "region_id", "zone_id", "kind", "at",
                              "actor", "detail")),
    ("changes", "scope", ("scope", "seq")),
    ("change_counter", "id", ("id", "seq")),
    ("history_floor", "id", ("id", "seq")),
    ("server_key", "id", ("id", "fingerprint")),
)  # fmt: skip
# Rows a new database may hold already, which a restore replaces: the operator's account and
# the counters (made by the migrations), the server key's fingerprint (`vmimages init`).
ALREADY_THERE = {"accounts": "id = 0", "change_counter": "id = 1", "history_floor": "id = 1",
                 "server_key": "id = 1"}  # fmt: skip
# PostgreSQL's identity columns, set past the restored rows so new rows get new numbers.
IDENTITIES = (("accounts", "id"), ("locations", "id"), ("images", "pk"))
PAGE = 5000  # rows read at a time (keyset pages, in the one snapshot)
FORMAT = "vmimages-backup"


def schema_version() -> int:
    """The newest migration this version ships: what its databases look like."""
    return max(version for version, _ in migrations("sqlite"))


def names(columns: Iterable[str]) -> list[str]:
    return [column.split(":")[0] for column in columns]


def kind_of(column: str) -> str:
    """A column's kind as TABLES writes it: "bool", "bytes" or "" (as it is)."""
    return column.partition(":")[2]


def to_file(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if kind == "bool":
        return bool(value)
    return value


def from_file(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "bytes":
        return base64.b64decode(value)
    return value


class BackupProblem(Exception):
    """A backup that cannot be restored here; the message says why."""


class SqlBackup(SqlBase):
    async def backup_lines(self) -> AsyncIterator[dict[str, Any] | list[Any]]:
        """The backup as it is written: dicts for the header and table lines, lists for rows;
        all read in one transaction, a snapshot that writes going on beside it do not change."""
        async with self.db.transaction(write=False) as tx:
            key = await tx.fetchone("SELECT fingerprint FROM server_key WHERE id = 1")
            yield {"format": FORMAT, "formatVersion": 1, "schemaVersion": schema_version(),
                   "serverKey": None if key is None else key[0]}  # fmt: skip
            counts = {}
            for table, key_column, columns in TABLES:
                kinds = [kind_of(c) for c in columns]
                yield {"table": table, "columns": names(columns)}
                listed, after, count = ", ".join(names(columns)), None, 0
                position = names(columns).index(key_column)
                while True:
                    where = "" if after is None else f" WHERE {key_column} > ?"
                    rows = await tx.fetchall(
                        f"SELECT {listed} FROM {table}{where} ORDER BY {key_column} LIMIT {PAGE}",
                        () if after is None else (after,),
                    )
                    for row in rows:
                        yield [to_file(value, kind) for value, kind in zip(row, kinds, strict=True)]
                    count += len(rows)
                    if len(rows) < PAGE:
                        break
                    after = rows[-1][position]
                counts[table] = count
                yield {"end": table, "rows": count}
            yield {"complete": True, "rows": counts}

    async def restore_lines(self, lines: Iterable[Any]) -> dict[str, int]:
        """Write a backup's lines into this database, which must hold nothing yet (but what
        ALREADY_THERE names); all in one transaction. The rows written, by table."""
        lines = iter(lines)
        header = next(lines, None)
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise BackupProblem("the file is not a vmimages backup")
        if header.get("schemaVersion", 0) > schema_version():
            raise BackupProblem(
                f"the backup was made by a newer vmimages (schema {header['schemaVersion']};"
                f" this one knows {schema_version()}): restore it with that version"
            )
        known = {table: dict(zip(names(columns), columns, strict=True))
                 for table, _, columns in TABLES}  # fmt: skip
        written: dict[str, int] = {}
        async with self.db.transaction() as tx:
            for table in known:
                found = await tx.fetchone(
                    f"SELECT count(*) FROM {table}"
                    + (f" WHERE NOT ({ALREADY_THERE[table]})" if table in ALREADY_THERE
                       else "")
                )  # fmt: skip
                if found and found[0]:
                    raise BackupProblem(
                        f"{self.db.shown} is not empty ({table} has {found[0]} rows): restore"
                        " into a new database"
                    )
            table = ""
            batch: list[list[Any]] = []
            header_columns: list[str] = []
            columns: list[str] = []
            complete = False

            async def flush() -> None:  # the rows read of the current table so far
                nonlocal batch
                if batch:
                    await self._write_rows(tx, table, header_columns, batch)
                    written[table] = written.get(table, 0) + len(batch)
                    batch = []

            for line in lines:
                if isinstance(line, list):
                    if not table:
                        raise BackupProblem("the backup has a row outside any table")
                    batch.append([from_file(v, k) for v, k in zip(line, columns, strict=True)])
                    if len(batch) >= PAGE:
                        await flush()
                elif "table" in line:
                    if line["table"] not in known:
                        raise BackupProblem(
                            f"the backup has a table {line['table']!r} unknown here"
                        )
                    table, header_columns = line["table"], line["columns"]
                    unknown = set(header_columns) - set(known[table])
                    if unknown:
                        raise BackupProblem(f"{table} has columns unknown here: {sorted(unknown)}")
                    columns = [kind_of(known[table][c]) for c in header_columns]
                elif "end" in line:
                    await flush()
                    if written.get(table, 0) != line["rows"]:
                        raise BackupProblem(f"{table}: {line['rows']} rows said, not as many read")
                    table = ""
                elif line.get("complete"):
                    complete = True
            if not complete:
                raise BackupProblem("the backup is not whole (it ends before its last line)")
            if self.db.kind == "postgres":
                for table, column in IDENTITIES:
                    await tx.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                        f" (SELECT greatest(max({column}), 1) FROM {table}))"
                    )
            # Running servers read everything again.
            await self.mark_changed(tx, CREDENTIALS_SCOPE)
            await self.mark_changed(tx, CATALOG_SCOPE)
        return written

    @staticmethod
    async def _write_rows(tx: Any, table: str, columns: list[str], rows: list[list[Any]]) -> None:
        listed, marks = ", ".join(columns), ", ".join("?" for _ in columns)
        if table in ALREADY_THERE:  # replaces the row the migration made
            key = columns[0]
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
            sql = (f"INSERT INTO {table} ({listed}) VALUES ({marks})"
                   f" ON CONFLICT ({key}) DO UPDATE SET {updates}")  # fmt: skip
        else:
            sql = f"INSERT INTO {table} ({listed}) VALUES ({marks})"
        await tx.executemany(sql, rows)
