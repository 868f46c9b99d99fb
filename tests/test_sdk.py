"""The proof: the official zenlayercloud-sdk-python, unmodified, against `vmimages serve`."""

from __future__ import annotations

import time
from typing import Any

import pytest
from zenlayercloud.common.abstract_client import AbstractClient
from zenlayercloud.common.abstract_model import AbstractModel
from zenlayercloud.common.config import Config
from zenlayercloud.common.credential import Credential, TokenCredential
from zenlayercloud.common.excpetion.zenlayer_cloud_sdk_exception import ZenlayerCloudSdkException
from zenlayercloud.vm.v20230313 import models as models_2023
from zenlayercloud.vm.v20230313.vm_client import VmClient as VmClient2023
from zenlayercloud.vm.v20260401 import models as models_2026
from zenlayercloud.vm.v20260401.vm_client import VmClient as VmClient2026

from tests.asgi import Credentials
from tests.conftest import Databases, Server, add_accounts, add_custom

pytestmark = pytest.mark.socket

VERSIONS = [(VmClient2023, models_2023), (VmClient2026, models_2026)]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server on the default catalog, with alice and bob, and one custom image each."""
    databases = Databases(tmp_path_factory.mktemp("sdk"))
    database = databases.new()
    creds = add_accounts(database)
    add_custom(database, "img-alice001", owner_name="alice", location="FRA-A")
    add_custom(database, "img-bob00001", owner_name="bob", location="FRA-A")
    server = Server(database, creds=creds)
    yield server, creds, database
    server.stop()
    databases.drop_all()


def config(server: Server) -> Config:
    return Config(scheme="http", domain=f"127.0.0.1:{server.port}", rate_limit_max_retries=0)


def access_key(creds: Credentials, account: str = "alice") -> Credential:
    return Credential(*creds.keys[account])


class SeedClient(AbstractClient):
    """The SDK's own transport and signing with an empty API version: the seed dialect."""

    _api_version = ""
    _service = "vm"

    def call(self, action: str, **params: Any) -> dict[str, Any]:
        return self._api_call(action, Params(params))


class Params(AbstractModel):
    def __init__(self, params: dict[str, Any]) -> None:
        for key, value in params.items():
            setattr(self, key, value)


@pytest.mark.parametrize(("client_class", "models"), VERSIONS)
@pytest.mark.parametrize("scheme", ["access key", "token"])
def test_typed_describe_images_and_zones(
    served: Any, client_class: Any, models: Any, scheme: str
) -> None:
    server, creds, _ = served
    credential = (
        access_key(creds) if scheme == "access key" else TokenCredential(creds.tokens["alice"])
    )
    client = client_class(credential, config(server))

    zones = client.DescribeZones(models.DescribeZonesRequest())
    zone_ids = [zone.zoneId for zone in zones.zoneSet]
    assert "FRA-A" in zone_ids and "HKG-A" in zone_ids
    assert all(isinstance(zone.supportIpv6, bool) for zone in zones.zoneSet)

    request = models.DescribeImagesRequest()
    request.zoneId = "FRA-A"
    request.category = "Debian"
    request.pageSize = 50
    response = client.DescribeImages(request)
    assert response.totalCount == len(response.dataSet) > 0
    assert all(image.category == "Debian" for image in response.dataSet)
    assert all(isinstance(image.imageSize, str) for image in response.dataSet)
    assert any(image.imageVersion == "11.5" for image in response.dataSet)

    mine = models.DescribeImagesRequest()
    mine.zoneId = "FRA-A"
    mine.imageType = "CUSTOM_IMAGE"
    assert [i.imageId for i in client.DescribeImages(mine).dataSet] == ["img-alice001"]


@pytest.mark.parametrize(
    ("version", "has_line_type"), [("2023-03-13", False), ("2026-04-01", True)]
)
def test_describe_zones_network_line_type_only_in_2026(
    served: Any, version: str, has_line_type: bool
) -> None:
    server, creds, _ = served

    class Raw(SeedClient):
        _api_version = version

    zones = Raw(access_key(creds), config(server)).call("DescribeZones")["zoneSet"]
    assert all(("networkLineType" in zone) == has_line_type for zone in zones)
    if has_line_type:
        assert {zone["networkLineType"] for zone in zones} <= {"BGP", "CN2", "Cogent"}


@pytest.mark.parametrize("scheme", ["access key", "token"])
def test_seed_dialect_through_the_sdk_transport(served: Any, scheme: str) -> None:
    server, creds, _ = served
    credential = (
        access_key(creds, "bob") if scheme == "access key" else TokenCredential(creds.tokens["bob"])
    )
    client = SeedClient(credential, config(server))
    response = client.call("DescribeImages", regionId="de-frankfurt-9a", imageType="CUSTOM_IMAGE")
    assert response["totalCount"] == 1
    assert response["images"][0]["imageId"] == "img-bob00001"
    assert isinstance(response["images"][0]["imageSize"], int)
    regions = client.call("DescribeRegions")["regions"]
    assert {"regionId": "de-frankfurt-9a", "regionName": "Frankfurt, Germany"} in regions
    # Non-ASCII in the body: the SDK writes \\u escapes; the raw bytes are what is signed.
    assert client.call("DescribeImages", imageName="São Paulo ü")["totalCount"] == 0


def test_describe_image_through_the_sdk_transport(served: Any) -> None:
    server, creds, _ = served

    class Published(SeedClient):
        _api_version = "2026-04-01"

    client = Published(access_key(creds), config(server))
    image = client.call("DescribeImage", imageId="img-alice001")
    assert image["imageId"] == "img-alice001" and image["imageType"] == "CUSTOM_IMAGE"
    with pytest.raises(ZenlayerCloudSdkException) as err:
        client.call("DescribeImage", imageId="img-bob00001")
    assert err.value.code == "INVALID_IMAGE_NOT_FOUND"


def sdk_error(client: Any, models: Any = models_2026) -> ZenlayerCloudSdkException:
    request = models.DescribeImagesRequest()
    request.zoneId = "FRA-A"
    with pytest.raises(ZenlayerCloudSdkException) as err:
        client.DescribeImages(request)
    assert err.value.request_id and err.value.request_id.startswith("T")
    return err.value


def test_wrong_password(served: Any) -> None:
    server, creds, _ = served
    key_id, _ = creds.keys["alice"]
    error = sdk_error(VmClient2026(Credential(key_id, "not-the-password"), config(server)))
    assert error.code == "AUTHFAILURE_SIGNATURE_FAILURE"


def test_unknown_key(served: Any) -> None:
    server, _, _ = served
    error = sdk_error(VmClient2026(Credential("0D9UtpyKYcHxms5v", "whatever"), config(server)))
    assert error.code == "AUTHFAILURE_INVALID_AUTHORIZATION"


def test_unknown_token(served: Any) -> None:
    server, _, _ = served
    error = sdk_error(VmClient2026(TokenCredential("zlt_nope"), config(server)))
    assert error.code == "AUTHFAILURE_INVALID_AUTHORIZATION"


def test_tampered_body(served: Any) -> None:
    """The body is changed after signing, as a man in the middle would."""
    server, creds, _ = served
    client = VmClient2026(access_key(creds), config(server))
    send = client._send_request

    def tamper(req: Any) -> Any:
        req.data = req.data.replace('"FRA-A"', '"HKG-A"')
        return send(req)

    client._send_request = tamper  # type: ignore[method-assign]
    assert sdk_error(client).code == "AUTHFAILURE_SIGNATURE_FAILURE"


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_stale_timestamp(served: Any, monkeypatch: pytest.MonkeyPatch, offset: int) -> None:
    server, creds, _ = served
    import zenlayercloud.common.abstract_client as transport

    real = time.time
    monkeypatch.setattr(transport.time, "time", lambda: real() + offset)
    error = sdk_error(VmClient2026(access_key(creds), config(server)))
    assert error.code == "AUTHFAILURE_SIGNATURE_EXPIRED"
