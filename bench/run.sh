#!/usr/bin/env bash
# One command: install the project, make sure PostgreSQL and Redis are up, install wrk if it is missing
# (falling back to the Python load generator when apt is unavailable), then run the benchmarks.
# `bash bench/run.sh all` runs every bench (bench/suite.py); `bash bench/run.sh <bench>` one of them, plain
# `bash bench/run.sh` the GET /api/v1/me bench. Further arguments go to the bench, e.g. `--duration 5 --profile`;
# see --help.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
"$ROOT/scripts/services.sh"

if ! command -v wrk >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 \
      && DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1; then
    echo "bench: installed wrk"
  else
    echo "bench: wrk unavailable, using the Python load generator" >&2
  fi
fi

cd "$ROOT"
case "${1:-}" in
  all) shift; exec "$ROOT/.venv/bin/python" -m bench.suite "$@" ;;   # bench/suite.py: every bench, one table
  signup) shift; exec "$ROOT/.venv/bin/python" -m bench.signup "$@" ;;   # bench/signup.py: 报名 under contention
  fanout) shift; exec "$ROOT/.venv/bin/python" -m bench.fanout "$@" ;;   # bench/fanout.py: 通知群发 via senders
  mp) shift; exec "$ROOT/.venv/bin/python" -m bench.mp "$@" ;;   # bench/mp.py: /wechat/mp push + 公告列表
  jobs) shift; exec "$ROOT/.venv/bin/python" -m bench.jobs "$@" ;;   # bench/jobs.py: 生日/节日定时任务 over 100k staff
  redeem) shift; exec "$ROOT/.venv/bin/python" -m bench.redeem "$@" ;;   # bench/redeem.py: 生日蛋糕券核销
  instructions) shift; exec "$ROOT/.venv/bin/python" -m bench.instructions "$@" ;;   # callgrind: 每请求指令数
esac
exec "$ROOT/.venv/bin/python" -m bench.main "$@"
