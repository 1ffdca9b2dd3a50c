#!/bin/sh
# Proposals of the YouTube-VOS-tuned proposal net (join_ytb_bin: X-101-32x8d FPN, object vs
# background) on val200 (trainval): the proposals of the README's evaluation table.
# Usage: sh scripts/extract/extract_ytb_trainval.sh [extra dmm.proposals.extract options]
DATA_ROOT=${DATA_ROOT:-datasets/youtubeVOS}
SPLIT_DIR=${SPLIT_DIR:-data/splits/youtubevos}
WEIGHTS=${WEIGHTS:-experiments/propnet/join_ytb_bin/model_final.pth}
OUT=${OUT:-experiments/proposals/ytb_train/inference/youtubevos_val200_meta/videos_top50}
. "$(dirname -- "$0")/common.sh"
need_dir "$DATA_ROOT/train/JPEGImages" "$DATA_HINT"
need_file "$SPLIT_DIR/val200_meta.json" "Run: $PY src/tools/make_splits.py --root $DATA_ROOT"
need_file "$WEIGHTS" "Train it with: sh scripts/extract/train_propnet.sh"
exec $PY -m dmm.proposals.extract --root "$DATA_ROOT" --split-dir "$SPLIT_DIR" --split trainval \
  --arch resnext101_32x8d_fpn --weights "$WEIGHTS" --out "$OUT" "$@"
