"""Strata's modules import each other at the top, where an import circle cannot hide.

An import of a Strata module inside a function usually dodges a circle (two modules that
import each other) and hides it from the reader. One is allowed where the import has to
wait: a function guarded by ``except ImportError`` (an optional dependency behind it), or
an entry of :data:`ALLOWED`, each saying why.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import strata

ROOT = Path(strata.__file__).parent

ALLOWED: dict[tuple[str, str], str] = {
    ("strata/apps.py", "ready"): (
        "AppConfig.ready(): the hooks and receivers wait until the app registry is ready"
    ),
    ("strata/apps.py", "_register_checks"): (
        "called from AppConfig.ready(): each module registers its system checks when imported"
    ),
    ("strata/cache/__init__.py", "__getattr__"): (
        "a lazy attribute: strata.cache.sentinel needs redis, an optional dependency"
    ),
    # -- Temporary (issue 16): no circle forces it; the lead reconciles these.
    ("strata/stack/process.py", "preexec"): (
        "temporary: strata.stack.hosts imports nothing of process.py; an import in a "
        "forked child before exec is better made at the top"
    ),
}


def _module_name(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported(node: ast.Import | ast.ImportFrom, path: Path) -> list[str]:
    """The absolute names of the modules an import statement names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not node.level:
        return [node.module or ""]
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path)[:-1]
    base = package[: len(package) - node.level + 1]
    return [".".join([*base, node.module] if node.module else base)]


def _guards_import_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(
        isinstance(n, ast.Name) and n.id.endswith(("ImportError", "NotFoundError")) for n in names
    )


def _function_imports(path: Path) -> Iterator[tuple[str, int, str]]:
    """``(function, line, module)`` for each Strata import inside a function of ``path``."""

    def walk(node: ast.AST, function: str | None, guarded: bool) -> Iterator[tuple[str, int, str]]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            if function is not None and not guarded:
                for module in _imported(node, path):
                    if module.split(".")[0] == "strata":
                        yield function, node.lineno, module
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function, guarded = node.name, False
        if isinstance(node, ast.Try):
            optional = any(_guards_import_error(handler) for handler in node.handlers)
            for statement in node.body:
                yield from walk(statement, function, guarded or optional)
            for statement in [*node.handlers, *node.orelse, *node.finalbody]:
                yield from walk(statement, function, guarded)
            return
        for child in ast.iter_child_nodes(node):
            yield from walk(child, function, guarded)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), None, False)


def _offenders() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        name = path.relative_to(ROOT.parent).as_posix()
        for function, line, module in _function_imports(path):
            if (name, function) not in ALLOWED:
                found.append(f"{name}:{line} {function}() imports {module}")
    return found


def test_no_strata_module_imports_another_inside_a_function():
    assert _offenders() == []


def test_the_scan_finds_relative_and_absolute_imports_in_nested_functions(tmp_path, monkeypatch):
    package = tmp_path / "strata" / "sample"
    package.mkdir(parents=True)
    module = package / "mod.py"
    module.write_text(
        "import os\n"
        "from . import top\n"
        "def outer():\n"
        "    def inner():\n"
        "        from ..tags import versions\n"
        "    import strata.conf\n"
        "    try:\n"
        "        from .optional import thing\n"
        "    except ImportError:\n"
        "        thing = None\n"
        "    import json\n"
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path / "strata")
    assert list(_function_imports(module)) == [
        ("inner", 5, "strata.tags"),
        ("outer", 6, "strata.conf"),
    ]


def test_every_allowed_entry_is_still_needed():
    present = {
        (path.relative_to(ROOT.parent).as_posix(), function)
        for path in ROOT.rglob("*.py")
        for function, _, _ in _function_imports(path)
    }
    stale = sorted(entry for entry in ALLOWED if entry not in present)
    assert stale == [], "remove these entries of ALLOWED: the imports are gone"
