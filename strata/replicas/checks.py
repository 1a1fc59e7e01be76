"""System checks of databases: read replicas, read-your-writes, and transaction pooling.

``REPLICAS`` must name replica aliases (``strata.E027``) that a router reads from
(``E028``), on PostgreSQL for their reads to be cached (``W029``), with
``ReadYourWritesMiddleware`` (``W031``). A database behind a pooler in transaction mode
(``TRANSACTION_POOLED``, or pgbouncer's port) keeps no session state (``W032``, ``E033``).
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from ..conf import strata_settings
from .router import ReplicaRouter

ROUTER = "strata.replicas.ReplicaRouter"
READ_YOUR_WRITES_MIDDLEWARE = "strata.replicas.ReadYourWritesMiddleware"
PGBOUNCER_PORT = 6432  # pgbouncer's default port: a hint, not proof, of a pooler


# Not Tags.database: those run only with `check --database` (Django 6.1 skips them otherwise),
# and these read settings, no database.
@register(Tags.compatibility)
def check_replicas(app_configs=None, **kwargs) -> list[CheckMessage]:
    """``STRATA['REPLICAS']`` names replicas that a router, the middleware and caching can use."""
    replicas = strata_settings().replicas
    if not replicas:
        return []
    databases = getattr(settings, "DATABASES", {})
    messages: list[CheckMessage] = []
    unknown = [a for a in replicas if a not in databases or a == "default"]
    if unknown:
        messages.append(
            Error(
                f"STRATA['REPLICAS'] names {', '.join(map(repr, unknown))}, which "
                "DATABASES does not define as a replica.",
                hint="List the aliases of read replicas, defined in DATABASES (with "
                "'TEST': {'MIRROR': 'default'}); 'default' is the primary. Known aliases: "
                f"{', '.join(databases) or 'none'}.",
                id="strata.E027",
            )
        )
    if not _installed_router():
        messages.append(
            Error(
                "STRATA['REPLICAS'] is set, but no database router sends reads there.",
                hint=f'Add DATABASE_ROUTERS = ["{ROUTER}"]: it sends writes to the primary '
                "and lets a client that wrote read its own write.",
                id="strata.E028",
            )
        )
    other = [
        alias
        for alias in ("default", *replicas)
        if alias in databases and not _is_postgresql(databases[alias])
    ]
    if other:
        messages.append(
            Warning(
                f"{', '.join(map(repr, other))} is not PostgreSQL: Strata cannot tell how far "
                "a replica has replayed the primary's writes, so nothing read from the "
                "replicas is cached.",
                hint="Use PostgreSQL streaming replicas, or leave STRATA['REPLICAS'] empty.",
                id="strata.W029",
            )
        )
    if READ_YOUR_WRITES_MIDDLEWARE not in list(getattr(settings, "MIDDLEWARE", None) or []):
        messages.append(
            Warning(
                "STRATA['REPLICAS'] is set, but ReadYourWritesMiddleware is not in MIDDLEWARE: "
                "a client that wrote may read a lagging replica on its next request.",
                hint=f'Add "{READ_YOUR_WRITES_MIDDLEWARE}" right after '
                '"strata.middleware.StrataMiddleware".',
                id="strata.W031",
            )
        )
    return messages


def _installed_router() -> bool:
    for router in getattr(settings, "DATABASE_ROUTERS", []):
        if router in (ROUTER, "strata.replicas.router.ReplicaRouter"):
            return True
        if isinstance(router, ReplicaRouter):
            return True
        if isinstance(router, str):
            try:
                if issubclass(import_string(router), ReplicaRouter):
                    return True
            except (ImportError, TypeError):
                continue
    return False


def _is_postgresql(config: dict) -> bool:
    engine = config.get("ENGINE", "")
    return "postgresql" in engine or "postgis" in engine


@register(Tags.compatibility)
def check_transaction_pooled(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Databases behind a pooler in transaction mode keep nothing per connection."""
    pooled = strata_settings().transaction_pooled
    databases = getattr(settings, "DATABASES", {})
    messages: list[CheckMessage] = []
    wrong = [a for a in pooled if a not in databases or not _is_postgresql(databases[a])]
    if wrong:
        messages.append(
            Error(
                f"STRATA['TRANSACTION_POOLED'] names {', '.join(map(repr, wrong))}, which "
                "DATABASES does not define as a PostgreSQL database.",
                hint="List PostgreSQL aliases reached through pgbouncer. Known aliases: "
                f"{', '.join(databases) or 'none'}.",
                id="strata.E033",
            )
        )
    for alias, config in databases.items():
        if not isinstance(config, dict) or not _is_postgresql(config):
            continue
        if alias in pooled:
            why = "is listed in STRATA['TRANSACTION_POOLED']"
        elif str(config.get("PORT", "")) == str(PGBOUNCER_PORT):
            why = f"uses port {PGBOUNCER_PORT}, pgbouncer's default"
        else:
            continue
        problems = _session_state(config)
        if not problems:
            continue
        messages.append(
            Warning(
                f"DATABASES[{alias!r}] {why}, but {'; '.join(problems)}. Behind a pooler in "
                "transaction mode, each transaction may run on another server connection.",
                hint=f"Set DATABASES[{alias!r}]['DISABLE_SERVER_SIDE_CURSORS'] = True (or add "
                "?pool_mode=transaction to DATABASE_URL), keep prepare_threshold None and no "
                "assume_role. If that port is not pgbouncer in transaction mode, add "
                "'strata.W032' to SILENCED_SYSTEM_CHECKS.",
                id="strata.W032",
            )
        )
    return messages


def _session_state(config: dict) -> list[str]:
    """What in a database's settings needs one server connection for the whole session."""
    problems = []
    if not config.get("DISABLE_SERVER_SIDE_CURSORS"):
        problems.append(
            "server-side cursors are on (QuerySet.iterator() fetches, in later "
            "transactions, from a cursor that another server connection does not have)"
        )
    options = config.get("OPTIONS") or {}
    if options.get("server_side_binding") is True and options.get("prepare_threshold") is not None:
        problems.append(
            "psycopg prepares statements (server_side_binding with prepare_threshold): a "
            "statement prepared on one server connection is missing, or already taken, "
            "on the next"
        )
    if options.get("assume_role"):
        problems.append(
            "OPTIONS['assume_role'] runs SET ROLE once per connection: later transactions "
            "run on server connections without that role"
        )
    return problems
