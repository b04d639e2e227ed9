# Sourced by the scripts/ci/ groups that run in a venv of their own (lighteval.sh, trackers.sh).
# The caller sets REPO_ROOT, VENV, GROUP (the log prefix), WANT (a hash of its pins and of
# pyproject.toml) and defines `install_group`, which installs everything into the new venv with
# "${PIP[@]}". Here: create VENV if needed; when WANT differs from the venv's stamp, upgrade pip,
# run install_group and stamp the venv; otherwise reinstall only evalstream (editable, no
# dependencies: seconds). Defines log, PY and PIP, and `start` for the caller's timings.
# GROUP_PYTHON names the interpreter the venv is made with (default python3): a group whose peer
# needs a newer Python than evalstream's floor sets it (eee.sh: 3.12).
start=$(date +%s)
log() { printf '[ci/%s] %s\n' "$GROUP" "$*" >&2; }

PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check --quiet)
STAMP="$VENV/.evalstream-stamp"

if [[ ! -x "$PY" ]]; then
    log "creating $VENV"
    "${GROUP_PYTHON:-python3}" -m venv "$VENV"
fi
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
    "${PIP[@]}" install --upgrade pip
    install_group
    echo "$WANT" >"$STAMP"
else
    log "reusing $VENV"
    "${PIP[@]}" install --no-deps -e "$REPO_ROOT"
fi
log "venv ready in $(( $(date +%s) - start ))s"
