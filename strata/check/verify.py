"""After the traffic: what the pages show through every cache, and with every cache off.

* :func:`final_reads`: every page of every object, anonymously through the load
  balancer, once the purge window has passed since the last write. Nothing is written
  any more, so each must show the last acknowledged write: a page left stale in any
  layer (a purge that was given up, a version that came back) is caught here even when
  no client happened to read it during the run.
* :func:`final_views`: each write's ``verify`` page through the app-server pool in
  Strata's bench mode (``X-Strata-Bench: cold`` with the purge secret: Django renders
  with the page, fragment and query caches off; Varnish is not on that path), so it
  shows what the database holds: the lost-write check.
"""

from __future__ import annotations

import http.client
import time

from ..edge.outcomes import bypass
from .freshness import FinalView
from .history import Read
from .markers import key_of, markers_in
from .scenario import Scenario, render
from .target import Target
from .traffic import must_keys, read_page

__all__ = ["final_reads", "final_views", "BENCH_PROOF"]

BENCH_PROOF = bypass("bench cold")
"""The ``X-Strata`` of a page rendered with every Strata cache off."""


def _pages(scenario: Scenario, objects: list[dict[str, str]]) -> list[tuple[str, int]]:
    templates = [r.path for r in scenario.reads]
    for write in scenario.writes:
        templates += [p for p in write.shows_on if p not in templates]
    pages: list[tuple[str, int]] = []
    for template in dict.fromkeys(templates):
        if "{" not in template:
            pages.append((template, 0))
            continue
        pages += [(template, n) for n in range(1, len(objects) + 1)]
    return pages


def final_reads(target: Target, scenario: Scenario, objects, run_id: str) -> list[Read]:
    """Every page once, anonymously, through the load balancer (pages that redirect an
    anonymous reader, such as the admin's change form, are left out)."""
    reads = []
    anonymous = target.public(timeout=30)
    try:
        for template, n in _pages(scenario, objects):
            path = render(template, objects[n - 1]) if n else template
            must = must_keys(scenario, template, n) if n else ()
            read, answer = read_page(
                anonymous, run_id, path, "final", -1, must, kind="final", visible=scenario.visible
            )
            if answer is not None and answer.status in (301, 302, 303) and must:
                continue  # a page only its writer may see (a login redirect): not public
            reads.append(read)
    finally:
        anonymous.close()
    return reads


def final_views(
    target: Target, scenario: Scenario, objects, run_id: str, attempts: int = 5
) -> list[FinalView]:
    """Each written key as its ``verify`` page shows it with every cache off."""
    views: list[FinalView] = []
    pages: dict[str, tuple[dict[str, set[int]], str]] = {}
    session = target.pool(timeout=30)
    try:
        for write in scenario.writes:
            for n, variables in enumerate(objects, start=1):
                path = render(write.verify, variables)
                if path not in pages:
                    pages[path] = _fetch_cold(session, target, scenario, run_id, path, attempts)
                seen, error = pages[path]
                key = key_of(write.name, n)
                views.append(FinalView(key, path, tuple(sorted(seen.get(key, ()))), error))
    finally:
        session.close()
    return views


def _fetch_cold(session, target: Target, scenario: Scenario, run_id: str, path: str, attempts: int):
    if not target.secret:
        return {}, f"no purge secret in {target.run_dir / 'purge-secret'}: cannot bypass the caches"
    problem = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(2.0 * attempt, 5.0))
        try:
            answer = session.get(path, headers=target.bench_headers)
        except (OSError, http.client.HTTPException) as error:
            problem = f"GET {path} on the pool failed: {error}"
            continue
        if answer.status != 200:
            problem = f"GET {path} on the pool answered {answer.status}"
            continue
        if answer.getheader("X-Strata") != BENCH_PROOF:
            return {}, (
                f"GET {path} on the pool was not rendered with the caches off "
                f"(X-Strata: {answer.getheader('X-Strata')!r}, expected {BENCH_PROOF!r})"
            )
        return markers_in(run_id, scenario.visible(answer.text)), ""
    return {}, problem
