"""The official clients in their ordinary timing, against `serve` with no flags: two calls with
the same body in one second carry one signature, and each is answered as it would be with a
fresh signature (docs/auth.md, "Replays")."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from zenlayercloud.common import abstract_client
from zenlayercloud.common.config import Config
from zenlayercloud.common.credential import Credential
from zenlayercloud.common.excpetion.zenlayer_cloud_sdk_exception import ZenlayerCloudSdkException
from zenlayercloud.vm.v20260401 import models
from zenlayercloud.vm.v20260401.vm_client import VmClient

from tests.asgi import Credentials
from tests.conftest import Server, add_custom
from tests.test_sdk_lifecycle import with_instances

pytestmark = pytest.mark.socket

JSON = {"Content-Type": "application/json"}


class HeldClock:
    """The SDK's clock: held on one second, or moved on a second at every call."""

    def __init__(self, start: float, step: float) -> None:
        self.now, self.step = start, step

    def time(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def sdk_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Set how the SDK's `time.time()` moves: step 0 holds it on one second."""

    def hold(step: float) -> None:
        monkeypatch.setattr(abstract_client, "time", HeldClock(int(time.time()), step))

    return hold


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except ZenlayerCloudSdkException as exc:
        return str(exc.code)
    return "OK"


def ordinary_flows(client: VmClient) -> list[str]:
    """What a program written with the SDK does: a loop of creates, a read then a change of the
    same ids, a delete retried. Each step's outcome (OK or the error code)."""
    outcomes = []
    made: list[str] = []

    def create() -> None:
        request = models.CreateImageRequest()
        request.instanceId, request.imageName = "ins-1", "nightly"
        made.append(client.CreateImage(request).imageId)

    outcomes += [outcome(create) for _ in range(3)]
    describe = models.DescribeImagesRequest()
    describe.zoneId, describe.imageIds = "FRA-A", made
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # poll until the builds are done, as programs do
        statuses = {image.imageStatus for image in client.DescribeImages(describe).dataSet}
        if statuses == {"AVAILABLE"}:
            break
        time.sleep(0.05)
    ids = made[:1]
    describe.imageIds = ids
    modify = models.ModifyImagesAttributesRequest()  # Terraform's update: only the ids
    modify.imageIds = ids
    delete = models.DeleteImagesRequest()
    delete.imageIds = ids
    outcomes.append(outcome(lambda: client.DescribeImages(describe)))
    outcomes.append(outcome(lambda: client.ModifyImagesAttributes(modify)))
    outcomes.append(outcome(lambda: client.DeleteImages(delete)))
    outcomes.append(outcome(lambda: client.DeleteImages(delete)))
    for image_id in made[1:]:  # delete the others, then again
        delete.imageIds = [image_id]
        outcomes.append(outcome(lambda: client.DeleteImages(delete)))
        outcomes.append(outcome(lambda: client.DeleteImages(delete)))
    return outcomes


@pytest.fixture
def two_servers(db_path: str) -> Iterator[tuple[Server, Server, Credentials]]:
    creds = with_instances(db_path, ("ins-1", "alice", "FRA-A"))
    servers = [Server(db_path, "--image-build-seconds", "0", creds=creds) for _ in range(2)]
    yield servers[0], servers[1], creds
    for server in servers:
        server.stop()


def sdk(server: Server, creds: Credentials) -> VmClient:
    config = Config(scheme="http", domain=f"127.0.0.1:{server.port}", rate_limit_max_retries=0)
    return VmClient(Credential(*creds.keys["alice"]), config)


def test_the_python_sdk_held_on_one_second_is_answered_as_with_fresh_signatures(
    two_servers: tuple[Server, Server, Credentials], sdk_clock: Callable[[float], None]
) -> None:
    """The oracle is the same flow with the SDK's clock moving on a second at every call (so a
    new signature each time), on the same server, after the first run's images are gone."""
    server, _, creds = two_servers
    client = sdk(server, creds)
    sdk_clock(0)
    held = ordinary_flows(client)
    sdk_clock(1)
    fresh = ordinary_flows(client)
    assert held == fresh
    # Builds take no time here: the deletes of built images succeed, each second one is 404.
    assert held == ["OK"] * 6 + ["INVALID_IMAGE_NOT_FOUND", *["OK", "INVALID_IMAGE_NOT_FOUND"] * 2]


@pytest.mark.parametrize("version", ["", "2023-03-13", "2026-04-01"])
@pytest.mark.parametrize("across", [False, True], ids=["one node", "two nodes"])
def test_the_go_sdks_shapes_with_one_signature(
    two_servers: tuple[Server, Server, Credentials], db_path: str, across: bool, version: str
) -> None:
    """The Go SDK sends `{"imageIds": [...]}` for Terraform's update (no description) and for
    DeleteImages alike (and, in the seed dialect, for DescribeImages): within one second one
    signature. Behind a balancer the Host is the same on every node, so the same signed bytes
    reach either."""
    first, second, creds = two_servers
    add_custom(db_path, "img-alice001", owner_name="alice")
    body = json.dumps({"imageIds": ["img-alice001"]}).encode()
    headers = {**JSON, "Host": "api.example"}
    headers.update(creds.signed("alice", {k.lower(): v for k, v in headers.items()}, body))
    if version:
        headers["X-ZC-Version"] = version
    other = second if across else first

    def call(server: Server, action: str) -> tuple[int, Any]:
        got, _, doc = server.post(body, {**headers, "X-ZC-Action": action}, as_=None)
        return got, doc

    def listed(server: Server) -> list[str]:
        status, doc = call(server, "DescribeImages")
        assert status == 200, doc
        return [image["imageId"] for image in doc["response"]["images"]]

    if not version:  # the published DescribeImages needs a zoneId: another body
        assert listed(first) == ["img-alice001"]
    assert call(other, "ModifyImagesAttributes")[0] == 200
    assert call(first, "ModifyImagesAttributes")[0] == 200
    assert call(other, "DeleteImages")[0] == 200
    status, doc = call(first, "DeleteImages")
    assert (status, doc["code"]) == (404, "INVALID_IMAGE_NOT_FOUND")
    if not version:
        assert listed(other) == []
