#!/usr/bin/env bash
# The `-m lighteval` group: lighteval 0.13's real Pipeline, offline, with lighteval's tracker
# and with evalstream's (tests/lighteval/test_pipeline.py).
#
# Builds its own venv the way scripts/setup-bench-venv does (torch's CPU wheel first, from local
# disk, so lighteval's "torch<3" never pulls a CUDA build), cached at .venv-lighteval (git-ignored;
# scripts/_group_venv.sh): a re-run with the same pins and pyproject only re-installs evalstream
# (editable, seconds).
# Override with LIGHTEVAL_VENV, TORCH_SPEC, LIGHTEVAL_SPEC.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${LIGHTEVAL_VENV:-${REPO_ROOT}/.venv-lighteval}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
LIGHTEVAL_SPEC="${LIGHTEVAL_SPEC:-lighteval==0.13.0}"
GROUP=lighteval
WANT="$(printf '%s\n' "$TORCH_SPEC" "$LIGHTEVAL_SPEC" | cat - "$REPO_ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
install_group() {
    log "installing ${TORCH_SPEC} first, then ${LIGHTEVAL_SPEC} with torch held"
    "${PIP[@]}" install "$TORCH_SPEC"
    CONSTRAINTS="$(mktemp)"
    trap 'rm -f "$CONSTRAINTS"' EXIT
    echo "torch==$("$PY" -W ignore -c 'import torch; print(torch.__version__.split("+")[0])')" >"$CONSTRAINTS"
    "${PIP[@]}" install -c "$CONSTRAINTS" "$TORCH_SPEC" "$LIGHTEVAL_SPEC" "xxhash<4" "pytest>=8"
    "${PIP[@]}" install -c "$CONSTRAINTS" -e "$REPO_ROOT"
}
source "$REPO_ROOT/scripts/_group_venv.sh"

cd "$REPO_ROOT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1
"$PY" -m pytest -q -m lighteval -p no:cacheprovider tests/lighteval/test_pipeline.py
log "done in $(( $(date +%s) - start ))s"
