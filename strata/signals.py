"""Signals that Strata sends, for code that builds on its invalidations.

Connect receivers as to any Django signal (``docs/signals.md``)::

    from django.dispatch import receiver
    from strata.signals import post_invalidation

    @receiver(post_invalidation)
    def log_invalidation(sender, tags, using, changed, **kwargs):
        log.info("invalidated %s on %s", sorted(tags), using)

Receivers run in the thread that committed, right after the versions changed; one that
raises is logged (``strata.tags``) and never breaks the write, nor the other receivers.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["post_invalidation", "schema_changed"]

post_invalidation = Signal()
"""Sent after the versions of tags changed, once the transaction that owed them committed.

Arguments: ``sender``, the version store (:class:`strata.tags.VersionStore`) that changed
them; ``tags``, a ``frozenset`` of the tags (``strata.tags.naming``); ``using``, the alias
of the database whose write (or whose ``strata.api`` call) invalidated them; ``changed``,
False when the cache server refused the change (the store retries it, and artifacts
expire within their timeout meanwhile); ``position``, the id of the change's entry in the
invalidation log (``strata.bus``), None when the store keeps no log or the change failed.
Strata's own accelerator purges are a receiver: with a log, the request that wrote waits
for the purger to deliver ``position``; without one, the process purges by itself.
"""

schema_changed = Signal()
"""Sent when Strata forgets what it knew of the tables and their models.

After a model is registered at run time or ``INSTALLED_APPS`` changes: anything
remembered per table or per SQL string must be worked out again. ``sender`` is None.
"""
