"""The Strata panel of the debug toolbar in a real browser: a miss, a hit and a bypass.

The demo runs under ``runserver`` with ``newsroom_site.settings_debug``; the browser
comes from 127.0.0.1 (an internal address), opens the toolbar's Strata panel and reads
what answered the page and why. Screenshots go to ``STRATA_ARTIFACTS``
(``/tmp/strata-artifacts/``).
"""

from __future__ import annotations

import pytest

from tests.scenarios.security.conftest import artifacts_dir

pytestmark = [
    # pytest-playwright 0.10's base_url fixture on pytest 9; harmless (NOTES, Part 2).
    pytest.mark.filterwarnings("ignore:Session-scoped fixtures defined as instance methods"),
]

READER_PASSWORD = "newsroom"


def expect(target):
    """Playwright's waiting assertions, imported late: without Playwright the tests skip."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def open_strata_panel(page):
    """Open the toolbar's Strata panel (fetched from the server) and return it."""
    page.click("#djdt-StrataPanel a.StrataPanel")
    panel = page.locator("#StrataPanel")
    expect(panel.locator("#strata-word")).to_be_visible()
    return panel


def screenshot(page, name: str):
    """Keep the open panel as a test artifact; return its path."""
    path = artifacts_dir() / f"debug-panel-{name}.png"
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def test_the_panel_shows_a_miss_then_a_hit_of_the_home_page(debug_site, new_browser_context):
    page = new_browser_context(viewport={"width": 1280, "height": 900}).new_page()

    page.goto(debug_site + "/")
    panel = open_strata_panel(page)
    expect(panel.locator("#strata-word")).to_have_text("page-miss")
    expect(panel.locator("#strata-accelerator")).to_contain_text("yes: shared for 300 s")
    expect(panel.locator("#strata-queries")).to_contain_text("newsroom_article")
    screenshot(page, "miss")

    page.goto(debug_site + "/")
    panel = open_strata_panel(page)
    expect(panel.locator("#strata-word")).to_have_text("page-hit")
    expect(panel).to_contain_text("the view did not run")
    screenshot(page, "hit")


def test_the_panel_shows_the_reason_of_a_bypassed_page(debug_site, new_browser_context):
    page = new_browser_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(debug_site + "/accounts/login/")
    page.fill("#id_username", "reader1")
    page.fill("#id_password", READER_PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(debug_site + "/")

    page.goto(debug_site + "/me/comments/")
    panel = open_strata_panel(page)

    expect(panel.locator("#strata-word")).to_have_text("bypass")
    expect(panel.locator("#strata-reason")).to_have_text("user read in newsroom.views.my_comments")
    expect(panel.locator("#strata-accelerator")).to_contain_text("no: Cache-Control: private")
    screenshot(page, "bypass")
