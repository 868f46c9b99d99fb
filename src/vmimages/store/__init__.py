"""The store: the interfaces over the catalog's database, and `open_store`.

`RequestStore` is what the request path uses (the app, the actions, authentication, the build
worker), by account id; `OperatorStore` is the operator's work (accounts, credentials, instances,
catalog files), by account name. The SQL store (`sql/`, over `sqlite.py` or `postgres.py`) is
both, one object; with a read model (`memory.py`, `open_store(read_cache=True)`) it answers the
request path's reads from memory, kept true by the history it records. Stores raise domain
errors (vmimages.catalog); they never build wire answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from vmimages.accounts import Account, Credential, DeletedAccount
from vmimages.catalog import (
    BuildJob,
    CatalogFile,
    FileCheck,
    Image,
    ImagePage,
    ImageQuery,
    ImportReport,
    Instance,
    Location,
    Progress,
    Quota,
)
from vmimages.config import POSTGRES_SCHEMES
from vmimages.devstate import DevState
from vmimages.history import Cursor, FeedPage, Recorded

if TYPE_CHECKING:
    from vmimages.store.sql import SqlStore


class RequestStore(Protocol):
    async def open(self) -> None:
        """Connect, apply pending migrations and, on a new database, load the default catalog."""

    async def close(self) -> None: ...

    async def refresh(self) -> None:
        """Called before each request: afterwards every read sees every write committed before
        the call, by any process."""

    async def ready(self) -> str | None:
        """None when the database answers and its migrations are current; else the problem."""

    async def server_key_fingerprint(self) -> str | None:
        """The fingerprint of the key the passwords are sealed under, if recorded."""

    def routing(self) -> dict[str, str] | None:
        """Where reads and writes go, on a node with a read replica; None without one."""

    async def find_location(
        self, *, region_id: str | None = None, zone_id: str | None = None
    ) -> Location:
        """The location with that region id (or zone id); LocationNotFound if there is none."""

    async def list_locations(
        self, *, region_ids: tuple[str, ...] | None = None, zone_ids: tuple[str, ...] | None = None
    ) -> list[Location]:
        """All locations (or those named; unknown names are simply absent), by region id."""

    async def describe_images(self, query: ImageQuery) -> ImagePage:
        """One page of the images the query's viewer may see, and the count of all matches."""

    async def count_images(self) -> list[tuple[str, str, int]]:
        """How many images the database holds, as (image type, status, count) (for /metrics)."""

    # The history (history.py): what DescribeImageChanges reads.

    async def latest_change(self) -> int:
        """The number of the newest change committed, by any process."""

    async def feed(
        self,
        viewer: int,
        cursor: Cursor | None,
        limit: int,
        *,
        region_id: str | None = None,
        zone_id: str | None = None,
        from_now: bool = False,
    ) -> FeedPage:
        """The next page of the changes `viewer` may see after `cursor` (None: the catalog as
        it stands first, or with `from_now` only the place where the history stands);
        CursorExpired if changes after it were compacted away."""

    # Credentials: a revocation made by any process counts from the next request on.

    async def find_access_key(self, key_id: str) -> tuple[int, bytes] | None:
        """(account id, sealed password) of an active access key, or None."""

    async def find_token(self, token_hash: bytes) -> int | None:
        """The account id of an active token, or None."""

    # Instances and the image lifecycle. Changes are atomic: checks and writes of one call
    # cannot interleave with another call's, in any process.

    async def instance_exists(self, instance_id: str) -> bool: ...

    async def create_image(
        self,
        owner: int,
        instance_id: str,
        image_id: str,
        name: str,
        description: str | None,
        default_quota: int,
    ) -> Image:
        """A CREATING image of the owner's instance; InstanceNotFound, QuotaExceeded."""

    async def modify_images(
        self, owner: int, image_ids: Sequence[str], name: str | None, description: str | None
    ) -> None:
        """All or nothing: ImageNotFound, NotCustomImage, InvalidImageStatus."""

    async def delete_images(self, owner: int, image_ids: Sequence[str]) -> None:
        """All or nothing: ImageNotFound, NotCustomImage, InvalidImageStatus."""

    async def image_quotas(
        self, owner: int, locations: Sequence[Location] | None, default_quota: int
    ) -> list[Quota]: ...

    async def claim_builds(self, now: float, lease_until: float, limit: int) -> list[BuildJob]:
        """Up to `limit` CREATING images to build, each leased until `lease_until`."""

    async def remember_signature(self, signature: str, valid_until: float) -> bool:
        """Record a mutating request's signature; False if it was recorded before (a replay)."""

    async def renew_build(self, image_id: str, lease_until: float) -> None: ...

    async def finish_build(self, image_id: str, ok: bool) -> bool:
        """Record a build's outcome (AVAILABLE if ok, else UNAVAILABLE), once: True if this
        call recorded it, False if the image is not CREATING (or gone)."""


class OperatorStore(Protocol):
    """The operator's work (the CLI, admin.py, serve --dev): accounts and credentials by name,
    instances, the public catalog's files, quotas, the server key."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def import_catalog(
        self,
        catalog: CatalogFile,
        *,
        dry_run: bool = False,
        prune: bool = False,
        progress: Progress | None = None,
        checked: FileCheck | None = None,
    ) -> ImportReport:
        """Publish or update locations and public images in one transaction, after checking the
        file against the database (CatalogFileError); idempotent. `prune` removes the public
        images the file does not list; `dry_run` reports and keeps nothing; `progress` is told
        how many images each step wrote."""

    async def export_catalog(self) -> CatalogFile:
        """Every location and public image, in the form import_catalog takes."""

    async def create_account(self, name: str, *, only_if_none: bool = False) -> Account | None:
        """A new account (AccountExists if the name is taken). With only_if_none, the account
        is made only when no account exists yet, atomically; else None is returned."""

    async def list_accounts(self) -> list[Account]: ...

    def backup_lines(self) -> AsyncIterator[dict[str, Any] | list[Any]]:
        """Every table's rows, read in one snapshot, as a backup file's lines (sql/backup.py)."""

    async def restore_lines(self, lines: Iterable[Any]) -> dict[str, int]:
        """Write a backup into this database, which must be empty; rows written by table."""

    async def set_account_enabled(self, name: str, enabled: bool) -> None:
        """Enable or disable an account (a disabled one's credentials answer 401)."""

    async def delete_account(self, name: str, *, with_images: bool = False) -> DeletedAccount:
        """Delete an account, its instances and credentials, and (only when asked) its custom
        images; AccountHasImages if it owns some and was not asked."""

    async def add_access_key(self, account: str, key_id: str, sealed: bytes) -> None:
        """AccountNotFound if there is no such account."""

    async def add_token(self, account: str, token_id: str, token_hash: bytes) -> None: ...

    async def list_credentials(self, kind: str, account: str | None = None) -> list[Credential]:
        """Access keys (kind "key") or tokens (kind "token"), oldest first."""

    async def revoke_credential(self, kind: str, ident: str) -> Credential:
        """Revoke a key by its id, or a token by its id; CredentialNotFound if none."""

    # The server key (admin.check_server_key, admin.rotate_server_key).

    async def server_key_fingerprint(self) -> str | None:
        """The fingerprint of the key the passwords are sealed under, if recorded."""

    async def record_server_key(self, fingerprint: str) -> None: ...

    async def a_sealed_password(self) -> tuple[str, bytes] | None:
        """(key id, sealed password) of one access key (revoked ones count), or None."""

    async def reseal_passwords(
        self, reseal: Callable[[str, bytes], bytes], fingerprint: str
    ) -> int:
        """Every password sealed anew and the new fingerprint recorded, in one transaction."""

    # Instances and quotas.

    async def add_instance(
        self,
        instance_id: str,
        account: str,
        location: str,
        disk_size_gb: int | None,
        source_image: str | None,
    ) -> Instance:
        """`location` is a region id or a zone id; the instance runs `source_image` (default:
        the newest available public Linux image of the location)."""

    async def list_instances(
        self, *, account: str | None = None, instance_id: str | None = None
    ) -> list[Instance]: ...

    async def remove_instance(self, instance_id: str) -> None:
        """InstanceNotFound if there is none."""

    async def image_status(self, image_id: str) -> str | None:
        """The status of any image with that id, whoever owns it, or None."""

    async def reset(self, catalog: CatalogFile, state: DevState | None = None) -> None:
        """Back to a start (serve --dev, dev.py): no used signatures, exactly the locations and
        public images of `catalog`, and the instances and custom images of `state` (none
        without one); a state also makes the accounts it names and sets every quota. Accounts
        and credentials stay. One transaction; every process drops what it kept."""

    async def dev_state(self) -> DevState:
        """Accounts with their quotas, instances and custom images (serve --dev's state)."""

    async def set_image_quota(self, account: str, quota: int | None) -> None:
        """None returns the account to the server's default."""

    # The history (history.py).

    async def list_history(
        self,
        *,
        since: int = 0,
        image_id: str | None = None,
        owner: int | None = None,
        limit: int = 1000,
    ) -> list[Recorded]:
        """The audit trail: changes after `since`, oldest first, of one image or one owner."""

    async def compact_history(self, older_than: str) -> int:
        """Remove the changes recorded before `older_than` (UTC text); how many went."""


def open_store(
    database: str,
    *,
    initial_catalog: CatalogFile | None = None,
    create: bool = True,
    pool_size: int = 10,
    timeout: float = 5.0,
    read_cache: bool = False,
    read_database: str | None = None,
    max_replica_lag: float = 1.0,
) -> SqlStore:
    """The store for a database setting: a `postgresql://` URL, or a SQLite file path; with
    `read_cache`, the catalog kept in memory for the request path (memory.ReadModel); with
    `read_database` (PostgreSQL only), reads from that hot standby (store/replica.py)."""
    store: SqlStore
    if database.startswith(POSTGRES_SCHEMES):
        from vmimages.store.postgres import PostgresStore

        store = PostgresStore(
            database, initial_catalog=initial_catalog, create=create, pool_size=pool_size,
            timeout=timeout, read_database=read_database, max_replica_lag=max_replica_lag,
        )  # fmt: skip
    else:
        if read_database is not None:
            raise ValueError("a read database (--read-database) needs a PostgreSQL --database")
        from vmimages.store.sqlite import SqliteStore

        store = SqliteStore(database, initial_catalog=initial_catalog, create=create)
    if read_cache:
        from vmimages.store.memory import ReadModel

        store.read_model = ReadModel(store)
    return store
