"""GET /metrics (metrics.py) and the log lines (logs.py), checked against what was sent."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from tests import logschema
from tests.asgi import AsgiClient, Credentials
from tests.conftest import REQUEST_ID, assert_error, key_file, settings_for, sql
from tests.test_lifecycle import add_instances
from vmimages import __version__, build, metrics
from vmimages.app import COUNT_WAIT, App, create_app
from vmimages.catalog import StoreUnavailable
from vmimages.config import Settings
from vmimages.linewriter import LineWriter
from vmimages.requestlog import LineValues, RequestLog, what_happened, word
from vmimages.testing import free_port

JSON = {"Content-Type": "application/json"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client: AsgiClient) -> Samples:
    response = client.request("GET", "/metrics", body=b"")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.body.decode())


def requests_of(samples: Samples, action: str, code: str, dialect: str) -> float:
    return value(samples, "vmimages_requests_total", action=action, code=code, dialect=dialect)


def test_metrics_count_what_was_sent(client: AsgiClient, test_db: str) -> None:
    before = scrape(client)
    for _ in range(3):
        client.call("DescribeImages", {})  # the seed dialect, alice's token
    client.call("DescribeZones", {}, version="2026-04-01")
    client.call("DescribeImages", {"regionId": "nowhere"})
    hostile = ["Bogus", "x" * 200, "DescribeImages\u00e9"]
    for name in hostile:
        client.call(name, {})
    after = scrape(client)

    def sent(action: str, code: str, dialect: str) -> float:
        return requests_of(after, action, code, dialect) - requests_of(
            before, action, code, dialect
        )

    assert sent("DescribeImages", "OK", "seed") == 3
    assert sent("DescribeZones", "OK", "published") == 1
    assert sent("DescribeImages", "INVALID_REGION_NOT_FOUND", "seed") == 1
    # Names no action has are one label: no client can make new time series.
    assert sent("other", "AUTHFAILURE_UNAUTHORIZED_OPERATION", "seed") == len(hostile)
    actions = {dict(labels)["action"] for (name, labels) in after if name.startswith("vmimages_r")
               and "action" in dict(labels)}  # fmt: skip
    assert not actions & {"Bogus", "x" * 200}
    duration = "vmimages_request_duration_seconds_count"
    assert (
        value(after, duration, action="DescribeImages")
        - value(before, duration, action="DescribeImages")
        == 4
    )
    # Durations resolve from 100 µs to 10 s: four bounds below 1 ms, so p50 and p90 of
    # answers from memory fall in different buckets.
    bounds = sorted({float(dict(labels)["le"]) for (name, labels) in after
                     if name == "vmimages_request_duration_seconds_bucket"})  # fmt: skip
    assert bounds[0] == 0.0001 and bounds[-2] == 10 and bounds[-1] == float("inf")
    assert len([b for b in bounds if b < 0.001]) >= 4
    # What runs: the version and the kind of database.
    kind = settings_for(test_db).store_kind
    running = build()
    assert value(after, "vmimages_build_info", store=kind, version=__version__, build=running) == 1

    # The image counts are the database's, as of the scrape.
    counted = sql(test_db, "SELECT owner = 0, status, count(*) FROM images GROUP BY 1, 2")
    assert counted
    for public, status, count in counted:
        kind = "PUBLIC_IMAGE" if public else "CUSTOM_IMAGE"
        assert value(after, "vmimages_images", type=kind, status=status) == count
    assert value(after, "vmimages_images", type="CUSTOM_IMAGE", status="CREATING") == 0


def test_metrics_answer_while_the_database_does_not(client: AsgiClient) -> None:
    """The image counts of the last scrape stay; everything else is this process's and fresh,
    and the outage itself shows as SERVICE_TEMPORARY_UNAVAILABLE answers."""
    before = scrape(client)
    client.run(client.app.store.close())  # the database is gone
    assert_error(client.call("DescribeRegions", {}), 503, "SERVICE_TEMPORARY_UNAVAILABLE")
    after = scrape(client)
    assert requests_of(after, "DescribeRegions", "SERVICE_TEMPORARY_UNAVAILABLE", "seed") == (
        requests_of(before, "DescribeRegions", "SERVICE_TEMPORARY_UNAVAILABLE", "seed") + 1
    )
    kept = ("vmimages_images", (("status", "AVAILABLE"), ("type", "PUBLIC_IMAGE")))
    assert after[kept] == before[kept] > 0


def test_rate_limited_requests_are_counted(test_db: str, creds: Credentials) -> None:
    client = AsgiClient(create_app(settings_for(test_db, rate_limit=1.0)), creds)
    try:
        before = scrape(client)
        codes = [client.call("DescribeRegions", {}).status for _ in range(3)]
        after = scrape(client)
    finally:
        client.close()
    refused = codes.count(429)
    assert refused >= 1
    name = "vmimages_rate_limited_requests_total"
    assert (
        value(after, name, action="DescribeRegions") - value(before, name, action="DescribeRegions")
        == refused
    )
    assert (
        requests_of(after, "DescribeRegions", "REQUEST_LIMIT_EXCEEDED", "seed")
        - requests_of(before, "DescribeRegions", "REQUEST_LIMIT_EXCEEDED", "seed")
        == refused
    )


def test_counted_durations_make_the_histogram_prometheus_makes() -> None:
    """Requests are counted in plain numbers (tally.py) and added to the figures in batches
    (metrics.flush): the histogram then holds what prometheus-client's own `observe` of each
    duration makes, bucket by bucket, bounds included (a duration equal to a bound is in it)."""
    durations = [0.00005, 0.0001, 0.00011, 0.0007, 0.001, 0.003, 0.2, 9.9, 10.0, 12.0]
    oracle = Histogram("oracle", "", ["action"], buckets=metrics.DURATION_BUCKETS,
                       registry=CollectorRegistry())  # fmt: skip

    def samples(histogram: Histogram) -> dict[tuple[str, str], float]:
        return {(sample.name.rsplit("_", 1)[1], sample.labels.get("le", "")): sample.value
                for family in histogram.collect() for sample in family.samples
                if sample.labels.get("action") == "DescribeImage"}  # fmt: skip

    metrics.flush()
    before = samples(metrics.DURATION)
    for seconds in durations:
        metrics.TALLY.count_request("DescribeImage", "OK", "published", seconds)
        oracle.labels("DescribeImage").observe(seconds)
    metrics.flush()
    after, expected = samples(metrics.DURATION), samples(oracle)
    assert after.keys() == expected.keys() and ("bucket", "+Inf") in expected
    for key, value_ in expected.items():
        if key[0] != "created":
            assert after[key] - before.get(key, 0.0) == pytest.approx(value_), key


def test_builds_in_progress_and_connections(test_db: str, creds: Credentials) -> None:
    add_instances(test_db)
    settings = settings_for(test_db, image_build_seconds=0.5, metrics_count_seconds=0.05)
    client = AsgiClient(create_app(settings), creds)
    try:
        before = scrape(client)
        created = client.call("CreateImage", {"instanceId": "ins-alice-fra", "imageName": "b1"})
        assert created.status == 200
        client.settle(0.2)
        building = scrape(client)
        client.settle(0.8)
        built = scrape(client)
        taken = []
        for _ in range(20):
            taken.append(value(scrape(client), "vmimages_db_connections_in_use"))
            client.settle(0.013)
    finally:
        client.close()
    assert value(building, "vmimages_builds_in_progress") == 1
    assert value(building, "vmimages_images", type="CUSTOM_IMAGE", status="CREATING") == 1
    assert value(built, "vmimages_builds_in_progress") == 0
    for result, count in (("available", 1), ("unavailable", 0)):  # the counter is the process's
        name = "vmimages_builds_total"
        assert value(built, name, result=result) - value(before, name, result=result) == count
    assert value(built, "vmimages_images", type="CUSTOM_IMAGE", status="AVAILABLE") == 1
    # Between requests no connection is kept (nor any transaction open): the background work
    # (the image counts, made again by a scrape after 0.05 s here, the build worker) takes one
    # only while it runs.
    assert 0 in taken, taken


class ObservedCount:
    """An app's store's own `count_images`, observed: when each count began; made slow
    (`delay`, seconds) or failing (`fail`) on demand."""

    def __init__(self, app: App) -> None:
        self.store_count = app.store.count_images
        self.began: list[float] = []
        self.delay = 0.0
        self.fail = False
        app.store.count_images = self  # type: ignore[method-assign]

    async def __call__(self) -> list[tuple[str, str, int]]:
        self.began.append(time.monotonic())
        await asyncio.sleep(self.delay)
        if self.fail:
            raise StoreUnavailable("the database does not answer")
        return await self.store_count()


def public_images(database: str, status: str) -> int:
    """The oracle: the database's own count of public images in `status`."""
    query = "SELECT count(*) FROM images WHERE owner = 0 AND status = ?"
    return int(sql(database, query, (status,))[0][0])


def public_shown(samples: Samples, status: str) -> float:
    return value(samples, "vmimages_images", type="PUBLIC_IMAGE", status=status)


def make_one_unavailable(database: str) -> None:
    one = "SELECT min(image_id) FROM images WHERE owner = 0 AND status = 'AVAILABLE'"
    sql(database, f"UPDATE images SET status = 'UNAVAILABLE' WHERE image_id = ({one})")


def test_images_are_counted_for_a_scrape_only(test_db: str, creds: Credentials) -> None:
    """With the shipped settings: a count reads the whole images table, and /metrics answers
    without credentials, so a process no one scrapes never counts, and scrapes however many
    and however close (here 8 at once, while the count runs) share one count in
    metrics_count_seconds (15 s), which shows the database's own counts."""
    app = create_app(settings_for(test_db))
    assert app.settings.metrics_count_seconds == Settings().metrics_count_seconds == 15.0
    count = ObservedCount(app)
    count.delay = 0.2  # the scrapes below arrive while it runs
    client = AsgiClient(app, creds)
    try:
        for _ in range(3):
            assert client.call("DescribeRegions", {}).status == 200
        client.settle(0.3)
        assert count.began == []  # served, never scraped: never counted
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: scrape(client), range(8)))
        answers.append(scrape(client))  # after the count: it counts nothing more
        assert len(count.began) == 1
        available = public_images(test_db, "AVAILABLE")
        assert available > 0
        assert {public_shown(samples, "AVAILABLE") for samples in answers} == {available}
    finally:
        client.close()


def test_image_counts_are_made_again_once_stale(
    test_db: str, creds: Credentials, caplog: pytest.LogCaptureFixture
) -> None:
    """A scrape within metrics_count_seconds of the last count shows it; a later one counts
    again. It waits COUNT_WAIT seconds at most: a longer count leaves it the last counts and
    goes on for the next scrape; a count that fails leaves them too, and says so in the log."""
    app = create_app(settings_for(test_db, metrics_count_seconds=1.0))
    count = ObservedCount(app)
    client = AsgiClient(app, creds)
    try:
        available = public_images(test_db, "AVAILABLE")
        assert public_shown(scrape(client), "AVAILABLE") == available
        make_one_unavailable(test_db)
        assert public_shown(scrape(client), "AVAILABLE") == available  # within 1 s: the last
        client.settle(1.1)
        assert public_shown(scrape(client), "AVAILABLE") == available - 1  # counted again
        assert len(count.began) == 2

        make_one_unavailable(test_db)
        client.settle(1.1)
        count.delay = COUNT_WAIT + 0.5
        slow = scrape(client)  # answered after COUNT_WAIT, before the count ends
        assert public_shown(slow, "AVAILABLE") == available - 1  # the last counts
        client.settle(0.7)  # the count, which went on, has ended
        after = scrape(client)
        assert len(count.began) == 3  # ended under 1 s ago: nothing counted again
        assert public_shown(after, "AVAILABLE") == available - 2

        count.delay, count.fail = 0.0, True
        make_one_unavailable(test_db)
        client.settle(1.1)
        with caplog.at_level(logging.WARNING, logger="vmimages"):
            failed = scrape(client)
        assert len(count.began) == 4
        assert public_shown(failed, "AVAILABLE") == available - 2  # the last counts stay
        assert "/metrics: cannot count images: the database does not answer" in caplog.text
        count.fail = False
        client.settle(1.1)
        assert public_shown(scrape(client), "AVAILABLE") == available - 3
        assert public_images(test_db, "AVAILABLE") == available - 3
    finally:
        client.close()


def test_no_metrics_turns_the_path_and_the_counting_off(test_db: str, creds: Credentials) -> None:
    client = AsgiClient(create_app(settings_for(test_db, metrics=False)), creds)
    try:
        assert_error(client.request("GET", "/metrics", body=b""), 404,
                     "OPERATION_FAILED_RESOURCE_NOT_FOUND")  # fmt: skip
        with_metrics = AsgiClient(create_app(settings_for(test_db)), creds)
        try:
            before = scrape(with_metrics)
            client.call("DescribeRegions", {})
            after = scrape(with_metrics)
        finally:
            with_metrics.close()
    finally:
        client.close()
    assert requests_of(after, "DescribeRegions", "OK", "seed") == requests_of(
        before, "DescribeRegions", "OK", "seed"
    )


# Over a socket: the server's own log lines, and two workers' figures summed. ---------------


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def log_lines(server: Any, last_request_id: str) -> list[str]:
    """The server's log lines, once the last request's line is among them."""
    text = server.log_when(lambda text: last_request_id in text)
    return [line for line in text.splitlines() if line]


@pytest.mark.socket
def test_json_logs_and_metrics_of_two_workers(
    server_factory: Any, test_db: str, creds: Credentials
) -> None:
    server = server_factory(test_db, "--workers", "2", "--log-format", "json", creds=creds)
    sdk = {"x-zc-sdk-lang": "Go", "x-zc-sdk-version": "0.2.9", "x-zc-request-client": "zeno",
           "Content-Type": "application/json"}  # fmt: skip
    ids = []
    for _ in range(20):
        status, headers, _ = server.post(b"{}", {"X-ZC-Action": "DescribeImages", **sdk}, "/")
        assert status == 200
        ids.append(headers["x-zc-request-id"])
    status, refused_headers, _ = server.post(
        b"{}", {"X-ZC-Action": "DescribeImages", **sdk}, "/", as_=None
    )
    assert status == 401
    # A worker hands its counts to the figures the workers share every second (metrics.py,
    # FLUSH_EVERY): a scrape that the other worker answers may come before. Wait for them
    # all, then scrape again.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        samples = parse(get(server.url + "/metrics"))
        if requests_of(samples, "DescribeImages", "OK", "seed") == 20 and requests_of(
            samples, "DescribeImages", "AUTHFAILURE_INVALID_AUTHORIZATION", "seed"
        ):
            break
        time.sleep(0.05)
    # Either worker may answer the scrape; each time the figures are both workers' together.
    for _ in range(4):
        samples = parse(get(server.url + "/metrics"))
        assert requests_of(samples, "DescribeImages", "OK", "seed") == 20
        assert requests_of(samples, "DescribeImages", "AUTHFAILURE_INVALID_AUTHORIZATION",
                           "seed") == 1  # fmt: skip

    # Each worker's memory and CPU, by its process id (docs/deploy.md, "Metrics"), once both
    # have started (a worker that is still starting has no figures yet).
    def per_worker(name: str) -> dict[str, float]:
        return {dict(labels)["worker"]: v for (found, labels), v in samples.items()
                if found == name}  # fmt: skip

    deadline = time.monotonic() + 10
    while len(per_worker("process_resident_memory_bytes")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        samples = parse(get(server.url + "/metrics"))
    memory, cpu = (
        per_worker("process_resident_memory_bytes"),
        per_worker("process_cpu_seconds_total"),
    )
    assert len(memory) == 2 and memory.keys() == cpu.keys(), memory
    assert all(v > 10e6 for v in memory.values()) and all(v > 0 for v in cpu.values())

    # Each worker writes its lines in its own batches: wait for every request's line.
    awaited = [*ids, refused_headers["x-zc-request-id"]]
    text = server.log_when(lambda text: all(request_id in text for request_id in awaited))
    lines = [line for line in text.splitlines() if line]
    parsed = [logschema.check(line) for line in lines]  # every line, against the schema
    assert any(p["log"]["logger"].startswith("uvicorn") for p in parsed)  # uvicorn's lines too
    # The two workers' lines say which process wrote them, on which host.
    assert len({p["process"]["pid"] for p in parsed}) >= 2
    assert {p["host"]["hostname"] for p in parsed} == {socket.gethostname()}
    requests = [p for p in parsed if p["log"]["logger"] == "vmimages.request"]
    # (Two processes write the one log: lines of consecutive requests may swap places.)
    answered = [p for p in requests if p["http"]["response"]["status_code"] == 200]
    assert sorted(p["http"]["request"]["id"] for p in answered) == sorted(ids)
    first = answered[0]
    assert re.fullmatch(r"DescribeImages answered 200 OK in \d+\.\d\d ms", first["message"])
    assert first["vmimages"]["action"] == "DescribeImages"
    assert first["vmimages"]["dialect"] == "seed" and first["vmimages"]["code"] == "OK"
    assert first["event"]["outcome"] == "success" and first["event"]["duration"] > 0
    assert first["user"]["id"] is not None and first["client"]["address"] == "127.0.0.1"
    assert first["vmimages"]["sdk"] == {"lang": "Go", "version": "0.2.9", "client": "zeno"}
    (refused,) = [p for p in requests if p["http"]["response"]["status_code"] == 401]
    assert refused["vmimages"]["code"] == "AUTHFAILURE_INVALID_AUTHORIZATION"
    assert refused["user"]["id"] is None and refused["event"]["outcome"] == "failure"
    assert refused["message"].startswith("DescribeImages refused 401 AUTHFAILURE_INVALID_")
    text = "\n".join(lines)
    for secret in [*creds.tokens.values(), *(password for _, password in creds.keys.values())]:
        assert secret not in text


PLAIN_WORD = re.compile(r"[!#-<>-~]+")  # printable ASCII but space, `"` and `=`


@given(st.text(max_size=12) | st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=12))
def test_a_clients_value_is_written_as_it_is_only_when_it_is_one_plain_word(value: str) -> None:
    expected = value if PLAIN_WORD.fullmatch(value) else json.dumps(value)
    assert word(value) == expected
    assert word(value).isascii() and word(value).isprintable()


values = st.text(max_size=12) | st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=12)


LINE_REQUEST_ID = "T1234ABCD-1234-4123-8123-123456789ABC"


@st.composite
def line_values(draw: st.DrawFn) -> LineValues:
    """A request line's values, any a request can have: the client's chosen strings (plain
    words, quotes, controls, non-ASCII), every dialect, status and client, any duration."""
    status = draw(st.sampled_from([200, 304, 400, 401, 429, 500, 503]))
    client = st.tuples(st.sampled_from(["127.0.0.1", "::1"]), st.integers(1, 65535))
    return LineValues(
        1_700_000_000.25, draw(st.floats(min_value=0, max_value=30, allow_nan=False)),
        LINE_REQUEST_ID, draw(st.none() | values),
        draw(st.sampled_from([None, "", "2023-03-13", "2026-04-01"])),
        draw(st.none() | st.integers(min_value=1, max_value=2**40)), status,
        "OK" if status < 400 else "INVALID_PARAMETER", draw(st.none() | client),
        draw(st.none() | values), draw(st.none() | values), draw(st.none() | values),
    )  # fmt: skip


@given(line_values())
def test_a_json_request_line_holds_the_schemas_fields_whatever_the_values(v: LineValues) -> None:
    line = RequestLog("json", LineWriter(max_pending=0)).json_line(v)
    assert "\n" not in line  # one line, whatever the values hold
    parsed = json.loads(line)
    assert list(parsed) == ["@timestamp", "log.level", "message", "ecs.version", "log",
                            "service", "host", "process", "event", "http", "user", "client",
                            "vmimages"]  # fmt: skip
    assert parsed["@timestamp"] == "2023-11-14T22:13:20.250Z"
    assert parsed["message"] == what_happened(v.action, v.status, v.code, v.seconds)
    assert parsed["log"] == {"logger": "vmimages.request"} and parsed["log.level"] == "info"
    assert parsed["event"] == {"duration": int(v.seconds * 1e9),
                               "outcome": "success" if v.status < 400 else "failure"}  # fmt: skip
    assert parsed["http"] == {
        "request": {"id": v.request_id},
        "response": {"status_code": v.status},
    }
    assert parsed["user"] == {"id": None if v.account is None else str(v.account)}
    assert parsed["client"] == (
        {"address": None, "port": None} if v.client is None
        else {"address": v.client[0], "port": v.client[1]}
    )  # fmt: skip
    assert parsed["vmimages"] == {
        "action": v.action,
        "dialect": {None: "unknown", "": "seed"}.get(v.version, "published"),
        "api_version": v.version or None,
        "code": v.code,
        "sdk": {"lang": v.sdk_lang, "version": v.sdk_version, "client": v.request_client},
    }
    logschema.check(line)


def test_a_batch_to_a_pipe_holds_at_most_pipe_buf_bytes_whatever_the_characters() -> None:
    """Workers sharing a pipe never cut each other's lines: each write is of whole lines and at
    most PIPE_BUF bytes, counted in bytes (a JSON line keeps a client's non-ASCII characters,
    two to four bytes each)."""
    read_end, write_end = os.pipe()
    sizes: list[int] = []
    with open(write_end, "w", encoding="utf-8") as pipe, open(read_end, "rb") as out:

        class Recording(io.StringIO):
            def fileno(self) -> int:
                return pipe.fileno()

            def write(self, text: str) -> int:
                sizes.append(len(text.encode()))
                return pipe.write(text)

            def flush(self) -> None:
                pipe.flush()

        writer = LineWriter(Recording())
        loop = asyncio.new_event_loop()
        try:
            writer.attach(loop)  # lines queue until the writer is detached
            lines = [f"{n} " + "é" * 1000 for n in range(10)]  # 1,002 characters, 2,002 bytes
            for line in lines:
                writer.write(line)
            writer.detach()
        finally:
            loop.close()
        pipe.close()
        assert out.read().decode().splitlines() == lines
    assert sum(sizes) == 10 * 2003 and max(sizes) <= LineWriter.PIPE_BUF, sizes


TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")


def text_fields(line: str) -> dict[str, str]:
    """A text request line's `key=value` words, in order, each value as given: a plain word as
    it is, a quoted one decoded as the JSON string it is written as."""
    _, rest = line.split(" vmimages.request: ", 1)
    fields: dict[str, str] = {}
    while rest:
        key, rest = rest.split("=", 1)
        if rest.startswith('"'):
            fields[key], end = json.JSONDecoder().raw_decode(rest)
            rest = rest[end:].removeprefix(" ")
        else:
            fields[key], _, rest = rest.partition(" ")
    return fields


@given(line_values())
def test_a_text_request_line_holds_its_fields_whatever_the_values(v: LineValues) -> None:
    line = RequestLog("text", LineWriter(max_pending=0)).text_line(v)
    assert line.isascii() and line.isprintable()  # one line, whatever the values hold
    assert TEXT_LINE.match(line)
    expected = {
        "requestId": v.request_id,
        **({"action": v.action} if v.action else {}),
        "dialect": {None: "unknown", "": "seed"}.get(v.version, "published"),
        **({"version": v.version} if v.version else {}),
        **({"account": str(v.account)} if v.account is not None else {}),
        "status": str(v.status),
        "code": v.code,
        "duration_ms": "%.3f" % (v.seconds * 1000),
        **({"client": f"{v.client[0]}:{v.client[1]}"} if v.client is not None else {}),
        **({"sdkLang": v.sdk_lang} if v.sdk_lang else {}),
        **({"sdkVersion": v.sdk_version} if v.sdk_version else {}),
        **({"requestClient": v.request_client} if v.request_client else {}),
    }  # fmt: skip
    assert list(text_fields(line).items()) == list(expected.items())


@pytest.mark.socket
def test_text_logs_have_one_format(server_factory: Any, test_db: str, creds: Credentials) -> None:
    server = server_factory(test_db, creds=creds)
    hostile = {"X-ZC-Action": "DescribeImages", "x-zc-sdk-lang": 'Go status=500 code="OK"',
               "Content-Type": "application/json"}  # fmt: skip
    status, headers, _ = server.post(b"{}", hostile, "/")
    assert status == 200
    lines = log_lines(server, headers["x-zc-request-id"])
    assert lines and all(TEXT_LINE.match(line) for line in lines), lines
    (line,) = [line for line in lines if headers["x-zc-request-id"] in line]
    assert " vmimages.request: requestId=" in line and " status=200 code=OK " in line
    # A value the client chose is quoted: it cannot pass for another field.
    assert 'sdkLang="Go status=500 code=\\"OK\\""' in line
    # Nor for another line: a C1 control (NEL, U+0085) is escaped like any non-ASCII character.
    forged = {**hostile, "x-zc-sdk-lang": "Go\x85 2026-01-01 00:00:00,000 INFO vmimages.request:"}
    status, headers, _ = server.post(b"{}", forged, "/")
    lines = log_lines(server, headers["x-zc-request-id"])
    (line,) = [line for line in lines if headers["x-zc-request-id"] in line]
    assert "\x85" not in line and '"Go\\u0085 2026-01-01' in line
    # A long value is cut at 64 characters, whichever header it came in.
    cut = (("x-zc-sdk-version", "sdkVersion"), ("x-zc-request-client", "requestClient"),
           ("X-ZC-Action", "action"))  # fmt: skip
    for header, key in cut:
        status, headers, _ = server.post(b"{}", {**hostile, header: "v" * 100}, "/")
        lines = log_lines(server, headers["x-zc-request-id"])
        (line,) = [line for line in lines if headers["x-zc-request-id"] in line]
        assert f" {key}={'v' * 64}..." in line, line
    assert creds.tokens["alice"] not in "\n".join(lines)


@pytest.mark.socket
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_no_request_line_is_lost_when_the_server_stops(
    server_factory: Any, test_db: str, creds: Credentials, stop: signal.Signals
) -> None:
    """Lines wait a moment before they are written (linewriter.LineWriter); stopping the server
    right after the last answer writes every one."""
    server = server_factory(test_db, creds=creds)
    sent = []
    for _ in range(300):
        status, headers, _ = server.post(b"{}", {"X-ZC-Action": "DescribeRegions", **JSON}, "/")
        assert status == 200
        sent.append(headers["x-zc-request-id"])
    server.proc.send_signal(stop)
    assert server.proc.wait(timeout=15) in (0, -stop)  # (uvicorn raises the signal again)
    logged = re.findall(r"requestId=(\S+)", server.log.read_text())
    assert logged == sent


@pytest.mark.socket
def test_a_reader_that_does_not_read_never_stalls_the_server(
    test_db: str, creds: Credentials, tmp_path: Any
) -> None:
    """The server's output is a pipe nobody reads: the pipe fills after a few hundred lines,
    and requests are still answered at once; the lines come out once the pipe is read."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmimages", "serve", "--port", str(port), "--database", test_db,
         "--key-file", key_file(test_db)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        headers = {"X-ZC-Action": "DescribeRegions", **JSON, **creds.bearer("alice")}
        sent = []
        for _ in range(2000):  # about 500 KB of log lines, several times the pipe's buffer
            request = urllib.request.Request(url, b"{}", headers, method="POST")
            with urllib.request.urlopen(request, timeout=5) as response:
                sent.append(response.headers["x-zc-request-id"])
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    logged = re.findall(r"requestId=(\S+)", output.decode())
    assert logged == sent


@pytest.mark.socket
def test_metrics_on_a_port_of_their_own(
    server_factory: Any, test_db: str, creds: Credentials
) -> None:
    """--metrics-port: /metrics is served there (with the database's image counts, made in
    the background) and no longer on the API's port."""
    port = free_port()
    server = server_factory(test_db, "--metrics-port", str(port), creds=creds)
    with pytest.raises(urllib.error.HTTPError, match="404"):
        get(server.url + "/metrics")  # no longer on the API's port
    counted = "SELECT count(*) FROM images WHERE owner = 0 AND status = 'AVAILABLE'"
    deadline = time.monotonic() + 10  # the first count is made in the background at start
    while True:
        samples = parse(get(f"http://127.0.0.1:{port}/metrics"))
        public = value(samples, "vmimages_images", type="PUBLIC_IMAGE", status="AVAILABLE")
        if public or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert public == sql(test_db, counted)[0][0] > 0
    with pytest.raises(urllib.error.HTTPError, match="404") as other:
        get(f"http://127.0.0.1:{port}/other")
    doc = json.loads(other.value.read())
    assert set(doc) == {"requestId", "code", "message"}
    assert doc["code"] == "OPERATION_FAILED_RESOURCE_NOT_FOUND" and REQUEST_ID.fullmatch(
        doc["requestId"]
    )
