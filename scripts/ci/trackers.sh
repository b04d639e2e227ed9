#!/usr/bin/env bash
# The `-m trackers` group: use_wandb=True with the real trackio (its local store) and W&B
# (offline mode, no account), each read back with its own reader (tests/sinks/test_trackers.py).
#
# Builds its own venv, .venv-trackers (git-ignored; scripts/_group_venv.sh): evalstream with its
# `trackio` and `wandb` extras. A re-run with the same pyproject only re-installs evalstream.
# trackio's store and W&B's own folders go to a temporary folder the tests make; nothing is sent
# anywhere (WANDB_MODE=offline; the one online test points W&B at a closed loopback port).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${TRACKERS_VENV:-${REPO_ROOT}/.venv-trackers}"
GROUP=trackers
WANT="$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -d' ' -f1)"
install_group() {
    log "installing evalstream[trackio,wandb]"
    # pytest and jsonschema: the suite's conftest checks every results file against the schema
    "${PIP[@]}" install -e "$REPO_ROOT[trackio,wandb]" "pytest>=8" "jsonschema>=4.20"
}
source "$REPO_ROOT/scripts/_group_venv.sh"

cd "$REPO_ROOT"
export WANDB_MODE=offline HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
"$PY" -m pytest -q -m trackers -p no:cacheprovider tests/sinks/test_trackers.py
log "done in $(( $(date +%s) - start ))s"
