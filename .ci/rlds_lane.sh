#!/usr/bin/env bash
# rlds lane: check that logs written by envlogger are read correctly by the real
# `rlds` library (google-research/rlds) and an older TFDS.
#
# rlds 0.1.8 cannot be imported beside current TensorFlow, so it gets its own
# virtualenv with a pinned, known-good set (Python 3.11). The lane
#   1. creates that venv (${RLDS_VENV:-.venv-rlds}) and pip installs the set
#      (skipped when the venv already holds exactly this set);
#   2. runs tests/rlds_lane/write_log.py with the MAIN env's python to write a
#      small Catch log and expected.json (computed with envlogger.Reader);
#   3. runs tests/rlds_lane/check_with_rlds.py with the rlds venv's python
#      (no envlogger there), which checks the TFDS dataset with rlds.transformations.
#
# Usage: bash .ci/rlds_lane.sh [MAIN_PYTHON]      (default .venv/bin/python)
# Env:   RLDS_VENV    where the rlds venv lives (default .venv-rlds, repo-relative)
#        RLDS_PYTHON  interpreter to build it with (default: python3.11, else python3)
#        RLDS_FRESH=1 recreate the venv even if it is up to date
#        KEEP_TMP=1   keep the temporary log directory
# Last line: "rlds lane: 1 passed, 0 failed" (exit 0) or "rlds lane: 0 passed, 1 failed" (exit 1).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MAIN_PY="${1:-.venv/bin/python}"
RLDS_VENV="${RLDS_VENV:-.venv-rlds}"
PINS=(
  "tensorflow-cpu==2.15.1"
  "dm-reverb==0.14.0"
  "rlds==0.1.8"
  "tensorflow-datasets==4.9.4"
  "numpy<2"
  "tensorflow-metadata<1.16"
  "dm-env"
)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/rlds-lane.XXXXXX")"
PIP_LOG="$WORK/pip.log"
STAGE="setup"
START=$SECONDS

finish() {
  local rc=$?
  trap - EXIT
  if [[ $rc -ne 0 ]]; then
    echo "rlds lane: FAILED during: $STAGE (exit $rc, after $((SECONDS - START)) s)"
    if [[ -s "$PIP_LOG" && "$STAGE" == *venv* ]]; then
      echo "---- pip log ($PIP_LOG, last 300 lines) ----"
      tail -n 300 "$PIP_LOG"
      echo "---- end of pip log ----"
    fi
    echo "rlds lane: kept $WORK"
    echo "rlds lane: 0 passed, 1 failed"
    exit 1
  fi
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then
    echo "rlds lane: kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap finish EXIT

# -- 1. the rlds venv --------------------------------------------------------
STAGE="rlds venv: choosing python"
if [[ -n "${RLDS_PYTHON:-}" ]]; then
  BASE_PY="$RLDS_PYTHON"
elif command -v python3.11 >/dev/null 2>&1; then
  BASE_PY=python3.11
else
  BASE_PY=python3
fi
BASE_VER="$("$BASE_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$BASE_VER" != "3.11" ]]; then
  echo "rlds lane: $BASE_PY is Python $BASE_VER; the pinned set (tensorflow-cpu 2.15.1) needs 3.11." >&2
  echo "rlds lane: set RLDS_PYTHON to a Python 3.11 interpreter." >&2
  exit 1
fi

STAMP="$RLDS_VENV/.rlds-lane-pins"
WANT_STAMP="$(printf '%s\n' "$BASE_VER" "${PINS[@]}")"
if [[ "${RLDS_FRESH:-0}" != 1 && -x "$RLDS_VENV/bin/python" && -f "$STAMP" ]] \
    && [[ "$(cat "$STAMP")" == "$WANT_STAMP" ]]; then
  echo "rlds lane: reusing $RLDS_VENV (pins unchanged)"
else
  STAGE="rlds venv: python -m venv"
  T0=$SECONDS
  rm -rf "$RLDS_VENV"
  "$BASE_PY" -m venv "$RLDS_VENV" >>"$PIP_LOG" 2>&1
  STAGE="rlds venv: pip install"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$RLDS_VENV/bin/python" -m pip install --no-input --no-compile "${PINS[@]}" \
    >>"$PIP_LOG" 2>&1
  STAGE="rlds venv: pip check"
  "$RLDS_VENV/bin/python" -m pip check >>"$PIP_LOG" 2>&1 || echo "rlds lane: note: pip check reports conflicts (see $PIP_LOG)"
  printf '%s\n' "$WANT_STAMP" >"$STAMP"
  echo "rlds lane: created $RLDS_VENV with ${PINS[*]} in $((SECONDS - T0)) s"
fi
RLDS_PY="$RLDS_VENV/bin/python"

# -- 2. write a log with the main environment ---------------------------------
STAGE="write_log.py (main env: $MAIN_PY)"
if [[ ! -x "$MAIN_PY" ]] && ! command -v "$MAIN_PY" >/dev/null 2>&1; then
  echo "rlds lane: main env python '$MAIN_PY' not found; pass it as the first argument." >&2
  exit 1
fi
T0=$SECONDS
"$MAIN_PY" tests/rlds_lane/write_log.py "$WORK/log"
echo "rlds lane: wrote the log in $((SECONDS - T0)) s"

# -- 3. check it with rlds ----------------------------------------------------
STAGE="check_with_rlds.py (rlds env: $RLDS_PY)"
T0=$SECONDS
TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" "$RLDS_PY" tests/rlds_lane/check_with_rlds.py "$WORK/log"
echo "rlds lane: checked with rlds in $((SECONDS - T0)) s (lane total $((SECONDS - START)) s)"

STAGE="done"
echo "rlds lane: 1 passed, 0 failed"
