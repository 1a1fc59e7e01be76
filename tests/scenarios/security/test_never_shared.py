"""Responses that no shared layer may store, and the holes that are personal by design.

Through the real stack: a response that sets a cookie, the answer to a request with
``Authorization`` or a session cookie, a ``private`` page and the personal holes. Each is
requested first, so that a cache that kept it would hand it to the next one; the next
reader must instead get a fresh answer of their own (docs/design.md, "Shared or personal").

No view of the demo answers ``Vary: *`` or an upper-case ``Cache-Control``. The
accelerator's own rule for those is checked against the real VCL in a real varnishd, in
front of an origin that sends each header (the last class).
"""

from __future__ import annotations

import itertools
import re
import shutil
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from strata.stack.ports import free_port
from strata.stack.program import find_program
from strata.stack.varnish import Backend, Varnish
from tests.helpers import Client, require_real_stack
from tests.scenarios.security.helpers import (
    greeted,
    is_shared_hit,
    past_varnish,
    through_lb,
    unique,
)

pytestmark = pytest.mark.stack

LAYERS = {
    "through-the-load-balancer": through_lb,
    "app-pool-page-cache": past_varnish,
}
BASIC = "Basic cmVhZGVyMTM6bmV3c3Jvb20="  # reader13:newsroom


def logged_in(layer, stack, username: str) -> Client:
    client = layer(stack)
    client.login(username)
    return client


def csrf_cookie(answer) -> str | None:
    for header, value in answer.getheaders():
        if header.lower() == "set-cookie" and value.startswith("csrftoken="):
            return value.split(";", 1)[0]
    return None


def never_stored(answer) -> None:
    """``answer`` came from the view, and told every cache to keep it to itself."""
    assert not is_shared_hit(answer), answer.getheaders()
    cache_control = answer.getheader("Cache-Control") or ""
    assert "private" in cache_control or "no-store" in cache_control, cache_control


@pytest.mark.parametrize("layer", LAYERS.values(), ids=LAYERS.keys())
def test_a_page_that_sets_a_cookie_is_never_served_to_the_next_reader(stack, layer):
    path = f"/accounts/login/?{unique('cookie')}"
    first = layer(stack).get(path)
    assert first.status == 200
    never_stored(first)
    cookies = {csrf_cookie(first)}
    assert cookies != {None}
    for _ in range(2):
        following = layer(stack).get(path)  # a new reader, no cookies
        never_stored(following)
        assert following.getheader("X-Cache") in (None, "PASS")
        assert following.getheader("X-Strata").startswith("bypass: ")
        cookies.add(csrf_cookie(following))
    assert None not in cookies and len(cookies) == 3  # each reader got a token of their own


@pytest.mark.parametrize("layer", LAYERS.values(), ids=LAYERS.keys())
def test_an_answer_to_a_request_with_authorization_is_never_stored(stack, layer):
    path = f"/?{unique('authorization')}"
    for _ in range(2):
        answer = layer(stack).get(path, headers={"Authorization": BASIC})
        never_stored(answer)
        assert answer.getheader("X-Strata") == "bypass: authorization header"
        assert answer.getheader("X-Cache") in (None, "PASS")
    anonymous = layer(stack).get(path)
    assert anonymous.getheader("X-Strata") == "page-miss"  # nothing was kept for it
    assert anonymous.getheader("X-Cache") in (None, "MISS")


def test_a_logged_in_readers_page_is_never_served_from_varnish_nor_to_anyone_else(stack):
    path = f"/?{unique('session')}"
    ann, bob = (logged_in(through_lb, stack, name) for name in ("reader13", "reader14"))
    for _ in range(2):
        answer = ann.get(path)
        assert answer.getheader("X-Cache") == "PASS"
        assert greeted(answer.text) == ["reader13"]
    nobody = through_lb(stack).get(path)
    assert nobody.getheader("X-Cache") == "MISS"
    assert nobody.getheader("X-Strata") == "page-miss"
    assert greeted(nobody.text) == [] and "reader13" not in nobody.text
    answer = bob.get(path)
    assert answer.getheader("X-Cache") == "PASS"
    assert greeted(answer.text) == ["reader14"] and "reader13" not in answer.text


def test_the_page_cache_shares_a_logged_in_page_only_with_its_holes_still_open(stack):
    path = f"/?{unique('session')}"
    ann, bob = (logged_in(past_varnish, stack, name) for name in ("reader13", "reader14"))
    first = ann.get(path)
    assert first.getheader("X-Strata") == "page-miss"
    assert greeted(first.text) == [] and "<strata-hole" in first.text
    following = bob.get(path)
    assert following.getheader("X-Strata") == "page-hit"
    assert following.body == first.body  # the same page, nobody's name in it
    assert "reader13" not in following.text
    nobody = past_varnish(stack).get(path)
    assert nobody.getheader("X-Strata") == "page-miss"  # visitors have their own variant
    assert "reader13" not in nobody.text and "<strata-hole" not in nobody.text


@pytest.mark.parametrize("layer", LAYERS.values(), ids=LAYERS.keys())
def test_a_private_page_is_never_stored_and_each_reader_gets_their_own(stack, layer):
    path = f"/me/comments/?{unique('private')}"
    ann, bob = (logged_in(layer, stack, name) for name in ("reader15", "reader16"))
    for _ in range(2):
        answer = ann.get(path)
        assert answer.status == 200
        never_stored(answer)
        assert "private" in answer.getheader("Cache-Control")
        assert answer.getheader("X-Strata").startswith("bypass: user read in")
        assert answer.getheader("X-Cache") in (None, "PASS")
        assert "<h1>My comments</h1>" in answer.text
    nobody = layer(stack).get(path)
    assert nobody.status == 302
    assert nobody.getheader("Location").startswith("/accounts/login/?next=/me/comments/")
    never_stored(nobody)
    answer = bob.get(path)
    never_stored(answer)
    assert "reader15" not in answer.text
    if layer is through_lb:
        assert greeted(answer.text) == ["reader16"]


def test_a_personal_hole_is_never_a_shared_hit_for_visitors_or_readers(stack):
    page = past_varnish(stack).get("/", headers={"Cookie": "csrftoken=visitor"})
    found = re.findall(r'<strata-hole data-src="(/-/hole/[^"]+/)"', page.text)
    assert len(found) == 1, found  # the hello box
    hole = found[0]
    readers = {name: logged_in(through_lb, stack, name) for name in ("reader17", "reader18")}
    for name in ("reader17", None, "reader18", None, "reader17", "reader18"):
        client = readers[name] if name else through_lb(stack)
        answer = client.get(hole)
        assert answer.status == 200
        assert answer.getheader("X-Cache") == "PASS"
        assert answer.getheader("X-Strata") == "bypass: personal hole"
        cache_control = answer.getheader("Cache-Control")
        assert "private" in cache_control and "no-store" in cache_control
        assert greeted(answer.text) == ([name] if name else [])
        if name is None:
            assert 'href="/accounts/login/"' in answer.text
    direct = past_varnish(stack).get(hole)
    assert direct.getheader("X-Strata") == "bypass: personal hole"
    assert "no-store" in direct.getheader("Cache-Control")


# -- the accelerator's own rule, against an origin that sends any header ---------------


class _Origin(BaseHTTPRequestHandler):
    """Answers ``/?h=Name: value&h=...`` with those headers and a body never seen before."""

    answers = itertools.count()

    def do_GET(self):  # noqa: N802 (http.server's name)
        headers = [v for k, v in parse_qsl(urlsplit(self.path).query) if k == "h"]
        body = f"<p>answer {next(self.answers)}</p>".encode()
        self.send_response(200)
        for line in headers:
            name, _, value = line.partition(":")
            self.send_header(name, value.strip())
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def accelerator_before_an_origin():
    """Strata's VCL in a real varnishd, in front of an origin that sends any header."""
    require_real_stack()
    origin = ThreadingHTTPServer(("127.0.0.1", free_port()), _Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    run_dir = Path(tempfile.mkdtemp(prefix="strata-origin-", dir="/tmp"))
    run_dir.chmod(0o755)
    (run_dir / "logs").mkdir()
    varnish = Varnish(
        "varnish-origin",
        run_dir,
        "127.0.0.1",
        free_port(),
        find_program("varnishd"),
        backends=[Backend("origin", "127.0.0.1", origin.server_port)],
        pool="haproxy",
        health_path="/health/",
        purge_secret="origin-test-secret-0123456789",
        purger_addresses=["127.0.0.1"],
        allowed_hosts=["127.0.0.1"],
    )
    try:
        varnish.start()
        varnish.wait_ready()
        # A new client for every request: no cookie the origin set is ever sent back.
        yield lambda: Client(varnish.host, varnish.port)
    finally:
        varnish.stop()
        origin.shutdown()
        origin.server_close()
        shutil.rmtree(run_dir, ignore_errors=True)


def _stored(new_client, headers: list[str]) -> bool:
    """True when Varnish served the second request for this origin answer from its copy."""
    path = "/?" + urlencode([("h", line) for line in headers] + [("n", unique("n"))])
    first, second = new_client().get(path), new_client().get(path)
    stored = second.getheader("X-Cache") == "HIT"
    assert stored == (first.body == second.body), (first.body, second.body)
    return stored


SHARED = "Cache-Control: public, s-maxage=60"
NOT_STORED = {
    "private": ["Cache-Control: private, s-maxage=60"],
    "no-store": ["Cache-Control: public, no-store, s-maxage=60"],
    "no-cache": ["Cache-Control: public, no-cache, s-maxage=60"],
    "set-cookie": [SHARED, "Set-Cookie: sessionid=abc; Path=/"],
    "vary-star": [SHARED, "Vary: *"],
    "no-cache-control": [],
    "max-age-only": ["Cache-Control: max-age=60"],
    "private-in-a-second-header": [SHARED, "Cache-Control: private"],
}
OTHER_SPELLINGS = {
    # RFC 9111 5.2: cache directives are compared case-insensitively.
    "private-capitalised": ["Cache-Control: Private, s-maxage=60"],
    "no-store-capitalised": ["Cache-Control: public, No-Store, s-maxage=60"],
    # RFC 9111 4.1: a Vary with a member "*" always fails to match.
    "vary-star-among-others": [SHARED, "Vary: Accept-Encoding, *"],
}


class TestTheAcceleratorStoresOnlyWhatIsMarkedShared:
    def test_a_public_answer_with_s_maxage_is_stored(self, accelerator_before_an_origin):
        assert _stored(accelerator_before_an_origin, [SHARED])

    @pytest.mark.parametrize("headers", NOT_STORED.values(), ids=NOT_STORED.keys())
    def test_an_answer_marked_personal_is_never_stored(self, accelerator_before_an_origin, headers):
        assert not _stored(accelerator_before_an_origin, headers)

    @pytest.mark.parametrize("headers", OTHER_SPELLINGS.values(), ids=OTHER_SPELLINGS.keys())
    def test_an_answer_marked_personal_in_other_spellings_is_never_stored(
        self, accelerator_before_an_origin, headers
    ):
        assert not _stored(accelerator_before_an_origin, headers)
