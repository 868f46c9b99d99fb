"""State a test suite can read and set (`serve --dev`'s /_vmimages/state, /_vmimages/seed and
/_vmimages/accounts; the fixture's `state`, `seed`, `new_account`, the `vmimages_seed` marker
and ini option): checked through the official Python SDK, as a suite sees it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from zenlayercloud.common.config import Config
from zenlayercloud.common.credential import Credential, TokenCredential
from zenlayercloud.common.excpetion.zenlayer_cloud_sdk_exception import ZenlayerCloudSdkException
from zenlayercloud.vm.v20260401 import models
from zenlayercloud.vm.v20260401.vm_client import VmClient

from tests.conftest import REQUEST_ID
from vmimages.catalogfile import default_catalog
from vmimages.testing import ControlError, VmimagesServer

pytestmark = pytest.mark.socket

SEED: dict[str, Any] = {
    "accounts": [{"name": "alice", "imageQuota": 1}, {"name": "bob"}],
    "instances": [
        {"instanceId": "ins-a", "account": "alice", "location": "FRA-A"},
        {
            "instanceId": "ins-b",
            "account": "bob",
            "location": "SIN-A",
            "diskSize": 80,
            "category": "Debian",
            "osType": "linux",
            "imageVersion": "12",
        },
    ],
    "images": [
        {
            "imageId": "img-alicebuild",
            "account": "alice",
            "instanceId": "ins-a",
            "imageName": "web",
            "imageStatus": "CREATING",
        },
        {
            "imageId": "img-bobold",
            "account": "bob",
            "instanceId": "ins-b",
            "imageName": "db",
            "imageStatus": "UNAVAILABLE",
            "imageDescription": "broken",
            "createTime": "2025-01-02T03:04:05Z",
        },
        {
            "imageId": "img-bobwin",
            "account": "bob",
            "imageName": "win",
            "location": "de-frankfurt-9a",
            "category": "Windows",
            "osType": "windows",
            "imageVersion": "2022",
            "imageSize": 40,
        },
    ],
}


def sdk(server: VmimagesServer) -> VmClient:
    credential = Credential(server.access_key_id, server.access_key_password)
    return VmClient(credential, Config(scheme="http", domain=server.domain))


def custom(server: VmimagesServer) -> dict[str, tuple[str, ...]]:
    """The caller's custom images in the zones the seeds use, as DescribeImages shows them."""
    found = {}
    for zone in ("FRA-A", "SIN-A"):
        request = models.DescribeImagesRequest()
        request.imageType, request.pageSize, request.zoneId = "CUSTOM_IMAGE", 100, zone
        for i in sdk(server).DescribeImages(request).dataSet:
            found[i.imageId] = (i.imageName, i.imageStatus, zone, i.osType, i.imageSize,
                                i.imageDescription)  # fmt: skip
    return found


def test_a_seed_makes_accounts_instances_and_images_in_any_status(
    vmimages_server: VmimagesServer,
) -> None:
    accounts = vmimages_server.seed(SEED)
    alice, bob = accounts["alice"], accounts["bob"]
    assert alice.account == "alice" and alice.access_key_id != vmimages_server.access_key_id
    seen = custom(alice)
    assert list(seen) == ["img-alicebuild"]
    assert seen["img-alicebuild"][:4] == ("web", "CREATING", "FRA-A", "linux")
    seen = custom(bob)
    assert seen["img-bobold"] == ("db", "UNAVAILABLE", "SIN-A", "linux", "80", "broken")
    times = {i["imageId"]: i["createTime"] for i in vmimages_server.state()["images"]}
    assert times["img-bobold"] == "2025-01-02T03:04:05Z"
    assert seen["img-bobwin"][:5] == ("win", "AVAILABLE", "FRA-A", "windows", "40")
    assert custom(vmimages_server) == {}  # the fixture's own account sees none of them
    # The token works too, and alice's quota of 1 is used up by the image being built.
    token = VmClient(TokenCredential(alice.token), Config(scheme="http", domain=alice.domain))
    request = models.CreateImageRequest()
    request.instanceId, request.imageName = "ins-a", "second"
    with pytest.raises(ZenlayerCloudSdkException) as full:
        token.CreateImage(request)
    assert full.value.code == "LIMIT_EXCEEDED_IMAGE_QUOTA"
    # A seeded build ends as a created one does.
    vmimages_server.complete_build("img-alicebuild")
    assert custom(alice)["img-alicebuild"][1] == "AVAILABLE"


def test_state_is_what_seed_takes_and_reset_returns_to_the_seed(
    vmimages_server: VmimagesServer,
) -> None:
    vmimages_server.seed(SEED)
    first = vmimages_server.state()
    quotas = {a["name"]: a["imageQuota"] for a in first["accounts"]}
    assert {name: quotas[name] for name in ("tester", "alice", "bob")} == {
        "tester": None,
        "alice": 1,
        "bob": None,
    }  # (the session's other accounts: no quota)
    assert [i["instanceId"] for i in first["instances"]] == ["ins-a", "ins-b"]
    assert "catalog" not in first
    # Changes through the API, then back: reset returns to the seed, not to the bare start.
    alice = vmimages_server.accounts["alice"]
    vmimages_server.complete_build("img-alicebuild")
    request = models.DeleteImagesRequest()
    request.imageIds = ["img-alicebuild"]
    sdk(alice).DeleteImages(request)
    vmimages_server.add_instance("ins-extra")
    assert vmimages_server.state() != first
    vmimages_server.reset()
    assert vmimages_server.state() == first
    # The state round-trips: seeding it again changes nothing and makes no account.
    again = vmimages_server.seed(first)
    assert vmimages_server.state() == first
    assert again["alice"] is alice  # the credentials the session already had
    # With the catalog, the public images are in the catalog file's form.
    whole = vmimages_server.state(catalog=True)
    public = sorted(img["imageId"] for img in whole["catalog"]["images"])
    assert public == sorted(img.image_id for img in default_catalog().images)


def test_a_seed_can_bring_its_own_public_catalog(vmimages_server: VmimagesServer) -> None:
    catalog = {
        "locations": [{"regionId": "LAB", "zoneId": "LAB-A", "name": "Lab"}],
        "images": [{"imageId": "img-lab1", "imageName": "Lab Linux", "location": "LAB",
                    "category": "Ubuntu", "osType": "linux", "imageVersion": "24.04",
                    "imageSize": 20, "imageStatus": "AVAILABLE",
                    "createTime": "2026-01-01T00:00:00Z"}],
    }  # fmt: skip
    answer = vmimages_server.control("seed", {"catalog": catalog})
    assert (answer["locations"], answer["images"]) == (1, 1)
    request = models.DescribeImagesRequest()
    request.pageSize, request.zoneId = 100, "LAB-A"
    listed = sdk(vmimages_server).DescribeImages(request)
    assert [i.imageId for i in listed.dataSet] == ["img-lab1"]
    vmimages_server.reset()  # the seed's catalog stays the start
    assert sdk(vmimages_server).DescribeImages(request).totalCount == 1
    vmimages_server.seed({})  # the empty seed: the catalog the server started with
    request.zoneId = "FRA-A"
    fra = [i for i in default_catalog().images if i.location in ("FRA-A", "de-frankfurt-9a")]
    assert sdk(vmimages_server).DescribeImages(request).totalCount == len(fra)


def test_a_bad_seed_names_every_problem_and_changes_nothing(
    vmimages_server: VmimagesServer,
) -> None:
    vmimages_server.seed(SEED)
    before = vmimages_server.state()
    bad = {
        "accounts": [{"name": "-bad"}, {"name": "carol", "imageQuota": -1}],
        "instances": [{"instanceId": "ins-1", "account": "carol"},
                      {"instanceId": "ins-1", "account": "carol", "location": "FRA-A"}],
        "images": [{"imageId": "nope", "account": "carol", "imageName": "x",
                    "imageStatus": "GONE", "surprise": 1}, [1]],
        "extra": {},
    }  # fmt: skip
    with pytest.raises(ControlError) as refused:
        vmimages_server.seed(bad)
    assert (refused.value.status, refused.value.code) == (400, "INVALID_PARAMETER_VALUE")
    assert REQUEST_ID.fullmatch(refused.value.request_id)  # the API's error envelope
    message = str(refused.value)
    for part in ("unknown top-level keys ['extra']", "accounts[0]: `name` '-bad' does not match",
                 "accounts[1]: `imageQuota` must be 0 to 1000000",
                 "instances[0]: `location` is missing", "`instanceId` 'ins-1' appears more",
                 "images[0] (nope): unknown fields ['surprise']",
                 "images[0] (nope): `imageStatus` 'GONE' is not one of",
                 "images[0] (nope): `location` is missing",
                 "images[1]: must be an object"):  # fmt: skip
        assert part in message, part
    # Refused by the store (an unknown location, an unknown account): nothing changes either.
    for doc, code in (
        ({"instances": [{"instanceId": "i", "account": "alice", "location": "NOWHERE"}]},
         "INVALID_REGION_NOT_FOUND"),
        ({"images": [{"imageId": "img-x", "account": "nobody", "imageName": "x",
                      "location": "de-frankfurt-9a", "category": "Debian", "osType": "linux",
                      "imageVersion": "12", "imageSize": 20}]},
         "OPERATION_FAILED_RESOURCE_NOT_FOUND"),
        ({"images": [{"imageId": default_catalog().images[0].image_id, "account": "alice",
                      "imageName": "x", "location": "de-frankfurt-9a", "category": "Debian",
                      "osType": "linux", "imageVersion": "12", "imageSize": 20}],
          "catalog": json.loads(json.dumps({"locations": [], "images": []}))},
         "INVALID_REGION_NOT_FOUND"),
    ):  # fmt: skip
        with pytest.raises(ControlError) as refused:
            vmimages_server.seed(doc)
        assert refused.value.code == code, doc
    assert vmimages_server.state() == before
    vmimages_server.reset()  # still the last good seed
    assert vmimages_server.state() == before


def test_new_account_has_credentials_of_its_own(vmimages_server: VmimagesServer) -> None:
    dave = vmimages_server.new_account("dave")
    assert (dave.account, dave.domain) == ("dave", vmimages_server.domain)
    dave.add_instance("ins-d")  # the helpers act for that account
    request = models.CreateImageRequest()
    request.instanceId, request.imageName = "ins-d", "mine"
    made = sdk(dave).CreateImage(request).imageId
    assert list(custom(dave)) == [made] and custom(vmimages_server) == {}
    with pytest.raises(ControlError) as twice:
        vmimages_server.new_account("dave")
    assert twice.value.code == "INVALID_PARAMETER_VALUE" and "exists already" in str(twice.value)
    with pytest.raises(ControlError) as bad:
        vmimages_server.new_account("no spaces")
    assert bad.value.code == "INVALID_PARAMETER_VALUE"


SEEDED_SUITE = """
import pytest
from zenlayercloud.common.config import Config
from zenlayercloud.common.credential import Credential
from zenlayercloud.vm.v20260401 import models
from zenlayercloud.vm.v20260401.vm_client import VmClient

def custom(server):
    client = VmClient(Credential(server.access_key_id, server.access_key_password),
                      Config(scheme="http", domain=server.domain))
    request = models.DescribeImagesRequest()
    request.imageType, request.zoneId = "CUSTOM_IMAGE", "FRA-A"
    return sorted(i.imageId for i in client.DescribeImages(request).dataSet)

def test_from_the_ini_file(vmimages_server):
    assert custom(vmimages_server) == ["img-suite"]
    vmimages_server.add_instance("ins-more")

def test_each_test_starts_again(vmimages_server):
    assert custom(vmimages_server) == ["img-suite"]
    assert [i["instanceId"] for i in vmimages_server.state()["instances"]] == ["ins-1"]

@pytest.mark.vmimages_seed({"accounts": [{"name": "erin"}],
                            "instances": [{"instanceId": "ins-e", "account": "erin",
                                           "location": "FRA-A"}],
                            "images": [{"imageId": "img-erin", "account": "erin",
                                        "instanceId": "ins-e", "imageName": "e"}]})
def test_a_marker_overrides_it(vmimages_server):
    assert custom(vmimages_server) == []
    assert custom(vmimages_server.accounts["erin"]) == ["img-erin"]
"""

SUITE_SEED = """
instances:
  - {instanceId: ins-1, account: tester, location: FRA-A}
images:
  - {imageId: img-suite, account: tester, instanceId: ins-1, imageName: suite}
"""


def test_a_suite_starts_every_test_from_its_seed(tmp_path: Path) -> None:
    (tmp_path / "seed.yaml").write_text(SUITE_SEED)
    (tmp_path / "pytest.ini").write_text("[pytest]\nvmimages_seed = seed.yaml\n")
    (tmp_path / "test_seeded.py").write_text(SEEDED_SUITE)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_seeded.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout
