#!/usr/bin/env bash
# The `-m readers` group: every details file evalstream writes, read back by the readers people
# use (tests/details/test_readers.py), and the dataset card's load_dataset snippet run by
# `datasets` against the loopback Hub (tests/sinks/test_card_datasets.py).
#
# Two venvs, each cached (git-ignored; scripts/_group_venv.sh) and rebuilt only when its pins or
# pyproject change:
#   .venv-readers-old  the oldest `datasets` the README names (READERS_OLD_SPEC)
#   .venv-readers      the current `datasets`, polars and DuckDB (READERS_SPEC)
# Both get Pillow (images), pytest and jsonschema (tests/conftest.py checks every results file
# the tests wrote); pandas comes with `datasets`. Override the folders with READERS_OLD_VENV /
# READERS_VENV.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
READERS_OLD_SPEC="${READERS_OLD_SPEC:-datasets==3.6.0}"
READERS_SPEC="${READERS_SPEC:-datasets polars duckdb}"
EXTRAS=(pillow "pytest>=8" "jsonschema>=4.20")
GROUP=readers
began_group=$(date +%s)

install_group() {
    log "installing $SPEC into $VENV"
    # shellcheck disable=SC2086 # SPEC is words on purpose ("datasets polars duckdb")
    "${PIP[@]}" install $SPEC "${EXTRAS[@]}" -e "$REPO_ROOT"
}

PYTHONS=()
for pair in "${READERS_OLD_VENV:-${REPO_ROOT}/.venv-readers-old}|$READERS_OLD_SPEC" \
    "${READERS_VENV:-${REPO_ROOT}/.venv-readers}|$READERS_SPEC"; do
    VENV="${pair%%|*}"
    SPEC="${pair#*|}"
    WANT="$(printf '%s\n' "$SPEC" "${EXTRAS[@]}" | cat - "$REPO_ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    source "$REPO_ROOT/scripts/_group_venv.sh"
    log "$("$PY" -c 'import datasets; print("datasets", datasets.__version__)') in $VENV"
    PYTHONS+=("$PY")
done

cd "$REPO_ROOT"
# the group's files only: the rest of the suite needs the dev extras these venvs do not have
TESTS=(tests/details/test_readers.py tests/sinks/test_card_datasets.py)
HF_HOME="$(mktemp -d)"
trap 'rm -rf "$HF_HOME"' EXIT
export HF_HOME HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1
export HF_DATASETS_DISABLE_PROGRESS_BARS=1
for py in "${PYTHONS[@]}"; do
    began=$(date +%s)
    log "pytest -m readers with $py"
    "$py" -m pytest -q -m readers -p no:cacheprovider "${TESTS[@]}"
    log "tests took $(( $(date +%s) - began ))s"
done
log "done in $(( $(date +%s) - began_group ))s"
