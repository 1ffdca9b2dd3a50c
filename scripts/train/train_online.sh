#!/bin/sh
# Online training: fine-tune DMM-Net (ResNet-101) on the first-frame set of the YouTube-VOS
# valid videos (datasets/youtubeVOS/train_testdev_ot, made by
# src/tools/make_train_online_dataset.py or downloaded), starting from the ResNet-101 model
# trained on train3k (scripts/train/train_r101.sh, or released) and its optimizer states.
# Run from anywhere: sh scripts/train/train_online.sh
# Extra arguments go to dmm.train (--resume DIR, --overwrite, KEY VALUE overrides).
# It writes its own run (online.yaml's OUTPUT_DIR, experiments/dmmnet/online_ytb_train), never into
# the released online_ytb/.
# Every variable below can also be set from the environment.
set -eu

NGPUS=${NGPUS:-1}              # processes per machine (one per GPU, or CPU processes without one)
NNODES=${NNODES:-1}            # machines; > 1: also NODE_RANK and MASTER_ADDR (or RDZV_ENDPOINT), see scripts/lib.sh
CONFIG=${CONFIG:-online}       # src/dmm/config/yaml/online.yaml, or a yaml path
# The ResNet-101 DMM-Net trained on train3k, with its optimizer states: online training restores
# them (SOLVER.INIT_OPTIMIZERS), as 2019's --resume did. A checkpoint folder (or trainer.pt), or a
# run folder: its newest checkpoint. Empty: the run of scripts/train/train_r101.sh (R101_CONFIG's
# OUTPUT_DIR, experiments/dmmnet/ytb_train_x101), where MODEL_ZOO.md puts the released model too.
INIT_CKPT=${INIT_CKPT:-}
R101_CONFIG=${R101_CONFIG:-train_r101}
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
dmm_positive NGPUS "$NGPUS"

dmm_python
if [ -z "$INIT_CKPT" ]; then
  dmm_read_config train "$R101_CONFIG"
  INIT_CKPT=$DMM_OUTPUT_DIR
  why="the ResNet-101 stage's run, $R101_CONFIG's OUTPUT_DIR"
else
  why="INIT_CKPT"
fi
# a run folder: its newest checkpoint
dmm_newest_checkpoint "$INIT_CKPT"
init=${DMM_NEWEST:-$INIT_CKPT}
set -- --init "$init" "$@"

dmm_read_config train "$CONFIG" "$@"
dmm_check_training online-training "make it with: python src/tools/make_train_online_dataset.py (README: Online training)" \
  "initial checkpoint (INIT_CKPT / --init)"
if [ "$init" != "$INIT_CKPT" ]; then
  echo "[online] starting from $init: the newest checkpoint of $INIT_CKPT ($why)"
else
  echo "[online] starting from $init ($why)"
fi
dmm_launch_train online "$NGPUS" "$CONFIG" "$@"
