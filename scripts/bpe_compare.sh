#!/usr/bin/env bash
# Byte tokens versus a BPE vocabulary at the same model size: trains the same
# model shape (dim, layers, heads, seq, batch, steps, lr, seed) once per
# vocabulary size and reports the validation loss in bits per byte of text,
# which compares across vocabularies (nats per token / ln 2 / bytes per token).
#
#   scripts/bpe_compare.sh [--data FILE] [--out DIR] [--vocabs "256 1024"] [--steps N]
#                          [--threads N] [-- extra train_llama flags]
#
# Writes DIR/v{N}/ (each run's log.csv, model.bin, result.txt) and DIR/summary.md
# (a table: vocab, params, steps, wall seconds, val loss per token, bytes per
# token, val bits per byte). A finished run (status=finished) is not redone.
# Note: each run validates on the last 10% of its own tokens, so the held-out
# text is the same up to a few bytes at the split.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=data/tinyshakespeare.txt OUT=runs/bpe_compare VOCABS="256 1024" STEPS=2000 THREADS=1
need() { [ "$1" -ge 2 ] || { echo "bpe_compare.sh: error: $2 needs a value; see --help" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case $1 in
    --data | --out | --vocabs | --steps | --threads) need $# "$1" ;;
    esac
    case $1 in
    --data) DATA=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --vocabs) VOCABS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set /{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    --) shift; break ;;
    *) echo "bpe_compare.sh: error: unknown argument '$1'; see --help" >&2; exit 2 ;;
    esac
done
SHAPE=(--dim 128 --layers 4 --heads 4 --seq 128 --batch 8 --lr 2e-3 --warmup 100 --eval-every 250
       --eval-batches 16 --seed 0 --norm rmsnorm --steps "$STEPS" --threads "$THREADS")
mkdir -p "$OUT"
for v in $VOCABS; do
    run="$OUT/v$v"
    if grep -qs status=finished "$run/result.txt"; then
        echo "bpe_compare: vocab $v: finished before, skipped"
        continue
    fi
    rm -rf "$run"
    echo "bpe_compare: vocab $v: training"
    start=$(date +%s.%N)
    ./train_llama --data "$DATA" --vocab-size "$v" "${SHAPE[@]}" --out "$run" "$@" 2>"$run.log"
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN{printf "wall_s=%.0f\n", b - a}' >>"$run/result.txt"
    tail -n 1 "$run.log"
done
{
    echo "| vocab | params | steps | wall s | val loss (nats/token) | bytes/token (val) | val bits/byte |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for v in $VOCABS; do
        r="$OUT/v$v/result.txt"
        get() { sed -n "s/^$1=//p" "$r"; }
        loss=$(get final_val_loss) bpb=$(get final_val_bpb)
        bpt=$(awk -v l="$loss" -v b="$bpb" 'BEGIN{printf "%.3f", l / log(2) / b}')
        echo "| $v | $(get params) | $(get steps) | $(get wall_s) | $loss | $bpt | $bpb |"
    done
} >"$OUT/summary.md"
cat "$OUT/summary.md"
