"""The official Go SDK (vm 2023-03-13, and 2026-04-01 for calls made within one second),
unmodified, against vmimages: over http on the testing kit's server, and over https with a
development CA as zeno would (SSL_CERT_FILE).

The SDK is not vendored here (its code is not ours to commit): point VMIMAGES_GO_SDK at a
checkout of github.com/zenlayer/zenlayercloud-sdk-go and have `go` on PATH (Debian's golang-go
builds it offline; its vm packages need only the standard library). Without them, skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.test_sdk_lifecycle import with_instances
from vmimages.catalogfile import default_catalog
from vmimages.cli import main
from vmimages.testing import VmimagesServer

SDK = os.environ.get("VMIMAGES_GO_SDK", "")
pytestmark = [
    pytest.mark.socket,
    pytest.mark.skipif(
        not (shutil.which("go") and SDK and Path(SDK, "go.mod").exists()),
        reason="needs `go` and VMIMAGES_GO_SDK (a checkout of zenlayercloud-sdk-go)",
    ),
]


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/go/main.go built against the SDK checkout, offline."""
    folder = tmp_path_factory.mktemp("go")
    shutil.copy(Path(__file__).parent / "go" / "main.go", folder / "main.go")
    (folder / "go.mod").write_text(
        "module vmimages-go-check\n\ngo 1.19\n\n"
        "require github.com/zenlayer/zenlayercloud-sdk-go v0.0.0\n\n"
        f"replace github.com/zenlayer/zenlayercloud-sdk-go => {SDK}\n"
    )
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOCACHE": str(folder / "c")}
    go = shutil.which("go") or "go"
    subprocess.run([go, "build", "-o", "check", "."], cwd=folder, env=env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    return folder / "check"


def run(program: Path, scheme: str, domain: str, key: tuple[str, str], **env: str) -> Any:
    done = subprocess.run(
        [str(program)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "VMIMAGES_SCHEME": scheme, "VMIMAGES_DOMAIN": domain,
             "VMIMAGES_KEY_ID": key[0], "VMIMAGES_KEY_PASSWORD": key[1], **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def linux_in_fra() -> int:
    """The oracle: the shipped catalog's Linux images in FRA-A."""
    catalog = default_catalog()
    region = next(loc.region_id for loc in catalog.locations if loc.zone_id == "FRA-A")
    return sum(1 for i in catalog.images if i.location in ("FRA-A", region)
               and i.os_type == "linux")  # fmt: skip


def test_the_go_sdk_over_http(program: Path, vmimages_server: VmimagesServer) -> None:
    vmimages_server.add_instance("ins-go")
    vmimages_server.build_seconds(0)  # the program polls its second image until it is built
    key = (vmimages_server.access_key_id, vmimages_server.access_key_password)
    got = run(program, "http", vmimages_server.domain, key, VMIMAGES_INSTANCE="ins-go",
              VMIMAGES_SAME_SECOND="1")  # fmt: skip
    assert got["linuxInFra"] == linux_in_fra()  # `Linux`, as the Go SDK documents it
    assert got["imageId"].startswith("img-") and got["modified"] is True
    assert got["errorCode"] == "INVALID_ZONE_NOT_FOUND" and got["errorRequestId"]
    # The 2026-04-01 client: polled until built, then in one second DescribeImages,
    # ModifyImagesAttributes and DeleteImages of it, the last two with one body (so one
    # signature), all answered; the second delete is the API's not-found, not a replay's 401
    # (docs/auth.md).
    assert got["builtAs"] == "AVAILABLE" and got["sameSecond"] is True
    assert got["deletedAgain"] == "INVALID_IMAGE_NOT_FOUND"


def test_the_go_sdk_over_https_with_a_dev_ca(
    program: Path, server_factory: Any, db_path: str, tmp_path: Path
) -> None:
    out = tmp_path / "certs"
    made = CliRunner().invoke(main, ["certs", "create", "--out", str(out), "--host", "127.0.0.1"])
    assert made.exit_code == 0, made.output
    creds = with_instances(db_path, ("ins-go", "alice", "FRA-A"))
    server = server_factory(db_path, "--tls-cert", str(out / "server.pem"), "--tls-key",
                            str(out / "server-key.pem"), creds=creds)  # fmt: skip
    got = run(program, "https", f"127.0.0.1:{server.port}", creds.keys["alice"],
              VMIMAGES_INSTANCE="ins-go", SSL_CERT_FILE=str(out / "ca.pem"))  # fmt: skip
    assert got["imageId"].startswith("img-")
