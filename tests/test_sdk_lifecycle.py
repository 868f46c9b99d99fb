"""The lifecycle with the official SDK over a socket, in both dialects; the quota under load."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from zenlayercloud.common.config import Config
from zenlayercloud.common.credential import Credential
from zenlayercloud.common.excpetion.zenlayer_cloud_sdk_exception import ZenlayerCloudSdkException
from zenlayercloud.vm.v20230313 import models as models_2023
from zenlayercloud.vm.v20230313.vm_client import VmClient as VmClient2023
from zenlayercloud.vm.v20260401 import models as models_2026
from zenlayercloud.vm.v20260401.vm_client import VmClient as VmClient2026

from tests.conftest import Server, add_accounts, run_sync
from tests.test_sdk import SeedClient, config
from vmimages.store import open_store
from vmimages.testing import VmimagesServer

pytestmark = pytest.mark.socket


def with_instances(database: str, *instances: tuple[str, str, str]) -> Any:
    creds = add_accounts(database)

    async def work() -> None:
        store = open_store(database)
        await store.open()
        for instance_id, account, location in instances:
            await store.add_instance(instance_id, account, location, None, None)
        await store.close()

    run_sync(work())
    return creds


def sdk_config(server: VmimagesServer) -> Config:
    return Config(scheme="http", domain=server.domain, rate_limit_max_retries=0)


@pytest.mark.parametrize(
    ("client_class", "models"), [(VmClient2023, models_2023), (VmClient2026, models_2026)]
)
def test_published_lifecycle_with_the_sdk(
    vmimages_server: VmimagesServer, client_class: Any, models: Any
) -> None:
    """On the testing kit's server (vmimages.testing): the build ends when the test says."""
    server = vmimages_server
    credential = Credential(server.access_key_id, server.access_key_password)
    client = client_class(credential, sdk_config(server))
    raw = type("Raw", (SeedClient,), {"_api_version": client_class._api_version})(
        credential, sdk_config(server)
    )
    server.add_instance("ins-a1", zone="FRA-A")

    def count() -> int:
        request = models.DescribeImageQuotaRequest()
        request.zoneIds = ["FRA-A"]
        (info,) = client.DescribeImageQuota(request).images
        assert info.zoneId == "FRA-A" and info.maxCount == 5
        return int(info.count)

    assert count() == 0
    create = models.CreateImageRequest()
    create.instanceId = "ins-a1"
    create.imageName = "sdk-image"
    create.imageDescription = "made with the SDK"
    image_id = client.CreateImage(create).imageId
    assert image_id.startswith("img-")
    assert count() == 1

    # DescribeImage (as the Go SDK and Terraform poll it) says CREATING until the build ends.
    assert raw.call("DescribeImage", imageId=image_id)["imageStatus"] == "CREATING"
    server.complete_build(image_id)
    assert raw.call("DescribeImage", imageId=image_id)["imageStatus"] == "AVAILABLE"

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
    assert count() == 0
    # The same DeleteImages again (within the second, the same signed bytes): 404.
    with pytest.raises(ZenlayerCloudSdkException) as err:
        client.DeleteImages(delete)
    assert err.value.code == "INVALID_IMAGE_NOT_FOUND"


def test_seed_lifecycle_through_the_sdk_transport(vmimages_server: VmimagesServer) -> None:
    server = vmimages_server
    credential = Credential(server.access_key_id, server.access_key_password)
    client = SeedClient(credential, sdk_config(server))
    server.add_instance("ins-a2", zone="HKG-A")

    def count() -> int:
        (info,) = client.call("DescribeImageQuota", regionIds=["hk-hongkong-1a"])["images"]
        assert info["regionId"] == "hk-hongkong-1a"
        return int(info["count"])

    # The reads name a region, as the published dialect's always do.
    def status(image_id: str) -> str:
        images = client.call("DescribeImages", imageIds=[image_id], regionId="hk-hongkong-1a")
        return str(images["images"][0]["imageStatus"])

    image_id = client.call("CreateImage", instanceId="ins-a2", imageName="seed_image")["imageId"]
    assert count() == 1
    with pytest.raises(ZenlayerCloudSdkException) as err:  # still CREATING
        client.call("DeleteImages", imageIds=[image_id])
    assert err.value.code == "INVALID_IMAGE_STATUS"
    server.complete_build(image_id)
    assert status(image_id) == "AVAILABLE"
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
    assert count() == 0


def test_a_failed_build_is_unavailable_and_can_be_deleted(vmimages_server: VmimagesServer) -> None:
    server = vmimages_server
    client = VmClient2026(
        Credential(server.access_key_id, server.access_key_password), sdk_config(server)
    )
    server.add_instance("ins-f", zone="FRA-A")
    create = models_2026.CreateImageRequest()
    create.instanceId, create.imageName = "ins-f", "doomed"
    image_id = client.CreateImage(create).imageId
    server.complete_build(image_id, ok=False)
    find = models_2026.DescribeImagesRequest()
    find.zoneId, find.imageIds = "FRA-A", [image_id]
    assert [i.imageStatus for i in client.DescribeImages(find).dataSet] == ["UNAVAILABLE"]
    delete = models_2026.DeleteImagesRequest()
    delete.imageIds = [image_id]
    client.DeleteImages(delete)
    assert client.DescribeImages(find).totalCount == 0


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
