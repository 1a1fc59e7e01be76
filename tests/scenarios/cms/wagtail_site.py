"""A Wagtail site made as a user makes one, then set up for Strata as the README says.

``wagtail start cmssite`` gives a project whose settings are a package
(``cmssite.settings.base``/``dev``/``production``) and whose ``home`` app creates the home
page in a data migration. What a user then adds, and nothing more:

- ``cmssite/settings/strata.py``: production settings (DEBUG off, the manifest static
  storage), ``"strata"`` in ``INSTALLED_APPS``, ``StrataMiddleware`` first, Strata's
  caches on, and ``env.configure(globals())`` last, which reads what ``strata up``
  exports (database, cache, allowed hosts, the accelerators and their secret);
- ``path("-/", include("strata.urls"))`` before Wagtail's catch-all URL;
- ``{% wagtailuserbar %}`` (it reads ``request.user`` on every page, so every page would be
  personal and never shared) moved into a personal hole, ``{% personal %}``: anonymous
  visitors get the page without it (rendered in place, empty for them), editors get
  their userbar through ESI;
- a page type of its own, ``ArticlePage(Page)`` (multi-table inheritance, like
  ``HomePage``), its template, and a home page that lists its live children;
- ``makemigrations`` for the page type. ``strata up`` runs ``collectstatic`` (the
  manifest storage needs ``staticfiles.json`` with DEBUG off) and serves ``STATIC_ROOT``
  with WhiteNoise.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["PACKAGE", "SETTINGS", "WSGI", "build_site", "manage"]

PACKAGE = "cmssite"
SETTINGS = "cmssite.settings.strata"
WSGI = "cmssite.wsgi:application"

_STRATA_SETTINGS = '''\
"""Settings for running under `strata up`: it exports the stack's addresses to us."""

import os

from strata import env

from .production import *  # noqa: F403

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "cmssite-under-strata-not-a-real-secret")
INSTALLED_APPS = [*INSTALLED_APPS, "strata"]  # noqa: F405
MIDDLEWARE = ["strata.middleware.StrataMiddleware", *MIDDLEWARE]  # noqa: F405
STRATA = {
    "QUERY_CACHE": {"ENABLED": True},
    "PAGE_CACHE": {"ENABLED": True},
    "FRAGMENT_CACHE": {"ENABLED": True},
}
# Outside the stack (makemigrations), a cache every process here shares; strata up: Redis.
CACHES = {"default": env.cache_from_url(f"file://{BASE_DIR / 'cache'}")}  # noqa: F405

env.configure(globals())
'''

_ARTICLE_MODEL = '''

class ArticlePage(Page):
    """A page type of the site's own: its fields live in a table of their own."""

    intro = models.CharField(max_length=250, blank=True)

    content_panels = Page.content_panels + [FieldPanel("intro")]
'''

_ARTICLE_TEMPLATE = """\
{% extends "base.html" %}

{% block body_class %}template-articlepage{% endblock %}

{% block content %}
<h1 class="article-title">{{ page.title }}</h1>
<p class="intro">{{ page.intro }}</p>
{% endblock %}
"""

_CHILDREN_LIST = """\
<ul class="children">
{% for child in page.get_children.live %}<li><a href="{% pageurl child %}">{{ child.title }}</a></li>
{% endfor %}</ul>
"""

# The userbar, rendered for whoever asks: the hole gets the page's id (a plain value).
_USERBAR_HOLE = """\
{% load site_userbar wagtailuserbar %}{% hole_page page_id as page %}{% wagtailuserbar %}
"""

_USERBAR_TAGS = '''\
"""The page a personal hole is about, found again from its id."""

from django import template
from wagtail.models import Page

register = template.Library()


@register.simple_tag
def hole_page(page_id):
    """The page with ``page_id`` (its specific type), or None."""
    return Page.objects.filter(pk=page_id).specific().first() if page_id else None
'''


def build_site(venv_bin: Path, parent: Path) -> Path:
    """Make the site under ``parent`` with ``venv_bin``'s Wagtail; return its directory."""
    # Not parent / "cmssite": Wagtail refuses a name that imports from its working directory.
    directory = parent / "site"
    directory.mkdir()
    _run([str(venv_bin / "wagtail"), "start", PACKAGE, str(directory)], cwd=parent)
    settings_dir = directory / PACKAGE / "settings"
    (settings_dir / "strata.py").write_text(_STRATA_SETTINGS)

    urls = directory / PACKAGE / "urls.py"
    _replace(
        urls,
        '    path("search/", search_views.search, name="search"),\n',
        '    path("search/", search_views.search, name="search"),\n'
        '    path("-/", include("strata.urls")),\n',
    )

    base = directory / PACKAGE / "templates" / "base.html"
    _replace(base, "{% load static", "{% load strata static")
    _replace(
        base,
        "{% wagtailuserbar %}",
        '{% personal "userbar_hole.html" page_id=page.pk %}',
    )
    (directory / PACKAGE / "templates" / "userbar_hole.html").write_text(_USERBAR_HOLE)
    tags = directory / "home" / "templatetags"
    tags.mkdir()
    (tags / "__init__.py").write_text("")
    (tags / "site_userbar.py").write_text(_USERBAR_TAGS)

    models = directory / "home" / "models.py"
    _replace(
        models,
        "from wagtail.models import Page\n",
        "from wagtail.admin.panels import FieldPanel\nfrom wagtail.models import Page\n",
    )
    models.write_text(models.read_text() + _ARTICLE_MODEL)
    templates = directory / "home" / "templates" / "home"
    (templates / "article_page.html").write_text(_ARTICLE_TEMPLATE)
    home = templates / "home_page.html"
    _replace(home, "{% load static %}", "{% load static wagtailcore_tags %}")
    _replace(
        home,
        "{% include 'home/welcome_page.html' %}\n",
        "{% include 'home/welcome_page.html' %}\n" + _CHILDREN_LIST,
    )

    python = str(venv_bin / "python")
    build_env = {"DATABASE_URL": f"sqlite:///{parent / 'build.sqlite3'}"}
    manage(python, directory, ["makemigrations", "home", "--noinput"], build_env)
    return directory


def manage(python: str, directory: Path, args: list[str], env: dict[str, str]) -> str:
    """Run ``manage.py args`` of the site with the Strata settings and ``env``."""
    return _run(
        [python, "manage.py", *args],
        cwd=directory,
        env={**os.environ, **env, "DJANGO_SETTINGS_MODULE": SETTINGS},
    )


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        raise AssertionError(f"{path}: {old!r} not found (a new Wagtail project template?)")
    path.write_text(text.replace(old, new, 1))


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout
