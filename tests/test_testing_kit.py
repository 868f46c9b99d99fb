"""The testing kit (docs/testing.md): the pytest plugin's `vmimages_server` fixture driving the
official Python SDK, the control endpoints of `serve --dev`, and the plugin under pytest-xdist."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from zenlayercloud.common.config import Config
from zenlayercloud.common.credential import Credential
from zenlayercloud.common.excpetion.zenlayer_cloud_sdk_exception import ZenlayerCloudSdkException
from zenlayercloud.vm.v20260401 import models
from zenlayercloud.vm.v20260401.vm_client import VmClient

from tests import logschema
from tests.asgi import AsgiClient, Credentials
from tests.conftest import REQUEST_ID, assert_error, first_run_only, settings_for
from vmimages.app import create_app
from vmimages.catalog import PUBLIC_OWNER
from vmimages.catalogfile import default_catalog
from vmimages.cli import main
from vmimages.testing import ControlError, VmimagesServer

pytestmark = pytest.mark.socket


def sdk(server: VmimagesServer) -> VmClient:
    credential = Credential(server.access_key_id, server.access_key_password)
    return VmClient(credential, Config(scheme="http", domain=server.domain))


def images(client: VmClient, **filters: Any) -> Any:
    request = models.DescribeImagesRequest()
    request.zoneId = filters.pop("zoneId", "FRA-A")
    request.pageSize = 100
    for name, value in filters.items():
        setattr(request, name, value)
    return client.DescribeImages(request)


def default_public(zone: str) -> list[str]:
    """The oracle: the shipped catalog's public images in a zone, as the file lists them."""
    catalog = default_catalog()
    region = next(loc.region_id for loc in catalog.locations if loc.zone_id == zone)
    return sorted(i.image_id for i in catalog.images if i.location in (zone, region))


def create(client: VmClient, instance_id: str, name: str) -> str:
    request = models.CreateImageRequest()
    request.instanceId, request.imageName = instance_id, name
    return str(client.CreateImage(request).imageId)


def status_of(client: VmClient, image_id: str) -> str:
    (image,) = images(client, imageIds=[image_id]).dataSet
    return str(image.imageStatus)


def test_a_build_finishes_when_the_test_says(vmimages_server: VmimagesServer) -> None:
    client = sdk(vmimages_server)
    listed = images(client)
    assert sorted(i.imageId for i in listed.dataSet) == default_public("FRA-A")

    vmimages_server.add_instance("ins-1", zone="FRA-A")
    good, bad = create(client, "ins-1", "good"), create(client, "ins-1", "bad")
    assert status_of(client, good) == status_of(client, bad) == "CREATING"
    done = vmimages_server.complete_build(good)
    assert (done["imageId"], done["imageStatus"]) == (good, "AVAILABLE")
    vmimages_server.complete_build(bad, ok=False)
    assert (status_of(client, good), status_of(client, bad)) == ("AVAILABLE", "UNAVAILABLE")
    mine = images(client, imageType="CUSTOM_IMAGE")
    assert sorted(i.imageId for i in mine.dataSet) == sorted([good, bad])

    vmimages_server.reset()
    assert images(client, imageType="CUSTOM_IMAGE").totalCount == 0
    assert sorted(i.imageId for i in images(client).dataSet) == default_public("FRA-A")
    with pytest.raises(ZenlayerCloudSdkException) as refused:
        create(client, "ins-1", "again")  # the instance went with the reset
    assert refused.value.code == "INVALID_INSTANCE_NOT_FOUND"


@pytest.mark.parametrize("round_", [1, 2])
def test_every_test_starts_from_the_default_catalog(
    vmimages_server: VmimagesServer, round_: int
) -> None:
    """Run twice: whatever the first round (or any earlier test) made is gone."""
    client = sdk(vmimages_server)
    assert images(client, imageType="CUSTOM_IMAGE").totalCount == 0
    vmimages_server.add_instance("ins-r")  # would be taken, had the reset not removed it
    create(client, "ins-r", f"round{round_}")
    assert images(client, imageType="CUSTOM_IMAGE").totalCount == 1


def post(server: VmimagesServer, path: str, body: bytes, method: str = "POST") -> Any:
    """(status, the answer); an error answer is checked to be the API's whole error envelope,
    its requestId the one in the header."""
    request = urllib.request.Request(server.endpoint + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        status, header_id, answer = error.code, error.headers["x-zc-request-id"], error.read()
    doc = json.loads(answer)
    assert set(doc) == {"requestId", "code", "message"} and doc["message"], doc
    assert REQUEST_ID.fullmatch(doc["requestId"]) and header_id == doc["requestId"]
    return status, doc


def test_control_endpoints_refuse_what_they_cannot_do(vmimages_server: VmimagesServer) -> None:
    with pytest.raises(ControlError) as unknown:
        vmimages_server.complete_build("img-nothere")
    assert (unknown.value.status, unknown.value.code) == (404, "INVALID_IMAGE_NOT_FOUND")
    assert REQUEST_ID.fullmatch(unknown.value.request_id)
    public = default_catalog().images[0].image_id
    with pytest.raises(ControlError) as built:
        vmimages_server.complete_build(public)
    assert (built.value.status, built.value.code) == (400, "INVALID_IMAGE_STATUS")
    assert "only a CREATING image is" in str(built.value)
    with pytest.raises(ControlError) as nowhere:
        vmimages_server.add_instance("ins-x", zone="XXX-A")
    assert nowhere.value.code == "INVALID_REGION_NOT_FOUND"
    vmimages_server.add_instance("ins-twice")
    with pytest.raises(ControlError) as twice:
        vmimages_server.add_instance("ins-twice")
    assert (twice.value.status, twice.value.code) == (400, "INVALID_PARAMETER_VALUE")
    assert "`ins-twice` is taken" in str(twice.value)
    status, answer = post(
        vmimages_server, "/_vmimages/instances", b'{"instanceId": "i", "account": "nobody"}'
    )
    assert (status, answer["code"]) == (404, "OPERATION_FAILED_RESOURCE_NOT_FOUND")
    assert "no account named `nobody`" in answer["message"]

    status, answer = post(vmimages_server, "/_vmimages/nothing", b"{}")
    assert status == 404 and answer["code"] == "OPERATION_FAILED_RESOURCE_NOT_FOUND"
    assert "/_vmimages/reset" in answer["message"]
    status, answer = post(vmimages_server, "/_vmimages/builds", b"{not json")
    assert status == 400 and answer["code"] == "INVALID_PARAMETER_VALUE"
    status, answer = post(vmimages_server, "/_vmimages/builds", b'{"imageId": 7}')
    assert status == 400 and answer["code"] == "INVALID_PARAMETER_TYPE"
    status, answer = post(vmimages_server, "/_vmimages/builds", b'{"image": "x"}')
    assert status == 400 and "Did you mean `imageId`?" in answer["message"]
    status, answer = post(vmimages_server, "/_vmimages/reset", b"", method="GET")
    assert status == 405 and answer["code"] == "UNSUPPORTED_HTTP_METHOD"
    # What a web page could send is refused (docs/testing.md): another content type, a Host
    # that is not loopback, an Origin that is not the server's own.
    for headers, code in (({"Content-Type": "text/plain"}, "UNSUPPORTED_MEDIA_TYPE"),
                          ({"Host": "rebound.example"}, "AUTHFAILURE_UNAUTHORIZED_OPERATION"),
                          ({"Origin": "http://evil.example"},
                           "AUTHFAILURE_UNAUTHORIZED_OPERATION")):  # fmt: skip
        request = urllib.request.Request(
            vmimages_server.endpoint + "/_vmimages/reset", data=b"{}", method="POST",
            headers={"Content-Type": "application/json", **headers},
        )  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        doc = json.loads(refused.value.read())
        assert set(doc) == {"requestId", "code", "message"} and doc["code"] == code
        assert refused.value.headers["x-zc-request-id"] == doc["requestId"]
        assert refused.value.code == (415 if code == "UNSUPPORTED_MEDIA_TYPE" else 401)


def test_without_dev_the_control_paths_are_not_there(test_db: str, creds: Credentials) -> None:
    client = AsgiClient(create_app(settings_for(test_db)), creds)
    try:
        for name in ("reset", "instances", "builds"):
            assert_error(client.request("POST", f"/_vmimages/{name}"), 404,
                         "OPERATION_FAILED_RESOURCE_NOT_FOUND")  # fmt: skip
    finally:
        client.close()


def test_reset_keeps_accounts_and_restores_the_public_catalog(
    test_db: str, creds: Credentials
) -> None:
    """The public catalog goes back to what it was at start, even after an import."""
    from tests.conftest import sql

    client = AsgiClient(create_app(settings_for(test_db, dev=True)), creds)
    try:
        before = sql(test_db, "SELECT image_id, name FROM images WHERE owner = ? ORDER BY 1",
                     (PUBLIC_OWNER,))  # fmt: skip
        sql(test_db, "UPDATE images SET name = 'changed' WHERE owner = ?", (PUBLIC_OWNER,))
        sql(test_db, "INSERT INTO used_signatures (signature, valid_until) VALUES ('s', 9e9)")
        control = {"content-type": "application/json", "host": "127.0.0.1:8080"}
        response = client.request("POST", "/_vmimages/reset", body=b"", headers=control)
        assert response.status == 200 and response.json()["response"]["images"] == len(before)
        after = sql(test_db, "SELECT image_id, name FROM images WHERE owner = ? ORDER BY 1",
                    (PUBLIC_OWNER,))  # fmt: skip
        assert after == before
        assert sql(test_db, "SELECT count(*) FROM used_signatures") == [(0,)]
        assert client.call("DescribeRegions", {}).status == 200  # alice's token still works
    finally:
        client.close()


def test_dev_listens_on_loopback_unless_told(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["serve", "--dev", "--host", "0.0.0.0", "--database", str(tmp_path / "x.db")],  # noqa: S104
    )
    assert result.exit_code == 2
    assert "loopback only, not on 0.0.0.0, unless --dev-allow-remote" in result.output
    assert not (tmp_path / "x.db").exists()  # refused before anything was made


PLUGIN_SUITE = """
import json, os, urllib.request

def check(vmimages_server, n):
    request = urllib.request.Request(
        vmimages_server.endpoint + "/api/v2/vm", data=b'{"zoneId": "FRA-A"}', method="POST",
        headers={"Authorization": "Bearer " + vmimages_server.token,
                 "Content-Type": "application/json", "X-ZC-Action": "DescribeImages",
                 "X-ZC-Version": "2026-04-01"})
    with urllib.request.urlopen(request) as response:
        assert json.loads(response.read())["response"]["totalCount"] > 0
    vmimages_server.add_instance("ins-shared")  # the same id in every test: reset frees it
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(f"{worker}-{n}.port", "w") as out:
        out.write(vmimages_server.domain)

def test_a(vmimages_server): check(vmimages_server, "a")
def test_b(vmimages_server): check(vmimages_server, "b")
def test_c(vmimages_server): check(vmimages_server, "c")
def test_d(vmimages_server): check(vmimages_server, "d")
"""


def test_the_plugin_gives_each_xdist_worker_its_own_server(tmp_path: Path) -> None:
    """An outside suite, as a user writes it: the plugin comes with the installed package."""
    (tmp_path / "test_user.py").write_text(PLUGIN_SUITE)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
         "test_user.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout
    ports = {p.stem: p.read_text() for p in tmp_path.glob("*.port")}
    assert len(ports) == 4
    by_worker: dict[str, set[str]] = {}
    for name, domain in ports.items():
        by_worker.setdefault(name.split("-")[0], set()).add(domain)
    assert set(by_worker) == {"gw0", "gw1"}
    assert all(len(domains) == 1 for domains in by_worker.values())  # one server per worker
    assert by_worker["gw0"] != by_worker["gw1"]


DOCS = Path(__file__).parent.parent / "docs" / "testing.md"


def docs_block(first_line: str) -> str:
    """The code block of docs/testing.md that starts with `first_line`."""
    text = DOCS.read_text()
    start = text.index("\n" + first_line + "\n") + 1
    return text[start : text.index("```", start)]


def test_the_documented_suite_passes(tmp_path: Path) -> None:
    (tmp_path / "test_example.py").write_text(docs_block("# test_example.py"))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout


def test_the_documented_control_script_runs(tmp_path: Path) -> None:
    """docs/testing.md's curl script as written, against a `serve --dev` on a free port."""
    from vmimages.testing import start_serve, stop_process

    proc, port = start_serve(["--dev", "--database", str(tmp_path / "dev.db")],
                             tmp_path / "server.log")  # fmt: skip
    try:
        (tmp_path / "control.sh").write_text(
            docs_block("# control.sh: against `vmimages serve --dev --port $PORT`")
        )
        env = {**os.environ, "PORT": str(port)}
        run = subprocess.run(["/bin/bash", "control.sh"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=60, env=env)  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        state = json.loads((tmp_path / "state.json").read_text())["response"]["state"]
        assert [(i["imageId"], i["imageStatus"]) for i in state["images"]] == [
            ("img-AbCd1234", "UNAVAILABLE")]  # fmt: skip
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/_vmimages/state", data=b"{}", method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            after = json.loads(response.read())["response"]["state"]
        assert [(i["imageId"], i["imageStatus"]) for i in after["images"]] == [
            ("img-AbCd1234", "CREATING")]  # the reset went back to the seed  # fmt: skip
        assert (
            '"faults":[{"action":"DescribeImages","account":null,"code":"REQUEST_LIMIT_EX'
            in run.stdout
        )
    finally:
        stop_process(proc)


CI_SUITE = """
import json, os, urllib.request

def call(action, body):
    request = urllib.request.Request(
        "http://" + os.environ["VMIMAGES_DOMAIN"] + "/api/v2/vm", data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": "Bearer " + os.environ["VMIMAGES_TOKEN"],
                 "Content-Type": "application/json", "X-ZC-Action": action})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())["response"]

def test_the_seeded_instance_can_be_imaged():
    assert call("DescribeRegions", {})["regions"]
    image_id = call("CreateImage", {"instanceId": "ins-ci-1", "imageName": "ci"})["imageId"]
    found = call("DescribeImages", {"imageIds": [image_id]})
    assert found["images"][0]["imageStatus"] == "CREATING"
"""
ROOT = Path(__file__).parent.parent


def job_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A project with the CI suite and docs' seed, and the environment of a fresh Python (as
    setup-python gives a job) on a free port; vmimages installs from this checkout's path."""
    from vmimages.testing import free_port

    text = DOCS.read_text()
    shown = text[text.index("```json\n") + 8 :]
    assert shown[: shown.index("```")] == (ROOT / "docs/ci/seed.json").read_text()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_ci.py").write_text(CI_SUITE)
    (tmp_path / "seed.json").write_text((ROOT / "docs/ci/seed.json").read_text())
    fresh = tmp_path / "python"
    subprocess.run([sys.executable, "-m", "venv", str(fresh)], check=True)
    env = {**os.environ, "PATH": f"{fresh / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "PORT": str(free_port()), "VMIMAGES_SOURCE": str(ROOT)}  # fmt: skip
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER"):
        env.pop(name, None)
    return tmp_path, env


def check_job(folder: Path, output: str) -> None:
    assert "1 passed" in output, output
    lines = (folder / "server.log").read_text().splitlines()
    assert lines and all(logschema.check(line) for line in lines)  # the JSON log's schema
    assert any('"CreateImage"' in line for line in lines)


@first_run_only  # a fresh Python of its own installs this checkout
def test_the_documented_ci_script_runs(tmp_path: Path) -> None:
    """docs/testing.md's CI script as written: a fresh venv installs this checkout by path."""
    folder, env = job_folder(tmp_path)
    (folder / "ci.sh").write_text(docs_block("# ci.sh"))
    run = subprocess.run(["/bin/bash", "ci.sh"], cwd=folder, capture_output=True, text=True,
                         timeout=300, env=env)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    check_job(folder, run.stdout)


@first_run_only
def test_the_documented_github_workflow_runs(tmp_path: Path) -> None:
    """docs/ci/github-actions.yml's `run:` steps in order, each in bash as the runner runs
    them (-e, pipefail), with the job's env, `${{ vars.X }}` from the environment and
    $GITHUB_ENV read back between steps; the `uses:` steps are the fresh Python's part."""
    import signal

    import yaml

    workflow = yaml.safe_load((ROOT / "docs/ci/github-actions.yml").read_text())
    (job,) = workflow["jobs"].values()
    folder, env = job_folder(tmp_path)
    for name, value in job["env"].items():
        found = re.fullmatch(r"\$\{\{ vars\.(\w+) \}\}", value)
        env[name] = env[found[1]] if found else value
    github_env = folder / "github.env"
    github_env.touch()
    env["GITHUB_ENV"] = str(github_env)
    sessions, output = [], ""
    try:
        for step in job["steps"]:
            if "run" not in step:
                assert step["uses"].startswith(("actions/checkout@", "actions/setup-python@"))
                continue
            proc = subprocess.Popen(
                ["/bin/bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, start_new_session=True,
            )  # fmt: skip
            sessions.append(proc.pid)  # a server it starts stays in its process group
            out, _ = proc.communicate(timeout=300)
            output += out
            assert proc.returncode == 0, f"step {step.get('name')!r} failed:\n{output}"
            for line in github_env.read_text().splitlines():
                key, _, value = line.partition("=")
                env[key] = value
    finally:
        for session in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(session, signal.SIGTERM)
        for session in sessions:  # gone, its log written out (lines are written in batches)
            for _ in range(200):
                try:
                    os.killpg(session, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
    check_job(folder, output)
    assert "VMIMAGES_TOKEN=zlt_" in github_env.read_text()
