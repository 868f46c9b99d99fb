"""The web console in a real browser: Debian's chromium driven by Playwright (docs/console.md).

What the console shows is checked against the API's own answers for the same account (the
oracle), and every page is watched for script errors.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUEST_ID, Server, add_custom
from tests.test_sdk_lifecycle import with_instances

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.socket,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
        reason="needs Debian's chromium (.ci/run installs it; in CI its absence fails)",
    ),
]
playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def served(server_factory: Any, db_path: str) -> Any:
    """A --dev server on the default catalog: alice with an instance, bob with a custom image."""
    creds = with_instances(db_path, ("ins-web-1", "alice", "FRA-A"))
    add_custom(db_path, "img-bobsecret", owner_name="bob", name="bob-secret", location="FRA-A")
    server = server_factory(db_path, "--dev", "--image-build-seconds", "inf", creds=creds)
    return server, creds


class Page:
    """A browser tab on the console, with every script error it met."""

    def __init__(self, browser: Any, base: str, width: int = 1280) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda err: self.errors.append(f"pageerror: {err}"))
        self.page.on(
            "console",
            lambda m: self.errors.append(f"{m.type}: {m.text}") if m.type == "error" else None,
        )
        self.base = base
        self.api_errors_expected = False  # Chromium logs each 4xx answer as a console error
        self.page.goto(base + "/console")

    def script_errors(self) -> list[str]:
        if not self.api_errors_expected:
            return self.errors
        return [e for e in self.errors if "Failed to load resource" not in e]

    def sign_in(self, token: str, wait: bool = True) -> None:
        self.page.get_by_label("Personal access token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        if wait:  # until the first list is shown
            self.page.wait_for_selector("#images tbody tr")

    def text(self, selector: str) -> str:
        return str(self.page.locator(selector).text_content() or "")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    pages: list[Page] = []

    def open_(base: str, width: int = 1280) -> Page:
        page = Page(browser, base, width)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        errors = page.script_errors()
        page.close()
        assert errors == [], errors  # no script errors, on any page of any test


def api(server: Server, action: str, params: dict[str, Any], as_: str = "alice") -> Any:
    """The oracle: the public API answering the same account (the seed dialect)."""
    headers = {"Content-Type": "application/json", "X-TC-Action": action}
    status, _, answer = server.post(json.dumps(params).encode(), headers, "/", as_=as_)
    assert status == 200, answer
    return answer["response"]


def shown_ids(page: Page, table: str = "#images") -> list[str]:
    """The image ids a table's name buttons stand for (from their accessible names)."""
    labels = page.page.locator(f"{table} tbody button.link").evaluate_all(
        "buttons => buttons.map(b => b.getAttribute('aria-label'))"
    )
    return [re.search(r"\((img-[^)]+)\)$", label).group(1) for label in labels]  # type: ignore[union-attr]


def test_sign_in_list_filter_page_and_open(served: Any, open_page: Any) -> None:
    server, creds = served
    token = creds.tokens["alice"]
    page = open_page(server.url)
    page.sign_in(token)
    everything = api(server, "DescribeImages", {"pageSize": 20})
    assert page.text("#total") == f"{everything['totalCount']} images"
    assert shown_ids(page) == [i["imageId"] for i in everything["images"]]

    # Filter by region (the list of regions comes from DescribeRegions).
    regions = api(server, "DescribeRegions", {})["regions"]
    options = page.page.locator("#f-region option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["", *[r["regionId"] for r in regions]]
    page.page.get_by_label("Region").select_option("de-frankfurt-9a")
    fra = api(server, "DescribeImages", {"regionId": "de-frankfurt-9a"})
    page.page.wait_for_function(
        "n => document.querySelector('#total').textContent === n + ' images'", arg=fra["totalCount"]
    )
    assert shown_ids(page) == [i["imageId"] for i in fra["images"]]

    # Page through the whole catalog, 10 at a time.
    page.page.get_by_label("Region").select_option("")
    page.page.get_by_label("Per page").select_option("10")
    page.page.wait_for_function(
        "() => document.querySelector('#page').textContent.endsWith('of 11')"
    )
    page.page.get_by_role("button", name="Next").click()
    page.page.wait_for_function(
        "() => document.querySelector('#page').textContent === 'Page 2 of 11'"
    )
    second = api(server, "DescribeImages", {"pageSize": 10, "pageNum": 2})
    assert shown_ids(page) == [i["imageId"] for i in second["images"]]

    # Open an image: its fields, as the API gives them.
    first = second["images"][0]
    page.page.get_by_role(
        "button", name=f"Details of {first['imageName']} ({first['imageId']})"
    ).click()
    details = page.page.locator("#details")
    details.wait_for(state="visible")
    text = details.text_content() or ""
    for field in ("imageId", "imageName", "imageStatus", "regionId", "category", "createTime"):
        assert str(first[field]) in text
    assert page.page.locator("#delete").is_hidden()  # a public image cannot be deleted


def customs(server: Server) -> int:
    return int(api(server, "DescribeImages", {"imageType": "CUSTOM_IMAGE"})["totalCount"])


def complete_build(server: Server, image_id: str) -> None:
    status, _, answer = server.post(
        json.dumps({"imageId": image_id}).encode(),
        {"Content-Type": "application/json"},
        "/_vmimages/builds",
        as_=None,
    )
    assert status == 200 and answer["response"]["imageStatus"] == "AVAILABLE", answer


def test_create_watch_rename_and_delete_a_custom_image(served: Any, open_page: Any) -> None:
    server, creds = served
    token = creds.tokens["alice"]
    page = open_page(server.url)
    page.sign_in(token)
    quota = {q["regionId"]: q for q in api(server, "DescribeImageQuota", {})["images"]}
    fra_row = page.page.locator("#quota tbody tr", has_text="FRA-A")  # zones, as the CLI says
    allowed = str(quota["de-frankfurt-9a"]["maxCount"])
    playwright_api.expect(fra_row.locator("td")).to_have_text(["FRA-A", "0", allowed])

    page.page.get_by_label("Instance id").fill("ins-web-1")
    page.page.get_by_label("Image name").fill("web-golden")
    page.page.get_by_label("Description").fill("made in the console")
    page.page.get_by_role("button", name="Create image").click()
    # The confirmation comes once the create's own reads are done (lists, quota, details).
    playwright_api.expect(page.page.locator("#notice")).to_contain_text("it is being built")
    (mine,) = api(server, "DescribeImages", {"imageType": "CUSTOM_IMAGE"})["images"]
    assert mine["imageName"] == "web-golden" and mine["imageStatus"] == "CREATING"
    assert "CREATING" in page.text("#details") and "being built" in page.text("#building")
    playwright_api.expect(fra_row.locator("td").nth(1)).to_have_text("1")

    # While it waits for the build, the console watches the feed (a long poll) from where it
    # stood before the lists were read, and reads no list again until something changes: not
    # for the create it has just made (docs/changes.md).
    actions: list[str] = []  # of the requests that ended from now on
    page.page.on("requestfinished", lambda r: actions.append(r.headers.get("x-zc-action", "")))
    page.page.wait_for_timeout(2500)
    assert "DescribeImages" not in actions, actions
    # The build ends elsewhere; the console, told by the feed, shows it without being touched.
    complete_build(server, mine["imageId"])
    page.page.wait_for_function("() => document.querySelector('#building').textContent === ''")
    page.page.wait_for_function(
        "() => document.querySelector('#details-fields .status-AVAILABLE') !== null"
    )
    assert actions.index("DescribeImageChanges") < actions.index("DescribeImages"), actions
    page.page.wait_for_function(
        "() => document.querySelector('#details-fields .status-AVAILABLE') !== null"
    )
    playwright_api.expect(page.page.locator("#custom tbody tr").first).to_contain_text("web-golden")

    page.page.get_by_label("New name").fill("web-renamed")
    page.page.get_by_role("button", name="Rename").click()
    page.page.wait_for_function(
        "() => document.querySelector('#details-id').textContent === 'web-renamed'"
    )
    assert (
        api(server, "DescribeImages", {"imageIds": [mine["imageId"]]})["images"][0]["imageName"]
        == "web-renamed"
    )

    # Delete asks first; Cancel keeps the image, Delete removes it.
    page.page.get_by_role("button", name="Delete image").click()
    dialog = page.page.locator("dialog#confirm")
    assert dialog.is_visible() and mine["imageId"] in (dialog.text_content() or "")
    dialog.get_by_role("button", name="Cancel").click()
    assert customs(server) == 1
    page.page.get_by_role("button", name="Delete image").click()
    dialog.get_by_role("button", name="Delete").click()
    page.page.wait_for_selector("#details", state="hidden")
    page.page.wait_for_function(
        "() => document.querySelector('#custom tbody').textContent.includes('No custom images')"
    )
    assert customs(server) == 0
    # (The quota is read beside the list: it may land a moment after.)
    playwright_api.expect(fra_row.locator("td").nth(1)).to_have_text("0")


def test_another_accounts_images_never_show(served: Any, open_page: Any) -> None:
    server, creds = served
    page = open_page(server.url)
    page.sign_in(creds.tokens["alice"])
    page.page.get_by_label("Type").select_option("CUSTOM_IMAGE")
    page.page.wait_for_function("() => document.querySelector('#total').textContent === '0 images'")
    page.page.get_by_label("Type").select_option("")
    page.page.get_by_label("Name contains").fill("bob")
    page.page.get_by_role("button", name="Search").click()
    page.page.wait_for_function("() => document.querySelector('#total').textContent === '0 images'")
    assert "bobsecret" not in page.page.content() and "bob-secret" not in page.page.content()
    # Bob, in another tab, sees his.
    bob = open_page(server.url)
    bob.sign_in(creds.tokens["bob"])
    bob.page.wait_for_selector("#custom tbody button")  # (the lists load side by side)
    assert shown_ids(bob, "#custom") == ["img-bobsecret"]


def test_api_errors_show_code_message_and_request_id(served: Any, open_page: Any) -> None:
    server, creds = served
    page = open_page(server.url)
    page.api_errors_expected = True  # (still no script error)
    page.sign_in("zlt_notatoken", wait=False)
    page.page.wait_for_selector("#error:not([hidden])")
    assert page.text("#error-code") == "AUTHFAILURE_INVALID_AUTHORIZATION"
    assert REQUEST_ID.fullmatch(page.text("#error-request-id"))
    assert page.page.evaluate("sessionStorage.length") == 0  # a refused token is not kept
    assert page.page.locator("#app").is_hidden()

    page.sign_in(creds.tokens["alice"])
    assert page.page.locator("#error").is_hidden()
    page.page.get_by_label("Instance id").fill("ins-nothere")
    page.page.get_by_label("Image name").fill("nowhere")
    page.page.get_by_role("button", name="Create image").click()
    page.page.wait_for_selector("#error:not([hidden])")
    assert page.text("#error-code") == "INVALID_INSTANCE_NOT_FOUND"
    assert "ins-nothere" in page.text("#error-message")
    request_id = page.text("#error-request-id")
    assert REQUEST_ID.fullmatch(request_id)
    assert request_id in server.log_when(lambda text: request_id in text)  # the same id, logged


def test_the_token_lives_in_this_tab_only(served: Any, open_page: Any) -> None:
    server, creds = served
    token = creds.tokens["alice"]
    page = open_page(server.url)
    page.sign_in(token)
    assert token not in page.page.url
    assert page.context.cookies() == []
    assert page.page.evaluate("sessionStorage.getItem('vmimages.token')") == token
    assert page.page.evaluate("localStorage.length") == 0
    page.page.reload()  # the same tab stays signed in
    page.page.wait_for_selector("#images tbody tr")
    page.page.get_by_role("button", name="Sign out").click()
    assert page.page.evaluate("sessionStorage.length") == 0
    assert page.page.get_by_label("Personal access token").is_visible()
    other = page.context.new_page()  # another tab starts signed out
    other.goto(server.url + "/console")
    assert other.get_by_label("Personal access token").is_visible()
    other.close()


@pytest.mark.parametrize("width", [390, 1280])
def test_usable_by_keyboard_at_phone_and_desktop_widths(
    served: Any, open_page: Any, width: int
) -> None:
    server, creds = served
    page = open_page(server.url, width=width)
    page.page.keyboard.press("Tab")  # the first stop is the token field
    assert page.page.evaluate("document.activeElement.id") == "token"
    page.page.keyboard.type(creds.tokens["alice"])
    page.page.keyboard.press("Enter")
    page.page.wait_for_selector("#images tbody tr")
    overflow = page.page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{overflow}px wider than a {width}px screen"
    unlabelled = page.page.evaluate(
        "[...document.querySelectorAll('input, select')].filter(e => e.labels.length === 0)"
        ".map(e => e.id)"
    )
    assert unlabelled == []
    # Text and buttons keep a contrast of at least 4.5:1 (WCAG AA).
    ratios = page.page.evaluate(CONTRAST)
    assert ratios and min(ratios.values()) >= 4.5, ratios


CONTRAST = """() => {
  const rgb = (c) => c.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
  const lum = (c) => { const [r, g, b] = rgb(c).map(v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const bg = (e) => { for (; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (!c.endsWith(', 0)') && c !== 'transparent') return c; }
    return 'rgb(255, 255, 255)'; };
  const out = {};
  for (const sel of ['body', 'h1', 'label', 'button', 'button.link', '.badge.status-AVAILABLE',
                     '.badge.status-UNAVAILABLE', 'button.copy', 'button.sort', 'td', '.muted',
                     'th', '.notice', 'button:disabled']) {
    const e = document.querySelector(sel); if (!e) continue;
    const a = lum(getComputedStyle(e).color), b = lum(bg(e));
    out[sel] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  }
  return out;
}"""


def test_security_headers_and_no_script_inline(served: Any) -> None:
    server, _ = served
    for path in ("/console", "/console/console.js", "/console/console.css"):
        with urllib.request.urlopen(server.url + path, timeout=10) as response:
            headers = response.headers
            body = response.read().decode()
        policy = headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        if path == "/console":
            assert "<script src=" in body and not re.search(r"<script>|\son\w+=", body)
            assert "http://" not in body and "https://" not in body  # nothing from elsewhere


def test_without_javascript_the_token_never_reaches_a_url(browser: Any, served: Any) -> None:
    server, creds = served
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(server.url + "/console")
        field = page.get_by_label("Personal access token")
        field.fill(creds.tokens["alice"])
        field.press("Enter")
        page.wait_for_timeout(500)
        assert creds.tokens["alice"] not in page.url
        assert not [url for url in requested if creds.tokens["alice"] in url]
    finally:
        context.close()


CROSS_SITE_PAGE = """<!doctype html><title>another site</title><script>
const target = "{target}";
const done = [];
for (const [type, body] of [["text/plain", "{{}}"],
                            ["application/x-www-form-urlencoded", "a=b"],
                            ["application/json", "{{}}"]]) {{
  done.push(fetch(target + "/_vmimages/reset", {{method: "POST", mode: "no-cors",
    headers: {{"Content-Type": type}}, body}}).catch(() => null));
  done.push(fetch(target + "/_vmimages/reset", {{method: "POST",
    headers: {{"Content-Type": type}}, body}}).catch(() => null));
}}
Promise.all(done).then(() => {{ document.title = "sent"; }});
</script><form id="f" method="post" action="{target}/_vmimages/reset"
  enctype="text/plain"><input name="x" value="y"></form>"""


def test_another_site_in_the_browser_cannot_reach_the_dev_endpoints(
    browser: Any, served: Any, tmp_path: Any
) -> None:
    """A page on another origin, in the developer's own browser, tries every request a page
    can make to `serve --dev`'s reset, with and without CORS, and a form post: the custom image
    the reset would remove is still there."""
    import http.server
    import threading

    server, _ = served
    assert [i["imageId"] for i in api(server, "DescribeImages", {}, as_="bob")["images"]
            if i["imageType"] == "CUSTOM_IMAGE"] == ["img-bobsecret"]  # fmt: skip
    (tmp_path / "index.html").write_text(CROSS_SITE_PAGE.format(target=server.url))
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    other = http.server.ThreadingHTTPServer(("127.0.0.2", 0), handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"http://127.0.0.2:{other.server_address[1]}/index.html")
        page.wait_for_function("() => document.title === 'sent'")
        with page.expect_navigation():
            page.evaluate("document.getElementById('f').submit()")
    finally:
        context.close()
        other.shutdown()
    customs = [i["imageId"] for i in api(server, "DescribeImages", {}, as_="bob")["images"]
               if i["imageType"] == "CUSTOM_IMAGE"]  # fmt: skip
    assert customs == ["img-bobsecret"]
    # The same reset, as a test suite sends it, still works.
    status, _, _ = server.post(b"{}", {"Content-Type": "application/json"}, "/_vmimages/reset",
                               as_=None)  # fmt: skip
    assert status == 200


def test_ids_copy_sort_and_the_view_in_the_address(served: Any, open_page: Any) -> None:
    server, creds = served
    page = open_page(server.url)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page.sign_in(creds.tokens["alice"])
    # After sign-in the focus is on the list (set once the first list is made, just after its
    # rows are drawn: waited for, up to the page's timeout). Playwright's own check, not a
    # predicate: a polled expression is compiled in the page, which the console's CSP refuses.
    playwright_api.expect(page.page.locator("#images-title")).to_be_focused()
    first = api(server, "DescribeImages", {"pageSize": 20})["images"][0]
    row = page.page.locator("#images tbody tr").first
    assert row.locator("td.id code").text_content() == first["imageId"]
    assert f"{first['imageSize']} GB" in (row.text_content() or "")
    assert row.locator(".badge").text_content() == first["imageStatus"]  # a badge, not colour
    row.get_by_role("button", name=f"Copy image id {first['imageId']}").click()
    playwright_api.expect(row.locator("button.copy")).to_have_text("Copied")
    assert page.page.evaluate("navigator.clipboard.readText()") == first["imageId"]  # exactly
    playwright_api.expect(page.page.locator("#notice")).to_contain_text(first["imageId"])

    # Sorting by a column sorts every match, not the page shown; again, the other way.
    page.page.get_by_label("Region").select_option("de-frankfurt-9a")
    page.page.wait_for_function("() => location.search.includes('regionId=de-frankfurt-9a')")
    matches = api(server, "DescribeImages", {"regionId": "de-frankfurt-9a", "pageSize": 1000})
    by_name = sorted(matches["images"], key=lambda i: (i["imageName"].lower(), i["imageId"]))
    page.page.get_by_role("button", name="Name").click()
    page.page.wait_for_function("() => location.search.includes('sort=name.asc')")
    assert shown_ids(page) == [i["imageId"] for i in by_name[:20]]
    header = page.page.locator("#images th", has=page.page.get_by_role("button", name="Name"))
    assert header.get_attribute("aria-sort") == "ascending"
    page.page.get_by_role("button", name="Size").click()
    page.page.wait_for_function("() => location.search.includes('sort=size.desc')")
    by_size = sorted(matches["images"], key=lambda i: (-int(i["imageSize"]), i["imageId"]))
    assert shown_ids(page) == [i["imageId"] for i in by_size[:20]]

    # The view is in the address: a reload (or the link, shared) shows the same list.
    page.page.get_by_label("Per page").select_option("10")
    page.page.get_by_role("button", name="Next").click()
    page.page.wait_for_function("() => location.search.includes('page=2')")
    shown = shown_ids(page)
    address = page.page.url
    assert creds.tokens["alice"] not in address
    page.page.reload()
    page.page.wait_for_selector("#images tbody tr")
    page.page.wait_for_function(
        "() => document.querySelector('#page').textContent.startsWith('Page 2')"
    )
    assert page.page.url == address and shown_ids(page) == shown
    assert page.page.get_by_label("Region").input_value() == "de-frankfurt-9a"

    # Nothing matches: the list says so and offers to clear the filters.
    page.page.get_by_label("Name contains").fill("no-such-image-anywhere")
    page.page.get_by_role("button", name="Search").click()
    page.page.get_by_text("No image matches these filters.").wait_for()
    page.page.get_by_role("button", name="Clear the filters").click()
    page.page.wait_for_function(
        "n => document.querySelector('#total').textContent === n + ' images'",
        arg=api(server, "DescribeImages", {})["totalCount"],
    )


def test_what_an_image_allows_errors_and_confirmations_where_the_user_is(
    served: Any, open_page: Any
) -> None:
    server, creds = served
    page = open_page(server.url)
    page.api_errors_expected = True
    page.sign_in(creds.tokens["alice"])
    # A public image offers no rename and no delete.
    public = api(server, "DescribeImages", {"imageType": "PUBLIC_IMAGE"})["images"][0]
    page.page.get_by_role(
        "button", name=f"Details of {public['imageName']} ({public['imageId']})"
    ).click()
    page.page.locator("#details").wait_for(state="visible")
    assert page.page.locator("#rename-form").is_hidden()
    assert page.page.locator("#delete").is_hidden()
    assert "FRA-A" in page.text("#details-fields") or public["regionId"] != "de-frankfurt-9a"

    # Name rules as the user types, the API's own: a bad name is marked and not sent.
    name = page.page.get_by_label("Image name")
    name.fill("no spaces!")
    assert name.get_attribute("aria-invalid") == "true"
    assert page.page.locator("#c-name-rule.bad").is_visible()
    page.page.get_by_label("Instance id").fill("ins-web-1")
    sent: list[str] = []
    page.page.on("request", lambda r: sent.append(r.headers.get("x-zc-action", "")))
    page.page.get_by_role("button", name="Create image").click()
    assert "CreateImage" not in sent
    name.fill("web-ok")
    assert name.get_attribute("aria-invalid") == "false"

    # An API error is shown in the part of the page the user acted in, with the focus.
    page.page.get_by_label("Instance id").fill("ins-nothere")
    page.page.get_by_role("button", name="Create image").click()
    page.page.wait_for_selector("#error:not([hidden])")
    assert page.page.evaluate("document.activeElement.id") == "error"
    assert page.page.evaluate("document.querySelector('#custom-section #error') !== null")
    in_view = page.page.evaluate(
        "(() => { const r = document.querySelector('#error').getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= innerHeight; })()"
    )
    assert in_view

    # A change says what it did; a delete that cannot be made says why, beside the button.
    page.page.get_by_label("Instance id").fill("ins-web-1")
    page.page.get_by_role("button", name="Create image").click()
    notice = page.page.locator("#notice")
    playwright_api.expect(notice).to_contain_text("it is being built")
    assert page.page.locator("#delete").is_disabled()
    assert "cannot be deleted" in page.text("#delete-reason")
    (mine,) = api(server, "DescribeImages", {"imageType": "CUSTOM_IMAGE"})["images"]
    complete_build(server, mine["imageId"])
    page.page.wait_for_function("() => !document.querySelector('#delete').disabled")
    assert page.page.locator("#delete-reason").is_hidden()
    page.page.get_by_label("New name").fill("web-new")
    page.page.get_by_role("button", name="Rename").click()
    playwright_api.expect(notice).to_have_text(f"Renamed {mine['imageId']} to web-new.")
    page.page.get_by_role("button", name="Delete image").click()
    page.page.locator("dialog#confirm").get_by_role("button", name="Delete").click()
    playwright_api.expect(notice).to_have_text(f"Deleted {mine['imageId']} (web-new).")


@pytest.mark.parametrize("width", [1400, 390])
def test_screenshots(served: Any, open_page: Any, width: int) -> None:
    """docs/console.md's pictures: written there when VMIMAGES_SCREENSHOTS=1, else to a
    temporary file (the page is drawn either way)."""
    server, creds = served
    page = open_page(server.url, width=width)
    page.sign_in(creds.tokens["alice"])
    page.page.get_by_label("Region").select_option("de-frankfurt-9a")
    page.page.wait_for_function("() => location.search.includes('regionId')")
    target = (
        Path(__file__).parent.parent / "docs" / f"console-{width}.png"
        if os.environ.get("VMIMAGES_SCREENSHOTS")
        else Path(tempfile.mkdtemp()) / "c.png"
    )
    page.page.screenshot(path=str(target), full_page=width < 1000)
    assert target.stat().st_size > 10_000
