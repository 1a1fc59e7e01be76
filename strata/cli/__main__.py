"""``python -m strata.cli``: the same as the ``strata`` command."""

from .entry import main

main()
