"""Whole pages through the real stack: HAProxy → Varnish → Gunicorn → Django → Redis → PostgreSQL.

A write is visible to the very next anonymous request through the load balancer, at every
layer (Varnish purged, the page cache's versions changed), while pages that did not
depend on it stay cached. Personal parts come through holes; nothing personal is ever a
shared hit.
"""

from __future__ import annotations

import html
import re
import threading
import time
import uuid

import pytest

from strata.httpclient import csrf_token
from tests.helpers import Client, submit_form

pytestmark = pytest.mark.stack


def through_lb(stack) -> Client:
    """A client of the public address (the load balancer)."""
    return Client(stack.config.host, stack.config.port)


class _PastVarnish(Client):
    def __init__(self, host: str, port: int, public_host: str):
        super().__init__(host, port)
        self.public_host = public_host

    def request(self, method, path, body=None, headers=None):
        # The Host of the public address, as Varnish forwards it: the same page-cache key.
        return super().request(method, path, body, {"Host": self.public_host, **(headers or {})})


def past_varnish(stack) -> Client:
    """A client of the app-server pool, skipping the accelerator (what Varnish fetches)."""
    return _PastVarnish(
        stack.config.host,
        stack.load_balancer.pool_port,
        f"{stack.config.host}:{stack.config.port}",
    )


def text(answer) -> str:
    return html.unescape(answer.text)


def article_slugs(stack, count: int) -> list[str]:
    out = stack.manage(
        [
            "shell",
            "-c",
            "from newsroom.models import Article\n"
            f"for a in Article.objects.order_by('id')[:{count}]: print('SLUG', a.slug)",
        ]
    )
    return re.findall(r"^SLUG (\S+)$", out, re.M)


def cached_everywhere(client: Client, path: str):
    """Request ``path`` until the accelerator serves it, and return that answer."""
    for _ in range(3):
        answer = client.get(path)
        if answer.getheader("X-Cache") == "HIT":
            return answer
    raise AssertionError(f"{path} never became an accelerator hit: {answer.getheaders()}")


def test_a_comment_shows_to_the_next_anonymous_reader_and_other_articles_stay_cached(stack):
    commented, untouched = (f"/articles/{slug}/" for slug in article_slugs(stack, 2))
    anonymous, reader = through_lb(stack), through_lb(stack)
    cached_everywhere(anonymous, commented)
    cached_everywhere(anonymous, untouched)
    reader.login("reader3")

    page = reader.get(commented)  # the shared page, holes filled for reader3 by ESI
    words = f"A comment {uuid.uuid4().hex}"
    posted = reader.post_form(
        commented, {"body": words, "csrfmiddlewaretoken": csrf_token(page.text)}
    )
    assert posted.status == 302, posted.text[:300]

    fresh = anonymous.get(commented)
    assert words in text(fresh)
    assert fresh.getheader("X-Cache") == "MISS"  # purged from Varnish...
    assert fresh.getheader("X-Strata") == "page-miss"  # ...and from the page cache
    assert anonymous.get(untouched).getheader("X-Cache") == "HIT"
    assert past_varnish(stack).get(untouched).getheader("X-Strata") == "page-hit"


def test_editing_an_article_in_the_admin_shows_on_its_page_the_home_and_its_author(stack):
    admin = through_lb(stack)
    admin.login("admin", "admin")
    anonymous = through_lb(stack)
    slug = article_slugs(stack, 3)[2]
    article_path = f"/articles/{slug}/"
    cached_everywhere(anonymous, article_path)
    cached_everywhere(anonymous, "/")
    pk = re.search(
        r"^PK (\d+)$",
        stack.manage(
            [
                "shell",
                "-c",
                f"from newsroom.models import Article; print('PK', Article.objects.get(slug='{slug}').pk)",
            ]
        ),
        re.M,
    ).group(1)
    # Published now, so that it leads the home page too.
    title = f"Edited {uuid.uuid4().hex[:8]}"
    change = f"/admin/newsroom/article/{pk}/change/"
    answer = submit_form(
        admin,
        change,
        "article_form",
        {
            "title": title,
            "published_at_0": time.strftime("%Y-%m-%d", time.gmtime()),
            "published_at_1": time.strftime("%H:%M:%S", time.gmtime()),
        },
        extra={"_save": "Save"},
    )
    assert answer.status == 302, answer.text[:2000]
    # Django's "was changed successfully" message reaches the editor through Varnish.
    listing = admin.get(answer.getheader("Location"))
    assert "changed successfully" in text(listing), text(listing)[:500]

    for path in (article_path, "/"):
        fresh = anonymous.get(path)
        assert title in text(fresh), path
        assert fresh.getheader("X-Cache") == "MISS", path


def test_renaming_a_tag_in_the_admin_shows_on_its_page_and_its_articles(stack):
    admin = through_lb(stack)
    admin.login("admin", "admin")
    anonymous = through_lb(stack)
    pk, slug = _last_tag(stack)
    tag_page = f"/tags/{slug}/"
    cached_everywhere(anonymous, tag_page)
    article = re.search(r'href="(/articles/[^"]+/)"', anonymous.get(tag_page).text).group(1)
    cached_everywhere(anonymous, article)
    untagged = f"/articles/{_article_without_tag(stack, pk)}/"
    cached_everywhere(anonymous, untagged)

    name = f"Renamed {uuid.uuid4().hex[:6]}"
    change = f"/admin/newsroom/tag/{pk}/change/"
    answer = submit_form(admin, change, "tag_form", {"name": name}, extra={"_save": "Save"})
    assert answer.status == 302, answer.text[:2000]

    assert name in text(anonymous.get(tag_page))
    assert name in text(anonymous.get(article))
    assert anonymous.get(untagged).getheader("X-Cache") == "HIT"


def _article_without_tag(stack, tag_pk: str) -> str:
    out = stack.manage(
        [
            "shell",
            "-c",
            "from newsroom.models import Article\n"
            f"print('SLUG', Article.objects.exclude(tags={tag_pk}).order_by('id').first().slug)",
        ]
    )
    return re.search(r"^SLUG (\S+)$", out, re.M).group(1)


def _last_tag(stack) -> tuple[str, str]:
    out = stack.manage(
        [
            "shell",
            "-c",
            "from newsroom.models import Tag\n"
            "t = Tag.objects.filter(articles__isnull=False).order_by('-id').first()\n"
            "print('TAG', t.pk, t.slug)",
        ]
    )
    return re.search(r"^TAG (\d+) (\S+)$", out, re.M).groups()


def test_publishing_an_article_puts_it_on_the_home_page_at_once(stack):
    admin = through_lb(stack)
    admin.login("admin", "admin")
    anonymous = through_lb(stack)
    cached_everywhere(anonymous, "/")
    author_id = re.search(
        r"^ID (\d+)$",
        stack.manage(
            [
                "shell",
                "-c",
                "from newsroom.models import Author; print('ID', Author.objects.first().pk)",
            ]
        ),
        re.M,
    ).group(1)
    title = f"Breaking {uuid.uuid4().hex[:8]}"
    answer = submit_form(
        admin,
        "/admin/newsroom/article/add/",
        "article_form",
        {
            "title": title,
            "slug": title.lower().replace(" ", "-"),
            "author": author_id,
            "body": "Just in.",
            "published_at_0": time.strftime("%Y-%m-%d", time.gmtime(time.time() + 3600)),
            "published_at_1": "00:00:00",
        },
        extra={"_save": "Save"},
    )
    assert answer.status == 302, answer.text[:2000]

    home = anonymous.get("/")
    assert title in text(home)
    assert home.getheader("X-Cache") == "MISS"


def test_two_readers_logged_in_at_once_each_see_only_themselves(stack):
    slug = article_slugs(stack, 1)[0]
    readers = {name: through_lb(stack) for name in ("reader5", "reader6")}
    words = {}
    for name, client in readers.items():
        client.login(name)
        page = client.get(f"/articles/{slug}/")
        words[name] = f"{name} says {uuid.uuid4().hex}"
        posted = client.post_form(
            f"/articles/{slug}/",
            {"body": words[name], "csrfmiddlewaretoken": csrf_token(page.text)},
        )
        assert posted.status == 302
    for _ in range(2):
        for name, client in readers.items():
            other = next(n for n in readers if n != name)
            for path in ("/", f"/articles/{slug}/"):
                page = client.get(path)
                assert page.getheader("X-Cache") != "HIT"
                assert re.findall(r'id="who">([^<]*)<', page.text) == [name], path
            mine = client.get("/me/comments/")
            assert "private" in mine.getheader("Cache-Control")
            assert mine.getheader("X-Strata").startswith("bypass: user read in")
            assert re.findall(r'id="who">([^<]*)<', mine.text) == [name]
            assert words[name] in text(mine) and words[other] not in text(mine)


def test_holes_cookies_and_authorization_never_produce_a_shared_hit(stack):
    anonymous = through_lb(stack)
    page = anonymous.get("/?holes")
    hole = re.search(r"<strata-hole data-src=\"([^\"]+)\"", page.text)
    assert hole is None  # Varnish filled the holes by ESI
    slug = article_slugs(stack, 1)[0]
    direct = past_varnish(stack).get(f"/articles/{slug}/")
    hole_url = html.unescape(re.search(r'<strata-hole data-src="([^"]+)"', direct.text).group(1))

    for _ in range(3):
        answer = anonymous.get(hole_url)
        assert answer.status == 200
        assert answer.getheader("X-Cache") != "HIT"
        assert "no-store" in answer.getheader("Cache-Control")
    through_lb(stack).get(f"/articles/{slug}/")  # the page is in Varnish now
    for headers in ({"Authorization": "Basic YTpi"}, {"Cookie": "sessionid=forged"}):
        for _ in range(3):
            answer = through_lb(stack).get(f"/articles/{slug}/", headers=headers)
            assert answer.getheader("X-Cache") == "PASS", headers
    assert (
        anonymous.get(f"/articles/{slug}/", headers={"Authorization": "Basic YTpi"}).getheader(
            "X-Strata"
        )
        == "bypass: authorization header"
    )
    forged = through_lb(stack).get(hole_url[:-3] + "xx/")
    assert forged.status == 400


def test_an_anonymous_form_token_through_esi_falls_back_to_the_browser(stack):
    slug = article_slugs(stack, 1)[0]
    page = through_lb(stack).get(f"/articles/{slug}/")
    # No csrftoken cookie: an ESI fragment could not set one, so the page asks the browser.
    assert page.text.count("<strata-hole") == 1
    token_hole = html.unescape(re.search(r'<strata-hole data-src="([^"]+)"', page.text).group(1))
    browser = through_lb(stack)
    filled = browser.get(token_hole)
    assert "csrftoken" in browser.cookies
    assert 'name="csrfmiddlewaretoken"' in filled.text


def test_a_hundred_concurrent_requests_on_a_cold_page_render_it_once(stack):
    path = f"/tags/{_some_tag(stack)}/?cold={uuid.uuid4().hex}"
    words: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(100)

    def fetch():
        client = past_varnish(stack)  # Varnish would coalesce them itself
        start.wait(timeout=30)
        answer = client.get(path)
        with lock:
            words.append((answer.status, answer.getheader("X-Strata")))

    threads = [threading.Thread(target=fetch) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(words) == 100
    assert {status for status, _ in words} == {200}
    statuses = [word for _, word in words]
    assert statuses.count("page-miss") == 1, statuses
    assert set(statuses) == {"page-miss", "page-hit"}


def _some_tag(stack) -> str:
    out = stack.manage(
        [
            "shell",
            "-c",
            "from newsroom.models import Tag\n"
            "print('SLUG', Tag.objects.filter(articles__isnull=False).order_by('id').first().slug)",
        ]
    )
    return re.search(r"^SLUG (\S+)$", out, re.M).group(1)


def test_campaign_links_are_the_same_object_at_the_edge(stack):
    anonymous = through_lb(stack)
    tag = f"/tags/{_some_tag(stack)}/"
    plain = cached_everywhere(anonymous, f"{tag}?page=1")

    for variant in (
        f"{tag}?utm_source=news&page=1",
        f"{tag}?page=1&fbclid=abc&utm_medium=mail",
        f"{tag}?gclid=1&page=1&_ga=2",
    ):
        answer = anonymous.get(variant)
        assert answer.getheader("X-Cache") == "HIT", variant
        assert text(answer) == text(plain), variant


# A messages cookie that Django's CookieStorage cannot read: nothing is shown, the request
# is still one person's (strata.edge.policy.request_bypass_reason).
MESSAGES = "messages=W1siX19qc29uX21lc3NhZ2UiXV0"


def test_each_client_past_varnish_reads_its_own_x_strata_never_anothers(stack):
    path = f"/tags/{_some_tag(stack)}/?own={uuid.uuid4().hex}"

    with_messages = past_varnish(stack).get(path, headers={"Cookie": MESSAGES})
    assert with_messages.getheader("X-Strata") == "bypass: messages cookie"
    other_cookie = past_varnish(stack).get(path, headers={"Cookie": "foo=bar"})
    assert other_cookie.getheader("X-Strata") == "page-miss"
    nobody = past_varnish(stack).get(path)
    assert nobody.getheader("X-Strata") == "page-miss"  # a variant of its own

    assert (
        past_varnish(stack).get(path, headers={"Cookie": "foo=baz"}).getheader("X-Strata")
        == "page-hit"
    )
    again = past_varnish(stack).get(path, headers={"Cookie": MESSAGES})
    assert again.getheader("X-Strata") == "bypass: messages cookie"


def test_each_client_through_the_load_balancer_reads_its_own_x_strata_never_anothers(stack):
    path = f"/tags/{_some_tag(stack)}/?own={uuid.uuid4().hex}"
    reader = through_lb(stack)
    reader.login("reader7")

    with_messages = through_lb(stack).get(path, headers={"Cookie": MESSAGES})
    assert with_messages.getheader("X-Cache") == "PASS"
    assert with_messages.getheader("X-Strata") == "bypass: messages cookie"
    mine = reader.get(path)  # passes Varnish too, and shares the page cache's variant
    assert mine.getheader("X-Cache") == "PASS"
    assert mine.getheader("X-Strata") == "page-miss"
    filled = through_lb(stack).get(path, headers={"Cookie": "foo=bar"})  # Varnish drops foo
    assert (filled.getheader("X-Cache"), filled.getheader("X-Strata")) == ("MISS", "page-miss")

    # Varnish's copy was filled by that request; a hit says what happened to this one.
    hit = through_lb(stack).get(path)
    assert (hit.getheader("X-Cache"), hit.getheader("X-Strata")) == ("HIT", "edge-hit")
    assert hit.body == filled.body
