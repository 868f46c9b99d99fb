"""https: `vmimages certs create` makes a development CA and certificate; `serve --tls-cert`
serves with them; the official Python SDK, with its default https scheme, trusts the CA."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from zenlayercloud.common.config import Config
from zenlayercloud.common.credential import Credential
from zenlayercloud.common.excpetion.zenlayer_cloud_sdk_exception import ZenlayerCloudSdkException
from zenlayercloud.vm.v20260401 import models
from zenlayercloud.vm.v20260401.vm_client import VmClient

from tests.conftest import add_accounts
from vmimages.cli import main

pytestmark = pytest.mark.socket


def test_the_sdk_speaks_https_to_a_dev_certificate(
    server_factory: Any, db_path: str, tmp_path: Path
) -> None:
    out = tmp_path / "certs"
    made = CliRunner().invoke(main, ["certs", "create", "--out", str(out), "--host", "127.0.0.1",
                                     "--host", "localhost"])  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "certification=" in made.output and "SSL_CERT_FILE=" in made.output
    for private in ("server-key.pem", "ca-key.pem"):
        assert stat.S_IMODE(os.stat(out / private).st_mode) == 0o600
    creds = add_accounts(db_path)
    server = server_factory(db_path, "--tls-cert", str(out / "server.pem"), "--tls-key",
                            str(out / "server-key.pem"), creds=creds)  # fmt: skip
    domain = f"127.0.0.1:{server.port}"
    trusted = VmClient(Credential(*creds.keys["alice"]),
                       Config(domain=domain, certification=str(out / "ca.pem")))  # fmt: skip
    assert trusted.config.scheme == "https"  # the SDK's default, untouched
    zones = trusted.DescribeZones(models.DescribeZonesRequest()).zoneSet
    assert "FRA-A" in [z.zoneId for z in zones]
    # Without the CA, the SDK refuses the certificate: it is not a public one.
    untrusted = VmClient(Credential(*creds.keys["alice"]), Config(domain=domain))
    with pytest.raises((ZenlayerCloudSdkException, OSError)):
        untrusted.DescribeZones(models.DescribeZonesRequest())


@pytest.mark.parametrize("tls", [True, False], ids=["https", "http"])
def test_a_stopped_server_exits_within_the_drain_whatever_its_clients_do(
    server_factory: Any, db_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tls: bool
) -> None:
    """After SIGTERM: the drain (1 s here), then at most SHUTDOWN_GRACE (3 s) more, with an
    idle kept-alive client, one that sent half a body and one that sent half a head."""
    out = tmp_path / "certs"
    assert CliRunner().invoke(main, ["certs", "create", "--out", str(out)]).exit_code == 0
    monkeypatch.setenv("VMIMAGES_DRAIN_SECONDS", "1")
    extra = ["--tls-cert", str(out / "server.pem"), "--tls-key", str(out / "server-key.pem")]
    server = server_factory(db_path, *(extra if tls else []))

    def connect() -> socket.socket:
        plain = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        if not tls:
            return plain
        context = ssl.create_default_context(cafile=str(out / "ca.pem"))
        return context.wrap_socket(plain, server_hostname="127.0.0.1")

    idle = connect()
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(100).startswith(b"HTTP/1.1 200")
    half_body, half_head = connect(), connect()
    half_body.sendall(b"POST /api/v2/vm HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    half_head.sendall(b"POST /api/v2/vm HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)
    started = time.monotonic()
    server.proc.terminate()
    server.proc.wait(timeout=30)
    assert time.monotonic() - started < 1 + 5
    for client in (idle, half_body, half_head):
        client.close()
