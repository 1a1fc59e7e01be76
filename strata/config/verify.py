"""Check rendered files with the real programs, where they are installed.

``haproxy -c`` for every load balancer's config, ``varnishd -C`` for the VCL (once: it
is the same file on every node), ``systemd-analyze verify`` for the units, and Python's
compiler for the Python files. A program that is missing makes its checks "skipped",
never "passed".
"""

from __future__ import annotations

import os
import py_compile
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..stack.errors import StackError
from ..stack.tls import ensure_self_signed_pem

__all__ = [
    "CheckResult",
    "check_haproxy",
    "check_vcl",
    "check_python",
    "check_systemd_unit",
    "check_output",
]


@dataclass(frozen=True)
class CheckResult:
    """One check of one file: ``ok`` is True, False, or None when it could not run."""

    tool: str
    path: Path
    ok: bool | None
    message: str = ""


def check_haproxy(path: Path, binary: str | None = None) -> CheckResult:
    """``haproxy -c`` on ``path``; a certificate missing here is replaced by a scratch one."""
    binary = binary or shutil.which("haproxy")
    if binary is None:
        return CheckResult("haproxy -c", path, None, "haproxy is not installed")
    text = path.read_text()
    with tempfile.TemporaryDirectory(prefix="strata-haproxy-") as scratch:
        # The PEM lives on the load balancer, not here: check the syntax with a stand-in.
        needed = [p for p in re.findall(r"\bcrt (\S+)", text) if not Path(p).exists()]
        if needed:
            try:
                pem = ensure_self_signed_pem(Path(scratch) / "tls", ["localhost"])
            except StackError as error:
                return CheckResult("haproxy -c", path, None, str(error))
            for original in needed:
                text = text.replace(f"crt {original}", f"crt {pem}")
        checked = Path(scratch) / "haproxy.cfg"
        checked.write_text(text)
        result = subprocess.run(
            [binary, "-c", "-f", str(checked)], capture_output=True, text=True, timeout=60
        )
    if result.returncode == 0:
        return CheckResult("haproxy -c", path, True)
    lines = [line for line in result.stderr.splitlines() if "ALERT" in line] or [
        (result.stderr.strip().splitlines() or ["?"])[-1]
    ]
    return CheckResult("haproxy -c", path, False, " | ".join(lines)[:500])


def check_vcl(path: Path, binary: str | None = None) -> CheckResult:
    """``varnishd -C`` on ``path`` (with a fresh ``-n`` directory, which varnishd removes)."""
    binary = binary or shutil.which("varnishd")
    if binary is None:
        return CheckResult("varnishd -C", path, None, "varnishd is not installed")
    with tempfile.TemporaryDirectory(prefix="strata-vcc-") as scratch:
        result = subprocess.run(
            # -j none: as root the default jail reads the file as user varnish, which a
            # private directory (pytest's, a home) would refuse.
            [
                binary,
                "-C",
                "-j",
                "none",
                "-n",
                os.path.join(scratch, "n"),
                "-f",
                str(path.resolve()),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    if result.returncode == 0:
        return CheckResult("varnishd -C", path, True)
    lines = result.stderr.splitlines()
    start = next((i for i, line in enumerate(lines) if "VCC-compiler" in line), 0)
    message = " ".join(line.strip() for line in lines[start : start + 4])
    return CheckResult("varnishd -C", path, False, message[:500])


def check_python(path: Path) -> CheckResult:
    """Python's compiler on ``path`` (syntax only; nothing is imported)."""
    with tempfile.TemporaryDirectory(prefix="strata-pyc-") as scratch:
        try:
            py_compile.compile(str(path), cfile=os.path.join(scratch, "x.pyc"), doraise=True)
        except py_compile.PyCompileError as error:
            return CheckResult("python -m py_compile", path, False, str(error.msg).strip())
    return CheckResult("python -m py_compile", path, True)


def check_systemd_unit(path: Path) -> CheckResult:
    """``systemd-analyze verify`` on a unit; programs not installed here are not errors."""
    binary = shutil.which("systemd-analyze")
    if binary is None:
        return CheckResult("systemd-analyze verify", path, None, "systemd is not installed")
    with tempfile.TemporaryDirectory(prefix="strata-unit-") as scratch:
        # The unit's own name matters to systemd; copy it so that nothing else is read.
        unit = Path(scratch) / path.name
        unit.write_text(path.read_text())
        try:
            result = subprocess.run(
                [binary, "verify", str(unit)], capture_output=True, text=True, timeout=60
            )
        except subprocess.TimeoutExpired:
            return CheckResult("systemd-analyze verify", path, None, "timed out")
    # The app servers' virtualenv and the like exist on the hosts, not on this machine.
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "is not executable" not in line
    ]
    if not problems:
        return CheckResult("systemd-analyze verify", path, True)
    return CheckResult("systemd-analyze verify", path, False, " | ".join(problems)[:500])


def check_output(files: list[Path]) -> list[CheckResult]:
    """Check every written file that a real program can check; the VCL once per content."""
    results = []
    seen_vcl: dict[str, CheckResult] = {}
    for path in files:
        if path.name == "haproxy.cfg":
            results.append(check_haproxy(path))
        elif path.suffix == ".vcl":
            text = path.read_text()
            if text in seen_vcl:
                first = seen_vcl[text]
                results.append(
                    CheckResult(first.tool, path, first.ok, f"same file as {first.path}")
                )
            else:
                seen_vcl[text] = check_vcl(path)
                results.append(seen_vcl[text])
        elif path.suffix == ".py":
            results.append(check_python(path))
        elif path.suffix == ".service":
            results.append(check_systemd_unit(path))
    return results
