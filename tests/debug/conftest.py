"""The demo site with django-debug-toolbar and Strata's panel, as ``settings_debug`` has it."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.test_demo_site import seed

TOOLBAR_MIDDLEWARE = "debug_toolbar.middleware.DebugToolbarMiddleware"
PANELS = [
    "debug_toolbar.panels.history.HistoryPanel",
    "debug_toolbar.panels.headers.HeadersPanel",
    "debug_toolbar.panels.request.RequestPanel",
    "debug_toolbar.panels.sql.SQLPanel",
    "debug_toolbar.panels.templates.TemplatesPanel",
    "strata.debug.panel.StrataPanel",
]


@pytest.fixture(autouse=True)
def clean_cache():
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def seeded():
    seed()


@pytest.fixture
def toolbar(settings):
    """The toolbar on, before StrataMiddleware, for requests from 127.0.0.1 (the test
    client's address); returns the settings for tests that change the order."""
    settings.DEBUG = True
    settings.INTERNAL_IPS = ["127.0.0.1"]
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "debug_toolbar"]
    settings.MIDDLEWARE = [TOOLBAR_MIDDLEWARE, *settings.MIDDLEWARE]
    settings.DEBUG_TOOLBAR_PANELS = PANELS
    settings.DEBUG_TOOLBAR_CONFIG = {"IS_RUNNING_TESTS": False}
    settings.ROOT_URLCONF = "newsroom_site.urls_debug"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings


def outsider() -> Client:
    """A visitor from another machine: the toolbar never shows for them."""
    return Client(REMOTE_ADDR="192.0.2.7")


def request_id(response) -> str:
    """The toolbar's id of the request ``response`` answered."""
    found = re.search(r'data-request-id="([0-9a-f]+)"', response.content.decode())
    assert found, "the toolbar is not in the page"
    return found.group(1)


def panel_stats(response) -> dict:
    """What the Strata panel recorded for the request ``response`` answered."""
    from debug_toolbar.toolbar import DebugToolbar

    toolbar = DebugToolbar.fetch(request_id(response))
    assert toolbar is not None
    return toolbar.get_panel_by_id("StrataPanel").get_stats()


def panel_html(client: Client, response) -> str:
    """The panel as the toolbar's JavaScript fetches it when the panel is opened."""
    answer = client.get(
        "/__debug__/render_panel/",
        {"request_id": request_id(response), "panel_id": "StrataPanel"},
    )
    assert answer.status_code == 200
    return answer.json()["content"]
