"""System checks of timing: ``Server-Timing`` on every response behind an accelerator."""

from __future__ import annotations

from django.core.checks import CheckMessage, Tags, Warning, register

from ..conf import strata_settings


@register(Tags.compatibility)
def check_timings_stay_personal(app_configs=None, **kwargs) -> list[CheckMessage]:
    """An accelerator would store one render's timings and send them with every hit."""
    conf = strata_settings()
    if not (conf.timing.server_timing == "all" and conf.accelerators):
        return []
    return [
        Warning(
            "STRATA['TIMING']['SERVER_TIMING'] is 'all' and accelerators are configured: "
            "they store the Server-Timing of the render that filled them and send it "
            "with every hit, to everyone.",
            hint="Use 'personal' (the default) in production; 'all' is for measuring "
            "without an accelerator in front.",
            id="strata.W025",
        )
    ]
