#!/bin/sh
# Test-dev proposals on YouTube-VOS 2018 valid from the authors' online-trained binary proposal
# net (online_ytb, maskrcnn-benchmark X-101-32x8d FPN, 2 classes), for the CodaLab run.
# Settings (DMM_Net scripts/extract/extract_proposal_ytbbin_trainval_val.sh, its second command,
# and scripts/extract/README.md): MODEL.ROI_BOX_HEAD.NUM_CLASSES 2, MODEL.WEIGHT
# online_ytb/model_0225000.pth, MODEL.ROI_HEADS.SCORE_THRESH 0.0, DETECTIONS_PER_IMG 50; test size
# 800/1333. Every detection is kept, in the file's order.
# Writes $OUT_DIR/predictions.pth and $OUT_DIR/videos_all (eval_testdev.yaml's / online.yaml's
# PROPOSALS.EVAL_DIR). Usage: sh scripts/extract/extract_online_valid.sh [dmm.proposals.extract options]
set -eu
DATA_ROOT=${DATA_ROOT:-datasets/youtubeVOS}
SPLIT_DIR=${SPLIT_DIR:-data/splits/youtubevos}
WEIGHTS=${WEIGHTS:-experiments/propnet/online_ytb/model_0225000.pth}
OUT_DIR=${OUT_DIR:-experiments/proposals/ytb_ot/inference/youtubevos_testdev_meta}
REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
. "$REPO/scripts/extract/common.sh"
extract_proposals valid 0.0 50 "$@"
