"""What answered a request and why, read back from the headers Strata set.

Pure functions of a response's headers, as Strata left them (before the toolbar touched
them): the ``X-Strata`` word (:mod:`strata.edge.outcomes`), ``Cache-Control`` and
``Surrogate-Control`` (:mod:`strata.edge.policy`), and the tags header the accelerator
purges by (:mod:`strata.edge.headers`).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..edge.outcomes import Outcome, is_bypass

__all__ = ["SEEN_HEADERS", "what_answered", "accelerator_verdict", "cache_directives"]

SEEN_HEADERS = (
    "X-Strata",
    "Cache-Control",
    "Surrogate-Control",
    "xkey",
    "Surrogate-Key",
    "Vary",
    "X-Strata-Server",
)
"""The response headers the panel reads (and shows as they were)."""

_SAID: dict[str, str] = {
    Outcome.PAGE_HIT.value: "Served from Strata's page cache, fresh and valid: the view did not run.",
    Outcome.PAGE_STALE.value: (
        "Served from the page cache past its lifetime: still valid (none of its tags "
        "changed), refreshed by one request meanwhile (RFC 5861)."
    ),
    Outcome.PAGE_MISS.value: "Not in the page cache: rendered by the view, and stored there.",
    Outcome.EDGE_HIT.value: "Served by the accelerator from its copy.",
    Outcome.EDGE_STALE.value: "Served by the accelerator from an expired copy, in grace.",
}


def what_answered(word: str | None, page_cache_on: bool, toolbar_first: bool) -> dict[str, str]:
    """``{"word", "reason", "summary"}``: who answered, in the ``X-Strata`` vocabulary.

    ``word`` is the ``X-Strata`` header (None when absent); ``toolbar_first`` says that
    the toolbar's middleware runs before ``StrataMiddleware``, so the panel saw
    Strata's final answer.
    """
    if word is None:
        if not toolbar_first:
            summary = (
                "Unknown: the toolbar runs inside StrataMiddleware, which decides after the "
                "panel looked (and page-cache hits never reach the toolbar). Put "
                "DebugToolbarMiddleware before StrataMiddleware in MIDDLEWARE."
            )
        elif not page_cache_on:
            summary = "Rendered by the view; the page cache is off (STRATA['PAGE_CACHE'])."
        else:
            summary = "No X-Strata header: StrataMiddleware did not answer this response."
        return {"word": "", "reason": "", "summary": summary}
    if is_bypass(word):
        reason = word.split(": ", 1)[1]
        return {
            "word": Outcome.BYPASS.value,
            "reason": reason,
            "summary": f"Rendered by the view and stored in no cache: {reason}.",
        }
    said = _SAID.get(word)
    return {"word": word, "reason": "", "summary": said or f"X-Strata: {word}"}


def cache_directives(value: str) -> dict[str, str]:
    """The directives of a ``Cache-Control`` value, lower-cased (``{"s-maxage": "300"}``)."""
    directives = {}
    for part in value.split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            directives[name.strip().lower()] = argument.strip().strip('"')
    return directives


def accelerator_verdict(headers: Mapping[str, str | None]) -> dict[str, object]:
    """May a shared cache (Varnish, a CDN) store this response, for how long, by which tags.

    RFC 9111 5.2.2: ``private``, ``no-store`` and ``no-cache`` keep it out (Strata's VCL
    passes them); ``s-maxage`` (or ``max-age`` with ``public``) is its shared lifetime.
    """
    cache_control = headers.get("Cache-Control") or ""
    directives = cache_directives(cache_control)
    refused = [d for d in ("private", "no-store", "no-cache") if d in directives]
    lifetime = directives.get("s-maxage") or (
        directives.get("max-age") if "public" in directives else None
    )
    if refused:
        may_store, why = False, f"Cache-Control: {', '.join(refused)}"
    elif lifetime:
        may_store, why = True, f"shared for {lifetime} s (Cache-Control: {cache_control})"
    else:
        may_store, why = False, "no shared lifetime (no s-maxage, no public max-age)"
    tags_value = headers.get("xkey") or headers.get("Surrogate-Key") or ""
    return {
        "may_store": may_store,
        "why": why,
        "cache_control": cache_control,
        "stale_while_revalidate": directives.get("stale-while-revalidate", ""),
        "esi": "ESI/1.0" in (headers.get("Surrogate-Control") or ""),
        "tags": sorted(tags_value.split()),
    }
