#!/usr/bin/env bash
# make demo: everything from a fresh Debian/Ubuntu machine to an answer.
# Installs missing packages (as root; otherwise prints the apt-get line and
# stops), fetches Tiny Shakespeare, builds, trains RMSNorm and DyT with paired
# seeds, plots the loss curves, writes the summary and a text sample from each.
# Takes about 5 minutes on 2 cores. Rerunning skips finished runs.
#
#   scripts/demo.sh [--out DIR] [--seeds N] [--steps N]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=runs/demo
SEEDS=2
STEPS=600
while [ $# -gt 0 ]; do
    case $1 in
    --out) OUT=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
t0=$(date +%s)

# 1. packages: the compiler, OpenBLAS's OpenMP build, numpy and matplotlib
scripts/setup.sh

# 2. data and build
echo "== data"
data/get_data.sh
echo "== build"
make -s -j"$(nproc)" all

# 3. the comparison: d 128, 4 layers, ~0.9M parameters, paired seeds
echo "== training RMSNorm and DyT, $SEEDS seeds each, $STEPS steps (progress in $OUT/runs/*/train.log)"
scripts/compare_norms.sh --data data/tinyshakespeare.txt --out "$OUT" --seeds "$SEEDS" \
    --dim 128 --layers 4 --heads 4 --seq 128 --batch 16 --steps "$STEPS" --warmup 60 \
    --lr 1e-3 --eval-every 50 --eval-batches 8 --sample-tokens 300

# 4. what the README shows
mkdir -p docs
cp "$OUT/loss_curves.png" docs/demo_loss_curves.png
cp "$OUT/alpha.png" docs/demo_alpha.png
cp "$OUT/summary.md" docs/demo_summary.md
echo
echo "== done in $(( $(date +%s) - t0 )) s: $OUT/summary.md, $OUT/loss_curves.png, $OUT/alpha.png"
for f in "$OUT"/sample_*.txt; do
    echo "-- $(basename "$f" .txt):"
    head -c 400 "$f"
    echo
done
