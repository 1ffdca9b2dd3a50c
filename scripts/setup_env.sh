#!/usr/bin/env bash
# Create .venv and install the project into it, once. Sourced or run by the other scripts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.dmm-installed
if [[ ! -f $stamp || requirements.txt -nt $stamp || setup.py -nt $stamp ]]; then
  echo "[setup] installing requirements (torch==2.14.1, torchvision==0.29.1, ...)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  touch "$stamp"
fi
