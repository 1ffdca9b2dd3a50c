# Shared helpers of the shell entry points. POSIX sh (dash runs it): sourced, never run.
#
# A script sets REPO (the repository root) and sources this file:
#   REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
#   . "$REPO/scripts/lib.sh"
# Sourcing changes into $REPO, so relative paths (configs, datasets/, experiments/) are read
# from the repository root, as the original README's commands expect.

cd "$REPO" || { echo "error: cannot enter the repository root $REPO" >&2; exit 1; }

# dmm_die MESSAGE...: print "error: MESSAGE" to stderr and exit 2 (bad input, as the Python
# commands do).
dmm_die() {
  printf 'error: %s\n' "$*" >&2
  exit 2
}

# dmm_python: set PY to the project's interpreter: $DMM_PYTHON when set, else .venv/bin/python
# (created with scripts/setup_env.sh the first time).
dmm_python() {
  if [ -n "${DMM_PYTHON:-}" ]; then
    PY=$DMM_PYTHON
    return 0
  fi
  if [ ! -x "$REPO/.venv/bin/python" ]; then
    echo "[setup] $REPO/.venv missing: running scripts/setup_env.sh"
    sh "$REPO/scripts/setup_env.sh" || dmm_die "scripts/setup_env.sh failed"
  fi
  PY=$REPO/.venv/bin/python
}

# dmm_where PATH: PATH, followed by its absolute form when it is relative.
dmm_where() {
  case $1 in
    /*) printf '%s' "$1" ;;
    *) printf '%s (%s)' "$1" "$PWD/$1" ;;
  esac
}

# dmm_require_dir PATH WHAT HINT: exit with a clear message when folder PATH is missing.
dmm_require_dir() {
  [ -d "$1" ] || dmm_die "$2 not found: $(dmm_where "$1")${3:+
  $3}"
}

# dmm_require_file PATH WHAT HINT: exit with a clear message when file PATH is missing.
dmm_require_file() {
  [ -f "$1" ] || dmm_die "$2 not found: $(dmm_where "$1")${3:+
  $3}"
}

# dmm_require_checkpoint PATH WHAT: PATH is a weights file (a released trainer.pt), or a folder
# holding trainer.pt, or encoder.pt and decoder.pt.
dmm_require_checkpoint() {
  [ -f "$1" ] && return 0
  dmm_require_dir "$1" "$2" "download it (see README.md) or point the variable at the top of $0 at it"
  if [ ! -f "$1/trainer.pt" ] && { [ ! -f "$1/encoder.pt" ] || [ ! -f "$1/decoder.pt" ]; }; then
    dmm_die "$2 $1 holds no trainer.pt (nor encoder.pt + decoder.pt): not a checkpoint folder"
  fi
}

# dmm_require_exists PATH WHAT: PATH (file or folder) must exist.
dmm_require_exists() {
  [ -e "$1" ] || dmm_die "$2 not found: $(dmm_where "$1")"
}

# dmm_read_config MODE CONFIG [ARGS...]: read, through dmm.config.load_config, the paths the
# run of `dmm.train` (MODE train) or `dmm.test` (MODE test) with these arguments will use, and
# set them as shell variables (DMM_DATA_ROOT, DMM_DEVICE, DMM_CUDA_GPUS: the CUDA GPUs torch
# sees, DMM_TRAIN_IMAGES, DMM_TRAIN_META, DMM_TRAIN_PROPOSALS, DMM_VAL_ENABLED, DMM_EVAL_SPLIT,
# DMM_EVAL_IMAGES, DMM_EVAL_META, DMM_EVAL_PROPOSALS, DMM_CHECKPOINT, DMM_INIT, DMM_RESUME,
# DMM_OUTPUT_DIR, DMM_ARG_SPLIT: the --split given, or empty, DMM_RESULTS: the folder dmm.test writes <video>/<frame>.png into, and DMM_TRAIN_UNCOVERED / DMM_EVAL_UNCOVERED: a video of the
# split without a <video>.pth in its proposal folder, or empty). ARGS are the entry point's own,
# read by its own argument parser: options (--resume/--init/--checkpoint/--split/--out VALUE,
# the flag --overwrite) and KEY VALUE overrides, so the checks see exactly what the run will see.
dmm_read_config() {
  _dmm_vars=$("$PY" - "$@" <<'EOF'
import json, os, shlex, sys
from pathlib import Path

from dmm.config import load_config
from dmm.data.splits import resolve_split

mode, name, *args = sys.argv[1:]
if mode == "train":
    from dmm.train import parse_args
else:
    from dmm.test import parse_args
ns = parse_args(["--config", name, *args])
try:
    cfg = load_config(name, ns.opts)
except Exception as e:
    sys.exit(f"error: config {name} with overrides {ns.opts}: {e}")

def split_paths(split):
    try:
        paths = resolve_split(cfg.DATA.ROOT, split, cfg.DATA.SPLIT_DIR)
    except Exception as e:
        sys.exit(f"error: config {name}: {e}")
    return str(paths.images_dir / "JPEGImages"), str(paths.meta_path)

def uncovered(meta, proposals):
    """A video of the split's meta without <video>.pth in the proposal folder ("" if none)."""
    if not (Path(meta).is_file() and Path(proposals).is_dir()):
        return ""
    videos = sorted(json.loads(Path(meta).read_text()).get("videos", {}))
    missing = [v for v in videos if not (Path(proposals) / f"{v}.pth").is_file()]
    return f"{missing[0]} ({len(missing)} of {len(videos)} videos)" if missing else ""

arg_split = getattr(ns, "split", None) or ""
eval_split = arg_split or cfg.DATA.EVAL_SPLIT
out = getattr(ns, "out", None)
def cuda_gpus():
    """torch's count; torch (seconds to import) is not needed when CUDA_VISIBLE_DEVICES hides every GPU."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return 0
    import torch
    return torch.cuda.device_count()

values = {"DATA_ROOT": cfg.DATA.ROOT, "DEVICE": cfg.DEVICE, "CUDA_GPUS": cuda_gpus(),
          "EVAL_SPLIT": eval_split, "ARG_SPLIT": arg_split, "OUTPUT_DIR": cfg.OUTPUT_DIR,
          "VAL_ENABLED": "1" if cfg.VAL.ENABLED else "0",
          "TRAIN_PROPOSALS": cfg.PROPOSALS.TRAIN_DIR, "EVAL_PROPOSALS": cfg.PROPOSALS.EVAL_DIR,
          "CHECKPOINT": getattr(ns, "checkpoint", None) or cfg.TEST.CHECKPOINT,
          "INIT": getattr(ns, "init", None) or "", "RESUME": getattr(ns, "resume", None) or "",
          "RESULTS": out or str(Path(cfg.TEST.OUTPUT_DIR or Path(cfg.OUTPUT_DIR) / "eval" / eval_split) / "merged")}
values["TRAIN_IMAGES"], values["TRAIN_META"] = split_paths(cfg.DATA.TRAIN_SPLIT)
values["EVAL_IMAGES"], values["EVAL_META"] = split_paths(eval_split)
values["TRAIN_UNCOVERED"] = uncovered(values["TRAIN_META"], values["TRAIN_PROPOSALS"])
values["EVAL_UNCOVERED"] = uncovered(values["EVAL_META"], values["EVAL_PROPOSALS"])
for key, value in values.items():
    print(f"DMM_{key}={shlex.quote(str(value))}")
EOF
  ) || exit 2
  eval "$_dmm_vars"
}

# dmm_newest_checkpoint PATH: set DMM_NEWEST to the newest (by epoch, then iteration) checkpoint
# folder epoXX_iterXXXXX (holding trainer.pt, or encoder.pt + decoder.pt) of the run folder PATH,
# or to "" when PATH is no such run folder (a checkpoint itself, or missing).
dmm_newest_checkpoint() {
  DMM_NEWEST=$("$PY" - "$1" <<'EOF'
import sys
from pathlib import Path

from dmm.checkpoint_names import parse_name

path = Path(sys.argv[1])
holds = lambda p: (p / "trainer.pt").is_file() or ((p / "encoder.pt").is_file() and (p / "decoder.pt").is_file())
found = sorted((parse_name(p.name), str(p)) for p in (path.iterdir() if path.is_dir() and not holds(path) else ())
               if parse_name(p.name) and p.is_dir() and holds(p))
print(found[-1][1] if found else "")
EOF
  ) || exit 2
}

# dmm_describe_processes N: set DMM_PROCESSES to what N training processes will really run on
# (the config's DEVICE and the CUDA GPUs torch sees, both read by dmm_read_config); exit when
# DEVICE asks for CUDA and none is visible.
dmm_describe_processes() {
  case $DMM_DEVICE in
    cuda*) [ "$DMM_CUDA_GPUS" -gt 0 ] ||
      dmm_die "DEVICE $DMM_DEVICE asks for CUDA, but no CUDA GPU is visible (set DEVICE cpu or auto)" ;;
  esac
  if [ "$1" -gt 1 ]; then _dmm_procs="$1 processes"; else _dmm_procs="1 process"; fi
  if [ "$DMM_DEVICE" = cpu ]; then
    DMM_PROCESSES="$_dmm_procs on the CPU (DEVICE cpu)"
  elif [ "$DMM_CUDA_GPUS" -eq 0 ]; then
    DMM_PROCESSES="$_dmm_procs on the CPU (no CUDA GPU visible)"
  elif [ "$1" -gt "$DMM_CUDA_GPUS" ]; then
    DMM_PROCESSES="$_dmm_procs sharing $DMM_CUDA_GPUS CUDA GPU(s)"
  else
    DMM_PROCESSES="$_dmm_procs on $1 of $DMM_CUDA_GPUS CUDA GPU(s)"
  fi
}

# dmm_check_split WHICH IMAGES META [HINT]: the dataset root, the split's JPEGImages and its
# meta file; HINT replaces the default advice on a missing split.
dmm_check_split() {
  dmm_require_dir "$DMM_DATA_ROOT" "dataset root (DATA.ROOT)" \
    "link YouTube-VOS there (cd datasets && ln -s path/to/youtubeVOS youtubeVOS) or set DATA_ROOT"
  dmm_require_dir "$2" "$1 split images" "${4:-is the dataset complete under $DMM_DATA_ROOT?}"
  dmm_require_file "$3" "$1 split meta" \
    "${4:-YouTube-VOS meta.json, or the train3k/val200/test271 files of src/tools/make_splits.py (DATA.SPLIT_DIR)}"
}

# dmm_check_proposals WHICH DIR [UNCOVERED]: a proposal folder of the config, and (UNCOVERED, from
# dmm_read_config) no video of the split without its <video>.pth there.
dmm_check_proposals() {
  dmm_require_dir "$2" "$1 proposals" \
    "download or extract them (README.md: Reproducing the paper on YouTube-VOS, 2. Proposals) or override PROPOSALS.*_DIR"
  [ -z "${3:-}" ] || dmm_die "$1 proposals $2 hold no <video>.pth for video $3 of the split: \
another split's proposals? extract or reduce them for this split (README.md: Reproducing the paper on \
YouTube-VOS, 2. Proposals) or override PROPOSALS.*_DIR"
}

# dmm_check_evaluation CHECKPOINT_WHAT CONFIG [ARGS...]: read the config `dmm.test --config CONFIG
# ARGS...` will run with (dmm_read_config), then check its evaluation split, its proposals and its
# checkpoint (named CHECKPOINT_WHAT in the message).
dmm_check_evaluation() {
  _what=$1
  shift
  dmm_read_config test "$@"
  dmm_check_split "evaluation ($DMM_EVAL_SPLIT)" "$DMM_EVAL_IMAGES" "$DMM_EVAL_META"
  dmm_check_proposals "evaluation ($DMM_EVAL_SPLIT)" "$DMM_EVAL_PROPOSALS" "$DMM_EVAL_UNCOVERED"
  dmm_require_checkpoint "$DMM_CHECKPOINT" "$_what"
}

# dmm_positive NAME VALUE: exit unless VALUE is a positive integer.
dmm_positive() {
  case $2 in
    ''|*[!0-9]*|0) dmm_die "$1 must be a positive integer, got '$2'" ;;
  esac
}

# dmm_check_training WHAT [HINT [INIT_WHAT]]: after `dmm_read_config train ...`: the training split
# (HINT: the advice when it is missing), its proposals, validation's split and proposals when
# validation is on, and the --resume / --init paths (INIT_WHAT names the latter).
dmm_check_training() {
  dmm_check_split "$1" "$DMM_TRAIN_IMAGES" "$DMM_TRAIN_META" ${2:+"$2"}
  dmm_check_proposals "$1" "$DMM_TRAIN_PROPOSALS" "$DMM_TRAIN_UNCOVERED"
  if [ "$DMM_VAL_ENABLED" = 1 ]; then
    dmm_check_split "validation ($DMM_EVAL_SPLIT)" "$DMM_EVAL_IMAGES" "$DMM_EVAL_META"
    dmm_check_proposals "validation ($DMM_EVAL_SPLIT)" "$DMM_EVAL_PROPOSALS" "$DMM_EVAL_UNCOVERED"
  fi
  [ -z "$DMM_RESUME" ] || dmm_require_exists "$DMM_RESUME" "run or checkpoint to resume (--resume)"
  [ -z "$DMM_INIT" ] || dmm_require_checkpoint "$DMM_INIT" "${3:-initial checkpoint (--init)}"
}

# dmm_launch_train NAME NGPUS CONFIG [ARGS...]: run `dmm.train --config CONFIG ARGS...`: in this
# process, or with torchrun for NGPUS processes per machine on NNODES machines. Several machines:
# every machine runs the same script with NNODES, its own NODE_RANK (0 .. NNODES-1) and the
# address of machine 0 (MASTER_ADDR, MASTER_PORT, default 29500), or a rendezvous endpoint
# (RDZV_ENDPOINT host:port, RDZV_ID) that torchrun's c10d rendezvous uses instead.
dmm_launch_train() {
  _name=$1 _ngpus=$2 _config=$3
  shift 3
  _nnodes=${NNODES:-1}
  _rank=${NODE_RANK:-0}
  dmm_positive NGPUS "$_ngpus"
  dmm_positive NNODES "$_nnodes"
  case $_rank in
    ''|*[!0-9]*) dmm_die "NODE_RANK must be 0 .. NNODES-1, got '$_rank'" ;;
  esac
  [ "$_rank" -lt "$_nnodes" ] || dmm_die "NODE_RANK must be 0 .. NNODES-1 ($((_nnodes - 1))), got '$_rank'"
  dmm_describe_processes "$_ngpus"
  if [ "$_nnodes" -gt 1 ]; then
    echo "[$_name] config $_config, machine $_rank of $_nnodes, $DMM_PROCESSES each, output $DMM_OUTPUT_DIR"
  else
    echo "[$_name] config $_config, $DMM_PROCESSES, output $DMM_OUTPUT_DIR"
  fi
  if [ "$_ngpus" -eq 1 ] && [ "$_nnodes" -eq 1 ]; then
    dmm_run "$PY" -m dmm.train --config "$_config" "$@"
    return
  fi
  _torchrun=$(dirname -- "$PY")/torchrun
  [ -x "$_torchrun" ] || dmm_die "torchrun not found beside $PY (is torch installed in .venv?)"
  set -- --nproc_per_node="$_ngpus" -m dmm.train --config "$_config" "$@"
  if [ "$_nnodes" -gt 1 ]; then
    if [ -n "${RDZV_ENDPOINT:-}" ]; then
      set -- --nnodes="$_nnodes" --rdzv_backend=c10d --rdzv_endpoint="$RDZV_ENDPOINT" \
        --rdzv_id="${RDZV_ID:-dmm}" "$@"
    else
      [ -n "${MASTER_ADDR:-}" ] || dmm_die "NNODES=$_nnodes: set MASTER_ADDR (machine 0's address) or RDZV_ENDPOINT"
      set -- --nnodes="$_nnodes" --node_rank="$_rank" --master_addr="$MASTER_ADDR" \
        --master_port="${MASTER_PORT:-29500}" "$@"
    fi
  fi
  dmm_run "$_torchrun" "$@"
}

# dmm_run CMD...: print the command, then run it (only print it when DRY_RUN=1).
dmm_run() {
  echo "+ $*"
  if [ "${DRY_RUN:-0}" = 1 ]; then
    return 0
  fi
  "$@"
}

# dmm_testdev_choice CONFIG ONLINE_CONFIG [ARGS...]: the checkpoint scripts/eval/eval_testdev.sh
# evaluates, as DMM_TESTDEV_CHECKPOINT and DMM_TESTDEV_WHY (why that one). The online run's own when
# ONLINE_CONFIG's OUTPUT_DIR holds one of its checkpoints: the newest of the last epoch in its
# SOLVER.KEEP_EPOCHS (88: what 2019 evaluated) when there, else its newest; otherwise the released
# one: CONFIG's TEST.CHECKPOINT (online_ytb/epo90_iter00088) or, when absent, the 2019 README
# layout's epo101 beside it. ARGS: dmm.test's (KEY VALUE overrides of CONFIG).
dmm_testdev_choice() {
  _dmm_vars=$("$PY" - "$@" <<'EOF'
import shlex, sys
from pathlib import Path

from dmm.checkpoint_names import parse_name
from dmm.config import load_config
from dmm.test import parse_args

config, online, *args = sys.argv[1:]
run_cfg = load_config(online)
run, keep = Path(run_cfg.OUTPUT_DIR), list(run_cfg.SOLVER.KEEP_EPOCHS)
found = sorted((parse_name(p.name), str(p)) for p in (run.iterdir() if run.is_dir() else ())
               if parse_name(p.name) and (p / "trainer.pt").is_file())
kept = [path for (epoch, _), path in found if keep and epoch == keep[-1]]
if kept:
    chosen, why = kept[-1], (f"the online run's own: {online}'s OUTPUT_DIR {run} holds a run; its epoch-{keep[-1]} "
                             f"checkpoint, as 2019 evaluated")
elif found:
    chosen, why = found[-1][1], (f"the online run's own: {online}'s OUTPUT_DIR {run} holds a run; its newest "
                                 f"checkpoint (none of epoch {keep[-1] if keep else '-'})")
else:
    released = Path(load_config(config, parse_args(["--config", config, *args]).opts).TEST.CHECKPOINT)
    chosen = released if released.exists() or not (released.parent / "epo101").exists() else released.parent / "epo101"
    why = (f"the released model: no online run in {run}; {config}'s TEST.CHECKPOINT, or the 2019 README layout's "
           f"epo101 beside it")
print(f"DMM_TESTDEV_CHECKPOINT={shlex.quote(str(chosen))}")
print(f"DMM_TESTDEV_WHY={shlex.quote(why)}")
EOF
  ) || exit 2
  eval "$_dmm_vars"
}

# dmm_results_of CHECKPOINT SPLIT: where the results of a checkpoint folder <run>/<ckpt> (or of its
# <run>/<ckpt>/trainer.pt) on SPLIT go: <run>/eval/<ckpt>/SPLIT/merged.
dmm_results_of() {
  _ckpt=${1%/}
  [ -d "$_ckpt" ] || _ckpt=$(dirname -- "$_ckpt")
  echo "$(dirname -- "$_ckpt")/eval/$(basename -- "$_ckpt")/$2/merged"
}
