"""System checks for the ``STRATA`` setting (IDs ``strata.E0xx`` / ``strata.W0xx``)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

from .conf import DEFAULTS


@register(Tags.compatibility)
def check_strata_setting(app_configs=None, **kwargs):
    """Validate the keys and value types of ``settings.STRATA``."""
    raw = getattr(settings, "STRATA", {})
    if not isinstance(raw, dict):
        return [
            Error(
                "The STRATA setting must be a dict.",
                hint="Write STRATA = {'EDGE_TTL': 10, ...} in your settings.",
                id="strata.E001",
            )
        ]
    errors = []
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        errors.append(
            Error(
                f"Unknown key(s) in STRATA: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="strata.E002",
            )
        )
    ttl = raw.get("EDGE_TTL", DEFAULTS["EDGE_TTL"])
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0:
        errors.append(
            Error(
                f"STRATA['EDGE_TTL'] must be a whole number of seconds >= 0, not {ttl!r}.",
                hint="For example STRATA = {'EDGE_TTL': 10}.",
                id="strata.E003",
            )
        )
    path = raw.get("HEALTH_PATH", DEFAULTS["HEALTH_PATH"])
    if not isinstance(path, str) or not path.startswith("/"):
        errors.append(
            Error(
                f"STRATA['HEALTH_PATH'] must be a path starting with '/', not {path!r}.",
                hint="For example STRATA = {'HEALTH_PATH': '/-/health'}.",
                id="strata.E004",
            )
        )
    return errors
