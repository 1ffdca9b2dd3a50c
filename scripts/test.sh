#!/bin/sh
# Set up (once) and run the default test suite: fast tests, no GPU needed. Arguments go to pytest.
# POSIX sh: `sh` or `bash` runs it. DMM_PYTHON: run with that interpreter (no .venv set up).
set -eu
cd "$(dirname -- "$0")/.."
if [ -z "${DMM_PYTHON:-}" ]; then
  sh scripts/setup_env.sh
  DMM_PYTHON=.venv/bin/python
fi
exec "$DMM_PYTHON" -m pytest "$@"
