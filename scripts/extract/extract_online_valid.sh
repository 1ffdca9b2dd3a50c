#!/bin/sh
# Proposals of the online-trained proposal net on YouTube-VOS 2018 valid (for the CodaLab run).
# Usage: sh scripts/extract/extract_online_valid.sh [extra dmm.proposals.extract options]
DATA_ROOT=${DATA_ROOT:-datasets/youtubeVOS}
WEIGHTS=${WEIGHTS:-experiments/propnet/online_ytb/model_final.pth}
OUT=${OUT:-experiments/proposals/ytb_ot/inference/youtubevos_testdev_meta/videos_top50}
. "$(dirname -- "$0")/common.sh"
need_dir "$DATA_ROOT/valid/JPEGImages" "$DATA_HINT"
need_file "$WEIGHTS" "Train it with: sh scripts/extract/train_propnet_online.sh"
exec $PY -m dmm.proposals.extract --root "$DATA_ROOT" --split valid \
  --arch resnext101_32x8d_fpn --weights "$WEIGHTS" --out "$OUT" "$@"
