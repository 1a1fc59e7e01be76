"""The app servers: a pool of Gunicorn (default), uWSGI or Granian instances running Django."""

from __future__ import annotations

import http.client
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import StackError
from .probes import http_get
from .program import Program, program_version
from .render import write_config

__all__ = ["DjangoProject", "Gunicorn", "UWSGI", "Granian", "APP_SERVERS"]


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
        self.metrics_dir = run_dir / "metrics" / name
        self._metrics_dir_emptied = False

    def empty_metrics_dir(self) -> None:
        """Give prometheus_client's multiprocess mode an empty directory, once per
        ``strata up``: each process writes its counters to files there and ``/-/metrics``
        adds them up, so files of an earlier run would be added in. A restart by the
        supervisor keeps them: the counters of the workers that died stay in the sums,
        which keeps every counter rising (a fall would be a reset for Prometheus)."""
        if not self._metrics_dir_emptied:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            self._metrics_dir_emptied = True
        self.metrics_dir.mkdir(parents=True, exist_ok=True)

    def prepare(self) -> None:
        self.empty_metrics_dir()
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
            **self.template_options(),
        )

    def template_options(self) -> dict[str, Any]:
        """What this server's template needs beyond what every app server's does."""
        return {}

    def wsgi_module_app(self) -> str:
        """The WSGI application in this server's notation: always Strata's, which loads
        the project's (``--wsgi`` or ``WSGI_APPLICATION``) and adds static files and
        error logging (:mod:`strata.stack.wsgi`)."""
        return "strata.stack.wsgi:application"

    def env(self) -> dict[str, str]:
        extra = {"STRATA_SERVER_NAME": self.name, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)}
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
    keep_alive = False
    """``http11-socket`` instead of ``http-socket``: HAProxy keeps connections open. Off:
    uWSGI then holds the connection after every response, and one without Content-Length
    ends only when its socket timeout (4 s) closes it (docs/stack.md, app servers)."""

    def template_options(self) -> dict[str, Any]:
        return {"keep_alive": self.keep_alive}

    def healthy(self) -> bool:
        if not self.keep_alive:
            return super().healthy()
        # http11-socket keeps every HTTP/1.1 connection open, whatever the response (it adds
        # no Content-Length and ignores "Connection: close"): a probe of a response without
        # Content-Length would wait out the socket timeout. It closes after HTTP/1.0.
        conn = _HTTP10Connection(self.host, self.port, timeout=2)
        try:
            conn.request("GET", self.project.health_path)
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _binary(self) -> str:
        beside = Path(sys.executable).with_name("uwsgi")
        return str(beside) if beside.exists() else "uwsgi"

    def version(self) -> str:
        return program_version([self._binary(), "--version"], lambda s: s.splitlines()[0])

    def argv(self) -> list[str]:
        return [self._binary(), "--ini", str(self.config_path)]


class _HTTP10Connection(http.client.HTTPConnection):
    _http_vsn = 10
    _http_vsn_str = "HTTP/1.0"


class Granian(AppServer):
    """Granian (a Rust HTTP server) on its WSGI interface, one request at a time per worker.

    Configured on its command line: it reads no configuration file. Unlike Gunicorn and
    uWSGI it has no per-request timeout; HAProxy's ``timeout server`` bounds a request.
    """

    implementation = "Granian"

    def version(self) -> str:
        try:
            from granian import __version__
        except ImportError:
            return "?"
        return __version__

    def prepare(self) -> None:
        """Nothing to render (the configuration is in :meth:`argv`): check it is
        installed, and empty the metrics directory."""
        self.empty_metrics_dir()
        if importlib.util.find_spec("granian") is None:
            raise StackError(
                self.name, 'Granian is not installed: pip install "django-strata[granian]"'
            )

    def argv(self) -> list[str]:
        host, port, workers = self.host, self.port, self.workers
        return [
            *(sys.executable, "-m", "granian", "--interface", "wsgi"),
            *("--host", host, "--port", str(port), "--working-dir", str(self.project.directory)),
            *("--workers", str(workers), "--respawn-failed-workers"),
            # One Python thread per worker, as Gunicorn's sync workers and uWSGI's processes
            # run: the default (hundreds per worker) contends for the GIL and opens a
            # database connection per thread. HAProxy's maxconn queues the excess.
            *("--blocking-threads", "1", "--runtime-threads", "1"),
            # HAProxy speaks HTTP/1.1 to the pool; no protocol sniffing, no websockets.
            *("--http", "1", "--no-ws"),
            # SIGTERM: stop accepting, let workers finish, then kill what is left.
            *("--workers-kill-timeout", str(max(1, min(self.timeout, 10)))),
            *("--log-level", "warning"),
            self.wsgi_module_app(),
        ]


APP_SERVERS = {"gunicorn": Gunicorn, "uwsgi": UWSGI, "granian": Granian}
