"""What the benchmark scripts share: the repository on ``sys.path``, the machine's
description, the programs a script needs, and where its JSON goes.

The scripts run as ``python benchmarks/NAME.py``: their own directory is on ``sys.path``,
so ``import _common`` finds this file beside them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from wsgiref.util import setup_testing_defaults

from strata.bench.report import machine as describe_machine
from strata.stack.program import find_program

if TYPE_CHECKING:
    from strata.stack.stack import Stack

__all__ = [
    "ROOT",
    "RESULTS",
    "machine",
    "require_program",
    "rounds_arguments",
    "start_demo_stack",
    "use_repository",
    "write_results",
    "wsgi_environ",
]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def use_repository() -> None:
    """Put the repository (for ``tests.*``) and the demo (for ``newsroom_site``) first on
    ``sys.path``, for the scripts that reuse the tests' helpers or the demo's settings."""
    sys.path[:0] = [str(ROOT), str(ROOT / "demo")]


def machine(stack: Stack | None = None, packages: Iterable[str] = ()) -> dict:
    """The machine's description for a result file (``strata.bench.report.machine``), with
    every program of ``stack`` and its version, and how the stack was set up."""
    description = describe_machine(packages)
    if stack is not None:
        description["programs"] = [
            {"layer": row.layer, "implementation": row.implementation, "version": row.version}
            for row in stack.status_rows()
        ]
        description["stack"] = {
            "app_server": stack.config.app_server,
            "app_servers": stack.config.app_servers,
            "workers_each": stack.config.workers,
            "pool": stack.config.pool,
            "cache": stack.config.cache,
            "edge_ttl": stack.config.edge_ttl,
        }
    return description


def start_demo_stack(
    run_dir: Path, port: int, progress: Callable[[str], None] | None = None, **options
) -> Stack:
    """The demo on a stack of its own at base ``port``, seeded (5000 articles, 50000
    comments); ``options`` go to ``StackConfig``. Stops what it started if it fails."""
    # Imported here: the in-process micro-benchmarks that import this module start no stack.
    from strata.stack.config import StackConfig, demo_project
    from strata.stack.stack import Stack

    stack = Stack(
        StackConfig(
            run_dir=run_dir,
            project=demo_project(),
            port=port,
            setup_commands=[["migrate", "--noinput"], ["seed_newsroom", "--if-empty"]],
            **options,
        )
    )
    stack.start(progress=progress)
    return stack


def wsgi_environ(path: str, host: str = "127.0.0.1", **extra: object) -> dict:
    """A WSGI environ for an anonymous ``GET path`` to ``host``, with ``extra`` keys
    (``HTTP_USER_AGENT=...``) added; the rest is what a WSGI server puts in."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": host,
        "HTTP_HOST": host,
        "REMOTE_ADDR": "127.0.0.1",
        **extra,
    }
    setup_testing_defaults(environ)
    return environ


def require_program(name: str) -> str:
    """The path of the program ``name``; ends the script with one line when it is missing."""
    path = find_program(name)
    if path is None:
        raise SystemExit(f"{name} is not installed (scripts/bootstrap.sh installs it)")
    return path


def rounds_arguments(description: str, rounds: int, name: str) -> argparse.Namespace:
    """The command line of an in-process micro-benchmark: ``--rounds`` (reads per peer and
    size; at least 20, as timings are taken in blocks of 10 and a p90 needs two blocks) and
    ``--out`` (``benchmarks/results/<name>.json`` by default)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=rounds, help="reads per peer and size")
    parser.add_argument("--out", type=Path, default=RESULTS / f"{name}.json")
    args = parser.parse_args()
    if args.rounds < 20:
        parser.error("--rounds must be at least 20")
    return args


def write_results(path: Path, results: dict) -> None:
    """Write ``results`` as indented JSON to ``path``, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
