"""Settings, read once into one typed object: defaults, then VMIMAGES_* variables, then flags."""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from vmimages.catalog import DEFAULT_IMAGE_QUOTA

DEFAULT_DATABASE = "vmimages.db"
POSTGRES_SCHEMES = ("postgres://", "postgresql://")  # a database URL with these is PostgreSQL


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database: str = DEFAULT_DATABASE  # a SQLite file path, or a postgresql:// URL
    read_database: str | None = None  # a PostgreSQL hot standby to read from (store/replica.py)
    max_replica_lag: float = 1.0  # seconds; a replica further behind is not read from
    load_default_catalog: bool = True  # fill a new database with the shipped catalog
    max_body_bytes: int = 1 << 20
    # Bytes of bodies held at once for signed requests whose signature is not checked yet;
    # past it 503 (requestbody.BodyBudget).
    max_pending_body_bytes: int = 64 << 20
    max_header_bytes: int = 16 * 1024  # request line and headers; past it 431
    receive_timeout: float = 10.0  # seconds to receive a whole request; past it 408
    max_connections: int = 4096  # open connections per process; past it 503
    drain_seconds: float = 0.0  # after SIGTERM, /readyz says 503 this long before shutdown
    request_timeout: float = 10.0  # seconds; past it: 503 REQUEST_TIMED_OUT
    db_timeout: float = 5.0  # PostgreSQL: to connect, to get a pooled connection, per statement
    db_pool_size: int = 10  # PostgreSQL connections per server process
    workers: int = 1  # server processes (serve --workers)
    read_cache: bool = True  # keep the catalog in memory (store/memory.py)
    image_build_seconds: float = 10.0  # how long the bundled builder takes per image
    image_quota: int = DEFAULT_IMAGE_QUOTA  # custom images per account and location
    history_retention_days: float = 7.0  # changes kept for DescribeImageChanges (history.py)
    log_level: str = "info"
    log_format: str = "text"  # or "json": one JSON object per line (logs.py)
    access_log: bool = True  # one line per request (logs.py)
    metrics: bool = True  # GET /metrics, and counting requests for it (metrics.py)
    metrics_port: int = 0  # serve /metrics on this port instead of the API's (0: the API's)
    metrics_host: str = "127.0.0.1"  # ... listening on this address
    metrics_count_seconds: float = 15.0  # a scrape counts the images when the last count is older
    console: bool = True  # the web console at GET /console (console/)
    tls_cert: str | None = None  # serve https with this certificate chain (PEM) ...
    tls_key: str | None = None  # ... and its private key (PEM)
    rate_limit: float = 0.0  # requests a second per account and action (0: no limit)
    require_signed_action: bool = False  # mutating requests must sign x-zc-action
    dev: bool = False  # control endpoints for tests under /_vmimages/ (dev.py)
    dev_allow_remote: bool = False  # ... even when listening beyond loopback
    accept_any_credentials: bool = False  # with dev: any key id or token is an account
    # The server key that seals access-key passwords: base64 of 32 bytes in the environment,
    # else a key file (made on first start), by default beside the SQLite file.
    secret_key: str | None = None
    previous_secret_keys: str | None = None  # older server keys, comma-separated (rotation)
    key_file: str | None = None

    @property
    def database_shown(self) -> str:
        """The database as it may be printed or logged: a URL's password masked."""
        return masked_database(self.database)

    @property
    def store_kind(self) -> str:
        return "postgres" if self.database.startswith(POSTGRES_SCHEMES) else "sqlite"

    @property
    def read_database_shown(self) -> str:
        return masked_database(self.read_database or "")

    @property
    def secrets(self) -> tuple[str, ...]:
        """What no output may hold: the database's password, the server keys (logs.hide)."""
        found = [self.secret_key, self.previous_secret_keys, *database_passwords(self.database),
                 *database_passwords(self.read_database or "")]  # fmt: skip
        return tuple(value for text in found if text for value in text.split(",") if value)

    @property
    def key_path(self) -> str:
        if self.key_file:
            return self.key_file
        if "://" in self.database:
            return "vmimages.key"
        return self.database + ".key"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, overridden by VMIMAGES_<NAME> variables, overridden by non-None keywords."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = environ.get(f"VMIMAGES_{field.name.upper()}")
            if raw is not None:
                values[field.name] = _convert(field.name, field.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)

    def to_env(self) -> dict[str, str]:
        """The VMIMAGES_* variables from_env reads back into these settings (for workers)."""
        out = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                text = str(value).lower() if isinstance(value, bool) else str(value)
                out[f"VMIMAGES_{field.name.upper()}"] = text
        return out


def _convert(name: str, kind: Any, raw: str) -> Any:
    if kind in (bool, "bool"):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"VMIMAGES_{name.upper()} must be true or false, got {raw!r}")
    if kind in (float, "float"):
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"VMIMAGES_{name.upper()} must be a number, got {raw!r}") from None
    if kind in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"VMIMAGES_{name.upper()} must be an integer, got {raw!r}") from None
    return raw


# A DSN's password: in a URL's user info (`user:PASSWORD@`), or a `password=` keyword in its
# query string or in a libpq keyword string.
URL_PASSWORD = re.compile(r"(?P<head>://[^:/@]*:)(?P<secret>[^@]*)(?P<tail>@)")
KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword=)(?P<secret>[^&\s]*)", re.IGNORECASE)
MASK = "***"


def database_passwords(database: str) -> list[str]:
    """The passwords a database setting holds, as written and as decoded."""
    found = [m["secret"] for pattern in (URL_PASSWORD, KEYWORD_PASSWORD)
             for m in pattern.finditer(database)]  # fmt: skip
    return [form for secret in found for form in {secret, urllib.parse.unquote(secret)} if form]


def masked(text: str, secrets: tuple[str, ...]) -> str:
    """Text with each of these secrets replaced by ***."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def masked_database(database: str) -> str:
    """The database setting with every password in it replaced by ***."""
    for pattern in (URL_PASSWORD, KEYWORD_PASSWORD):
        database = pattern.sub(lambda m: m["head"] + MASK + m.groupdict().get("tail", ""), database)
    return database
