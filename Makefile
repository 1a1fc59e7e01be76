# The two commands of the README, and a few helpers.
.PHONY: demo test test-django61 lint bootstrap clean

VENV ?= .venv

demo: bootstrap ## run the demo site through the whole stack (Ctrl-C stops it)
	$(VENV)/bin/strata up

test: bootstrap lint ## the whole test suite: Django 5.2 here, then Django 6.1 on Python 3.12+
	$(VENV)/bin/pytest --durations=15
	scripts/run-parallel.sh "$(VENV)/bin/python -m tests.backends postgres-redis" \
	  "$(VENV)/bin/python -m tests.backends postgres-memcached"
	$(VENV)/bin/python -m tests.suites.django_suite --database sqlite
	$(VENV)/bin/python -m tests.suites.django_suite --database postgres
	scripts/run-parallel.sh "$(VENV)/bin/python -m tests.suites.thirdparty" scripts/test-django61.sh

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bootstrap:
	scripts/bootstrap.sh

clean:
	rm -rf .strata .pytest_cache .ruff_cache .mypy_cache
