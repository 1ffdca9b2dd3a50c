#!/bin/sh
# Online training: fine-tune DMM-Net (ResNet-101) on the first-frame set of the YouTube-VOS
# valid videos (datasets/youtubeVOS/train_testdev_ot, made by
# src/tools/make_train_online_dataset.py or downloaded), starting from the model trained on
# train3k for one epoch. Run from anywhere: sh scripts/train/train_online.sh
# Extra arguments go to dmm.train (--resume DIR, KEY VALUE overrides).
# Every variable below can also be set from the environment.
set -eu

NGPUS=${NGPUS:-1}              # processes (one per GPU, or CPU processes without one); > 1 runs torchrun
CONFIG=${CONFIG:-online}       # src/dmm/config/yaml/online.yaml, or a yaml path
# The DMM-Net trained on train3k for one epoch (README: put it under experiments/dmmnet/).
INIT_CKPT=${INIT_CKPT:-experiments/dmmnet/ytb_r101_train_epo01/epo01}
DATA_ROOT=${DATA_ROOT:-}       # empty: the config's DATA.ROOT (datasets/youtubeVOS)
OUTPUT_DIR=${OUTPUT_DIR:-}     # empty: the config's OUTPUT_DIR (experiments/dmmnet/online_ytb)
TRAIN_PROPOSALS=${TRAIN_PROPOSALS:-}  # empty: the config's PROPOSALS.TRAIN_DIR
DRY_RUN=${DRY_RUN:-0}          # 1: check and print the command without running it

REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
. "$REPO/scripts/lib.sh"

# Options first, then the caller's arguments, then the variables above as config overrides
# (dmm.train reads options first, then KEY VALUE pairs).
[ -z "$DATA_ROOT" ] || set -- "$@" DATA.ROOT "$DATA_ROOT"
[ -z "$OUTPUT_DIR" ] || set -- "$@" OUTPUT_DIR "$OUTPUT_DIR"
[ -z "$TRAIN_PROPOSALS" ] || set -- "$@" PROPOSALS.TRAIN_DIR "$TRAIN_PROPOSALS"
set -- --init "$INIT_CKPT" "$@"
case $NGPUS in
  ''|*[!0-9]*|0) dmm_die "NGPUS must be a positive integer, got '$NGPUS'" ;;
esac

dmm_python
dmm_read_config train "$CONFIG" "$@"
dmm_check_split "online-training" "$DMM_TRAIN_IMAGES" "$DMM_TRAIN_META" \
  "make it with: python src/tools/make_train_online_dataset.py (README: Online training)"
dmm_check_proposals "online-training" "$DMM_TRAIN_PROPOSALS"
if [ "$DMM_VAL_ENABLED" = 1 ]; then
  dmm_check_split "validation ($DMM_EVAL_SPLIT)" "$DMM_EVAL_IMAGES" "$DMM_EVAL_META"
  dmm_check_proposals "validation ($DMM_EVAL_SPLIT)" "$DMM_EVAL_PROPOSALS"
fi
[ -z "$DMM_RESUME" ] || dmm_require_exists "$DMM_RESUME" "run or checkpoint to resume (--resume)"
dmm_require_checkpoint "$DMM_INIT" "initial checkpoint (INIT_CKPT / --init)"

dmm_describe_processes "$NGPUS"
echo "[online] config $CONFIG from $DMM_INIT, $DMM_PROCESSES, output $DMM_OUTPUT_DIR"
if [ "$NGPUS" -gt 1 ]; then
  TORCHRUN=$(dirname -- "$PY")/torchrun
  [ -x "$TORCHRUN" ] || dmm_die "torchrun not found beside $PY (is torch installed in .venv?)"
  dmm_run "$TORCHRUN" --nproc_per_node="$NGPUS" -m dmm.train --config "$CONFIG" "$@"
else
  dmm_run "$PY" -m dmm.train --config "$CONFIG" "$@"
fi
