#!/usr/bin/env bash
# The `-m inspect` group: `evalstream export/import --format inspect` checked by inspect_ai
# itself (tests/interop/test_inspect.py): a real log from inspect_ai's `eval` on its offline
# mockllm/model imported and queried, exported runs read back by `read_eval_log`, listed by
# `list_eval_logs` and served by a real `inspect view` on loopback.
#
# Builds its own venv, .venv-inspect (git-ignored; scripts/_group_venv.sh): evalstream with its
# `inspect` and `query` extras. A re-run with the same pyproject only re-installs evalstream.
# inspect_ai's data and cache folders go to the tests' temporary folders; nothing leaves the
# machine (the mock model's outputs carry their token usage, so tiktoken downloads nothing).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${INSPECT_VENV:-${REPO_ROOT}/.venv-inspect}"
GROUP=inspect
WANT="$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -d' ' -f1)"
install_group() {
    log "installing evalstream[inspect,query]"
    # pytest and jsonschema: the suite's conftest checks every results file against the schema
    "${PIP[@]}" install -e "$REPO_ROOT[inspect,query]" "pytest>=8" "jsonschema>=4.20"
}
source "$REPO_ROOT/scripts/_group_venv.sh"

cd "$REPO_ROOT"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 INSPECT_LOG_LEVEL=warning
"$PY" -m pytest -q -m inspect -p no:cacheprovider tests/interop/test_inspect.py
log "done in $(( $(date +%s) - start ))s"
