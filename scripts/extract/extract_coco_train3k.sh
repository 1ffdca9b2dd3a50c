#!/bin/sh
# Training proposals on train3k from the COCO Mask R-CNN X-101-32x8d FPN (81 classes: the
# Detectron weights the caffe2 config names), run as maskrcnn-benchmark ran it in 2019.
# Settings (DMM_Net scripts/extract/extract_proposal_coco81_train.sh, its youtubevos_train3k_meta
# command): MODEL.ROI_HEADS.DETECTIONS_PER_IMG 50, SCORE_THRESH not overridden, so
# maskrcnn-benchmark's default 0.05 (config/defaults.py); test size 800/1333 (defaults). Then the
# 50 best per frame (DMM_Net scripts/extract/process.sh: reduce_pth_size_by_videos.py ... train 50).
# Writes $OUT_DIR/predictions.pth, $OUT_DIR/videos_all, $OUT_DIR/videos_top50 (train.yaml's
# PROPOSALS.TRAIN_DIR). Usage: sh scripts/extract/extract_coco_train3k.sh [dmm.proposals.extract options]
set -eu
DATA_ROOT=${DATA_ROOT:-datasets/youtubeVOS}
SPLIT_DIR=${SPLIT_DIR:-data/splits/youtubevos}
WEIGHTS=${WEIGHTS:-experiments/pretrained/e2e_mask_rcnn_X-101-32x8d-FPN_1x.pkl}
OUT_DIR=${OUT_DIR:-experiments/proposals/coco81/inference/youtubevos_train3k_meta}
REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
. "$REPO/scripts/extract/common.sh"
extract_proposals train 0.05 50 "$@"
reduce_proposals train 50
