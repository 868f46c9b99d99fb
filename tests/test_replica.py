"""Nodes that read a PostgreSQL hot standby (`serve --read-database`), on a private primary and
standby made for each test (tests/pgpair.py): no stale read after a write, the lag bound, and
what a node does when the replica or the primary stops, lags or is promoted. They run in the
suite's PostgreSQL runs only (VMIMAGES_TEST_STORE=postgres): their clusters do not depend on the
store the rest of the suite runs on, and CI's four runs took them four times."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from zenlayercloud.common.credential import Credential
from zenlayercloud.common.excpetion.zenlayer_cloud_sdk_exception import ZenlayerCloudSdkException

from tests import pgpair
from tests.conftest import ON_POSTGRES, Server, add_accounts, assert_error
from tests.test_observability import Samples, get, parse, value
from tests.test_scaleout import admin_work, each_sees_the_others_writes
from tests.test_sdk import SeedClient, config
from vmimages.catalog import StoreUnavailable, WritesUnavailable
from vmimages.store.db import Args, Row
from vmimages.store.postgres import PostgresDatabase
from vmimages.store.replica import ReplicatedDatabase

pytestmark = [
    pytest.mark.socket,  # in CI (CI=true) a machine without the binaries fails instead
    # Its private clusters are the same whichever store the suite runs on: once per build.
    pytest.mark.skipif(not ON_POSTGRES, reason="runs in the suite's PostgreSQL runs"),
    pytest.mark.skipif(
        pgpair.missing() is not None and not os.environ.get("CI"), reason=str(pgpair.missing())
    ),
]


@pytest.fixture
def sync_pair() -> Iterator[pgpair.Pair]:
    """A standby that applies every commit before the primary answers it (remote_apply), 50 ms
    late (recovery_min_apply_delay): a replica far away."""
    with pgpair.pair(synchronous=True, apply_delay_ms=50) as made:
        yield made


@pytest.fixture
def async_pair() -> Iterator[pgpair.Pair]:
    with pgpair.pair(synchronous=False) as made:
        yield made


def readyz(server: Server) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(server.url + "/readyz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def reads_from(server: Server) -> str:
    return str(readyz(server)[1]["database"]["reads"])


def eventually(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def metrics_of(server: Server) -> Samples:
    return parse(get(server.url + "/metrics"))


def custom_names(client: SeedClient) -> set[str]:
    found = client.call("DescribeImages", imageType="CUSTOM_IMAGE", pageSize=100)["images"]
    return {image["imageName"] for image in found}


def create(client: SeedClient, name: str, instance: str = "ins-1") -> str:
    """CreateImage's answer: the image id, or the error code and message."""
    try:
        return str(client.call("CreateImage", instanceId=instance, imageName=name)["imageId"])
    except ZenlayerCloudSdkException as exc:
        return f"{exc.code}: {exc.message}"


def node(server_factory: Any, database: str, creds: Any, *extra: str) -> tuple[Server, SeedClient]:
    server = server_factory(database, "--image-build-seconds", "0", *extra, creds=creds)
    return server, SeedClient(Credential(*creds.keys["alice"]), config(server))


def prepared(made: pgpair.Pair) -> Any:
    """Accounts alice and bob on the pair's primary, alice with instances in FRA-A."""
    database = made.primary.url()
    creds = add_accounts(database)
    for instance in ("ins-1", "ins-2", "ins-3"):
        add = lambda store, _, i=instance: store.add_instance(i, "alice", "FRA-A", None, None)  # noqa: E731
        admin_work(database, add)
    return creds


def test_nodes_reading_synchronous_replicas_see_every_write_at_once(
    server_factory: Any, sync_pair: pgpair.Pair
) -> None:
    """The two-process consistency test, with both processes reading the standby (which
    applies each commit 50 ms late) and the primary 20 ms away each way."""
    creds = prepared(sync_pair)
    far = pgpair.DelayProxy(sync_pair.primary.port, 0.02)
    try:
        primary, replica = sync_pair.primary.url(far.port), sync_pair.replica.url()
        first = server_factory(primary, "--read-database", replica, "--image-build-seconds", "0",
                               creds=creds)  # fmt: skip
        second = server_factory(primary, "--read-database", replica, "--image-build-seconds",
                                "0", creds=creds)  # fmt: skip
        assert reads_from(first) == reads_from(second) == "replica"
        each_sees_the_others_writes(first, second, sync_pair.primary.url(), creds)
        assert reads_from(first) == reads_from(second) == "replica"  # and never left it
        fallbacks = [v for (name, _), v in metrics_of(first).items()
                     if name == "vmimages_replica_fallbacks_total"]  # fmt: skip
        assert sum(fallbacks) == 0
    finally:
        far.close()


def test_an_asynchronous_replica_is_read_within_the_lag_bound_only(
    server_factory: Any, async_pair: pgpair.Pair
) -> None:
    creds = prepared(async_pair)
    database = async_pair.primary.url()
    reader, on_reader = node(server_factory, database, creds,
                             "--read-database", async_pair.replica.url())  # fmt: skip
    _, on_primary = node(server_factory, database, creds)
    assert reads_from(reader) == "replica" and custom_names(on_reader) == set()

    # The standby stops applying: another node's write is not read from it at first (reads do go
    # to the replica), then, past the 1 s bound, from the primary.
    async_pair.replay_paused(True)
    create(on_primary, "elsewhere")
    assert custom_names(on_reader) == set()
    eventually(lambda: custom_names(on_reader) == {"elsewhere"}, "the write seen past the bound")
    status, ready = readyz(reader)
    assert status == 200 and ready["database"]["reads"] == "primary"
    assert "behind the primary" in ready["database"]["why"]
    assert value(metrics_of(reader), "vmimages_replica_fallbacks_total", reason="lagging") == 1
    said = "reading from the primary until the replica is fit again: the replica is"
    assert said in reader.log_when(lambda text: said in text)

    # Caught up, it is read from again, by itself.
    async_pair.replay_paused(False)
    eventually(lambda: reads_from(reader) == "replica", "reads back on the replica")

    # A node's own write is in its very next answer even while its replica stands still.
    async_pair.replay_paused(True)
    assert create(on_reader, "mine").startswith("img-")
    assert custom_names(on_reader) == {"elsewhere", "mine"}
    async_pair.replay_paused(False)
    eventually(lambda: reads_from(reader) == "replica", "reads back on the replica")


def test_a_write_through_one_worker_is_read_through_every_other(
    server_factory: Any, async_pair: pgpair.Pair
) -> None:
    """With --workers 2 the node's write position is shared: whichever worker a request
    reaches, it reads nothing older than the node's last write (the standby stands still, so a
    worker that did not know would answer from it without the image)."""
    creds = prepared(async_pair)
    reader, _ = node(server_factory, async_pair.primary.url(), creds, "--workers", "2",
                     "--read-database", async_pair.replica.url())  # fmt: skip
    eventually(
        lambda: value(metrics_of(reader), "vmimages_reading_replica") == 2, "both on the replica"
    )
    async_pair.replay_paused(True)
    fresh = lambda: SeedClient(Credential(*creds.keys["alice"]), config(reader))  # noqa: E731
    assert create(fresh(), "mine").startswith("img-")
    for _ in range(6):  # new connections: each lands on either worker
        assert custom_names(fresh()) == {"mine"}
    async_pair.replay_paused(False)


class Traffic:
    """One client reading all the time in a thread; counts what it gets."""

    def __init__(self, client: SeedClient) -> None:
        self.client, self.stopped = client, False
        self.answers: list[str] = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        n = 0
        while not self.stopped:
            n += 1
            try:  # a new query each time: no answer comes from memory
                self.client.call("DescribeImages", imageName=f"x{n % 500}")
                self.answers.append("OK")
            except ZenlayerCloudSdkException as exc:
                self.answers.append(str(exc.code))

    def stop(self) -> list[str]:
        self.stopped = True
        self.thread.join(timeout=30)
        return self.answers


def test_a_replica_that_stops_or_is_promoted(server_factory: Any, async_pair: pgpair.Pair) -> None:
    creds = prepared(async_pair)
    reader, on_reader = node(server_factory, async_pair.primary.url(), creds,
                             "--read-database", async_pair.replica.url())  # fmt: skip
    assert reads_from(reader) == "replica"
    traffic = Traffic(on_reader)
    try:
        async_pair.replica.stop()
        eventually(lambda: reads_from(reader) == "primary", "reads moved to the primary")
        assert "replica does not answer" in readyz(reader)[1]["database"]["why"]
        assert create(on_reader, "while-down").startswith("img-")
        assert custom_names(on_reader) == {"while-down"}
        async_pair.replica.start()
        eventually(lambda: reads_from(reader) == "replica", "reads back on the replica")
        async_pair.replica.promote()
        eventually(lambda: reads_from(reader) == "primary", "a promoted replica not read")
        assert "not a standby" in readyz(reader)[1]["database"]["why"]
        time.sleep(0.5)
    finally:
        answers = traffic.stop()
    # No error but for the requests in flight at each of the two faults.
    assert len(answers) > 20 and set(answers) <= {"OK", "SERVICE_TEMPORARY_UNAVAILABLE"}
    assert answers.count("SERVICE_TEMPORARY_UNAVAILABLE") <= 2, answers
    assert value(metrics_of(reader), "vmimages_replica_fallbacks_total", reason="unreachable") >= 1
    assert value(metrics_of(reader), "vmimages_replica_fallbacks_total", reason="not_standby") == 1


def test_a_primary_that_stops(server_factory: Any, async_pair: pgpair.Pair) -> None:
    creds = prepared(async_pair)
    reader, on_reader = node(server_factory, async_pair.primary.url(), creds,
                             "--read-database", async_pair.replica.url())  # fmt: skip
    assert create(on_reader, "before").startswith("img-")
    async_pair.primary.stop()
    eventually(lambda: readyz(reader)[1]["database"]["writes"] != "primary", "writes refused")
    status, ready = readyz(reader)
    assert status == 200 and ready["database"]["reads"] == "replica"

    # Reads go on; a write is refused at once (not after the 5 s the database is waited for).
    assert custom_names(on_reader) == {"before"}
    started = time.monotonic()
    refused = create(on_reader, "during")
    assert refused.startswith("SERVICE_TEMPORARY_UNAVAILABLE") and "no changes" in refused
    assert time.monotonic() - started < 2
    # The same over the wire: 503, the error envelope, the request id in its header.
    body = json.dumps({"instanceId": "ins-1", "imageName": "raw"}).encode()
    answered = reader.answer(
        body, {"Content-Type": "application/json", "X-TC-Action": "CreateImage"}, "/"
    )
    assert_error(answered, 503, "SERVICE_TEMPORARY_UNAVAILABLE", "no changes")
    said = "the primary database does not answer: writes answer 503"
    assert said in reader.log_when(lambda text: said in text)

    async_pair.primary.start()
    eventually(lambda: readyz(reader)[1]["database"]["writes"] == "primary", "writes again")
    assert create(on_reader, "after").startswith("img-")
    assert custom_names(on_reader) == {"before", "after"}


class StoppedAfterAWrite(PostgresDatabase):
    """A real primary that, once `armed`, is stopped (pg_ctl, fast) just after its next write
    commits, before the node asks how far its log is: a race of shutdown and commit, made
    certain."""

    def __init__(self, cluster: pgpair.Cluster) -> None:
        super().__init__(cluster.url())
        self.cluster, self.armed, self.stopping = cluster, False, False

    async def execute(self, sql: str, args: Args = ()) -> int:
        changed = await super().execute(sql, args)
        self.stopping, self.armed = self.armed, False  # no await until the position is asked
        return changed

    async def fetchone(self, sql: str, args: Args = ()) -> Row | None:
        if self.stopping:
            self.stopping = False
            self.cluster.stop()
        return await super().fetchone(sql, args)


def test_a_primary_that_stops_between_a_commit_and_its_position(sync_pair: pgpair.Pair) -> None:
    """The write is answered; the node counts the primary lost at once (as a look would), so
    reads stay on the replica, which under remote_apply has the write, instead of going to a
    primary that does not answer; writes are refused until a look reaches it again."""

    async def scenario() -> None:
        primary = StoppedAfterAWrite(sync_pair.primary)
        db = ReplicatedDatabase(primary, PostgresDatabase(sync_pair.replica.url()))
        await db.connect()
        try:
            await db.script("CREATE TABLE t (v int)")
            assert db.where() == {"reads": "replica", "writes": "primary"}
            primary.armed = True
            assert await db.execute("INSERT INTO t VALUES (1)") == 1
            assert db.where() == {"reads": "replica", "writes": "unavailable: the primary is down"}
            assert await db.fetchall("SELECT v FROM t") == [(1,)]
            with pytest.raises(WritesUnavailable):
                await db.execute("INSERT INTO t VALUES (2)")
            sync_pair.primary.start()
            deadline = time.monotonic() + 15
            while db.where()["writes"] != "primary":
                assert time.monotonic() < deadline, "writes not taken again"
                await asyncio.sleep(0.05)
            assert await db.execute("INSERT INTO t VALUES (2)") == 1
            assert await db.fetchall("SELECT v FROM t ORDER BY v") == [(1,), (2,)]
        finally:
            await db.close()

    asyncio.run(scenario())


def test_a_look_answered_from_before_a_loss_does_not_undo_it() -> None:
    """A look asks the primary how far its log is; before the answer comes, a write's position
    finds the primary stopped. The look's answer is older than that loss: writes stay refused
    (503, WritesUnavailable) until a look asked after the loss reaches the primary."""

    async def scenario() -> None:
        held = asyncio.Event()

        class Primary:  # a look's question is held; the write's own one finds it stopped
            shown = "primary"
            asks = 0

            async def execute(self, sql: str, args: Args = ()) -> int:
                return 1

            async def fetchone(self, sql: str, args: Args = ()) -> Row | None:
                Primary.asks += 1
                if Primary.asks == 1:
                    await held.wait()
                    return ("0/16",)
                if Primary.asks == 2:
                    raise StoreUnavailable("PostgreSQL: the primary stopped")
                return ("0/20",)

        class Replica:
            shown = "replica"

            async def fetchone(self, sql: str, args: Args = ()) -> Row | None:
                return (True, "0/16")

        db = ReplicatedDatabase(Primary(), Replica())  # type: ignore[arg-type]
        look = asyncio.create_task(db.look())
        await asyncio.sleep(0)  # the look has asked, and waits
        assert await db.execute("INSERT INTO t VALUES (1)") == 1  # committed; position unknown
        held.set()
        await look
        assert db.where()["writes"] == "unavailable: the primary is down"
        with pytest.raises(WritesUnavailable):
            await db.execute("INSERT INTO t VALUES (2)")
        await db.look()  # asked after the loss, and answered: writes are taken again
        assert db.where()["writes"] == "primary"
        assert await db.execute("INSERT INTO t VALUES (2)") == 1

    asyncio.run(scenario())


def test_a_read_database_needs_postgresql(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from vmimages.cli import main

    replica = "postgresql://127.0.0.1/x"
    result = CliRunner().invoke(
        main, ["serve", "--database", str(tmp_path / "x.db"), "--read-database", replica]
    )
    assert result.exit_code == 2 and "PostgreSQL hot standby" in result.output
