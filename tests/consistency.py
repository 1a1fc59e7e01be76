"""A randomized, concurrent freshness checker for the query cache.

    python -m tests.consistency [--seconds 5] [--writers 2] [--readers 3] [--seed 1]

Writer processes change articles (each writer owns some articles, so every article's
title goes v1, v2, v3... in order) through every write path: ``save``, ``QuerySet.update``,
raw SQL, ``bulk_update``, an atomic block, a rolled-back savepoint, and comment inserts
that raise a per-article count. Beside each article they change model shapes of other
projects (``tests/ormapp``): a restaurant of multi-table inheritance (its name saved
through the child, updated through the child's queryset, which Django sends to the
parent's table, or through the parent), the notes on it (a generic relation), and a
tree node moved with ``F()`` and raw SQL. Each write is logged with the time its call
returned, after commit. Reader processes read the same rows through the cached ORM in
several shapes (by slug, by pk, ``pk__in``, counts, annotations, prefetches, parent and
child of the inheritance, a polymorphic parent-then-child read, generic relations, tree
paths) and log what they saw and when they started.

Then every read is checked: it must show the newest write that had committed before the
read started, or a later one (no stale read), and never a value that was never committed
(no phantom from a rolled-back savepoint). The schedule is seeded; the run is bounded in
time. Exit status 1 on any violation, or when the cache answered too few reads for the
check to mean anything. The database and cache come from ``DATABASE_URL``/``CACHE_URL``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ARTICLES = 8
ROLLED_BACK = 1_000_000  # titles >= this were written in rolled-back savepoints only
REPO = Path(__file__).resolve().parents[1]


def setup_django() -> None:
    sys.path.insert(0, str(REPO / "demo"))
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()


def slug(i: int) -> str:
    return f"chk-{i}"


def prepare() -> dict:
    """Migrate, and create the articles the run works on (fresh each time)."""
    from datetime import UTC, datetime

    from django.contrib.auth.models import User
    from django.core.management import call_command

    from newsroom.models import Article, Author
    from tests.ormapp.models import Node, Note, Place, Restaurant

    call_command("migrate", verbosity=0, interactive=False)
    Article.objects.filter(slug__startswith="chk-").delete()
    Place.objects.filter(city__startswith="chk-").delete()
    Note.objects.all().delete()
    Node.objects.filter(path__startswith="9").delete()
    author, _ = Author.objects.get_or_create(slug="chk-author", defaults={"name": "Checker"})
    user, _ = User.objects.get_or_create(username="chk-user")
    published = datetime(2020, 1, 1, tzinfo=UTC)
    ids, places = {}, {}
    for i in range(ARTICLES):
        article = Article.objects.create(
            title="v0", slug=slug(i), author=author, body="-", published_at=published
        )
        ids[i] = article.pk
        places[i] = Restaurant.objects.create(name="v0", city=f"chk-{i}", cuisine="chk").pk
        Node.objects.create(path=node_path(i), depth=0, name=slug(i))
    return {"ids": ids, "places": places, "user": user.pk}


def node_path(i: int) -> str:
    return f"9{i:03d}"


def writer(index, writers, seed, deadline, ids, places, user, out):
    from django.db import connection, transaction
    from django.db.models import F

    from newsroom.models import Article, Comment
    from tests.ormapp.models import Node, Note, Place, Restaurant

    rng = random.Random(seed * 1000 + index)
    mine = [i for i in range(ARTICLES) if i % writers == index]
    version = {(i, kind): 0 for i in mine for kind in ("title", "place", "depth")}
    count = {(i, kind): 0 for i in mine for kind in ("count", "notes")}

    def log(kind, i, value):
        out.write(
            json.dumps(
                {"w": index, "kind": kind, "article": i, "value": value, "t": time.monotonic()}
            )
            + "\n"
        )

    operations = [
        "save",
        "update",
        "raw",
        "bulk_update",
        "atomic",
        "savepoint",
        "comment",
        "comments",
        "place_save",
        "place_child_update",
        "place_parent_update",
        "note",
        "tree_move",
    ]
    while time.monotonic() < deadline:
        i = rng.choice(mine)
        pk, place = ids[i], places[i]
        op = rng.choice(operations)
        kind = {"place": "place", "tree": "depth", "note": "notes"}.get(op.split("_")[0], "title")
        n = version.get((i, kind), 0) + 1
        title = f"v{n}"
        if op == "save":
            article = Article.objects.get(pk=pk)
            article.title = title
            article.save(update_fields=["title"])
        elif op == "update":
            Article.objects.filter(pk=pk).update(title=title)
        elif op == "raw":
            with connection.cursor() as cursor:
                cursor.execute("UPDATE newsroom_article SET title = %s WHERE id = %s", [title, pk])
        elif op == "bulk_update":
            Article.objects.bulk_update([Article(pk=pk, title=title)], ["title"])
        elif op == "atomic":
            with transaction.atomic():
                Article.objects.filter(pk=pk).update(title=title)
                Comment.objects.create(article_id=pk, user_id=user, body="atomic")
            count[(i, "count")] += 1
            log("count", i, count[(i, "count")])
        elif op == "savepoint":
            with transaction.atomic():
                Article.objects.filter(pk=pk).update(title=title)
                try:
                    with transaction.atomic():
                        Article.objects.filter(pk=pk).update(title=f"v{ROLLED_BACK + n}")
                        Comment.objects.create(article_id=pk, user_id=user, body="undone")
                        raise _RollBack
                except _RollBack:
                    pass
        elif op == "place_save":  # both tables of the inheritance, in one atomic block
            restaurant = Restaurant.objects.get(pk=place)
            restaurant.name = title
            restaurant.rating += 1
            restaurant.save()
        elif op == "place_child_update":  # Django sends the name to the parent's table
            Restaurant.objects.filter(pk=place).update(name=title, rating=F("rating") + 1)
        elif op == "place_parent_update":
            Place.objects.filter(pk=place).update(name=title)
        elif op == "tree_move":  # F() on the depth, then raw SQL, as a tree library moves
            with transaction.atomic():
                Node.objects.filter(path=node_path(i)).update(depth=F("depth") + 1)
                with connection.cursor() as cursor:
                    cursor.execute(
                        "UPDATE ormapp_node SET numchild = depth WHERE path = %s", [node_path(i)]
                    )
        if op in ("comment", "comments"):
            new = 1 if op == "comment" else 2
            if new == 1:
                Comment.objects.create(article_id=pk, user_id=user, body="c")
            else:
                Comment.objects.bulk_create(
                    [Comment(article_id=pk, user_id=user, body="c") for _ in range(new)]
                )
            count[(i, "count")] += new
            log("count", i, count[(i, "count")])
        elif op == "note":
            Note.objects.create(target=Place(pk=place), text="n")
            count[(i, "notes")] += 1
            log("notes", i, count[(i, "notes")])
        else:
            version[(i, kind)] = n
            log(kind, i, n)
        time.sleep(rng.random() * 0.004)


class _RollBack(Exception):
    pass


def reader(index: int, seed: int, deadline: float, ids: dict, places: dict, out):
    from django.contrib.contenttypes.models import ContentType
    from django.db.models import Count

    from newsroom.models import Article, Comment
    from strata.querycache.stats import stats
    from tests.ormapp.models import Node, Note, Place, Restaurant

    rng = random.Random(seed * 1000 + 500 + index)
    pks = {pk: i for i, pk in ids.items()}
    place_ids = {pk: i for i, pk in places.items()}
    place_type = ContentType.objects.get_for_model(Place)

    def value(title: str) -> int:
        return int(title[1:])

    shapes = [
        "slug",
        "pk",
        "in",
        "all",
        "count",
        "annotate",
        "prefetch",
        "parent",
        "child",
        "polymorphic",
        "notes",
        "tree",
    ]
    while time.monotonic() < deadline:
        i = rng.randrange(ARTICLES)
        pk, place = ids[i], places[i]
        shape = rng.choice(shapes)
        start = time.monotonic()
        seen = []  # (article, kind, value)
        if shape == "slug":
            seen.append((i, "title", value(Article.objects.get(slug=slug(i)).title)))
        elif shape == "pk":
            seen.append((i, "title", value(Article.objects.get(pk=pk).title)))
        elif shape == "in":
            other = ids[rng.randrange(ARTICLES)]
            for got_pk, title in Article.objects.filter(pk__in=[pk, other]).values_list(
                "pk", "title"
            ):
                seen.append((pks[got_pk], "title", value(title)))
        elif shape == "all":
            for got_pk, title in Article.objects.filter(slug__startswith="chk-").values_list(
                "pk", "title"
            ):
                seen.append((pks[got_pk], "title", value(title)))
        elif shape == "count":
            seen.append((i, "count", Comment.objects.filter(article_id=pk).count()))
        elif shape == "annotate":
            article = Article.objects.annotate(n=Count("comments")).get(pk=pk)
            seen += [(i, "title", value(article.title)), (i, "count", article.n)]
        elif shape == "prefetch":
            article = Article.objects.prefetch_related("comments").get(pk=pk)
            seen += [
                (i, "title", value(article.title)),
                (i, "count", len(article.comments.all())),
            ]
        elif shape == "parent":
            seen.append((i, "place", value(Place.objects.get(pk=place).name)))
        elif shape == "child":
            seen.append((i, "place", value(Restaurant.objects.get(pk=place).name)))
        elif shape == "polymorphic":  # the parent's rows, then each child by its link
            other = places[rng.randrange(ARTICLES)]
            for parent in Place.objects.filter(pk__in=[place, other]):
                seen.append((place_ids[parent.pk], "place", value(parent.restaurant.name)))
        elif shape == "notes":
            counted = Note.objects.filter(content_type=place_type, object_id=place).count()
            seen.append((i, "notes", counted))
        elif shape == "tree":
            seen.append((i, "depth", Node.objects.get(path=node_path(i)).depth))
        for article, kind, got in seen:
            out.write(
                json.dumps(
                    {
                        "r": index,
                        "shape": shape,
                        "article": article,
                        "kind": kind,
                        "value": got,
                        "start": start,
                    }
                )
                + "\n"
            )
    out.write(json.dumps({"stats": dict(stats)}) + "\n")


def check(lines: list[dict]) -> dict:
    """Compare every read with the writes committed before it started."""
    writes = defaultdict(list)  # (article, kind) -> [(t, value)]
    reads, cache_stats = [], defaultdict(int)
    for line in lines:
        if "stats" in line:
            for key, value in line["stats"].items():
                cache_stats[key] += value
        elif "w" in line:
            writes[(line["article"], line["kind"])].append((line["t"], line["value"]))
        else:
            reads.append(line)
    for history in writes.values():
        history.sort()
    stale, phantom, examples = 0, 0, []
    for read in reads:
        history = writes[(read["article"], read["kind"])]
        committed = max((v for t, v in history if t <= read["start"]), default=0)
        written = {0} | {v for _, v in history}
        if read["value"] < committed:
            stale += 1
            if len(examples) < 5:
                examples.append({**read, "committed_before_start": committed})
        elif read["value"] not in written and read["value"] > max(written):
            phantom += 1
            if len(examples) < 5:
                examples.append({**read, "problem": "never committed"})
    by_kind: dict[str, int] = defaultdict(int)
    for read in reads:
        by_kind[read["kind"]] += 1
    return {
        "reads_checked": len(reads),
        "reads_by_kind": dict(sorted(by_kind.items())),
        "writes": sum(len(h) for h in writes.values()),
        "stale": stale,
        "phantom": phantom,
        "cache_hits": cache_stats.get("hit", 0),
        "cache_misses": cache_stats.get("miss", 0),
        "examples": examples,
    }


def run_role(args) -> None:
    setup_django()
    ids = {int(k): v for k, v in json.loads(args.ids).items()}
    places = {int(k): v for k, v in json.loads(args.places).items()}
    if args.sabotage and args.role == "writer":
        # Prove the checker can fail: writers that never change versions.
        import strata.tags.invalidation as invalidation

        invalidation.bump_now = lambda tags, using: True
    with open(args.out, "w") as out:
        if args.role == "writer":
            writer(args.index, args.writers, args.seed, args.deadline, ids, places, args.user, out)
        else:
            reader(args.index, args.seed, args.deadline, ids, places, out)


def coordinate(args) -> int:
    if "CACHE_URL" not in os.environ:  # every role must share one cache
        scratch = tempfile.mkdtemp(prefix="strata-consistency-cache-")
        os.environ["CACHE_URL"] = f"file://{scratch}"
    setup_django()
    data = prepare()
    from django.db import connections

    connections.close_all()
    deadline = time.monotonic() + 2.0 + args.seconds  # two seconds for the roles to start
    scratch = Path(tempfile.mkdtemp(prefix="strata-consistency-"))
    processes = []
    for role, count in (("writer", args.writers), ("reader", args.readers)):
        for index in range(count):
            out = scratch / f"{role}-{index}.jsonl"
            command = [
                sys.executable,
                "-m",
                "tests.consistency",
                "--role",
                role,
                "--index",
                str(index),
                "--writers",
                str(args.writers),
                "--seed",
                str(args.seed),
                "--deadline",
                repr(deadline),
                "--ids",
                json.dumps(data["ids"]),
                "--places",
                json.dumps(data["places"]),
                "--user",
                str(data["user"]),
                "--out",
                str(out),
            ]
            if args.sabotage:
                command.append("--sabotage")
            processes.append((subprocess.Popen(command, cwd=REPO), out))
    failed = 0
    for process, _ in processes:
        try:
            process.wait(timeout=args.seconds + 60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        failed += process.returncode != 0
    lines = []
    for _, out in processes:
        if out.exists():
            lines += [json.loads(line) for line in out.read_text().splitlines() if line]
    report = check(lines)
    report.update(
        seed=args.seed,
        seconds=args.seconds,
        failed_processes=failed,
        database=os.environ.get("DATABASE_URL", "default"),
        cache=os.environ.get("CACHE_URL", "default"),
    )
    served = report["cache_hits"] / max(1, report["cache_hits"] + report["cache_misses"])
    print(json.dumps(report))
    print(
        f"checked {report['reads_checked']} reads against {report['writes']} writes: "
        f"{report['stale']} stale, {report['phantom']} never committed; "
        f"{served:.0%} of cacheable reads came from the cache; "
        f"{failed} process(es) failed"
    )
    ok = (
        not failed
        and report["stale"] == 0
        and report["phantom"] == 0
        and report["reads_checked"] > 100
        and report["cache_hits"] > 0
    )
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--role", choices=["writer", "reader"])
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--deadline", type=float)
    parser.add_argument("--ids")
    parser.add_argument("--places")
    parser.add_argument("--user", type=int)
    parser.add_argument("--out")
    parser.add_argument(
        "--sabotage",
        action="store_true",
        help="writers skip invalidation (the check must then fail)",
    )
    args = parser.parse_args()
    if args.role:
        run_role(args)
    else:
        sys.exit(coordinate(args))


if __name__ == "__main__":
    main()
