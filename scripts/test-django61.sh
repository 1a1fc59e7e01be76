#!/usr/bin/env bash
# Run the test suite again on Django 6.1, which needs Python 3.12 or newer.
set -euo pipefail
cd "$(dirname "$0")/.."
python312=$(scripts/find-python312.sh)
if [ -z "$python312" ]; then
  echo "test-django61: no Python 3.12+ on this machine: Django 6.1 was NOT tested (only Django 5.2)."
  exit 0
fi
VENV=.venv-django61 PYTHON="$python312" DJANGO='Django>=6.1,<6.2' scripts/bootstrap.sh
# The browser drill and the minute-long strata check drill test the stack's programs and
# the checker, not Django; they ran on Django 5.2 above. Everything else runs again here.
.venv-django61/bin/pytest --ignore=tests/security/test_browser.py \
  --ignore=tests/check/test_check_stack.py "$@"
.venv-django61/bin/python -m tests.backends
