"""https: `vmimages certs create` makes a development CA and certificate; `serve --tls-cert`
serves with them; the official Python SDK, with its default https scheme, trusts the CA."""

from __future__ import annotations

import os
import stat
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
