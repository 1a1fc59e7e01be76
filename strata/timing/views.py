"""A small status page: where each view's time goes, from every live process.

``path("-/", include("strata.urls"))`` serves it at ``/-/timing/``: JSON by default,
a plain HTML table with ``?format=html``. It shows each view's requests, mean and
bucket-bound p50/p99, and the shares of db, cache, template and app — with the
components above the seed's 30% rule marked — plus the slowest statements.

Only for the people who run the site: a request from an address in ``INTERNAL_IPS`` or
a loopback address, or a logged-in staff user. Behind a proxy every request comes from
the proxy's (often loopback) address, so a request carrying ``X-Forwarded-For`` is
local only if every address in it is; one carrying ``Forwarded`` never is. The answer
is never stored anywhere (``private, no-store``).
"""

from __future__ import annotations

import ipaddress
import logging
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_cache_control
from django.utils.html import escape

from ..bus import bus_log
from . import aggregates

__all__ = ["status", "may_see", "report", "bus_figures"]

log = logging.getLogger("strata.timing")


def _is_internal(address: str) -> bool:
    if address in getattr(settings, "INTERNAL_IPS", ()):
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def may_see(request: HttpRequest) -> bool:
    """True for a request from an internal address or from a staff user."""
    meta = request.META
    addresses = [meta.get("REMOTE_ADDR", "")]
    addresses += [a.strip() for a in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
    if "HTTP_FORWARDED" not in meta and all(_is_internal(a) for a in addresses):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def bus_figures() -> dict | None:
    """The invalidation bus's figures; None when the cache holds no log (the bus is
    off); ``{"error": ...}`` when its Redis does not answer (the rest of the page
    still shows)."""
    log_ = bus_log()
    if log_ is None:
        return None
    try:
        return log_.status()
    except Exception as exc:  # CacheUnavailable, or redis-py's own connection errors
        log.warning("strata: bus figures unavailable (%s)", exc)
        return {"error": f"the cache does not answer: {exc}"}


def report() -> dict:
    """Every live process's figures, with one summarized row per view and kind (and the
    bus's, when it is on)."""
    aggregates.flush(force=True)  # this process's latest requests too
    merged = aggregates.read_all()
    rows = []
    for view, kinds in merged["views"].items():
        for kind, entry in kinds.items():
            rows.append({"view": view, "kind": kind, **aggregates.summarize(entry)})
    rows.sort(key=lambda row: row["mean_ms"] * row["count"], reverse=True)
    data = {
        "generated": time.time(),
        "processes": merged["processes"],
        "buckets_ms": merged["buckets_ms"],
        "views": rows,
        "purges": merged["purges"],
        "near_cache": merged.get("near_cache"),
        "raw": merged["views"],
    }
    bus = bus_figures()
    if bus is not None:
        data["bus"] = bus
    return data


def _near_html(near: dict | None) -> str:
    if not near:
        return "<p>Near cache: off.</p>"
    looked = near.get("hits", 0) + near.get("misses", 0)
    ratio = f"{100 * near.get('hits', 0) / looked:.1f}% of lookups answered" if looked else "unused"
    return (
        f"<p>Near cache: {near['processes']} process(es), {near.get('entries', 0)} copies, "
        f"{near.get('bytes', 0) / 1e6:.1f} MB; {ratio}; {near.get('invalidated', 0)} "
        f"invalidated, {near.get('refused', 0)} fills refused, {near.get('evicted', 0)} "
        f"evicted, {near.get('dropped', 0)} drops (connection lost or silent).</p>"
    )


def _refused() -> HttpResponse:
    response = HttpResponse(b"Forbidden.\n", status=403, content_type="text/plain")
    patch_cache_control(response, private=True, no_store=True)
    return response


def _percent(share: float, flagged: bool) -> str:
    text = f"{share * 100:.0f}%"
    return f"<strong>{text}</strong>" if flagged else text


def _ms(value: float | None) -> str:
    return "&gt; 5000" if value is None else f"{value:g}"


def _html(data: dict) -> str:
    head = (
        "<tr><th>view</th><th>kind</th><th>requests</th><th>mean ms</th><th>p50 ≤</th>"
        "<th>p99 ≤</th><th>db</th><th>cache</th><th>template</th><th>app</th>"
        "<th>queries</th><th>cache calls</th><th>slowest statement</th></tr>"
    )
    rows = []
    for row in data["views"]:
        shares, over = row["shares"], row["over_30"]
        slowest = row["slowest"][0] if row["slowest"] else None
        rows.append(
            "<tr>"
            f"<td>{escape(row['view'])}</td><td>{escape(row['kind'])}</td>"
            f"<td>{row['count']}</td><td>{row['mean_ms']:.2f}</td>"
            f"<td>{_ms(row['p50_ms'])}</td><td>{_ms(row['p99_ms'])}</td>"
            + "".join(
                f"<td>{_percent(shares[name], name in over)}</td>"
                for name in ("db", "cache", "template", "app")
            )
            + f"<td>{row['queries_per_request']:.1f}</td>"
            f"<td>{row['cache_calls_per_request']:.1f}</td>"
            + (
                f"<td>{slowest['ms']:.2f} ms: <code>{escape(slowest['sql'])}</code></td>"
                if slowest
                else "<td></td>"
            )
            + "</tr>"
        )
    processes = len(data["processes"])
    purges = data.get("purges")
    if purges:
        failure = purges.get("last_failure")
        last = (
            f"; last failure {time.strftime('%H:%M:%S', time.localtime(failure['time']))} "
            f"on {escape(failure['node'])}: {escape(failure['reason'])}"
            if failure
            else ""
        )
        purge_line = (
            f"<p>Purges: {purges.get('requests', 0)} sent, {purges.get('failures', 0)} "
            f"failed, {purges.get('waiting_retry', 0)} waiting for a retry, "
            f"{purges.get('given_up', 0)} given up{last}.</p>"
        )
    else:
        purge_line = "<p>Purges: no accelerator is configured.</p>"
    return (
        "<!doctype html><meta charset=utf-8><title>Strata timing</title>"
        "<style>td,th{padding:2px 8px;text-align:right}td:first-child,td:last-child"
        "{text-align:left}</style>"
        f"<h1>Where the time goes</h1><p>{processes} live process(es); shares above "
        "30% in bold (no component should take more than about 30% of a request).</p>"
        f"{purge_line}{_near_html(data.get('near_cache'))}{_bus_html(data.get('bus'))}<table>{head}{''.join(rows)}</table>"
    )


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def _bus_html(bus: dict | None) -> str:
    if bus is None:
        return ""
    if "error" in bus:
        return f"<p>Invalidation bus: {escape(bus['error'])}.</p>"
    lease = bus.get("lease")
    holder = (
        f"{escape(lease['holder'])} holds the lease ({lease['ttl']:.1f} s)"
        if lease
        else "<strong>no purger holds the lease</strong>"
    )
    age = bus.get("head_age")
    stats = bus.get("stats") or {}
    nodes = "".join(
        f"<tr><td>{escape(node)}</td><td>{escape(seen.get('delivered') or '-')}</td>"
        f"<td>{seen.get('behind', 0)}</td>"
        f"<td>{_age(seen.get('lag'))}</td></tr>"
        for node, seen in sorted((bus.get("nodes") or {}).items())
    )
    last = stats.get("last_failure")
    return (
        f"<p>Invalidation bus: {bus.get('length', 0)} entries, head "
        f"{_age(age)} old; {holder}; "
        f"{stats.get('batches', 0)} batches, {stats.get('tags', 0)} tags, "
        f"{stats.get('requests', 0)} requests, {stats.get('retries', 0)} retries, "
        f"{stats.get('failures', 0)} failures, {stats.get('full_purges', 0)} full purges"
        + (f"; last failure: {escape(last)}" if last else "")
        + ".</p><table><tr><th>accelerator</th><th>delivered</th><th>behind</th>"
        f"<th>lag</th></tr>{nodes}</table>"
    )


def status(request: HttpRequest) -> HttpResponse:
    """The timing figures as JSON (``?format=html``: a table), for internal requests only."""
    if not may_see(request):
        return _refused()
    try:
        data = report()
    except Exception as exc:  # the cache server is down: say so, do not fail
        log.warning("strata: timing figures unavailable (%s)", exc)
        response: HttpResponse = JsonResponse({"error": f"figures unavailable: {exc}"}, status=503)
    else:
        if request.GET.get("format") == "html":
            response = HttpResponse(_html(data))
        else:
            response = JsonResponse(data, json_dumps_params={"indent": 2})
    patch_cache_control(response, private=True, no_store=True)
    return response
