"""Varnish: the web accelerator, with the xkey vmod for tag purges."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..conf import default
from .errors import StackError
from .probes import http_get
from .program import Program, program_version
from .render import write_config

__all__ = ["Varnish", "Backend", "varnish_counters", "xkey_available"]


@dataclass
class Backend:
    """An address Varnish fetches from."""

    name: str
    host: str
    port: int


def xkey_available() -> bool:
    """True when the xkey vmod (Debian's varnish-modules) is installed."""
    return any(
        Path(p).exists()
        for p in (
            "/usr/lib/x86_64-linux-gnu/varnish/vmods/libvmod_xkey.so",
            "/usr/lib/aarch64-linux-gnu/varnish/vmods/libvmod_xkey.so",
            "/usr/lib/varnish/vmods/libvmod_xkey.so",
        )
    ) or bool(list(Path("/usr/lib").glob("*/varnish/vmods/libvmod_xkey.so")))


def varnish_counters(work_dir: Path | str, names: list[str]) -> dict[str, int]:
    """The ``MAIN.<name>`` counters of the varnishd whose ``-n`` is ``work_dir``, read with
    varnishstat (0 for a counter it does not report).

    Raises :class:`StackError` when varnishstat cannot read them (varnishd not running).
    """
    command = ["varnishstat", "-n", str(work_dir), "-1", "-j"]
    command += [arg for name in names for arg in ("-f", f"MAIN.{name}")]
    out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    try:
        counters = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise StackError(
            "varnish", f"varnishstat -n {work_dir}: {out.stderr.strip() or 'no counters'}"
        ) from None
    counters = counters.get("counters", {})
    return {name: int(counters.get(f"MAIN.{name}", {}).get("value", 0)) for name in names}


def ignored_parameters_regex(patterns) -> str:
    """A regex alternation of query parameter names (``utm_*`` ends a prefix), for the VCL."""
    parts = []
    for pattern in patterns:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+\*?", pattern):
            continue  # only plain names can go into the VCL safely
        parts.append(
            re.escape(pattern[:-1]) + "[^=&]*" if pattern.endswith("*") else re.escape(pattern)
        )
    return "|".join(parts)


def _parse_version(text: str) -> str:
    """The version in ``varnishd -V`` output; '?' when it names none."""
    match = re.search(r"varnish-([\d.]+)", text)
    return match.group(1) if match else "?"


class Varnish(Program):
    """One varnishd in the foreground, its VCL generated from the template."""

    layer = "accelerator"
    implementation = "Varnish"

    def __init__(
        self,
        name,
        run_dir,
        host,
        port,
        binary: str,
        *,
        backends: list[Backend],
        pool: str,
        health_path: str,
        purge_secret: str,
        purger_addresses: list[str],
        allowed_hosts: list[str],
        session_cookie: str = "sessionid",
        csrf_cookie: str = "csrftoken",
        messages_cookie: str = "messages",
        memory: str = "256m",
        grace: str = "1h",
        refresh_grace: str = "10s",
        hole_prefix: str = "/-/hole/",
        ignored_parameters: tuple[str, ...] | None = None,
    ):
        super().__init__(name, run_dir, host, port)
        if not re.fullmatch(r"[A-Za-z0-9_.~+/=-]{16,200}", purge_secret):
            # It goes into the VCL as a string literal, and an empty one would let anyone
            # on the purgers' addresses purge with an empty header.
            raise StackError(
                name, "the purge secret must be 16-200 letters, digits or -_.~+/= characters"
            )
        self.binary = binary
        self.backends = backends
        self.pool = pool
        self.health_path = health_path
        self.purge_secret = purge_secret
        self.purger_addresses = purger_addresses
        self.allowed_hosts = allowed_hosts
        self.session_cookie = session_cookie
        self.csrf_cookie = csrf_cookie
        self.messages_cookie = messages_cookie
        self.memory = memory
        self.grace = grace
        self.refresh_grace = refresh_grace
        self.hole_prefix = hole_prefix
        if ignored_parameters is None:
            ignored_parameters = tuple(default("IGNORED_PARAMETERS", "PAGE_CACHE"))
        self.ignored_parameters = ignored_parameters
        self.vcl_path = run_dir / "config" / f"{name}.vcl"
        self.work_dir = run_dir / name
        self.static_prefix = ""  # STATIC_URL when the app servers serve static files

    def version(self) -> str:
        return program_version([self.binary, "-V"], _parse_version)

    def render_vcl(self) -> Path:
        """Write the VCL for this node."""
        hosts = "|".join(re.escape(h.lower()) for h in self.allowed_hosts)
        return write_config(
            self.vcl_path,
            "varnish.vcl.j2",
            backends=self.backends,
            pool=self.pool,
            health_path=self.health_path,
            purge_secret=self.purge_secret,
            purger_addresses=self.purger_addresses,
            allowed_hosts_regex=hosts,
            session_cookie=self.session_cookie,
            csrf_cookie=self.csrf_cookie,
            messages_cookie=self.messages_cookie,
            grace=self.grace,
            refresh_grace=self.refresh_grace,
            hole_prefix=re.escape(self.hole_prefix),
            static_prefix=re.escape(self.static_prefix),
            ignored_parameters_regex=ignored_parameters_regex(self.ignored_parameters),
            esi=True,
        )

    def compile_check(self) -> None:
        """Compile the VCL once before starting, so a mistake is reported clearly."""
        with tempfile.TemporaryDirectory(prefix="strata-vcc-") as scratch:
            # -n must name a directory that does not exist yet (varnishd removes it).
            # -j none as for the real start: otherwise varnishd drops to its own user even
            # to compile, and cannot read a VCL under a private (0700) directory.
            result = subprocess.run(
                [self.binary, "-C", "-j", "none", "-n", os.path.join(scratch, "n")]
                + ["-f", str(self.vcl_path)],
                capture_output=True,
                text=True,
                timeout=60,
            )
        if result.returncode != 0:
            lines = result.stderr.splitlines()
            start = next((i for i, line in enumerate(lines) if "VCC-compiler" in line), 0)
            message = " ".join(line.strip() for line in lines[start + 1 : start + 3])
            raise StackError(
                self.name, f"the VCL {self.vcl_path} does not compile: {message[:300]}"
            )

    def prepare(self) -> None:
        self.render_vcl()
        self.compile_check()
        if self.work_dir.exists():
            # A previous instance's shared memory log; varnishd recreates it.
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def argv(self) -> list[str]:
        return [
            self.binary,
            "-F",
            "-j",
            "none",  # a private instance: no privilege separation to trip over
            "-n",
            str(self.work_dir),
            "-a",
            f"{self.host}:{self.port}",
            "-f",
            str(self.vcl_path),
            "-s",
            f"malloc,{self.memory}",
            "-p",
            "feature=+esi_disable_xml_check",
        ]

    def healthy(self) -> bool:
        try:
            return http_get(self.host, self.port, "/-/varnish-health", timeout=2).status == 200
        except OSError:
            return False

    def purge(self, keys: list[str], soft: bool = False) -> int:
        """Purge objects tagged with any of ``keys``; returns how many went."""
        header = "xkey-softpurge" if soft else "xkey-purge"
        answer = http_get(
            self.host,
            self.port,
            "/",
            method="PURGE",
            headers={header: " ".join(keys), "X-Purge-Secret": self.purge_secret},
        )
        if answer.status != 200:
            raise StackError(self.name, f"purge refused: {answer.status}")
        found = re.search(rb"urged (\d+)", answer.body)
        return int(found.group(1)) if found else 0
