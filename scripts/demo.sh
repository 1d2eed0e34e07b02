#!/usr/bin/env bash
# make demo: everything from a fresh Debian/Ubuntu machine to an answer.
# Installs missing packages (as root; otherwise prints the apt-get line and
# stops), fetches Tiny Shakespeare, builds, trains RMSNorm and DyT with paired
# seeds, plots the loss curves, writes the summary and a text sample from each.
# Takes about 5 minutes on 2 idle cores. Rerunning skips finished runs.
# Writes only under OUT (runs/demo): a clone stays clean. The summary marks
# speed figures measured on a busy machine (scripts/speedcheck.py).
#
#   scripts/demo.sh [--out DIR] [--seeds N] [--steps N] [--norms LIST] [--update-docs] [--tiny]
#
#   --out DIR        output folder (default runs/demo)
#   --seeds N        seeds per norm (default 2)
#   --steps N        optimizer steps per run (default 600)
#   --norms LIST     norm kinds, comma-separated (default rmsnorm,dyt)
#   --update-docs    then copy the plots and the summary to docs/demo_* (what the README
#                    shows; `make figures`). Without it nothing outside OUT is written.
#   --tiny           a d-32, 2-layer model, 1 thread (a smoke test of the whole path, not an answer)
#   -h, --help       this text
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ME=demo.sh
usage_error() { echo "$ME: error: $*; see --help" >&2; exit 2; }
OUT=runs/demo SEEDS=2 STEPS=600 NORMS=rmsnorm,dyt UPDATE_DOCS=0
SHAPE=(--dim 128 --layers 4 --heads 4 --seq 128 --batch 16 --warmup 60 --lr 1e-3 --eval-every 50
       --eval-batches 8 --sample-tokens 300)
while [ $# -gt 0 ]; do
    case $1 in
    --out | --seeds | --steps | --norms) [ $# -ge 2 ] || usage_error "$1 needs a value" ;;
    esac
    case $1 in
    --out) OUT=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --norms) NORMS=$2; shift 2 ;;
    --update-docs) UPDATE_DOCS=1; shift ;;
    --tiny) SHAPE=(--dim 32 --layers 2 --heads 4 --seq 32 --batch 4 --warmup 2 --eval-every 2 --threads 1
                   --eval-batches 2 --sample-tokens 20); shift ;;
    -h | --help) sed -n '2,/^set /{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) usage_error "unknown option '$1'" ;;
    esac
done
[[ $SEEDS =~ ^[1-9][0-9]*$ ]] || usage_error "--seeds wants a positive integer, got '$SEEDS'"
[[ $STEPS =~ ^[1-9][0-9]*$ ]] || usage_error "--steps wants a positive integer, got '$STEPS'"
t0=$(date +%s)

# 1. packages: the compiler, OpenBLAS's OpenMP build, numpy and matplotlib
scripts/setup.sh

# 2. data and build
echo "== data"
data/get_data.sh
echo "== build"
make -s -j"$(nproc)" all

# 3. the comparison: d 128, 4 layers, ~0.9M parameters, paired seeds
echo "== training $NORMS, $SEEDS seeds each, $STEPS steps (progress in $OUT/runs/*/train.log)"
scripts/compare_norms.sh --data data/tinyshakespeare.txt --out "$OUT" --seeds "$SEEDS" \
    --norms "$NORMS" --steps "$STEPS" "${SHAPE[@]}"

# 4. what the README shows: only when asked (make figures)
if ((UPDATE_DOCS)); then
    mkdir -p docs
    cp "$OUT/loss_curves.png" docs/demo_loss_curves.png
    [ ! -f "$OUT/alpha.png" ] || cp "$OUT/alpha.png" docs/demo_alpha.png
    cp "$OUT/summary.md" docs/demo_summary.md
    echo "== docs/demo_loss_curves.png, docs/demo_alpha.png, docs/demo_summary.md updated from $OUT"
fi
echo
echo "== done in $(( $(date +%s) - t0 )) s: $OUT/summary.md, $OUT/loss_curves.png, $OUT/alpha.png"
for f in "$OUT"/sample_*.txt; do
    [ -f "$f" ] || continue
    echo "-- $(basename "$f" .txt):"
    head -c 400 "$f"
    echo
done
