#!/bin/sh
# Train DMM-Net on YouTube-VOS train3k with cached proposals (the paper's table: ResNet-50,
# 15 epochs, 16 clips a step as 2019's 4 GPUs x 4, on any number of GPUs and machines).
# Run from anywhere: sh scripts/train/train_load_prop.sh
# Extra arguments go to dmm.train: --resume DIR, --init DIR, KEY VALUE overrides.
# Every variable below can also be set from the environment (NGPUS=4 sh scripts/...).
set -eu

NGPUS=${NGPUS:-1}              # processes per machine (one per GPU, or CPU processes without one)
NNODES=${NNODES:-1}            # machines; > 1: also NODE_RANK and MASTER_ADDR (or RDZV_ENDPOINT), see scripts/lib.sh
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
dmm_positive NGPUS "$NGPUS"

dmm_python
dmm_read_config train "$CONFIG" "$@"
dmm_check_training train
dmm_launch_train train "$NGPUS" "$CONFIG" "$@"
