#!/usr/bin/env bash
# Every GPU figure in one command (benchmarks/README.md, "GPU check").
#
#   bash benchmarks/gpu_check.sh [--smoke] [OUT_DIR]        (OUT_DIR default: benchmarks/)
#   bash benchmarks/gpu_check.sh [--smoke] --budget          print the parts' time limits and stop
#   bash benchmarks/gpu_check.sh --deps-only                 install WHEELS, check the modules and stop
#
# Runs each part below under its own time limit (GPU limits sum to 300 s), keeps going when a
# part fails, and writes OUT_DIR/GPU_REPORT.md, OUT_DIR/gpu_report.json and OUT_DIR/gpu_check.log
# (every part's full output). Needs a CUDA device; --smoke runs the same parts on the CPU at
# tiny sizes (CI). The project is used from this source tree (PYTHONPATH=src), nothing is
# downloaded or pip-installed into the interpreter.
#
# Environment:
#   PYTHON          the interpreter (default: .venv/bin/python when present, else python3)
#   WHEELS          a folder of wheels for the modules that interpreter lacks; installed into the
#                   scratch folder (pip --no-index --no-deps --target), never into the interpreter
#   GPU_CHECK_WORK  the scratch folder (default: a new temp folder, removed at the end)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SMOKE=0
BUDGET_ONLY=0
DEPS_ONLY=0
OUT=""
for arg in "$@"; do
    case $arg in
        --smoke) SMOKE=1 ;;
        --budget) BUDGET_ONLY=1 ;;
        --deps-only) DEPS_ONLY=1 ;;
        -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "error: unknown option $arg (bash benchmarks/gpu_check.sh [--smoke] [--budget] [--deps-only] [OUT_DIR])" >&2
            exit 2 ;;
        *) if [[ -n $OUT ]]; then echo "error: one OUT_DIR only, got $OUT and $arg" >&2; exit 2; fi; OUT=$arg ;;
    esac
done
OUT=${OUT:-$ROOT/benchmarks}

# --- the parts: time limit (s) and command of each. GPU limits sum to 300 s (one H100-class GPU).
# The engine's data (CPU work) is generated in the background from the start, so the engine
# part only times the engine; its limit ends before the engine part's turn.
PARTS=(env tests golden model engine matching amp ddp)
declare -A LIMIT
if [[ $SMOKE -eq 1 ]]; then
    LIMIT=([env]=60 [tests]=150 [golden]=150 [model]=150 [engine]=240 [matching]=150 [amp]=150 [ddp]=150)
    SIZE=(--smoke)
    MODEL_ARGS=(--device cpu --tiny --repeat 1 --no-train)
    ENGINE_ARGS=(--device cpu --quick --matching batched --iters 1 --short-frames 3 --long-frames 6 --batch-videos 2)
    MATCHING_ARGS=(--device cpu --repeat 1)
    PREP_NICE=0  # a busy CI machine would starve a niced job, and the engine part waits for it
else
    LIMIT=([env]=10 [tests]=70 [golden]=25 [model]=35 [engine]=70 [matching]=20 [amp]=40 [ddp]=30)
    SIZE=()
    MODEL_ARGS=(--device cuda --repeat 3)
    ENGINE_ARGS=(--device cuda --matching batched --fast)
    MATCHING_ARGS=(--device cuda --repeat 5)
    PREP_NICE=10  # 16 cores: the data is made beside the GPU parts, second to them
fi
PREP_LIMIT=$((LIMIT[tests] + LIMIT[golden] + LIMIT[model]))

print_budget() {
    local total=0 p
    printf '  %-10s %8s\n' part "limit s"
    for p in "${PARTS[@]}"; do printf '  %-10s %8d\n' "$p" "${LIMIT[$p]}"; total=$((total + LIMIT[$p])); done
    printf '  %-10s %8d\n' total "$total"
    printf '  %-10s %8d   (in the background, ends before the engine part starts)\n' engine-prep "$PREP_LIMIT"
}
if [[ $BUDGET_ONLY -eq 1 ]]; then
    echo "time limits$([[ $SMOKE -eq 1 ]] && echo ' (smoke)'):"
    print_budget
    exit 0
fi
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x $ROOT/.venv/bin/python ]]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
if [[ -n ${GPU_CHECK_WORK:-} ]]; then
    WORK=$GPU_CHECK_WORK
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
fi
rm -f "$WORK"/parts.tsv "$WORK"/*.json
mkdir -p "$WORK/logs" "$OUT"
cd "$ROOT"
export PYTHONPATH="$ROOT/src:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

# --- dependencies: install the given wheels beside the interpreter, then name what is missing
if [[ -n ${WHEELS:-} ]]; then
    shopt -s nullglob
    wheels=("$WHEELS"/*.whl)
    shopt -u nullglob
    if [[ ${#wheels[@]} -eq 0 ]]; then echo "error: WHEELS=$WHEELS holds no .whl file" >&2; exit 2; fi
    echo "installing ${#wheels[@]} wheel(s) from $WHEELS into $WORK/site"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" "${wheels[@]}" \
        || { echo "error: pip could not install the wheels of $WHEELS" >&2; exit 2; }
    export PYTHONPATH="$WORK/site:$PYTHONPATH"
fi
"$PYTHON" benchmarks/gpu_check.py deps || exit 3
[[ $DEPS_ONLY -eq 0 ]] || exit 0

# --- the device
if [[ $SMOKE -eq 1 ]]; then
    DEVICE=cpu
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # tiny sizes: one thread each wastes less on a busy machine
elif "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    DEVICE=cuda
else
    echo "error: $PYTHON's torch sees no CUDA device; on a machine without one run: bash benchmarks/gpu_check.sh --smoke" >&2
    exit 2
fi

echo "GPU check: device $DEVICE$([[ $SMOKE -eq 1 ]] && echo ' (smoke)'), interpreter $PYTHON, scratch $WORK"
print_budget

now() { date +%s.%N; }

run_part() {  # NAME COMMAND...: run under the part's time limit, log, record exit code and seconds
    local name=$1; shift
    local start rc seconds
    echo "== $name (limit ${LIMIT[$name]} s)"
    start=$(now)
    timeout -k 10 "${LIMIT[$name]}" "$@" > "$WORK/logs/$name.log" 2>&1
    rc=$?
    seconds=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$seconds" "${LIMIT[$name]}" >> "$WORK/parts.tsv"
    if [[ $rc -eq 0 ]]; then
        echo "   $name: ok in $seconds s"
    else
        [[ $rc -eq 124 || $rc -eq 137 ]] && echo "   $name: TIMED OUT after ${LIMIT[$name]} s" \
            || echo "   $name: FAILED (exit $rc) in $seconds s"
        tail -n 5 "$WORK/logs/$name.log" | sed 's/^/   | /'
    fi
}

GC=(benchmarks/gpu_check.py)
ENGINE_ARGS+=(--work "$WORK/engine")
timeout -k 10 "$PREP_LIMIT" nice -n "$PREP_NICE" env OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}" \
    "$PYTHON" benchmarks/bench_engine.py "${ENGINE_ARGS[@]}" --prepare-only > "$WORK/logs/engine-prep.log" 2>&1 &
PREP_PID=$!

run_part env      "$PYTHON" "${GC[@]}" env --device "$DEVICE" "${SIZE[@]}" --json "$WORK/env.json"
run_part tests    "$PYTHON" "${GC[@]}" tests --device "$DEVICE" "${SIZE[@]}" --json "$WORK/tests.json" --work "$WORK/tests"
run_part golden   "$PYTHON" "${GC[@]}" golden --device "$DEVICE" "${SIZE[@]}" --json "$WORK/golden.json" --work "$WORK/golden"
run_part model    "$PYTHON" benchmarks/bench_model.py "${MODEL_ARGS[@]}" --json "$WORK/model.json"
wait "$PREP_PID"
prep_rc=$?
[[ $prep_rc -eq 0 ]] || echo "   engine-prep: exit $prep_rc (the engine part generates what is missing)"
run_part engine   "$PYTHON" benchmarks/bench_engine.py "${ENGINE_ARGS[@]}" --json "$WORK/engine.json"
run_part matching "$PYTHON" benchmarks/bench_matching.py "${MATCHING_ARGS[@]}" --json "$WORK/matching.json"
run_part amp      "$PYTHON" "${GC[@]}" amp --device "$DEVICE" "${SIZE[@]}" --json "$WORK/amp.json" --work "$WORK/amp"
run_part ddp      "$PYTHON" "${GC[@]}" ddp --device "$DEVICE" "${SIZE[@]}" --json "$WORK/ddp.json" --work "$WORK/ddp"

for p in engine-prep "${PARTS[@]}"; do
    echo "===== $p"
    cat "$WORK/logs/$p.log"
done > "$OUT/gpu_check.log"
"$PYTHON" "${GC[@]}" report --work "$WORK" --out "$OUT" $([[ $SMOKE -eq 1 ]] && echo --smoke)
