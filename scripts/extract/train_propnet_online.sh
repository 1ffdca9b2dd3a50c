#!/bin/sh
# Online variant: fine-tune the YouTube-VOS proposal net on the first-frame annotations of the
# valid videos (the authors' "YTB-testdev-firstframe" model, online_ytb). Starts from the authors'
# join_ytb_bin checkpoint (or your train_propnet.sh result: INIT=.../model_final.pth).
# Resumes from the newest checkpoint in OUT.
# Usage: sh scripts/extract/train_propnet_online.sh [extra dmm.proposals.train_propnet options]
set -eu
DATA_ROOT=${DATA_ROOT:-datasets/youtubeVOS}
SPLIT_DIR=${SPLIT_DIR:-data/splits/youtubevos}
INIT=${INIT:-experiments/propnet/join_ytb_bin/model_0172500.pth}
OUT=${OUT:-experiments/propnet/online_ytb}
REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
. "$REPO/scripts/extract/common.sh"
dmm_require_dir "$DATA_ROOT/valid/Annotations" "YouTube-VOS valid annotations" "$DATA_HINT"
dmm_require_file "$INIT" "initial proposal-net weights" \
  "$WEIGHTS_HINT, or train the offline net first: sh scripts/extract/train_propnet.sh"
dmm_run "$PY" -m dmm.proposals.train_propnet --root "$DATA_ROOT" --split valid --online \
  --arch auto --init "$INIT" --out "$OUT" --iters 20000 "$@"
