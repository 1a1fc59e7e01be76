"""``python -m strata.cli``: the same as the ``strata`` command."""

from .main import main

main()
