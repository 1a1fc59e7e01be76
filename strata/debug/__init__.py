"""A django-debug-toolbar panel: what Strata did for the request on screen.

Add ``strata.debug.panel.StrataPanel`` to ``DEBUG_TOOLBAR_PANELS`` and put
``DebugToolbarMiddleware`` before ``StrataMiddleware`` (``docs/debug-toolbar.md``). The
caches report to :mod:`strata.debug.trace` only while the panel watches a request.
"""
