#!/bin/sh
# Fine-tune a binary (object vs background) proposal net on the YouTube-VOS train3k annotations,
# optionally mixed with COCO instances (set COCO_JSON and COCO_IMAGES): the authors' "COCO+YTB"
# model (join_ytb_bin). By default it starts from the caffe2 config's Detectron COCO weights
# (maskrcnn-benchmark X-101-32x8d FPN; new 2-class heads): the authors' starting point is not
# recorded. maskrcnn-benchmark nets train through torchvision's losses (docs/faithfulness.md lists
# the differences); checkpoints keep maskrcnn-benchmark's key names.
# Resumes from the newest checkpoint in OUT. Usage: sh scripts/extract/train_propnet.sh [options]
set -eu
DATA_ROOT=${DATA_ROOT:-datasets/youtubeVOS}
SPLIT_DIR=${SPLIT_DIR:-data/splits/youtubevos}
INIT=${INIT:-experiments/pretrained/e2e_mask_rcnn_X-101-32x8d-FPN_1x.pkl}  # or none, or any proposal-net file
COCO_JSON=${COCO_JSON:-}
COCO_IMAGES=${COCO_IMAGES:-}
OUT=${OUT:-experiments/propnet/join_ytb_bin}
REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
. "$REPO/scripts/extract/common.sh"
dmm_require_dir "$DATA_ROOT/train/Annotations" "YouTube-VOS train annotations" "$DATA_HINT"
dmm_require_file "$SPLIT_DIR/train3k_meta.json" "train3k split meta" "$SPLIT_HINT"
[ "$INIT" = none ] || dmm_require_file "$INIT" "initial proposal-net weights" "$WEIGHTS_HINT, or INIT=none"
if [ -n "$COCO_JSON" ]; then
  dmm_require_file "$COCO_JSON" "COCO instances json" "set COCO_JSON to COCO's instances_train2017.json"
  dmm_require_dir "$COCO_IMAGES" "COCO image folder" "set COCO_IMAGES to COCO's train2017 folder"
  set -- --coco-json "$COCO_JSON" --coco-images "$COCO_IMAGES" "$@"
fi
dmm_run "$PY" -m dmm.proposals.train_propnet --root "$DATA_ROOT" --split-dir "$SPLIT_DIR" \
  --split train --arch auto --init "$INIT" --out "$OUT" "$@"
