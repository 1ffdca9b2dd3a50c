#!/bin/sh
# Fine-tune the proposal net as an object-vs-background Mask R-CNN on YouTube-VOS train3k
# annotations ("join_ytb_bin"), optionally mixed with COCO (set COCO_JSON and COCO_IMAGES).
# Resumes from the newest checkpoint in OUT. Usage: sh scripts/extract/train_propnet.sh [options]
DATA_ROOT=${DATA_ROOT:-datasets/youtubeVOS}
SPLIT_DIR=${SPLIT_DIR:-data/splits/youtubevos}
INIT=${INIT:-none}   # e.g. a COCO-trained X-101-32x8d FPN state dict in torchvision layout
COCO_JSON=${COCO_JSON:-}
COCO_IMAGES=${COCO_IMAGES:-}
OUT=${OUT:-experiments/propnet/join_ytb_bin}
. "$(dirname -- "$0")/common.sh"
need_dir "$DATA_ROOT/train/Annotations" "$DATA_HINT"
need_file "$SPLIT_DIR/train3k_meta.json" "Run: $PY src/tools/make_splits.py --root $DATA_ROOT"
[ "$INIT" = none ] || need_file "$INIT" "Set INIT to an existing weights file, or INIT=none."
if [ -n "$COCO_JSON" ]; then
  need_file "$COCO_JSON" "Set COCO_JSON to COCO's instances_train2017.json."
  need_dir "$COCO_IMAGES" "Set COCO_IMAGES to COCO's train2017 image folder."
  set -- --coco-json "$COCO_JSON" --coco-images "$COCO_IMAGES" "$@"
fi
exec $PY -m dmm.proposals.train_propnet --root "$DATA_ROOT" --split-dir "$SPLIT_DIR" \
  --split train --arch resnext101_32x8d_fpn --init "$INIT" --out "$OUT" "$@"
