"""Timing of every request: database, cache, templates and the rest, measured in production.

The seed's "30% rule": for requests that reach Django, no one component (database,
cache, …) should take more than about 30% of the time; most of it should be Python.
To know, every request is measured — cheaply enough to leave on: microseconds per
request, and about 1 µs more per database statement or cache call (measured by
``benchmarks/timing_overhead.py``).

What is measured, per request (:mod:`strata.timing.collector`)
    ``db`` (SQL statements as executed — rows fetched afterwards, as SQLite steps
    through a result, count as ``app`` — opening connections, commits), ``cache``
    (every call to every configured Django cache backend and Strata's own Redis
    calls), ``tpl`` (Django and Jinja2 templates) and ``app``, the rest: ``total``
    minus the others. The sections never overlap — a query run from a template is
    database time, a template that includes another is one template — so they add up
    to the total. The clock runs from the top of ``StrataMiddleware`` to its end;
    Django's handler before it (building the request, ``request_started``) is not in
    it, nor are page-cache hits answered below Django by
    :class:`strata.pages.wsgi.PageCacheApplication` (they are not timed at all).

Where it goes
    * ``Server-Timing`` on the response (:mod:`strata.timing.headers`), per
      ``STRATA['TIMING']['SERVER_TIMING']``: ``"personal"`` (default) only on responses
      no shared cache stores (``Cache-Control`` ``private`` or ``no-store``),
      ``"all"`` on every response (an accelerator then keeps one render's timings
      and shows them with each hit), ``"off"``.
    * Per-view figures in each process, written to the Strata cache every
      ``FLUSH_INTERVAL`` seconds (:mod:`strata.timing.aggregates`), merged by
      :func:`strata.timing.aggregates.read_all` and shown at ``/-/timing/``
      (:mod:`strata.timing.views`).

Bench mode (for ``strata bench``)
    A request with both headers

    ::

        X-Strata-Bench: warm          (or cold; case and surrounding spaces ignored)
        X-Strata-Bench-Secret: <STRATA['BENCH_SECRET']>

    where the configured secret is not empty and the given one equals it
    (``hmac.compare_digest``), is rendered whatever the page cache holds:

    * the page cache is neither read nor written, nor its single-flight lock taken;
    * ``warm``: the query and fragment caches work as usual (hits served, misses
      stored); ``cold``: every Strata cache is off for the request
      (:class:`strata.querycache.control.caching_disabled`, which the fragment cache
      obeys too): every query goes to the database and nothing is stored;
    * the response carries ``X-Strata: bypass: bench warm`` (or ``cold``),
      ``Cache-Control: private, no-store``, ``Server-Timing`` (whatever
      ``SERVER_TIMING`` says), ``X-Strata-Queries: <statements>``,
      ``X-Strata-Slow-Queries: [{"ms": 1.234, "sql": "SELECT ..."}, ...]`` (up to
      three, slowest first, SQL without parameters on one line of at most 300
      characters, JSON with ``ensure_ascii``) and ``X-Strata-Timing-View: <dotted view
      name, or the first segment of the path>``;
    * its figures are kept apart (kinds ``bench-warm`` and ``bench-cold``).

    A missing or wrong secret, an empty ``BENCH_SECRET`` or another value of
    ``X-Strata-Bench`` are ignored, never an error: the request is served as any other.
    ``strata bench`` sends them to the app servers directly: Strata's VCL does not pass
    them, so through Varnish a cached object would answer them.
    With ``TIMING`` off, bench mode works the same: the first bench request puts the
    hooks in place (it has proved it knows the secret); other requests stay untimed.

Settings: ``STRATA['TIMING']`` (``ENABLED``, ``SERVER_TIMING``, ``FLUSH_INTERVAL``,
``SLOW_QUERIES``; see :mod:`strata.conf`), checked by ``strata.E024``/``W025``.
"""

from .aggregates import flush, read_all, summarize
from .collector import RequestTiming, current, timed
from .headers import bench_mode, server_timing
from .monkey_patch import install, is_installed

__all__ = [
    "RequestTiming",
    "current",
    "timed",
    "install",
    "is_installed",
    "read_all",
    "flush",
    "summarize",
    "server_timing",
    "bench_mode",
]
