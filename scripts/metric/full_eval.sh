#!/bin/sh
# Score predicted masks against the ground truth of their split (python -m dmm.metrics).
# Usage: sh scripts/metric/full_eval.sh /PATH/TO/RESULTS/ [--split SPLIT] [python -m dmm.metrics options]
# e.g. --allow-missing, --processes N, --protocol davis. Reports go to OUT_DIR (default:
# <results>_metrics/ beside the results). Relative paths are taken from the current folder.
#
# Splits scored against YouTube-VOS train annotations (train, trainval, test271, train_all) print
# two rows: the standard protocol (the layout's default, youtubevos: each object from its first
# appearance, at the frame size; comparable with other methods; reports summary.json,
# per_video.csv, per_object.csv, jf_per_video.png) and dmm2019 (the 2019 code's scoring, with
# which the paper's table was made; reports summary_dmm2019.json and dmm2019/). Other splits
# print the standard row only; --protocol X scores X alone. --input-size H W goes to dmm2019 only.
#
# The split is --split SPLIT, else $SPLIT, else the last split name in the results path
# (.../eval/valid/merged -> valid), else trainval (val200). It decides the ground truth and the
# meta file (the videos scored, and their categories):
#   train / trainval / test271   $DATA_ROOT/train/Annotations, $SPLIT_DIR/{train3k,val200,test271}_meta.json
#   train_all                    $DATA_ROOT/train/Annotations, $DATA_ROOT/train/meta.json
#   valid, train_testdev_ot      $DATA_ROOT/<split>/GroundTruth (every frame: the synthetic set
#                                has it), $DATA_ROOT/<split>/meta.json. YouTube-VOS valid has no
#                                public per-frame ground truth: score it on the evaluation server
#                                (sh scripts/submit.sh).
# GT_DIR and SPLIT_META (or --split-meta) replace the split's choice.
set -eu
REPO=$(cd "$(dirname "$0")/../.." && pwd)

DATA_ROOT=${DATA_ROOT:-$REPO/datasets/youtubeVOS}
SPLIT_DIR=${SPLIT_DIR:-$REPO/data/splits/youtubevos}
SEEN_CATEGORIES=${SEEN_CATEGORIES:-}   # e.g. $REPO/data/splits/youtubevos/train3k_meta.json
# The interpreter: DMM_PYTHON (as every script), else PYTHON (its older name here), else .venv's.
PYTHON=${DMM_PYTHON:-${PYTHON:-$REPO/.venv/bin/python}}
SPLITS="train trainval test271 train_all valid train_testdev_ot"

fail() { echo "error: $*" >&2; exit 2; }

if [ $# -lt 1 ]; then
  echo "usage: sh scripts/metric/full_eval.sh /PATH/TO/RESULTS/ [--split SPLIT] [python -m dmm.metrics options]" >&2
  exit 2
fi
RES_DIR=${1%/}
shift
OUT_DIR=${OUT_DIR:-${RES_DIR}_metrics}

# Take --split out of the arguments (the rest go to dmm.metrics); a --split-meta replaces SPLIT_META.
n=$#
i=0
prev=""
while [ "$i" -lt "$n" ]; do
  arg=$1
  shift
  i=$((i + 1))
  case $arg in
    --split) [ $# -gt 0 ] || fail "--split needs a split name ($SPLITS)"
             SPLIT=$1; shift; i=$((i + 1)); continue ;;
    --split=*) SPLIT=${arg#--split=}; continue ;;
    --input-size) [ $# -gt 1 ] || fail "--input-size needs H W"
                  INPUT_SIZE="$1 $2"; shift 2; i=$((i + 2)); continue ;;
  esac
  if [ "$prev" = "--split-meta" ]; then SPLIT_META=$arg; fi
  case $arg in --protocol|--protocol=*) PROTOCOL_GIVEN=1 ;; esac
  prev=$arg
  set -- "$@" "$arg"
done

# The split of the results: the last component of the path that names one.
split_of_path() {
  found=""
  rest=$1
  while [ -n "$rest" ] && [ "$rest" != "/" ] && [ "$rest" != "." ]; do
    name=$(basename -- "$rest")
    for s in $SPLITS; do
      if [ "$name" = "$s" ]; then found=$s; break 2; fi
    done
    rest=$(dirname -- "$rest")
  done
  printf '%s' "$found"
}

if [ -z "${SPLIT:-}" ]; then
  SPLIT=$(split_of_path "$RES_DIR")
  [ -n "$SPLIT" ] || SPLIT=trainval
fi
case $SPLIT in
  train) gt=$DATA_ROOT/train/Annotations; meta=$SPLIT_DIR/train3k_meta.json ;;
  trainval) gt=$DATA_ROOT/train/Annotations; meta=$SPLIT_DIR/val200_meta.json ;;
  test271) gt=$DATA_ROOT/train/Annotations; meta=$SPLIT_DIR/test271_meta.json ;;
  train_all) gt=$DATA_ROOT/train/Annotations; meta=$DATA_ROOT/train/meta.json ;;
  valid|train_testdev_ot)
    gt=$DATA_ROOT/$SPLIT/GroundTruth; meta=$DATA_ROOT/$SPLIT/meta.json
    if [ -z "${GT_DIR:-}" ] && [ ! -d "$gt" ]; then
      fail "split $SPLIT has no per-frame ground truth ($gt does not exist; $DATA_ROOT/$SPLIT/Annotations holds first-frame masks only): YouTube-VOS 2018 valid is scored by the evaluation server, so make the submission with sh scripts/submit.sh $RES_DIR and upload it (or set GT_DIR to per-frame masks)"
    fi ;;
  *) fail "unknown split '$SPLIT' (one of: $SPLITS)" ;;
esac
GT_DIR=${GT_DIR:-$gt}
SPLIT_META=${SPLIT_META:-$meta}

[ -d "$RES_DIR" ] || fail "results folder $RES_DIR does not exist"
[ -d "$GT_DIR" ] || fail "ground truth $GT_DIR of split $SPLIT does not exist (link YouTube-VOS 2018 under datasets/youtubeVOS, or set DATA_ROOT or GT_DIR)"
[ -f "$SPLIT_META" ] || fail "split meta $SPLIT_META of split $SPLIT does not exist (python src/tools/make_splits.py writes the train3k/val200/test271 files, or set SPLIT_META)"
if [ -n "$SEEN_CATEGORIES" ] && [ ! -f "$SEEN_CATEGORIES" ]; then
  fail "seen categories file $SEEN_CATEGORIES does not exist"
fi
if [ -z "${DMM_PYTHON:-}" ] && [ ! -x "$PYTHON" ]; then
  sh "$REPO/scripts/setup_env.sh"
fi

echo "split $SPLIT: ground truth $GT_DIR, meta $SPLIT_META"
set -- --gt-dir "$GT_DIR" --results-dir "$RES_DIR" --split-meta "$SPLIT_META" "$@"
if [ -n "$SEEN_CATEGORIES" ]; then
  set -- "$@" --seen-categories "$SEEN_CATEGORIES"
fi
both=0
case $SPLIT in train|trainval|test271|train_all) [ -n "${PROTOCOL_GIVEN:-}" ] || both=1 ;; esac
if [ "$both" = 0 ]; then
  # one protocol: the layout's default or the one asked for
  # shellcheck disable=SC2086  # INPUT_SIZE is "H W"
  exec "$PYTHON" -m dmm.metrics --json "$OUT_DIR/summary.json" --csv-dir "$OUT_DIR" \
    --plot "$OUT_DIR/jf_per_video.png" "$@" ${INPUT_SIZE:+--input-size $INPUT_SIZE}
fi
# the standard protocol (comparable with other methods), with the reports OUT_DIR always held
"$PYTHON" -m dmm.metrics --json "$OUT_DIR/summary.json" --csv-dir "$OUT_DIR" --plot "$OUT_DIR/jf_per_video.png" "$@"
echo
# the 2019 code's scoring (comparable with the paper's table); its reports after the user's options, so they win
# shellcheck disable=SC2086
exec "$PYTHON" -m dmm.metrics "$@" --protocol dmm2019 ${INPUT_SIZE:+--input-size $INPUT_SIZE} \
  --json "$OUT_DIR/summary_dmm2019.json" --csv-dir "$OUT_DIR/dmm2019" --plot "$OUT_DIR/dmm2019/jf_per_video.png"
