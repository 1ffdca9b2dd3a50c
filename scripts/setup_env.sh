#!/bin/sh
# Create .venv and install the project into it, once. Run by the other scripts (POSIX sh: `sh` or
# `bash` runs it). The install is redone when the contents of requirements.txt or setup.py change
# (their checksums are kept in the stamp file), not when a fresh clone merely gives them new dates.
# PYTHON: the interpreter that creates .venv (default python3).
set -eu
cd "$(dirname -- "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.dmm-installed
wanted=$(cksum requirements.txt setup.py)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "[setup] installing requirements (torch==2.14.1, torchvision==0.29.1, ...)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  printf '%s\n' "$wanted" > "$stamp"
fi
