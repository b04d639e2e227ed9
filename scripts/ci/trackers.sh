#!/usr/bin/env bash
# The `-m trackers` group: use_wandb=True with the real trackio (its local store) and W&B
# (offline mode, no account), each read back with its own reader (tests/sinks/test_trackers.py).
#
# Builds its own venv, .venv-trackers (git-ignored): evalstream with its `trackio` and `wandb`
# extras. A re-run with the same pyproject only re-installs evalstream (editable, seconds).
# trackio's store and W&B's own folders go to a temporary folder the tests make; nothing is sent
# anywhere (WANDB_MODE=offline; the one online test points W&B at a closed loopback port).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${TRACKERS_VENV:-${REPO_ROOT}/.venv-trackers}"
start=$(date +%s)
log() { printf '[ci/trackers] %s\n' "$*" >&2; }

PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check --quiet)
STAMP="$VENV/.evalstream-stamp"
want="$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -d' ' -f1)"

if [[ ! -x "$PY" ]]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
fi
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]]; then
    log "installing evalstream[trackio,wandb]"
    "${PIP[@]}" install --upgrade pip
    "${PIP[@]}" install -e "$REPO_ROOT[trackio,wandb]" "pytest>=8"
    echo "$want" >"$STAMP"
else
    log "reusing $VENV"
    "${PIP[@]}" install --no-deps -e "$REPO_ROOT"
fi
log "venv ready in $(( $(date +%s) - start ))s"

cd "$REPO_ROOT"
export WANDB_MODE=offline HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
"$PY" -m pytest -q -m trackers -p no:cacheprovider tests/sinks/test_trackers.py
log "done in $(( $(date +%s) - start ))s"
