"""The router and read-your-own-writes, without a real replica (the "replica" alias of
``tests.settings`` mirrors the primary); the real thing is in ``replica_cases.py``."""

from __future__ import annotations

import contextvars

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from strata.querycache.stats import stats
from strata.replicas import ReadYourWritesMiddleware, ReplicaRouter, replica_behind
from strata.replicas.middleware import COOKIE


@pytest.fixture
def replicas(settings):
    settings.STRATA = {**settings.STRATA, "REPLICAS": ["replica"], "READ_YOUR_WRITES": 30}
    settings.DATABASE_ROUTERS = ["strata.replicas.ReplicaRouter"]


def fresh(function, *args):
    """Run ``function`` in a context that has not written (another client, another job)."""
    return contextvars.Context().run(function, *args)


def read_db():
    from newsroom.models import Article

    return ReplicaRouter().db_for_read(Article)


def write_db():
    from newsroom.models import Article

    return ReplicaRouter().db_for_write(Article)


def test_reads_go_to_the_replica_and_writes_to_the_primary(replicas):
    assert fresh(read_db) == "replica"
    assert fresh(write_db) == "default"


def test_a_context_that_wrote_reads_from_the_primary_for_a_while(replicas, settings):
    def write_then_read():
        write_db()
        return read_db()

    assert fresh(write_then_read) == "default"
    settings.STRATA = {**settings.STRATA, "READ_YOUR_WRITES": 0}
    assert fresh(write_then_read) == "replica"  # no window: outside a request, no pin


def test_sessions_are_always_read_from_the_primary(replicas):
    from django.contrib.sessions.models import Session

    assert fresh(lambda: ReplicaRouter().db_for_read(Session)) == "default"


def test_replicas_do_not_migrate(replicas):
    assert ReplicaRouter().allow_migrate("replica", "newsroom") is False
    assert ReplicaRouter().allow_migrate("default", "newsroom") is None


def respond(view, cookies=None):
    request = RequestFactory().post("/")
    request.COOKIES.update(cookies or {})
    seen = {}

    def get_response(request):
        seen["db"] = view()
        return HttpResponse("ok")

    response = fresh(ReadYourWritesMiddleware(get_response), request)
    return response, seen["db"]


def test_a_request_that_wrote_reads_the_primary_and_pins_its_client_with_a_cookie(replicas):
    def write_then_read():
        write_db()
        return read_db()

    response, db = respond(write_then_read)
    assert db == "default"
    cookie = response.cookies[COOKIE]
    assert cookie["max-age"] == 30 and cookie["httponly"]
    _, db = respond(read_db, {COOKIE: cookie.value})
    assert db == "default"
    assert respond(read_db)[1] == "replica"
    assert COOKIE not in respond(read_db)[0].cookies


def test_a_forged_or_expired_cookie_does_not_pin(replicas):
    from django.core import signing

    from strata.replicas.middleware import _SALT

    assert respond(read_db, {COOKIE: "9999999999.0:forged"})[1] == "replica"
    expired = signing.Signer(salt=_SALT).sign("1000.0")
    assert respond(read_db, {COOKIE: expired})[1] == "replica"


@pytest.mark.django_db(transaction=True, databases=["default", "replica"])
def test_reads_from_a_replica_whose_position_is_unknown_are_never_stored(replicas):
    from django.db import connections

    from newsroom.models import Author

    fresh(lambda: Author.objects.create(name="One", slug="one"))
    assert replica_behind(connections["replica"]).startswith("replica position unknown")
    before = stats["store"]
    for _ in range(2):
        assert fresh(lambda: Author.objects.get(slug="one").name) == "One"
    assert stats["store"] == before
    assert stats["replica-behind"] >= 2
