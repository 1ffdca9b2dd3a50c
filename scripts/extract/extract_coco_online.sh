#!/bin/sh
# Online-training proposals on the test-dev online set (train_testdev_ot: the valid videos'
# first-appearance frames, src/tools/make_train_online_dataset.py) from the COCO Mask R-CNN
# X-101-32x8d FPN (81 classes, the caffe2 config's Detectron weights).
# Settings (DMM_Net scripts/extract/extract_proposal_coco81_train.sh, its
# youtubevos_testdev_online_meta command): MODEL.ROI_HEADS.SCORE_THRESH 0.0, DETECTIONS_PER_IMG 50;
# test size 800/1333. Then the 90 best per frame (the original README: ... train_testdev_ot 90).
# Writes $OUT_DIR/predictions.pth, $OUT_DIR/videos_all, $OUT_DIR/videos_top90 (online.yaml's
# PROPOSALS.TRAIN_DIR). Usage: sh scripts/extract/extract_coco_online.sh [dmm.proposals.extract options]
set -eu
DATA_ROOT=${DATA_ROOT:-datasets/youtubeVOS}
SPLIT_DIR=${SPLIT_DIR:-data/splits/youtubevos}
WEIGHTS=${WEIGHTS:-experiments/pretrained/e2e_mask_rcnn_X-101-32x8d-FPN_1x.pkl}
OUT_DIR=${OUT_DIR:-experiments/proposals/coco81/inference/youtubevos_testdev_online_meta}
REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
. "$REPO/scripts/extract/common.sh"
extract_proposals train_testdev_ot 0.0 50 "$@"
reduce_proposals train_testdev_ot 90
