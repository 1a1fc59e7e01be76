"""The third-party Django apps whose own test suites run with Strata's query cache on.

Each is pinned to its latest release that supports Django 5.2 (checked on PyPI,
December 2026), installed from PyPI as a user would, and run the way its project runs
its tests, with ``tests/suites/apps/<app>/strata_suite_settings.py`` as settings.

Chosen per kind of ORM use; where the first choice's sdist lacks its tests, a peer of the
same kind replaced it:

- trees maintained with raw SQL and ``F()`` updates: django-treebeard (django-mptt
  0.20.0's sdist ships no tests);
- multi-table inheritance with subclass-aware reads: django-model-utils'
  ``InheritanceManager`` (django-polymorphic 4.x sdists, 4.0.0 to 4.11.7, ship no tests);
- generic relations: django-guardian's generic object permissions (django-taggit 6.1.0's
  sdist ships no tests);
- signals and bulk writes: django-simple-history, and django-reversion (cheap: its
  ``mysql`` alias becomes a third PostgreSQL database);
- a CMS with page-type inheritance: Wagtail, a subset about pages (tree moves, copies,
  publishing, revisions, workflows, and the same through the admin's views); its tests
  ship inside the package.

django-model-utils 5.0.0 and django-taggit 6.1.0 declare Django up to 5.1 and 5.0, but are
their projects' latest releases; model-utils' suite passes on 5.2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["App", "APPS", "rerun_label"]


@dataclass(frozen=True)
class App:
    """One app's pinned release and how its suite runs."""

    name: str
    """Key on the command line, and the folder of its wrapper under ``tests/suites/apps/``."""
    project: str
    version: str
    kind: str
    runner: str
    """``pytest`` (node ids, ``-p strata_suite_pytest``) or ``unittest`` (Django's runner)."""
    command: tuple[str, ...]
    """Arguments to the venv's ``python``, before the tests to run."""
    targets: tuple[str, ...]
    """The tests a full run selects (a rerun names test ids instead)."""
    requirements: tuple[str, ...] = ()
    """Test requirements beside ``project==version``."""
    tests_in_sdist: bool = True
    """The suite runs from the unpacked sdist (else from the installed package)."""
    postgres: bool = True
    sqlite: bool = True
    """The suite can run on SQLite alone (``--database sqlite``)."""
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    """Environment per database (``postgres``/``sqlite``): the suite's own switches."""
    timeout: int = 600

    @property
    def requirement(self) -> str:
        """The pinned requirement, ``project==version``."""
        return f"{self.project}=={self.version}"


def _pytest(config: str) -> tuple[str, ...]:
    """pytest with the app's own config file (``config``), the harness's plugin and settings.

    Naming the config file keeps pytest from taking Strata's ``pyproject.toml`` (the sdists
    are unpacked inside this repository) when the app's own has no pytest section.
    """
    return ("-m", "pytest", "-c", config, "--rootdir", ".", *_PYTEST_OPTIONS)


_PYTEST_OPTIONS = (
    "-p",
    "strata_suite_pytest",
    "-p",
    "no:cacheprovider",
    "--ds",
    "strata_suite_settings",
    "--tb=native",
    "-q",
    "-rN",
)
_DJANGO_TEST = ("-m", "django", "test", "--noinput", "--settings", "strata_suite_settings")

APPS: dict[str, App] = {
    app.name: app
    for app in (
        App(
            name="treebeard",
            project="django-treebeard",
            version="7.0.3",
            kind="trees (raw SQL, F() updates)",
            runner="pytest",
            command=_pytest("setup.cfg"),
            # test_deprecated_api.py repeats these through deprecated names (1,237 tests,
            # 70 s more with Strata); test_benchmarks.py needs pytest-benchmark.
            targets=("tests/test_treebeard.py",),
            requirements=("pytest>=8", "pytest-django>=4.0,<5.0"),
            env={"postgres": {"DATABASE_ENGINE": "psql"}},
        ),
        App(
            name="model_utils",
            project="django-model-utils",
            version="5.0.0",
            kind="multi-table inheritance",
            runner="pytest",
            command=_pytest("setup.cfg"),
            targets=("tests",),
            requirements=("pytest>=8", "pytest-django>=4.5", "time-machine>=2.4"),
            env={"sqlite": {"SQLITE": "1"}},
        ),
        App(
            name="guardian",
            project="django-guardian",
            version="3.5.2",
            kind="generic relations",
            runner="pytest",
            command=_pytest("pyproject.toml"),
            targets=("guardian",),
            requirements=("pytest>=8", "pytest-django>=4.9", "django-environ>=0.12"),
        ),
        App(
            name="simple_history",
            project="django-simple-history",
            version="3.13.0",
            kind="signals, bulk writes",
            runner="unittest",
            command=("-m", "strata_runtests"),
            targets=(),
        ),
        App(
            name="reversion",
            project="django-reversion",
            version="6.4.0",
            kind="signals, revisions",
            runner="unittest",
            command=("tests/manage.py", "test", "--noinput", "--settings", "strata_suite_settings"),
            targets=("test_app",),
            sqlite=False,  # its tests use the postgres alias too
        ),
        App(
            name="wagtail",
            project="wagtail",
            version="8.0.1",
            kind="CMS, page-type inheritance",
            runner="unittest",
            command=(*_DJANGO_TEST, "--parallel", "2"),
            targets=(
                "wagtail.tests.test_page_model",
                "wagtail.tests.test_page_queryset",
                "wagtail.tests.test_revision_model",
                "wagtail.tests.test_workflow",
                # The same operations through the admin's views: requests, whose query
                # cache stores wait for the response (request_finished).
                "wagtail.admin.tests.pages.test_move_page",
                "wagtail.admin.tests.pages.test_copy_page",
                "wagtail.admin.tests.pages.test_revisions",
                "wagtail.admin.tests.pages.test_unpublish_page",
                "wagtail.admin.tests.pages.test_reorder_page",
            ),
            requirements=("Jinja2>=3.0,<3.2", "freezegun>=0.3.8", "factory-boy>=3.2"),
            tests_in_sdist=False,
            env={"postgres": {"DATABASE_ENGINE": "django.db.backends.postgresql"}},
        ),
    )
}


def rerun_label(app: App, test_id: str) -> str:
    """What to put on the suite's command line to run ``test_id`` again.

    Django's runner reports a failed ``setUpClass`` as ``setUpClass (module.Class)``:
    the class is what runs again.
    """
    holder = re.fullmatch(r"\w+ \((.+)\)", test_id)
    if app.runner == "unittest" and holder:
        return holder.group(1)
    return test_id
