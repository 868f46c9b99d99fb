"""Authentication (API.md §3): the spec's test vector, and every way a credential can fail."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from pathlib import Path

import pytest

from tests.asgi import AsgiClient, Credentials
from tests.conftest import (
    assert_error,
    assert_ok,
    key_file,
    run_sync,
    settings_for,
    sql,
    sqlite_only,
)
from vmimages import admin
from vmimages.app import create_app
from vmimages.auth import (
    SigningKey,
    canonical_request,
    parse_authorization,
    signature,
)
from vmimages.config import Settings
from vmimages.errors import ApiError
from vmimages.vault import Vault, VaultError, load_vault

VECTOR_HEADERS = {"content-type": "application/json; charset=utf-8", "host": "console.zenlayer.com"}
VECTOR_BODY = b'{"pageSize":10,"pageNum":1,"zoneId":"HKG-A"}'


def test_official_test_vector() -> None:
    assert hashlib.sha256(VECTOR_BODY).hexdigest() == (
        "5f714687ba91c606d503467766151206392474accd137ffea6dce2420b67c29a"
    )
    canonical = canonical_request(VECTOR_HEADERS, ["content-type", "host"], VECTOR_BODY)
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "29396f9dfa0f03820b931e8aa06e20cda197e73285ebd76aceb83f7dede493ee"
    )
    assert (
        signature(
            "Gu5t9xGARNpq86cd98joQYCN3",
            "1673361177",
            VECTOR_HEADERS,
            ["content-type", "host"],
            VECTOR_BODY,
        )
        == "efb356c32e55c781e10dc676da59462c22596d82e91c57803666243379555b2f"
    )


@pytest.mark.parametrize("length", [0, 1, 25, 63, 64, 65, 200])
def test_the_kept_signing_key_is_hmac_sha256_for_any_password(length: int) -> None:
    """SigningKey against the standard library's HMAC, around SHA-256's 64-byte block (a
    longer password is hashed first) and for a password that is not ASCII."""
    for password in ("k" * length, "é" * length):
        key = SigningKey(password)
        for message in (b"", b"ZC2-HMAC-SHA256\n1673361177\n" + b"ab" * 40, bytes(range(256))):
            expected = hmac.new(password.encode(), message, hashlib.sha256).hexdigest()
            assert key.mac(message) == expected
            assert key.mac(message) == expected  # the kept state is not used up


def signed_headers(creds: Credentials, body: bytes, **overrides: str) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "x-zc-action": "DescribeRegions",
        "host": "127.0.0.1:8080",
    }
    headers.update(creds.signed("alice", headers, body))
    headers.update(overrides)
    return headers


def test_signed_request_is_served(client: AsgiClient) -> None:
    assert "regions" in assert_ok(client.call("DescribeRegions", signed=True))
    assert_ok(client.call("DescribeImages", {"regionId": "de-frankfurt-9a"}, signed=True))


def test_signature_hex_is_case_insensitive(client: AsgiClient) -> None:
    body = b"{}"
    headers = signed_headers(client.creds, body)
    sig = headers["authorization"].rsplit("=", 1)[1]
    headers["authorization"] = headers["authorization"].replace(sig, sig.upper())
    assert_ok(client.request(body=body, headers=headers))


@pytest.mark.parametrize("sig", ["\u00e9" * 64, "0" * 63 + "\u00e9", "zz"])
def test_a_signature_that_is_not_hex_fails_as_a_mismatch(client: AsgiClient, sig: str) -> None:
    body = b"{}"
    headers = signed_headers(client.creds, body)
    headers["authorization"] = headers["authorization"].rsplit("=", 1)[0] + "=" + sig
    assert_error(client.request(body=body, headers=headers), 401, "AUTHFAILURE_SIGNATURE_FAILURE")


def test_missing_authorization(client: AsgiClient) -> None:
    assert_error(
        client.call("DescribeRegions", as_=None),
        401,
        "AUTHFAILURE_INVALID_AUTHORIZATION",
        "missing",
    )


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"authorization": "Basic YWxpY2U6c2VjcmV0"}, "`Basic` is not supported"),
        ({"authorization": "Bearer"}, "token is not valid"),
        ({"authorization": "Bearer zlt_unknown"}, "token is not valid"),
        ({"authorization": "ZC2-HMAC-SHA256"}, "lacks Credential, SignedHeaders, Signature"),
        ({"authorization": "ZC2-HMAC-SHA256 Credential=abc"}, "lacks SignedHeaders, Signature"),
        ({"authorization": "ZC2-HMAC-SHA256 garbage"}, "malformed"),
        (
            {
                "authorization": "ZC2-HMAC-SHA256 Credential=a, SignedHeaders=host;content-type,"
                " Signature=00"
            },
            "sorted",
        ),
        (
            {"authorization": "ZC2-HMAC-SHA256 Credential=a, SignedHeaders=host, Signature=00"},
            "content-type and host",
        ),
        (
            {
                "authorization": "ZC2-HMAC-SHA256 Credential=a, SignedHeaders=Content-Type;Host,"
                " Signature=00"
            },
            "lowercase",
        ),
        (
            {
                "authorization": "ZC2-HMAC-SHA256 Credential=a,"
                " SignedHeaders=content-type;host;x-custom, Signature=00"
            },
            "x-custom is not in the request",
        ),
        (
            {
                "authorization": "ZC2-HMAC-SHA256 Credential=0D9UtpyKYcHxms5v,"
                " SignedHeaders=content-type;host, Signature=00"
            },
            "`0D9UtpyKYcHxms5v` is not valid",
        ),
        ({"x-zc-timestamp": ""}, "Unix seconds"),
        ({"x-zc-timestamp": "12.5"}, "Unix seconds"),
        # Digits that are not ASCII (int() refuses them), and more digits than a float holds.
        ({"x-zc-timestamp": "\u00b2"}, "Unix seconds"),
        ({"x-zc-timestamp": "1\u00b9"}, "Unix seconds"),
        ({"x-zc-timestamp": "9" * 400}, "Unix seconds"),
        ({"x-zc-signature-method": "HMAC-SHA1"}, "X-ZC-Signature-Method"),
        ({"x-zc-signature-method": ""}, "X-ZC-Signature-Method"),
    ],
)
def test_malformed_or_unknown_credentials(
    client: AsgiClient, overrides: dict[str, str], fragment: str
) -> None:
    """A signed request with one header made wrong: the Authorization itself, or the timestamp
    and signature-method headers that go with it."""
    headers = signed_headers(client.creds, b"{}", **overrides)
    assert_error(
        client.request(body=b"{}", headers=headers),
        401,
        "AUTHFAILURE_INVALID_AUTHORIZATION",
        fragment,
    )


@pytest.mark.parametrize(
    ("change", "value"),
    [("host", "127.0.0.1:8081"), ("content-type", "application/json; charset=utf-8")],
)
def test_signed_headers_are_covered(client: AsgiClient, change: str, value: str) -> None:
    headers = signed_headers(client.creds, b"{}", **{change: value})
    assert_error(client.request(body=b"{}", headers=headers), 401, "AUTHFAILURE_SIGNATURE_FAILURE")


def test_body_is_covered_byte_for_byte(client: AsgiClient) -> None:
    body = b'{"regionIds": ["de-frankfurt-9a"]}'
    headers = signed_headers(client.creds, body)
    # The same JSON, written differently, is another body.
    assert_error(
        client.request(body=b'{"regionIds":["de-frankfurt-9a"]}', headers=headers),
        401,
        "AUTHFAILURE_SIGNATURE_FAILURE",
    )
    assert_ok(client.request(body=body, headers=headers))


def test_wrong_password(client: AsgiClient) -> None:
    key_id, _ = client.creds.keys["alice"]
    client.creds.keys["mallory"] = (key_id, "guessed-password")
    assert_error(
        client.call("DescribeRegions", as_="mallory", signed=True),
        401,
        "AUTHFAILURE_SIGNATURE_FAILURE",
    )


@pytest.mark.parametrize(("offset", "ok"), [(-299, True), (299, True), (-301, False), (301, False)])
def test_timestamp_window(client: AsgiClient, offset: int, ok: bool) -> None:
    body = b"{}"
    headers = {"content-type": "application/json", "x-zc-action": "DescribeRegions"}
    # The server reads its clock with its fraction of a second, after this: the second is
    # rounded away from the 300 s bound, or a stamp made at .999 would land on its other side.
    now = time.time()
    stamp = (math.ceil(now) if (offset > 0) != ok else math.floor(now)) + offset
    headers.update(client.creds.signed("alice", headers, body, timestamp=stamp))
    response = client.request(body=body, headers=headers)
    if ok:
        assert_ok(response)
    else:
        assert_error(response, 401, "AUTHFAILURE_SIGNATURE_EXPIRED", "300")


def test_auth_comes_before_the_action_is_looked_up(client: AsgiClient) -> None:
    assert_error(client.call("NoSuchAction", as_=None), 401, "AUTHFAILURE_INVALID_AUTHORIZATION")
    assert_error(client.call("NoSuchAction"), 401, "AUTHFAILURE_UNAUTHORIZED_OPERATION")


def test_secrets_are_not_stored_in_clear(test_db: str, creds: Credentials) -> None:
    stored = repr(sql(test_db, "SELECT * FROM access_keys")) + repr(
        sql(test_db, "SELECT * FROM tokens")
    )
    assert len(sql(test_db, "SELECT key_id FROM access_keys")) == 2
    for key_id, password in creds.keys.values():
        assert key_id in stored and password not in stored
    for token in creds.tokens.values():
        assert token not in stored


@sqlite_only
def test_secrets_are_not_in_the_file(test_db: str, creds: Credentials) -> None:
    files = [Path(test_db), Path(f"{test_db}-wal")]
    raw = b"".join(f.read_bytes() for f in files if f.exists())
    for _, password in creds.keys.values():
        assert password.encode() not in raw
    for token in creds.tokens.values():
        assert token.encode() not in raw


def test_a_copy_of_the_database_alone_cannot_sign(
    test_db: str, creds: Credentials, tmp_path: Path
) -> None:
    """Sealed passwords open only under the server key, which lives outside the database."""
    rows = sql(test_db, "SELECT key_id, sealed FROM access_keys ORDER BY key_id")
    (key_id, sealed), (other_id, _) = rows
    sealed = bytes(sealed)
    right = load_vault(None, key_file(test_db), create=False)
    assert (
        right.open(sealed, key_id)
        == creds.keys[next(a for a in creds.keys if creds.keys[a][0] == key_id)][1]
    )
    other = Vault([b"\x01" * 32])
    with pytest.raises(VaultError):
        other.open(sealed, key_id)
    # Nor does a sealed password moved to another key's row open.
    with pytest.raises(VaultError):
        right.open(sealed, other_id)


def test_a_server_without_the_databases_key_is_unavailable_not_broken(
    test_db: str, creds: Credentials, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """503 with what is wrong in general terms (the log names the access key), and /readyz
    says not ready; never a 500."""

    async def record_the_key() -> None:  # as `serve` does at start
        async with admin.opened_store(settings_for(test_db), create=False) as store:
            await admin.check_server_key(store, settings_for(test_db))

    run_sync(record_the_key())
    app = create_app(Settings(database=test_db, key_file=str(tmp_path / "other.key")))
    c = AsgiClient(app, creds)
    try:
        doc = assert_error(
            c.call("DescribeRegions", signed=True), 503, "SERVICE_TEMPORARY_UNAVAILABLE",
            "does not hold the server key",
        )  # fmt: skip
        assert creds.keys["alice"][0] not in doc["message"]
        assert any("opens under none" in r.getMessage() for r in caplog.records)
        assert_ok(c.call("DescribeRegions"))  # tokens need no server key
        ready = c.request_raw(method="GET", path="/readyz", headers=[])
        assert_error(ready, 503, "SERVICE_TEMPORARY_UNAVAILABLE", "which this server does not")
    finally:
        c.close()


def test_server_key_from_the_environment(test_db: str, tmp_path: Path) -> None:
    import base64

    secret = base64.b64encode(b"k" * 32).decode()
    settings = Settings(database=str(tmp_path / "env.db"), secret_key=secret)
    vault = admin.server_vault(settings)
    assert vault.open(vault.seal("pw", "id"), "id") == "pw"
    assert not Path(settings.key_path).exists()  # no key file is made
    with pytest.raises(VaultError, match="base64"):
        load_vault("not base64!", "unused", create=False)
    with pytest.raises(VaultError, match="32 bytes"):
        load_vault(base64.b64encode(b"short").decode(), "unused", create=False)


def test_key_file_is_private(test_db: str, creds: Credentials) -> None:
    mode = Path(key_file(test_db)).stat().st_mode & 0o777
    assert mode == 0o600


def test_parse_authorization_tolerates_spacing() -> None:
    key, signed, sig = parse_authorization(
        "ZC2-HMAC-SHA256 Credential=abc ,SignedHeaders=content-type;host,  Signature=ff"
    )
    assert (key, signed, sig) == ("abc", ["content-type", "host"], "ff")
    with pytest.raises(ApiError):
        parse_authorization(
            "ZC2-HMAC-SHA256 Credential=, SignedHeaders=content-type;host, Signature=f"
        )


@pytest.mark.parametrize(
    ("key", "sig", "problem"),
    [
        ("AKID0123", "0a1b", None),  # the SDK form
        ("AKID0123", "0a-1b", None),  # a wrong signature is the signature check's to refuse
        ("key-1_x", "0a1b", "is not an access key id"),  # key ids are letters and digits
        ("AKID\u00b2", "0a1b", "is not an access key id"),
        ("AKID", "", "lacks Signature"),
    ],
)
def test_the_sdk_form_is_read_and_a_bad_credential_refused(
    key: str, sig: str, problem: str | None
) -> None:
    value = f"ZC2-HMAC-SHA256 Credential={key}, SignedHeaders=content-type;host, Signature={sig}"
    if problem is not None:
        with pytest.raises(ApiError, match=problem) as err:
            parse_authorization(value)
        assert err.value.code.name == "AUTHFAILURE_INVALID_AUTHORIZATION"
        return
    assert parse_authorization(value) == (key, ["content-type", "host"], sig)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        # Empty parts and spaces around names and values are read past, as before.
        (
            "ZC2-HMAC-SHA256 Credential=AKID1,, SignedHeaders=content-type;host ,Signature= 0a1b ",
            None,
        ),
        (
            "ZC2-HMAC-SHA256 Credential=AKID1, SignedHeaders=content-type;content-type;host,"
            " Signature=0a1b",
            "sorted",
        ),  # a name signed twice
        (
            "ZC2-HMAC-SHA256 Credential=AKID1, SignedHeaders=;content-type;host, Signature=0a1b",
            None,
        ),  # sorted and lowercase; the empty name is not a header the request lacks here
        ("ZC2-HMAC-SHA256 Credential=AKID1, SignedHeaders, Signature=0a1b", "malformed"),
    ],
)
def test_the_authorization_parts_are_read_one_by_one(value: str, problem: str | None) -> None:
    if problem is not None:
        with pytest.raises(ApiError, match=problem) as err:
            parse_authorization(value)
        assert err.value.code.name == "AUTHFAILURE_INVALID_AUTHORIZATION"
        return
    key_id, signed, sent = parse_authorization(value)
    assert (key_id, sent) == ("AKID1", "0a1b")
    assert signed[-2:] == ["content-type", "host"]


def test_a_field_named_twice_is_refused() -> None:
    value = (
        "ZC2-HMAC-SHA256 Credential=AKID1, Credential=AKID2, SignedHeaders=content-type;host,"
        " Signature=0a1b"
    )
    with pytest.raises(ApiError, match="names `Credential` twice"):
        parse_authorization(value)


def test_action_and_version_are_not_signed(client: AsgiClient) -> None:
    """As in the SDKs: only content-type, host, body and timestamp are covered (API.md §3)."""
    body = b"{}"
    headers = signed_headers(client.creds, body)
    headers["x-zc-action"] = "DescribeImages"
    assert "images" in assert_ok(client.request(body=body, headers=headers))
    headers["x-zc-version"] = "2026-04-01"
    headers["x-zc-action"] = "DescribeZones"
    assert "zoneSet" in assert_ok(client.request(body=body, headers=headers))


def test_a_password_kept_open_opens_for_its_own_key_only(test_db: str, creds: Credentials) -> None:
    """A running server keeps the passwords it has opened; what it keeps is found only for the
    sealed value and key id it was opened from: alice's sealed password moved to bob's row,
    once alice has signed, still does not sign as bob."""
    c = AsgiClient(create_app(settings_for(test_db)), creds)
    try:
        assert_ok(c.call("DescribeRegions", signed=True))  # alice's password opened, and kept
        (alice_id, alice_password), (bob_id, _) = creds.keys["alice"], creds.keys["bob"]
        sealed = sql(test_db, "SELECT sealed FROM access_keys WHERE key_id = ?", (alice_id,))
        sql(test_db, "UPDATE access_keys SET sealed = ? WHERE key_id = ?", (sealed[0][0], bob_id))
        seq = sql(test_db, "UPDATE change_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq")
        sql(test_db, "INSERT INTO changes (scope, seq) VALUES (-1, ?) ON CONFLICT (scope)"
            " DO UPDATE SET seq = excluded.seq", (seq[0][0],))  # fmt: skip
        c.creds = Credentials(keys={"alice": (bob_id, alice_password)})
        assert_error(c.call("DescribeRegions", signed=True), 503, "SERVICE_TEMPORARY_UNAVAILABLE")
    finally:
        c.close()
