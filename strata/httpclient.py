"""A small HTTP client that behaves like a browser: one kept-alive connection, a cookie
jar, the fields of an HTML form as a browser would post them, and its CSRF token.

``strata check`` sends its traffic with it; the tests and the benchmark scripts read forms
and CSRF tokens with the same functions.
"""

from __future__ import annotations

import html as html_lib
import http.client
import re
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

__all__ = [
    "Session",
    "Answer",
    "Form",
    "find_form",
    "form_fields",
    "csrf_token",
    "fill_holes",
    "IDLE_RECONNECT",
]

IDLE_RECONNECT = 4.0
"""A connection idle this long is replaced before the next request: the load balancer
closes idle keep-alive connections (HAProxy ``timeout http-keep-alive 10s``, Varnish
``timeout_idle`` 5 s), and a POST sent on a connection that the server is closing cannot
safely be sent again."""


@dataclass
class Answer:
    """A response, read whole."""

    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    location: str | None = None
    raw_headers: list[tuple[str, str]] = field(default_factory=list)  # as sent, in order
    reason: str = ""  # the status line's reason phrase (Varnish's purge answer says "Purged N")

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def getheader(self, name: str, default: str | None = None) -> str | None:
        """The header ``name`` (any case), repeated values joined with ", "; else ``default``."""
        return self.headers.get(name.lower(), default)

    def getheaders(self) -> list[tuple[str, str]]:
        """Every header as sent: (name, value) pairs in order."""
        return list(self.raw_headers)


class Session:
    """Requests to one host and port with cookies, over one kept-alive connection.

    ``keep_alive=False`` opens a connection per request (threads may then share the
    session); ``tls_context`` speaks HTTPS with it.
    """

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float = 40.0,
        host_header: str | None = None,
        *,
        keep_alive: bool = True,
        tls_context: ssl.SSLContext | None = None,
    ):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.host_header = host_header
        self.keep_alive = keep_alive
        self.tls_context = tls_context
        self.cookies: dict[str, str] = {}
        self._connection: http.client.HTTPConnection | None = None
        self._last_used = 0.0

    def close(self) -> None:
        """Close the connection; the next request opens a new one."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _new_connection(self) -> http.client.HTTPConnection:
        if self.tls_context is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self.tls_context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _connect(self) -> http.client.HTTPConnection:
        # Without keep-alive each request has a connection of its own, so that threads
        # may share the session.
        if not self.keep_alive:
            return self._new_connection()
        idle = time.monotonic() - self._last_used
        if self._connection is not None and idle > IDLE_RECONNECT:
            self.close()
        if self._connection is None:
            self._connection = self._new_connection()
        return self._connection

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        if connection is self._connection:
            self._connection = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request and read the whole answer; raises OSError or HTTPException.

        A GET that fails on a reused connection before any answer (the server closed it
        while idle) is sent once more on a fresh one; a POST never is.
        """
        all_headers = {}
        if self.host_header:
            all_headers["Host"] = self.host_header
        all_headers.update(headers or {})
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (0, 1):
            reused = self.keep_alive and self._connection is not None
            connection = self._connect()
            try:
                connection.request(method, path, body=body, headers=all_headers)
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._discard(connection)
                if attempt == 0 and reused and method in ("GET", "HEAD"):
                    continue
                raise
            except (OSError, http.client.HTTPException):
                self._discard(connection)
                raise
            break
        self._last_used = time.monotonic()
        headers_out: dict[str, str] = {}
        for name, value in response.getheaders():
            lower = name.lower()
            if lower == "set-cookie":
                cookie, _, rest = value.partition("=")
                self.cookies[cookie.strip()] = rest.split(";", 1)[0]
            headers_out[lower] = f"{headers_out[lower]}, {value}" if lower in headers_out else value
        if response.will_close or not self.keep_alive:
            self._discard(connection)
        raw = response.getheaders()
        location = response.getheader("Location")
        return Answer(response.status, headers_out, data, location, raw, response.reason)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        """GET ``path``."""
        return self.request("GET", path, headers=headers)

    def post_form(self, path: str, fields: Mapping[str, str] | Sequence[tuple[str, str]]) -> Answer:
        """POST ``fields`` url-encoded, as a browser would (with a Referer)."""
        return self.request(
            "POST",
            path,
            body=urlencode(fields).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://{self.host}:{self.port}{path}",
            },
        )


def probe_socket(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Form:
    """A form found in a page: where it posts, and its fields as a browser sends them."""

    action: str
    fields: list[tuple[str, str]]
    has_password: bool = False

    def submit(
        self, changes: dict[str, str], extra: dict[str, str] | None = None
    ) -> list[tuple[str, str]]:
        """The fields with ``changes`` applied and ``extra`` added (a submit button's name)."""
        out = [(k, v) for k, v in self.fields if k not in changes]
        out += list(changes.items())
        out += list((extra or {}).items())
        return out


class _Forms(HTMLParser):
    """Every form of a page, with what a browser would submit (no buttons)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._current: dict | None = None
        self._select: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._current = {
                "id": attributes.get("id", ""),
                "classes": attributes.get("class", "").split(),
                "action": attributes.get("action"),
                "fields": [],
                "password": False,
            }
            self.forms.append(self._current)
            return
        if self._current is None:
            return
        name = attributes.get("name")
        fields = self._current["fields"]
        if tag == "input" and name is not None:
            kind = attributes.get("type", "text").lower()
            if kind == "password":
                self._current["password"] = True
            if kind in ("submit", "button", "image", "file", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in attributes:
                return
            fields.append((name, attributes.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and name is not None:
            self._select = name
        elif tag == "option" and self._select and "selected" in attributes:
            fields.append((self._select, attributes.get("value", "")))
        elif tag == "textarea" and name is not None:
            self._textarea, self._text = name, []

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            if self._current is not None:
                text = "".join(self._text)
                # Browsers drop one newline right after <textarea>.
                self._current["fields"].append(
                    (self._textarea, text[1:] if text.startswith("\n") else text)
                )
            self._textarea = None

    def handle_data(self, data):
        if self._textarea is not None:
            self._text.append(data)


def find_form(html: str, page_path: str, selector: str | None) -> Form | None:
    """The form ``selector`` picks (``#id``, ``.class``, ``form`` = the first; None = the
    first with a password field) in ``html`` served at ``page_path``."""
    parser = _Forms()
    parser.feed(html)
    parser.close()
    for form in parser.forms:
        if selector is None:
            chosen = form["password"]
        elif selector == "form":
            chosen = True
        elif selector.startswith("#"):
            chosen = form["id"] == selector[1:]
        else:
            chosen = selector[1:] in form["classes"]
        if chosen:
            action = form["action"]
            target = urljoin(page_path, action) if action else page_path
            parts = urlsplit(target)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            return Form(path or page_path, form["fields"], form["password"])
    return None


def form_fields(html: str, form_id: str) -> list[tuple[str, str]]:
    """The name/value pairs a browser would post for the form ``#form_id`` (none if absent)."""
    form = find_form(html, "/", f"#{form_id}")
    return form.fields if form is not None else []


_CSRF_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def csrf_token(html: str) -> str | None:
    """The value of the first ``csrfmiddlewaretoken`` field in ``html``, None if it has none."""
    found = _CSRF_TOKEN.search(html)
    return found.group(1) if found else None


_HOLE = re.compile(r'<strata-hole data-src="([^"]+)"></strata-hole>')


def fill_holes(session: Session, page: str) -> str:
    """``page`` with Strata's unfilled personal holes filled as a browser's script would.

    Behind Varnish, ESI fills the holes (a form's CSRF token among them); on the path
    without it (the accelerator down, the load balancer's backup to the app servers) the
    page carries ``<strata-hole data-src=...>`` placeholders that a script fetches with
    the user's cookies. A hole that cannot be fetched is left as it is.
    """

    def one(match: re.Match[str]) -> str:
        try:
            answer = session.get(html_lib.unescape(match.group(1)))
        except (OSError, http.client.HTTPException):
            return match.group(0)
        return answer.text if answer.status == 200 else match.group(0)

    return _HOLE.sub(one, page) if "<strata-hole" in page else page
