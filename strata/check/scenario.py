"""What ``strata check`` does on a site: who logs in, which pages it reads, which forms it
posts, which management commands it runs as a separate writer, and where each write must
show. A site describes itself in a small TOML file (the
format is in ``docs/check.md``); the demo's ships beside this module,
``scenarios/newsroom.toml``, and is read the same way.

Loading validates everything a run needs before any request is made, and the first
mistake is one :class:`ScenarioError` line naming the file, the line and the entry
(``site.toml:31: writes[2].fields.title: ...``, in :mod:`strata.tomlfile`'s words, shared
with ``strata config``), never a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, NoReturn

from ..tomlfile import REQUIRED, Document, KeyPath, Table, TomlFileError, read_text
from .markers import key_of

__all__ = [
    "Scenario",
    "ScenarioError",
    "User",
    "Login",
    "FindStep",
    "ReadPath",
    "WriteForm",
    "WriteCommand",
    "load_scenario",
    "parse_scenario",
    "demo_scenario",
    "render",
    "placeholders",
    "DEMO_SOURCE",
    "WRITE_VARIABLES",
]

WRITE_VARIABLES = ("marker", "n", "key", "seq")
"""Placeholders a write's fields may use besides the object's own variables."""

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|\{|\}")
_WRITE_NAME = re.compile(r"^[a-z]{1,20}$")
_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,40}$")
_SELECTOR = re.compile(r"^(form|#[A-Za-z0-9_:.-]+|\.[A-Za-z0-9_-]+)$")
_COMMAND = re.compile(r"^[a-z][a-z0-9_]*$")

DEMO_SOURCE = "the built-in newsroom scenario"
"""How the demo's scenario names itself (in messages and in the report's JSON)."""


class ScenarioError(TomlFileError):
    """A scenario that cannot be run; the message says where and why, in one line."""


@dataclass(frozen=True)
class User:
    """An account the clients log in with."""

    username: str
    password: str


@dataclass(frozen=True)
class Login:
    """How to log in: a form with a username and a password field."""

    path: str = "/accounts/login/"
    form: str | None = None  # None: the first form with a password input
    username_field: str = "username"
    password_field: str = "password"
    success: tuple[int, ...] = (302, 303)


@dataclass(frozen=True)
class FindStep:
    """One step of finding the objects: GET ``path``, match ``pattern``."""

    path: str
    pattern: re.Pattern[str]
    user: str | None = None


@dataclass(frozen=True)
class ReadPath:
    """A page that the clients read, ``weight`` times as often as a page of weight 1."""

    path: str
    weight: float = 1.0

    @property
    def per_object(self) -> bool:
        """True when the path names an object (has placeholders)."""
        return bool(placeholders(self.path))


@dataclass(frozen=True)
class WriteForm:
    """A form that writes: GET ``page``, fill ``fields`` (one has ``{marker}``), POST it."""

    name: str
    user: str
    page: str
    form: str
    fields: dict[str, str]
    extra: dict[str, str] = field(default_factory=dict)
    keeps: str = "last"  # "all": every write stays shown (comments); "last": it replaces
    shows_on: tuple[str, ...] = ()
    verify: str = ""
    success: tuple[int, ...] = (302, 303)
    weight: float = 1.0  # how often its keys are drawn, beside the other writes' keys

    via = "form"


@dataclass(frozen=True)
class WriteCommand:
    """A write made by a separate process, as a cron job or an import script makes it:
    ``python -m django <command...>`` (one argument has ``{marker}``) with only the
    database and cache settings. ``kill_after_commit``: the arguments that make the
    command SIGKILL itself right after its commit (the ``writer-kill`` fault)."""

    name: str
    command: tuple[str, ...]
    kill_after_commit: tuple[str, ...] = ()
    keeps: str = "last"
    shows_on: tuple[str, ...] = ()
    verify: str = ""
    weight: float = 1.0

    via = "command"


@dataclass(frozen=True)
class Scenario:
    """A site's scenario, validated."""

    name: str
    source: str
    probe: str
    write_share: float
    logged_in_share: float
    logged_in_as: str
    login: Login
    users: dict[str, tuple[User, ...]]
    count: int
    find: tuple[FindStep, ...]
    objects: tuple[dict[str, str], ...]
    variables: tuple[str, ...]
    reads: tuple[ReadPath, ...]
    writes: tuple[WriteForm | WriteCommand, ...]
    ignore: tuple[re.Pattern[str], ...] = ()

    def visible(self, page: str) -> str:
        """``page`` without the parts the scenario ignores (messages quoting a write)."""
        for pattern in self.ignore:
            page = pattern.sub("", page)
        return page

    def write_named(self, name: str) -> WriteForm | WriteCommand:
        """The write called ``name``."""
        return next(w for w in self.writes if w.name == name)

    @property
    def commands(self) -> tuple[WriteCommand, ...]:
        """The writes made through a management command."""
        return tuple(w for w in self.writes if isinstance(w, WriteCommand))

    def keys(self, objects: int) -> list[str]:
        """Every key a run with ``objects`` objects writes: write by write, object by object."""
        return [key_of(w.name, n) for w in self.writes for n in range(1, objects + 1)]

    def roles(self) -> list[str]:
        """The roles the clients log in as (the reader role first)."""
        needed = [self.logged_in_as] if self.logged_in_share > 0 else []
        needed += [w.user for w in self.writes if isinstance(w, WriteForm)]
        return list(dict.fromkeys(needed))


# -- templates ----------------------------------------------------------------------------


def placeholders(template: str) -> list[str]:
    """The ``{name}`` placeholders of ``template`` (``{{`` and ``}}`` are literal braces)."""
    names = []
    for match in _PLACEHOLDER.finditer(template):
        text = match.group(0)
        if text in ("{", "}"):
            raise ValueError(f"a lone {text!r} (write {text * 2} for a literal brace)")
        if match.group(1):
            names.append(match.group(1))
    return names


def render(template: str, variables: dict[str, Any]) -> str:
    """``template`` with its placeholders replaced (every one must be in ``variables``)."""

    def one(match: re.Match[str]) -> str:
        text = match.group(0)
        if text in ("{{", "}}"):
            return text[0]
        name = match.group(1)
        if name is None:
            raise ValueError(f"a lone {text!r} in {template!r}")
        return str(variables[name])

    return _PLACEHOLDER.sub(one, template)


# -- loading ------------------------------------------------------------------------------

_TOP_KEYS = ("name", "probe", "ignore", "traffic", "login", "users", "objects", "reads", "writes")
_TRAFFIC_KEYS = ("write_share", "logged_in_share", "logged_in_as")
_LOGIN_KEYS = ("path", "form", "username_field", "password_field", "success")
_USER_KEYS = ("username", "password")
_OBJECTS_KEYS = ("count", "find", "list")
_FIND_KEYS = ("path", "pattern", "user")
_READ_KEYS = ("path", "weight")
_FORM_KEYS = ("user", "page", "form", "fields", "extra", "success")
_COMMAND_KEYS = ("command", "kill_after_commit")
_WRITE_KEYS = (
    "name",
    "user",
    "page",
    "form",
    "fields",
    "extra",
    "keeps",
    "shows_on",
    "verify",
    "success",
    "via",
    *_COMMAND_KEYS,
    "weight",
)


def demo_scenario() -> Scenario:
    """The scenario of the newsroom demo, shipped beside this module."""
    text = (files("strata.check") / "scenarios" / "newsroom.toml").read_text(encoding="utf-8")
    return parse_scenario(text, DEMO_SOURCE)


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file."""
    return parse_scenario(read_text(path, ScenarioError), str(path))


def parse_scenario(text: str, source: str = "scenario") -> Scenario:
    """Validate the TOML text of a scenario; ``source`` names it in error messages."""
    document = Document(text, source, error=ScenarioError, stop_at_first=True)
    return _Reader(document).scenario()


class _Reader:
    """Reads a scenario, raising :class:`ScenarioError` at its first mistake."""

    def __init__(self, document: Document):
        self.document = document

    def fail(self, path: KeyPath, message: str) -> NoReturn:
        self.document.fail(path, message)

    # -- values of a scenario ------------------------------------------------------------
    def path(self, table: Table, key: str, default: Any = REQUIRED) -> str:
        value = table.get(key, str, default, expected="a path starting with /", check=_is_path)
        self.template(value, (*table.path, key))
        return value

    def plain_path(self, table: Table, key: str, default: str) -> str:
        value = self.path(table, key, default)
        if placeholders(value):
            self.fail((*table.path, key), "must be a plain path, without placeholders")
        return value

    def statuses(self, table: Table, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(
            table.get(
                key,
                list,
                list(default),
                expected="a list of HTTP status codes, e.g. [302, 303]",
                check=lambda v: bool(v) and all(_is_status(s) for s in v),
            )
        )

    def selector(self, table: Table, key: str, default: Any = REQUIRED) -> Any:
        return table.pattern(
            key, _SELECTOR, "a form selector: '#id', '.class' or 'form' (the first)", default
        )

    def role(self, table: Table, key: str, users: dict, default: Any = REQUIRED) -> Any:
        role = table.string(key, default)
        if role is not None and role not in users:
            self.fail((*table.path, key), f"no users with the role {role!r}")
        return role

    def template(self, value: str, path: KeyPath) -> list[str]:
        try:
            return placeholders(value)
        except ValueError as error:
            self.fail(path, str(error))

    def check_variables(self, value: str, path: KeyPath, known: list[str]) -> None:
        for name in self.template(value, path):
            if name not in known:
                self.fail(
                    path,
                    f"unknown placeholder {{{name}}} (known here: "
                    + (", ".join("{" + k + "}" for k in known) or "none")
                    + ")",
                )

    def check_names(self, names: list[str], path: KeyPath) -> None:
        for name in names:
            if name in WRITE_VARIABLES:
                self.fail(path, f"{{{name}}} is reserved for writes; call the variable otherwise")

    def text_table(self, table: Table, key: str, known: list[str], default: Any) -> dict[str, str]:
        """A table of ``field = "text"``, each text using only ``known`` placeholders."""
        data = table.get(key, dict, default, expected="a table of field = value")
        texts = self.document.table(data, (*table.path, key), None)
        out = {}
        for name in data:
            out[name] = texts.get(name, str, expected="a string")
            self.check_variables(out[name], (*texts.path, name), known)
        return out

    # -- the scenario --------------------------------------------------------------------
    def scenario(self) -> Scenario:
        root = self.document.root(_TOP_KEYS)
        # What a run cannot do without, first: a file that is not a scenario says so.
        users_table = root.section(
            "users", None, required="roles, e.g. reader = [{ username = ..., password = ... }]"
        )
        objects_table = root.section(
            "objects", _OBJECTS_KEYS, required="find = [...] steps or a list = [...] of objects"
        )
        read_tables = root.tables("reads", _READ_KEYS, required=True)
        write_tables = root.tables("writes", _WRITE_KEYS, required=True)
        assert users_table is not None and objects_table is not None  # or they raised
        name = root.string("name", "site")
        probe = self.plain_path(root, "probe", "/")
        traffic = root.section("traffic", _TRAFFIC_KEYS) or root.empty("traffic")
        write_share = traffic.number("write_share", 0.0, 0.5, 0.05)
        logged_in_share = traffic.number("logged_in_share", 0.0, 1.0, 0.3)
        login = self.login(root.section("login", _LOGIN_KEYS) or root.empty("login"))
        users = self.users(users_table)
        default_role = "reader" if "reader" in users else next(iter(users))
        logged_in_as = self.role(traffic, "logged_in_as", users, default_role)
        count, find, objects, variables = self.objects(objects_table, users)
        reads = self.reads(read_tables, variables)
        writes = self.writes(write_tables, variables, users)
        ignore = self.patterns(root)
        return Scenario(
            name=name,
            source=self.document.source,
            probe=probe,
            write_share=float(write_share),
            logged_in_share=float(logged_in_share),
            logged_in_as=logged_in_as,
            login=login,
            users=users,
            count=count,
            find=find,
            objects=objects,
            variables=tuple(variables),
            reads=reads,
            writes=writes,
            ignore=ignore,
        )

    def patterns(self, root: Table) -> tuple[re.Pattern[str], ...]:
        texts = root.strings("ignore", [], expected="a list of regular expressions", each=bool)
        compiled = []
        for i, text in enumerate(texts):
            try:
                compiled.append(re.compile(text, re.S))
            except re.error as error:
                self.fail(("ignore", i), f"not a regular expression: {error}")
        return tuple(compiled)

    def login(self, t: Table) -> Login:
        return Login(
            path=self.plain_path(t, "path", Login.path),
            form=self.selector(t, "form", None),
            username_field=t.string("username_field", Login.username_field),
            password_field=t.string("password_field", Login.password_field),
            success=self.statuses(t, "success", Login.success),
        )

    def users(self, roles: Table) -> dict[str, tuple[User, ...]]:
        if not roles.data:
            self.fail(
                roles.path, "no roles; expected e.g. reader = [{ username = ..., password = ... }]"
            )
        users = {}
        for role, entries in roles.data.items():
            path = ("users", role)
            if not _ROLE.match(role):
                self.fail(path, "a role name is letters, digits, _ and -")
            entries = roles.get(
                role,
                (list, dict),
                expected="a list of { username = ..., password = ... }",
                check=lambda v: (
                    isinstance(v, dict) or (bool(v) and all(isinstance(e, dict) for e in v))
                ),
            )
            if isinstance(entries, dict):
                entries = [entries]
            accounts = []
            for i, entry in enumerate(entries):
                account = self.document.table(entry, (*path, i), _USER_KEYS)
                accounts.append(User(account.string("username"), account.string("password")))
            users[role] = tuple(accounts)
        return users

    def objects(self, t: Table, users: dict) -> tuple[int, tuple, tuple, list[str]]:
        if ("find" in t.data) == ("list" in t.data):
            self.fail(("objects",), "give either find = [...] steps or a list = [...] of objects")
        if "list" in t.data:
            return self.object_list(t)
        count = t.integer("count", 1, 100, 6)
        find = []
        variables: list[str] = []
        for i, step in enumerate(t.tables("find", _FIND_KEYS, required=True)):
            path = self.path(step, "path")
            self.check_variables(path, (*step.path, "path"), variables)
            if i == 0 and placeholders(path):
                self.fail((*step.path, "path"), "the first step finds the objects: no placeholders")
            where = (*step.path, "pattern")
            try:
                pattern = re.compile(step.string("pattern"))
            except re.error as error:
                self.fail(where, f"not a regular expression: {error}")
            names = list(pattern.groupindex)
            if not names:
                self.fail(where, "needs a named group, e.g. (?P<slug>[a-z0-9-]+)")
            self.check_names(names, where)
            again = [n for n in names if n in variables]
            if again:
                self.fail(where, f"{{{again[0]}}} is already found by an earlier step")
            user = self.role(step, "user", users, None)
            variables += names
            find.append(FindStep(path, pattern, user))
        return count, tuple(find), (), variables

    def object_list(self, t: Table) -> tuple[int, tuple, tuple, list[str]]:
        entries = t.get("list", list, expected="a non-empty list of tables", check=bool)
        objects = []
        variables: list[str] = []
        for i, entry in enumerate(entries):
            path = ("objects", "list", i)
            if not isinstance(entry, dict) or not entry:
                self.fail(path, "expected a table of variables, e.g. { slug = 'a', pk = '1' }")
            values = self.document.table(entry, path, None)
            for name in entry:
                values.get(name, (str, int), expected="a string or a whole number")
            if not variables:
                variables = list(entry)
            elif sorted(entry) != sorted(variables):
                self.fail(
                    path, f"must name the same variables as the first ({', '.join(variables)})"
                )
            objects.append({k: str(v) for k, v in entry.items()})
        self.check_names(variables, ("objects",))
        count = t.integer("count", 1, len(objects), len(objects))
        return count, (), tuple(objects[:count]), variables

    def reads(self, tables: list[Table], variables: list[str]) -> tuple[ReadPath, ...]:
        reads = []
        for t in tables:
            path = self.path(t, "path")
            self.check_variables(path, (*t.path, "path"), variables)
            weight = t.get(
                "weight",
                (int, float),
                1.0,
                expected="a number above 0, up to 1000000",
                check=lambda v: 0 < v <= 1e6,
            )
            reads.append(ReadPath(path, float(weight)))
        return tuple(reads)

    def writes(
        self, tables: list[Table], variables: list[str], users: dict
    ) -> tuple[WriteForm | WriteCommand, ...]:
        writes: list[WriteForm | WriteCommand] = []
        names = set()
        for t in tables:
            name = t.pattern("name", _WRITE_NAME, "1-20 lower-case letters")
            if name in names:
                self.fail((*t.path, "name"), f"{name!r} is used twice")
            names.add(name)
            via = t.choice(
                "via",
                ("form", "command"),
                "form",
                expected='"form" (the site\'s own form, over HTTP) or "command" (a management '
                "command in a process of its own, with only the database and cache settings)",
            )
            others = _COMMAND_KEYS if via == "form" else _FORM_KEYS
            for key in others:
                if key in t.data:
                    self.fail((*t.path, key), f'only for a write with via = "{_other(via)}"')
            keeps = t.choice(
                "keeps",
                ("all", "last"),
                "last",
                expected='"all" (every write stays shown, like comments) or '
                '"last" (a write replaces the previous one, like a title)',
            )
            shows_on = t.strings(
                "shows_on",
                [],
                expected="a list of paths starting with /",
                each=_is_path,
                empty=True,
            )
            for j, shown in enumerate(shows_on):
                where = (*t.path, "shows_on", j)
                self.check_variables(shown, where, variables)
                if not placeholders(shown):
                    self.fail(
                        where, f"{shown!r} names no object: a write shows on its object's pages"
                    )
            if "verify" not in t.data and not shows_on:
                self.fail(
                    t.path, "needs shows_on (or verify): the page that shows what was written"
                )
            verify = self.path(t, "verify", shows_on[0] if shows_on else REQUIRED)
            self.check_variables(verify, (*t.path, "verify"), variables)
            weight = t.get(
                "weight",
                (int, float),
                1.0,
                expected="a number above 0, up to 1000",
                check=lambda v: 0 < v <= 1000,
            )
            if via == "command":
                command, kill = self.command(t, variables)
                writes.append(
                    WriteCommand(
                        name=name,
                        command=command,
                        kill_after_commit=kill,
                        keeps=keeps,
                        shows_on=tuple(shows_on),
                        verify=verify,
                        weight=float(weight),
                    )
                )
                continue
            user = self.role(t, "user", users)
            page = self.path(t, "page")
            self.check_variables(page, (*t.path, "page"), variables)
            fields = self.text_table(t, "fields", variables + list(WRITE_VARIABLES), REQUIRED)
            if not fields:
                self.fail((*t.path, "fields"), "must name at least one field")
            if not any("marker" in placeholders(v) for v in fields.values()):
                self.fail((*t.path, "fields"), "no field contains the {marker} placeholder")
            extra = self.text_table(t, "extra", variables, {})
            writes.append(
                WriteForm(
                    name=name,
                    user=user,
                    page=page,
                    form=self.selector(t, "form"),
                    fields=fields,
                    extra=extra,
                    keeps=keeps,
                    shows_on=tuple(shows_on),
                    verify=verify,
                    success=self.statuses(t, "success", (302, 303)),
                    weight=float(weight),
                )
            )
        return tuple(writes)

    def command(self, t: Table, variables: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``command = ["name", "arg", ...]``: a management command and its arguments, one
        with ``{marker}``; ``kill_after_commit``: plain arguments added for writer-kill."""
        path = (*t.path, "command")
        argv = t.strings(
            "command",
            expected='a management command and its arguments, e.g. ["edit_article", "{pk}", '
            '"--title", "{marker}"]',
            each=bool,
        )
        if not _COMMAND.match(argv[0]):
            self.fail((*path, 0), f"{argv[0]!r} is not a management command's name")
        marked = False
        for i, argument in enumerate(argv):
            self.check_variables(argument, (*path, i), variables + list(WRITE_VARIABLES))
            marked = marked or "marker" in placeholders(argument)
        if not marked:
            self.fail(path, "no argument contains the {marker} placeholder")
        kill = t.strings(
            "kill_after_commit",
            [],
            expected="the arguments that make the command SIGKILL itself right after its "
            'commit, e.g. ["--kill-after-commit"]',
            each=bool,
        )
        for i, argument in enumerate(kill):
            self.check_variables(argument, (*t.path, "kill_after_commit", i), [])
        return tuple(argv), tuple(kill)


def _other(via: str) -> str:
    return "command" if via == "form" else "form"


def _is_path(value: str) -> bool:
    return value.startswith("/")


def _is_status(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599
