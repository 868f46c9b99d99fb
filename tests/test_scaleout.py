"""Several stateless API processes on one database (PostgreSQL, or a SQLite file), and what a
node does while its database is out of reach."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any

import pytest
from zenlayercloud.common.credential import Credential, TokenCredential
from zenlayercloud.common.excpetion.zenlayer_cloud_sdk_exception import ZenlayerCloudSdkException
from zenlayercloud.vm.v20260401 import models
from zenlayercloud.vm.v20260401.vm_client import VmClient

from tests.conftest import ON_POSTGRES, Server, add_accounts, key_file, settings_for
from tests.test_sdk import SeedClient, config
from vmimages import admin

pytestmark = pytest.mark.socket


def admin_work(database: str, work: Any) -> Any:
    """What an operator does with the CLI, on the shared database."""
    settings = settings_for(database)

    async def run() -> Any:
        async with admin.opened_store(settings, create=True) as store:
            return await work(store, admin.server_vault(settings))

    return asyncio.run(run())


def zones(client: VmClient) -> list[str]:
    return [z.zoneId for z in client.DescribeZones(models.DescribeZonesRequest()).zoneSet]


def test_two_servers_see_each_others_writes(server_factory: Any, db_path: str) -> None:
    creds = add_accounts(db_path)
    admin_work(db_path, lambda store, _: store.add_instance("ins-1", "alice", "FRA-A", None, None))
    first = server_factory(db_path, "--image-build-seconds", "0", creds=creds)
    second = server_factory(db_path, "--image-build-seconds", "0", creds=creds)
    each_sees_the_others_writes(first, second, db_path, creds)


def each_sees_the_others_writes(first: Server, second: Server, database: str, creds: Any) -> None:
    """Writes through either server, and the operator's on `database`, count from the very next
    request on both (alice has instance ins-1 in FRA-A; builds take no time)."""
    # A key made while both run works on both at once.
    key = admin_work(database, lambda store, vault: admin.create_access_key(store, vault, "alice"))
    on_first = VmClient(Credential(*key), config(first))
    on_second = VmClient(Credential(*key), config(second))
    assert "FRA-A" in zones(on_first) and zones(on_first) == zones(on_second)

    # Each process keeps the catalog in memory: both have answered this list before the writes
    # below, and each write through one is in the other's very next answer.
    seeds = [SeedClient(Credential(*key), config(server)) for server in (first, second)]

    def custom_images(server: int) -> dict[str, str]:
        listed = seeds[server].call("DescribeImages", imageType="CUSTOM_IMAGE")["images"]
        return {image["imageId"]: image["imageName"] for image in listed}

    assert custom_images(0) == custom_images(1) == {}
    create = models.CreateImageRequest()
    create.instanceId, create.imageName = "ins-1", "shared"
    image_id = on_first.CreateImage(create).imageId
    assert custom_images(1) == {image_id: "shared"}
    quota = seeds[1].call("DescribeImageQuota", regionIds=["de-frankfurt-9a"])["images"][0]
    assert quota["count"] == 1
    seeds[1].call("ModifyImagesAttributes", imageIds=[image_id], imageName="renamed")
    assert custom_images(0) == {image_id: "renamed"}
    wait_until_built(seeds[0], image_id)
    seeds[0].call("DeleteImages", imageIds=[image_id])
    assert custom_images(1) == {}

    # A revocation counts from the next request, on both.
    token = TokenCredential(creds.tokens["alice"])
    for server in (first, second):  # both have seen the key and the token
        assert zones(VmClient(token, config(server)))
        assert zones(VmClient(Credential(*key), config(server)))
    admin_work(database, lambda store, _: store.revoke_credential("key", key[0]))
    admin_work(
        database, lambda store, _: store.revoke_credential("token", creds.tokens["alice"][:12])
    )
    for server in (first, second):
        for credential in (Credential(*key), token):
            with pytest.raises(ZenlayerCloudSdkException) as err:
                zones(VmClient(credential, config(server)))
            assert err.value.code == "AUTHFAILURE_INVALID_AUTHORIZATION"
        # Only those: alice's other key and bob's credentials are untouched.
        for credential in (Credential(*creds.keys["alice"]), Credential(*creds.keys["bob"]),
                           TokenCredential(creds.tokens["bob"])):  # fmt: skip
            assert zones(VmClient(credential, config(server)))


def wait_until_built(client: SeedClient, image_id: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # (With a filter beside imageIds: the same bytes as the DeleteImages that follows, in the
        # same second, would be one signature for two actions; docs/auth.md, "Replays".)
        found = client.call("DescribeImages", imageIds=[image_id], imageType="CUSTOM_IMAGE")
        found = found["images"]
        if found[0]["imageStatus"] != "CREATING":
            return
        time.sleep(0.05)
    raise AssertionError(f"{image_id} is still CREATING")


def test_serve_with_workers(server_factory: Any, db_path: str) -> None:
    creds = add_accounts(db_path)
    server = server_factory(db_path, "--workers", "2", creds=creds)
    client = VmClient(Credential(*creds.keys["bob"]), config(server))
    for _ in range(6):
        assert "HKG-A" in zones(client)
    log = server.log_when(lambda text: text.count("Application startup complete") >= 2)
    assert log.count("Application startup complete") == 2


class Proxy:
    """A TCP relay from a local port to PostgreSQL that can be cut and restored, as a network
    failure or a database restart would look to the API node."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        assert self.listener is not None
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.mark.skipif(not ON_POSTGRES, reason="a database server to lose")
def test_database_outage_answers_503_and_recovers(server_factory: Any, db_path: str) -> None:
    creds = add_accounts(db_path)
    proxy = Proxy(("127.0.0.1", 5432))
    via_proxy = db_path.replace("postgresql://127.0.0.1/", f"postgresql://127.0.0.1:{proxy.port}/")
    assert key_file(via_proxy) == key_file(db_path)
    server = Server(via_proxy, "--image-build-seconds", "0", creds=creds)
    try:
        client = SeedClient(TokenCredential(creds.tokens["alice"]), config(server))
        assert client.call("DescribeRegions")["regions"]

        proxy.cut()
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(ZenlayerCloudSdkException) as err:
                client.call("DescribeImages", regionId="de-frankfurt-9a")
            elapsed = time.monotonic() - started
            assert err.value.code == "SERVICE_TEMPORARY_UNAVAILABLE", err.value.message
            assert err.value.request_id.startswith("T")
            assert elapsed < 10  # within the request timeout
        assert "Traceback" not in server.log.read_text()

        proxy.restore()
        outcomes = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                outcomes.append(client.call("DescribeImages", regionId="de-frankfurt-9a"))
                break
            except ZenlayerCloudSdkException as exc:
                outcomes.append(exc.code)
                time.sleep(0.2)
        # At most a few 503s while connections are made again, then the answer.
        assert all(o == "SERVICE_TEMPORARY_UNAVAILABLE" for o in outcomes[:-1]), outcomes
        assert isinstance(outcomes[-1], dict) and outcomes[-1]["totalCount"] > 0, outcomes
        assert client.call("DescribeRegions")["regions"]
    finally:
        server.stop()
        proxy.cut()
