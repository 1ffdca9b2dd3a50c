#!/bin/sh
# Evaluation proposals on val200 (trainval) from the authors' YouTube-VOS-tuned binary proposal net
# (join_ytb_bin, maskrcnn-benchmark X-101-32x8d FPN, 2 classes): the proposals of the README's
# evaluation table.
# Settings (DMM_Net scripts/extract/extract_proposal_ytbbin_trainval_val.sh, its first command):
# MODEL.ROI_BOX_HEAD.NUM_CLASSES 2 and MODEL.WEIGHT join_ytb_bin/model_0172500.pth, no
# SCORE_THRESH / DETECTIONS_PER_IMG override, so maskrcnn-benchmark's defaults 0.05 and 100
# (config/defaults.py); test size 800/1333. Every detection is kept, in the file's order, as the
# 2019 evaluator read the raw predictions.pth (NMS then keeps 50).
# Writes $OUT_DIR/predictions.pth and $OUT_DIR/videos_all (eval.yaml's PROPOSALS.EVAL_DIR).
# Usage: sh scripts/extract/extract_ytb_trainval.sh [dmm.proposals.extract options]
set -eu
DATA_ROOT=${DATA_ROOT:-datasets/youtubeVOS}
SPLIT_DIR=${SPLIT_DIR:-data/splits/youtubevos}
WEIGHTS=${WEIGHTS:-experiments/propnet/join_ytb_bin/model_0172500.pth}
OUT_DIR=${OUT_DIR:-experiments/proposals/ytb_train/inference/youtubevos_val200_meta}
REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
. "$REPO/scripts/extract/common.sh"
extract_proposals trainval 0.05 100 "$@"
