#!/bin/sh
# Run the online-trained ResNet-101 DMM-Net on YouTube-VOS 2018 valid (the CodaLab test-dev
# set) with the proposals of the online-trained proposal net; writes <OUT>/merged/<video>/<frame>.png.
# Then prepare the CodaLab zip with scripts/submit.sh (the command is printed at the end).
# Run from anywhere: sh scripts/eval/eval_testdev.sh. Extra arguments go to dmm.test.
# Every variable below can also be set from the environment.
set -eu

CONFIG=${CONFIG:-eval_testdev}  # src/dmm/config/yaml/eval_testdev.yaml, or a yaml path
CHECKPOINT=${CHECKPOINT:-}      # empty: the config's TEST.CHECKPOINT (experiments/dmmnet/online_ytb/epo101)
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
[ -z "$CHECKPOINT" ] || set -- --checkpoint "$CHECKPOINT" "$@"
set -- --split "$SPLIT" --out "$OUT/merged" "$@"
[ -z "$GPUS" ] || export CUDA_VISIBLE_DEVICES="$GPUS"

dmm_python
dmm_read_config test "$CONFIG" "$@"
dmm_check_split "evaluation ($DMM_EVAL_SPLIT)" "$DMM_EVAL_IMAGES" "$DMM_EVAL_META"
dmm_check_proposals "evaluation ($DMM_EVAL_SPLIT)" "$DMM_EVAL_PROPOSALS"
dmm_require_checkpoint "$DMM_CHECKPOINT" "checkpoint (TEST.CHECKPOINT / CHECKPOINT)"

echo "[eval] $CONFIG: $DMM_CHECKPOINT on $DMM_EVAL_SPLIT -> $DMM_RESULTS"
dmm_run "$PY" -m dmm.test --config "$CONFIG" "$@"

echo "next, prepare the CodaLab submission:"
echo "  sh scripts/submit.sh $DMM_RESULTS"
