"""`vmimages accounts disable|enable|delete`: what two running servers do from the next
request, and what deleting takes with it and records."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from zenlayercloud.common.credential import Credential, TokenCredential
from zenlayercloud.common.excpetion.zenlayer_cloud_sdk_exception import ZenlayerCloudSdkException
from zenlayercloud.vm.v20260401.vm_client import VmClient

from tests.conftest import add_accounts, assert_error, key_file, sql
from tests.test_scaleout import admin_work, zones
from tests.test_sdk import SeedClient, config
from vmimages.cli import main
from vmimages.history import DELETED

pytestmark = pytest.mark.socket


def operator(database: str, *args: str, ok: bool = True) -> str:
    result = CliRunner(env={"VMIMAGES_KEY_FILE": key_file(database)}).invoke(
        main, [*args, "--database", database]
    )
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def refused(client: VmClient) -> bool:
    """Whether the client's credential is refused (401 AUTHFAILURE_INVALID_AUTHORIZATION)."""
    try:
        zones(client)
    except ZenlayerCloudSdkException as exc:
        return str(exc.code) == "AUTHFAILURE_INVALID_AUTHORIZATION"
    return False


def test_disable_enable_and_delete_count_on_every_server_at_once(
    server_factory: Any, db_path: str
) -> None:
    creds = add_accounts(db_path)
    admin_work(db_path, lambda store, _: store.add_instance("ins-1", "alice", "FRA-A", None, None))
    servers = [server_factory(db_path, "--image-build-seconds", "0", creds=creds)
               for _ in range(2)]  # fmt: skip

    def clients(name: str) -> list[VmClient]:
        return [VmClient(credential, config(server)) for server in servers
                for credential in (Credential(*creds.keys[name]),
                                   TokenCredential(creds.tokens[name]))]  # fmt: skip

    assert not any(refused(client) for client in clients("alice"))  # seen, and kept, by both
    assert "disabled account alice" in operator(db_path, "accounts", "disable", "alice")
    assert all(refused(client) for client in clients("alice"))
    assert not any(refused(client) for client in clients("bob"))
    for server in servers:  # over the wire: 401 and the error envelope
        answered = server.answer(b"{}", {"Content-Type": "application/json",
                                         "X-ZC-Action": "DescribeZones"})  # fmt: skip
        assert_error(answered, 401, "AUTHFAILURE_INVALID_AUTHORIZATION")
    listed = {a["account"]: a["status"] for a in json.loads(
        operator(db_path, "accounts", "list", "--json"))}  # fmt: skip
    assert listed == {"alice": "DISABLED", "bob": "ENABLED"}
    operator(db_path, "accounts", "enable", "alice")
    assert not any(refused(client) for client in clients("alice"))

    alice = SeedClient(Credential(*creds.keys["alice"]), config(servers[0]))
    image_id = alice.call("CreateImage", instanceId="ins-1", imageName="mine")["imageId"]
    # An account with images is deleted only with them; and only when told twice.
    out = operator(db_path, "accounts", "delete", "alice", "--yes", ok=False)
    assert "owns 1 custom images" in out
    out = operator(db_path, "accounts", "delete", "alice", "--with-images", ok=False)
    assert "cannot be undone: add --yes" in out
    assert not any(refused(client) for client in clients("alice"))  # nothing happened

    gone = json.loads(operator(db_path, "accounts", "delete", "alice", "--with-images", "--yes",
                               "--json"))  # fmt: skip
    assert gone == {"account": "alice", "images": 1, "instances": 1, "credentials": 2}
    assert all(refused(client) for client in clients("alice"))
    assert not any(refused(client) for client in clients("bob"))
    assert sql(db_path, "SELECT count(*) FROM images WHERE image_id = ?", (image_id,)) == [(0,)]
    (last,) = sql(db_path, "SELECT kind, actor FROM image_changes WHERE image_id = ?"
                  " ORDER BY seq DESC LIMIT 1", (image_id,))  # fmt: skip
    assert last[0] == DELETED and "accounts delete" in last[1]
    # Nothing comes back: the name stays the deleted account's.
    assert [a["account"] for a in json.loads(operator(db_path, "accounts", "list", "--json"))] == [
        "bob"
    ]
    assert "exists already" in operator(db_path, "accounts", "create", "alice", ok=False)
    assert "no account" in operator(db_path, "keys", "create", "--account", "alice", ok=False)
    assert "no account" in operator(db_path, "accounts", "enable", "alice", ok=False)
