"""System check ``strata.W040``: what the stack exports (:mod:`strata.env`) reaches the settings.

A site that ignores ``STRATA_ACCELERATORS`` writes without purging Varnish; one that
ignores ``DATABASE_URL`` writes to another database than the stack's.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

from . import env
from .conf import strata_settings


@register(Tags.compatibility)
def check_stack_environment(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Each variable `strata up`, `strata manage` or a `strata config` unit exports is used."""
    ignored = []
    if os.environ.get("DATABASE_URL"):
        wanted = env.database(default="")
        actual = settings.DATABASES.get("default", {})
        if any(actual.get(k) != wanted.get(k) for k in ("ENGINE", "NAME", "HOST", "PORT")):
            ignored.append("DATABASE_URL")
    if os.environ.get("CACHE_URL"):
        wanted = env.cache(default="")
        actual = settings.CACHES.get("default", {})
        if any(actual.get(k) != wanted.get(k) for k in ("BACKEND", "LOCATION")):
            ignored.append("CACHE_URL")
    hosts = env.split_list(os.environ.get("DJANGO_ALLOWED_HOSTS", ""))
    if "*" not in settings.ALLOWED_HOSTS and set(hosts) - set(settings.ALLOWED_HOSTS):
        ignored.append("DJANGO_ALLOWED_HOSTS")
    conf = strata_settings()
    exported = os.environ.get("STRATA_ACCELERATORS")
    urls = [url.rstrip("/") for url in env.split_list(exported or "")]
    if exported is not None and list(conf.accelerators) != urls:
        ignored.append("STRATA_ACCELERATORS")
    for variable, value in (
        ("STRATA_PURGE_SECRET", conf.purge_secret),
        ("STRATA_BENCH_SECRET", conf.bench_secret),
    ):
        secret = os.environ.get(variable, "")
        if secret and value != secret:
            ignored.append(variable)
    ttl = os.environ.get("STRATA_EDGE_TTL", "")
    if ttl.isdigit() and conf.edge_ttl != int(ttl):
        ignored.append("STRATA_EDGE_TTL")
    if not ignored:
        return []
    return [
        Warning(
            f"The settings ignore what the stack exports: {', '.join(ignored)}.",
            hint="Call strata.env.configure(globals()) as the last line of the settings "
            "module; it reads every variable `strata up` exports (docs/your-site.md).",
            id="strata.W040",
        )
    ]
