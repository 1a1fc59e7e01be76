"""What ``strata check`` does on a site: who logs in, which pages it reads, which forms it
posts, and where each write must show. The demo's scenario is built in; another site
describes itself in a small TOML file (the format is in ``docs/check.md``).

Loading validates everything a run needs before any request is made, and every mistake
is one :class:`ScenarioError` naming the file and the entry (``writes[2].fields.title:
...``), never a traceback.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Scenario",
    "ScenarioError",
    "User",
    "Login",
    "FindStep",
    "ReadPath",
    "WriteForm",
    "load_scenario",
    "parse_scenario",
    "demo_scenario",
    "render",
    "placeholders",
    "DEMO_SCENARIO",
    "WRITE_VARIABLES",
]

WRITE_VARIABLES = ("marker", "n", "key", "seq")
"""Placeholders a write's fields may use besides the object's own variables."""

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|\{|\}")
_WRITE_NAME = re.compile(r"^[a-z]{1,20}$")
_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,40}$")
_SELECTOR = re.compile(r"^(form|#[A-Za-z0-9_:.-]+|\.[A-Za-z0-9_-]+)$")

DEMO_SCENARIO = """\
# The newsroom demo (demo/newsroom): readers comment on articles, the editor retitles them.
name = "newsroom"
probe = "/"
# Django's admin says "The article “…” was changed successfully": a message quotes what
# was written, it does not show the article's state.
ignore = ['<ul class="messagelist">.*?</ul>']

[traffic]
write_share = 0.05
logged_in_share = 0.3
logged_in_as = "reader"

[login]
path = "/accounts/login/"

[users]
reader = [
  { username = "reader1", password = "newsroom" },
  { username = "reader2", password = "newsroom" },
  { username = "reader3", password = "newsroom" },
  { username = "reader4", password = "newsroom" },
  { username = "reader5", password = "newsroom" },
  { username = "reader6", password = "newsroom" },
  { username = "reader7", password = "newsroom" },
  { username = "reader8", password = "newsroom" },
]
editor = [{ username = "admin", password = "admin" }]

[objects]
count = 6

[[objects.find]]
path = "/"
pattern = 'href="/articles/(?P<slug>[A-Za-z0-9_-]+)/"'

[[objects.find]]
path = "/articles/{slug}/"
pattern = 'href="/authors/(?P<author>[A-Za-z0-9_-]+)/"'

[[objects.find]]
path = "/admin/newsroom/article/?q={slug}"
user = "editor"
pattern = 'href="/admin/newsroom/article/(?P<pk>[0-9]+)/change/'

[[reads]]
path = "/"
weight = 2

[[reads]]
path = "/articles/{slug}/"
weight = 6

[[reads]]
path = "/authors/{author}/"
weight = 2

[[writes]]
name = "comment"
user = "reader"
page = "/articles/{slug}/"
form = ".comment-form"
fields = { body = "A comment from strata check: {marker}" }
keeps = "all"
shows_on = ["/articles/{slug}/"]

[[writes]]
name = "title"
user = "editor"
page = "/admin/newsroom/article/{pk}/change/"
form = "#article_form"
fields = { title = "Check article {n} · {marker}" }
extra = { _save = "Save" }
keeps = "last"
shows_on = ["/articles/{slug}/", "/admin/newsroom/article/{pk}/change/"]
"""


class ScenarioError(Exception):
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
    writes: tuple[WriteForm, ...]
    ignore: tuple[re.Pattern[str], ...] = ()

    def visible(self, page: str) -> str:
        """``page`` without the parts the scenario ignores (messages quoting a write)."""
        for pattern in self.ignore:
            page = pattern.sub("", page)
        return page

    def write_named(self, name: str) -> WriteForm:
        """The write form called ``name``."""
        return next(w for w in self.writes if w.name == name)

    def keys(self, objects: int) -> list[str]:
        """Every key a run with ``objects`` objects writes: write by write, object by object."""
        from .markers import key_of

        return [key_of(w.name, n) for w in self.writes for n in range(1, objects + 1)]

    def roles(self) -> list[str]:
        """The roles the clients log in as (the reader role first)."""
        needed = [self.logged_in_as] if self.logged_in_share > 0 else []
        needed += [w.user for w in self.writes]
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


def demo_scenario() -> Scenario:
    """The built-in scenario of the newsroom demo."""
    return parse_scenario(DEMO_SCENARIO, "the built-in newsroom scenario")


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(f"cannot read the scenario {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"scenario {path}: not UTF-8 text") from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, source: str = "scenario") -> Scenario:
    """Validate the TOML text of a scenario; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{source}: not valid TOML: {error}") from None
    return _Parser(source).scenario(data)


class _Parser:
    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, message: str):
        raise ScenarioError(
            f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}"
        )

    # -- typed getters ---------------------------------------------------------------
    def table(self, data: Any, where: str, known: set[str], required: set[str] = frozenset()):
        if not isinstance(data, dict):
            self.fail(where, f"must be a table, not {_kind(data)}")
        unknown = sorted(set(data) - known)
        if unknown:
            self.fail(
                where,
                f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})",
            )
        missing = sorted(required - set(data))
        if missing:
            self.fail(where, f"{missing[0]!r} is required")
        return data

    def string(self, data: dict, name: str, where: str, default: str | None = None) -> str:
        value = data.get(name, default)
        if not isinstance(value, str) or (value == "" and default is None):
            self.fail(_at(where, name), f"must be a non-empty string, not {_kind(value)}")
        return value

    def path(self, data: dict, name: str, where: str, default: str | None = None) -> str:
        value = self.string(data, name, where, default)
        if not value.startswith("/"):
            self.fail(_at(where, name), f"{value!r} must be a path starting with /")
        self.template(value, _at(where, name))
        return value

    def number(self, data: dict, name: str, where: str, default: float, low: float, high: float):
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(_at(where, name), f"must be a number, not {_kind(value)}")
        if not low <= value <= high:
            self.fail(_at(where, name), f"{value} is not between {low:g} and {high:g}")
        return value

    def statuses(self, data: dict, name: str, where: str, default: tuple[int, ...]):
        value = data.get(name, list(default))
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and 100 <= v <= 599 for v in value)
        ):
            self.fail(_at(where, name), "must be a list of HTTP status codes, e.g. [302, 303]")
        return tuple(value)

    def selector(self, data: dict, name: str, where: str, required: bool) -> str | None:
        if name not in data and not required:
            return None
        value = self.string(data, name, where)
        if not _SELECTOR.match(value):
            self.fail(
                _at(where, name),
                f"{value!r} is not a form selector: use '#id', '.class' or 'form' (the first)",
            )
        return value

    def template(self, value: str, where: str) -> list[str]:
        try:
            return placeholders(value)
        except ValueError as error:
            self.fail(where, str(error))

    def check_variables(self, value: str, where: str, known: list[str]) -> None:
        for name in self.template(value, where):
            if name not in known:
                self.fail(
                    where,
                    f"unknown placeholder {{{name}}} (known here: "
                    + (", ".join("{" + k + "}" for k in known) or "none")
                    + ")",
                )

    # -- the scenario ----------------------------------------------------------------
    def scenario(self, data: dict) -> Scenario:
        self.table(
            data,
            "",
            {"name", "probe", "ignore", "traffic", "login", "users", "objects", "reads", "writes"},
            {"users", "objects", "reads", "writes"},
        )
        name = self.string(data, "name", "", "site")
        probe = self.path(data, "probe", "", "/")
        if placeholders(probe):
            self.fail("probe", "must be a plain path, without placeholders")
        traffic = self.table(
            data.get("traffic", {}),
            "traffic",
            {"write_share", "logged_in_share", "logged_in_as"},
        )
        write_share = self.number(traffic, "write_share", "traffic", 0.05, 0.0, 0.5)
        logged_in_share = self.number(traffic, "logged_in_share", "traffic", 0.3, 0.0, 1.0)
        login = self.login(data.get("login", {}))
        users = self.users(data["users"])
        default_role = "reader" if "reader" in users else next(iter(users))
        logged_in_as = self.string(traffic, "logged_in_as", "traffic", default_role)
        if logged_in_as not in users:
            self.fail("traffic.logged_in_as", f"no users with the role {logged_in_as!r}")
        count, find, objects, variables = self.objects(data["objects"], users)
        reads = self.reads(data["reads"], variables)
        writes = self.writes(data["writes"], variables, users)
        ignore = self.patterns(data.get("ignore", []))
        return Scenario(
            name=name,
            source=self.source,
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

    def patterns(self, data: Any) -> tuple[re.Pattern[str], ...]:
        if not isinstance(data, list) or not all(isinstance(p, str) and p for p in data):
            self.fail("ignore", "must be a list of regular expressions")
        compiled = []
        for i, text in enumerate(data):
            try:
                compiled.append(re.compile(text, re.S))
            except re.error as error:
                self.fail(f"ignore[{i}]", f"not a regular expression: {error}")
        return tuple(compiled)

    def login(self, data: Any) -> Login:
        where = "login"
        self.table(data, where, {"path", "form", "username_field", "password_field", "success"})
        path = self.path(data, "path", where, Login.path)
        if placeholders(path):
            self.fail(_at(where, "path"), "must be a plain path, without placeholders")
        return Login(
            path=path,
            form=self.selector(data, "form", where, required=False),
            username_field=self.string(data, "username_field", where, Login.username_field),
            password_field=self.string(data, "password_field", where, Login.password_field),
            success=self.statuses(data, "success", where, Login.success),
        )

    def users(self, data: Any) -> dict[str, tuple[User, ...]]:
        if not isinstance(data, dict) or not data:
            self.fail(
                "users", "must be a table of roles, e.g. reader = [{username=..., password=...}]"
            )
        users = {}
        for role, entries in data.items():
            where = f"users.{role}"
            if not _ROLE.match(role):
                self.fail(where, "a role name is letters, digits, _ and -")
            if isinstance(entries, dict):
                entries = [entries]
            if not isinstance(entries, list) or not entries:
                self.fail(where, "must be a non-empty list of {username=..., password=...}")
            accounts = []
            for i, entry in enumerate(entries):
                at = f"{where}[{i}]"
                self.table(entry, at, {"username", "password"}, {"username", "password"})
                accounts.append(
                    User(self.string(entry, "username", at), self.string(entry, "password", at))
                )
            users[role] = tuple(accounts)
        return users

    def objects(self, data: Any, users: dict) -> tuple[int, tuple, tuple, list[str]]:
        where = "objects"
        self.table(data, where, {"count", "find", "list"})
        if ("find" in data) == ("list" in data):
            self.fail(where, "give either find = [...] steps or a list = [...] of objects")
        if "list" in data:
            entries = data["list"]
            if not isinstance(entries, list) or not entries:
                self.fail(_at(where, "list"), "must be a non-empty list of tables")
            objects = []
            variables: list[str] | None = None
            for i, entry in enumerate(entries):
                at = f"objects.list[{i}]"
                if not isinstance(entry, dict) or not entry:
                    self.fail(at, "must be a table of variables, e.g. {slug = 'a', pk = '1'}")
                if not all(
                    isinstance(v, str | int) and not isinstance(v, bool) for v in entry.values()
                ):
                    self.fail(at, "values must be strings or integers")
                if variables is None:
                    variables = list(entry)
                elif sorted(entry) != sorted(variables):
                    self.fail(
                        at, f"must name the same variables as the first ({', '.join(variables)})"
                    )
                objects.append({k: str(v) for k, v in entry.items()})
            assert variables is not None
            self.check_names(variables, where)
            count = int(self.number(data, "count", where, len(objects), 1, len(objects)))
            return count, (), tuple(objects[:count]), variables
        count = int(self.number(data, "count", where, 6, 1, 100))
        steps = data["find"]
        if not isinstance(steps, list) or not steps:
            self.fail(_at(where, "find"), "must be a non-empty list of {path=..., pattern=...}")
        find = []
        variables = []
        for i, step in enumerate(steps):
            at = f"objects.find[{i}]"
            self.table(step, at, {"path", "pattern", "user"}, {"path", "pattern"})
            path = self.path(step, "path", at)
            self.check_variables(path, _at(at, "path"), variables)
            if i == 0 and placeholders(path):
                self.fail(_at(at, "path"), "the first step finds the objects: no placeholders")
            try:
                pattern = re.compile(self.string(step, "pattern", at))
            except re.error as error:
                self.fail(_at(at, "pattern"), f"not a regular expression: {error}")
            names = list(pattern.groupindex)
            if not names:
                self.fail(_at(at, "pattern"), "needs a named group, e.g. (?P<slug>[a-z0-9-]+)")
            self.check_names(names, _at(at, "pattern"))
            again = [n for n in names if n in variables]
            if again:
                self.fail(_at(at, "pattern"), f"{{{again[0]}}} is already found by an earlier step")
            user = step.get("user")
            if user is not None and user not in users:
                self.fail(_at(at, "user"), f"no users with the role {user!r}")
            variables += names
            find.append(FindStep(path, pattern, user))
        return count, tuple(find), (), variables

    def check_names(self, names: list[str], where: str) -> None:
        for name in names:
            if name in WRITE_VARIABLES:
                self.fail(where, f"{{{name}}} is reserved for writes; call the variable otherwise")

    def reads(self, data: Any, variables: list[str]) -> tuple[ReadPath, ...]:
        if not isinstance(data, list) or not data:
            self.fail("reads", "must be a non-empty list of {path=..., weight=...}")
        reads = []
        for i, entry in enumerate(data):
            at = f"reads[{i}]"
            self.table(entry, at, {"path", "weight"}, {"path"})
            path = self.path(entry, "path", at)
            self.check_variables(path, _at(at, "path"), variables)
            weight = self.number(entry, "weight", at, 1.0, 0.0, 1e6)
            if weight <= 0:
                self.fail(_at(at, "weight"), "must be above 0")
            reads.append(ReadPath(path, float(weight)))
        return tuple(reads)

    def writes(self, data: Any, variables: list[str], users: dict) -> tuple[WriteForm, ...]:
        if not isinstance(data, list) or not data:
            self.fail("writes", "must be a non-empty list of forms")
        writes = []
        names = set()
        for i, entry in enumerate(data):
            at = f"writes[{i}]"
            self.table(
                entry,
                at,
                {
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
                },
                {"name", "user", "page", "form", "fields"},
            )
            name = self.string(entry, "name", at)
            if not _WRITE_NAME.match(name):
                self.fail(_at(at, "name"), f"{name!r}: a write's name is 1-20 lower-case letters")
            if name in names:
                self.fail(_at(at, "name"), f"{name!r} is used twice")
            names.add(name)
            user = self.string(entry, "user", at)
            if user not in users:
                self.fail(_at(at, "user"), f"no users with the role {user!r}")
            page = self.path(entry, "page", at)
            self.check_variables(page, _at(at, "page"), variables)
            fields = self.text_table(
                entry.get("fields"), _at(at, "fields"), variables + list(WRITE_VARIABLES)
            )
            if not fields:
                self.fail(_at(at, "fields"), "must name at least one field")
            if not any("marker" in placeholders(v) for v in fields.values()):
                self.fail(_at(at, "fields"), "no field contains the {marker} placeholder")
            extra = self.text_table(entry.get("extra", {}), _at(at, "extra"), variables)
            keeps = self.string(entry, "keeps", at, "last")
            if keeps not in ("all", "last"):
                self.fail(
                    _at(at, "keeps"),
                    f"{keeps!r}: 'all' (every write stays shown, like comments) or "
                    "'last' (a write replaces the previous one, like a title)",
                )
            shows_on = entry.get("shows_on", [])
            if not isinstance(shows_on, list) or not all(isinstance(p, str) for p in shows_on):
                self.fail(_at(at, "shows_on"), "must be a list of paths")
            for j, path in enumerate(shows_on):
                where = f"{at}.shows_on[{j}]"
                if not path.startswith("/"):
                    self.fail(where, f"{path!r} must be a path starting with /")
                self.check_variables(path, where, variables)
                if not placeholders(path):
                    self.fail(
                        where, f"{path!r} names no object: a write shows on its object's pages"
                    )
            verify = entry.get("verify", shows_on[0] if shows_on else None)
            if verify is None:
                self.fail(at, "needs shows_on (or verify): the page that shows what was written")
            if not isinstance(verify, str) or not verify.startswith("/"):
                self.fail(_at(at, "verify"), "must be a path starting with /")
            self.check_variables(verify, _at(at, "verify"), variables)
            writes.append(
                WriteForm(
                    name=name,
                    user=user,
                    page=page,
                    form=self.selector(entry, "form", at, required=True),
                    fields=fields,
                    extra=extra,
                    keeps=keeps,
                    shows_on=tuple(shows_on),
                    verify=verify,
                    success=self.statuses(entry, "success", at, (302, 303)),
                )
            )
        return tuple(writes)

    def text_table(self, data: Any, where: str, known: list[str]) -> dict[str, str]:
        if not isinstance(data, dict):
            self.fail(where, f"must be a table of field = value, not {_kind(data)}")
        out = {}
        for key, value in data.items():
            if not isinstance(value, str):
                self.fail(f"{where}.{key}", f"must be a string, not {_kind(value)}")
            self.check_variables(value, f"{where}.{key}", known)
            out[key] = value
        return out


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__
