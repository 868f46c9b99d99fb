from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

import vmimages
from tests.asgi import AsgiClient, Credentials, Response
from vmimages import admin
from vmimages.app import create_app
from vmimages.catalogfile import parse_catalog
from vmimages.config import Settings
from vmimages.store import open_store
from vmimages.store.sql import SqlStore
from vmimages.testing import start_serve, stop_process


def pytest_sessionstart(session: pytest.Session) -> None:
    """The compiled build runs the modules as they were compiled at install: one whose source
    changed since would test old code. Say so and stop (`pip install -e .` compiles again)."""
    stale = vmimages.stale_modules()
    if stale:
        pytest.exit(
            f"changed since they were compiled: {', '.join(stale)}; run `pip install -e .`"
            " again (or remove the compiled modules, `git clean -fX src`, for the pure build)",
            returncode=3,
        )


# The whole suite runs on SQLite, or on PostgreSQL with VMIMAGES_TEST_STORE=postgres (CI runs
# both). Each test gets a fresh database: a file, or a schema of its own.
STORE = os.environ.get("VMIMAGES_TEST_STORE", "sqlite")
POSTGRES_URL = os.environ.get("VMIMAGES_TEST_POSTGRES_URL", "postgresql://127.0.0.1/test")
ON_POSTGRES = STORE == "postgres"
sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="about the SQLite file itself")
# A test that neither the store nor the build under test changes (it installs this checkout
# into a Python of its own, say) runs once per scripts/check: in its first run, on SQLite.
# scripts/check sets VMIMAGES_CHECK_AGAIN for its runs on the pure build, after the compiled.
first_run_only = pytest.mark.skipif(
    ON_POSTGRES or bool(os.environ.get("VMIMAGES_CHECK_AGAIN")),
    reason="the same in every run of scripts/check: it runs in the first",
)


T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, from a thread of its own when this one already runs an event loop (as
    Playwright's sync API does in the console's tests)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def key_file(database: str) -> str:
    """The server key file of a test database: beside a SQLite file; per schema for PostgreSQL."""
    if not database.startswith("postgresql://"):
        return database + ".key"
    folder = Path(tempfile.gettempdir()) / "vmimages-test-keys"
    folder.mkdir(exist_ok=True)
    return str(folder / (database.rsplit("=", 1)[-1] + ".key"))


def settings_for(database: str, **options: Any) -> Settings:
    return Settings(database=database, key_file=key_file(database), **options)


def sql(database: str, text: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a test database, whichever kind it is (`?` placeholders), as it is
    (neither made nor migrated)."""

    async def work() -> list[tuple[Any, ...]]:
        store = open_store(database)
        assert isinstance(store, SqlStore)
        await store.db.connect()
        try:
            return await store.db.fetchall(text, args)
        finally:
            await store.db.close()

    return run_sync(work())


REQUEST_ID = re.compile(r"T[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}")


def assert_error(response: Response, status: int, code: str, *fragments: str) -> dict[str, Any]:
    """The frozen error shape: status, exactly requestId/code/message, the id in the header too."""
    assert response.status == status, response.body
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert set(doc) == {"requestId", "code", "message"}, doc
    assert doc["code"] == code, doc
    assert REQUEST_ID.fullmatch(doc["requestId"]), doc
    assert response.headers["x-zc-request-id"] == doc["requestId"]
    assert isinstance(doc["message"], str) and doc["message"]
    for fragment in fragments:
        assert fragment in doc["message"], (fragment, doc["message"])
    return doc


def assert_ok(response: Response) -> dict[str, Any]:
    """The success envelope; returns the action's fields."""
    assert response.status == 200, response.body
    doc = response.json()
    assert set(doc) == {"requestId", "response"}, doc
    assert REQUEST_ID.fullmatch(doc["requestId"])
    assert doc["response"]["requestId"] == doc["requestId"]
    assert response.headers["x-zc-request-id"] == doc["requestId"]
    return doc["response"]


def add_custom(
    database: str,
    image_id: str,
    *,
    owner_name: str,
    location: str = "FRA-A",
    name: str | None = None,
    category: str = "Debian",
    status: str = "AVAILABLE",
    create_time: str = "2025-01-01T00:00:00Z",
) -> None:
    """Put a custom image of an account straight into the database, marking the change as the
    store's own writes do (so running servers see it)."""
    name = name or f"custom {image_id}"

    async def work() -> None:
        store = open_store(database)
        await store.open()
        try:
            async with store.db.transaction() as tx:
                row = await tx.fetchone(
                    "INSERT INTO images (image_id, owner, location, name, name_folded,"
                    " description, category, os_type, version, size_gb, status, create_time)"
                    " SELECT ?, a.id, l.id, ?, ?, 'made by a test', ?, 'linux', '11', 30, ?, ?"
                    " FROM accounts a, locations l WHERE a.name = ? AND l.zone_id = ?"
                    " RETURNING owner",
                    (image_id, name, name.casefold(), category, status, create_time,
                     owner_name, location),
                )  # fmt: skip
                assert row is not None, (owner_name, location)
                await store.mark_changed(tx, int(row[0]))
        finally:
            await store.close()

    run_sync(work())


def _location(region: str, zone: str, name: str) -> dict[str, Any]:
    return {"regionId": region, "zoneId": zone, "name": name}


def _image(
    image_id: str,
    name: str,
    location: str,
    category: str,
    version: str,
    create_time: str,
    *,
    status: str = "AVAILABLE",
    size: int = 20,
    description: str | None = "test image",
) -> dict[str, Any]:
    return {
        "imageId": image_id,
        "imageName": name,
        "location": location,
        "category": category,
        "osType": "windows" if category == "Windows" else "linux",
        "imageVersion": version,
        "imageSize": size,
        "imageStatus": status,
        "imageDescription": description,
        "createTime": create_time,
    }


# A small public catalog whose every answer the tests can work out by hand.
TEST_CATALOG: dict[str, Any] = {
    "locations": [
        _location("de-frankfurt-9a", "FRA-A", "Frankfurt"),
        _location("hk-hongkong-1a", "HKG-A", "Hong Kong"),
        _location("us-losangeles-1a", "LAX-A", "Los Angeles"),
    ],
    "images": [
        _image(
            "img-fra00001",
            "Debian 11.5 64bit",
            "FRA-A",
            "Debian",
            "11.5",
            "2023-03-02T01:42:01Z",
            size=30,
        ),
        _image(
            "img-fra00002",
            "Ubuntu Server 22.04 LTS",
            "FRA-A",
            "Ubuntu",
            "22.04",
            "2023-02-14T09:03:57Z",
        ),
        _image(
            "img-fra00003",
            "CentOS 7.9 64bit",
            "FRA-A",
            "CentOS",
            "7.9",
            "2022-11-15T08:12:40Z",
            status="UNAVAILABLE",
        ),
        _image(
            "img-fra00004",
            "Windows Server 2022",
            "FRA-A",
            "Windows",
            "2022",
            "2023-01-17T13:51:36Z",
            size=50,
        ),
        _image(
            "img-hkg00001", "Debian 12.5 64bit", "HKG-A", "Debian", "12.5", "2024-03-12T07:30:45Z"
        ),
        _image(
            "img-hkg00002",
            "Ubuntu 100%_off [beta]*",
            "HKG-A",
            "Ubuntu",
            "24.04",
            "2024-05-08T02:17:33Z",
            status="CREATING",
            description=None,
        ),
        _image(
            "img-hkg00003",
            "Windows Server 2019",
            "HKG-A",
            "Windows",
            "2019",
            "2022-11-02T16:22:08Z",
            size=40,
        ),
        # Two images created in the same second: imageId breaks the tie.
        _image(
            "img-lax00002",
            "ubuntu server 20.04 lts",
            "LAX-A",
            "Ubuntu",
            "20.04",
            "2022-10-21T06:40:02Z",
        ),
        _image(
            "img-lax00001",
            "UBUNTU SERVER 18.04",
            "LAX-A",
            "Ubuntu",
            "18.04",
            "2022-10-21T06:40:02Z",
        ),
        _image(
            "img-lax00003",
            "Windows Server 2016",
            "LAX-A",
            "Windows",
            "2016",
            "2022-08-30T14:05:19Z",
            size=40,
        ),
    ],
}


class Databases:
    """Fresh test databases: SQLite files under tmp_path, or PostgreSQL schemas (dropped after)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.schemas: list[str] = []

    def new(self, name: str = "catalog") -> str:
        if not ON_POSTGRES:
            return str(self.tmp_path / f"{name}.db")
        schema = f"t_{uuid.uuid4().hex[:16]}"
        self._admin(f"CREATE SCHEMA {schema}")
        self.schemas.append(schema)
        return f"{POSTGRES_URL}?search_path={schema}"

    def drop_all(self) -> None:
        for schema in self.schemas:
            self._admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    @staticmethod
    def _admin(statement: str) -> None:
        import asyncpg

        async def work() -> None:
            conn = await asyncpg.connect(POSTGRES_URL)
            try:
                await conn.execute(statement)
            finally:
                await conn.close()

        run_sync(work())


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files a test makes by default (a PostgreSQL setup's server key file) land in tmp_path."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[Databases]:
    made = Databases(tmp_path)
    yield made
    made.drop_all()


@pytest.fixture
def db_path(databases: Databases) -> str:
    """A new, empty database (a file path or a PostgreSQL URL)."""
    return databases.new()


ACCOUNTS = ("alice", "bob")


def add_accounts(database: str) -> Credentials:
    """Accounts alice and bob, each with an access key and a token, made as the CLI makes them."""
    settings = settings_for(database)
    vault = admin.server_vault(settings)
    creds = Credentials()

    async def work() -> None:
        async with admin.opened_store(settings, create=True) as store:
            for name in ACCOUNTS:
                await store.create_account(name)
                creds.keys[name] = await admin.create_access_key(store, vault, name)
                creds.tokens[name] = await admin.create_token(store, name)

    run_sync(work())
    return creds


def load_test_catalog(database: str) -> None:
    async def work() -> None:
        store = open_store(database)
        await store.open()
        await store.import_catalog(parse_catalog(TEST_CATALOG))
        await store.close()

    run_sync(work())


@pytest.fixture
def test_db(db_path: str) -> str:
    """A database holding TEST_CATALOG and nothing else."""
    load_test_catalog(db_path)
    return db_path


@pytest.fixture
def creds(test_db: str) -> Credentials:
    return add_accounts(test_db)


@pytest.fixture
def client(test_db: str, creds: Credentials) -> Iterator[AsgiClient]:
    """The app on TEST_CATALOG; calls are made as alice (bearer token) unless told otherwise."""
    app = create_app(settings_for(test_db, load_default_catalog=False))
    c = AsgiClient(app, creds)
    yield c
    c.close()


@pytest.fixture
def default_client(db_path: str) -> Iterator[AsgiClient]:
    """The app on a new database, which it fills with the shipped default catalog."""
    creds = add_accounts(db_path)
    c = AsgiClient(create_app(settings_for(db_path)), creds)
    yield c
    c.close()


class Server:
    """A real `vmimages serve` process on a free port (vmimages.testing.start_serve)."""

    def __init__(self, database: str, *extra: str, creds: Credentials | None = None) -> None:
        self.creds = creds or Credentials()
        self.log = Path(tempfile.mkdtemp(prefix="vmimages-server-")) / "server.log"
        self.proc, self.port = start_serve(
            ["--database", database, "--key-file", key_file(database), *extra], self.log
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def answer(
        self,
        body: bytes,
        headers: dict[str, str],
        path: str = "/api/v2/vm",
        as_: str | None = "alice",
    ) -> Response:
        """POST over the socket, with `as_`'s bearer token unless as_ is None; the answer as the
        in-process client gives it (header names in lower case), for assert_error/assert_ok."""
        if as_ is not None:
            headers = {**headers, "Authorization": f"Bearer {self.creds.tokens[as_]}"}
        req = urllib.request.Request(self.url + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, got, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            status, got, raw = err.code, err.headers, err.read()
        return Response(status, {k.lower(): v for k, v in got.items()}, raw)

    def post(
        self,
        body: bytes,
        headers: dict[str, str],
        path: str = "/api/v2/vm",
        as_: str | None = "alice",
    ) -> tuple[int, dict[str, str], Any]:
        """The same, as (status, headers, JSON document)."""
        answered = self.answer(body, headers, path, as_)
        return answered.status, answered.headers, answered.json()

    def stop(self) -> None:
        stop_process(self.proc)

    def log_when(self, ready: Callable[[str], bool], timeout: float = 5.0) -> str:
        """The server's log once `ready` says it holds what is awaited (a request's line is
        written just after its answer is sent, so it may land a moment after the client has
        it), or as it is when the time is up."""
        deadline = time.monotonic() + timeout
        text = self.log.read_text()
        while not ready(text) and time.monotonic() < deadline:
            time.sleep(0.05)
            text = self.log.read_text()
        return text


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Server] = []

    def start(database: str, *extra: str, creds: Credentials | None = None) -> Server:
        """A server on `database`; give creds from add_accounts() to call it as alice or bob."""
        server = Server(database, *extra, creds=creds)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
