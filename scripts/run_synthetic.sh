#!/bin/sh
# The main job on a fresh machine: set up .venv (once), then the whole DMM-Net pipeline on the
# built-in synthetic dataset: generate data and proposals, train, segment, score against two
# baselines, write overlays and plots. Extra arguments go to `python -m dmm.pipeline`
# (e.g. KEY VALUE config overrides). Rerunning continues where a run stopped.
# POSIX sh: `sh` or `bash` runs it. DMM_PYTHON: run with that interpreter (no .venv set up).
set -eu
cd "$(dirname -- "$0")/.."
if [ -z "${DMM_PYTHON:-}" ]; then
  sh scripts/setup_env.sh
  DMM_PYTHON=.venv/bin/python
fi
exec "$DMM_PYTHON" -m dmm.pipeline "$@"
