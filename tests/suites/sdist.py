"""A released package's source distribution, downloaded once and unpacked (its tests ship in it)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

__all__ = ["suites_dir", "unpacked_sdist"]

REPO = Path(__file__).resolve().parents[2]


def suites_dir() -> Path:
    """Where sdists and suite runs live: ``$STRATA_SUITES_DIR`` or ``.strata/suites``."""
    path = Path(os.environ.get("STRATA_SUITES_DIR") or REPO / ".strata" / "suites")
    path.mkdir(parents=True, exist_ok=True)
    return path


def unpacked_sdist(project: str, version: str) -> Path:
    """The unpacked source distribution of ``project==version`` from PyPI.

    Downloaded with pip (``--no-binary :all: --no-deps``) on first use and kept; returns
    the unpacked top directory (``Django-5.2.20/`` or ``django-5.2.20/``).
    """
    downloads = suites_dir() / "sdists"
    downloads.mkdir(parents=True, exist_ok=True)
    normal = project.lower().replace("-", "_").replace(".", "_")
    archives = _archives(downloads, normal, version)
    if not archives:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                str(downloads),
                f"{project}=={version}",
            ],
            check=True,
        )
        archives = _archives(downloads, normal, version)
    if not archives:
        raise RuntimeError(f"pip downloaded no sdist of {project}=={version} into {downloads}")
    archive = archives[0]
    target = suites_dir() / "src" / f"{normal}-{version}"
    marker = target / ".unpacked"
    if not marker.exists():
        target.mkdir(parents=True, exist_ok=True)
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(target)
        else:
            with tarfile.open(archive) as tarred:
                tarred.extractall(target, filter="data")
        marker.touch()
    tops = [p for p in target.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise RuntimeError(f"{archive.name} does not unpack to one directory: {tops}")
    return tops[0]


def _archives(downloads: Path, normal: str, version: str) -> list[Path]:
    return sorted(
        path
        for path in downloads.iterdir()
        if path.name.lower()
        .replace("-", "_")
        .replace(".", "_")
        .startswith(f"{normal}_{version}".replace(".", "_"))
        and path.name.endswith((".tar.gz", ".zip", ".tgz"))
    )
