#!/usr/bin/env bash
# The `-m lmeval` group: lm-evaluation-harness writes a real run (its `results_*.json` and
# `samples_<task>_*.jsonl`, `lm_eval --output_path ... --log_samples`) of a tiny local task with
# its built-in `dummy` model, offline; `evalstream import --format lm-eval` records it, and
# ls / show / compare / query read it back (tests/interop/test_lmeval_real.py).
#
# Builds its own venv, .venv-lmeval (git-ignored; scripts/_group_venv.sh): lm-eval and evalstream
# with the `query` extra. lm-eval 0.4.13 does not require torch, and its `dummy` model needs none,
# so none is installed (a torch pulled in by a later lm-eval would be a CUDA build of several GB:
# then install torch==2.13.0 first, the CPU file on disk). A re-run with the same pins and
# pyproject only re-installs evalstream (editable, seconds).
# Override with LMEVAL_VENV, LMEVAL_SPEC.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${LMEVAL_VENV:-${REPO_ROOT}/.venv-lmeval}"
LMEVAL_SPEC="${LMEVAL_SPEC:-lm-eval==0.4.13}"
GROUP=lmeval
WANT="$(printf '%s\n' "$LMEVAL_SPEC" | cat - "$REPO_ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
install_group() {
    log "installing ${LMEVAL_SPEC}"
    "${PIP[@]}" install "$LMEVAL_SPEC" "pytest>=8" "jsonschema>=4.20"
    "${PIP[@]}" install -e "$REPO_ROOT[query]"
}
source "$REPO_ROOT/scripts/_group_venv.sh"

cd "$REPO_ROOT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1
"$PY" -m pytest -q -m lmeval -p no:cacheprovider tests/interop/test_lmeval_real.py
log "done in $(( $(date +%s) - start ))s"
