#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project with its test extras into it. Sourced by the other scripts.
# Installs only when pyproject.toml or the Python changed since the last install that succeeded; pip's output
# is shown only when it fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PYTHON" -m venv "$ROOT/.venv"
fi
STAMP="$ROOT/.venv/.smart-union-installed"
wanted="$( { cat "$ROOT/pyproject.toml"; "$ROOT/.venv/bin/python" -VV; } | sha256sum | cut -d' ' -f1)"
if [ -x "$ROOT/.venv/bin/smart-union" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi
echo "正在安装依赖到 .venv（首次或 pyproject.toml 有变化时）……" >&2
log="$ROOT/.venv/install.log"
if ! { "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip \
       && "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "安装失败，完整输出见 $log" >&2
  exit 1
fi
echo "$wanted" > "$STAMP"
