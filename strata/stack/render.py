"""Render the programs' configuration files from the Jinja2 templates beside this module."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

__all__ = ["render_template", "write_config"]


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("strata.stack", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # configuration files, not HTML
    )


def render_template(template_name: str, **context: Any) -> str:
    """Render ``template_name`` with ``context``; a missing variable is an error."""
    return _environment().get_template(template_name).render(**context)


def write_config(path: Path, template: str, mode: int = 0o644, **context: Any) -> Path:
    """Render ``template`` into ``path`` (readable by a person, and by dropped-privilege programs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_template(template, **context))
    path.chmod(mode)
    return path
