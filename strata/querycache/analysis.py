"""Which tags a query reads, and which tags a write changes. Pure functions of queries.

Reads: every table the SQL mentions gets its table tag, except the query's own (base)
table when its WHERE clause pins a condition column by equality (``=`` or ``IN``, AND-ed
at the top level): then the read depends on those condition tags and on the table's bulk
tag instead, so writes to other rows leave it valid.

Writes: an inserted row changes its table tag and the condition tags of its values; an
updated or deleted row changes the condition tags of its old values (read under lock
before the write) and of the new values it gets. When the rows are unknown, the table's
bulk tag changes too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import django
from django.db.models import Model
from django.db.models.expressions import Col
from django.db.models.lookups import Exact, In
from django.db.models.sql.query import Query
from django.db.models.sql.where import AND, WhereNode

from ..tags.naming import ALL, bulk_tag, condition_tag, new_rows_tag, table_tag
from .schema import table_info, tables_in_sql

__all__ = [
    "read_tags",
    "query_tables",
    "row_tags",
    "conditions_of",
    "is_nondeterministic",
    "raw_write_tables",
    "row_pinned_tables",
    "late_row_tags",
    "MAX_LATE_ROWS",
]

MAX_LATE_ROWS = 64
"""A joined table with more distinct rows than this in one result keeps its table tag."""

MAX_IN_VALUES = 100

_NONDETERMINISTIC = re.compile(
    r"\b(RANDOM|RAND|NOW|CURRENT_TIMESTAMP|CURRENT_DATE|CURRENT_TIME|LOCALTIMESTAMP|LOCALTIME|"
    r"STATEMENT_TIMESTAMP|CLOCK_TIMESTAMP|TRANSACTION_TIMESTAMP|TIMEOFDAY|GEN_RANDOM_UUID|UUID|"
    r"NEWID|SYSDATE|UTC_TIMESTAMP)\b\s*(\(|(?=\W)|$)|'now'",
    re.IGNORECASE,
)


@lru_cache(maxsize=4096)
def is_nondeterministic(sql: str) -> bool:
    """True when the SQL's result depends on the clock or a random generator."""
    return bool(_NONDETERMINISTIC.search(sql))


def conditions_of(query) -> dict[str, dict[str, set]]:
    """Tables pinned by equality in ``query``: table -> {column: values}.

    Only top-level AND-ed ``=``/``IN`` lookups on condition columns count, and only for
    tables that appear once in the query. A pin on a joined table is as good as one on
    the base table: rows of that table that fail the WHERE never reach the result, so
    writes to them cannot change it. Anything under OR or NOT pins nothing.
    """
    counts: dict[str, int] = {}
    for join in query.alias_map.values():
        counts[join.table_name] = counts.get(join.table_name, 0) + 1
    pinned: dict[str, dict[str, set]] = {}
    _walk(query.where, query.alias_map, counts, pinned)
    return pinned


def _walk(node: WhereNode, alias_map, counts, pinned: dict[str, dict[str, set]]) -> None:
    if node.connector != AND or node.negated:
        return
    for child in node.children:
        if isinstance(child, WhereNode):
            _walk(child, alias_map, counts, pinned)
            continue
        if not isinstance(child, Exact | In):
            continue
        lhs = child.lhs
        if not isinstance(lhs, Col) or lhs.alias not in alias_map:
            continue
        table = alias_map[lhs.alias].table_name
        info = table_info(table)
        if (
            info is None
            or counts.get(table) != 1
            or lhs.target.column not in info.condition_columns
        ):
            continue
        values = _plain_values(child)
        if values is None:
            continue
        columns = pinned.setdefault(table, {})
        column = lhs.target.column
        # Two pins of one column AND-ed: the rows satisfy both; keep the smaller set.
        columns[column] = columns[column] & values if column in columns else values


def _plain_values(lookup) -> set | None:
    rhs = lookup.rhs
    if isinstance(lookup, In):
        if not isinstance(rhs, list | tuple | set | frozenset) or len(rhs) > MAX_IN_VALUES:
            return None
        values = set()
        for value in rhs:
            value = _plain(value)
            if value is _NOT_PLAIN:
                return None
            values.add(value)
        return values
    value = _plain(rhs)
    if value is _NOT_PLAIN or value is None:
        return None
    return {value}


_NOT_PLAIN = object()


def _plain(value):
    if isinstance(value, Model):
        return value.pk
    if hasattr(value, "resolve_expression") or hasattr(value, "as_sql"):
        return _NOT_PLAIN
    if isinstance(value, list | tuple | dict | set):
        return _NOT_PLAIN
    return value


def query_tables(query: Query) -> frozenset[str]:
    """Every table a query reads: its joins, its subqueries' joins, ``extra(tables=...)``.

    Taken from the query's structure, not its SQL, so that a table no registered model
    owns (a historical model's, ``django_migrations``, a model of a private registry) is
    found too. SQL the project wrote itself (``RawSQL``, ``extra(where=...)``) is text:
    only the registered tables it names are known (:func:`tables_in_sql`).
    """
    found: set[str] = set()
    pending: list = [query]
    seen: set[int] = set()
    while pending:
        node = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, Query):
            for join in node.alias_map.values():
                name = getattr(join, "table_name", None)
                if name:
                    found.add(name)
            found.update(node.extra_tables)
            pending.extend(node.combined_queries)
            pending.append(getattr(node, "inner_query", None))
            pending.append(node.where)
            pending.extend(node.annotations.values())
            pending.extend(node.select)
            pending.extend(e for e in node.order_by if hasattr(e, "resolve_expression"))
            if isinstance(node.group_by, tuple):
                pending.extend(node.group_by)
            filtered = node._filtered_relations  # type: ignore[attr-defined]  # private Query attribute, not in django-stubs
            for relation in filtered.values():
                pending.append(relation.condition)
            continue
        if isinstance(node, WhereNode):
            pending.extend(node.children)
            continue
        inner = getattr(node, "query", None)  # Subquery, Exists
        if isinstance(inner, Query):
            pending.append(inner)
        getter = getattr(node, "get_source_expressions", None)
        if getter is not None:
            pending.extend(getter())
        rhs = getattr(node, "rhs", None)
        if isinstance(rhs, Query):
            pending.append(rhs)
    return frozenset(found)


def read_tags(query, sql: str, *, simple: bool) -> frozenset[str]:
    """The tags a SELECT depends on. ``simple``: a single SELECT with no subquery."""
    tags = {ALL}
    pinned = conditions_of(query) if simple else {}
    for table in tables_in_sql(sql):
        columns = pinned.get(table)
        if not columns:
            tags.add(table_tag(table))
            continue
        info = table_info(table)
        if info is None:  # conditions_of pins only known tables; unknown: the whole table
            tags.add(table_tag(table))
            continue
        column = min(columns, key=lambda c: _pin_rank(info, c, columns[c]))
        tags.add(bulk_tag(table))
        if column == info.pk_column:
            tags.add(new_rows_tag(table))
        tags.update(condition_tag(table, column, value) for value in columns[column])
    return frozenset(tags)


def _pin_rank(info, column: str, values: set) -> tuple:
    """Which pinned column a read depends on: any is correct, the most selective is best.

    The primary key, then unique columns, then the fewest values; a column that few
    values fill (a boolean, a generic relation's content type) only as a last resort,
    since every write to any row with that value would invalidate the read.
    """
    field = info.fields.get(column)
    unique = field is not None and (field.primary_key or field.unique)
    coarse = field is not None and (
        field.get_internal_type() == "BooleanField"
        or (
            field.is_relation
            and field.related_model is not None
            and field.related_model._meta.label_lower == "contenttypes.contenttype"
        )
    )
    return (column != info.pk_column, not unique, coarse, len(values))


_INTEGER_PKS = frozenset({"AutoField", "BigAutoField", "SmallAutoField", "IntegerField"})
_TAIL = re.compile(r" (WHERE|GROUP BY|HAVING|ORDER BY) ")


def row_pinned_tables(query, compiler, sql: str) -> tuple[tuple[str, int], ...]:
    """Tables whose rows in the result are named by primary keys the result itself holds.

    ``Comment.objects.filter(article_id=5).select_related("user")`` reads the users whose
    keys the comments hold: which users appear is decided by the comments (pinned), and a
    user row can only change what was read if it is one of them. So instead of the table
    tag of ``auth_user`` (which every login changes), such a read can depend on the row
    tags of the users it returned — taken after the read, and accepted only if the table's
    version did not move meanwhile (see ``monkey_patch._read``).

    A table qualifies when it appears once, is reached only through an equality on its
    integer primary key (a join to it, or as the base table an INNER join from it), is
    not named in WHERE/GROUP BY/HAVING (nor ORDER BY under LIMIT), and its key is a
    selected column.
    Returns ``(table, index of its key in each result row)`` pairs.
    """
    if query.combinator or query.group_by is not None or sql.upper().count("SELECT") != 1:
        return ()
    alias_map = query.alias_map
    counts: dict[str, int] = {}
    for join in alias_map.values():
        counts[join.table_name] = counts.get(join.table_name, 0) + 1
    pinned = conditions_of(query)
    tail_at = _TAIL.search(sql)
    tail = sql[tail_at.start() :] if tail_at else ""
    if not query.is_sliced:
        # Without LIMIT every matching row is in the result, so ordering by a table's
        # columns only moves rows whose own tags change with them.
        tail = tail.split(" ORDER BY ", 1)[0]
    found = []
    for alias, join in alias_map.items():
        table = join.table_name
        info = table_info(table)
        if info is None or counts[table] != 1 or table in pinned:
            continue
        pk_field = info.model._meta.pk
        pk_column = info.pk_column
        if pk_column is None or pk_field.get_internal_type() not in _INTEGER_PKS:
            continue  # (a composite primary key has no single column, nor an integer type)
        if not _reached_by_key(alias, join, alias_map, pk_column):
            continue
        if f"{_quoted_alias(compiler, alias)}." in tail:
            continue
        index = _selected_column(compiler, alias, pk_column)
        if index is not None:
            found.append((table, index))
    return tuple(found)


def _quoted_alias(compiler, alias: str) -> str:
    """``alias`` as the compiler writes it in SQL (Django 6.1 quotes every alias)."""
    if django.VERSION >= (6, 1):
        return compiler.quote_name(alias)
    return compiler.quote_name_unless_alias(alias)


def _reached_by_key(alias, join, alias_map, pk_column: str) -> bool:
    if getattr(join, "join_cols", None) is not None:  # a joined table
        if getattr(join, "filtered_relation", None) is not None:
            return False
        return all(child == pk_column for _, child in join.join_cols)
    # The base table: its rows must come through an INNER join on its key.
    return any(
        getattr(other, "parent_alias", None) == alias
        and other.join_type == "INNER JOIN"
        and getattr(other, "filtered_relation", None) is None
        and all(parent == pk_column for parent, _ in other.join_cols)
        for other in alias_map.values()
    )


def _selected_column(compiler, alias: str, column: str) -> int | None:
    for index, (expression, _, _) in enumerate(compiler.select or ()):
        if (
            isinstance(expression, Col)
            and expression.alias == alias
            and expression.target.column == column
        ):
            return index
    return None


def late_row_tags(table: str, keys: Iterable) -> set[str] | None:
    """The tags of ``keys``' rows of ``table`` (None when there are too many).

    None too for a table without a single-column primary key, or no longer known
    (:func:`row_pinned_tables` names neither): the caller keeps the table tag.
    """
    keys = {key for key in keys if key is not None}
    if len(keys) > MAX_LATE_ROWS:
        return None
    info = table_info(table)
    if info is None or info.pk_column is None:
        return None
    pk_column = info.pk_column
    tags = {bulk_tag(table), new_rows_tag(table)}
    tags.update(condition_tag(table, pk_column, key) for key in keys)
    return tags


def row_tags(table: str, rows: Iterable[dict]) -> set[str]:
    """Condition tags of rows given as ``{column: value}`` (only condition columns count).

    Values come from the database (old and new values of a write) or from a model's
    attributes (an insert): each is converted by its field as a filter's value is
    (``"5"`` and ``5`` name the same row of an integer column, a UUID string and the UUID
    the same row of a UUID column), so that a write's tags are the ones reads pinned.
    """
    info = table_info(table)
    tags: set[str] = set()
    if info is None:
        return tags
    for row in rows:
        for column in info.condition_columns:
            if column in row:
                value = _as_filtered(info.fields.get(column), row[column])
                try:
                    tags.add(condition_tag(table, column, value))
                except Exception:  # a value with no spelling (a broken __str__)
                    tags.add(bulk_tag(table))  # every read pinned to the table depends on it
    return tags


def _as_filtered(field, value):
    """``value`` as a filter on ``field`` would hold it (unchanged when it will not convert)."""
    if field is None or value is None:
        return value
    try:
        return field.get_prep_value(field.to_python(value))
    except Exception:  # noqa: BLE001  (a value the field refuses names no row a read pins)
        return value


_IDENT = r"(?:\"(?:[^\"]|\"\")+\"|`[^`]+`|\[[^\]]+\]|[\w$.]+)"
_WRITE_TARGETS = [
    re.compile(rf"^\s*INSERT\s+(?:OR\s+\w+\s+)?(?:IGNORE\s+)?INTO\s+({_IDENT})", re.I),
    re.compile(rf"^\s*REPLACE\s+INTO\s+({_IDENT})", re.I),
    re.compile(rf"^\s*UPDATE\s+(?:ONLY\s+)?(?:OR\s+\w+\s+)?({_IDENT})", re.I),
    re.compile(rf"^\s*DELETE\s+FROM\s+(?:ONLY\s+)?({_IDENT})", re.I),
    re.compile(rf"^\s*MERGE\s+INTO\s+({_IDENT})", re.I),
    re.compile(rf"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?({_IDENT})", re.I),
    re.compile(rf"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?({_IDENT}(?:\s*,\s*{_IDENT})*)", re.I),
    re.compile(rf"^\s*TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?({_IDENT}(?:\s*,\s*{_IDENT})*)", re.I),
]
_HARMLESS = re.compile(
    r"^\s*(SELECT|SHOW|EXPLAIN|SET|BEGIN|START|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA"
    r"|DECLARE|FETCH|CLOSE|LISTEN|NOTIFY|VALUES|CREATE\s+DATABASE|DROP\s+DATABASE"
    r"|CREATE\s+(UNIQUE\s+)?INDEX|CREATE\s+TABLE|CREATE\s+SEQUENCE|ANALYZE|WITH\s+\w+\s+AS\s*\(\s*SELECT)",
    re.IGNORECASE,
)


def _unquote(identifier: str) -> str:
    """``"app_table"`` → ``app_table``; ``public.app_table`` → ``app_table``."""
    identifier = identifier.strip()
    if identifier[:1] in '"`[':
        return identifier[1:-1].replace('""', '"')
    return identifier.rsplit(".", 1)[-1]


def raw_write_tables(sql: str) -> frozenset[str] | None:
    """Tables a raw SQL statement may write.

    ``frozenset()`` for a statement that writes nothing (SELECT, SET, BEGIN, CREATE
    TABLE...), the tables for a recognised write, and ``None`` when the statement may
    write but its tables cannot be told: the caller then invalidates everything.
    """
    statement = _strip_comments(sql).strip().rstrip(";").lstrip("( \t\r\n")
    if not statement or _HARMLESS.match(statement):
        # A CTE may hide a write: WITH x AS (DELETE ... RETURNING ...) SELECT ...
        if re.search(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", statement, re.I) and re.match(
            r"^\s*WITH\b", statement, re.I
        ):
            return None
        return frozenset()
    if ";" in statement:
        return None  # several statements: do not guess
    for pattern in _WRITE_TARGETS:
        match = pattern.match(statement)
        if match:
            names = [n for n in re.split(r"\s*,\s*", match.group(1)) if n]
            tables = {_unquote(n) for n in names}
            # Joined or sub-selected tables in an UPDATE/DELETE are read, not written,
            # but a table the statement mentions might be written through a trigger or
            # cascade we cannot see: include every known table it names.
            return frozenset(tables | set(tables_in_sql(statement)))
    # A write we cannot parse, a procedure call, or a statement we do not know.
    return None


def _strip_comments(sql: str) -> str:
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    return re.sub(r"--[^\n]*", " ", sql)
