"""django-simple-history's ``runtests.py``, with the wrapper's settings and optional labels.

Like the original, the settings go to ``settings.configure()`` (the suite relies on it:
``UserSettingsHolder`` lets a test delete a setting it never had), and the two test
packages run one after the other, each under a runner (and test databases) of its own;
labels given on the command line (a rerun of some tests) go to the runner of their
package.
"""

import sys

PACKAGES = ("simple_history.tests", "simple_history.registry_tests")


def main(labels: list[str]) -> int:
    """Run ``labels`` (default: both packages) and return the number of failures."""
    import django
    import strata_suite_settings
    from django.conf import settings
    from django.test.runner import DiscoverRunner

    settings.configure(
        **{name: value for name, value in vars(strata_suite_settings).items() if name.isupper()}
    )
    django.setup()
    failures = 0
    for package in PACKAGES:
        selected = [
            label for label in labels if label == package or label.startswith(package + ".")
        ]
        if labels and not selected:
            continue
        failures += DiscoverRunner(verbosity=1).run_tests(selected or [package])
    return failures


if __name__ == "__main__":
    sys.exit(min(main(sys.argv[1:]), 1))
