#!/usr/bin/env bash
# Debian's chromium (and a Chinese font, so screenshots are readable) for the docs page's browser test: installed
# only when missing. Needs root or sudo, as any apt-get; prints why it could not otherwise.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q .; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "browser: installing chromium and fonts-wqy-microhei (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q chromium fonts-wqy-microhei >/tmp/smart-union-apt.log 2>&1; then
  $SUDO apt-get update -q >>/tmp/smart-union-apt.log 2>&1
  $SUDO apt-get install -y -q chromium fonts-wqy-microhei >>/tmp/smart-union-apt.log 2>&1 || {
    echo "browser: could not install chromium (see /tmp/smart-union-apt.log)" >&2; exit 1; }
fi
