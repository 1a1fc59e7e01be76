"""``strata config``: one inventory in, every host's configuration out.

The inventory (TOML, ``docs/config.md``) names the hosts and their roles;
:func:`render_inventory` renders each host's files from the same Jinja2 templates
``strata up`` uses (``strata/stack/templates/``), and :func:`write_rendering` writes
them, with a README index and a ``secrets.env`` of their own, for people to review.
"""

from .inventory import InventoryError, load_inventory, parse_inventory
from .model import Inventory
from .output import OutputError, WriteReport, write_rendering
from .render import Rendering, render_inventory, render_settings, render_vcl
from .verify import CheckResult, check_output

__all__ = [
    "CheckResult",
    "Inventory",
    "InventoryError",
    "OutputError",
    "Rendering",
    "WriteReport",
    "check_output",
    "load_inventory",
    "parse_inventory",
    "render_inventory",
    "render_settings",
    "render_vcl",
    "write_rendering",
]
