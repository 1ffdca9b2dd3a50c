#!/usr/bin/env bash
# Set up (once) and run the default test suite: fast tests, no GPU needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest "$@"
