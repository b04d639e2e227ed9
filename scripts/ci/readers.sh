#!/usr/bin/env bash
# The `-m readers` group: every details file evalstream writes, read back by the readers people
# use (tests/details/test_readers.py), and the dataset card's load_dataset snippet run by
# `datasets` against the loopback Hub (tests/sinks/test_card_datasets.py).
#
# Two venvs, each cached (git-ignored) and rebuilt only when its pins or pyproject change:
#   .venv-readers-old  the oldest `datasets` the README names (READERS_OLD_SPEC), with Pillow
#   .venv-readers      the current `datasets` (READERS_SPEC), polars, DuckDB and Pillow
# pandas comes with `datasets` in both. Override the venv folders with READERS_VENV /
# READERS_OLD_VENV.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
READERS_OLD_SPEC="${READERS_OLD_SPEC:-datasets==3.6.0}"
READERS_SPEC="${READERS_SPEC:-datasets polars duckdb}"
start=$(date +%s)
log() { printf '[ci/readers] %s\n' "$*" >&2; }

# what both venvs need beside `datasets`: Pillow (images), pytest, and jsonschema (tests/conftest.py
# checks every results file the tests wrote against the results schema)
EXTRAS=(pillow "pytest>=8" "jsonschema>=4.20")

# venv FOLDER SPEC...: create or reuse FOLDER with SPEC, EXTRAS and evalstream (editable)
venv() {
    local folder="$1"
    shift
    local py="$folder/bin/python" stamp="$folder/.evalstream-stamp" began want
    local pip=("$py" -m pip --disable-pip-version-check --quiet)
    began=$(date +%s)
    want="$(printf '%s\n' "$@" "${EXTRAS[@]}" | cat - "$REPO_ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    [[ -x "$py" ]] || python3 -m venv "$folder"
    if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
        log "installing $* into $folder"
        # shellcheck disable=SC2068 # the specs are words on purpose ("datasets polars duckdb")
        "${pip[@]}" install $@ "${EXTRAS[@]}" -e "$REPO_ROOT"
        echo "$want" >"$stamp"
    else
        "${pip[@]}" install --no-deps -e "$REPO_ROOT"
    fi
    log "$folder ready in $(( $(date +%s) - began ))s: $("$py" -c 'import datasets; print("datasets", datasets.__version__)')"
}

OLD="${READERS_OLD_VENV:-${REPO_ROOT}/.venv-readers-old}"
NEW="${READERS_VENV:-${REPO_ROOT}/.venv-readers}"
venv "$OLD" "$READERS_OLD_SPEC"
venv "$NEW" "$READERS_SPEC"

cd "$REPO_ROOT"
# the group's files only: the rest of the suite needs the dev extras these venvs do not have
TESTS=(tests/details/test_readers.py tests/sinks/test_card_datasets.py)
HF_HOME="$(mktemp -d)"
trap 'rm -rf "$HF_HOME"' EXIT
export HF_HOME HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1
export HF_DATASETS_DISABLE_PROGRESS_BARS=1
for py in "$OLD/bin/python" "$NEW/bin/python"; do
    began=$(date +%s)
    log "pytest -m readers with $py"
    "$py" -m pytest -q -m readers -p no:cacheprovider "${TESTS[@]}"
    log "tests took $(( $(date +%s) - began ))s"
done
log "done in $(( $(date +%s) - start ))s"
