"""Strata as a user installs it: a wheel, in a virtualenv of the suite's own.

The wheel is built from a copy of the working tree (setuptools would leave ``build/``
in the repository), once per content of ``strata/`` and ``pyproject.toml``. Each app gets
a virtualenv under ``.strata/suites/venv-<Django major>/<app>/`` (apps pin conflicting
releases: Wagtail 8 needs django-treebeard below 6), created and filled once: a stamp
file records what was installed, and only a changed wheel is installed again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .sdist import REPO, suites_dir

__all__ = ["strata_wheel", "suite_venv"]

PIP_TIMEOUT = 1200
"""Seconds one pip install may take (from scratch, Wagtail's dependencies take ~1 min)."""


def _source_digest() -> str:
    digest = hashlib.sha256()
    files = [REPO / "pyproject.toml", REPO / "README.md"]
    files += sorted(p for p in (REPO / "strata").rglob("*") if p.is_file() and _packaged(p))
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _packaged(path: Path) -> bool:
    return "__pycache__" not in path.parts and path.suffix != ".pyc"


def strata_wheel() -> Path:
    """The wheel of the working tree's Strata, built when its sources changed."""
    target = suites_dir() / "wheels" / _source_digest()
    wheels = sorted(target.glob("django_strata-*.whl"))
    if wheels:
        return wheels[0]
    with tempfile.TemporaryDirectory(prefix="strata-wheel-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, source / name)
        shutil.copytree(
            REPO / "strata", source / "strata", ignore=shutil.ignore_patterns("__pycache__")
        )
        built = Path(tmp) / "dist"
        _run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(built), "."],
            cwd=source,
            timeout=300,
        )
        target.mkdir(parents=True, exist_ok=True)
        for wheel in built.glob("django_strata-*.whl"):
            shutil.move(str(wheel), target / wheel.name)
    return sorted(target.glob("django_strata-*.whl"))[0]


def suite_venv(name: str, django: str, requirements: list[str], wheel: Path) -> Path:
    """The python of ``name``'s venv holding Django ``django``, ``requirements`` and ``wheel``.

    Created (or created again) when the requirements changed; the wheel is installed
    again when it changed. Returns the venv's ``bin/python``.
    """
    venv = suites_dir() / f"venv-{django.split('.')[0]}" / name
    python = venv / "bin" / "python"
    stamp = venv / ".strata-suite-stamp.json"
    wanted = {"django": django, "requirements": sorted(requirements), "python": sys.version}
    installed = _read_stamp(stamp)
    if {key: installed.get(key) for key in wanted} != wanted or not python.exists():
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)], timeout=300)
        _pip(python, [f"{wheel}[redis,postgres]", f"Django=={django}", *requirements])
        installed = dict(wanted)
    elif installed.get("wheel") != wheel.name + wheel.parent.name:
        # Same version number, new contents: pip would call it satisfied.
        _pip(python, ["--force-reinstall", "--no-deps", str(wheel)])
        _pip(python, [f"{wheel}[redis,postgres]", f"Django=={django}"])
    installed["wheel"] = wheel.name + wheel.parent.name
    stamp.write_text(json.dumps(installed, indent=1))
    return python


def _read_stamp(stamp: Path) -> dict:
    try:
        return json.loads(stamp.read_text())
    except (OSError, ValueError):
        return {}


def _pip(python: Path, args: list[str]) -> None:
    _run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        timeout=PIP_TIMEOUT,
    )


def _run(argv: list[str], timeout: int, cwd: Path | None = None) -> None:
    # Never from the repository: ``python -m pip`` puts the working directory on
    # sys.path, where the editable install's django_strata.egg-info would make pip
    # take Strata as installed and skip the wheel.
    result = subprocess.run(
        argv,
        cwd=cwd or suites_dir(),
        timeout=timeout,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
