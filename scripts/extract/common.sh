# Shared by the scripts in scripts/extract/ (sourced, not run). Sets REPO and PY, and offers
# need_file / need_dir that fail early with a message naming the missing path.
set -eu
REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
cd "$REPO"
die() { echo "error: $*" >&2; exit 1; }
need_file() { [ -f "$1" ] || die "$1 not found. $2"; }
need_dir() { [ -d "$1" ] || die "$1 not found. $2"; }
if [ ! -x .venv/bin/python ]; then
  die ".venv/bin/python not found: run 'bash scripts/setup_env.sh' first"
fi
PY=.venv/bin/python
DATA_HINT="Link YouTube-VOS 2018 there (see the README's Data section)."
