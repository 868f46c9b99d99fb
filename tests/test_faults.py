"""Fault injection for test suites (`serve --dev`'s /_vmimages/faults, the fixture's `fail` and
`delay`): the official Python SDK sees each injected error as its own, and its retry of 429
gets through once the injected failures are spent."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from zenlayercloud.common.config import Config
from zenlayercloud.common.credential import Credential, TokenCredential
from zenlayercloud.common.excpetion.zenlayer_cloud_sdk_exception import ZenlayerCloudSdkException
from zenlayercloud.vm.v20260401 import models
from zenlayercloud.vm.v20260401.vm_client import VmClient

from vmimages.testing import ControlError, VmimagesServer

pytestmark = pytest.mark.socket


def client(server: VmimagesServer, **config: Any) -> VmClient:
    credential = Credential(server.access_key_id, server.access_key_password)
    return VmClient(credential, Config(scheme="http", domain=server.domain, **config))


def zones(sdk: VmClient) -> str:
    """OK, or the code of the error the SDK raised."""
    try:
        sdk.DescribeZones(models.DescribeZonesRequest())
    except ZenlayerCloudSdkException as exc:
        return str(exc.code)
    return "OK"


@pytest.mark.parametrize(
    "code",
    ["INVALID_IMAGE_STATUS", "INVALID_ZONE_NOT_FOUND", "AUTHFAILURE_UNAUTHORIZED_OPERATION",
     "SERVICE_TEMPORARY_UNAVAILABLE", "INTERNAL_SERVER_ERROR"],
)  # fmt: skip
def test_the_sdk_sees_an_injected_error_as_its_own(
    vmimages_server: VmimagesServer, code: str
) -> None:
    sdk = client(vmimages_server, rate_limit_max_retries=0)
    vmimages_server.fail("DescribeZones", code)
    assert [zones(sdk), zones(sdk)] == [code, "OK"]  # the next call only


def test_the_sdks_retry_of_429_gets_through_after_the_injected_ones(
    vmimages_server: VmimagesServer,
) -> None:
    """The SDK retries 429 up to 3 times (1 s, then 2 s): two injected 429s cost it 3 s."""
    vmimages_server.fail("DescribeZones", "REQUEST_LIMIT_EXCEEDED", times=2)
    assert zones(client(vmimages_server)) == "OK"
    vmimages_server.fail(None, "REQUEST_LIMIT_EXCEEDED", times=1)  # any action
    assert zones(client(vmimages_server, rate_limit_max_retries=0)) == "REQUEST_LIMIT_EXCEEDED"


def test_a_delay_holds_the_answer(vmimages_server: VmimagesServer) -> None:
    sdk = client(vmimages_server)
    vmimages_server.delay("DescribeZones", 400, times=1)
    started = time.monotonic()
    assert zones(sdk) == "OK"
    assert time.monotonic() - started >= 0.4


def test_rules_by_account_and_chance_until_the_reset(vmimages_server: VmimagesServer) -> None:
    sdk = client(vmimages_server, rate_limit_max_retries=0)
    rules = vmimages_server.control("faults", {"account": vmimages_server.account,
                                               "code": "INVALID_IMAGE_STATUS",
                                               "probability": 0.5})["faults"]  # fmt: skip
    assert rules == [{"action": None, "account": vmimages_server.account,
                      "code": "INVALID_IMAGE_STATUS", "delayMs": 0, "times": None,
                      "probability": 0.5}]  # fmt: skip
    outcomes = {zones(sdk) for _ in range(40)}
    assert outcomes == {"OK", "INVALID_IMAGE_STATUS"}  # (all alike: a chance of 2 in 10^12)
    vmimages_server.reset()
    assert {zones(sdk) for _ in range(5)} == {"OK"}
    vmimages_server.fail(None, "INVALID_IMAGE_STATUS", times=None)
    assert vmimages_server.control("faults", {"clear": True})["faults"] == []
    assert zones(sdk) == "OK"


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [({"code": "NO_SUCH_CODE"}, "INVALID_PARAMETER_VALUE", "not an error code"),
     ({"code": "OK"}, "INVALID_PARAMETER_VALUE", "not an error code"),
     ({"action": "DescribeZones"}, "MISSING_PARAMETER", "`code`"),
     ({"code": "INVALID_IMAGE_STATUS", "probability": 2}, "INVALID_PARAMETER_VALUE", "from 0 to 1"),
     ({"code": "INVALID_IMAGE_STATUS", "probability": 0}, "INVALID_PARAMETER_VALUE", "above 0"),
     ({"code": "INVALID_IMAGE_STATUS", "probability": "x"}, "INVALID_PARAMETER_TYPE", "number"),
     ({"code": "INVALID_IMAGE_STATUS", "account": "nobody"},
      "OPERATION_FAILED_RESOURCE_NOT_FOUND", "nobody"),
     ({"delayMs": -1}, "INVALID_PARAMETER_LESS_MINIMUM", "delayMs")],
)  # fmt: skip
def test_a_rule_that_makes_no_sense_is_refused(
    vmimages_server: VmimagesServer, body: dict[str, Any], code: str, fragment: str
) -> None:
    with pytest.raises(ControlError) as refused:
        vmimages_server.control("faults", body)
    assert refused.value.code == code and fragment in str(refused.value)


def statuses(sdk: VmClient, image_ids: list[str]) -> list[str]:
    find = models.DescribeImagesRequest()
    find.zoneId, find.imageIds = "FRA-A", image_ids
    return [image.imageStatus for image in sdk.DescribeImages(find).dataSet]


def test_builds_take_what_the_test_says(vmimages_server: VmimagesServer) -> None:
    """build_seconds(n) for code that polls a build, with no thread to end it; None: until
    complete_build; the reset before the next test restores the session's setting."""
    sdk = client(vmimages_server)
    vmimages_server.add_instance("ins-polled")
    create = models.CreateImageRequest()
    create.instanceId = "ins-polled"
    vmimages_server.build_seconds(0.2)
    create.imageName = "polled"
    first = sdk.CreateImage(create).imageId
    deadline = time.monotonic() + 10
    while statuses(sdk, [first]) != ["AVAILABLE"]:  # as code under test polls
        assert time.monotonic() < deadline, "the build never ended"
        time.sleep(0.05)
    vmimages_server.build_seconds(None)
    create.imageName = "waits"
    second = sdk.CreateImage(create).imageId
    time.sleep(0.5)
    assert statuses(sdk, [second]) == ["CREATING"]
    vmimages_server.complete_build(second)
    assert statuses(sdk, [second]) == ["AVAILABLE"]
    with pytest.raises(ControlError) as refused:
        vmimages_server.control("build-seconds", {"seconds": -1})
    assert refused.value.code == "INVALID_PARAMETER_VALUE"


def test_any_credentials_when_asked(server_factory: Any, db_path: str) -> None:
    """serve --dev --accept-any-credentials: any access key id (its signature unchecked) or
    token is the account of that name, made on first use; each sees only its own images; a
    known key is still checked."""
    from tests.conftest import add_accounts

    creds = add_accounts(db_path)
    server = server_factory(db_path, "--dev", "--accept-any-credentials", "--image-build-seconds",
                            "0", creds=creds)  # fmt: skip
    config = Config(scheme="http", domain=f"127.0.0.1:{server.port}", rate_limit_max_retries=0)
    testing = VmClient(Credential("testing", "any password"), config)
    assert zones(testing) == "OK"
    status, _, _ = server.post(json.dumps({"instanceId": "ins-any", "account": "testing"}).encode(),
                               {"Content-Type": "application/json"}, "/_vmimages/instances",
                               as_=None)  # fmt: skip
    assert status == 200
    create = models.CreateImageRequest()
    create.instanceId, create.imageName = "ins-any", "mine"
    image_id = testing.CreateImage(create).imageId
    other = VmClient(TokenCredential("another-token"), config)
    assert statuses(testing, [image_id]) != [] and statuses(other, [image_id]) == []
    known = VmClient(Credential(creds.keys["alice"][0], "not alice's password"), config)
    assert zones(known) == "AUTHFAILURE_SIGNATURE_FAILURE"
    command = [sys.executable, "-m", "vmimages", "serve", "--accept-any-credentials",
               "--database", db_path]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "for --dev servers only" in done.stderr
