"""Hostile callers: rate limits, replayed signatures, control characters (docs/auth.md,
docs/deploy.md). Malformed input of every kind is in test_fuzz.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from zenlayercloud.common.config import Config
from zenlayercloud.common.credential import Credential
from zenlayercloud.vm.v20260401 import models
from zenlayercloud.vm.v20260401.vm_client import VmClient

from tests.asgi import AsgiClient, Credentials, Response
from tests.conftest import add_custom, assert_error, assert_ok, settings_for
from vmimages.app import create_app
from vmimages.auth import ALGORITHM, signature
from vmimages.errors import ApiError
from vmimages.ratelimit import RateLimiter

JSON = {"content-type": "application/json"}


def app_with(test_db: str, creds: Credentials, **options: Any) -> Iterator[AsgiClient]:
    client = AsgiClient(create_app(settings_for(test_db, **options)), creds)
    yield client
    client.close()


@pytest.fixture
def limited(test_db: str, creds: Credentials) -> Iterator[AsgiClient]:
    yield from app_with(test_db, creds, rate_limit=2)


@pytest.fixture
def strict(test_db: str, creds: Credentials) -> Iterator[AsgiClient]:
    yield from app_with(test_db, creds, require_signed_action=True)


# Rate limits -----------------------------------------------------------------------------------


def test_over_the_limit_is_429_with_retry_after(limited: AsgiClient) -> None:
    for _ in range(2):  # the burst
        assert_ok(limited.call("DescribeRegions"))
    response = limited.call("DescribeRegions")
    assert_error(response, 429, "REQUEST_LIMIT_EXCEEDED", "DescribeRegions", "2 a second")
    assert response.headers["retry-after"] == "1"
    # Other actions of the same account, and other accounts, are not held back.
    assert_ok(limited.call("DescribeImages"))
    assert_ok(limited.call("DescribeRegions", as_="bob"))
    assert_ok(limited.call("DescribeRegions", as_="bob", signed=True))


def test_a_refusal_is_held_back_before_it_is_sent(limited: AsgiClient) -> None:
    """A client retrying at once cannot keep the server busy refusing it (ratelimit.py)."""
    limiter = RateLimiter(1, clock=lambda: 0.0)
    limiter.take(1, "DescribeRegions")
    with pytest.raises(ApiError) as refused:
        limiter.take(1, "DescribeRegions")
    assert refused.value.status == 429 and refused.value.code.name == "REQUEST_LIMIT_EXCEEDED"
    assert 0.125 <= refused.value.hold_seconds <= 0.375
    for _ in range(2):
        assert_ok(limited.call("DescribeRegions"))
    started = time.monotonic()
    assert_error(limited.call("DescribeRegions"), 429, "REQUEST_LIMIT_EXCEEDED")
    assert time.monotonic() - started >= 0.125  # the answer waited (a lower bound, not speed)


def test_without_a_limit_a_burst_goes_through(client: AsgiClient) -> None:
    """The default: no limit, so a CI suite's burst of a few hundred calls is untouched."""
    for _ in range(300):
        assert_ok(client.call("DescribeRegions"))


def test_the_sdk_retries_ride_over_the_limit(server_factory: Any, test_db: str, creds: Any) -> None:
    server = server_factory(test_db, "--rate-limit", "1", creds=creds)
    client = VmClient(Credential(*creds.keys["alice"]),
                      Config(scheme="http", domain=f"127.0.0.1:{server.port}"))  # fmt: skip
    for _ in range(3):  # one a second: the second and third are refused, then retried
        assert client.DescribeZones(models.DescribeZonesRequest()).zoneSet
    log = server.log_when(lambda text: text.count(" status=200 code=OK ") >= 3)
    assert log.count(" status=429 code=REQUEST_LIMIT_EXCEEDED ") >= 2, log
    assert log.count(" status=200 code=OK ") == 3, log


# Replays ---------------------------------------------------------------------------------------


def signed_request(
    creds: Credentials,
    action: str,
    params: dict[str, Any],
    sign_action: bool = False,
    nonce: str | None = None,
    host: str = "testserver",
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a request signed by alice's key, as a client would send them; with
    `sign_action`, x-zc-action is signed too (and `nonce` as a signed x-zc-nonce header)."""
    body = json.dumps(params).encode()
    headers = {**JSON, "host": host, "x-zc-action": action}
    if not sign_action:
        return {**headers, **creds.signed("alice", headers, body)}, body
    key_id, password = creds.keys["alice"]
    stamp = str(int(time.time()))
    names = ["content-type", "host", "x-zc-action"]
    if nonce is not None:
        headers["x-zc-nonce"] = nonce
        names.append("x-zc-nonce")
    sig = signature(password, stamp, headers, names, body)
    return {
        **headers,
        "x-zc-timestamp": stamp,
        "x-zc-signature-method": ALGORITHM,
        "authorization": f"{ALGORITHM} Credential={key_id}, SignedHeaders={';'.join(names)},"
        f" Signature={sig}",
    }, body


def send(
    client: AsgiClient,
    headers: dict[str, str],
    body: bytes,
    connection: tuple[str, int] = ("127.0.0.1", 5000),
    **changed: str,
) -> Response:
    return client.request_raw(
        body=body, headers=list({**headers, **changed}.items()), client=connection
    )


EAVESDROPPER = ("10.9.9.9", 40000)  # another connection than the client's own


@pytest.fixture
def alices_image(test_db: str, creds: Credentials) -> str:
    add_custom(test_db, "img-alice001", owner_name="alice")
    return "img-alice001"


def visible(client: AsgiClient, image_id: str) -> bool:
    found = assert_ok(client.call("DescribeImages", {"imageIds": [image_id]}))
    return bool(found["images"])


def test_by_default_one_signature_serves_every_request_that_carries_it(
    client: AsgiClient, alices_image: str
) -> None:
    """The SDKs sign whole seconds: a read then a delete of the same ids in one second are one
    signature, from the client or from anyone who captured it; the wire cannot tell them apart,
    so nothing is refused by default (docs/auth.md, "Replays": use TLS)."""
    headers, body = signed_request(client.creds, "DescribeImages", {"imageIds": [alices_image]})
    assert assert_ok(send(client, headers, body))["images"]
    assert_ok(send(client, headers, body, EAVESDROPPER, **{"x-zc-action": "DeleteImages"}))
    assert not visible(client, alices_image)
    again = send(client, headers, body, **{"x-zc-action": "DeleteImages"})
    assert_error(again, 404, "INVALID_IMAGE_NOT_FOUND")


def test_strict_mode_carries_out_an_identical_mutating_request_once(
    strict: AsgiClient, alices_image: str
) -> None:
    rename = {"imageIds": [alices_image], "imageName": "renamed"}
    headers, body = signed_request(strict.creds, "ModifyImagesAttributes", rename, True)
    assert_ok(send(strict, headers, body))
    assert_error(send(strict, headers, body), 401, "AUTHFAILURE_INVALID_AUTHORIZATION", "before")
    # A signed header that makes it unique (here a nonce), and the same change goes through.
    headers, body = signed_request(strict.creds, "ModifyImagesAttributes", rename, True, "n-2")
    assert_ok(send(strict, headers, body))
    assert_ok(send(strict, *signed_request(strict.creds, "DescribeImages", {}, True)))
    assert_ok(send(strict, *signed_request(strict.creds, "DescribeImages", {}, True)))


def test_strict_mode_refuses_a_mutating_replay_on_another_server(
    server_factory: Any, test_db: str, creds: Credentials
) -> None:
    add_custom(test_db, "img-alice001", owner_name="alice")
    first, second = (
        server_factory(test_db, "--require-signed-action", creds=creds) for _ in range(2)
    )
    rename = {"imageIds": ["img-alice001"], "imageName": "renamed"}
    # Both behind one address, as behind a load balancer: the same Host is signed.
    headers, body = signed_request(creds, "ModifyImagesAttributes", rename, True, host="api.x")
    for server, status in ((first, 200), (second, 401)):
        got, _, doc = server.post(body, headers, as_=None)
        assert got == status, doc
    assert doc["code"] == "AUTHFAILURE_INVALID_AUTHORIZATION"


def test_strict_mode_wants_the_action_signed(strict: AsgiClient, alices_image: str) -> None:
    rename = {"imageIds": [alices_image], "imageName": "renamed"}
    headers, body = signed_request(strict.creds, "ModifyImagesAttributes", rename)
    assert_error(send(strict, headers, body), 401, "AUTHFAILURE_INVALID_AUTHORIZATION",
                 "SignedHeaders", "--require-signed-action")  # fmt: skip
    headers, body = signed_request(strict.creds, "ModifyImagesAttributes", rename, True)
    assert_ok(send(strict, headers, body))
    # The action is signed, so it cannot be swapped: the signature no longer matches.
    headers, body = signed_request(strict.creds, "ModifyImagesAttributes", rename, True)
    swapped = send(strict, headers, body, EAVESDROPPER, **{"x-zc-action": "DeleteImages"})
    assert_error(swapped, 401, "AUTHFAILURE_SIGNATURE_FAILURE")
    assert visible(strict, alices_image)
    assert_ok(strict.call("DescribeRegions", signed=True))  # reads need nothing more


# Control characters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("DescribeImages", {"imageName": "a\u0000"}),
        ("DescribeImages", {"regionId": "de-frankfurt-9a\u0000"}),
        ("DescribeImages", {"imageIds": ["img-\u0000"]}),
        ("DescribeRegions", {"regionIds": ["\u001b[31m"]}),
        ("CreateImage", {"instanceId": "ins\u0000", "imageName": "ok-name"}),
        ("DeleteImages", {"imageIds": ["img-\u007f"]}),
    ],
)
def test_control_characters_are_refused_by_name(
    client: AsgiClient, action: str, params: dict[str, Any]
) -> None:
    doc = assert_error(client.call(action, params), 400, "INVALID_PARAMETER_VALUE", "control")
    assert next(iter(params)) in doc["message"]


def test_a_description_may_have_line_breaks(client: AsgiClient, alices_image: str) -> None:
    change = {"imageIds": [alices_image], "imageDescription": "line one\nline two\ttabbed"}
    assert_ok(client.call("ModifyImagesAttributes", change))


def test_forged_requests_cannot_spend_an_accounts_allowance(limited: AsgiClient) -> None:
    """Only verified requests spend; past the limit, even a forged one is refused first (it is
    refused before its signature is checked, so requests past the limit cost little)."""
    headers, body = signed_request(limited.creds, "DescribeRegions", {})
    forged = {**headers, "authorization": headers["authorization"][:-4] + "0000"}
    for _ in range(5):
        assert_error(send(limited, forged, body), 401, "AUTHFAILURE_SIGNATURE_FAILURE")
    for _ in range(2):
        assert_ok(limited.call("DescribeRegions", signed=True))
    assert_error(send(limited, forged, body), 429, "REQUEST_LIMIT_EXCEEDED")
