#!/usr/bin/env bash
# One command: install everything, bring up PostgreSQL, MariaDB and Redis if they are not running, and run the
# whole suite on PostgreSQL, then SQLite, then MariaDB. Extra arguments go to pytest (e.g. -k auth, -x).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh" || exit 1
"$ROOT/scripts/services.sh" --mariadb || exit 1
"$ROOT/scripts/browser.sh" || exit 1        # the docs page is opened in headless chromium
cd "$ROOT"
status=0
independent_done=0   # tests marked backend_independent run on the first backend only
for backend in ${SMART_UNION_TEST_BACKENDS:-postgresql sqlite mariadb}; do
  echo "=== test suite on $backend ==="
  SMART_UNION_TEST_DB=$backend SMART_UNION_TEST_BACKEND_INDEPENDENT_DONE=$independent_done \
    "$ROOT/.venv/bin/python" -m pytest "$@" || status=1
  independent_done=1
done
exit $status
