#!/bin/sh
# Validation proposals on val200 (trainval) from the COCO Mask R-CNN X-101-32x8d FPN (81 classes,
# the caffe2 config's Detectron weights), for validation while training DMM-Net.
# Settings (DMM_Net scripts/extract/extract_proposal_coco81_train.sh, its youtubevos_val200_meta
# command): MODEL.ROI_HEADS.SCORE_THRESH 0.0, DETECTIONS_PER_IMG 50; test size 800/1333. Then the
# 50 best per frame (DMM_Net scripts/extract/process.sh: ... trainval 50).
# Writes $OUT_DIR/predictions.pth, $OUT_DIR/videos_all, $OUT_DIR/videos_top50 (train.yaml's
# PROPOSALS.EVAL_DIR). Usage: sh scripts/extract/extract_coco_trainval.sh [dmm.proposals.extract options]
set -eu
DATA_ROOT=${DATA_ROOT:-datasets/youtubeVOS}
SPLIT_DIR=${SPLIT_DIR:-data/splits/youtubevos}
WEIGHTS=${WEIGHTS:-experiments/pretrained/e2e_mask_rcnn_X-101-32x8d-FPN_1x.pkl}
OUT_DIR=${OUT_DIR:-experiments/proposals/coco81/inference/youtubevos_val200_meta}
REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
. "$REPO/scripts/extract/common.sh"
extract_proposals trainval 0.0 50 "$@"
reduce_proposals trainval 50
