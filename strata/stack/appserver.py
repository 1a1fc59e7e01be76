"""The app servers: a pool of Gunicorn (default) or uWSGI instances running Django."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .probes import http_get
from .program import Program, program_version
from .render import write_config

__all__ = ["DjangoProject", "Gunicorn", "UWSGI", "APP_SERVERS"]


@dataclass
class DjangoProject:
    """Where a Django project lives and how to load it."""

    directory: Path
    settings_module: str
    # "package.wsgi:application"; None: the project's WSGI_APPLICATION setting
    wsgi_app: str | None = None
    health_path: str = "/-/health"
    env: dict[str, str] = field(default_factory=dict)

    def environment(self, **extra: str) -> dict[str, str]:
        """The environment for a process running this project."""
        env = dict(os.environ)
        env.update(self.env)
        env.update(extra)
        env["DJANGO_SETTINGS_MODULE"] = self.settings_module
        pythonpath = [str(self.directory)]
        if env.get("PYTHONPATH"):
            pythonpath.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(pythonpath)
        return env


class AppServer(Program):
    """Common ground of the app servers: a Django project served on one port."""

    layer = "app server"
    template = ""
    config_name = ""

    def __init__(
        self, name, run_dir, host, port, project: DjangoProject, workers: int, timeout: int = 30
    ):
        super().__init__(name, run_dir, host, port)
        self.project = project
        self.workers = workers
        self.timeout = timeout
        self.config_path = run_dir / "config" / f"{name}.{self.config_name}"

    def prepare(self) -> None:
        write_config(
            self.config_path,
            self.template,
            name=self.name,
            host=self.host,
            port=self.port,
            workers=self.workers,
            timeout=self.timeout,
            project_dir=self.project.directory,
            wsgi_app=self.wsgi_module_app(),
        )

    def wsgi_module_app(self) -> str:
        """The WSGI application in this server's notation: always Strata's, which loads
        the project's (``--wsgi`` or ``WSGI_APPLICATION``) and adds static files and
        error logging (:mod:`strata.stack.wsgi`)."""
        return "strata.stack.wsgi:application"

    def env(self) -> dict[str, str]:
        extra = {"STRATA_SERVER_NAME": self.name}
        if self.project.wsgi_app:
            extra["STRATA_WSGI_APPLICATION"] = self.project.wsgi_app
        return self.project.environment(**extra)

    def cwd(self) -> Path:
        return self.project.directory

    def healthy(self) -> bool:
        try:
            return http_get(self.host, self.port, self.project.health_path, timeout=2).status == 200
        except OSError:
            return False

    def status_row(self):
        row = super().status_row()
        row.note = f"{self.workers} workers"
        return row


class Gunicorn(AppServer):
    """Gunicorn with sync workers, the application preloaded."""

    implementation = "Gunicorn"
    template = "gunicorn.conf.py.j2"
    config_name = "gunicorn.conf.py"

    def version(self) -> str:
        import gunicorn

        return gunicorn.__version__

    def argv(self) -> list[str]:
        # Gunicorn 27 opens a control socket in ~/.gunicorn by default, shared by every
        # instance on the machine; the pool's instances must not clobber each other's.
        argv = [sys.executable, "-m", "gunicorn", "-c", str(self.config_path)]
        if _gunicorn_has_control_socket():
            argv.append("--no-control-socket")
        return argv


def _gunicorn_has_control_socket() -> bool:
    try:
        from gunicorn.config import KNOWN_SETTINGS
    except ImportError:
        return False
    return any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS)


class UWSGI(AppServer):
    """uWSGI (the pyuwsgi wheel or a compiled uwsgi) with a master and worker processes."""

    implementation = "uWSGI"
    template = "uwsgi.ini.j2"
    config_name = "uwsgi.ini"

    def _binary(self) -> str:
        beside = Path(sys.executable).with_name("uwsgi")
        return str(beside) if beside.exists() else "uwsgi"

    def version(self) -> str:
        return program_version([self._binary(), "--version"], lambda s: s.splitlines()[0])

    def argv(self) -> list[str]:
        return [self._binary(), "--ini", str(self.config_path)]


APP_SERVERS = {"gunicorn": Gunicorn, "uwsgi": UWSGI}
