#!/usr/bin/env bash
# The `-m eee` group: `evalstream export --format eee` checked by every_eval_ever itself — its
# validator API (pydantic models + the datastore's semantic checks) and `jsonschema` against its
# bundled JSON schemas, on every record of a real exported run (tests/interop/test_eee.py).
#
# every_eval_ever needs Python >= 3.12 (evalstream's floor is 3.11), so this venv,
# .venv-eee (git-ignored; scripts/_group_venv.sh), is made with a 3.12 interpreter: EEE_PYTHON,
# else python3.12 on PATH, else pyenv's 3.12.1. A re-run with the same pins and pyproject only
# re-installs evalstream. Override with EEE_VENV, EEE_SPEC.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${EEE_VENV:-${REPO_ROOT}/.venv-eee}"
EEE_SPEC="${EEE_SPEC:-every_eval_ever==0.3.0}"
GROUP=eee
# the first that runs and is >= 3.12 (a pyenv shim of a version not selected fails to run)
for candidate in "${EEE_PYTHON:-}" python3.12 /root/.pyenv/versions/3.12.1/bin/python3.12; do
    if [[ -n "$candidate" ]] && "$candidate" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
        GROUP_PYTHON="$(command -v "$candidate")"
        break
    fi
done
[[ -n "${GROUP_PYTHON:-}" ]] || { echo "[ci/eee] no Python >= 3.12 found: set EEE_PYTHON" >&2; exit 1; }
WANT="$(printf '%s\n' "$EEE_SPEC" "$GROUP_PYTHON" | cat - "$REPO_ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
install_group() {
    log "installing evalstream and ${EEE_SPEC} with $("$PY" --version)"
    # pytest and jsonschema: the tests validate every record against the bundled JSON schemas
    "${PIP[@]}" install -e "$REPO_ROOT" "$EEE_SPEC" "pytest>=8" "jsonschema>=4.20"
}
source "$REPO_ROOT/scripts/_group_venv.sh"

cd "$REPO_ROOT"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1
export EVALSTREAM_EEE_GROUP=1  # tests/interop/test_eee.py fails instead of skipping without the package
"$PY" -m pytest -q -m eee -p no:cacheprovider tests/interop/test_eee.py
log "done in $(( $(date +%s) - start ))s"
