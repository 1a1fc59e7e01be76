"""The browser-like client that ``strata check``, the tests and the benchmarks share."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from strata.httpclient import Session, csrf_token, form_fields
from strata.stack.ports import free_port, port_is_free

PAGE = """
<form id="comment" method="post">
  <input type="hidden" name="csrfmiddlewaretoken" value="first-token">
  <textarea name="body">
kept</textarea>
  <input type="checkbox" name="notify">
  <button type="submit" name="go">Post</button>
</form>
<form id="other"><input type="hidden" name="csrfmiddlewaretoken" value="second-token"></form>
"""


def test_the_csrf_token_is_the_first_forms_and_none_without_one():
    assert csrf_token(PAGE) == "first-token"
    assert csrf_token("<form></form>") is None


def test_form_fields_are_what_a_browser_posts_for_the_form_with_that_id():
    assert form_fields(PAGE, "comment") == [
        ("csrfmiddlewaretoken", "first-token"),
        ("body", "kept"),
    ]
    assert form_fields(PAGE, "missing") == []


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = str(self.client_address[1]).encode()  # the client's port: one per connection
        self.send_response(200, "Fine")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", "seen=yes; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_a_session_keeps_one_connection_and_the_cookies_it_was_given(server):
    session = Session("127.0.0.1", server.server_port)
    first, second = session.get("/"), session.get("/")
    session.close()
    assert first.text == second.text
    assert session.cookies == {"seen": "yes"}
    assert (first.status, first.reason, first.getheader("SET-COOKIE")) == (
        200,
        "Fine",
        "seen=yes; Path=/",
    )


def test_without_keep_alive_every_request_has_a_connection_of_its_own(server):
    session = Session("127.0.0.1", server.server_port, keep_alive=False)
    assert session.get("/").text != session.get("/").text


def test_a_free_port_is_bindable_and_joins_the_ports_already_taken():
    taken: set[int] = set()
    first, second = free_port(taken), free_port(taken)
    assert first != second and taken == {first, second}
    assert port_is_free("127.0.0.1", first)
