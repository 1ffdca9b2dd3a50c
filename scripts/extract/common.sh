# Shared by the scripts in scripts/extract/ (sourced, not run), on top of scripts/lib.sh.
# The script sets REPO, DATA_ROOT, SPLIT_DIR, WEIGHTS and OUT_DIR (the 2019 inference folder of
# the split, e.g. experiments/proposals/ytb_train/inference/youtubevos_val200_meta), then calls
#   extract_proposals SPLIT SCORE_THRESH DETECTIONS [extra dmm.proposals.extract options]
# which writes, as maskrcnn-benchmark's tools/test_net.py did, OUT_DIR/predictions.pth (one BoxList
# per frame, the 2019 layout) and this project's per-video store OUT_DIR/videos_all (every
# detection of a frame in the file's order: what `reduce_pth_size_by_videos.py ... all` gives),
# resuming an interrupted run; and, for the training splits,
#   reduce_proposals SPLIT TOPK
# which keeps the TOPK best-scored per frame in OUT_DIR/videos_top<TOPK> (2019 process.sh).
# DRY_RUN=1 prints the commands without running them.

. "$REPO/scripts/lib.sh"
dmm_python
DATA_HINT="link YouTube-VOS 2018 there (README.md, Reproducing the paper: 1. Data) or set DATA_ROOT"
SPLIT_HINT="run: $PY src/tools/make_splits.py --root $DATA_ROOT (or set SPLIT_DIR)"
WEIGHTS_HINT="download it (MODEL_ZOO.md, The proposal nets) or set WEIGHTS"

# extract_proposals SPLIT SCORE_THRESH DETECTIONS [ARGS...]
extract_proposals() {
  _split=$1 _score=$2 _detections=$3
  shift 3
  case $_split in
    train) dmm_require_file "$SPLIT_DIR/train3k_meta.json" "train3k split meta" "$SPLIT_HINT"; _folder=train ;;
    trainval) dmm_require_file "$SPLIT_DIR/val200_meta.json" "val200 split meta" "$SPLIT_HINT"; _folder=train ;;
    train_testdev_ot) _folder=train_testdev_ot ;;
    *) _folder=$_split ;;
  esac
  dmm_require_dir "$DATA_ROOT/$_folder/JPEGImages" "split $_split images" "$DATA_HINT"
  dmm_require_file "$WEIGHTS" "proposal-net weights" "$WEIGHTS_HINT"
  dmm_run "$PY" -m dmm.proposals.extract --root "$DATA_ROOT" --split-dir "$SPLIT_DIR" --split "$_split" \
    --weights "$WEIGHTS" --score-thresh "$_score" --detections "$_detections" \
    --out "$OUT_DIR/videos_all" --predictions "$OUT_DIR/predictions.pth" "$@"
}

# reduce_proposals SPLIT TOPK
reduce_proposals() {
  dmm_run "$PY" src/tools/reduce_pth_size_by_videos.py "$OUT_DIR/predictions.pth" "$1" "$2" \
    --root "$DATA_ROOT" --split-dir "$SPLIT_DIR" --overwrite
}
