#!/bin/sh
# Run the online-trained ResNet-101 DMM-Net on YouTube-VOS 2018 valid (the CodaLab test-dev
# set) with the proposals of the online-trained proposal net; writes <OUT>/merged/<video>/<frame>.png.
# Then prepare the CodaLab zip with scripts/submit.sh (the command is printed at the end).
# Run from anywhere: sh scripts/eval/eval_testdev.sh. Extra arguments go to dmm.test
# (--overwrite, KEY VALUE overrides). Every variable below can also be set from the environment.
#
# The checkpoint (printed, with why): CHECKPOINT when set; else the online run's own when
# scripts/train/train_online.sh wrote one (ONLINE_CONFIG's OUTPUT_DIR, experiments/dmmnet/online_ytb_train:
# its epoch-88 checkpoint, what 2019 evaluated, else its newest); else the released model, the
# config's TEST.CHECKPOINT (experiments/dmmnet/online_ytb/epo90_iter00088) or the 2019 README
# layout's online_ytb/epo101.
set -eu

CONFIG=${CONFIG:-eval_testdev}  # src/dmm/config/yaml/eval_testdev.yaml, or a yaml path
ONLINE_CONFIG=${ONLINE_CONFIG:-online}  # the online training whose run is evaluated when there
CHECKPOINT=${CHECKPOINT:-}      # empty: chosen as said above
SPLIT=${SPLIT:-valid}
OUT=${OUT:-}                    # results in $OUT/merged; empty: <run>/eval/<checkpoint>/valid/merged
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
if [ -n "$CHECKPOINT" ]; then
  why="CHECKPOINT"
else
  dmm_testdev_choice "$CONFIG" "$ONLINE_CONFIG" "$@"
  CHECKPOINT=$DMM_TESTDEV_CHECKPOINT
  why=$DMM_TESTDEV_WHY
fi
if [ -n "$OUT" ]; then results=$OUT/merged; else results=$(dmm_results_of "$CHECKPOINT" "$SPLIT"); fi
set -- --checkpoint "$CHECKPOINT" --split "$SPLIT" --out "$results" "$@"

dmm_check_evaluation "checkpoint (TEST.CHECKPOINT / CHECKPOINT)" "$CONFIG" "$@"

echo "[eval] checkpoint $CHECKPOINT: $why"
echo "[eval] $CONFIG: $DMM_CHECKPOINT on $DMM_EVAL_SPLIT -> $DMM_RESULTS"
dmm_run "$PY" -m dmm.test --config "$CONFIG" "$@"

echo "next, prepare the CodaLab submission:"
echo "  sh scripts/submit.sh $DMM_RESULTS"
