"""The catalog as a feed (DescribeImageChanges, docs/changes.md) and its history: a client's
copy kept only from the feed equals DescribeImages after every batch of random writes made
through two processes; the feed shows no other account's images; cursors are the caller's
own; an expired cursor says to start again; the audit trail says who did what."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.asgi import AsgiClient, Credentials
from tests.conftest import assert_error, assert_ok, run_sync, settings_for
from vmimages.app import create_app
from vmimages.catalogfile import parse_catalog
from vmimages.store import open_store
from vmimages.testing import ServerProcess, VmimagesServer, start_serve, stop_process

PUBLISHED = "2026-04-01"


def instances(database: str) -> None:
    async def work() -> None:
        store = open_store(database)
        await store.open()
        for account in ("alice", "bob"):
            for zone in ("FRA-A", "HKG-A"):
                await store.add_instance(f"ins-{account}-{zone}", account, zone, None, None)
        await store.close()

    run_sync(work())


@pytest.fixture
def two(test_db: str, creds: Credentials) -> Iterator[tuple[AsgiClient, AsgiClient]]:
    """Two server processes on one database (each with its own memory), builds held."""
    instances(test_db)
    options = {"image_build_seconds": float("inf"), "load_default_catalog": False}
    first = AsgiClient(create_app(settings_for(test_db, **options)), creds)
    second = AsgiClient(create_app(settings_for(test_db, **options)), creds)
    yield first, second
    first.close()
    second.close()


def feed(client: AsgiClient, cursor: str | None, as_: str = "alice", **params: Any) -> Any:
    body = {"pageSize": 7, **params} | ({} if cursor is None else {"cursor": cursor})
    return assert_ok(client.call("DescribeImageChanges", body, as_=as_))


def catch_up(client: AsgiClient, copy: dict[str, Any], cursor: str | None, **params: Any) -> str:
    """Apply pages until one comes back empty; the cursor to go on from."""
    while True:
        page = feed(client, cursor, **params)
        for change in page["changes"]:
            if change["changeType"] == "DELETED":
                assert change["image"] is None and set(change) == {
                    "changeType", "changeTime", "imageId", "regionId", "image"}  # fmt: skip
                copy.pop(change["imageId"], None)
            else:
                assert change["image"]["imageId"] == change["imageId"]
                copy[change["imageId"]] = change["image"]
        cursor = page["nextCursor"]
        if not page["changes"]:
            return str(cursor)


def listed(client: AsgiClient, as_: str = "alice", **params: Any) -> dict[str, Any]:
    """The oracle: DescribeImages (seed dialect), every page."""
    found: dict[str, Any] = {}
    page_num = 1
    while True:
        body = {"pageSize": 100, "pageNum": page_num, **params}
        page = assert_ok(client.call("DescribeImages", body, as_=as_))
        found.update({image["imageId"]: image for image in page["images"]})
        if len(found) >= page["totalCount"]:
            return found
        page_num += 1


def random_writes(rng: random.Random, clients: tuple[AsgiClient, ...], database: str) -> None:
    """A batch of what users do, through either process: create, rename, re-describe, delete,
    builds ending (the build worker's part, straight on the store)."""
    for _ in range(rng.randrange(1, 6)):
        client = rng.choice(clients)
        account = rng.choice(("alice", "bob"))
        own = listed(client, as_=account, imageType="CUSTOM_IMAGE")
        choice = rng.random()
        if choice < 0.4 or not own:
            zone = rng.choice(("FRA-A", "HKG-A"))
            body = {"instanceId": f"ins-{account}-{zone}", "imageName": f"n{rng.randrange(999)}"}
            client.call("CreateImage", body, as_=account, version=PUBLISHED)
        elif choice < 0.7:
            ids = rng.sample(sorted(own), k=min(len(own), rng.randrange(1, 3)))
            body = {"imageIds": ids}
            body |= rng.choice([{"imageName": f"r{rng.randrange(999)}"},
                                {"imageDescription": f"d{rng.randrange(999)}"}, {}])  # fmt: skip
            assert_ok(client.call("ModifyImagesAttributes", body, as_=account, version=PUBLISHED))
        elif choice < 0.85:
            building = [i for i, image in own.items() if image["imageStatus"] == "CREATING"]
            if building:
                finish(database, rng.choice(building), rng.random() < 0.8)
        else:
            done = [i for i, image in own.items() if image["imageStatus"] != "CREATING"]
            if done:
                body = {"imageIds": [rng.choice(done)]}
                assert_ok(client.call("DeleteImages", body, as_=account, version=PUBLISHED))


def finish(database: str, image_id: str, ok: bool) -> None:
    async def work() -> None:
        store = open_store(database)
        await store.open()
        await store.finish_build(image_id, ok)
        await store.close()

    run_sync(work())


def test_a_copy_kept_from_the_feed_equals_describe_images(
    two: tuple[AsgiClient, AsgiClient], test_db: str
) -> None:
    rng = random.Random(21)
    first, second = two
    copies: dict[str, dict[str, Any]] = {"all": {}, "fra": {}}
    cursors: dict[str, str | None] = {"all": None, "fra": None}
    for batch in range(25):
        if batch:
            random_writes(rng, two, test_db)
        reader = rng.choice(two)  # a reader may ask either process
        cursors["all"] = catch_up(reader, copies["all"], cursors["all"])
        cursors["fra"] = catch_up(reader, copies["fra"], cursors["fra"], regionId="de-frankfurt-9a")
        assert copies["all"] == listed(first)
        assert copies["fra"] == listed(second, regionId="de-frankfurt-9a")
    assert any(i["imageType"] == "CUSTOM_IMAGE" for i in copies["all"].values())


def test_an_import_reaches_the_feed_and_a_late_starter_gets_the_whole_catalog(
    two: tuple[AsgiClient, AsgiClient], test_db: str
) -> None:
    first, second = two
    copy: dict[str, Any] = {}
    cursor = catch_up(first, copy, None)
    added = {"locations": [], "images": [{
        "imageId": "img-new00001", "imageName": "New", "location": "FRA-A", "category": "Debian",
        "osType": "linux", "imageVersion": "13", "imageSize": 20, "imageStatus": "AVAILABLE",
        "createTime": "2026-11-01T00:00:00Z"}]}  # fmt: skip

    async def work() -> None:
        store = open_store(test_db)
        await store.open()
        await store.import_catalog(parse_catalog(added))
        await store.close()

    run_sync(work())
    page = feed(second, cursor)
    assert [(c["changeType"], c["imageId"]) for c in page["changes"]] == [
        ("CREATED", "img-new00001")]  # fmt: skip
    late: dict[str, Any] = {}
    catch_up(second, late, None)
    assert late == listed(first) and "img-new00001" in late


def test_the_feed_shows_no_other_accounts_images_and_cursors_are_the_callers(
    two: tuple[AsgiClient, AsgiClient],
) -> None:
    first, _ = two
    copy: dict[str, Any] = {}
    cursor = catch_up(first, copy, None)
    now = feed(first, None, fromNow=True)
    start = assert_ok(first.call("DescribeImageChanges", {"pageSize": 1}))["nextCursor"]
    for _ in range(3):
        body = {"instanceId": "ins-bob-FRA-A", "imageName": "bobs"}
        assert_ok(first.call("CreateImage", body, as_="bob", version=PUBLISHED))
    # Whichever way alice asks, nothing she is given moves with bob's changes.
    again = feed(first, None, fromNow=True)
    assert again["nextCursor"] == now["nextCursor"] and again["changes"] == now["changes"] == []
    assert assert_ok(first.call("DescribeImageChanges", {"pageSize": 1}))["nextCursor"] == start
    page = feed(first, cursor)
    assert page["changes"] == []  # nothing of bob's, not even a gap: the cursor is opaque
    assert page["nextCursor"] == cursor  # the same place: bob's changes moved nothing
    # Another caller, another location filter: not this cursor's.
    assert_error(first.call("DescribeImageChanges", {"cursor": cursor}, as_="bob"), 400,
                 "INVALID_PARAMETER_VALUE", "`cursor`")  # fmt: skip
    assert_error(first.call("DescribeImageChanges", {"cursor": cursor, "regionId":
                 "de-frankfurt-9a"}), 400, "INVALID_PARAMETER_VALUE")  # fmt: skip
    assert_error(first.call("DescribeImageChanges", {"cursor": "x" * 40}), 400,
                 "INVALID_PARAMETER_VALUE")  # fmt: skip
    assert_error(first.call("DescribeImageChanges", {"cursor": cursor, "fromNow": True}), 400,
                 "INVALID_PARAMETER_VALUE", "not both")  # fmt: skip
    assert_error(first.call("DescribeImageChanges", {"regionId": "nowhere"}), 404,
                 "INVALID_REGION_NOT_FOUND")  # fmt: skip
    assert_error(first.call("DescribeImageChanges", {"waitSeconds": 21}), 400,
                 "INVALID_PARAMETER_EXCEED_MAXIMUM")  # fmt: skip
    bobs: dict[str, Any] = {}
    catch_up(first, bobs, None, as_="bob")
    assert sum(i["imageName"] == "bobs" for i in bobs.values()) == 3


def test_published_dialect_names_zones(two: tuple[AsgiClient, AsgiClient]) -> None:
    first, _ = two
    body = {"instanceId": "ins-alice-HKG-A", "imageName": "hk"}
    made = assert_ok(first.call("CreateImage", body, version=PUBLISHED))["imageId"]
    page = assert_ok(first.call("DescribeImageChanges", {"zoneId": "HKG-A", "pageSize": 1000},
                                version=PUBLISHED))  # fmt: skip
    mine = [c for c in page["changes"] if c["imageId"] == made]
    assert mine and mine[0]["zoneId"] == "HKG-A" and mine[0]["image"]["imageSize"].isdigit()
    assert all(c["zoneId"] == "HKG-A" for c in page["changes"])


def test_an_expired_cursor_says_to_start_again(
    two: tuple[AsgiClient, AsgiClient], test_db: str
) -> None:
    first, _ = two
    copy: dict[str, Any] = {}
    cursor = catch_up(first, copy, None)
    body = {"instanceId": "ins-alice-FRA-A", "imageName": "old"}
    assert_ok(first.call("CreateImage", body, version=PUBLISHED))

    async def compact() -> int:
        store = open_store(test_db)
        await store.open()
        removed = await store.compact_history("9999-01-01T00:00:00Z")  # everything
        await store.close()
        return removed

    assert run_sync(compact()) >= 1
    error = assert_error(first.call("DescribeImageChanges", {"cursor": cursor}), 410,
                         "INVALID_CURSOR_EXPIRED", "start again without a cursor")  # fmt: skip
    assert error["requestId"]
    again: dict[str, Any] = {}
    catch_up(first, again, None)  # compaction lost nothing of the catalog itself
    assert again == listed(first)


def test_the_history_says_who_made_each_change(
    two: tuple[AsgiClient, AsgiClient], test_db: str, creds: Credentials
) -> None:
    first, _ = two
    body = {"instanceId": "ins-alice-FRA-A", "imageName": "audited"}
    answer = first.call("CreateImage", body, version=PUBLISHED, signed=True)
    made = assert_ok(answer)["imageId"]
    request_id = answer.json()["requestId"]
    deleted = first.call("DeleteImages", {"imageIds": [made]}, version=PUBLISHED)
    assert deleted.status == 400  # still CREATING
    finish(test_db, made, True)
    delete = first.call("DeleteImages", {"imageIds": [made]}, version=PUBLISHED)
    assert_ok(delete)

    async def trail() -> list[Any]:
        store = open_store(test_db)
        await store.open()
        found = await store.list_history(image_id=made)
        await store.close()
        return found

    created, built, gone = run_sync(trail())
    key_id = creds.keys["alice"][0]
    assert (created.kind, created.actor) == (
        "CREATED", f"account {created.owner}, key:{key_id}, request {request_id}")  # fmt: skip
    assert (built.kind, built.actor, built.detail) == (
        "MODIFIED", "unknown", {"imageStatus": ["CREATING", "AVAILABLE"]})  # fmt: skip
    assert gone.kind == "DELETED" and gone.detail == {"imageName": "audited"}
    assert gone.actor.startswith(f"account {created.owner}, token:zlt_")
    assert gone.actor.endswith(f"request {delete.json()['requestId']}")
    assert created.seq < built.seq < gone.seq


def test_the_history_of_a_modify_names_each_field_that_changed(
    two: tuple[AsgiClient, AsgiClient], test_db: str
) -> None:
    """Each rename or new description is one MODIFIED entry per image with the fields that
    differ, [before, after], as DescribeImages showed them; a modify that changes nothing
    records nothing."""
    first, second = two
    made = [
        assert_ok(first.call("CreateImage", {"instanceId": "ins-alice-FRA-A", "imageName": n},
                             version=PUBLISHED))["imageId"]
        for n in ("one", "two")
    ]  # fmt: skip
    steps = [
        {"imageName": "renamed"},
        {"imageDescription": "described"},
        {"imageName": "both", "imageDescription": "again"},
        {"imageName": "both", "imageDescription": "again"},  # the same values: no change
    ]

    def shown() -> dict[str, tuple[str, str]]:
        images = listed(second, as_="alice", imageIds=made)
        return {i: (image["imageName"], image["imageDescription"]) for i, image in images.items()}

    expected = []
    for step in steps:
        was = shown()
        assert_ok(first.call("ModifyImagesAttributes", {"imageIds": made, **step},
                             version=PUBLISHED))  # fmt: skip
        now = shown()
        for image_id in sorted(made):
            fields = zip(("imageName", "imageDescription"), was[image_id], now[image_id],
                         strict=True)  # fmt: skip
            detail = {name: [old, new] for name, old, new in fields if old != new}
            if detail:
                expected.append((image_id, detail))

    async def trail() -> list[Any]:
        store = open_store(test_db)
        await store.open()
        found = await store.list_history()
        await store.close()
        return found

    modified = [(c.image_id, c.detail) for c in run_sync(trail())
                if c.image_id in made and c.kind == "MODIFIED"]  # fmt: skip
    assert modified == expected and len(expected) == 6


def post(endpoint: str, token: str, action: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        endpoint + "/api/v2/vm", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                 "X-ZC-Action": action, "X-ZC-Version": PUBLISHED},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["response"]


@pytest.mark.socket
def test_a_long_poll_is_answered_by_a_write_on_another_process(
    vmimages_process: ServerProcess, vmimages_server: VmimagesServer, tmp_path: Path
) -> None:
    """Two `serve` processes on one database: a client waits on one; a write on the other
    answers it (well before its wait is up); another account's write does not."""
    other, port = start_serve(
        ["--dev", "--database", str(vmimages_process.database),
         "--key-file", str(vmimages_process.key_file)], tmp_path / "other.log",
    )  # fmt: skip
    try:
        here, there = vmimages_server.endpoint, f"http://127.0.0.1:{port}"
        token = vmimages_server.token
        vmimages_server.add_instance("ins-wait", "FRA-A")
        bob = vmimages_server.new_account("bob-long-poll")  # a name no other test seeds
        bob.add_instance("ins-bob", "FRA-A")
        cursor = None
        while True:  # read the catalog as it stands
            page = post(here, token, "DescribeImageChanges", {"pageSize": 1000} | (
                {"cursor": cursor} if cursor else {}))  # fmt: skip
            cursor = page["nextCursor"]
            if not page["changes"]:
                break
        answers: list[tuple[float, Any]] = []

        def wait(seconds: int) -> None:
            started = time.monotonic()
            page = post(here, token, "DescribeImageChanges",
                        {"cursor": cursor, "waitSeconds": seconds})  # fmt: skip
            answers.append((time.monotonic() - started, page))

        waiter = threading.Thread(target=wait, args=(15,))
        waiter.start()
        time.sleep(1.0)
        post(there, bob.token, "CreateImage", {"instanceId": "ins-bob", "imageName": "bobs-image"})
        time.sleep(1.0)
        assert not answers  # bob's image is not the waiting client's business
        made = post(there, token, "CreateImage", {"instanceId": "ins-wait", "imageName": "waited"})
        waiter.join(timeout=30)
        ((took, page),) = answers
        assert [(c["changeType"], c["imageId"]) for c in page["changes"]] == [
            ("CREATED", made["imageId"])]  # fmt: skip
        assert took < 10  # answered by the write, not by the end of the wait
        # Nothing new: the wait runs out and the page is empty, its cursor good to go on.
        cursor = page["nextCursor"]
        answers.clear()
        wait(1)
        ((took, empty),) = answers
        assert empty["changes"] == [] and took >= 1
    finally:
        stop_process(other)


def test_a_wait_is_not_counted_against_the_request_timeout(
    test_db: str, creds: Credentials
) -> None:
    client = AsgiClient(create_app(settings_for(test_db, request_timeout=1.0)), creds)
    try:
        cursor = catch_up(client, {}, None)
        started = time.monotonic()
        page = feed(client, cursor, waitSeconds=2)
        assert page["changes"] == [] and time.monotonic() - started >= 2
    finally:
        client.close()


@pytest.mark.socket
def test_sigterm_answers_a_waiting_client_and_the_server_exits_in_time(
    vmimages_process: ServerProcess, vmimages_server: VmimagesServer, tmp_path: Path
) -> None:
    proc, port = start_serve(
        ["--dev", "--database", str(vmimages_process.database),
         "--key-file", str(vmimages_process.key_file)], tmp_path / "other.log",
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    cursor = None
    while True:
        page = post(endpoint, vmimages_server.token, "DescribeImageChanges",
                    {"pageSize": 1000} | ({"cursor": cursor} if cursor else {}))  # fmt: skip
        cursor = page["nextCursor"]
        if not page["changes"]:
            break
    answers: list[Any] = []

    def wait() -> None:
        answers.append(post(endpoint, vmimages_server.token, "DescribeImageChanges",
                            {"cursor": cursor, "waitSeconds": 20}))  # fmt: skip

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)
    started = time.monotonic()
    proc.terminate()
    waiter.join(timeout=30)
    proc.wait(timeout=30)  # (uvicorn ends by raising the signal again: -15)
    assert "Application shutdown complete" in (tmp_path / "other.log").read_text()
    assert time.monotonic() - started < 5  # the drain (0 s) and the grace, not the wait
    assert answers and answers[0]["changes"] == []  # answered, not cut off


def test_the_server_compacts_what_is_past_the_retention(
    two: tuple[AsgiClient, AsgiClient], test_db: str, creds: Credentials
) -> None:
    first, _ = two
    cursor = catch_up(first, {}, None)
    body = {"instanceId": "ins-alice-FRA-A", "imageName": "short-lived"}
    assert_ok(first.call("CreateImage", body, version=PUBLISHED))
    time.sleep(1.1)  # the change is a second old: past a retention of 0.1 s
    settings = settings_for(test_db, history_retention_days=0.1 / 86400)
    keeper = AsgiClient(create_app(settings), creds)  # compacts as it starts
    try:
        deadline = time.monotonic() + 10  # (compaction runs beside the first requests)
        answer = keeper.call("DescribeImageChanges", {"cursor": cursor})
        while answer.status == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            answer = keeper.call("DescribeImageChanges", {"cursor": cursor})
        assert_error(answer, 410, "INVALID_CURSOR_EXPIRED")
        again: dict[str, Any] = {}
        catch_up(keeper, again, None)
        assert any(i["imageName"] == "short-lived" for i in again.values())
    finally:
        keeper.close()


def test_the_audit_trail_answers_who_deleted_an_image(
    two: tuple[AsgiClient, AsgiClient], test_db: str, tmp_path: Path
) -> None:
    """docs/changes.md's question, with the CLI: who deleted image X, and when."""
    from click.testing import CliRunner

    from vmimages.cli import main

    first, _ = two
    body = {"instanceId": "ins-alice-FRA-A", "imageName": "doomed"}
    made = assert_ok(first.call("CreateImage", body, version=PUBLISHED))["imageId"]
    finish(test_db, made, False)
    deleted = first.call("DeleteImages", {"imageIds": [made]}, version=PUBLISHED)
    assert_ok(deleted)
    runner = CliRunner()
    shown = runner.invoke(main, ["changes", "--image", made, "--database", test_db])
    assert shown.exit_code == 0, shown.output
    created, failed, gone = shown.stdout.splitlines()
    assert f"CREATED  {made} (alice, FRA-A) by account" in created
    assert "imageStatus 'CREATING' -> 'UNAVAILABLE' by unknown" in failed
    assert f"DELETED  {made} (alice, FRA-A) imageName 'doomed' by account" in gone
    assert gone.endswith(f"request {deleted.json()['requestId']}")
    # An operator's import, as JSON lines, after a given change number.
    catalog = tmp_path / "more.json"
    catalog.write_text(json.dumps({"locations": [], "images": [{
        "imageId": "img-op000001", "imageName": "Ops", "location": "FRA-A",
        "category": "Debian", "osType": "linux", "imageVersion": "13", "imageSize": 20,
        "imageStatus": "AVAILABLE", "createTime": "2026-11-01T00:00:00Z"}]}))  # fmt: skip
    last = int(gone.split()[0])
    imported = runner.invoke(
        main, ["images", "import", str(catalog), "--database", test_db], prog_name="vmimages"
    )
    assert imported.exit_code == 0, imported.output
    shown = runner.invoke(main, ["changes", "--since", str(last), "--json", "--database", test_db])
    (entry,) = [json.loads(line) for line in shown.stdout.splitlines()]
    assert entry["imageId"] == "img-op000001" and entry["owner"] == "public"
    assert entry["by"].startswith("vmimages images import (by ")
    alice = runner.invoke(main, ["changes", "--account", "alice", "--database", test_db])
    assert alice.exit_code == 0 and len(alice.stdout.splitlines()) == 3
    nobody = runner.invoke(main, ["changes", "--account", "nobody", "--database", test_db])
    assert nobody.exit_code == 1 and "nobody" in nobody.output


def conditional(client: AsgiClient, action: str, body: dict[str, Any], etag: str | None,
                as_: str = "alice", version: str | None = None) -> Any:  # fmt: skip
    headers = {} if etag is None else {"if-none-match": etag}
    return client.call(action, body, as_=as_, version=version, headers=headers)


def test_etags_change_exactly_when_the_answer_would(two: tuple[AsgiClient, AsgiClient]) -> None:
    first, second = two
    asks = [("DescribeImages", {"regionId": "de-frankfurt-9a"}, None),
            ("DescribeImages", {"zoneId": "FRA-A"}, PUBLISHED),
            ("DescribeImageChanges", {"fromNow": True}, None)]  # fmt: skip
    tags = []
    for action, body, version in asks:
        answer = conditional(first, action, body, None, version=version)
        assert answer.status == 200 and answer.headers["etag"].startswith('W/"')
        if action == "DescribeImageChanges":  # go on from the cursor it gave
            body = {"cursor": answer.json()["response"]["nextCursor"]}
            answer = conditional(first, action, body, None, version=version)
        tags.append((action, body, version, answer.headers["etag"]))
    for action, body, version, etag in tags:
        again = conditional(second, action, body, etag, version=version)  # another process
        assert (again.status, again.body) == (304, b""), action
        assert again.headers["etag"] == etag and again.headers["x-zc-request-id"]
        assert "content-type" not in again.headers
        assert conditional(second, action, body, f'"other", {etag}', version=version).status == 304
        assert conditional(second, action, body, "*", version=version).status == 304
    # Bob's new image is in none of alice's answers: still 304.
    bobs = {"instanceId": "ins-bob-FRA-A", "imageName": "bobs"}
    assert_ok(first.call("CreateImage", bobs, as_="bob", version=PUBLISHED))
    for action, body, version, etag in tags:
        assert conditional(second, action, body, etag, version=version).status == 304, action
    # Alice's is in all of them: each answers anew, with another tag.
    mine = {"instanceId": "ins-alice-FRA-A", "imageName": "mine"}
    made = assert_ok(first.call("CreateImage", mine, version=PUBLISHED))["imageId"]
    for action, body, version, etag in tags:
        fresh = conditional(second, action, body, etag, version=version)
        assert fresh.status == 200 and fresh.headers["etag"] != etag, action

    def one(etag: str | None) -> Any:
        return conditional(first, "DescribeImage", {"imageId": made}, etag, version=PUBLISHED)

    etag = one(None).headers["etag"]
    assert one(etag).status == 304
    renamed = {"imageIds": [made], "imageName": "renamed"}
    assert_ok(first.call("ModifyImagesAttributes", renamed, version=PUBLISHED))
    assert one(etag).status == 200
    assert "etag" not in first.call("DescribeRegions", {}).headers  # only the three have one


def test_a_304_does_not_spend_the_rate_limit(test_db: str, creds: Credentials) -> None:
    client = AsgiClient(create_app(settings_for(test_db, rate_limit=2.0)), creds)
    try:
        body = {"regionId": "de-frankfurt-9a"}
        etag = conditional(client, "DescribeImages", body, None).headers["etag"]
        for _ in range(20):  # far past 2 a second: every one is a 304, none refused
            assert conditional(client, "DescribeImages", body, etag).status == 304
        statuses = [conditional(client, "DescribeImages", body, None).status for _ in range(4)]
        assert 429 in statuses  # answers in full still count
    finally:
        client.close()


def test_changes_follow_prints_changes_as_they_come(
    two: tuple[AsgiClient, AsgiClient], test_db: str
) -> None:
    import subprocess
    import sys

    first, _ = two
    follower = subprocess.Popen(
        [sys.executable, "-m", "vmimages", "changes", "--follow", "--json", "--database",
         test_db], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.5)  # it has printed the history so far and waits for more
        body = {"instanceId": "ins-alice-FRA-A", "imageName": "followed"}
        made = assert_ok(first.call("CreateImage", body, version=PUBLISHED))["imageId"]
        assert follower.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = follower.stdout.readline()
            if line and json.loads(line)["imageId"] == made:
                break
        else:
            raise AssertionError("the change was not printed")
    finally:
        follower.terminate()
        follower.wait(timeout=10)
