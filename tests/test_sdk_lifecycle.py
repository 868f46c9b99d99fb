"""The lifecycle with the official SDK over a socket, in both dialects; the quota under load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from zenlayercloud.common.credential import Credential
from zenlayercloud.common.excpetion.zenlayer_cloud_sdk_exception import ZenlayerCloudSdkException
from zenlayercloud.vm.v20230313 import models as models_2023
from zenlayercloud.vm.v20230313.vm_client import VmClient as VmClient2023
from zenlayercloud.vm.v20260401 import models as models_2026
from zenlayercloud.vm.v20260401.vm_client import VmClient as VmClient2026

from tests.conftest import Databases, Server, add_accounts
from tests.test_sdk import SeedClient, config
from vmimages.store import open_store

pytestmark = pytest.mark.socket


def with_instances(database: str, *instances: tuple[str, str, str]) -> Any:
    creds = add_accounts(database)

    async def work() -> None:
        store = open_store(database)
        await store.open()
        for instance_id, account, location in instances:
            await store.add_instance(instance_id, account, location, None, None)
        await store.close()

    asyncio.run(work())
    return creds


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    databases = Databases(tmp_path_factory.mktemp("lifecycle"))
    database = databases.new()
    creds = with_instances(database, ("ins-a1", "alice", "FRA-A"), ("ins-a2", "alice", "HKG-A"))
    server = Server(database, "--image-build-seconds", "0.3", creds=creds)
    yield server, creds
    server.stop()
    databases.drop_all()


def poll(fetch: Callable[[], str], want: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < 10:
        if fetch() == want:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"never {want}")


@pytest.mark.parametrize(
    ("client_class", "models"), [(VmClient2023, models_2023), (VmClient2026, models_2026)]
)
def test_published_lifecycle_with_the_sdk(served: Any, client_class: Any, models: Any) -> None:
    server, creds = served
    client = client_class(Credential(*creds.keys["alice"]), config(server))
    raw = type("Raw", (SeedClient,), {"_api_version": client_class._api_version})(
        Credential(*creds.keys["alice"]), config(server)
    )

    def count() -> int:
        request = models.DescribeImageQuotaRequest()
        request.zoneIds = ["FRA-A"]
        (info,) = client.DescribeImageQuota(request).images
        assert info.zoneId == "FRA-A" and info.maxCount == 5
        return int(info.count)

    before = count()
    create = models.CreateImageRequest()
    create.instanceId = "ins-a1"
    # A name per API version: the version header is not signed, so the same call in both
    # versions within one second would be one signature, and the second a replay.
    create.imageName = "sdk-" + models.__name__.split(".")[-2]
    create.imageDescription = "made with the SDK"
    image_id = client.CreateImage(create).imageId
    assert image_id.startswith("img-")
    assert count() == before + 1

    # Poll DescribeImage (as the Go SDK and Terraform do) until the build is done.
    waited = poll(lambda: raw.call("DescribeImage", imageId=image_id)["imageStatus"], "AVAILABLE")
    assert waited > 0.1  # it was CREATING first

    find = models.DescribeImagesRequest()
    find.zoneId = "FRA-A"
    find.imageType = "CUSTOM_IMAGE"
    found = client.DescribeImages(find).dataSet
    assert [(i.imageId, i.imageName, i.imageStatus) for i in found] == [
        (image_id, create.imageName, "AVAILABLE")
    ]

    rename = models.ModifyImagesAttributesRequest()
    rename.imageIds = [image_id]
    rename.imageName = "renamed"
    client.ModifyImagesAttributes(rename)
    assert raw.call("DescribeImage", imageId=image_id)["imageName"] == "renamed"

    delete = models.DeleteImagesRequest()
    delete.imageIds = [image_id]
    client.DeleteImages(delete)
    assert count() == before
    # The same DeleteImages again within the second would be the same signed bytes: a replay,
    # refused (docs/auth.md). Asked differently, deleting a deleted image is 404.
    delete.imageIds = [image_id, image_id]
    with pytest.raises(ZenlayerCloudSdkException) as err:
        client.DeleteImages(delete)
    assert err.value.code == "INVALID_IMAGE_NOT_FOUND"


def test_seed_lifecycle_through_the_sdk_transport(served: Any) -> None:
    server, creds = served
    client = SeedClient(Credential(*creds.keys["alice"]), config(server))

    def count() -> int:
        (info,) = client.call("DescribeImageQuota", regionIds=["hk-hongkong-1a"])["images"]
        assert info["regionId"] == "hk-hongkong-1a"
        return int(info["count"])

    # The Python SDK signs with whole seconds and opens a connection per call: a seed-dialect
    # DescribeImages {"imageIds": [x]} and DeleteImages {"imageIds": [x]} within one second are
    # one signature, which the server refuses for the second action (docs/auth.md, "Replays").
    # The reads here name a region too, as the published dialect's always do.
    def status(image_id: str) -> str:
        images = client.call("DescribeImages", imageIds=[image_id], regionId="hk-hongkong-1a")
        return str(images["images"][0]["imageStatus"])

    before = count()
    image_id = client.call("CreateImage", instanceId="ins-a2", imageName="seed_image")["imageId"]
    assert count() == before + 1
    with pytest.raises(ZenlayerCloudSdkException) as err:  # still CREATING
        client.call("DeleteImages", imageIds=[image_id, image_id])  # (not the final call's bytes)
    assert err.value.code == "INVALID_IMAGE_STATUS"
    poll(lambda: status(image_id), "AVAILABLE")
    listed = client.call("DescribeImages", imageType="CUSTOM_IMAGE", regionId="hk-hongkong-1a")
    assert [i["imageId"] for i in listed["images"]] == [image_id]
    client.call(
        "ModifyImagesAttributes",
        imageIds=[image_id],
        imageName="seed_renamed",
        imageDescription="described",
    )
    (image,) = client.call("DescribeImages", imageIds=[image_id], regionId="hk-hongkong-1a")[
        "images"
    ]
    assert (image["imageName"], image["imageDescription"]) == ("seed_renamed", "described")
    client.call("DeleteImages", imageIds=[image_id])
    assert count() == before


def test_twenty_concurrent_creates_against_a_quota_of_five(db_path: str) -> None:
    """Two server processes on one database file, twenty SDK calls at once: exactly five land."""
    database = db_path
    creds = with_instances(database, ("ins-q", "alice", "FRA-A"))
    servers = [Server(database, "--image-build-seconds", "0", creds=creds) for _ in range(2)]
    try:
        clients = [VmClient2026(Credential(*creds.keys["alice"]), config(s)) for s in servers]

        def attempt(n: int) -> str:
            request = models_2026.CreateImageRequest()
            request.instanceId = "ins-q"
            request.imageName = f"race-{n}"
            try:
                return str(clients[n % 2].CreateImage(request).imageId)
            except ZenlayerCloudSdkException as exc:
                return str(exc.code)

        with ThreadPoolExecutor(max_workers=20) as pool:
            outcomes = list(pool.map(attempt, range(20)))
        made = [o for o in outcomes if o.startswith("img-")]
        assert len(made) == 5, outcomes
        assert outcomes.count("LIMIT_EXCEEDED_IMAGE_QUOTA") == 15
        listed = SeedClient(Credential(*creds.keys["alice"]), config(servers[1])).call(
            "DescribeImages", imageType="CUSTOM_IMAGE"
        )
        assert sorted(i["imageId"] for i in listed["images"]) == sorted(made)
        assert listed["totalCount"] == 5
    finally:
        for server in servers:
            server.stop()
