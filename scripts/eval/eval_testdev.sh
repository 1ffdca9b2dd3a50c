#!/bin/sh
# Run the online-trained ResNet-101 DMM-Net on YouTube-VOS 2018 valid (the CodaLab test-dev
# set) with the proposals of the online-trained proposal net; writes <OUT>/merged/<video>/<frame>.png.
# Then prepare the CodaLab zip with scripts/submit.sh (the command is printed at the end).
# Run from anywhere: sh scripts/eval/eval_testdev.sh. Extra arguments go to dmm.test.
# Every variable below can also be set from the environment.
set -eu

CONFIG=${CONFIG:-eval_testdev}  # src/dmm/config/yaml/eval_testdev.yaml, or a yaml path
# Empty: the config's TEST.CHECKPOINT, experiments/dmmnet/online_ytb/epo90_iter00088 (what 2019's
# eval_testdev.sh evaluated), or, when that folder is absent, the README layout's online_ytb/epo101.
CHECKPOINT=${CHECKPOINT:-}
SPLIT=${SPLIT:-valid}
OUT=${OUT:-experiments/dmmnet/online_ytb/eval/valid}  # results in $OUT/merged
DATA_ROOT=${DATA_ROOT:-}        # empty: the config's DATA.ROOT (datasets/youtubeVOS)
EVAL_PROPOSALS=${EVAL_PROPOSALS:-}  # empty: the config's PROPOSALS.EVAL_DIR
GPUS=${GPUS:-}                  # e.g. 0: exported as CUDA_VISIBLE_DEVICES (one GPU is used)
DRY_RUN=${DRY_RUN:-0}           # 1: check and print the command without running it

REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
. "$REPO/scripts/lib.sh"

# Options first, then the caller's arguments, then the variables above as config overrides
# (dmm.test reads options first, then KEY VALUE pairs).
[ -z "$DATA_ROOT" ] || set -- "$@" DATA.ROOT "$DATA_ROOT"
[ -z "$EVAL_PROPOSALS" ] || set -- "$@" PROPOSALS.EVAL_DIR "$EVAL_PROPOSALS"
[ -z "$GPUS" ] || export CUDA_VISIBLE_DEVICES="$GPUS"
dmm_python
if [ -z "$CHECKPOINT" ]; then
  # The config's checkpoint, or beside it the 2019 README layout's epo101 when only that is there.
  dmm_read_config test "$CONFIG" "$@"
  released=$(dirname -- "$DMM_CHECKPOINT")/epo101
  if [ ! -e "$DMM_CHECKPOINT" ] && [ -e "$released" ]; then
    echo "[eval] $DMM_CHECKPOINT not found; using the 2019 README layout's $released"
    CHECKPOINT=$released
  fi
fi
[ -z "$CHECKPOINT" ] || set -- --checkpoint "$CHECKPOINT" "$@"
set -- --split "$SPLIT" --out "$OUT/merged" "$@"

dmm_check_evaluation "checkpoint (TEST.CHECKPOINT / CHECKPOINT)" "$CONFIG" "$@"

echo "[eval] $CONFIG: $DMM_CHECKPOINT on $DMM_EVAL_SPLIT -> $DMM_RESULTS"
dmm_run "$PY" -m dmm.test --config "$CONFIG" "$@"

echo "next, prepare the CodaLab submission:"
echo "  sh scripts/submit.sh $DMM_RESULTS"
