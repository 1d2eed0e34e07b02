#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS on its seed corpus (make fuzz).
#
#   fuzz/run.sh SECONDS [TARGET...]     (targets: model tokenizer bpe tokcache record config; default all)
#
# Seeds are regenerated from committed files into build/fuzz/corpus_TARGET,
# where the fuzzer also keeps what it finds (so longer runs build on shorter
# ones). Prints each target's executions; exits 1 if any target crashed,
# leaked, timed out or ran out of memory (the input is in build/fuzz/crash-*).
# FUZZ_ARGS adds libFuzzer flags (later flags win), e.g. FUZZ_ARGS=-jobs=4.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(model tokenizer bpe tokcache record config)
B=build/fuzz

mkdir -p "$B/corpus_model" "$B/corpus_tokenizer" "$B/corpus_bpe" "$B/corpus_tokcache" "$B/corpus_record" \
    "$B/corpus_config"
# config.txt seeds: as the trainer writes them (a DyT run with every recorded kind of
# line), and command lines with a preset, --shared-flags, a repeat and quoting
printf '%s\n' "--made-by 0.9-0000000" "--data data/tinyshakespeare.txt" "--vocab-size 256" "--norm dyt" \
    "--emb-scale on" "--dim 64" "--layers 2" "--heads 4" "--kv-heads 2" "--mlp swiglu" "--hidden 192" "--seq 64" \
    "--batch 8" "--grad-accum 1" "--steps 30" "--lr 0.001" "--warmup 100" "--weight-decay 0.1" \
    "--scalar-lr-mult 1" "--beta2 0.95" "--clip 1" "--eval-every 100" "--eval-batches 8" "--seed 0" \
    "--alpha-attn 1" "--alpha-ffn 0.5" "--alpha-final 0.5" "--no-dyt-beta" "--residual-gate" \
    >"$B/corpus_config/seed_dyt"
printf '%s\n' "--preset dyt-official --norm rmsnorm --dim 32 --heads 2 --seq 16" >"$B/corpus_config/seed_preset"
printf '%s\n' "--shared-flags --norm derf --alpha-attn 2 --lr 1e-3 --lr=2e-3 --threads 1 --threads 2" \
    "--data 'a b,c'\\''d' --val-data=x.txt --tie-embeddings --norm-decay" >"$B/corpus_config/seed_shared"
cp test/ref/*.model.bin test/ref/l2c_*.ak42.bin test/ref/l2c_*.legacy.bin "$B/corpus_model/"
build/make_seeds "$B/corpus_model" "$B/corpus_tokenizer" "$B/corpus_bpe" "$B/corpus_tokcache" "$B/corpus_record" \
    test/ref/*.model.bin ||
    exit 1

# -max_len: inputs up to the largest seed (a checkpoint of a test/ref model,
# ~60 KB; tokenizers ~3 KB; BPE files and token caches under 1 KB), so the
# loaders' allocations stay small.
# -malloc_limit_mb: a single allocation above 64 MB from such an input means a
# header was believed before the size check: reported as a crash.
declare -A MAXLEN=([model]=65536 [tokenizer]=4096 [bpe]=4096 [tokcache]=4096 [record]=4096 [config]=4096)
# Targets run side by side, as many at once as there are cores (or FUZZ_JOBS).
jobs=${FUZZ_JOBS:-$(nproc)}
run_target() {
    "$B/fuzz_$1" -max_total_time="$secs" -max_len="${MAXLEN[$1]}" -malloc_limit_mb=64 -rss_limit_mb=2048 \
        -timeout=10 -print_final_stats=1 -artifact_prefix="$B/crash-$1-" ${FUZZ_ARGS:-} "$B/corpus_$1" \
        >"$B/fuzz_$1.log" 2>&1
    echo $? >"$B/fuzz_$1.rc"
}
running=0
for t in "${targets[@]}"; do
    if [ $running -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_target "$t" &
    running=$((running + 1))
done
wait

# A benchmark-like summary: executions per target (the note's figure), their
# rate, what the run added to the corpus, and the machine's load (a loaded
# machine runs fewer executions), also written to $B/summary.txt.
failed=0
{
    echo "# make fuzz FUZZ_SECONDS=$secs, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
    printf '%-16s %12s %10s %10s %8s\n' target executions exec/s new_units corpus
} >"$B/summary.txt"
for t in "${targets[@]}"; do
    log="$B/fuzz_$t.log"
    rc=$(cat "$B/fuzz_$t.rc" 2>/dev/null || echo 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    added=$(sed -n 's/^stat::new_units_added: *//p' "$log")
    corpus=$(ls "$B/corpus_$t" | wc -l)
    printf '%-16s %12s %10s %10s %8s\n' "fuzz_$t" "${execs:-?}" "${rate:-?}" "${added:-?}" "$corpus" >>"$B/summary.txt"
    if [ "$rc" -eq 0 ]; then
        echo "fuzz_$t: ${execs:-?} executions in ${secs} s (${rate:-?}/s), no crash (corpus $corpus files)"
    else
        echo "fuzz_$t: FAILED (exit $rc) after ${execs:-?} executions; log $log:"
        grep -E "ERROR|SUMMARY|==[0-9]+==|Test unit written" "$log" | head -20
        failed=1
    fi
done
cat "$B/summary.txt"
exit $failed
