"""The image lifecycle (API.md §7), in-process: create, build, modify, delete, quota."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.asgi import AsgiClient, Credentials
from tests.conftest import assert_error, assert_ok, settings_for
from vmimages.app import create_app
from vmimages.builder import MAX_PARALLEL_BUILDS, BuildWorker
from vmimages.catalog import BuildJob
from vmimages.store import open_store
from vmimages.store.sql import SqlStore


def add_instances(database: str) -> None:
    async def work() -> None:
        store = open_store(database)
        await store.open()
        await store.add_instance("ins-alice-fra", "alice", "FRA-A", 40, None)
        await store.add_instance("ins-alice-hkg", "alice", "hk-hongkong-1a", None, "img-hkg00003")
        await store.add_instance("ins-bob-fra", "bob", "FRA-A", None, None)
        await store.close()

    asyncio.run(work())


def make(test_db: str, creds: Credentials, **settings: Any) -> AsgiClient:
    options = {"image_build_seconds": 0.0, **settings}
    return AsgiClient(create_app(settings_for(test_db, **options)), creds)


@pytest.fixture
def lc(test_db: str, creds: Credentials) -> Iterator[AsgiClient]:
    """The app with instances for alice and bob, and images that build at once."""
    add_instances(test_db)
    client = make(test_db, creds)
    yield client
    client.close()


def create(
    client: AsgiClient,
    instance: str = "ins-alice-fra",
    name: str = "web-1",
    as_: str = "alice",
    **params: Any,
) -> str:
    fields = assert_ok(
        client.call("CreateImage", {"instanceId": instance, "imageName": name, **params}, as_=as_)
    )
    assert fields["imageName"] == name
    return str(fields["imageId"])


def image(client: AsgiClient, image_id: str, as_: str = "alice") -> dict[str, Any] | None:
    fields = assert_ok(client.call("DescribeImages", {"imageIds": [image_id]}, as_=as_))
    return fields["images"][0] if fields["images"] else None


def wait_status(client: AsgiClient, image_id: str, want: str) -> dict[str, Any]:
    for _ in range(100):
        found = image(client, image_id)
        assert found is not None
        if found["imageStatus"] == want:
            return found
        client.settle(0.02)
    raise AssertionError(f"{image_id} never became {want}: {found}")


def test_create_image_builds_to_available(lc: AsgiClient) -> None:
    image_id = create(lc, imageDescription="my web server")
    fresh = image(lc, image_id)
    assert fresh is not None
    assert fresh["imageStatus"] in ("CREATING", "AVAILABLE")
    built = wait_status(lc, image_id, "AVAILABLE")
    assert built["imageType"] == "CUSTOM_IMAGE" and built["regionId"] == "de-frankfurt-9a"
    assert built["imageSize"] == 40  # the instance's disk
    assert built["imageDescription"] == "my web server"
    # The OS of the instance (the location's newest available public Linux image) passes on.
    assert (built["category"], built["osType"], built["version"]) == ("Debian", "linux", "11.5")


def test_create_image_from_an_instance_with_a_named_image(lc: AsgiClient) -> None:
    built = wait_status(lc, create(lc, "ins-alice-hkg", "win-base"), "AVAILABLE")
    assert (built["category"], built["osType"], built["imageSize"]) == ("Windows", "windows", 40)
    assert built["regionId"] == "hk-hongkong-1a"


def test_images_are_created_new_first_and_stay_in_order(lc: AsgiClient) -> None:
    first = create(lc, name="first")
    second = create(lc, name="second")
    listed = assert_ok(lc.call("DescribeImages", {"imageType": "CUSTOM_IMAGE"}))["images"]
    assert {i["imageId"] for i in listed} == {first, second}


@pytest.mark.parametrize("name", ["ab", "x" * 24, "web_server-01", "镜像备份", "Web服务器-2"])
def test_valid_image_names(lc: AsgiClient, name: str) -> None:
    create(lc, name=name)


@pytest.mark.parametrize(
    ("params", "code", "fragment"),
    [
        ({"imageName": "a"}, "INVALID_PARAMETER_LESS_LENGTH", "`imageName`"),
        ({"imageName": "x" * 25}, "INVALID_PARAMETER_EXCEED_LENGTH", "`imageName`"),
        ({"imageName": "has space"}, "INVALID_PARAMETER_PATTERN_ERROR", "Chinese characters"),
        ({"imageName": "dot.name"}, "INVALID_PARAMETER_PATTERN_ERROR", "`imageName`"),
        ({"imageName": "émigré"}, "INVALID_PARAMETER_PATTERN_ERROR", "`imageName`"),
        ({"imageDescription": "d" * 256}, "INVALID_PARAMETER_EXCEED_LENGTH", "`imageDescription`"),
        ({"instanceId": None}, "MISSING_PARAMETER", "`instanceId`"),
        ({"imageName": None}, "MISSING_PARAMETER", "`imageName`"),
        ({"instanceId": 7}, "INVALID_PARAMETER_TYPE", "`instanceId`"),
    ],
)
def test_create_image_parameter_errors(
    lc: AsgiClient, params: dict[str, Any], code: str, fragment: str
) -> None:
    body = {"instanceId": "ins-alice-fra", "imageName": "ok-name", **params}
    assert_error(lc.call("CreateImage", body), 400, code, fragment)
    assert assert_ok(lc.call("DescribeImages", {"imageType": "CUSTOM_IMAGE"}))["totalCount"] == 0


@pytest.mark.parametrize("instance", ["ins-nope", "ins-bob-fra"])
def test_unknown_or_foreign_instance(lc: AsgiClient, instance: str) -> None:
    assert_error(
        lc.call("CreateImage", {"instanceId": instance, "imageName": "x1"}),
        404,
        "INVALID_INSTANCE_NOT_FOUND",
        f"`{instance}`",
    )


def test_build_fails_when_the_instance_is_gone(test_db: str, creds: Credentials) -> None:
    add_instances(test_db)
    client = make(test_db, creds, image_build_seconds=0.2)
    try:
        image_id = create(client)
        asyncio.run(_remove(test_db, "ins-alice-fra"))
        assert wait_status(client, image_id, "UNAVAILABLE")["imageType"] == "CUSTOM_IMAGE"
    finally:
        client.close()


async def _remove(database: str, instance_id: str) -> None:
    store = open_store(database)
    await store.open()
    await store.remove_instance(instance_id)
    await store.close()


def test_a_build_survives_a_restart(test_db: str, creds: Credentials) -> None:
    """Stopped mid-build (a long build), started again: the image is built, never stuck."""
    add_instances(test_db)
    slow = make(test_db, creds, image_build_seconds=3600)
    image_id = create(slow)
    slow.settle(0.1)
    assert image(slow, image_id)["imageStatus"] == "CREATING"  # type: ignore[index]
    slow.close()
    fast = make(test_db, creds)
    try:
        wait_status(fast, image_id, "AVAILABLE")
    finally:
        fast.close()


def test_a_crashed_workers_lease_runs_out(test_db: str, creds: Credentials) -> None:
    """A worker that died holding an image (no clean stop) gives it up when its lease ends."""
    add_instances(test_db)

    async def scenario() -> tuple[Any, Any, Any]:
        store = open_store(test_db)
        assert isinstance(store, SqlStore)
        await store.open()
        (owner,) = await store.db.fetchone("SELECT id FROM accounts WHERE name = 'alice'") or ()
        await store.create_image(owner, "ins-alice-fra", "img-crash001", "crashy", None, 5)
        held = await store.claim_builds(1000.0, 1015.0, 8)  # then the worker "dies"
        during = await store.claim_builds(1010.0, 1025.0, 8)
        after = await store.claim_builds(1016.0, 1031.0, 8)
        await store.finish_build("img-crash001", True)
        await store.finish_build("img-crash001", False)  # a late second finish changes nothing
        (status,) = (
            await store.db.fetchone("SELECT status FROM images WHERE image_id = 'img-crash001'")
            or ()
        )
        await store.close()
        return held, during, (after, status)

    held, during, (after, status) = asyncio.run(scenario())
    assert [job.image_id for job in held] == ["img-crash001"]
    assert during == []
    assert [job.image_id for job in after] == ["img-crash001"]
    assert status == "AVAILABLE"


def test_claims_take_the_oldest_up_to_the_limit_and_never_one_twice(
    test_db: str, creds: Credentials
) -> None:
    """Claims take the oldest CREATING images first, at most as many as asked; two stores
    (two processes' workers) claiming at once never take the same image."""
    add_instances(test_db)

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        stores = [open_store(test_db), open_store(test_db)]
        for store in stores:
            assert isinstance(store, SqlStore)
            await store.open()
        first = stores[0]
        assert isinstance(first, SqlStore)
        (owner,) = await first.db.fetchone("SELECT id FROM accounts WHERE name = 'alice'") or ()
        made = []
        for n in range(12):
            await first.create_image(owner, "ins-alice-fra", f"img-claim{n:03d}", "c", None, 99)
            await first.db.execute(  # one create time each, oldest first
                "UPDATE images SET create_time = ? WHERE image_id = ?",
                (f"2026-01-01T00:00:{n:02d}Z", f"img-claim{n:03d}"),
            )
            made.append(f"img-claim{n:03d}")
        oldest = await first.claim_builds(1000.0, 1015.0, 3)
        both = await asyncio.gather(*(store.claim_builds(1000.0, 1015.0, 8) for store in stores))
        # Two claims at once may both aim at the same rows; the one that comes second then
        # takes fewer (PostgreSQL checks each row again once the first commits), never the
        # same ones. What they left, the worker's next look takes.
        rest = await first.claim_builds(1000.0, 1015.0, 8)
        for store in stores:
            await store.close()
        taken = [job.image_id for jobs in (*both, rest) for job in jobs]
        return [job.image_id for job in oldest], taken, made

    oldest, taken, made = asyncio.run(scenario())
    assert oldest == made[:3]
    assert sorted(taken) == made[3:]  # each of the rest taken once


def test_a_full_worker_starts_the_next_build_when_a_slot_frees(
    test_db: str, creds: Credentials
) -> None:
    """More CREATING images than a worker builds at once: when one build ends, the next starts
    then, not at the worker's next poll (an hour here)."""
    add_instances(test_db)

    class HeldBuilder:
        """Builds that end when the test says."""

        def __init__(self) -> None:
            self.started: list[str] = []
            self.release: dict[str, asyncio.Event] = {}

        async def build(self, job: BuildJob) -> bool:
            self.release[job.image_id] = asyncio.Event()
            self.started.append(job.image_id)
            await self.release[job.image_id].wait()
            return True

    async def until_started(builder: HeldBuilder, count: int) -> None:
        for _ in range(500):
            if len(builder.started) == count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{len(builder.started)} builds started, not {count}, in 5 s")

    async def scenario() -> tuple[int, int]:
        store = open_store(test_db)
        assert isinstance(store, SqlStore)
        await store.open()
        (owner,) = await store.db.fetchone("SELECT id FROM accounts WHERE name = 'alice'") or ()
        for n in range(MAX_PARALLEL_BUILDS + 1):
            await store.create_image(owner, "ins-alice-fra", f"img-full{n:04d}", "f", None, 99)
        builder = HeldBuilder()
        worker = BuildWorker(store, builder, poll_seconds=3600)
        worker.start()
        try:
            await until_started(builder, MAX_PARALLEL_BUILDS)
            await asyncio.sleep(0.1)
            full = len(builder.started)  # no more while every slot is taken
            builder.release[builder.started[0]].set()
            await until_started(builder, MAX_PARALLEL_BUILDS + 1)
            return full, len(builder.started)
        finally:
            await worker.stop()
            await store.close()

    assert asyncio.run(scenario()) == (MAX_PARALLEL_BUILDS, MAX_PARALLEL_BUILDS + 1)


# Modify and delete ---------------------------------------------------------------------------


def test_modify_name_and_description(lc: AsgiClient) -> None:
    image_id = create(lc)
    assert_ok(lc.call("ModifyImagesAttributes", {"imageIds": [image_id], "imageName": "renamed"}))
    assert image(lc, image_id)["imageName"] == "renamed"  # type: ignore[index]
    assert_ok(lc.call("ModifyImagesAttributes", {"imageIds": [image_id], "imageDescription": "d2"}))
    after = image(lc, image_id)
    assert after["imageName"] == "renamed" and after["imageDescription"] == "d2"  # type: ignore[index]
    found = assert_ok(lc.call("DescribeImages", {"imageName": "RENAMED"}))["images"]
    assert [i["imageId"] for i in found] == [image_id]


def test_a_creating_image_can_be_renamed(test_db: str, creds: Credentials) -> None:
    add_instances(test_db)
    client = make(test_db, creds, image_build_seconds=3600)
    try:
        image_id = create(client)
        assert_ok(
            client.call("ModifyImagesAttributes", {"imageIds": [image_id], "imageName": "later"})
        )
        assert image(client, image_id)["imageStatus"] == "CREATING"  # type: ignore[index]
        assert_error(
            client.call("DeleteImages", {"imageIds": [image_id]}),
            400,
            "INVALID_IMAGE_STATUS",
            "CREATING",
        )
        assert image(client, image_id) is not None
    finally:
        client.close()


def test_modify_with_nothing_to_change_changes_nothing(lc: AsgiClient) -> None:
    """Terraform's shapes (API.md §7): only `imageIds` when the description is empty; the
    images are still checked as for a change."""
    image_id = create(lc)
    before = wait_status(lc, image_id, "AVAILABLE")
    assert_ok(lc.call("ModifyImagesAttributes", {"imageIds": [image_id]}))
    assert image(lc, image_id) == before
    assert_ok(lc.call("ModifyImagesAttributes", {"imageIds": [image_id], "imageDescription": ""}))
    assert image(lc, image_id) == {**before, "imageDescription": ""}
    assert_error(lc.call("ModifyImagesAttributes", {"imageIds": ["img-nothere"]}), 404,
                 "INVALID_IMAGE_NOT_FOUND")  # fmt: skip
    assert_error(lc.call("ModifyImagesAttributes", {"imageIds": [image_id]}, as_="bob"), 404,
                 "INVALID_IMAGE_NOT_FOUND")  # fmt: skip


def test_modify_parameter_errors(lc: AsgiClient) -> None:
    image_id = create(lc)
    assert_error(
        lc.call("ModifyImagesAttributes", {"imageName": "x1"}),
        400,
        "MISSING_PARAMETER",
        "`imageIds`",
    )
    assert_error(
        lc.call("ModifyImagesAttributes", {"imageIds": [], "imageName": "x1"}),
        400,
        "INVALID_PARAMETER_LESS_LENGTH",
    )
    assert_error(
        lc.call("ModifyImagesAttributes", {"imageIds": [image_id], "imageName": "a b"}),
        400,
        "INVALID_PARAMETER_PATTERN_ERROR",
    )


@pytest.mark.parametrize("action", ["ModifyImagesAttributes", "DeleteImages"])
def test_all_or_nothing(lc: AsgiClient, action: str) -> None:
    mine = wait_status(lc, create(lc), "AVAILABLE")["imageId"]
    bobs = (
        wait_status(lc, create(lc, "ins-bob-fra", as_="bob"), "AVAILABLE")["imageId"]
        if False
        else None
    )
    bobs = create(lc, "ins-bob-fra", as_="bob")
    params: dict[str, Any] = {"imageIds": [mine, bobs]}
    if action == "ModifyImagesAttributes":
        params["imageName"] = "hijack"
    # Bob's image is not found for alice: nothing changes, not even her own.
    assert_error(lc.call(action, params), 404, "INVALID_IMAGE_NOT_FOUND", f"`{bobs}`")
    assert image(lc, mine)["imageName"] == "web-1"  # type: ignore[index]
    assert image(lc, bobs, as_="bob")["imageName"] == "web-1"  # type: ignore[index]
    params["imageIds"] = [mine, "img-fra00001"]
    assert_error(lc.call(action, params), 401, "AUTHFAILURE_UNAUTHORIZED_OPERATION", "public image")
    params["imageIds"] = [mine, "img-nothere"]
    assert_error(lc.call(action, params), 404, "INVALID_IMAGE_NOT_FOUND", "`img-nothere`")
    assert image(lc, mine)["imageName"] == "web-1"  # type: ignore[index]


def test_delete(lc: AsgiClient) -> None:
    first = wait_status(lc, create(lc, name="one"), "AVAILABLE")["imageId"]
    second = wait_status(lc, create(lc, name="two"), "AVAILABLE")["imageId"]
    assert_ok(lc.call("DeleteImages", {"imageIds": [first, second, first]}))
    assert image(lc, first) is None and image(lc, second) is None
    assert_error(lc.call("DeleteImages", {"imageIds": [first]}), 404, "INVALID_IMAGE_NOT_FOUND")


def test_unavailable_images_can_be_deleted(test_db: str, creds: Credentials) -> None:
    add_instances(test_db)
    client = make(test_db, creds, image_build_seconds=0.1)
    try:
        image_id = create(client)
        asyncio.run(_remove(test_db, "ins-alice-fra"))
        wait_status(client, image_id, "UNAVAILABLE")
        assert_ok(client.call("DeleteImages", {"imageIds": [image_id]}))
    finally:
        client.close()


# Quota ----------------------------------------------------------------------------------------


def quota(client: AsgiClient, as_: str = "alice", **params: Any) -> list[dict[str, Any]]:
    return list(assert_ok(client.call("DescribeImageQuota", params, as_=as_))["images"])


def test_quota_rises_falls_and_is_per_location(lc: AsgiClient) -> None:
    fra = {"regionIds": ["de-frankfurt-9a"]}
    assert quota(lc, **fra) == [{"regionId": "de-frankfurt-9a", "count": 0, "maxCount": 5}]
    made = [create(lc, name=f"img-{n}") for n in range(5)]
    assert quota(lc, **fra)[0]["count"] == 5
    assert_error(
        lc.call("CreateImage", {"instanceId": "ins-alice-fra", "imageName": "sixth"}),
        400,
        "LIMIT_EXCEEDED_IMAGE_QUOTA",
        "5",
        "at most 5 custom images in de-frankfurt-9a (FRA-A)",  # read with the instance
    )
    create(lc, "ins-alice-hkg", "other-place")  # another location has its own quota
    create(lc, "ins-bob-fra", as_="bob")  # another account too
    everywhere = {q["regionId"]: q for q in quota(lc)}
    assert len(everywhere) == 3
    assert (
        everywhere["hk-hongkong-1a"]["count"] == 1 and everywhere["us-losangeles-1a"]["count"] == 0
    )
    for image_id in made:
        wait_status(lc, image_id, "AVAILABLE")
    assert_ok(lc.call("DeleteImages", {"imageIds": made[:2]}))
    assert quota(lc, **fra)[0]["count"] == 3
    create(lc, name="fits-again")


def test_quota_in_the_published_dialect(lc: AsgiClient) -> None:
    create(lc)
    got = assert_ok(
        lc.call("DescribeImageQuota", {"zoneIds": ["FRA-A", "LAX-A"]}, version="2026-04-01")
    )
    assert got["images"] == [
        {"zoneId": "FRA-A", "count": 1, "maxCount": 5},
        {"zoneId": "LAX-A", "count": 0, "maxCount": 5},
    ]
    assert_error(
        lc.call("DescribeImageQuota", {"zoneIds": ["NOPE-A"]}, version="2023-03-13"),
        404,
        "INVALID_ZONE_NOT_FOUND",
    )
    assert_error(
        lc.call("DescribeImageQuota", {"regionIds": ["nope"]}), 404, "INVALID_REGION_NOT_FOUND"
    )
    assert_error(
        lc.call("DescribeImageQuota", {"regionIds": ["x"]}, version="2026-04-01"),
        400,
        "INVALID_PARAMETER_VALUE",
        "`regionIds`",
    )


def test_quota_per_account_and_server_default(test_db: str, creds: Credentials) -> None:
    add_instances(test_db)

    async def set_quota() -> None:
        store = open_store(test_db)
        await store.open()
        await store.set_image_quota("alice", 1)
        await store.close()

    asyncio.run(set_quota())
    client = make(test_db, creds, image_quota=2)
    try:
        create(client)
        assert_error(
            client.call("CreateImage", {"instanceId": "ins-alice-fra", "imageName": "x2"}),
            400,
            "LIMIT_EXCEEDED_IMAGE_QUOTA",
            "at most 1 custom images in de-frankfurt-9a (FRA-A)",  # the account's own quota
        )
        create(client, "ins-bob-fra", "b1", as_="bob")
        create(client, "ins-bob-fra", "b2", as_="bob")
        assert_error(
            client.call("CreateImage", {"instanceId": "ins-bob-fra", "imageName": "b3"}, as_="bob"),
            400,
            "LIMIT_EXCEEDED_IMAGE_QUOTA",
            "at most 2 custom images in de-frankfurt-9a (FRA-A)",  # the server's default
        )
        assert quota(client, "bob", regionIds=["de-frankfurt-9a"])[0]["maxCount"] == 2
        assert quota(client, "alice", regionIds=["de-frankfurt-9a"])[0]["maxCount"] == 1
    finally:
        client.close()


def test_lifecycle_in_the_seed_dialect_sees_only_ones_own(lc: AsgiClient) -> None:
    mine = create(lc)
    create(lc, "ins-bob-fra", as_="bob")
    got = assert_ok(lc.call("DescribeImages", {"imageType": "CUSTOM_IMAGE"}))
    assert [i["imageId"] for i in got["images"]] == [mine]
