"""`vmimages images import` / `export`: validated first, one transaction, idempotent."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import TEST_CATALOG, add_accounts, add_custom, sql
from vmimages import catalogfile
from vmimages.catalogfile import (
    YAML_DUMPER,
    YAML_LOADER,
    default_catalog,
    dump_document,
    parse_catalog,
    to_document,
    write_document,
)
from vmimages.cli import main


@pytest.fixture
def cli(db_path: str):  # type: ignore[no-untyped-def]
    database = db_path
    runner = CliRunner()
    made = runner.invoke(main, ["init", "--database", database])  # as an operator starts
    assert made.exit_code == 0, made.output

    def run(*args: str, ok: bool = True) -> str:
        result = runner.invoke(main, [*args, "--database", str(database)], catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    run.database = database  # type: ignore[attr-defined]
    return run


def dump_db(database: str) -> list[Any]:
    return [sql(database, f"SELECT * FROM {t} ORDER BY 1") for t in ("locations", "images")]


def write(tmp_path: Path, doc: Any, name: str = "catalog.json") -> Path:
    path = tmp_path / name
    # libyaml's safe dumper where installed, as the CLI's (the large file's test: 2 s, not 7).
    text = yaml.dump(doc, Dumper=YAML_DUMPER) if name.endswith((".yaml", ".yml")) else None
    path.write_text(text if text is not None else json.dumps(doc))
    return path


NEW_LOCATION = {
    "regionId": "nl-amsterdam-1a",
    "zoneId": "AMS-A",
    "name": "Amsterdam",
    "supportIpv6": True,
    "networkLineType": "BGP",
}
NEW_IMAGE = {
    "imageId": "img-ams00001",
    "imageName": "Rocky Linux 9.3 64bit",
    "location": "AMS-A",
    "category": "Rocky",
    "osType": "linux",
    "imageVersion": "9.3",
    "imageSize": 20,
    "imageStatus": "AVAILABLE",
    "imageDescription": None,
    "createTime": "2025-02-01T00:00:00Z",
}


def test_import_adds_and_updates_then_is_a_no_op(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("accounts", "list")  # makes the database with the default catalog
    doc = {"locations": [NEW_LOCATION], "images": [NEW_IMAGE]}
    out = cli("images", "import", str(write(tmp_path, doc)))
    assert (
        "locations 1 added, 0 updated, 0 unchanged; images 1 added, 0 updated, 0 unchanged" in out
    )
    snapshot = dump_db(cli.database)
    out = cli("images", "import", str(write(tmp_path, doc)))
    assert (
        "locations 0 added, 0 updated, 1 unchanged; images 0 added, 0 updated, 1 unchanged" in out
    )
    assert dump_db(cli.database) == snapshot
    # An update: a new status and name for an image of the default catalog, by zone or region.
    changed = copy.deepcopy(doc)
    changed["images"][0].update(
        imageStatus="UNAVAILABLE", imageName="Rocky 9.3 (retired)", location="nl-amsterdam-1a"
    )
    out = cli("images", "import", str(write(tmp_path, changed, "changed.yaml")))
    assert "images 0 added, 1 updated" in out
    exported = json.loads(cli("images", "export"))
    ams = [i for i in exported["images"] if i["imageId"] == "img-ams00001"]
    assert ams[0]["imageStatus"] == "UNAVAILABLE" and ams[0]["location"] == "AMS-A"


def test_export_import_round_trip_is_a_no_op(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for fmt in ("json", "yaml"):
        path = tmp_path / f"export.{fmt}"
        cli("images", "export", "--output", str(path))
        before = dump_db(cli.database)
        out = cli("images", "import", str(path))
        assert "locations 0 added, 0 updated, 10 unchanged; images 0 added, 0 updated, 108" in out
        assert dump_db(cli.database) == before
        doc = yaml.safe_load(path.read_text()) if fmt == "yaml" else json.loads(path.read_text())
        assert len(doc["images"]) == 108 and len(doc["locations"]) == 10


def test_import_into_an_empty_catalog_then_export_equals_the_file(
    tmp_path: Path, db_path: str
) -> None:
    runner = CliRunner()
    database = db_path
    source = write(tmp_path, TEST_CATALOG)
    env = {"VMIMAGES_LOAD_DEFAULT_CATALOG": "false"}
    result = runner.invoke(main, ["init", "--database", database], env=env)
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["images", "import", str(source), "--database", database], env=env)
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["images", "export", "--database", database], env=env)
    exported = json.loads(result.output)
    key = "imageId"
    assert sorted(exported["images"], key=lambda i: i[key]) == sorted(
        [{**i} for i in TEST_CATALOG["images"]], key=lambda i: i[key]
    )


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (
            lambda d: d["images"][0].update(imageSize="big"),
            ["images[0] (img-ams00001): `imageSize`"],
        ),
        (
            lambda d: d["images"][0].update(location="XXX-A"),
            ["images[0] (img-ams00001): `location` 'XXX-A'"],
        ),
        (
            lambda d: d["locations"][0].update(zoneId="FRA-A"),
            ["locations[0]: `zoneId` 'FRA-A' is already the zone of region 'de-frankfurt-9a'"],
        ),
        (
            lambda d: d["images"][0].update(imageId="img-custom01"),
            ["`imageId` is the id of an account's custom image"],
        ),
        (
            lambda d: d["images"].append({"imageId": "img-x"}),
            ["images[1] (img-x): `imageName` is missing", "`osType` is missing"],
        ),
    ],
)
def test_a_bad_file_changes_nothing(cli, tmp_path: Path, mutate: Any, fragments: list[str]) -> None:  # type: ignore[no-untyped-def]
    add_accounts(cli.database)
    add_custom(cli.database, "img-custom01", owner_name="alice")
    before = dump_db(cli.database)
    doc = {"locations": [copy.deepcopy(NEW_LOCATION)], "images": [copy.deepcopy(NEW_IMAGE)]}
    mutate(doc)
    out = cli("images", "import", str(write(tmp_path, doc)), ok=False)
    assert "nothing changed" in out
    for fragment in fragments:
        assert fragment in out
    assert dump_db(cli.database) == before


def test_unreadable_files(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    assert "bad.json" in cli("images", "import", str(bad_json), ok=False)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("locations: [\n")
    assert "bad.yaml" in cli("images", "import", str(bad_yaml), ok=False)
    assert "does not exist" in cli("images", "import", str(tmp_path / "nope.json"), ok=False)


def test_instances_cli(cli) -> None:  # type: ignore[no-untyped-def]
    cli("accounts", "create", "ops")
    out = cli(
        "instances", "add", "ins-9", "--account", "ops", "--location", "TYO-A", "--disk-size", "80"
    )
    assert "added instance ins-9 of ops in TYO-A" in out and "80 GB" in out
    listed = json.loads(cli("instances", "list", "--json"))
    assert listed[0]["instanceId"] == "ins-9" and listed[0]["regionId"] == "jp-tokyo-1a"
    assert listed[0]["osType"] == "linux"
    assert "exists already" in cli(
        "instances", "add", "ins-9", "--account", "ops", "--location", "TYO-A", ok=False
    )
    assert "not found" in cli(
        "instances", "add", "ins-8", "--account", "ops", "--location", "MARS-A", ok=False
    )
    assert "no account" in cli(
        "instances", "add", "ins-8", "--account", "ghost", "--location", "TYO-A", ok=False
    )
    assert "not found" in cli(
        "instances",
        "add",
        "ins-8",
        "--account",
        "ops",
        "--location",
        "TYO-A",
        "--image",
        "img-nothere",
        ok=False,
    )
    assert "removed instance ins-9" in cli("instances", "remove", "ins-9")
    assert "not found" in cli("instances", "remove", "ins-9", ok=False)
    assert json.loads(cli("instances", "list", "--json")) == []


def test_set_quota_cli(cli) -> None:  # type: ignore[no-untyped-def]
    cli("accounts", "create", "ops")
    cli("accounts", "create", "dev")
    assert "quota of ops: 2" in cli("accounts", "set-quota", "ops", "2")
    listed = cli("accounts", "list").splitlines()
    assert listed[0].split("\t") == ["ACCOUNT", "CREATED", "IMAGE QUOTA", "STATUS"]
    assert [(row.split("\t")[0], row.split("\t")[2]) for row in listed[1:]] == [
        ("ops", "2"),
        ("dev", "default"),
    ]
    quotas = {a["account"]: a["imageQuota"] for a in json.loads(cli("accounts", "list", "--json"))}
    assert quotas == {"ops": 2, "dev": None}
    assert "the server default" in cli("accounts", "set-quota", "ops")
    assert "no account" in cli("accounts", "set-quota", "ghost", "3", ok=False)
    for listing in (("keys", "list"), ("tokens", "list"), ("instances", "list")):
        assert cli(*listing).splitlines()[0].isupper()  # a header row, even with nothing listed


def test_a_dry_run_reports_and_changes_nothing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("accounts", "list")
    before = dump_db(cli.database)
    doc = {"locations": [NEW_LOCATION], "images": [NEW_IMAGE]}
    out = cli("images", "import", "--dry-run", str(write(tmp_path, doc)))
    assert "would import" in out and "locations 1 added" in out and "images 1 added" in out
    assert "nothing was changed" in out
    assert dump_db(cli.database) == before
    assert "+ location nl-amsterdam-1a  Amsterdam  (added)" in out
    assert "+ image img-ams00001  Rocky Linux 9.3 64bit  (added)" in out
    out = cli("images", "import", "--dry-run", "--prune", str(write(tmp_path, doc)))
    assert "108 removed" in out  # every image of the default catalog, were it pruned
    assert dump_db(cli.database) == before
    # Which ones, by id and name, for a person and for a script; and what an update changes.
    exported = json.loads(cli("images", "export"))
    first, *rest = exported["images"]
    renamed = {**first, "imageName": "renamed"}
    path = write(tmp_path, {"locations": exported["locations"], "images": [renamed, *rest[:-1]]})
    out = cli("images", "import", "--dry-run", "--prune", str(path))
    assert f"~ image {first['imageId']}  renamed  (updated)" in out
    assert f"- image {rest[-1]['imageId']}  {rest[-1]['imageName']}  (removed)" in out
    report = json.loads(cli("images", "import", "--dry-run", "--prune", "--json", str(path)))
    assert report == {
        "dryRun": True,
        "locations": {"added": [], "updated": [], "unchanged": len(exported["locations"])},
        "images": {
            "added": [],
            "updated": [{"imageId": first["imageId"], "imageName": "renamed"}],
            "removed": [{"imageId": rest[-1]["imageId"], "imageName": rest[-1]["imageName"]}],
            "unchanged": len(rest) - 1,
        },
    }
    assert dump_db(cli.database) == before


def test_every_problem_of_a_file_is_reported_in_one_pass(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The file's own problems and those against the database come together: a location that
    clashes with the catalog is reported beside an image with a bad field."""
    cli("accounts", "list")
    before = dump_db(cli.database)
    clash = {**NEW_LOCATION, "zoneId": "FRA-A"}  # the zone of another region already
    bad = {**NEW_IMAGE, "imageId": "img-bad00001", "osType": "beos"}
    lost = {**NEW_IMAGE, "imageId": "img-lost0001", "location": "NOWHERE-A"}
    path = write(tmp_path, {"locations": [clash], "images": [bad, lost]})
    out = cli("images", "import", str(path), ok=False)
    assert "`zoneId` 'FRA-A' is already the zone of region 'de-frankfurt-9a'" in out
    assert "images[0] (img-bad00001): `osType` 'beos' is not one of" in out
    assert "images[1] (img-lost0001): `location` 'NOWHERE-A' is in neither" in out
    assert dump_db(cli.database) == before


def test_prune_unpublishes_what_the_file_does_not_list(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("accounts", "create", "erin")
    add_custom(cli.database, "img-custom01", owner_name="erin")
    exported = json.loads(cli("images", "export"))
    kept = exported["images"][:5]
    smaller = write(tmp_path, {"locations": exported["locations"], "images": kept})
    out = cli("images", "import", "--prune", str(smaller))
    assert "images 0 added, 0 updated, 103 removed, 5 unchanged" in out
    after = json.loads(cli("images", "export"))
    assert [i["imageId"] for i in after["images"]] == [i["imageId"] for i in kept]
    assert len(after["locations"]) == 10  # locations stay
    custom = sql(cli.database, "SELECT image_id FROM images WHERE owner != 0")
    assert custom == [("img-custom01",)]  # custom images are never pruned


@pytest.mark.parametrize("as_yaml", [True, False])
def test_written_in_chunks_is_the_whole_document(
    as_yaml: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Export writes the images a chunk at a time (for its progress bar): the text is that of
    dumping the whole document at once, whatever the chunk size."""
    doc = to_document(default_catalog())
    if as_yaml:
        whole = yaml.dump(doc, Dumper=YAML_DUMPER, sort_keys=False, allow_unicode=True)
    else:
        whole = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    for chunk in (1, 7, len(doc["images"]) + 1):
        monkeypatch.setattr(catalogfile, "WRITE_CHUNK", chunk)
        told: list[int] = []
        out = io.StringIO()
        write_document(doc, out, as_yaml, told.append)
        assert out.getvalue() == whole
        assert sum(told) == len(doc["images"])
    empty = {"locations": doc["locations"], "images": []}
    assert parse_catalog(yaml.safe_load(dump_document(empty, as_yaml))).images == []


def on_a_terminal(*args: str) -> tuple[int, str, str]:
    """`vmimages ARGS` with stderr on a pseudo-terminal: exit code, stdout, what the terminal
    showed."""
    leader, follower = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "vmimages", *args],
                            stdout=subprocess.PIPE, stderr=follower)  # fmt: skip
    os.close(follower)
    shown = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed (EIO): the command ended
            break
        if not data:
            break
        shown += data
    os.close(leader)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out.decode(), shown.decode(errors="replace")


def test_large_files_show_progress_on_a_terminal_only(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(TEST_CATALOG)
    template = doc["images"][0]
    doc["images"] = [{**template, "imageId": f"img-big{i:05d}"} for i in range(12_000)]
    path = write(tmp_path, doc, "big.yaml")
    assert path.stat().st_size > 1 << 20
    where = ("--database", cli.database)

    code, out, shown = on_a_terminal("images", "import", str(path), *where)
    assert code == 0 and "12000 added" in out
    assert "reading big.yaml" in shown and "importing images" in shown and "100%" in shown
    code, out, shown = on_a_terminal("images", "export", "-o", str(tmp_path / "out.json"), *where)
    assert code == 0 and "writing out.json" in shown and "100%" in shown
    public = sql(cli.database, "SELECT count(*) FROM images WHERE owner = 0")[0][0]
    assert public >= 12_000
    assert len(json.loads((tmp_path / "out.json").read_text())["images"]) == public

    # Not with --quiet: nothing at all, not even the summary; the work is done the same.
    code, out, shown = on_a_terminal("images", "import", str(path), "--quiet", *where)
    assert (code, out, shown) == (0, "", "")
    code, out, shown = on_a_terminal("images", "export", "-q", "-o", str(tmp_path / "q.yaml"),
                                     *where)  # fmt: skip
    assert (code, out, shown) == (0, "", "")
    exported = yaml.load((tmp_path / "q.yaml").read_text(), Loader=YAML_LOADER)  # noqa: S506
    assert len(exported["images"]) == public
    # Not when stderr is no terminal (CliRunner's is a buffer): the summary only.
    output = cli("images", "import", str(path))
    assert "%" not in output and "images 0 added, 0 updated" in output
