"""The client processes: mixed reads and writes through the load balancer.

Each client is a process of its own (several cores, no shared interpreter lock), with
its own kept-alive connections: one anonymous, one per role it logs in as. It draws
every choice from ``random.Random(f"{seed}:{index}")``, paces itself to its share of the
total rate (``--rate``: back to back when the stack is slower, never faster), and writes
one JSON line per request to its own file (:mod:`strata.check.history`).

A client owns the keys ``keys[i]`` with ``i % clients == index``: each key has exactly
one writer, which writes it one write at a time, so the key's sequence numbers commit
in order; it draws them by their write's ``weight``. A form write GETs its form page as
the form's user (recorded as a read: the page must show what that user last wrote),
fills the fields, one of them with the marker, and POSTs it. It is acknowledged when the
site answers with the form's success status (a redirect), and the time that answer
arrived is its commit time. A command write runs the scenario's management command in a
process of its own with only the database and cache settings (:mod:`.commands`); while
``writer-kill`` holds, with the arguments that make it SIGKILL itself after its commit.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import resource
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..httpclient import Answer, Session, fill_holes, find_form
from .commands import Writer
from .faults import WriterKill
from .history import ACKED, NOT_SENT, REJECTED, UNKNOWN, Read, Write, now, read_line, write_line
from .markers import key_of, marker, markers_in
from .scenario import Login, Scenario, User, WriteCommand, render

__all__ = ["ClientSpec", "run_client", "login", "must_keys", "read_page", "CLIENT_TIMEOUT"]

CLIENT_TIMEOUT = 40.0
"""Seconds a request may take: above HAProxy's ``timeout server`` (35 s), so that a hung
app server is timed out by the load balancer (a 504), not by the client."""


@dataclass
class ClientSpec:
    """What one client process does (picklable: it crosses into the process)."""

    index: int
    clients: int
    seed: int
    run_id: str
    host: str
    port: int
    scenario: Scenario
    objects: list[dict[str, str]]
    rate: float  # this client's requests per second
    out: Path
    max_seconds: float  # a bound on the traffic, whatever the coordinator says
    keys: list[str] = field(default_factory=list)  # the keys this client writes
    writer: Writer | None = None  # runs the command writes (None: the scenario has none)


def login(session: Session, how: Login, user: User) -> str | None:
    """Log ``session`` in as ``user``; None when it worked, else why not (one line)."""
    try:
        page = session.get(how.path)
    except (OSError, http.client.HTTPException) as error:
        return f"GET {how.path} failed: {error}"
    if page.status != 200:
        return f"GET {how.path} answered {page.status}"
    form = find_form(page.text, how.path, how.form)
    if form is None:
        wanted = f"the form {how.form}" if how.form else "a form with a password field"
        return f"{how.path} has no {wanted}"
    fields = form.submit({how.username_field: user.username, how.password_field: user.password})
    try:
        answer = session.post_form(form.action, fields)
    except (OSError, http.client.HTTPException) as error:
        return f"logging in as {user.username} failed: {error}"
    if answer.status not in how.success:
        return (
            f"logging in as {user.username} at {how.path} answered {answer.status}, "
            f"not {'/'.join(map(str, how.success))} (wrong password, or not that user?)"
        )
    return None


def must_keys(scenario: Scenario, template: str, n: int) -> tuple[str, ...]:
    """The keys that the page ``template`` of object ``n`` always shows."""
    return tuple(key_of(w.name, n) for w in scenario.writes if template in w.shows_on)


def _error(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:200]


def read_page(
    session: Session,
    run_id: str,
    path: str,
    who: str,
    client: int,
    must: tuple[str, ...] = (),
    kind: str = "read",
    headers: dict[str, str] | None = None,
    visible=None,
) -> tuple[Read, Answer | None]:
    """GET ``path`` and record the markers it showed (in ``visible(page)``, if given)."""
    start = now()
    try:
        answer = session.get(path, headers=headers)
    except (OSError, http.client.HTTPException) as error:
        return Read(
            client, path, who, start, now(), None, must=must, error=_error(error), kind=kind
        ), None
    end = now()
    seen = {}
    if answer.status == 200:
        seen = markers_in(run_id, visible(answer.text) if visible else answer.text)
    read = Read(
        client=client,
        path=path,
        who=who,
        start=start,
        end=end,
        status=answer.status,
        seen={key: tuple(sorted(seqs)) for key, seqs in seen.items()},
        must=must,
        x_cache=answer.getheader("X-Cache"),
        x_strata=answer.getheader("X-Strata"),
        server=(answer.getheader("X-Strata-Server") or "").split(" ")[0] or None,
        kind=kind,
    )
    return read, answer


def _write_of_key(key: str) -> tuple[str, int]:
    name = key.rstrip("0123456789")
    return name, int(key[len(name) :])


class _Client:
    def __init__(self, spec: ClientSpec, out, kill_writers=None):
        self.spec = spec
        self.kill_writers = kill_writers
        self.scenario = spec.scenario
        self.out = out
        self.rng = random.Random(f"{spec.seed}:{spec.index}")
        self.anon = Session(spec.host, spec.port, timeout=CLIENT_TIMEOUT)
        self.sessions: dict[str, Session] = {}
        self.seq = dict.fromkeys(spec.keys, 0)
        self.counts = {"reads": 0, "writes": 0, "errors": 0}
        reads = self.scenario.reads
        self.read_weights = [r.weight for r in reads]
        writes = [self.scenario.write_named(_write_of_key(k)[0]) for k in spec.keys]
        self.key_weights = [w.weight for w in writes]
        # While writer-kill holds, command writes are drawn more often (and killed).
        self.killing_weights = [
            w.weight * (WriterKill.boost if isinstance(w, WriteCommand) else 1.0) for w in writes
        ]

    def killing(self) -> bool:
        return self.kill_writers is not None and self.kill_writers.is_set()

    def draw_key(self) -> str:
        weights = self.killing_weights if self.killing() else self.key_weights
        if len(set(weights)) == 1:
            return self.rng.choice(self.spec.keys)
        return self.rng.choices(self.spec.keys, weights=weights)[0]

    def emit(self, line: str) -> None:
        self.out.write(line + "\n")

    def note(self, text: str) -> None:
        self.emit(json.dumps({"t": "note", "c": self.spec.index, "text": text}))

    def log_in(self) -> str | None:
        for role in self.scenario.roles():
            users = self.scenario.users[role]
            user = users[self.spec.index % len(users)]
            session = Session(self.spec.host, self.spec.port, timeout=CLIENT_TIMEOUT)
            problem = login(session, self.scenario.login, user)
            if problem:
                return problem
            self.sessions[role] = session
        return None

    def close(self) -> None:
        self.anon.close()
        for session in self.sessions.values():
            session.close()

    # -- one operation --------------------------------------------------------------------
    def step(self) -> None:
        scenario = self.scenario
        draw = self.rng.random()
        write_share = scenario.write_share if self.spec.keys else 0.0
        if draw < write_share:
            self.write(self.draw_key())
            return
        logged_in = self.rng.random() < scenario.logged_in_share
        template = self.rng.choices(scenario.reads, weights=self.read_weights)[0].path
        n = self.rng.randrange(len(self.spec.objects)) + 1
        path = render(template, self.spec.objects[n - 1])
        must = must_keys(scenario, template, n)
        if logged_in:
            session, who = self.sessions[scenario.logged_in_as], scenario.logged_in_as
        else:
            session, who = self.anon, "anon"
        read, _ = read_page(
            session, self.spec.run_id, path, who, self.spec.index, must, visible=scenario.visible
        )
        self.counts["reads"] += 1
        self.counts["errors"] += read.status is None or read.status >= 500
        self.emit(read_line(read))

    def write(self, key: str) -> None:
        name, n = _write_of_key(key)
        form_spec = self.scenario.write_named(name)
        variables = self.spec.objects[n - 1]
        self.seq[key] += 1
        seq = self.seq[key]
        if isinstance(form_spec, WriteCommand):
            self.command_write(form_spec, key, n, seq)
            return
        session = self.sessions[form_spec.user]
        page_path = render(form_spec.page, variables)
        read, page = read_page(
            session,
            self.spec.run_id,
            page_path,
            form_spec.user,
            self.spec.index,
            must_keys(self.scenario, form_spec.page, n),
            kind="form",
            visible=self.scenario.visible,
        )
        self.emit(read_line(read))
        self.counts["writes"] += 1

        def record(outcome, status=None, error="", sent=None, ended=None, path=page_path):
            t = now()
            self.emit(
                write_line(
                    Write(
                        self.spec.index,
                        key,
                        seq,
                        path,
                        sent if sent is not None else t,
                        ended if ended is not None else t,
                        status,
                        outcome,
                        error,
                    )
                )
            )
            if outcome == UNKNOWN:
                self.counts["errors"] += 1

        if page is None or page.status != 200:
            record(NOT_SENT, read.status, read.error or f"the form page answered {read.status}")
            return
        form = find_form(fill_holes(session, page.text), page_path, form_spec.form)
        if form is None:
            record(NOT_SENT, page.status, f"no form {form_spec.form} on {page_path}")
            return
        values = {
            **variables,
            "marker": marker(self.spec.run_id, key, seq),
            "n": n,
            "key": key,
            "seq": seq,
        }
        changes = {
            field_name: render(value, values) for field_name, value in form_spec.fields.items()
        }
        extra = {
            field_name: render(value, variables) for field_name, value in form_spec.extra.items()
        }
        fields = form.submit(changes, extra)
        sent = now()
        try:
            answer = session.post_form(form.action, fields)
        except (OSError, http.client.HTTPException) as error:
            record(UNKNOWN, None, _error(error), sent, now(), form.action)
            return
        ended = now()
        if answer.status in form_spec.success:
            record(ACKED, answer.status, "", sent, ended, form.action)
        elif answer.status >= 500:
            record(UNKNOWN, answer.status, _failure(answer), sent, ended, form.action)
        else:
            record(REJECTED, answer.status, _rejection(answer), sent, ended, form.action)

    def _not_sent(self, key: str, seq: int, shown: str, reason: str) -> None:
        """Record a command write that never started (its process could not run)."""
        t = now()
        write = Write(self.spec.index, key, seq, shown, t, t, None, NOT_SENT, reason, via="command")
        self.emit(write_line(write))

    def command_write(self, spec: WriteCommand, key: str, n: int, seq: int) -> None:
        self.counts["writes"] += 1
        mark = marker(self.spec.run_id, key, seq)
        values = {**self.spec.objects[n - 1], "marker": mark, "n": n, "key": key, "seq": seq}
        argv = [render(argument, values) for argument in spec.command]
        killing = self.killing() and bool(spec.kill_after_commit)
        if killing:
            argv += list(spec.kill_after_commit)
        shown = f"manage.py {' '.join(argv[:1] + argv[1:2])}"  # the command and its object
        writer = self.spec.writer
        if writer is None:
            self._not_sent(key, seq, shown, "no command writer (no environment.json)")
            return
        try:
            run = writer.run(argv, mark, CLIENT_TIMEOUT)
        except OSError as error:
            self._not_sent(key, seq, shown, _error(error))
            return
        acknowledged = run.acknowledged
        if acknowledged is not None:
            outcome, problem, ended = ACKED, "", acknowledged
        else:
            outcome, problem, ended = UNKNOWN, run.problem(), run.ended
            self.counts["errors"] += 1
        self.emit(
            write_line(
                Write(
                    self.spec.index,
                    key,
                    seq,
                    shown,
                    run.sent,
                    ended,
                    run.returncode,
                    outcome,
                    problem,
                    via="command",
                    killed=run.killed,
                )
            )
        )
        if killing and not run.killed:
            self.note(f"{shown} was to SIGKILL itself after its commit, and did not")


def _failure(answer: Answer) -> str:
    """A 5xx answer, with what tells who gave it: Varnish's ``X-Cache``/``X-Strata``, the
    app server's ``X-Strata-Server``, and the first words of the body (HAProxy's and
    Varnish's own error pages say which of them answered)."""
    said = [
        f"{name}={answer.getheader(name)}"
        for name in ("x-cache", "x-strata", "x-strata-server", "server")
        if answer.getheader(name)
    ]
    words = " ".join(re.sub(r"<[^>]+>", " ", answer.text).split())[:120]
    return " ".join([f"answered {answer.status}", *said, f"body: {words}" if words else ""]).strip()


def _rejection(answer: Answer) -> str:
    errors = re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>', answer.text, re.S)
    text = re.sub(r"<[^>]+>", " ", " ".join(errors))
    text = " ".join(text.split())
    return f"answered {answer.status}" + (f": {text[:160]}" if text else "")


def run_client(spec: ClientSpec, ready, go, stop, start_time, kill_writers=None) -> None:
    """The body of one client process: log in, report ready, run until told to stop
    (``kill_writers``: set while command writes must SIGKILL themselves, writer-kill)."""
    # Ctrl-C is the coordinator's to handle: it heals its faults and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(1)  # the stack's own processes come first when the cores are busy
    with open(spec.out, "a", buffering=1 << 16, encoding="utf-8") as out:
        client = _Client(spec, out, kill_writers)
        problem = client.log_in()
        ready.put((spec.index, problem))
        if problem:
            client.note(problem)
            return
        if not go.wait(timeout=300):
            return
        begin = start_time.value
        hard_stop = begin + spec.max_seconds
        interval = 1.0 / spec.rate if spec.rate > 0 else 0.0
        next_at = begin + client.rng.random() * interval
        try:
            while not stop.is_set():
                t = now()
                if t >= hard_stop:
                    break
                if next_at > t:
                    time.sleep(min(next_at - t, 0.25))
                    continue
                # After a stall (a hung server), resume the pace instead of bursting.
                next_at = max(next_at, t - 0.1) + interval
                client.step()
        finally:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            client.emit(
                json.dumps(
                    {
                        "t": "client",
                        "c": spec.index,
                        **client.counts,
                        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
                        "keys": spec.keys,
                    }
                )
            )
            client.close()
