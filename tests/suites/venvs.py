"""Strata as a user installs it: a wheel, in a virtualenv of the suite's own.

The sdist and the wheel are built as a release is (``python -m build``: the sdist, then
the wheel from the sdist) from a copy of the working tree (setuptools would leave
``build/`` in the repository), once per content of what goes into the sdist. Each app gets
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
from dataclasses import dataclass
from pathlib import Path

from tests.suites.sdist import REPO, suites_dir

__all__ = ["Distributions", "strata_distributions", "strata_wheel", "suite_venv"]

DEFAULT_EXTRAS = "stack,redis,postgres"
"""The wheel's extras in a suite's venv: the command line, Redis and PostgreSQL clients."""

PIP_TIMEOUT = 1200
"""Seconds one pip install may take (from scratch, Wagtail's dependencies take ~1 min)."""

SDIST_FILES = ("pyproject.toml", "MANIFEST.in", "README.md", "LICENSE", "CHANGELOG.md")
SDIST_TREES = ("strata", "docs")
"""What ``MANIFEST.in`` may take into the sdist: the copy that is built holds only these."""


@dataclass(frozen=True)
class Distributions:
    """The release files of the working tree's Strata."""

    sdist: Path
    wheel: Path


def _sources() -> list[Path]:
    files = [REPO / name for name in SDIST_FILES]
    for tree in SDIST_TREES:
        files += sorted(p for p in (REPO / tree).rglob("*") if p.is_file() and _packaged(p))
    return files


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in _sources():
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _packaged(path: Path) -> bool:
    return "__pycache__" not in path.parts and path.suffix != ".pyc"


def strata_distributions() -> Distributions:
    """The sdist and the wheel of the working tree, built when their sources changed.

    ``python -m build`` makes the sdist, then the wheel from the unpacked sdist, each in
    an isolated environment with the build requirements of ``pyproject.toml``: a file
    that ``MANIFEST.in`` leaves out of the sdist is missing from the wheel too.
    """
    target = suites_dir() / "wheels" / _source_digest()
    found = _distributions_in(target)
    if found:
        return found
    with tempfile.TemporaryDirectory(prefix="strata-wheel-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        for name in SDIST_FILES:
            shutil.copy2(REPO / name, source / name)
        for tree in SDIST_TREES:
            shutil.copytree(
                REPO / tree, source / tree, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        built = Path(tmp) / "dist"
        _run(
            [sys.executable, "-m", "build", "--outdir", str(built), "."],
            cwd=source,
            timeout=300,
        )
        target.mkdir(parents=True, exist_ok=True)
        for path in [*built.glob("django_strata-*.tar.gz"), *built.glob("django_strata-*.whl")]:
            shutil.move(str(path), target / path.name)
    found = _distributions_in(target)
    if found is None:
        raise RuntimeError(f"python -m build left no sdist and wheel in {target}")
    return found


def _distributions_in(directory: Path) -> Distributions | None:
    sdists = sorted(directory.glob("django_strata-*.tar.gz"))
    wheels = sorted(directory.glob("django_strata-*.whl"))
    return Distributions(sdists[0], wheels[0]) if sdists and wheels else None


def strata_wheel() -> Path:
    """The wheel of the working tree's Strata, built when its sources changed."""
    return strata_distributions().wheel


def suite_venv(
    name: str, django: str, requirements: list[str], wheel: Path, extras: str = DEFAULT_EXTRAS
) -> Path:
    """The python of ``name``'s venv holding Django ``django``, ``requirements`` and ``wheel``.

    The wheel is installed with ``extras`` (``""``: the Django app alone, as
    ``pip install django-strata`` gives it). Created (or created again) when the
    requirements changed; the wheel is installed again when it changed. Returns the
    venv's ``bin/python``.
    """
    venv = suites_dir() / f"venv-{django.split('.')[0]}" / name
    python = venv / "bin" / "python"
    stamp = venv / ".strata-suite-stamp.json"
    wanted = {
        "django": django,
        "requirements": sorted(requirements),
        "extras": extras,
        "python": sys.version,
    }
    installed = _read_stamp(stamp)
    # A stamp from before extras could be chosen: the default ones (the new wheel that
    # came with this change installs the stack extra below).
    installed.setdefault("extras", DEFAULT_EXTRAS)
    strata = f"{wheel}[{extras}]" if extras else str(wheel)
    if {key: installed.get(key) for key in wanted} != wanted or not python.exists():
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)], timeout=300)
        _pip(python, [strata, f"Django=={django}", *requirements])
        installed = dict(wanted)
    elif installed.get("wheel") != wheel.name + wheel.parent.name:
        # Same version number, new contents: pip would call it satisfied.
        _pip(python, ["--force-reinstall", "--no-deps", str(wheel)])
        _pip(python, [strata, f"Django=={django}"])
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
