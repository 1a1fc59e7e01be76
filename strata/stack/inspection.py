"""What `strata up` reads from a project's settings before it starts anything.

:func:`inspect_project` runs this module in the project's own Python, with the
environment the app servers will get, and reads back a few facts: where static files
go, whether Strata is installed where the stack needs it, whether the host names the
stack answers to are allowed, and whether its cache keeps the invalidation bus's log (then
a purger must run). A project that would only ever answer 400 or 500 is
refused before any program starts, with the reason and the fix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..bus import bus_log
from ..conf import strata_settings
from .errors import StackError

__all__ = ["ProjectFacts", "inspect_project", "serves_static_itself"]

MARKER = "STRATA-FACTS "
MIDDLEWARE = "strata.middleware.StrataMiddleware"


@dataclass
class ProjectFacts:
    """The settings of a project that decide how `strata up` runs it."""

    static_root: str = ""
    static_url: str = ""
    staticfiles: bool = False  # django.contrib.staticfiles is installed
    serves_static: bool = False  # the project's own WhiteNoise middleware
    whitenoise: bool = False  # importable, so strata.stack.wsgi can serve STATIC_ROOT
    health_path: str = "/-/health"
    bus: bool = False  # its cache keeps an invalidation log: strata_purger delivers it
    problems: list[str] = field(default_factory=list)  # each makes the stack useless
    warnings: list[str] = field(default_factory=list)  # system checks strata.W040 and such

    @property
    def collects_static(self) -> bool:
        """``collectstatic`` has somewhere to put the files."""
        return self.staticfiles and bool(self.static_root)


def inspect_project(
    project, hosts: list[str], log_path: Path, timeout: float = 120
) -> ProjectFacts:
    """Read ``project``'s facts in its own Python; raise :class:`StackError` when it
    cannot be served at all (settings that do not import, Strata not installed). When
    the settings do not load, what they printed goes to ``log_path``."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "strata.stack.inspection", *hosts],
            cwd=project.directory,
            env=project.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError("django", f"loading the settings took over {timeout:.0f} s") from exc
    for line in result.stdout.splitlines():
        if line.startswith(MARKER):
            facts = ProjectFacts(**json.loads(line[len(MARKER) :]))
            break
    else:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        with open(log_path, "a") as log:
            log.write(f"$ python -m strata.stack.inspection {' '.join(hosts)}\n")
            log.write(result.stdout + result.stderr)
        raise StackError(
            "django",
            f"the project does not load ({project.settings_module}): {lines[-1]}",
            log_path,
        )
    if facts.problems:
        raise StackError("django", "; ".join(facts.problems))
    return facts


def serves_static_itself(middleware: list[str]) -> bool:
    """The project runs WhiteNoise's middleware (it serves ``STATIC_ROOT`` itself)."""
    return any("whitenoise" in name.lower() for name in middleware)


def _facts(hosts: list[str]) -> ProjectFacts:
    """In the project's Python: read its settings (nothing touches the database)."""
    import django
    from django.conf import settings
    from django.http.request import validate_host

    django.setup()
    facts = ProjectFacts(
        static_root=str(settings.STATIC_ROOT or ""),
        static_url=str(settings.STATIC_URL or ""),
        staticfiles="django.contrib.staticfiles" in settings.INSTALLED_APPS,
        serves_static=serves_static_itself(settings.MIDDLEWARE),
    )
    try:
        import whitenoise  # noqa: F401

        facts.whitenoise = True
    except ImportError:
        pass
    allowed = settings.ALLOWED_HOSTS
    if not allowed and settings.DEBUG:
        allowed = [".localhost", "127.0.0.1", "[::1]"]  # what Django allows then
    disallowed = [host for host in hosts if not validate_host(host, allowed)]
    if disallowed:
        facts.problems.append(
            f"ALLOWED_HOSTS ({', '.join(allowed) or 'empty'}) does not allow "
            f"{', '.join(disallowed)}: every request would be a 400. Add them, "
            "or end the settings with strata.env.configure(globals()), which adds the hosts "
            "strata up exports in DJANGO_ALLOWED_HOSTS"
        )
    if "strata" not in settings.INSTALLED_APPS:
        facts.problems.append('"strata" is not in INSTALLED_APPS')
    if MIDDLEWARE not in settings.MIDDLEWARE:
        facts.problems.append(
            f"{MIDDLEWARE} is not in MIDDLEWARE: put it first (it answers the load "
            "balancer's health checks and marks each response shared or personal)"
        )
    if not facts.problems:
        from django.core.checks import WARNING, run_checks

        facts.health_path = strata_settings().health_path
        facts.bus = bus_log() is not None  # nothing connects yet: Redis may not run
        try:
            messages = run_checks()
        except Exception as exc:  # a broken URLconf: migrate and the start check say more
            messages = []
            facts.warnings.append(f"the system checks failed: {exc!r}")
        facts.warnings += [
            f"{message.id}: {message.msg} {message.hint or ''}".strip()
            for message in messages
            if message.level >= WARNING and (message.id or "").startswith("strata.")
        ]
    return facts


def main() -> None:
    """Print the facts of the project named by DJANGO_SETTINGS_MODULE for these hosts."""
    print(MARKER + json.dumps(asdict(_facts(sys.argv[1:]))))


if __name__ == "__main__":
    main()
