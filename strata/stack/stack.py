"""Running a stack: start its programs in dependency order, check a request end to
end, record what runs where (:mod:`strata.stack.runstate`), stop in reverse.

Which programs run, and where, is the plan (:mod:`strata.stack.plan`); what to run is
the config (:mod:`strata.stack.config`); keeping them running is the supervisor's job
(:mod:`strata.stack.supervisor`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import StackConfig
from .errors import StackError
from .exporters import Exporter
from .haproxy import HAProxy
from .hosts import HostNetwork
from .inspection import ProjectFacts, inspect_project
from .plan import StackPlan
from .ports import port_is_free
from .probes import http_get
from .program import Program, StatusRow
from .prometheus import render_scrape_config, targets_from_state
from .runstate import RunState, clear_state, hold_path, write_environment
from .varnish import Varnish

__all__ = ["Stack"]


class Stack(StackPlan):
    """The programs of one stack, started in dependency order and stopped in reverse."""

    def __init__(self, config: StackConfig):
        super().__init__(config)
        self.notes: list[str] = []  # for the person who started it: what is not served
        self.facts: ProjectFacts | None = None
        self.started: list[Program] = []

    def check_ports(self) -> None:
        """Fail before starting anything when a port the stack needs is taken."""
        if isinstance(self.network, HostNetwork):
            return  # fresh namespaces: nothing listens there yet
        for program in self.programs:
            for port in program.ports():
                if not port_is_free(program.host, port):
                    if isinstance(program, Exporter):  # for looking, not serving: skip it
                        self.exporters.remove(program)
                        self.exporter_notes.append(
                            f"no metrics from {program.name}: port {port} on {program.host} "
                            "is already in use"
                        )
                        break
                    raise StackError(
                        program.name,
                        f"port {port} on {program.host} is already in use; stop what listens "
                        "there or choose another base port (--port)",
                    )

    def start(self, progress: Callable[[str], None] | None = None) -> None:
        """Start every layer in dependency order and wait until each answers.

        On any failure, whatever was started is stopped again before the error is raised.
        ``progress`` is called with a short message before each step.
        """
        say = progress or (lambda message: None)
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        say("reading the project's settings")
        self._read_project()
        try:
            if self.network is not None:
                say(f"making {len(self.network.hosts)} hosts")
                self.network.create()
            self.check_ports()
            databases = (self.database, self.pooler, self.replica)
            backing: list[Program] = [p for p in (*databases, *self.caches) if p]
            for program in backing:
                say(f"starting {program.name}")
                self._start_and_wait(program)
            for args in self._setup_commands():
                say(f"running manage.py {' '.join(args)}")
                # No accelerator runs yet, and each starts empty: there is nothing to
                # purge, and every write's purge would fail and retry into the log.
                self.manage(args, STRATA_ACCELERATORS="")
            say("starting app servers")
            for program in self.app_servers:
                program.start()
                self.started.append(program)
            for program in self.app_servers:
                program.wait_ready()
            for program in self.accelerators:
                say(f"starting {program.name}")
                self._start_and_wait(program)
            # After the accelerators (it delivers to them), before HAProxy (which sends
            # traffic only to nodes whose /-/varnish-ready follows the bus).
            for program in self.purgers:
                say(f"starting {program.name}")
                program.start()
                self.started.append(program)
            for program in self.purgers:
                program.wait_ready()
            for program in self.load_balancers:
                say(f"starting {program.name}")
                self._start_and_wait(program)
            if self.exporters:
                say("starting the exporters")
            for program in self.exporters:  # they start while the request is checked
                program.start()
                self.started.append(program)
            say("checking a request end to end")
            self._check_end_to_end()
            self._wait_exporters()
        except BaseException:
            self.stop()
            raise
        self.notes += self.exporter_notes
        self.write_state()

    def _wait_exporters(self) -> None:
        """Wait for each exporter; one that does not answer is stopped and noted: the
        stack serves without it (an exporter is for looking, not for serving)."""
        for exporter in list(self.exporters):
            try:
                exporter.wait_ready()
            except StackError as error:
                exporter.stop()
                self.started.remove(exporter)
                self.exporters.remove(exporter)
                self.exporter_notes.append(
                    f"no metrics from {exporter.name}: {error.message} (see {exporter.log_path})"
                )

    def _read_project(self) -> None:
        """Refuse a project that cannot be served; take its health path; note what of
        it the stack will not serve (static files without a ``STATIC_ROOT``)."""
        self.facts = facts = inspect_project(
            self.config.project, self.config.allowed_hosts, self.run_dir / "logs" / "manage.log"
        )
        self.config.project.health_path = facts.health_path
        if self.purgers and not facts.bus:
            # STRATA['BUS'] is off, or the cache is not one the bus can use.
            self.purgers = []
            self.notes.append(
                "no purger: the project's cache keeps no invalidation log (STRATA['BUS'] "
                "is off or the cache is not Django's Redis cache); each app process "
                "purges the accelerators itself"
            )
        fronts: list[Varnish | HAProxy] = [*self.accelerators, *self.load_balancers]
        for front in fronts:
            front.health_path = facts.health_path
        self.notes += facts.warnings
        if facts.static_url.startswith("/") and facts.static_url != "/":
            for accelerator in self.accelerators:
                accelerator.static_prefix = facts.static_url
        if facts.staticfiles and not facts.static_root:
            self.notes.append(
                "static files are not served: the settings set no STATIC_ROOT "
                "(strata.env.configure(globals()) puts it in the run directory)"
            )
        elif facts.static_root and not (facts.serves_static or facts.whitenoise):
            self.notes.append(
                f"static files under {facts.static_url} are not served: install whitenoise "
                '(pip install "django-strata[stack]")'
            )

    def _setup_commands(self) -> list[list[str]]:
        """The configured commands (``migrate`` ...), and ``collectstatic`` where the
        settings give it a ``STATIC_ROOT``: a manifest storage without its manifest
        makes every page that uses ``{% static %}`` a 500."""
        commands = list(self.config.setup_commands)
        if self.facts is not None and self.facts.collects_static:
            commands.append(["collectstatic", "--noinput", "--verbosity", "0"])
        return commands

    def _start_and_wait(self, program: Program) -> None:
        program.start()
        self.started.append(program)
        program.wait_ready()

    def _check_end_to_end(self, timeout: float = 20.0) -> None:
        """Wait until the check path answers 2xx or 3xx through the load balancer and
        through every accelerator.

        Each Varnish node probes the app-server pool, which HAProxy (started after it)
        serves: until its probes pass again, a node answers 503 on its own, so a 5xx is
        asked again until ``timeout``. A 4xx is the project's answer: the start fails at
        once, with the reason the response and the app log give.
        """
        deadline = time.monotonic() + timeout
        path = self.config.check_path
        entrances = [(lb.host, lb.port) for lb in self.load_balancers]
        entrances = entrances or [(self.config.host, self.config.port)]
        entrances += [(v.host, v.port) for v in self.accelerators]
        for host, port in entrances:
            last = ""
            while True:
                self._fail_if_one_exited()
                try:
                    answer = http_get(host, port, path, timeout=10)
                    if answer.status < 400:
                        break
                    last = f"status {answer.status}"
                    if answer.status < 500:
                        raise StackError(
                            "stack",
                            f"GET {path} through {host}:{port} answered {answer.status}: "
                            f"{self._why(answer, path)}",
                        )
                except OSError as exc:
                    last = str(exc)
                if time.monotonic() > deadline:
                    logs = ", ".join(str(p.log_path) for p in self.app_servers[:1])
                    # With DEBUG off, a project without LOGGING logs no traceback.
                    replayed = self._replay_error(path) if last.startswith("status 5") else ""
                    if replayed:
                        last += f"; in manage.py shell: {replayed}"
                        logs += f", {self.run_dir / 'logs' / 'manage.log'}"
                    raise StackError(
                        "stack", f"GET {path} through {host}:{port} failed ({last}); see {logs}"
                    )
                time.sleep(0.2)
        for balancer in self.load_balancers:
            self._wait_accelerators_up(balancer, deadline)

    def _why(self, answer, path: str) -> str:
        """A 4xx in words: who answered (``X-Strata``), the app log's last warning, and
        what to change."""
        said = answer.headers.get("x-strata", "")
        server = answer.headers.get("x-strata-server", "")
        if said:
            reason = f"X-Strata: {said}"
        elif server:
            reason = f"Django's answer ({server})"
        else:
            reason = "not Django's answer (no X-Strata-Server header)"
        logged = self._last_app_log_warning()
        if logged:
            reason += f"; app log: {logged}"
        if answer.status == 400:
            hint = (
                f"add {', '.join(self.config.allowed_hosts)} to ALLOWED_HOSTS, or end the "
                "settings with strata.env.configure(globals()) (it reads DJANGO_ALLOWED_HOSTS)"
            )
        else:
            hint = (
                f"{path} does not answer anonymous visitors with a page; name one that "
                "does with --check-path"
            )
        return f"{reason} — {hint}"

    def _last_app_log_warning(self) -> str:
        """The last WARNING or ERROR line of the first app server's log, if any."""
        if not self.app_servers:
            return ""
        try:
            lines = self.app_servers[0].log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        for line in reversed(lines[-200:]):
            if " WARNING " in line or " ERROR " in line or "Invalid HTTP_HOST" in line:
                return line.strip()[:300]
        return ""

    def _fail_if_one_exited(self) -> None:
        """Raise for a started program that has exited since it passed its probe: the
        probe may have been answered by another program that took its port after the
        port check (varnishd then exits with "Address already in use")."""
        for program in self.started:
            if program not in self.exporters:  # checked by _wait_exporters
                program.raise_if_exited()

    def _replay_error(self, path: str) -> str:
        """Why GET ``path`` fails: the exception Django raises for the same request in
        ``manage.py shell`` (its traceback goes to manage.log); '' if none is raised."""
        code = (
            "from django.test import Client; "
            f"Client().get({path!r}, HTTP_HOST={self.config.allowed_hosts[0]!r})"
        )
        try:
            self.manage(["shell", "-c", code], timeout=120)
        except StackError as error:
            return error.message.rpartition(" failed: ")[2]
        return ""

    def _wait_accelerators_up(self, balancer: HAProxy, deadline: float) -> None:
        """Wait until ``balancer`` sends traffic to every accelerator (its checks passed)."""
        names = [v.name for v in self.accelerators]
        while True:
            self._fail_if_one_exited()
            try:
                states = balancer.server_states("accelerators")
            except (OSError, ValueError):
                states = {}
            down = [name for name in names if states.get(name, "?").split()[0] != "UP"]
            if not down:
                return
            if time.monotonic() > deadline:
                raise StackError(
                    balancer.name,
                    f"HAProxy does not send traffic to {', '.join(down)} "
                    f"({', '.join(states.get(n, '?') for n in down)})",
                    balancer.log_path,
                )
            time.sleep(0.2)

    def manage(self, args: list[str], timeout: float = 600, **env: str) -> str:
        """Run a Django management command against this stack's database and cache
        (``env``: variables to set for it, over the app servers' environment)."""
        project = self.config.project
        log_path = self.run_dir / "logs" / "manage.log"
        with open(log_path, "ab") as out:
            out.write(f"$ manage.py {' '.join(args)}\n".encode())
            out.flush()
            try:
                result = subprocess.run(
                    [sys.executable, "-m", "django", *args],
                    cwd=project.directory,
                    env=project.environment(**env),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired as exc:
                raise StackError(
                    "django", f"manage.py {args[0]} took over {timeout:.0f} s", log_path
                ) from exc
            out.write(result.stdout)
        if result.returncode != 0:
            last = result.stdout.decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
            raise StackError("django", f"manage.py {' '.join(args)} failed: {last[0]}", log_path)
        return result.stdout.decode("utf-8", "replace")

    def stop(self) -> list[StackError]:
        """Stop every started program in reverse order; return the errors met on the way."""
        errors = []
        for program in reversed(self.started):
            try:
                program.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(StackError(program.name, f"could not stop: {exc}", program.log_path))
        self.started.clear()
        if self.network is not None:
            try:
                self.network.remove()
            except Exception as exc:
                errors.append(StackError("network", f"could not remove the hosts: {exc}"))
        clear_state(self.run_dir)
        return errors

    def restart(self, program: Program) -> None:
        """Start ``program`` again (after it died or was stopped) and wait until ready."""
        program.stop()
        program.start()
        if program not in self.started:
            self.started.append(program)
        program.wait_ready()

    # -- reporting ---------------------------------------------------------------------
    def status_rows(self) -> list[StatusRow]:
        """The status table: real programs, then the embedded layers with their reason."""
        layers: list[Sequence[Program | None]] = [
            self.load_balancers,
            self.accelerators,
            self.app_servers,
            self.purgers,
            self.caches,
            [self.pooler, self.database, self.replica],
            self.exporters,
        ]
        rows = [p.status_row() for layer in layers for p in layer if p is not None]
        for layer in self.embedded:
            rows.append(
                StatusRow(
                    layer.layer,
                    layer.implementation,
                    "-",
                    layer.address,
                    None,
                    "-",
                    note=f"embedded: {layer.reason}",
                )
            )
        return rows

    def hold_path(self, program: Program) -> Path:
        """While this file exists, a supervisor leaves ``program`` stopped (fault drills)."""
        return hold_path(self.run_dir, program.name)

    @staticmethod
    def _program_state(program: Program) -> dict:
        state = {
            "layer": program.layer,
            "implementation": program.implementation,
            "host": program.host,
            "port": program.port,
            "netns": program.netns,
            "pid": program.pid,
        }
        work_dir = getattr(program, "work_dir", None)
        if work_dir is not None:
            state["work_dir"] = str(work_dir)
        if isinstance(program, HAProxy) and program.pool == "haproxy":
            state["pool_port"] = program.pool_port  # the app-server pool, past Varnish
        if isinstance(program, HAProxy) and program.metrics_port:
            state["metrics_port"] = program.metrics_port  # its Prometheus exporter
        if isinstance(program, Exporter):
            state["exports"] = program.target.name  # whose counters it serves
        return state

    def write_scrape_config(self) -> Path:
        """``config/prometheus.yml``: Prometheus's scrape jobs for what runs now (each
        app server, HAProxy's exporter, each program's exporter; docs/monitoring.md)."""
        programs = {p.name: self._program_state(p) for p in self.programs}
        text = render_scrape_config(targets_from_state(programs), scrape_interval="5s")
        path = self.run_dir / "config" / "prometheus.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def write_state(self) -> None:
        """Record what runs where (``state.json``, ``environment.json``), for ``strata
        status``, ``down``, ``manage``, ``bench`` and ``check``."""
        RunState(
            run_dir=self.run_dir,
            pid=os.getpid(),
            url=self.url,
            urls=self.urls,
            tls_url=self.tls_url,
            rows=[row.__dict__ for row in self.status_rows()],
            programs={p.name: self._program_state(p) for p in self.programs},
            network=self.network.describe() if self.network else None,
            cache_url=self.config.project.env.get("CACHE_URL", ""),
            database_url=self.config.project.env.get("DATABASE_URL", ""),
        ).write()
        self.write_scrape_config()
        project = self.config.project
        full = project.environment()
        names = [*project.env, "DJANGO_SETTINGS_MODULE", "PYTHONPATH"]
        write_environment(
            self.run_dir,
            {
                "directory": str(project.directory),
                "python": sys.executable,
                "environment": {name: full[name] for name in names if name in full},
            },
        )
