#!/usr/bin/env bash
# One command: install everything and run the service on its embedded default
# (SQLite + an embedded Redis + the fake WeChat server + demo data).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/smart-union" demo "$@"
