#!/bin/sh
# Evaluate the released ResNet-50 DMM-Nets on YouTube-VOS trainval (val200) with the proposals
# of the YouTube-VOS-tuned proposal net. Writes <OUT_ROOT>/<model>/eval/<split>/merged/
# <video>/<frame>.png per model; then score with: sh scripts/metric/full_eval.sh <that merged dir>
# Run from anywhere: sh scripts/eval/eval_r50.sh. Extra arguments go to dmm.test
# (--split SPLIT, KEY VALUE overrides). Every variable below can be set from the environment.
set -eu

# Which released model(s): ytb_255_50_matchloss_epo13 (match loss, epoch 13),
# ytb_255_50 (no match loss, epoch 8), or both.
MODEL=${MODEL:-both}
CKPT_MATCHLOSS=${CKPT_MATCHLOSS:-experiments/dmmnet/ytb_255_50_matchloss_epo13/epo13_iter01640}
CKPT_NOMATCH=${CKPT_NOMATCH:-experiments/dmmnet/ytb_255_50/epo08_iter01640}
CONFIG=${CONFIG:-eval}         # src/dmm/config/yaml/eval.yaml, or a yaml path
SPLIT=${SPLIT:-trainval}       # val200
OUT_ROOT=${OUT_ROOT:-experiments/dmmnet}  # results in $OUT_ROOT/<model>/eval/$SPLIT/merged
DATA_ROOT=${DATA_ROOT:-}       # empty: the config's DATA.ROOT (datasets/youtubeVOS)
EVAL_PROPOSALS=${EVAL_PROPOSALS:-}  # empty: the config's PROPOSALS.EVAL_DIR
GPUS=${GPUS:-}                 # e.g. 0: exported as CUDA_VISIBLE_DEVICES (one GPU is used)
DRY_RUN=${DRY_RUN:-0}          # 1: check and print the commands without running them

REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
. "$REPO/scripts/lib.sh"

# Options first, then the caller's arguments, then the variables above as config overrides
# (dmm.test reads options first, then KEY VALUE pairs).
[ -z "$DATA_ROOT" ] || set -- "$@" DATA.ROOT "$DATA_ROOT"
[ -z "$EVAL_PROPOSALS" ] || set -- "$@" PROPOSALS.EVAL_DIR "$EVAL_PROPOSALS"
set -- --split "$SPLIT" "$@"
[ -z "$GPUS" ] || export CUDA_VISIBLE_DEVICES="$GPUS"

case $MODEL in
  both) MODELS="ytb_255_50_matchloss_epo13 ytb_255_50" ;;
  ytb_255_50_matchloss_epo13|ytb_255_50) MODELS=$MODEL ;;
  *) dmm_die "MODEL must be ytb_255_50_matchloss_epo13, ytb_255_50 or both, got '$MODEL'" ;;
esac

checkpoint_of() {
  case $1 in
    ytb_255_50_matchloss_epo13) echo "$CKPT_MATCHLOSS" ;;
    ytb_255_50) echo "$CKPT_NOMATCH" ;;
  esac
}

# Check everything (data, proposals, every checkpoint) before running anything.
dmm_python
for m in $MODELS; do
  dmm_read_config test "$CONFIG" --checkpoint "$(checkpoint_of "$m")" "$@"
  dmm_check_split "evaluation ($DMM_EVAL_SPLIT)" "$DMM_EVAL_IMAGES" "$DMM_EVAL_META"
  dmm_check_proposals "evaluation ($DMM_EVAL_SPLIT)" "$DMM_EVAL_PROPOSALS"
  dmm_require_checkpoint "$DMM_CHECKPOINT" "checkpoint of $m"
done

for m in $MODELS; do
  out=$OUT_ROOT/$m/eval/$SPLIT/merged
  echo "[eval] $m: $(checkpoint_of "$m") -> $out"
  dmm_run "$PY" -m dmm.test --config "$CONFIG" --checkpoint "$(checkpoint_of "$m")" --out "$out" "$@"
done

echo "next, score the results:"
for m in $MODELS; do
  echo "  sh scripts/metric/full_eval.sh $OUT_ROOT/$m/eval/$SPLIT/merged"
done
