#!/bin/sh
# Prepare the CodaLab submission of YouTube-VOS 2018 valid results: check that every video
# and frame of the split has a prediction PNG, then zip them as Annotations/<video>/<frame>.png.
# Usage: sh scripts/submit.sh [RESULTS_DIR] [OUT_ZIP]. Without RESULTS_DIR: the results
# sh scripts/eval/eval_testdev.sh wrote with its default checkpoint (the online run's own when
# there, else the released model's: printed).
# The variables below can also be set from the environment (RESULTS_DIR=... sh scripts/submit.sh).
set -eu

# Relative paths given as arguments are read from the current folder; the defaults and the
# variables from the repository root.
RESULTS_DIR=${RESULTS_DIR:-}       # empty: eval_testdev.sh's results (see above)
OUT_ZIP=${OUT_ZIP:-}            # empty: submission_<split>.zip beside RESULTS_DIR
DATA_ROOT=${DATA_ROOT:-datasets/youtubeVOS}
SPLIT=${SPLIT:-valid}           # folder of DATA_ROOT with meta.json and JPEGImages/
CONFIG=${CONFIG:-eval_testdev}  # eval_testdev.sh's configs, for the default RESULTS_DIR
ONLINE_CONFIG=${ONLINE_CONFIG:-online}

from_caller() {
  case $1 in
    /*) printf '%s' "$1" ;;
    *) printf '%s/%s' "$PWD" "$1" ;;
  esac
}
[ $# -lt 1 ] || RESULTS_DIR=$(from_caller "$1")
[ $# -lt 2 ] || OUT_ZIP=$(from_caller "$2")

REPO=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
. "$REPO/scripts/lib.sh"

dmm_python
if [ -z "$RESULTS_DIR" ]; then
  dmm_testdev_choice "$CONFIG" "$ONLINE_CONFIG"
  RESULTS_DIR=$(dmm_results_of "$DMM_TESTDEV_CHECKPOINT" "$SPLIT")
  echo "[submit] results of $DMM_TESTDEV_CHECKPOINT ($DMM_TESTDEV_WHY): $RESULTS_DIR"
fi
[ -n "$OUT_ZIP" ] || OUT_ZIP=$(dirname -- "$RESULTS_DIR")/submission_$SPLIT.zip
dmm_require_dir "$RESULTS_DIR" "results folder" "run sh scripts/eval/eval_testdev.sh first"
dmm_require_dir "$DATA_ROOT" "dataset root (DATA_ROOT)" \
  "link YouTube-VOS there (cd datasets && ln -s path/to/youtubeVOS youtubeVOS) or set DATA_ROOT"
dmm_require_file "$DATA_ROOT/$SPLIT/meta.json" "$SPLIT split meta"
dmm_require_dir "$DATA_ROOT/$SPLIT/JPEGImages" "$SPLIT split images"

"$PY" "$REPO/src/tools/check_submission.py" "$RESULTS_DIR" \
  --meta "$DATA_ROOT/$SPLIT/meta.json" --images "$DATA_ROOT/$SPLIT/JPEGImages" --zip "$OUT_ZIP"
echo "submit $OUT_ZIP at https://competitions.codalab.org/competitions/19544"
