#!/bin/sh
# Score predicted masks against the trainval split (val200) of YouTube-VOS 2018 train.
# Usage: sh scripts/metric/full_eval.sh /PATH/TO/OUTPUT/merged/ [more python -m dmm.metrics options]
# e.g. --split-meta other_meta.json to score the videos of another meta.json, --allow-missing,
# --processes N. Reports go to OUT_DIR (default: <results>_metrics/ beside the results).
# Relative paths are taken from the current folder; the defaults live in the repository.
set -eu
REPO=$(cd "$(dirname "$0")/../.." && pwd)

GT_DIR=${GT_DIR:-$REPO/datasets/youtubeVOS/train/Annotations}
SPLIT_META=${SPLIT_META:-$REPO/data/splits/youtubevos/val200_meta.json}
SEEN_CATEGORIES=${SEEN_CATEGORIES:-}   # e.g. $REPO/data/splits/youtubevos/train3k_meta.json
PYTHON=${PYTHON:-$REPO/.venv/bin/python}

if [ $# -lt 1 ]; then
  echo "usage: sh scripts/metric/full_eval.sh /PATH/TO/OUTPUT/merged/ [python -m dmm.metrics options]" >&2
  exit 2
fi
RES_DIR=${1%/}
shift
OUT_DIR=${OUT_DIR:-${RES_DIR}_metrics}

# A --split-meta given on the command line replaces SPLIT_META.
prev=""
for arg in "$@"; do
  if [ "$prev" = "--split-meta" ]; then SPLIT_META=$arg; fi
  prev=$arg
done

fail() { echo "full_eval.sh: $*" >&2; exit 1; }
[ -d "$RES_DIR" ] || fail "results folder $RES_DIR does not exist"
[ -d "$GT_DIR" ] || fail "ground truth $GT_DIR does not exist (link YouTube-VOS 2018 under datasets/youtubeVOS or set GT_DIR)"
[ -f "$SPLIT_META" ] || fail "split meta $SPLIT_META does not exist (generate the split files or set SPLIT_META)"
if [ -n "$SEEN_CATEGORIES" ] && [ ! -f "$SEEN_CATEGORIES" ]; then
  fail "seen categories file $SEEN_CATEGORIES does not exist"
fi
if [ ! -x "$PYTHON" ]; then
  bash "$REPO/scripts/setup_env.sh"
fi

set -- --gt-dir "$GT_DIR" --results-dir "$RES_DIR" --split-meta "$SPLIT_META" \
  --json "$OUT_DIR/summary.json" --csv-dir "$OUT_DIR" --plot "$OUT_DIR/jf_per_video.png" "$@"
if [ -n "$SEEN_CATEGORIES" ]; then
  set -- "$@" --seen-categories "$SEEN_CATEGORIES"
fi
exec "$PYTHON" -m dmm.metrics "$@"
