"""Helpers for tests that run real programs: free ports, run directories, HTTP clients."""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import re
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest

from strata.stack.ports import port_is_free
from strata.stack.postgres import find_postgres_bindir
from strata.stack.program import find_program
from strata.stack.stack import OFFSETS, Stack, StackConfig, demo_project
from strata.stack.varnish import xkey_available

REPO = Path(__file__).resolve().parents[1]

SMALL_SEED = [
    "seed_newsroom",
    "--if-empty",
    "--articles",
    "200",
    "--comments",
    "1500",
    "--authors",
    "20",
    "--tags",
    "12",
    "--readers",
    "20",
]


@contextlib.contextmanager
def demo_stack(**options) -> Iterator[Stack]:
    """The demo on a stack of its own: a small seed, free ports, stopped and removed after.

    ``options`` go to :class:`StackConfig` (two app servers of two workers by default).
    """
    require_real_stack()
    run_dir = make_run_dir()
    config = StackConfig(
        run_dir=run_dir,
        project=demo_project(),
        port=free_base_port(),
        setup_commands=[["migrate", "--noinput"], SMALL_SEED],
        **{"app_servers": 2, "workers": 2, "edge_ttl": 300, **options},
    )
    stack = Stack(config)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        remove_run_dir(run_dir)


def missing_programs() -> list[str]:
    """System programs the real stack needs that this machine lacks."""
    missing = [name for name in ("varnishd", "haproxy", "redis-server") if not find_program(name)]
    if find_program("varnishd") and not xkey_available():
        missing.append("varnish-modules (xkey)")
    if find_postgres_bindir() is None:
        missing.append("postgresql")
    return missing


def require_real_stack() -> None:
    """Skip locally, fail in CI, when the real programs are not installed."""
    missing = missing_programs()
    if missing:
        message = f"not installed: {', '.join(missing)} (scripts/bootstrap.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def free_base_port(app_servers: int = 4) -> int:
    """A base port whose whole block of stack ports is free right now."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10000, 30000, 10)
        ports = [base + offset for offset in OFFSETS.values()]
        ports += [base + OFFSETS["app"] + i for i in range(app_servers)]
        if all(port_is_free("127.0.0.1", p) for p in ports):
            return base
    raise RuntimeError("no free block of ports")


def make_run_dir() -> Path:
    """A run directory that the postgres user can traverse (pytest's tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="strata-test-", dir="/tmp"))
    path.chmod(0o755)
    return path


def remove_run_dir(path: Path) -> None:
    """Remove a test's run directory (kept for a look when STRATA_KEEP_RUN_DIR is set)."""
    if os.environ.get("STRATA_KEEP_RUN_DIR"):
        print(f"kept the run directory {path}")
        return
    shutil.rmtree(path, ignore_errors=True)


class Client:
    """A tiny HTTP client with a cookie jar, for requests through the stack."""

    def __init__(self, host: str, port: int, tls: bool = False, timeout: float = 30.0):
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ):
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=context
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        all_headers = dict(headers or {})
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        response.body = data
        response.text = data.decode("utf-8", "replace")
        return response

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def post_form(self, path: str, fields: dict[str, str] | list[tuple[str, str]]):
        """POST url-encoded ``fields`` to ``path`` as a browser would (with a Referer)."""
        return self.request(
            "POST",
            path,
            body=urlencode(fields).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://{self.host}:{self.port}{path}",
            },
        )

    def login(self, username: str, password: str = "newsroom") -> None:
        page = self.get("/accounts/login/")
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert found, (page.status, page.getheaders(), page.text[:500])
        token = found.group(1)
        answer = self.post_form(
            "/accounts/login/",
            {"username": username, "password": password, "csrfmiddlewaretoken": token},
        )
        assert answer.status == 302, (answer.status, answer.text[:500])
        assert "sessionid" in self.cookies


class _FormReader(HTMLParser):
    """The fields of one form, as a browser would submit them (no button)."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == self.form_id:
            self.inside = True
        if not self.inside:
            return
        name = attrs.get("name")
        if tag == "input" and name:
            kind = attrs.get("type", "text")
            if kind in ("submit", "button", "image", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in attrs:
                return
            self.fields.append((name, attrs.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attrs:
            self.fields.append((self._select, attrs.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_endtag(self, tag):
        if tag == "form" and self.inside:
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.fields.append((self._textarea, "".join(self._text).lstrip("\n")))
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self._text.append(data)


def form_fields(html: str, form_id: str) -> list[tuple[str, str]]:
    """The name/value pairs a browser would post for the form with ``form_id``."""
    reader = _FormReader(form_id)
    reader.feed(html)
    return reader.fields


def submit_form(
    client: Client, path: str, form_id: str, changes: dict[str, str | list[str]], extra=None
):
    """GET ``path``, change some fields of its form, POST it back like a browser would."""
    page = client.get(path)
    assert page.status == 200, (page.status, page.text[:300])
    fields = [(k, v) for k, v in form_fields(page.text, form_id) if k not in changes]
    for name, value in changes.items():
        values = value if isinstance(value, list) else [value]
        fields += [(name, v) for v in values]
    fields += list((extra or {}).items())
    return client.post_form(path, fields)
