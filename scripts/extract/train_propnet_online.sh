#!/bin/sh
# Online variant: fine-tune the YouTube-VOS proposal net on the first-frame annotations of the
# valid videos. Resumes from the newest checkpoint in OUT.
# Usage: sh scripts/extract/train_propnet_online.sh [extra dmm.proposals.train_propnet options]
DATA_ROOT=${DATA_ROOT:-datasets/youtubeVOS}
INIT=${INIT:-experiments/propnet/join_ytb_bin/model_final.pth}
OUT=${OUT:-experiments/propnet/online_ytb}
. "$(dirname -- "$0")/common.sh"
need_dir "$DATA_ROOT/valid/Annotations" "$DATA_HINT"
need_file "$INIT" "Train the offline proposal net first: sh scripts/extract/train_propnet.sh"
exec $PY -m dmm.proposals.train_propnet --root "$DATA_ROOT" --split valid --online \
  --arch resnext101_32x8d_fpn --init "$INIT" --out "$OUT" --iters 20000 "$@"
