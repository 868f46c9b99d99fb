"""No input reaches a 500: random bodies, header values and parameter values, through the app
and through a real server, on whichever store the suite runs on (SQLite or PostgreSQL). Every
answer is the JSON envelope with a 2xx or 4xx status."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.asgi import AsgiClient, Credentials
from tests.conftest import REQUEST_ID, Server
from vmimages.actions import ACTIONS

ACTION_NAMES = [*sorted({name for _, name in ACTIONS}), "NoSuchAction", ""]
PARAM_NAMES = sorted({name for action in ACTIONS.values() for name in action.params})
HEADERS = ["x-zc-timestamp", "x-zc-version", "x-zc-signature-method", "content-type",
           "authorization", "x-zc-action", "x-tc-action", "content-length"]  # fmt: skip

latin1 = st.text(st.characters(max_codepoint=255, blacklist_characters="\r\n"), max_size=40)
digits = st.one_of(  # as they arrive: UTF-8 bytes, read as latin-1 by the server
    st.text(
        st.sampled_from("0123456789\u00b2\u00b3\u00b9\u0660\u06f1"), min_size=1, max_size=20
    ).map(lambda s: s.encode().decode("latin-1")),
    st.integers(min_value=0, max_value=10**500).map(str),
)
header_value = st.one_of(latin1, digits, st.just("ZC2-HMAC-SHA256"), st.just("Bearer x"))
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False), st.text(max_size=30),
    st.text(st.characters(max_codepoint=0x1F), max_size=5),
)  # fmt: skip
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
params = st.dictionaries(
    st.sampled_from(PARAM_NAMES) | st.text(max_size=12), json_value, max_size=5
)
body = st.one_of(
    params.map(lambda p: json.dumps(p).encode()),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60),
)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_envelope(status: int, payload: bytes, request_id: str | None) -> None:
    assert 200 <= status < 500, (status, payload)
    doc = json.loads(payload)
    if status == 200:
        assert set(doc) == {"requestId", "response"}, doc
    else:
        assert set(doc) == {"requestId", "code", "message"}, doc
    assert REQUEST_ID.fullmatch(doc["requestId"]), doc
    assert request_id == doc["requestId"]


def alice_headers(creds: Credentials, signed: bool, sent: dict[str, str], raw: bytes) -> Any:
    if signed:
        return creds.signed("alice", {**sent, "host": "testserver"}, raw)
    return creds.bearer("alice")


@FUZZ
@given(
    action=st.sampled_from(ACTION_NAMES),
    version=st.sampled_from(["", "2023-03-13", "2026-04-01", "1999-01-01"]),
    raw=body,
    extra=st.dictionaries(st.sampled_from(HEADERS), header_value, max_size=3),
    signed=st.booleans(),
)
def test_the_app_answers_every_input_with_the_envelope(
    client: AsgiClient, action: str, version: str, raw: bytes, extra: dict[str, str], signed: bool
) -> None:
    sent = {"content-type": "application/json", "x-zc-action": action, "x-zc-version": version}
    headers = {**sent, **alice_headers(client.creds, signed, sent, raw), **extra}
    response = client.request(body=raw, headers=headers)
    assert_envelope(response.status, response.body, response.headers.get("x-zc-request-id"))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One real server for the module, on a database of the suite's kind."""
    from tests.conftest import Databases, add_accounts, load_test_catalog

    databases = Databases(tmp_path_factory.mktemp("fuzz"))
    database = databases.new()
    load_test_catalog(database)
    creds = add_accounts(database)
    server = Server(database, "--no-default-catalog", creds=creds)
    yield server, creds
    server.stop()
    databases.drop_all()


@FUZZ
@given(
    action=st.sampled_from(ACTION_NAMES),
    raw=body,
    extra=st.dictionaries(st.sampled_from(HEADERS[:4]), header_value, max_size=3),
    signed=st.booleans(),
)
def test_a_real_server_answers_every_input_with_the_envelope(
    live: Any, action: str, raw: bytes, extra: dict[str, str], signed: bool
) -> None:
    server, creds = live
    host = f"127.0.0.1:{server.port}"
    sent = {"content-type": "application/json", "x-zc-action": action}
    auth = creds.signed("alice", {**sent, "host": host}, raw) if signed else creds.bearer("alice")
    headers = {**sent, **auth, **extra, "host": host}
    conn = http.client.HTTPConnection(host, timeout=10)
    try:
        conn.putrequest("POST", "/api/v2/vm", skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value.encode("latin-1"))
        conn.putheader("content-length", str(len(raw)))
        conn.endheaders(raw)
        response = conn.getresponse()
        assert_envelope(response.status, response.read(), response.getheader("x-zc-request-id"))
    finally:
        conn.close()


DEV_PARAMS = ["instanceId", "account", "location", "diskSize", "imageId", "ok"]
dev_body = st.one_of(
    st.dictionaries(st.sampled_from(DEV_PARAMS) | st.text(max_size=8), json_value, max_size=4).map(
        lambda p: json.dumps(p).encode()
    ),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40),
)


@pytest.fixture(scope="module")
def dev_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The app with serve --dev's control endpoints, on a database of the suite's kind."""
    from tests.conftest import Databases, add_accounts, load_test_catalog, settings_for
    from vmimages.app import create_app

    databases = Databases(tmp_path_factory.mktemp("fuzzdev"))
    database = databases.new()
    load_test_catalog(database)
    client = AsgiClient(create_app(settings_for(database, dev=True)), add_accounts(database))
    yield client
    client.close()
    databases.drop_all()


@FUZZ
@given(
    path=st.sampled_from(["reset", "instances", "builds", "nothing", ""]),
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
    raw=dev_body,
)
def test_the_control_endpoints_answer_every_input_with_the_envelope(
    dev_client: AsgiClient, path: str, method: str, raw: bytes
) -> None:
    control = {"content-type": "application/json", "host": "127.0.0.1"}  # as a test suite sends
    response = dev_client.request(method, f"/_vmimages/{path}", body=raw, headers=control)
    assert_envelope(response.status, response.body, response.headers.get("x-zc-request-id"))
