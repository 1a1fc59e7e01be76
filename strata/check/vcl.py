"""The ``purge-fail`` drill's VCL: the running VCL, with purges refused first thing.

``varnishadm vcl.load`` compiles a copy of the active VCL in which ``vcl_recv`` answers
every PURGE with a 503, ``vcl.use`` switches to it at once (no restart, the cache stays),
and ``vcl.use`` of the original switches back. Names are fresh each time: Varnish refuses
to load a name twice.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["refuse_purges", "Varnishadm", "VarnishadmError", "REFUSAL"]

REFUSAL = 'if (req.method == "PURGE") { return (synth(503, "purge path down")); }'

_RECV = re.compile(r"^\s*sub\s+vcl_recv\s*\{", re.M)
_VERSION = re.compile(r"^\s*vcl\s+\d+\.\d+\s*;", re.M)


def refuse_purges(source: str) -> str:
    """``source`` with ``vcl_recv`` refusing purges before anything else it does."""
    found = _RECV.search(source)
    if found:
        at = found.end()
        return f"{source[:at]}\n    # strata check: purge-fail\n    {REFUSAL}\n{source[at:]}"
    version = _VERSION.search(source)
    if version is None:
        raise ValueError("not a VCL file: no 'vcl 4.x;' line")
    # Varnish runs every definition of a built-in subroutine, in the order written.
    at = version.end()
    return f"{source[:at]}\n\nsub vcl_recv {{\n    {REFUSAL}\n}}\n{source[at:]}"


class VarnishadmError(Exception):
    """varnishadm failed; the message has its output."""


class Varnishadm:
    """``varnishadm -n WORK_DIR`` for one varnishd."""

    def __init__(self, work_dir: str | Path, binary: str | None = None):
        self.work_dir = str(work_dir)
        found = binary or shutil.which("varnishadm")
        if found is None:
            raise VarnishadmError("varnishadm is not installed (Debian: the varnish package)")
        self.binary = found

    def run(self, *args: str, timeout: float = 20.0) -> str:
        try:
            result = subprocess.run(
                [self.binary, "-n", self.work_dir, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise VarnishadmError(f"varnishadm {' '.join(args)}: {error}") from None
        if result.returncode != 0:
            message = (result.stdout + result.stderr).strip().replace("\n", " ")
            raise VarnishadmError(f"varnishadm {' '.join(args)}: {message[:300]}")
        return result.stdout

    def active(self) -> str:
        """The name of the VCL in use."""
        for line in self.run("vcl.list").splitlines():
            fields = line.split()
            if fields and fields[0] == "active":
                return fields[-1]
        raise VarnishadmError("vcl.list shows no active VCL")

    def source(self, name: str) -> str:
        """The main source file of VCL ``name``."""
        return self.run("vcl.show", name)

    def load(self, name: str, path: Path) -> None:
        self.run("vcl.load", name, str(path), timeout=60.0)

    def use(self, name: str) -> None:
        self.run("vcl.use", name)

    def discard(self, name: str) -> None:
        self.run("vcl.discard", name)
