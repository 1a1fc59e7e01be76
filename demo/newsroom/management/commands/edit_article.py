"""``manage.py edit_article PK``: change an article from outside the web, as a cron job or
an import script would: a new title, a new body, or a comment added.

It needs nothing but the database and the cache (``DATABASE_URL``, ``CACHE_URL``): with
the invalidation bus, its writes reach the accelerators through the purger, not through
this process. After the commit it prints what it wrote, one line, flushed: ``strata
check`` takes that line as the write's acknowledgement. ``--kill-after-commit`` then
SIGKILLs the process at once, as an OOM killer or a deploy would (the ``writer-kill``
fault): what the commit owes the edge must not die with the writer.
"""

from __future__ import annotations

import os
import signal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from newsroom.models import Article, Comment


class Command(BaseCommand):
    help = "Change an article's title or body, or add a comment to it, by its id."
    # The stack checked the settings when it started; each run here should cost only
    # Django's start-up (strata check runs it again and again).
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("pk", type=int, help="the article's id")
        parser.add_argument("--title", help="the new title")
        parser.add_argument("--body", help="the new body")
        parser.add_argument("--comment", help="a comment to add")
        parser.add_argument("--user", help="who the comment is from (default: the first superuser)")
        parser.add_argument(
            "--kill-after-commit",
            action="store_true",
            help="SIGKILL this process right after the commit (strata check's writer-kill)",
        )

    def handle(self, *args, **options) -> None:
        changes = {name: options[name] for name in ("title", "body") if options[name] is not None}
        comment = options["comment"]
        if not changes and comment is None:
            raise CommandError("nothing to change: give --title, --body or --comment")
        author = self._commenter(options["user"]) if comment is not None else None
        with transaction.atomic():
            try:
                article = Article.objects.select_for_update().get(pk=options["pk"])
            except Article.DoesNotExist:
                raise CommandError(f"no article with id {options['pk']}") from None
            for name, value in changes.items():
                setattr(article, name, value)
            if changes:
                article.save(update_fields=list(changes))
            if comment is not None:
                Comment.objects.create(article=article, user=author, body=comment)
        # Committed, and the commit's on_commit callbacks (Strata's tag bumps) have run.
        written = {**changes, **({"comment": comment} if comment is not None else {})}
        self.stdout.write(
            f"article {article.pk}: committed "
            + ", ".join(f"{name}={value!r}" for name, value in written.items())
        )
        self.stdout.flush()
        if options["kill_after_commit"]:
            os.kill(os.getpid(), signal.SIGKILL)

    def _commenter(self, username: str | None):
        users = get_user_model().objects
        if username:
            try:
                return users.get(username=username)
            except users.model.DoesNotExist:
                raise CommandError(f"no user {username!r}") from None
        user = users.filter(is_superuser=True).order_by("pk").first()
        if user is None:
            raise CommandError("no superuser to comment as: give --user")
        return user
