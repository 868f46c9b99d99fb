"""The wire contract's transport and envelope rules (API.md §2, §4, §5), driven in-process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import uuid
from typing import Any

import pytest

from tests.asgi import AsgiClient, Credentials, Response
from tests.conftest import REQUEST_ID, assert_error, assert_ok, settings_for
from vmimages import protocol
from vmimages.app import create_app
from vmimages.catalog import ImagePage, ImageQuery, StoreUnavailable
from vmimages.store import open_store

JSON = {"content-type": "application/json"}


@pytest.fixture
def alice(creds: Credentials) -> dict[str, str]:
    """alice's bearer header, for raw requests."""
    return creds.bearer("alice")


def test_seed_example_verbatim(client: AsgiClient, alice: dict[str, str]) -> None:
    """`POST /`, `X-TC-Action: DescribeImages`, `{}`: the seed page's own request."""
    response = client.request(
        "POST", "/", body=b"{}", headers={**JSON, "X-TC-Action": "DescribeImages", **alice}
    )
    fields = assert_ok(response)
    assert list(fields) == ["requestId", "totalCount", "images"]
    assert fields["totalCount"] == 10


@pytest.mark.parametrize("path", ["/api/v2/vm", "/api/v2/vm/", "/"])
def test_both_endpoints_serve(client: AsgiClient, path: str) -> None:
    assert_ok(client.call("DescribeRegions", path=path))


def test_request_ids_are_fresh_on_success_and_error(client: AsgiClient) -> None:
    ids = {client.call("DescribeRegions").json()["requestId"] for _ in range(5)}
    ids |= {client.call("Nope").json()["requestId"] for _ in range(5)}
    assert len(ids) == 10
    assert all(REQUEST_ID.fullmatch(i) for i in ids)


@pytest.mark.parametrize("path", ["/api/v2/ecs", "/api/v2/vmx", "/favicon.ico", "/api/v2/vm/x"])
def test_wrong_path(client: AsgiClient, path: str) -> None:
    assert_error(
        client.call("DescribeImages", path=path), 404, "OPERATION_FAILED_RESOURCE_NOT_FOUND", path
    )


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_wrong_method(client: AsgiClient, method: str) -> None:
    response = client.request(method, headers={"x-zc-action": "DescribeImages"})
    assert_error(response, 405, "UNSUPPORTED_HTTP_METHOD", method)
    assert response.headers["allow"] == "POST"


def test_missing_action(client: AsgiClient) -> None:
    assert_error(client.call(None, {}), 400, "MISSING_PARAMETER", "X-ZC-Action")


def test_empty_action_header_is_missing(client: AsgiClient) -> None:
    assert_error(client.call("", {}), 400, "MISSING_PARAMETER")


@pytest.mark.parametrize("action", ["DescribeInstances", "describeimages", "DescribeZones"])
def test_unknown_action(client: AsgiClient, action: str) -> None:
    """Unknown in the seed dialect (DescribeZones belongs to the published one)."""
    assert_error(client.call(action), 401, "AUTHFAILURE_UNAUTHORIZED_OPERATION", action)


def test_tc_action_alias_and_header_case(client: AsgiClient, alice: dict[str, str]) -> None:
    response = client.request(
        headers={"Content-Type": "application/json", "X-Tc-Action": "DescribeRegions", **alice}
    )
    assert "regions" in assert_ok(response)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        'application/json; charset="utf-8"',
    ],
)
def test_json_content_types_accepted(
    client: AsgiClient, alice: dict[str, str], content_type: str
) -> None:
    response = client.request(
        headers={"content-type": content_type, "x-zc-action": "DescribeRegions", **alice}
    )
    assert_ok(response)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "application/json; charset=latin-1",
        "multipart/form-data; boundary=x",
    ],
)
def test_bad_content_type(client: AsgiClient, alice: dict[str, str], content_type: str) -> None:
    response = client.request(
        headers={"content-type": content_type, "x-zc-action": "DescribeRegions", **alice}
    )
    assert_error(
        response,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        content_type.split(";")[-1].split("=")[-1].strip('"'),
    )


def test_missing_content_type_with_a_body(client: AsgiClient, alice: dict[str, str]) -> None:
    response = client.request(body=b"{}", headers={"x-zc-action": "DescribeRegions", **alice})
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"{not json", "application/json"), (b"[1, 2]", "application/json"), (b"{}", "text/xml")],
)
def test_without_credentials_the_body_is_never_looked_at(
    client: AsgiClient, body: bytes, content_type: str
) -> None:
    """An anonymous caller gets 401 whatever it sends: nothing about parsing leaks."""
    response = client.request(
        body=body, headers={"content-type": content_type, "x-zc-action": "DescribeImages"}
    )
    assert_error(response, 401, "AUTHFAILURE_INVALID_AUTHORIZATION", "missing")


@pytest.mark.parametrize(
    "headers",
    [
        [("x-zc-action", "DescribeImages"), ("x-tc-action", "DeleteImages")],
        [("x-zc-action", "DescribeImages"), ("x-zc-action", "DeleteImages")],
        [("X-TC-Action", "DeleteImages"), ("X-ZC-Action", "DescribeImages")],
    ],
)
def test_a_request_names_exactly_one_action(
    client: AsgiClient, alice: dict[str, str], headers: list[tuple[str, str]]
) -> None:
    response = client.request_raw(headers=[("content-type", "application/json"),
                                           *alice.items(), *headers])  # fmt: skip
    assert_error(response, 400, "INVALID_PARAMETER_VALUE", "`DeleteImages`", "`DescribeImages`")


def test_the_same_action_twice_is_one_action(client: AsgiClient, alice: dict[str, str]) -> None:
    response = client.request_raw(headers=[("content-type", "application/json"), *alice.items(),
                                           ("x-zc-action", "DescribeRegions"),
                                           ("x-tc-action", "DescribeRegions")])  # fmt: skip
    assert "regions" in assert_ok(response)


def test_two_authorization_headers_are_refused(client: AsgiClient, alice: dict[str, str]) -> None:
    twice = [("content-type", "application/json"), *alice.items(), *alice.items()]
    response = client.request_raw(headers=[*twice, ("x-zc-action", "DescribeRegions")])
    assert_error(response, 401, "AUTHFAILURE_INVALID_AUTHORIZATION", "more than one")


@pytest.mark.parametrize("body", [b"", b"  \n"])
def test_empty_body_counts_as_empty_object(
    client: AsgiClient, alice: dict[str, str], body: bytes
) -> None:
    assert_ok(
        client.request(body=body, headers={**JSON, "x-zc-action": "DescribeRegions", **alice})
    )
    assert_ok(client.request(body=body, headers={"x-zc-action": "DescribeRegions", **alice}))


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"{'pageSize': 1}",
        b'{"pageSize": 1,}',
        b"NaN",
        b'{"a": 1e400}',
        b"\xff\xfe",
        b'{"imageName": "\\ud800"}',
    ],
)
def test_malformed_json(client: AsgiClient, body: bytes) -> None:
    assert_error(
        client.call("DescribeImages", body), 400, "INVALID_PARAMETER_VALUE", "not valid JSON"
    )


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"[]", "array"),
        (b'"x"', "string"),
        (b"1", "number"),
        (b"null", "null"),
        (b"true", "boolean"),
    ],
)
def test_body_not_an_object(client: AsgiClient, body: bytes, kind: str) -> None:
    assert_error(
        client.call("DescribeImages", body), 400, "INVALID_PARAMETER_VALUE", "JSON object", kind
    )


def test_oversized_body(test_db: Any, creds: Credentials) -> None:
    app = create_app(settings_for(test_db, max_body_bytes=64))
    c = AsgiClient(app, creds)
    try:
        big = json.dumps({"imageName": "x" * 100}).encode()
        headers = {**JSON, "x-zc-action": "DescribeImages", **creds.bearer("alice")}
        # Declared far too large (over 16 times the limit): refused without reading the body.
        declared = c.request(body=big, headers={**headers, "content-length": str(64 * 16 + 1)})
        assert_error(declared, 413, "REQUEST_ENTITY_TOO_LARGE", "64 bytes")
        # Over the limit, declared or streamed (chunked): read to the end, then refused.
        assert_error(
            c.request(body=big, headers={**headers, "content-length": str(len(big))}),
            413,
            "REQUEST_ENTITY_TOO_LARGE",
        )
        streamed = c.request(chunks=[big[:40], big[40:]], headers=headers)
        assert_error(streamed, 413, "REQUEST_ENTITY_TOO_LARGE", "64 bytes")
        # At the limit exactly it is served.
        ok = json.dumps({"imageName": "x" * 47}).encode()
        assert len(ok) == 64
        assert_ok(c.request(body=ok, headers=headers))
    finally:
        c.close()


def test_a_body_declared_far_too_large_is_refused_before_it_is_read(test_db: Any) -> None:
    app = create_app(settings_for(test_db, max_body_bytes=64))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v2/vm",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1025")],
    }
    asyncio.run(app(scope, receive, send))
    response = Response(
        status=sent[0]["status"],
        headers={k.decode(): v.decode() for k, v in sent[0]["headers"]},
        body=sent[1]["body"],
    )
    assert_error(response, 413, "REQUEST_ENTITY_TOO_LARGE", "64 bytes")


def test_unsupported_version(client: AsgiClient) -> None:
    doc = assert_error(
        client.call("DescribeImages", version="2020-01-01"),
        400,
        "INVALID_PARAMETER_VALUE",
        "2020-01-01",
    )
    assert "2023-03-13" in doc["message"] and "2026-04-01" in doc["message"]


def test_empty_version_is_the_seed_dialect(client: AsgiClient) -> None:
    assert "images" in assert_ok(client.call("DescribeImages", version=""))


async def explode(query: ImageQuery) -> ImagePage:
    raise RuntimeError("secret-internal-detail /var/lib/db")


def test_unexpected_exception_is_a_500_without_internals(
    test_db: Any, creds: Credentials, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(test_db)
    store.describe_images = explode  # type: ignore[method-assign]
    c = AsgiClient(create_app(settings_for(test_db), store=store), creds)
    try:
        with caplog.at_level(logging.ERROR, logger="vmimages"):
            response = c.call("DescribeImages", {})
        doc = assert_error(response, 500, "INTERNAL_SERVER_ERROR", "requestId")
        assert "secret" not in response.body.decode()
        assert "Traceback" not in response.body.decode()
        record = next(r for r in caplog.records if doc["requestId"] in r.getMessage())
        assert record.exc_info is not None and "secret-internal-detail" in str(record.exc_info[1])
    finally:
        c.close()


def test_error_messages_do_not_echo_huge_input(client: AsgiClient) -> None:
    name = "q" * 5000
    doc = assert_error(client.call("DescribeImages", {name: 1}), 400, "INVALID_PARAMETER_VALUE")
    assert len(doc["message"]) < 500


def test_request_timeout_is_a_503(test_db: Any, creds: Credentials) -> None:
    async def slow(query: ImageQuery) -> ImagePage:
        await asyncio.sleep(5)
        raise AssertionError("not reached")

    store = open_store(test_db)
    store.describe_images = slow  # type: ignore[method-assign]
    c = AsgiClient(create_app(settings_for(test_db, request_timeout=0.05), store=store), creds)
    try:
        assert_error(c.call("DescribeImages", {}), 503, "REQUEST_TIMED_OUT", "Retry later")
        assert_ok(c.call("DescribeRegions"))  # the next request is served as usual
    finally:
        c.close()


def test_unreachable_store_is_a_503(test_db: Any, creds: Credentials) -> None:
    async def gone(query: ImageQuery) -> ImagePage:
        raise StoreUnavailable("SQLite: disk I/O error")

    store = open_store(test_db)
    store.describe_images = gone  # type: ignore[method-assign]
    c = AsgiClient(create_app(settings_for(test_db), store=store), creds)
    try:
        doc = assert_error(c.call("DescribeImages", {}), 503, "SERVICE_TEMPORARY_UNAVAILABLE")
        assert "disk" not in doc["message"]
    finally:
        c.close()


def test_a_client_gone_before_its_body_gets_no_answer(client: AsgiClient) -> None:
    """A disconnect while the body is read ends the request quietly: nothing is sent."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    token = client.creds.tokens["alice"]
    scope = {"type": "http", "method": "POST", "path": "/api/v2/vm",
             "headers": [(b"content-type", b"application/json"),
                         (b"x-zc-action", b"DescribeRegions"),
                         (b"authorization", f"Bearer {token}".encode())]}  # fmt: skip
    client.run(client.app(scope, receive, send))
    assert sent == []
    assert_ok(client.call("DescribeRegions"))  # and the app serves the next one


def test_request_ids_are_version_4_uuids() -> None:
    ids = [protocol.new_request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    for request_id in ids:
        assert request_id.startswith("T")
        parsed = uuid.UUID(request_id[1:])
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert request_id[1:] == str(parsed).upper()


def test_seeding_the_process_random_generator_does_not_repeat_request_ids() -> None:
    """A library or a test that seeds `random` (hypothesis does, per example) gets no request
    id twice."""
    random.seed(7)
    first = [protocol.new_request_id() for _ in range(3)]
    random.seed(7)
    again = [protocol.new_request_id() for _ in range(3)]
    assert not set(first) & set(again)


def test_a_forked_process_draws_other_request_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send one id and leave without running pytest's teardown
        os.write(write, protocol.new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    parent = protocol.new_request_id()  # what the child drew, had it kept the parent's state
    child = os.read(read, 100).decode()
    os.close(read)
    assert REQUEST_ID.fullmatch(child) and child != parent


def test_every_domain_error_has_its_answer() -> None:
    """Each domain error a request can meet is in the one table (errors.DOMAIN_ERRORS), and is
    answered with a code other than 500; the table names the ones never answered."""
    from vmimages import accounts, catalog, history
    from vmimages.errors import DOMAIN_ERRORS, INTERNAL_ONLY, to_api_error

    found, todo = set(), [catalog.DomainError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    assert found == set(DOMAIN_ERRORS) | INTERNAL_ONLY
    samples = [
        catalog.LocationNotFound("zone", "XXX-A"), catalog.ImageNotFound("img-x"),
        catalog.NotCustomImage("img-x"), catalog.InvalidImageStatus("img-x", "CREATING", "x"),
        catalog.InstanceNotFound("ins-x"), catalog.InstanceExists("ins-x"),
        catalog.StoreUnavailable("down"), catalog.WritesUnavailable("primary down"),
        accounts.AccountNotFound("nobody"), accounts.AccountHasImages("alice", 2),
        accounts.AccountExists("alice"), accounts.CredentialNotFound("token", "zlt_x"),
        accounts.InvalidAccountName("-x"), history.CursorExpired(3, 7),
    ]  # fmt: skip
    assert {type(e) for e in samples} | {catalog.QuotaExceeded} == set(DOMAIN_ERRORS)
    for error in samples:
        answer = to_api_error(error)
        assert answer.status != 500 and answer.message, error


@pytest.mark.parametrize(
    "raw",
    [
        [(b"content-type", b"application/json"), (b"x-zc-action", b"DescribeRegions")],
        [(b"Content-Type", b"application/json"), (b"X-ZC-Action", b"DescribeRegions")],
        [(b"CONTENT-TYPE", b"a"), (b"x-Tc-action", b"DescribeRegions"), (b"x-zc-action", b"")],
        [(b"x-1", b"digits"), (b"X-\xc9t\xe9", b"latin-1"), (b"X-TC-ACTION", b" DescribeZones ")],
    ],
)
def test_header_names_in_any_case_read_as_lowercase(raw: list[tuple[bytes, bytes]]) -> None:
    """An ASGI server may pass names in any case (uvicorn lowers them; another may not): what
    the app reads is the same as from the names lowered first."""
    lowered = [(name.lower(), value) for name, value in raw]
    expected = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}
    assert protocol.headers_of(raw) == protocol.headers_of(lowered) == expected
    assert protocol.action_of(raw) == protocol.action_of(lowered)
