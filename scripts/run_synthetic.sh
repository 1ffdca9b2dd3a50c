#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv (once), then the whole DMM-Net pipeline on the
# built-in synthetic dataset: generate data and proposals, train, segment, score against two
# baselines, write overlays and plots. Extra arguments go to `python -m dmm.pipeline`
# (e.g. KEY VALUE config overrides). Rerunning continues where a run stopped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m dmm.pipeline "$@"
