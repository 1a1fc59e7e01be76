"""System checks of purges: accelerators without the secret their VCL asks for."""

from __future__ import annotations

from django.core.checks import CheckMessage, Tags, Warning, register

from ..conf import strata_settings


@register(Tags.compatibility)
def check_purges_carry_the_secret(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Strata's VCL refuses a purge without ``X-Purge-Secret``."""
    conf = strata_settings()
    if not conf.accelerators or conf.purge_secret:
        return []
    return [
        Warning(
            "STRATA['ACCELERATORS'] is set without a PURGE_SECRET: Strata's VCL refuses "
            "purges without the secret, so pages would stay stale until they expire.",
            hint="Set STRATA['PURGE_SECRET'] to the secret in the VCL (strata up exports "
            "STRATA_PURGE_SECRET).",
            id="strata.W019",
        )
    ]
