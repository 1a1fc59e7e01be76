"""The sdist and the wheel, as PyPI checks them and as a user installs them.

Both are built from a copy of the working tree (:func:`tests.suites.venvs.strata_distributions`),
then installed into new virtualenvs (never editable, cached under ``.strata/suites``): one
with ``django-strata[stack]``, one with ``django-strata`` alone. Every program runs with
its working directory outside the repository and without ``PYTHONPATH`` or
``DJANGO_SETTINGS_MODULE``, so Strata can only come from the wheel.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import django
import pytest

import strata
from tests.helpers import Client, remove_run_dir
from tests.scenarios.cms.helpers import _clean_environment, _output, _stop, strata_up
from tests.suites.sdist import REPO
from tests.suites.venvs import Distributions, strata_distributions, suite_venv

STACK_EXTRA = {"click", "rich", "jinja2", "pyuwsgi", "gunicorn", "whitenoise"}
"""What ``pip install "django-strata[stack]"`` adds to the Django app."""

INSTALL_ADVICE = 'pip install "django-strata[stack]"'

SETTINGS = "mysite.settings"
WSGI = "mysite.wsgi:application"

_SETTINGS_FOR_STRATA = """
# Strata, as a user adds it: the app, its middleware first, the hosts `strata up` serves.
INSTALLED_APPS = [*INSTALLED_APPS, "strata"]
MIDDLEWARE = ["strata.middleware.StrataMiddleware", *MIDDLEWARE]
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
TEMPLATES[0]["DIRS"] = [BASE_DIR / "templates"]
"""

_URLS_FOR_STRATA = """
from django.urls import include
from django.views.generic import TemplateView

urlpatterns += [
    path("-/", include("strata.urls")),
    path("", TemplateView.as_view(template_name="home.html")),
]
"""

HOME = '{% load strata %}<h1>Home</h1>{% personal "_hello.html" name="Ann" %}\n'
HELLO = "Hello, {{ name }}, from a hole.\n"
HOLE_TEXT = "Hello, Ann, from a hole."


@pytest.fixture(scope="module")
def distributions() -> Distributions:
    return strata_distributions()


@pytest.fixture(scope="module")
def stack_bin(distributions: Distributions) -> Path:
    """``bin/`` of a venv with ``django-strata[stack]`` from the wheel."""
    python = suite_venv(
        "packaging-stack", django.__version__, [], distributions.wheel, extras="stack"
    )
    _assert_strata_from(python)
    return python.parent


@pytest.fixture(scope="module")
def app_bin(distributions: Distributions) -> Path:
    """``bin/`` of a venv with ``django-strata`` alone (Django and dj-database-url)."""
    python = suite_venv("packaging-app", django.__version__, [], distributions.wheel, extras="")
    _assert_strata_from(python)
    return python.parent


def test_sdist_and_wheel_pass_twine_check(distributions: Distributions):
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict"]
        + [str(distributions.sdist), str(distributions.wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = re.sub(r"\x1b\[[0-9;]*m", "", checked.stdout + checked.stderr)
    assert checked.returncode == 0, report
    assert report.count("PASSED") == 2, report


def test_classifiers_are_ones_pypi_accepts_without_a_license_classifier(
    distributions: Distributions,
):
    from trove_classifiers import classifiers, deprecated_classifiers

    metadata = _wheel_metadata(distributions.wheel)
    ours = metadata.get_all("Classifier")
    assert set(ours) <= classifiers, set(ours) - classifiers
    assert not set(ours) & set(deprecated_classifiers)
    # PEP 639: the SPDX expression says it; a "License ::" classifier beside it is refused.
    assert metadata["License-Expression"] == "BSD-3-Clause"
    assert not [c for c in ours if c.startswith("License ::")]
    assert "Framework :: Django :: 5.2" in ours and "Framework :: Django :: 6.1" in ours


def test_sdist_holds_what_builds_the_wheel_and_what_a_reader_needs(
    distributions: Distributions,
):
    with tarfile.open(distributions.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    expected = {"pyproject.toml", "MANIFEST.in", "PKG-INFO", "README.md", "LICENSE"}
    expected |= {"CHANGELOG.md"} | _repo_files("strata")
    expected |= {str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")}
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if n.split("/")[0] in ("tests", "demo", "benchmarks")]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.endswith("secrets.env")]


def test_wheel_holds_every_module_template_and_the_license(distributions: Distributions):
    with zipfile.ZipFile(distributions.wheel) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read(_dist_info(names) + "entry_points.txt").decode()
    packaged = _repo_files("strata")
    assert packaged <= names, sorted(packaged - names)
    assert {
        "strata/py.typed",
        "strata/templates/strata/csrf_token.html",
        "strata/templates/strata/unavailable.html",
        "strata/stack/templates/varnish.vcl.j2",
        "strata/cli/entry.py",
    } <= names
    assert _dist_info(names) + "licenses/LICENSE" in names
    assert not [n for n in names if not n.startswith(("strata/", _dist_info(names)))]
    assert "strata = strata.cli.entry:main" in entry_points


def test_wheel_requires_the_django_app_only_and_offers_the_command_line_as_stack(
    distributions: Distributions,
):
    metadata = _wheel_metadata(distributions.wheel)
    assert metadata["Version"] == strata.__version__
    runtime, stack = set(), set()
    for requirement in metadata.get_all("Requires-Dist"):
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower()
        if ";" not in requirement:
            runtime.add(name)
        elif 'extra == "stack"' in requirement:
            stack.add(name)
    assert runtime == {"django", "dj-database-url", "prometheus-client"}
    assert stack == STACK_EXTRA


def test_strata_version_in_a_venv_with_the_stack_extra(stack_bin: Path, tmp_path: Path):
    answer = _run([str(stack_bin / "strata"), "--version"], cwd=tmp_path)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert answer.stdout.strip() == f"strata, version {strata.__version__}"


def test_strata_without_the_stack_extra_says_in_one_line_what_to_install(
    app_bin: Path, tmp_path: Path
):
    assert _importable(app_bin, STACK_EXTRA) == set()
    answer = _run([str(app_bin / "strata"), "up"], cwd=tmp_path)
    assert answer.returncode == 1
    assert "Traceback" not in answer.stdout + answer.stderr
    assert answer.stdout == ""
    lines = answer.stderr.splitlines()
    assert len(lines) == 1, answer.stderr
    assert lines[0].startswith("strata: the command line needs the stack extra: ")
    assert INSTALL_ADVICE in lines[0]
    assert "(missing: click, rich, jinja2, pyuwsgi, gunicorn)" in lines[0]


def test_new_project_with_strata_passes_its_checks_without_the_stack_extra(
    app_bin: Path, tmp_path: Path
):
    site = _new_site(app_bin, tmp_path)
    checked = _run([str(app_bin / "python"), "manage.py", "check"], cwd=site)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout
    shell = (
        "import sys\n"
        "from django.template.loader import get_template\n"
        "from django.test import RequestFactory\n"
        "for name in ('strata/csrf_token.html', 'strata/unavailable.html'):\n"
        "    print('template', get_template(name).origin.name)\n"
        "visitor = RequestFactory().get('/')\n"
        "print('rendered', get_template('home.html').render({}, visitor).strip())\n"
        "import strata.apps, strata.checks, strata.middleware, strata.urls\n"
        f"print('imported', sorted(set({sorted(STACK_EXTRA)!r}) & set(sys.modules)))\n"
    )
    answer = _run([str(app_bin / "python"), "manage.py", "shell", "-c", shell], cwd=site)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    templates = [line.split(" ", 1)[1] for line in answer.stdout.splitlines() if "template" in line]
    assert len(templates) == 2, answer.stdout
    assert all(path.startswith(str(app_bin.parent)) for path in templates), templates
    assert f"rendered <h1>Home</h1>{HOLE_TEXT}" in answer.stdout
    assert "imported []" in answer.stdout


@pytest.mark.stack
def test_strata_up_serves_a_new_project_and_fills_its_personal_hole(
    stack_bin: Path, tmp_path: Path
):
    site = _new_site(stack_bin, tmp_path)
    process, run_dir, port = _up_embedded(stack_bin, site)
    try:
        visitor = Client("127.0.0.1", port).get("/")
        assert visitor.status == 200, _output(run_dir)
        # No cookie, nobody in particular: the hole is rendered in place.
        assert HOLE_TEXT in visitor.text and "<strata-hole" not in visitor.text

        reader = Client("127.0.0.1", port)
        reader.cookies["returning"] = "1"
        page = reader.get("/")
        assert page.status == 200
        # Without Varnish nothing processes the ESI include: the page's script fetches it.
        found = re.search(r'<strata-hole data-src="(/-/hole/[^"]+/)">', page.text)
        assert found, page.text
        assert HOLE_TEXT not in page.text
        hole = reader.get(found.group(1))
        assert hole.status == 200
        assert hole.text.strip() == HOLE_TEXT
        cache_control = hole.getheader("Cache-Control", "")
        assert "private" in cache_control and "no-store" in cache_control

        _stop(process, run_dir)
        assert process.returncode == 0, _output(run_dir)
    finally:
        if process.poll() is None:
            with contextlib.suppress(AssertionError):
                _stop(process, run_dir)
        remove_run_dir(run_dir)


# -- helpers ----------------------------------------------------------------------------


def _run(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``argv`` as a user runs it: from ``cwd``, nothing pointing Python at the repository."""
    return subprocess.run(
        argv,
        cwd=cwd,
        env=_clean_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _assert_strata_from(python: Path) -> None:
    found = _run([str(python), "-c", "import strata; print(strata.__file__)"], cwd=Path("/"))
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith(str(python.parents[1])), found.stdout


def _importable(bin_dir: Path, modules: set[str]) -> set[str]:
    code = (
        "import importlib.util\n"
        f"print(' '.join(m for m in {sorted(modules)!r} if importlib.util.find_spec(m)))"
    )
    answer = _run([str(bin_dir / "python"), "-c", code], cwd=Path("/"))
    assert answer.returncode == 0, answer.stderr
    return set(answer.stdout.split())


def _new_site(bin_dir: Path, parent: Path) -> Path:
    """``django-admin startproject mysite``, then Strata added as its README says."""
    site = parent / "site"
    site.mkdir()
    made = _run([str(bin_dir / "django-admin"), "startproject", "mysite", str(site)], cwd=parent)
    assert made.returncode == 0, made.stderr
    package = site / "mysite"
    with open(package / "settings.py", "a") as settings:
        settings.write(_SETTINGS_FOR_STRATA)
    with open(package / "urls.py", "a") as urls:
        urls.write(_URLS_FOR_STRATA)
    (site / "templates").mkdir()
    (site / "templates" / "home.html").write_text(HOME)
    (site / "templates" / "_hello.html").write_text(HELLO)
    return site


def _up_embedded(bin_dir: Path, site: Path) -> tuple[subprocess.Popen, Path, int]:
    """``strata up --embedded`` for ``site``, from the venv; waits until it serves."""
    options = ["--embedded", "--wsgi", WSGI, "--app-servers", "1", "--workers", "1"]
    return strata_up(bin_dir, site, SETTINGS, options, app_servers=1)[:3]


def _repo_files(tree: str) -> set[str]:
    """The files under ``tree`` in the working tree that a release holds."""
    return {
        str(path.relative_to(REPO))
        for path in (REPO / tree).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def _dist_info(names: set[str]) -> str:
    return next(n.split("/", 1)[0] for n in names if ".dist-info/" in n) + "/"


def _wheel_metadata(wheel_path: Path):
    with zipfile.ZipFile(wheel_path) as wheel:
        names = set(wheel.namelist())
        return Parser().parsestr(wheel.read(_dist_info(names) + "METADATA").decode())
