"""A Wagtail site through the whole stack: every change fresh on the next anonymous request.

The issue's "done when": a CMS site with inheritance publishes, edits, unpublishes pages
and runs its own data migrations on PostgreSQL with Strata on, every change fresh on the
next anonymous request through the load balancer.

The site is made as a user makes it (``wagtail start``, then the README's "your own
project" lines, see :mod:`tests.scenarios.cms.wagtail_site`); its page types inherit from Wagtail's
``Page`` (multi-table inheritance: ``home_homepage``, ``home_articlepage``); the home
page comes from the site's own data migration. ``<venv>/bin/strata up`` runs it on
PostgreSQL, Redis, two Gunicorn servers, Varnish (xkey) and HAProxy; an editor works in
Wagtail's admin through the load balancer with plain form posts; visitors without
cookies read through the load balancer.

Before each change, the pages it must change are Varnish hits (``X-Cache: HIT``), read
after the writes' second purge (``PURGE_DELAY`` later) is over, so that a fresh answer
after the change can only come from the change's own purge.

What a user must do that ``strata up`` does not: a superuser (``strata manage
createsuperuser --noinput`` here). ``strata up`` runs ``collectstatic`` itself (Wagtail's
production settings use ``ManifestStaticFilesStorage``: without its manifest every page
is a 500).

These assertions can fail: ``STRATA_CMS_NO_PURGES=1`` runs the same tests with a site
that purges no accelerator (``STRATA["ACCELERATORS"] = []``; Django's page cache is still
invalidated). Every test that changes a page then fails on a stale Varnish hit: the home
page without the new article, the old title, the unpublished page still 200, the 404
still served after publishing again.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from strata.conf import default
from tests.helpers import require_real_stack
from tests.scenarios.cms.helpers import CmsStack, Editor, anonymous_get, cms_stack, cms_venv

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

NO_PURGES = os.environ.get("STRATA_CMS_NO_PURGES") == "1"
"""Run the site without purges, to see the freshness assertions fail."""

SETTLE = default("PURGE_DELAY") + 0.5
"""Seconds after a write until its second purge has gone out."""

EDITOR = ("editor", "an-editor-password-for-tests")


@pytest.fixture(scope="module")
def cms():
    """The site's stack, with a superuser made by ``createsuperuser``."""
    require_real_stack()
    with cms_stack(cms_venv(), purges=not NO_PURGES) as stack:
        stack.manage(
            ["createsuperuser", "--noinput"],
            DJANGO_SUPERUSER_USERNAME=EDITOR[0],
            DJANGO_SUPERUSER_PASSWORD=EDITOR[1],
            DJANGO_SUPERUSER_EMAIL="editor@example.com",
        )
        yield stack


@pytest.fixture(scope="module")
def editor(cms) -> Editor:
    """The superuser, signed in to Wagtail's admin."""
    person = Editor(cms, *EDITOR)
    person.login()
    return person


@pytest.fixture(scope="module")
def home_id(editor) -> int:
    """The home page's id."""
    return editor.page_id("/")


def get(stack: CmsStack, path: str, step: str):
    """An anonymous GET, shown with the headers that say who answered."""
    answer = anonymous_get(stack, path)
    print(f"{step:<40} GET {path:<22} {seen(answer)}")
    return answer


def seen(answer) -> str:
    """A response in one line: status, who answered, and the heading or list it shows."""
    shown = re.findall(
        r'<h1 class="article-title">([^<]*)</h1>|<li><a [^>]*>([^<]*)</a>', answer.text
    )
    titles = [heading or item for heading, item in shown]
    return (
        f"{answer.status} X-Cache: {answer.getheader('X-Cache')}  "
        f"X-Strata: {answer.getheader('X-Strata')}  shows {titles}"
    )


def cached(stack: CmsStack, paths: list[str], step: str) -> list:
    """GET each of ``paths`` until Varnish answers it from its cache; return those hits.

    First wait until the last write's second purge is over: a page cached now stays
    cached until something purges it (``EDGE_TTL`` is 300 s).
    """
    time.sleep(SETTLE)
    hits = []
    for path in paths:
        get(stack, path, f"{step} (warm)")
        hit = get(stack, path, f"{step} (cached)")
        assert hit.getheader("X-Cache") == "HIT", seen(hit)
        hits.append(hit)
    return hits


def title_on_page(title: str) -> str:
    return f'<h1 class="article-title">{title}</h1>'


def title_in_list(title: str) -> str:
    return f">{title}</a></li>"


def test_home_page_made_by_the_sites_data_migration_is_served_and_cached(cms):
    assert cms.layers() == {
        "load balancer": "HAProxy",
        "accelerator": "Varnish",
        "app server": "uWSGI",
        "cache": "Redis",
        "database": "PostgreSQL",
        "purger": "strata_purger",
    }
    assert cms.exporters() == {
        "prometheus-varnish-exporter",
        "prometheus-redis-exporter",
        "prometheus-postgres-exporter",
    }
    migrated = (cms.run_dir / "logs" / "manage.log").read_text()
    assert "Applying home.0002_create_homepage... OK" in migrated
    # Varnish starts after migrate, empty: migrate's writes have nothing to purge.
    assert "purge of" not in migrated

    (home,) = cached(cms, ["/"], "home page")
    assert home.status == 200
    assert "template-homepage" in home.text and '<ul class="children">' in home.text
    assert "public" in home.getheader("Cache-Control")


def test_published_article_is_served_then_answered_from_varnish(cms, editor, home_id):
    (before,) = cached(cms, ["/"], "home before publishing")
    assert title_in_list("Published article") not in before.text, seen(before)

    editor.add_article(home_id, "Published article", "published-article", "Fresh news")

    page = get(cms, "/published-article/", "article after publishing")
    assert page.status == 200 and title_on_page("Published article") in page.text, seen(page)
    again = get(cms, "/published-article/", "article again")
    assert again.getheader("X-Cache") == "HIT" and again.text == page.text, seen(again)
    home = get(cms, "/", "home after publishing")
    assert title_in_list("Published article") in home.text, seen(home)


def test_edited_title_shows_on_the_next_anonymous_request_to_the_page_and_home(
    cms, editor, home_id
):
    editor.add_article(home_id, "Title before edit", "edited-article")
    page_id = editor.page_id("/edited-article/")
    page, home_before = cached(cms, ["/edited-article/", "/"], "before the edit")
    assert title_on_page("Title before edit") in page.text, seen(page)

    editor.publish(page_id, title="Title after edit")

    page = get(cms, "/edited-article/", "article after the edit")
    assert page.status == 200 and title_on_page("Title after edit") in page.text, seen(page)
    # The home page, cached while it listed the old title, lists the new one.
    assert title_in_list("Title before edit") in home_before.text, seen(home_before)
    home = get(cms, "/", "home after the edit")
    assert title_in_list("Title after edit") in home.text, seen(home)
    assert title_in_list("Title before edit") not in home.text, seen(home)


def test_unpublished_article_is_a_404_on_the_next_anonymous_request(cms, editor, home_id):
    editor.add_article(home_id, "Soon unpublished", "unpublished-article")
    page_id = editor.page_id("/unpublished-article/")
    page, home_before = cached(cms, ["/unpublished-article/", "/"], "before unpublishing")
    assert page.status == 200, seen(page)

    editor.unpublish(page_id)

    page = get(cms, "/unpublished-article/", "article after unpublishing")
    assert page.status == 404, seen(page)
    # The home page, cached while it listed the article, no longer does.
    assert title_in_list("Soon unpublished") in home_before.text, seen(home_before)
    home = get(cms, "/", "home after unpublishing")
    assert title_in_list("Soon unpublished") not in home.text, seen(home)


def test_republished_article_is_back_on_the_next_anonymous_request(cms, editor, home_id):
    editor.add_article(home_id, "Back again", "republished-article")
    page_id = editor.page_id("/republished-article/")
    editor.unpublish(page_id)
    # The 404 is shared too (for 30 s): publishing must purge it.
    page, home = cached(cms, ["/republished-article/", "/"], "before publishing again")
    assert page.status == 404 and title_in_list("Back again") not in home.text, seen(page)

    editor.publish(page_id)

    page = get(cms, "/republished-article/", "article after publishing again")
    assert page.status == 200 and title_on_page("Back again") in page.text, seen(page)
    home = get(cms, "/", "home after publishing again")
    assert title_in_list("Back again") in home.text, seen(home)


def test_editors_get_their_userbar_through_a_personal_hole_visitors_a_shared_page(
    cms, editor, home_id
):
    (visitor,) = cached(cms, ["/"], "home for a visitor")
    assert "/admin/pages/" not in visitor.text and "strata-hole" not in visitor.text

    mine = editor.client.get("/")
    print(f"{'home for the editor (session cookie)':<40} GET {'/':<22} {seen(mine)}")
    assert mine.getheader("X-Cache") == "PASS"  # a session never gets a shared copy
    assert f'/admin/pages/{home_id}/edit/"' in mine.text
    assert "<esi:" not in mine.text  # Varnish filled the hole
