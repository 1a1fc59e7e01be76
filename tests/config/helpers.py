"""Helpers of the ``strata config`` tests: the example inventory, real programs, renders."""

from __future__ import annotations

import shutil
from pathlib import Path

from strata.config import load_inventory, parse_inventory, render_inventory, write_rendering
from strata.stack.varnish import xkey_available
from tests.helpers import skip_locally_fail_in_ci

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "inventory.toml"
EXAMPLE_OUTPUT = REPO / "docs" / "examples" / "production"


def require_program(name: str) -> str:
    """The path of ``name``; skip locally, fail in CI (env CI set), when it is missing.

    Mirrors ``tests.helpers.require_real_stack``: varnishd also needs the xkey vmod.
    """
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    missing = path is None or (name == "varnishd" and not xkey_available())
    if missing:
        what = "varnish-modules (xkey)" if path else name
        skip_locally_fail_in_ci(f"not installed: {what} (scripts/bootstrap.sh installs it)")
    return path


def example_text() -> str:
    """The example inventory's TOML."""
    return EXAMPLE.read_text()


def example():
    """The example inventory, validated."""
    return load_inventory(EXAMPLE)


def render_text(text: str, out: Path, source: str = "inventory.toml"):
    """Validate ``text``, render it and write it to ``out``; return (rendering, report)."""
    rendering = render_inventory(parse_inventory(text, source=source))
    return rendering, write_rendering(rendering, out)


# The smallest complete inventory: every role on one host, on strata up's ports (base 20000).
ONE_HOST = """
[site]
settings_module = "newsroom_site.settings"
project_dir = "/srv/newsroom/demo"
server_names = ["127.0.0.1", "localhost"]

[hosts]
web = "127.0.0.1"

[[load_balancer]]
host = "web"
port = 20000
pool_port = 20090
tls_port = 20443

[[accelerator]]
host = "web"
port = 20080

[[app_server]]
host = "web"
port = 20101

[[app_server]]
host = "web"
port = 20102

[[app_server]]
host = "web"
port = 20103

[[cache]]
host = "web"
port = 20379

[database]
host = "web"
port = 20432
"""
