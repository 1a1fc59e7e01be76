"""Helpers for tests that run real programs: free ports, run directories, HTTP clients."""

from __future__ import annotations

import http.client
import os
import random
import re
import shutil
import ssl
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import pytest

from strata.stack.ports import port_is_free
from strata.stack.postgres import find_postgres_bindir
from strata.stack.program import find_program
from strata.stack.stack import OFFSETS
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
    shutil.rmtree(path, ignore_errors=True)


class Client:
    """A tiny HTTP client with a cookie jar, for requests through the stack."""

    def __init__(self, host: str, port: int, tls: bool = False):
        self.host, self.port, self.tls = host, port, tls
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
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=30, context=context)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
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

    def login(self, username: str, password: str = "newsroom") -> None:
        page = self.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = self.request(
            "POST",
            "/accounts/login/",
            body=urlencode(
                {"username": username, "password": password, "csrfmiddlewaretoken": token}
            ).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://{self.host}:{self.port}/accounts/login/",
            },
        )
        assert answer.status == 302, (answer.status, answer.text[:500])
        assert "sessionid" in self.cookies
