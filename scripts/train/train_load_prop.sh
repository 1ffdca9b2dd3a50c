#!/bin/sh
# Train DMM-Net on YouTube-VOS train3k with cached proposals (the paper's table: ResNet-50,
# 15 epochs, 4 GPUs x batch 4). Run from anywhere: sh scripts/train/train_load_prop.sh
# Extra arguments go to dmm.train: --resume DIR, --init DIR, KEY VALUE overrides.
# Every variable below can also be set from the environment (NGPUS=4 sh scripts/...).
set -eu

NGPUS=${NGPUS:-1}              # processes (one per GPU, or CPU processes without one); > 1 runs torchrun
CONFIG=${CONFIG:-train}        # src/dmm/config/yaml/train.yaml, or a yaml path
DATA_ROOT=${DATA_ROOT:-}       # empty: the config's DATA.ROOT (datasets/youtubeVOS)
OUTPUT_DIR=${OUTPUT_DIR:-}     # empty: the config's OUTPUT_DIR (experiments/dmmnet/...)
TRAIN_PROPOSALS=${TRAIN_PROPOSALS:-}  # empty: the config's PROPOSALS.TRAIN_DIR
EVAL_PROPOSALS=${EVAL_PROPOSALS:-}    # empty: the config's PROPOSALS.EVAL_DIR
DRY_RUN=${DRY_RUN:-0}          # 1: check and print the command without running it

REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
. "$REPO/scripts/lib.sh"

# The variables above become config overrides after the caller's own arguments (dmm.train
# reads options first, then KEY VALUE pairs).
[ -z "$DATA_ROOT" ] || set -- "$@" DATA.ROOT "$DATA_ROOT"
[ -z "$OUTPUT_DIR" ] || set -- "$@" OUTPUT_DIR "$OUTPUT_DIR"
[ -z "$TRAIN_PROPOSALS" ] || set -- "$@" PROPOSALS.TRAIN_DIR "$TRAIN_PROPOSALS"
[ -z "$EVAL_PROPOSALS" ] || set -- "$@" PROPOSALS.EVAL_DIR "$EVAL_PROPOSALS"
case $NGPUS in
  ''|*[!0-9]*|0) dmm_die "NGPUS must be a positive integer, got '$NGPUS'" ;;
esac

dmm_python
dmm_read_config train "$CONFIG" "$@"
dmm_check_split train "$DMM_TRAIN_IMAGES" "$DMM_TRAIN_META"
dmm_check_proposals train "$DMM_TRAIN_PROPOSALS"
if [ "$DMM_VAL_ENABLED" = 1 ]; then
  dmm_check_split "validation ($DMM_EVAL_SPLIT)" "$DMM_EVAL_IMAGES" "$DMM_EVAL_META"
  dmm_check_proposals "validation ($DMM_EVAL_SPLIT)" "$DMM_EVAL_PROPOSALS"
fi
[ -z "$DMM_RESUME" ] || dmm_require_exists "$DMM_RESUME" "run or checkpoint to resume (--resume)"
[ -z "$DMM_INIT" ] || dmm_require_checkpoint "$DMM_INIT" "initial checkpoint (--init)"

dmm_describe_processes "$NGPUS"
echo "[train] config $CONFIG, $DMM_PROCESSES, output $DMM_OUTPUT_DIR"
if [ "$NGPUS" -gt 1 ]; then
  TORCHRUN=$(dirname -- "$PY")/torchrun
  [ -x "$TORCHRUN" ] || dmm_die "torchrun not found beside $PY (is torch installed in .venv?)"
  dmm_run "$TORCHRUN" --nproc_per_node="$NGPUS" -m dmm.train --config "$CONFIG" "$@"
else
  dmm_run "$PY" -m dmm.train --config "$CONFIG" "$@"
fi
