"""Headers a client controls never change the copy a cache hands to the next reader.

Each poisoning request is the first to ask for its URL (a query parameter nobody used),
so whatever it provokes is what Varnish and the page cache would store. The next clean
request must get the same bytes as a clean request for another fresh URL, and never an
attacker's host. Cache keys are built from the validated host, the path and the query
only (docs/design.md, "Shared or personal").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from tests.scenarios.security.helpers import (
    cached_in_varnish,
    is_shared_hit,
    linked_paths,
    past_varnish,
    through_lb,
)

pytestmark = pytest.mark.stack

EVIL = "evil.example"


@dataclass(frozen=True)
class Poison:
    """What the attacker adds to an otherwise ordinary GET."""

    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    refused: bool = False
    """The stack must answer this request with a 400 (an unknown host)."""


_HEADERS = {
    "x-forwarded-host": ("X-Forwarded-Host", EVIL),
    "x-host": ("X-Host", EVIL),
    "x-forwarded-proto": ("X-Forwarded-Proto", "https"),
    "x-forwarded-scheme": ("X-Forwarded-Scheme", "https"),
    "x-forwarded-ssl": ("X-Forwarded-Ssl", "on"),
    "forwarded": ("Forwarded", f"for=203.0.113.9;host={EVIL};proto=https"),
    "x-original-url": ("X-Original-URL", "/admin/"),
    "x-rewrite-url": ("X-Rewrite-URL", "/admin/"),
    "method-override-post": ("X-HTTP-Method-Override", "POST"),
    "method-override-purge": ("X-HTTP-Method-Override", "PURGE"),
    # Strata's own: a bench request without the secret, a forged ESI sub-request.
    "x-strata-bench": ("X-Strata-Bench", "cold"),
    "x-strata-esi": ("X-Strata-ESI", "1"),
}
POISONS = {}
for name, (header, value) in _HEADERS.items():
    POISONS[name] = Poison({header: value})
    POISONS[f"{name}-empty"] = Poison({header: ""})
# A body on a GET, itself a second request: no layer may read it as one.
POISONS["get-with-body"] = Poison(
    {"Content-Type": "application/x-www-form-urlencoded"},
    body=f"GET /admin/ HTTP/1.1\r\nHost: {EVIL}\r\n\r\n".encode(),
)
POISONS["get-with-empty-body"] = Poison(body=b"")
POISONS["unknown-host"] = Poison({"Host": EVIL}, refused=True)
POISONS["unknown-host-empty"] = Poison({"Host": ""}, refused=True)

LAYERS = {
    "through-the-load-balancer": through_lb,  # Varnish, then the page cache behind it
    "app-pool-page-cache": past_varnish,  # the page cache alone
}


def comparable(answer, token: str) -> tuple:
    """What the next reader sees of ``answer``, with the URL's own marker blanked out."""
    location = (answer.getheader("Location") or "").replace(token, "TOKEN")
    return answer.status, location, answer.body.replace(token.encode(), b"TOKEN")


def no_attacker_host(answer) -> None:
    assert EVIL not in answer.body.decode("utf-8", "replace")
    for header, value in answer.getheaders():
        assert EVIL not in value, (header, value)


@pytest.fixture(scope="module")
def redirecting_path(stack) -> str:
    """A path Django answers with a redirect (301 to the path with a slash)."""
    return linked_paths(stack, "tags")[1].rstrip("/")


@pytest.mark.parametrize("poison", POISONS.values(), ids=POISONS.keys())
@pytest.mark.parametrize("layer", LAYERS.values(), ids=LAYERS.keys())
def test_a_poisoning_request_leaves_the_next_readers_copy_unchanged(
    stack, layer, poison, redirecting_path
):
    for path in ("/", redirecting_path):
        poisoned_token, baseline_token = uuid.uuid4().hex, uuid.uuid4().hex
        poisoned = layer(stack).request(
            "GET", f"{path}?poison={poisoned_token}", body=poison.body, headers=poison.headers
        )
        if poison.refused:
            assert poisoned.status == 400, (path, poisoned.status)
        else:
            assert poisoned.status < 500, (path, poisoned.status)

        clean = [layer(stack).get(f"{path}?poison={poisoned_token}") for _ in range(2)]
        baseline = layer(stack).get(f"{path}?poison={baseline_token}")
        assert baseline.status in (200, 301), (path, baseline.status)
        for answer in clean:
            assert comparable(answer, poisoned_token) == comparable(baseline, baseline_token)
            no_attacker_host(answer)
        assert is_shared_hit(clean[1]), clean[1].getheaders()  # the copy that others get


@pytest.mark.parametrize("layer", LAYERS.values(), ids=LAYERS.keys())
def test_a_request_for_an_unknown_host_is_refused_and_never_served_from_a_cache(stack, layer):
    path = f"/?unknown-host={uuid.uuid4().hex}"
    kept = cached_in_varnish(through_lb(stack), path) if layer is through_lb else None
    for _ in range(2):
        refused = layer(stack).get(path, headers={"Host": EVIL})
        assert refused.status == 400
        assert not is_shared_hit(refused)
        assert "no-store" in refused.getheader("Cache-Control") or "private" in (
            refused.getheader("Cache-Control")
        )
        no_attacker_host(refused)
    if kept is not None:
        after = through_lb(stack).get(path)
        assert after.getheader("X-Cache") == "HIT"
        assert after.body == kept.body


@pytest.mark.parametrize("kind", ["page", "redirect"])
@pytest.mark.parametrize("parameter", ["utm_source", "fbclid", "gclid"])
@pytest.mark.parametrize("layer", LAYERS.values(), ids=LAYERS.keys())
def test_a_tracking_parameter_left_out_of_the_key_never_reaches_the_next_readers_copy(
    stack, layer, parameter, kind, redirecting_path
):
    path = "/" if kind == "page" else redirecting_path
    poisoned_token, baseline_token = uuid.uuid4().hex, uuid.uuid4().hex
    poisoned = layer(stack).get(f"{path}?poison={poisoned_token}&{parameter}={EVIL}")
    assert poisoned.status in (200, 301)
    clean = layer(stack).get(f"{path}?poison={poisoned_token}")
    baseline = layer(stack).get(f"{path}?poison={baseline_token}")
    no_attacker_host(clean)
    assert comparable(clean, poisoned_token) == comparable(baseline, baseline_token)
