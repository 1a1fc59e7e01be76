"""The newsroom demo site: its pages, its personal parts, and its deterministic seed."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from newsroom.models import Article, Author, Comment, Tag

pytestmark = [
    # Real commits: Strata invalidates after commit, and pages read inside a test's
    # rolled-back transaction would not be shared.
    pytest.mark.django_db(transaction=True),
    # STATIC_ROOT exists only after collectstatic; settings silence this outside pytest.
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

SMALL = {"articles": 60, "comments": 120, "authors": 20, "tags": 10, "readers": 5}


def seed(**options) -> str:
    """Run ``seed_newsroom`` quietly and return what it printed."""
    out = StringIO()
    call_command("seed_newsroom", stdout=out, **{**SMALL, **options})
    return out.getvalue()


def who(response) -> list[str]:
    """The user names greeted in the hello box."""
    return re.findall(r'<span id="who">([^<]*)</span>', response.content.decode())


def hello_box(client: Client, path: str):
    """The hello box of ``path`` as ``client`` sees it: in place, or its hole filled."""
    page = client.get(path)
    html = page.content.decode()
    if 'id="hello-box"' in html:  # a visitor without cookies: no hole needed
        return page
    hole = re.search(r'<esi:include src="([^"]+)"', html).group(1)
    return client.get(hole)


@pytest.fixture(autouse=True)
def clean_cache():
    from django.core.cache import cache

    cache.clear()


def login_client(username: str) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def seeded():
    seed()


@pytest.fixture
def reader1(seeded) -> Client:
    return login_client("reader1")


# Home page


def test_home_lists_latest_20_articles_with_comment_counts(client, seeded):
    response = client.get("/")

    assert response.status_code == 200
    listed = list(response.context["articles"])
    latest = list(Article.objects.order_by("-published_at")[:20])
    assert [a.slug for a in listed] == [a.slug for a in latest]
    html = response.content.decode()
    for article in listed:
        count = Comment.objects.filter(article=article).count()
        assert article.comment_count == count
        assert f'href="/articles/{article.slug}/"' in html
        assert f"{count} comment" in html
        assert f'href="/authors/{article.author.slug}/"' in html
    # The list is a cached fragment; a new comment shows in its count at once.
    first = listed[0]
    Comment.objects.create(article=first, user=get_user_model().objects.first(), body="New")
    again = client.get("/").content.decode()
    assert f'#comments">{first.comment_count + 1} comment' in again


def test_home_shows_an_excerpt_of_each_body(client, seeded):
    response = client.get("/")

    excerpts = re.findall(r'<p class="excerpt">([^<]*)</p>', response.content.decode())
    assert len(excerpts) == 20
    assert all(600 <= len(excerpt) <= 900 for excerpt in excerpts)


def test_home_sidebar_lists_all_tags_and_the_30_most_prolific_authors(client):
    seed(authors=50)

    response = client.get("/")

    html = response.content.decode()
    assert all(f'href="/tags/{tag.slug}/"' in html for tag in Tag.objects.all())
    authors = list(response.context["authors"])
    assert len(authors) == 30
    counts = [author.article_count for author in authors]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == max(a.articles.count() for a in Author.objects.all())


def test_home_page_weighs_20_to_60_kb(client):
    # As many tags and listed authors as the real seed shows; fewer rows behind them.
    seed(articles=40, comments=100, authors=40, tags=50, readers=5)

    response = client.get("/")

    assert 20_000 <= len(response.content) <= 60_000


def test_home_is_shared_even_for_logged_in_readers_and_their_hello_box_is_private(client, reader1):
    anonymous = client.get("/")
    logged_in = reader1.get("/")

    assert "s-maxage" in anonymous["Cache-Control"]
    assert not anonymous.cookies
    assert "s-maxage" in logged_in["Cache-Control"]
    assert b"reader1" not in logged_in.content  # its hello box is a hole
    assert "private" in hello_box(reader1, "/")["Cache-Control"]
    assert "private" in reader1.get("/me/comments/")["Cache-Control"]
    assert "X-Strata-Server" in anonymous


def test_pages_answer_head_requests_as_accelerators_send_them(client, seeded):
    article = Article.objects.first()

    for path in ("/", f"/articles/{article.slug}/", "/tags/politics/"):
        response = client.head(path)
        assert response.status_code == 200
        assert "s-maxage" in response["Cache-Control"]


# Article pages


def test_article_page_shows_body_tags_and_comments_oldest_first(client, seeded):
    article = Article.objects.filter(comments__isnull=False).distinct().first()

    response = client.get(f"/articles/{article.slug}/")

    html = response.content.decode()
    assert response.status_code == 200
    first_paragraph = article.body.split("\n\n")[0]
    assert f"<p>{first_paragraph}</p>" in html
    assert all(f'href="/tags/{tag.slug}/"' in html for tag in article.tags.all())
    comments = list(article.comments.order_by("created_at", "id"))
    assert list(response.context["comments"]) == comments
    positions = [html.index(comment.body) for comment in comments]
    assert positions == sorted(positions)
    assert all(f"<strong>{c.user.username}</strong>" in html for c in comments)


def test_anonymous_article_page_sets_no_cookie(client, seeded):
    article = Article.objects.first()

    response = client.get(f"/articles/{article.slug}/")

    assert response.status_code == 200
    assert not response.cookies
    assert "s-maxage" in response["Cache-Control"]
    html = response.content.decode()
    assert 'class="comment-form"' in html
    # The form's token is fetched by the browser, which gets its cookie with it.
    assert "csrfmiddlewaretoken" not in html
    assert html.count("<strata-hole") == 1


def test_unknown_article_is_404(client, seeded):
    response = client.get("/articles/no-such-story/")

    assert response.status_code == 404
    assert "Not found" in response.content.decode()


def test_comment_form_posts_a_comment(reader1):
    article = Article.objects.first()
    url = f"/articles/{article.slug}/"
    assert 'name="body"' in reader1.get(url).content.decode()

    response = reader1.post(url, {"body": "A fine piece of local reporting."})

    assert response.status_code == 302
    assert response["Location"] == f"{url}#comments"
    comment = article.comments.get(body="A fine piece of local reporting.")
    assert comment.user.username == "reader1"
    assert "A fine piece of local reporting." in reader1.get(url).content.decode()


def test_empty_comment_re_renders_the_form_with_errors(reader1):
    article = Article.objects.first()
    before = article.comments.count()

    response = reader1.post(f"/articles/{article.slug}/", {"body": ""})

    assert response.status_code == 200
    assert response.context["form"].errors["body"]
    assert article.comments.count() == before


def test_anonymous_comment_post_is_sent_to_log_in(client, seeded):
    article = Article.objects.first()

    response = client.post(f"/articles/{article.slug}/", {"body": "Hello"})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert not article.comments.filter(body="Hello").exists()


# Tag and author pages


def test_tag_page_paginates(client):
    seed(articles=200, tags=3)
    tag = Tag.objects.first()
    newest = list(tag.articles.order_by("-published_at", "-id"))
    assert len(newest) > 40

    first = client.get(f"/tags/{tag.slug}/")
    second = client.get(f"/tags/{tag.slug}/?page=2")

    assert [a.slug for a in first.context["page"]] == [a.slug for a in newest[:20]]
    assert [a.slug for a in second.context["page"]] == [a.slug for a in newest[20:40]]
    assert 'href="?page=2"' in first.content.decode()
    assert client.get(f"/tags/{tag.slug}/?page=999").status_code == 404
    assert client.get(f"/tags/{tag.slug}/?page=abc").status_code == 404
    assert client.get("/tags/no-such-tag/").status_code == 404


def test_author_page_shows_bio_and_paginated_articles(client):
    seed(articles=200, authors=3)
    author = Author.objects.order_by("slug").first()

    response = client.get(f"/authors/{author.slug}/")

    assert response.status_code == 200
    assert author.bio in response.content.decode()
    page = response.context["page"]
    assert page.paginator.count == author.articles.count()
    assert len(page) == min(20, author.articles.count())
    assert {a.author_id for a in page} == {author.id}


# Personal parts


def test_hello_box_shows_only_the_logged_in_user(client, seeded):
    reader2 = login_client("reader2")
    reader1 = login_client("reader1")
    url = f"/articles/{Article.objects.first().slug}/"

    for path in ("/", url):
        assert who(hello_box(reader1, path)) == ["reader1"]
        assert who(hello_box(reader2, path)) == ["reader2"]
        assert who(hello_box(client, path)) == []
    assert 'href="/accounts/login/"' in hello_box(client, "/").content.decode()


def test_my_comments_requires_login(client, seeded):
    response = client.get("/me/comments/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/me/comments/"


def test_my_comments_lists_only_own_comments(reader1):
    own = Comment.objects.filter(user__username="reader1")
    assert own.exists()

    response = reader1.get("/me/comments/")

    page = response.context["page"]
    assert page.paginator.count == own.count()
    assert {comment.user.username for comment in page} == {"reader1"}
    html = response.content.decode()
    assert all(f'href="/articles/{c.article.slug}/#comments"' in html for c in page)


def test_reader_logs_in_with_the_demo_password_and_logs_out(client, seeded):
    response = client.post("/accounts/login/", {"username": "reader3", "password": "newsroom"})
    assert response.status_code == 302
    assert who(hello_box(client, "/")) == ["reader3"]

    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert who(hello_box(client, "/")) == []


def test_admin_lists_newsroom_models_for_the_admin_user(seeded):
    assert authenticate(username="admin", password="admin").is_superuser
    admin = login_client("admin")

    for model in ("article", "author", "tag", "comment"):
        assert admin.get(f"/admin/newsroom/{model}/").status_code == 200
    article = Article.objects.first()
    assert admin.get(f"/admin/newsroom/article/{article.pk}/change/").status_code == 200


def test_site_css_is_served_without_collectstatic(client):
    response = client.get("/static/newsroom/site.css")

    assert response.status_code == 200
    assert b"#hello-box" in b"".join(response.streaming_content)
    response.close()  # a stream's request ends when it is closed (request_finished)


# Seed command


def test_seed_is_deterministic(client):
    tiny = {"articles": 25, "comments": 60, "authors": 8, "tags": 6}
    seed(seed=7, **tiny)
    first = list(Article.objects.order_by("published_at").values_list("title", "slug"))
    first_home = client.get("/").content

    seed(seed=7, flush=True, **tiny)

    assert list(Article.objects.order_by("published_at").values_list("title", "slug")) == first
    assert client.get("/").content == first_home
    seed(seed=8, flush=True, **tiny)
    assert list(Article.objects.order_by("published_at").values_list("title", "slug")) != first


def test_seed_creates_what_it_reports():
    output = seed()

    assert Article.objects.count() == 60
    assert Comment.objects.count() == SMALL["comments"]
    assert Author.objects.count() == 20
    assert Tag.objects.count() == 10
    assert get_user_model().objects.filter(username__startswith="reader").count() == 5
    tag_counts = [a.tags.count() for a in Article.objects.prefetch_related("tags")]
    assert min(tag_counts) >= 1 and max(tag_counts) <= 4
    assert output.startswith("Seeded 60 articles, 120 comments, 20 authors, 10 tags, 5 readers")
    assert len(Article.objects.first().body) > 2000


def test_seed_if_empty_leaves_existing_articles_alone():
    seed()
    slugs = set(Article.objects.values_list("slug", flat=True))

    output = seed(articles=10, if_empty=True)

    assert "skipped" in output
    assert set(Article.objects.values_list("slug", flat=True)) == slugs


def test_seed_refuses_to_add_to_existing_articles():
    seed()

    with pytest.raises(CommandError, match="--flush"):
        seed()
