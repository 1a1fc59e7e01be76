"""The status page at ``/-/timing/``: for internal addresses and staff, never cached."""

from __future__ import annotations

import json

from django.test import Client

from tests.timing.conftest import logged_in

OUTSIDE = "203.0.113.9"


def test_an_outside_address_is_refused(newsroom):
    response = Client(REMOTE_ADDR=OUTSIDE).get("/-/timing/")

    assert response.status_code == 403
    assert "no-store" in response.headers["Cache-Control"]


def test_loopback_gets_json_with_every_view(newsroom):
    client = Client()  # REMOTE_ADDR 127.0.0.1
    client.get("/articles/a1/")

    response = client.get("/-/timing/")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] in ("private, no-store", "no-store, private")
    data = json.loads(response.content)
    rows = {(row["view"], row["kind"]): row for row in data["views"]}
    article = rows[("newsroom.views.article_detail", "rendered")]
    assert article["count"] == 1
    assert set(article["shares"]) == {"db", "cache", "template", "app"}
    assert data["processes"]


def test_an_internal_address_is_one_in_internal_ips(newsroom, settings):
    settings.INTERNAL_IPS = ["10.0.0.7"]

    assert Client(REMOTE_ADDR="10.0.0.7").get("/-/timing/").status_code == 200


def test_through_a_proxy_the_client_address_decides(newsroom):
    forwarded = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"127.0.0.1, {OUTSIDE}")
    local = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1")

    assert forwarded.get("/-/timing/").status_code == 403
    assert local.get("/-/timing/").status_code == 200


def test_staff_may_look_from_anywhere(newsroom):
    newsroom.ann.is_staff = True
    newsroom.ann.save()
    staff = logged_in(newsroom.ann)
    staff.defaults["REMOTE_ADDR"] = OUTSIDE
    reader = logged_in(newsroom.bob)
    reader.defaults["REMOTE_ADDR"] = OUTSIDE

    assert staff.get("/-/timing/").status_code == 200
    assert reader.get("/-/timing/").status_code == 403


def test_a_table_for_people(newsroom):
    client = Client()
    client.get("/")

    response = client.get("/-/timing/?format=html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "newsroom.views.home" in response.content.decode()


def test_purges_and_their_last_failure_are_shown(newsroom, settings):
    import time

    from strata.edge.purge import purger, reset_purger

    # An accelerator nobody listens on: the purge of the comment below fails.
    settings.STRATA = {
        **settings.STRATA,
        "ACCELERATORS": ["http://127.0.0.1:9"],
        "PURGE_SECRET": "a-secret-of-sixteen+",
        "BUS": {"ENABLED": False},  # this process purges by itself, on every backend
    }
    reset_purger()
    try:
        from newsroom.models import Comment

        Comment.objects.create(article=newsroom.a1, user=newsroom.ann, body="purge me")
        deadline = time.monotonic() + 5
        while not purger().stats["failures"] and time.monotonic() < deadline:
            time.sleep(0.01)
        client = Client()

        data = json.loads(client.get("/-/timing/").content)
        html = client.get("/-/timing/?format=html").content.decode()
    finally:
        reset_purger(timeout=0)

    purges = data["purges"]
    assert purges["nodes"] == ["http://127.0.0.1:9"]
    assert purges["requests"] >= 1 and purges["failures"] >= 1
    assert purges["last_failure"]["node"] == "http://127.0.0.1:9"
    assert "Purges:" in html and "last failure" in html
