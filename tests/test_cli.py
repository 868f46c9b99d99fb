"""The operator CLI: accounts, keys and tokens, as an operator types them."""

from __future__ import annotations

import json
import os
import re

import pytest
from click.testing import CliRunner

from tests.asgi import AsgiClient, Credentials
from tests.conftest import ON_POSTGRES, assert_error, assert_ok, key_file, settings_for, sql
from vmimages.app import create_app
from vmimages.cli import main


@pytest.fixture
def cli(db_path: str):  # type: ignore[no-untyped-def]
    database = db_path
    runner = CliRunner(env={"VMIMAGES_KEY_FILE": key_file(database)})
    made = runner.invoke(main, ["init", "--database", database])  # as an operator starts
    assert made.exit_code == 0, made.output

    def run(*args: str, ok: bool = True) -> str:
        result = runner.invoke(main, [*args, "--database", database], catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    run.database = database  # type: ignore[attr-defined]
    return run


def test_accounts_keys_tokens_round_trip(cli) -> None:  # type: ignore[no-untyped-def]
    assert "made account carol" in cli("accounts", "create", "carol")
    assert json.loads(cli("accounts", "create", "dave", "--json"))["account"] == "dave"
    assert [a["account"] for a in json.loads(cli("accounts", "list", "--json"))] == [
        "carol",
        "dave",
    ]

    key = json.loads(cli("keys", "create", "--account", "carol", "--json"))
    assert set(key) == {"accessKeyId", "accessKeyPassword"}
    assert re.fullmatch(r"[A-Za-z0-9]{16}", key["accessKeyId"])
    plain = cli("keys", "create", "--account", "carol")
    assert "accessKeyId:" in plain and "accessKeyPassword:" in plain
    token = json.loads(cli("tokens", "create", "--account", "dave", "--json"))
    assert set(token) == {"token"} and token["token"].startswith("zlt_")

    listed = json.loads(cli("keys", "list", "--json"))
    assert [k["account"] for k in listed] == ["carol", "carol"]
    assert all(k["status"] == "ACTIVE" for k in listed)
    assert key["accessKeyPassword"] not in cli("keys", "list")
    assert token["token"] not in cli("tokens", "list")
    assert json.loads(cli("tokens", "list", "--account", "carol", "--json")) == []

    # The credentials work against the app, and stop working once revoked.
    creds = Credentials(
        keys={"carol": (key["accessKeyId"], key["accessKeyPassword"])},
        tokens={"dave": token["token"]},
    )
    client = AsgiClient(create_app(settings_for(cli.database)), creds)
    try:
        assert_ok(client.call("DescribeRegions", as_="carol", signed=True))
        assert_ok(client.call("DescribeRegions", as_="dave"))
        assert "revoked access key" in cli("keys", "revoke", key["accessKeyId"])
        assert "revoked token" in cli("tokens", "revoke", token["token"])  # by the token itself
        assert_error(
            client.call("DescribeRegions", as_="carol", signed=True),
            401,
            "AUTHFAILURE_INVALID_AUTHORIZATION",
        )
        assert_error(
            client.call("DescribeRegions", as_="dave"), 401, "AUTHFAILURE_INVALID_AUTHORIZATION"
        )
    finally:
        client.close()
    revoked = [
        k
        for k in json.loads(cli("keys", "list", "--json"))
        if k["accessKeyId"] == key["accessKeyId"]
    ]
    assert revoked[0]["status"] == "REVOKED" and revoked[0]["revokedAt"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("accounts", "create", "bad name"), "account name"),
        (("keys", "create", "--account", "nobody"), "no account named 'nobody'"),
        (("tokens", "create", "--account", "nobody"), "no account named 'nobody'"),
        (("keys", "revoke", "NOPE"), "no access key 'NOPE'"),
        (("tokens", "revoke", "zlt_nope"), "no token 'zlt_nope'"),
        (("keys", "list", "--account", "nobody"), "no account named 'nobody'"),
    ],
)
def test_cli_errors_are_clean(cli, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    output = cli(*args, ok=False)
    assert message in output
    assert "Traceback" not in output


def test_duplicate_account(cli) -> None:  # type: ignore[no-untyped-def]
    cli("accounts", "create", "erin")
    assert "exists already" in cli("accounts", "create", "erin", ok=False)


NOT_MAKERS = [
    ("accounts", "list"),
    ("accounts", "create", "carol"),
    ("keys", "list"),
    ("keys", "create", "--account", "default"),
    ("keys", "rotate-server-key"),
    ("tokens", "list"),
    ("instances", "list"),
    ("images", "export"),
]


@pytest.mark.parametrize("args", NOT_MAKERS, ids=" ".join)
def test_only_serve_and_init_make_a_database(db_path: str, args: tuple[str, ...]) -> None:
    """A typo in --database (or no --database in the wrong folder) makes nothing: the command
    says so and exits non-zero; `init` then makes the database, and the command works."""
    runner = CliRunner()
    for where in (("--database", db_path), ()):  # a path or URL given, and the default file
        result = runner.invoke(main, [*args, *where])
        assert result.exit_code == 1, result.output
        assert "holds no vmimages database" in result.output, result.output
        assert "vmimages init" in result.output and "Traceback" not in result.output
    assert os.listdir(".") == []  # no file made, not even a server key
    if ON_POSTGRES:
        assert sql(db_path, "SELECT count(*) FROM information_schema.tables"
                   " WHERE table_schema = current_schema()") == [(0,)]  # fmt: skip
    assert runner.invoke(main, ["init", "--database", db_path]).exit_code == 0
    if args[1] in ("list", "export"):
        result = runner.invoke(main, [*args, "--database", db_path])
        assert result.exit_code == 0, result.output
