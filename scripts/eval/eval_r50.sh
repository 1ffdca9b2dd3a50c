#!/bin/sh
# Evaluate the released ResNet-50 DMM-Nets (or your own checkpoint) on YouTube-VOS trainval
# (val200) with the proposals of the YouTube-VOS-tuned proposal net. Writes
# <OUT_ROOT>/<model>/eval/<split>/merged/<video>/<frame>.png per released model, or, for
# CHECKPOINT=<run>/<checkpoint>, <run>/eval/<checkpoint>/<split>/merged/; then score with:
# sh scripts/metric/full_eval.sh <that merged dir>
# Run from anywhere: sh scripts/eval/eval_r50.sh. Extra arguments go to dmm.test
# (--split SPLIT, which replaces SPLIT below, --overwrite, KEY VALUE overrides). Every variable
# below can be set from the environment.
set -eu

# Your own model: a checkpoint folder (holding trainer.pt) or a trainer.pt file. When set,
# MODEL is not used.
CHECKPOINT=${CHECKPOINT:-}
# Which released model(s): ytb_255_50_matchloss_epo13 (match loss, epoch 13),
# ytb_255_50 (no match loss, epoch 8), or both.
MODEL=${MODEL:-both}
CKPT_MATCHLOSS=${CKPT_MATCHLOSS:-experiments/dmmnet/ytb_255_50_matchloss_epo13/epo13_iter01640}
CKPT_NOMATCH=${CKPT_NOMATCH:-experiments/dmmnet/ytb_255_50/epo08_iter01640}
CONFIG=${CONFIG:-eval}         # src/dmm/config/yaml/eval.yaml, or a yaml path
SPLIT=${SPLIT:-trainval}       # val200; an argument --split SPLIT wins
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
[ -z "$GPUS" ] || export CUDA_VISIBLE_DEVICES="$GPUS"

if [ -n "$CHECKPOINT" ]; then
  MODELS=own
else
  case $MODEL in
    both) MODELS="ytb_255_50_matchloss_epo13 ytb_255_50" ;;
    ytb_255_50_matchloss_epo13|ytb_255_50) MODELS=$MODEL ;;
    *) dmm_die "MODEL must be ytb_255_50_matchloss_epo13, ytb_255_50 or both, got '$MODEL'; for your own model set CHECKPOINT=<run folder>/<checkpoint folder>" ;;
  esac
fi

checkpoint_of() {
  case $1 in
    ytb_255_50_matchloss_epo13) echo "$CKPT_MATCHLOSS" ;;
    ytb_255_50) echo "$CKPT_NOMATCH" ;;
    own) echo "$CHECKPOINT" ;;
  esac
}

# results_of MODEL: where dmm.test writes. Released models: $OUT_ROOT/<model>/eval/$SPLIT/merged;
# your own checkpoint <run>/<ckpt> (or <run>/<ckpt>/trainer.pt): <run>/eval/<ckpt>/$SPLIT/merged.
results_of() {
  if [ "$1" != own ]; then
    echo "$OUT_ROOT/$1/eval/$SPLIT/merged"
    return 0
  fi
  dmm_results_of "$CHECKPOINT" "$SPLIT"
}

# The split: the caller's --split, else SPLIT (then passed on as --split).
dmm_python
dmm_read_config test "$CONFIG" "$@"
if [ -n "$DMM_ARG_SPLIT" ]; then
  SPLIT=$DMM_ARG_SPLIT
else
  set -- --split "$SPLIT" "$@"
fi

# Check everything (data, proposals, every checkpoint) before running anything.
for m in $MODELS; do
  if [ "$m" = own ]; then what="checkpoint"; else what="checkpoint of $m"; fi
  dmm_check_evaluation "$what" "$CONFIG" --checkpoint "$(checkpoint_of "$m")" "$@"
done

for m in $MODELS; do
  out=$(results_of "$m")
  echo "[eval] $m: $(checkpoint_of "$m") -> $out"
  dmm_run "$PY" -m dmm.test --config "$CONFIG" --checkpoint "$(checkpoint_of "$m")" --out "$out" "$@"
done

echo "next, score the results:"
for m in $MODELS; do
  echo "  sh scripts/metric/full_eval.sh $(results_of "$m")"
done
