#!/bin/sh
# Proposals of the COCO Mask R-CNN (torchvision ResNet-50-FPN v2) on val200 (trainval), for validation during training.
# Usage: sh scripts/extract/extract_coco_trainval.sh [extra dmm.proposals.extract options]
DATA_ROOT=${DATA_ROOT:-datasets/youtubeVOS}
SPLIT_DIR=${SPLIT_DIR:-data/splits/youtubevos}
WEIGHTS=${WEIGHTS:-experiments/pretrained/maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth}
OUT=${OUT:-experiments/proposals/coco81/inference/youtubevos_val200_meta/videos_top50}
. "$(dirname -- "$0")/common.sh"
need_dir "$DATA_ROOT/train/JPEGImages" "$DATA_HINT"
need_file "$SPLIT_DIR/val200_meta.json" "Run: $PY src/tools/make_splits.py --root $DATA_ROOT"
# torchvision's COCO weights: read from WEIGHTS, else downloaded into its cache (offline: a message names the file)
exec $PY -m dmm.proposals.extract --root "$DATA_ROOT" --split-dir "$SPLIT_DIR" --split trainval \
  --arch resnet50_fpn_v2 --weights "$WEIGHTS" --out "$OUT" "$@"
