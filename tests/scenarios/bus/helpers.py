"""What the invalidation bus's real-process tests and its benchmarks share: a writer that
has only the database and the cache settings, the bus log of a running stack read from the
test process, and reads of an article's title through the load balancer.

A *writer* here is the demo's ``manage.py edit_article`` run with exactly what the README
names (``DATABASE_URL``, ``CACHE_URL``) plus what Python needs to find the project
(``DJANGO_SETTINGS_MODULE``, ``PYTHONPATH``): no ``STRATA_ACCELERATORS``, no purge
secret. Its writes can reach the accelerators only through the bus.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from django.core.cache.backends.redis import RedisCache

from strata.bus.log import InvalidationLog
from strata.stack.stack import Stack
from tests.helpers import Client

#: What a writer is given: the database, the cache, and how Python finds the project.
WRITER_VARIABLES = ("DATABASE_URL", "CACHE_URL", "DJANGO_SETTINGS_MODULE", "PYTHONPATH")

#: Marks the line of ``manage.py shell -c`` output that carries the articles.
ARTICLES_MARKER = "BUS-ARTICLES "

_TITLE = re.compile(r"<h1>(.*?)</h1>", re.S)


def writer_env(stack: Stack) -> dict[str, str]:
    """The environment of a writer that knows only the database and the cache (and the
    system's ``PATH`` and ``HOME``, which name nothing of the stack)."""
    full = stack.config.project.environment()
    env = {name: full[name] for name in WRITER_VARIABLES}
    env.update({name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ})
    assert not [name for name in env if name.startswith("STRATA_")], env
    return env


def articles(stack: Stack, count: int = 40) -> list[tuple[int, str]]:
    """``(pk, path)`` of the ``count`` newest articles, read by a writer-like process."""
    code = (
        "import json\n"
        "from newsroom.models import Article\n"
        f"rows = Article.objects.order_by('-published_at')[:{count}]\n"
        f"print({ARTICLES_MARKER!r} + json.dumps([[a.pk, a.get_absolute_url()] for a in rows]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "django", "shell", "--no-imports", "-c", code],
        cwd=stack.config.project.directory,
        env=writer_env(stack),
        capture_output=True,
        text=True,
        timeout=60,
    )
    for line in result.stdout.splitlines():
        if line.startswith(ARTICLES_MARKER):
            return [(pk, path) for pk, path in json.loads(line[len(ARTICLES_MARKER) :])]
    raise AssertionError(f"no articles: {result.stdout[-500:]} {result.stderr[-1500:]}")


@dataclass
class Edit:
    """One write by a writer process: the title it set, when its commit was acknowledged
    (``time.monotonic()``, the moment its "committed" line was read), how it ended."""

    title: str
    committed: float | None
    returncode: int
    output: str


def edit_title(stack: Stack, pk: int, title: str, kill_after_commit: bool = False) -> Edit:
    """Change article ``pk``'s title with ``manage.py edit_article``, run with only the
    database and cache settings; with ``kill_after_commit`` it SIGKILLs itself right after
    the commit (the ``writer-kill`` fault)."""
    argv = [sys.executable, "-m", "django", "edit_article", str(pk), "--title", title]
    if kill_after_commit:
        argv.append("--kill-after-commit")
    process = subprocess.Popen(
        argv,
        cwd=stack.config.project.directory,
        env=writer_env(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    committed = None
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if committed is None and ": committed " in line:
                committed = time.monotonic()
        returncode = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    return Edit(title, committed, returncode, "".join(lines))


def committed_edit(stack: Stack, pk: int, title: str, kill_after_commit: bool = False) -> float:
    """:func:`edit_title` that must succeed (or die by SIGKILL when asked): its commit time."""
    done = edit_title(stack, pk, title, kill_after_commit)
    expected = -signal.SIGKILL if kill_after_commit else 0
    assert done.returncode == expected and done.committed is not None, done
    return done.committed


def title_of(html: str) -> str | None:
    """The article's title on its page (the ``<h1>``)."""
    found = _TITLE.search(html)
    return found.group(1).strip() if found else None


def through_lb(stack: Stack, timeout: float = 10.0) -> Client:
    """An anonymous client of the public entrance (HAProxy, then Varnish)."""
    return Client(stack.config.host, stack.config.port, timeout=timeout)


def as_load_balancer(stack: Stack) -> dict[str, str]:
    """The headers a request has when HAProxy passes it to a node (the scheme and host
    are part of Varnish's cache key)."""
    return {"Host": f"{stack.config.host}:{stack.config.port}", "X-Forwarded-Proto": "http"}


def cache_on_every_node(stack: Stack, path: str) -> None:
    """Put ``path`` in every accelerator's cache; assert each now answers it with a HIT."""
    headers = as_load_balancer(stack)
    for node in stack.accelerators:
        client = Client(node.host, node.port, timeout=10)
        # An app worker that saw the cache fail answers uncacheable pages for a while.
        if not poll(
            lambda c=client: c.get(path, headers=headers).getheader("X-Cache") == "HIT", 20
        ):
            raise AssertionError(f"{path} is not cached on {node.name}")


def node_answer(stack: Stack, node, path: str) -> tuple[str, str | None]:
    """X-Cache and title of ``path`` asked of one accelerator directly."""
    answer = Client(node.host, node.port, timeout=10).get(path, headers=as_load_balancer(stack))
    return answer.getheader("X-Cache") or "", title_of(answer.text)


def wait_fresh(client: Client, path: str, title: str, since: float, timeout: float) -> float | None:
    """Seconds from ``since`` to the first read of ``path`` that shows ``title`` (None if
    none did within ``timeout``)."""
    deadline = since + timeout
    while time.monotonic() < deadline:
        if title_of(client.get(path).text) == title:
            return time.monotonic() - since
        time.sleep(0.01)
    return None


def stack_bus(stack: Stack) -> InvalidationLog:
    """The stack's invalidation log, read from this process: the same Redis and the same
    key function as the project's default Redis cache (``CACHE_URL``, no prefix)."""
    url = stack.config.project.env["CACHE_URL"]
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    return InvalidationLog(client, RedisCache(url, {}).make_key)


@dataclass
class Read:
    """One read through the load balancer: when it started and ended, what it showed."""

    start: float
    end: float
    status: int
    title: str | None
    x_cache: str


@dataclass
class Readers:
    """``count`` threads reading ``path`` through the load balancer until stopped
    (bounded: at most ``limit`` reads each, ``pause`` seconds apart)."""

    stack: Stack
    path: str
    count: int = 2
    limit: int = 20_000
    pause: float = 0.005
    reads: list[Read] = field(default_factory=list)
    errors: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.count)]

    def _run(self) -> None:
        client = through_lb(self.stack)
        mine: list[Read] = []
        errors = 0
        for _ in range(self.limit):
            if self._stop.is_set():
                break
            start = time.monotonic()
            try:
                answer = client.get(self.path)
            except OSError:
                errors += 1
                continue
            mine.append(
                Read(
                    start,
                    time.monotonic(),
                    answer.status,
                    title_of(answer.text),
                    answer.getheader("X-Cache") or "",
                )
            )
            time.sleep(self.pause)
        with self._lock:
            self.reads += mine
            self.errors += errors

    def __enter__(self) -> Readers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def stale_reads(
    reads: list[Read], writes: list[tuple[float, str]], original: str
) -> list[tuple[float, int]]:
    """Each read that does not show the newest title acknowledged before it started, as
    ``(age, index of the oldest write it misses)``; its age is the time from that write's
    commit to the read's start (``strata check``'s rule). ``writes``: ``(commit time,
    title)`` in commit order; ``original``: the title before them."""
    order = {original: -1, **{title: i for i, (_, title) in enumerate(writes)}}
    stale = []
    for read in reads:
        known = [i for i, (at, _) in enumerate(writes) if at <= read.start]
        if not known:
            continue
        shown = max(order.get(read.title or "", -1), -1)
        if shown < known[-1]:
            stale.append((read.start - writes[shown + 1][0], shown + 1))
    return stale


def stale_ages(reads: list[Read], writes: list[tuple[float, str]], original: str) -> list[float]:
    """The ages of :func:`stale_reads`."""
    return [age for age, _ in stale_reads(reads, writes, original)]


def poll(condition: Callable[[], bool], timeout: float, pause: float = 0.05) -> bool:
    """True as soon as ``condition()`` holds (an exception counts as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return True
        except Exception:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
