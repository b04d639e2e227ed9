#!/usr/bin/env bash
# The browser group: `evalstream report` and the live view (`evalstream view`, while a run is
# logged) opened in Debian's chromium, headless, via Playwright pointed at that binary
# (Playwright's own browser download cannot work on these machines); and the built wheel checked
# for the view's static files.
# Installs chromium with apt if it is missing and Playwright into .venv-browser, then runs
# `pytest -m browser`; the test skips with a message only if no chromium could be installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
    >/tmp/evalstream-browser-apt.log 2>&1 \
    || echo "browser: apt-get could not install chromium (see /tmp/evalstream-browser-apt.log)"
fi
venv=.venv-browser
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e ".[dev]" "playwright>=1.40"
export HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1
exec "$venv/bin/pytest" -m browser -q -p no:cacheprovider "$@"
