"""Two readers and a visitor in a real browser: each sees only themselves, on both paths.

Through the public address Varnish assembles the personal holes by ESI. Straight from the
app pool (what a cache without ESI gets) the page carries placeholders that the browser's
script fills with a fetch. Either way a shared page greets Ann as Ann, Bob as Bob, and a
visitor as nobody. Screenshots go to ``STRATA_ARTIFACTS`` (``/tmp/strata-artifacts/``).
"""

from __future__ import annotations

import re
import uuid

import pytest

from strata.httpclient import csrf_token
from tests.scenarios.security.conftest import artifacts_dir
from tests.scenarios.security.helpers import (
    READER_PASSWORD,
    cached_in_varnish,
    greeted,
    linked_paths,
    through_lb,
    unique,
)

pytestmark = [
    pytest.mark.stack,
    # pytest-playwright 0.10's base_url fixture on pytest 9; harmless (NOTES, Part 2).
    pytest.mark.filterwarnings("ignore:Session-scoped fixtures defined as instance methods"),
]

READERS = ("reader11", "reader12")
PATHS = ("varnish-esi", "app-pool-browser-fetch")


def expect(target):
    """Playwright's waiting assertions, imported late: without Playwright the tests skip."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def base_url(stack, path_kind: str) -> str:
    """The site's address on ``path_kind``: the load balancer, or the app pool behind Varnish."""
    port = stack.config.port if path_kind == "varnish-esi" else stack.config.port_of("pool")
    return f"http://{stack.config.host}:{port}"


def log_in(context, stack, username: str, base: str | None = None):
    """A page of ``context`` logged in as ``username`` through the site's login form.

    By default through the app pool (the public address has a test of its own). The
    session cookie is the host's, so the page is logged in on every port of 127.0.0.1,
    the public one included.
    """
    base = base or base_url(stack, "app-pool-browser-fetch")
    page = context.new_page()
    page.goto(base + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", READER_PASSWORD)
    with page.expect_response(lambda answer: answer.request.method == "POST") as posted:
        page.click("form.login button[type=submit]")
    assert posted.value.status == 302, f"login refused: {posted.value.status}"
    page.wait_for_url(base + "/")
    assert any(cookie["name"] == "sessionid" for cookie in context.cookies())
    return page


def screenshot(page, request, who: str) -> None:
    """Keep what ``who`` saw as a test artifact, and say where."""
    name = re.sub(r"[^A-Za-z0-9_.]+", "-", f"{request.node.name}-{who}").strip("-")
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")


@pytest.fixture(scope="module")
def comments(stack) -> dict[str, str]:
    """One fresh comment by each reader, on one article (words only that reader wrote)."""
    article = linked_paths(stack, "articles")[4]
    words = {}
    for name in READERS:
        client = through_lb(stack)
        client.login(name)
        page = client.get(article)
        token = csrf_token(page.text)
        words[name] = f"{name} wrote {uuid.uuid4().hex}"
        posted = client.post_form(article, {"body": words[name], "csrfmiddlewaretoken": token})
        assert posted.status == 302, posted.text[:300]
    return words


@pytest.mark.parametrize("path_kind", PATHS)
def test_each_reader_sees_only_their_own_hello_box_and_a_visitor_sees_none(
    stack, new_browser_context, request, path_kind
):
    base = base_url(stack, path_kind)
    article = linked_paths(stack, "articles")[5]
    tag = linked_paths(stack, "tags")[2]
    readers = {name: log_in(new_browser_context(), stack, name) for name in READERS}
    visitor = new_browser_context().new_page()

    for path in ("/", article, tag):
        for name, page in readers.items():
            answer = page.goto(base + path)
            assert answer.status == 200, path
            html = answer.text()
            if path_kind == "varnish-esi":
                # Varnish filled the holes before the page left the stack.
                assert greeted(html) == [name], path
                assert "<strata-hole" not in html, path
            else:
                # No ESI ran: the page names nobody until the browser fetches the hole.
                assert greeted(html) == [], path
                assert '<strata-hole data-src="/-/hole/' in html, path
            expect(page.locator("#who")).to_have_text(name)
            expect(page.locator("#hello-box a", has_text="my comments")).to_have_attribute(
                "href", "/me/comments/"
            )
            other = next(n for n in READERS if n != name)
            assert other not in page.locator("#hello-box").inner_text()
            assert page.locator("#who").count() == 1
        answer = visitor.goto(base + path)
        assert answer.status == 200, path
        expect(visitor.locator("#hello-box")).to_have_text("Log in")
        expect(visitor.locator("#who")).to_have_count(0)
        expect(visitor.locator('a[href="/me/comments/"]')).to_have_count(0)

    for name, page in readers.items():
        screenshot(page, request, name)
    screenshot(visitor, request, "visitor")


@pytest.mark.parametrize("path_kind", PATHS)
def test_my_comments_lists_only_the_readers_own_comments(
    stack, new_browser_context, request, comments, path_kind
):
    base = base_url(stack, path_kind)
    for name in READERS:
        page = log_in(new_browser_context(), stack, name)
        page.goto(base + "/")
        page.locator("#hello-box a", has_text="my comments").click()
        page.wait_for_url(base + "/me/comments/")
        expect(page.locator("h1")).to_have_text("My comments")
        expect(page.locator("#who")).to_have_text(name)
        expect(page.locator(".comment", has_text=comments[name])).to_have_count(1)
        other = next(n for n in READERS if n != name)
        assert comments[other] not in page.content()
        screenshot(page, request, name)

    visitor = new_browser_context().new_page()
    visitor.goto(base + "/me/comments/")
    expect(visitor).to_have_url(re.compile(r"/accounts/login/\?next=/me/comments/$"))
    assert not any(words in visitor.content() for words in comments.values())


def test_a_page_varnish_shares_with_visitors_greets_each_reader_by_their_own_name(
    stack, new_browser_context, request
):
    base = base_url(stack, "varnish-esi")
    path = f"{linked_paths(stack, 'tags')[3]}?{unique('browser')}"
    shared = cached_in_varnish(through_lb(stack), path)
    assert greeted(shared.text) == []

    visitor = new_browser_context().new_page()
    answer = visitor.goto(base + path)
    assert answer.headers["x-cache"] == "HIT"
    assert answer.text() == shared.text  # the visitor's browser got the shared copy
    expect(visitor.locator("#hello-box")).to_have_text("Log in")
    screenshot(visitor, request, "visitor")

    for name in READERS:
        page = log_in(new_browser_context(), stack, name)
        answer = page.goto(base + path)
        assert answer.headers["x-cache"] == "PASS"  # a reader never gets a shared copy
        expect(page.locator("#who")).to_have_text(name)
        assert greeted(answer.text()) == [name]
        screenshot(page, request, name)

    after = through_lb(stack).get(path)
    assert after.getheader("X-Cache") == "HIT"
    assert after.body == shared.body  # the readers' visits left the shared copy as it was


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_reader_logs_in_with_a_browser_through_the_public_address(
    stack, new_browser_context, scheme
):
    base = (stack.url if scheme == "http" else stack.tls_url).rstrip("/")
    context = new_browser_context(ignore_https_errors=True)
    page = log_in(context, stack, READERS[0], base=base)
    expect(page.locator("#who")).to_have_text(READERS[0])
