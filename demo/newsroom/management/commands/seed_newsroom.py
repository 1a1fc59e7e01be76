"""``manage.py seed_newsroom``: fill the newsroom with a deterministic set of stories.

The same ``--seed`` and sizes give the same rows and so the same pages, byte for byte,
on any database: every value comes from one ``random.Random(seed)`` and a fixed clock,
and no page shows a primary key.
"""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Q
from django.utils.text import slugify

from newsroom.models import Article, Author, Comment, Tag

# The newest article is published at this instant; older ones are spaced out before it.
NEWEST = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
ARTICLE_SPACING = timedelta(hours=2)
BATCH_SIZE = 2000
READER_PASSWORD = "newsroom"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"
READER_NAME = re.compile(r"^reader\d+$")


def _words(text: str) -> list[str]:
    return text.split()


WORDS = _words(
    """
the a city council harbour budget school river market railway station bridge mayor
minister report inquiry plan vote committee winter summer storm flood road hospital
nurses doctors teachers students library museum festival concert theatre season club
league final match coach players fans stadium record profit loss bank rates housing
rent tenants landlords builders planning permission street square park garden trees
water energy wind solar grid power prices fuel farmers harvest weather forecast rain
north south east west old new small large local national early late public private
says said will would could might after before during while because although when
and but or yet so with without from into over under between against among about
opens closes rises falls grows shrinks plans delays approves rejects announces warns
expects reports confirms denies returns launches celebrates mourns honours questions
quickly slowly finally again still already almost nearly only just once twice often
residents officials volunteers engineers scientists workers drivers owners visitors
year month week day morning evening night decade century weekend holiday anniversary
first second third last next every each many few several some most more less
"""
)

TOPICS = _words(
    """
politics economy education health transport housing environment energy science
technology culture music theatre film books art history food travel weather sport
football cricket rugby tennis cycling athletics business markets jobs courts crime
policing immigration religion media farming fishing rivers coast parks planning
elections council schools universities hospitals railways roads aviation climate
"""
)

FIRST_NAMES = _words(
    """
Ada Alan Alice Amara Anna Arjun Beatriz Ben Carla Chen Clara Dan Dina Eli Emma Farah
Felix Grace Hana Hugo Ines Ivan Jade Jonas Kai Lena Leo Lucia Maya Milo Nadia Noah
Omar Priya Ravi Rosa Sami Sofia Tom Yara
"""
)

LAST_NAMES = _words(
    """
Abbott Ahmed Baker Berg Castillo Chowdhury Costa Dubois Evans Fischer Garcia Haddad
Hughes Ito Jensen Khan Kowalski Larsen Lopez Moreau Murphy Nakamura Novak Okafor
Olsen Patel Petrov Quinn Rossi Santos Schmidt Silva Singh Takahashi Tanaka Torres
Varga Walsh Weber Zhang
"""
)


def _sentence(rng: random.Random, low: int, high: int) -> str:
    words = rng.choices(WORDS, k=rng.randint(low, high))
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(_sentence(rng, 8, 18) for _ in range(sentences))


def _body(rng: random.Random) -> str:
    """A few KB: five to eight paragraphs separated by blank lines."""
    return "\n\n".join(_paragraph(rng, rng.randint(4, 7)) for _ in range(rng.randint(5, 8)))


def _title(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(4, 8))).capitalize()


def _tag_names(count: int) -> list[str]:
    names = [topic.capitalize() for topic in TOPICS]
    return [
        names[i] if i < len(names) else f"{names[i % len(names)]} {i // len(names) + 1}"
        for i in range(count)
    ]


def _author_names(rng: random.Random, count: int) -> list[str]:
    pairs = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
    if count <= len(pairs):
        return rng.sample(pairs, count)
    return [f"{pairs[i % len(pairs)]} {i // len(pairs) + 1}" for i in range(count)]


class Command(BaseCommand):
    help = "Fill the newsroom with deterministic authors, tags, articles, readers and comments."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--articles", type=int, default=5000)
        parser.add_argument("--comments", type=int, default=50000)
        parser.add_argument("--authors", type=int, default=200)
        parser.add_argument("--tags", type=int, default=50)
        parser.add_argument("--readers", type=int, default=500)
        parser.add_argument("--seed", type=int, default=1, help="Same seed, same site.")
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when articles exist."
        )
        parser.add_argument(
            "--flush",
            action="store_true",
            help="Delete the newsroom's rows and the reader accounts first.",
        )

    def handle(self, *args, **options) -> None:
        for name in ("articles", "authors", "tags", "readers"):
            if options[name] < 1:
                raise CommandError(f"--{name} must be at least 1.")
        if options["comments"] < 0:
            raise CommandError("--comments must be at least 0.")
        started = time.perf_counter()
        with transaction.atomic():
            if options["flush"]:
                self._flush()
            existing = Article.objects.count()
            if existing:
                if options["if_empty"]:
                    self.stdout.write(f"The newsroom already has {existing} articles; skipped.")
                    return
                raise CommandError(
                    f"The newsroom already has {existing} articles; "
                    "use --flush to replace them or --if-empty to skip."
                )
            counts = self._seed(random.Random(options["seed"]), options)
        seconds = time.perf_counter() - started
        self.stdout.write(
            "Seeded {articles} articles, {comments} comments, {authors} authors, "
            "{tags} tags, {readers} readers (+ admin) in {seconds:.1f} s.".format(
                **counts, seconds=seconds
            )
        )

    def _flush(self) -> None:
        Comment.objects.all().delete()
        Article.tags.through.objects.all().delete()
        Article.objects.all().delete()
        Tag.objects.all().delete()
        Author.objects.all().delete()
        get_user_model().objects.filter(username__regex=READER_NAME.pattern).delete()

    def _seed(self, rng: random.Random, options: dict) -> dict[str, int]:
        n_articles, n_comments = options["articles"], options["comments"]

        tag_names = _tag_names(options["tags"])
        Tag.objects.bulk_create(
            [Tag(name=name, slug=slugify(name)) for name in tag_names], batch_size=BATCH_SIZE
        )
        ids_by_slug = dict(Tag.objects.values_list("slug", "id"))
        tag_ids = [ids_by_slug[slugify(name)] for name in tag_names]

        author_names = _author_names(rng, options["authors"])
        Author.objects.bulk_create(
            [
                Author(name=name, slug=slugify(name), bio=_paragraph(rng, rng.randint(2, 4)))
                for name in author_names
            ],
            batch_size=BATCH_SIZE,
        )
        ids_by_slug = dict(Author.objects.values_list("slug", "id"))
        author_ids = [ids_by_slug[slugify(name)] for name in author_names]
        # A few authors write most of the stories, as in any newsroom.
        author_weights = [1 / (rank + 1) ** 0.8 for rank in range(len(author_ids))]

        articles = []
        for i in range(n_articles):
            title = _title(rng)
            jitter = timedelta(minutes=rng.randint(0, 90))
            articles.append(
                Article(
                    title=title,
                    slug=f"{slugify(title)[:180]}-{i + 1}",
                    author_id=rng.choices(author_ids, weights=author_weights)[0],
                    body=_body(rng),
                    published_at=NEWEST - (n_articles - 1 - i) * ARTICLE_SPACING - jitter,
                )
            )
        Article.objects.bulk_create(articles, batch_size=BATCH_SIZE)
        ids_by_slug = dict(Article.objects.values_list("slug", "id"))
        article_ids = [ids_by_slug[article.slug] for article in articles]
        published = [article.published_at for article in articles]
        del articles

        through = Article.tags.through
        through.objects.bulk_create(
            [
                through(article_id=article_id, tag_id=tag_id)
                for article_id in article_ids
                for tag_id in rng.sample(tag_ids, min(len(tag_ids), rng.randint(1, 4)))
            ],
            batch_size=BATCH_SIZE,
        )

        User = get_user_model()
        reader_names = [f"reader{i}" for i in range(1, options["readers"] + 1)]
        seed_users = User.objects.filter(
            Q(username__regex=READER_NAME.pattern) | Q(username=ADMIN_USERNAME)
        )
        existing = set(seed_users.values_list("username", flat=True))
        # One hash for every reader: hashing each password separately takes minutes.
        password = make_password(READER_PASSWORD)
        User.objects.bulk_create(
            [
                User(username=name, email=f"{name}@example.com", password=password)
                for name in reader_names
                if name not in existing
            ],
            batch_size=BATCH_SIZE,
        )
        if ADMIN_USERNAME not in existing:
            User.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)
        ids_by_name = dict(seed_users.values_list("username", "id"))
        reader_ids = [ids_by_name[name] for name in reader_names]

        comments = []
        for _ in range(n_comments):
            # Newer articles draw more comments: the index's density grows linearly.
            index = min(int(n_articles * rng.random() ** 0.5), n_articles - 1)
            comments.append(
                Comment(
                    article_id=article_ids[index],
                    user_id=rng.choice(reader_ids),
                    body=_paragraph(rng, rng.randint(1, 3)),
                    created_at=published[index] + timedelta(seconds=rng.randint(60, 14 * 86400)),
                )
            )
            if len(comments) == BATCH_SIZE:
                Comment.objects.bulk_create(comments)
                comments = []
        Comment.objects.bulk_create(comments)

        return {
            "articles": n_articles,
            "comments": n_comments,
            "authors": len(author_ids),
            "tags": len(tag_ids),
            "readers": len(reader_ids),
        }
