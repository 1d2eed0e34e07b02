#!/usr/bin/env bash
# valgrind memcheck over the programs' main paths (make valgrind): training
# with evaluation and checkpoints, a resume, both norms, both matmul backends
# (oneDNN by default, OpenBLAS) and bf16, sampling, --eval, a llama2.c model
# with its tokenizer, and rejected inputs (error paths must free what they
# took too). valgrind 3.19's CPU has no AVX-512: oneDNN picks its AVX2
# kernels by CPUID, and bf16 on oneDNN runs emulated, which the run says in
# one line (checked under --tool=none, below). Each must exit as expected with an empty memcheck
# log: no invalid access, no uninitialised read, no leak (definite, indirect
# or possible; test/valgrind.supp names the one libgomp exception).
#   test/valgrind.sh BINDIR
set -u
cd "$(dirname "$0")/.."
BIN=${1:?usage: test/valgrind.sh BINDIR}
DATA=${DATA:-data/tinyshakespeare.txt}
SHARED=${SHARED:-../shared/data}
# set, so that the programs do not start themselves again to set it (src/threads.h):
# valgrind would not follow them into the new image
export GOMP_SPINCOUNT=10000
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0 failed=0

# vg NAME WANT-EXIT PROGRAM ARGS...
vg() {
    local name=$1 want=$2
    shift 2
    valgrind -q --log-file="$TMP/vg.log" --suppressions=test/valgrind.supp --error-exitcode=99 \
        --leak-check=full --errors-for-leak-kinds=definite,indirect,possible "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -eq "$want" ] && [ ! -s "$TMP/vg.log" ]; then
        echo "ok - valgrind: $name (exit $rc, no errors, no leaks)"
        passed=$((passed + 1))
    else
        echo "FAIL - valgrind: $name: exit $rc (want $want); $(grep -m3 'ERROR\|lost\|Invalid\|uninit' "$TMP/vg.log" | tr '\n' ' ') $(tail -n1 "$TMP/err")"
        failed=$((failed + 1))
    fi
}

TINY=(--data "$DATA" --dim 32 --layers 2 --heads 4 --kv-heads 2 --seq 32 --batch 4 --steps 4
      --warmup 1 --eval-every 2 --eval-batches 2 --seed 3)
vg "rmsnorm, 2 of 4 steps, checkpoint" 0 "$BIN/train_llama" "${TINY[@]}" --norm rmsnorm --stop-after 2 \
    --out "$TMP/r"
vg "rmsnorm, resumed to step 4, --keep 2" 0 "$BIN/train_llama" --resume "$TMP/r/checkpoint.bin" --data "$DATA" --keep 2
vg "dyt, 4 steps, 1 thread, openblas" 0 "$BIN/train_llama" "${TINY[@]}" --norm dyt --threads 1 --matmul openblas \
    --out "$TMP/d"
# bf16 under memcheck on OpenBLAS (emulated: operands rounded into scratch, then sgemm).
# Not on oneDNN: there, on valgrind's CPU, bf16 is emulated too, through oneDNN's AVX2
# sgemm, which now and then reads 32 to 64 bytes past the end of a packing buffer it
# allocated itself ("Invalid read of size 32 ... 0 bytes after a block ... alloc'd" by
# posix_memalign in libdnnl, under dnnl_sgemm, from its generated code, on the packed
# rounded operands): oneDNN's memory, not ours, and a kernel a CPU with AVX-512 does not run.
vg "openblas bf16, 4 steps" 0 "$BIN/train_llama" "${TINY[@]}" --norm dyt --matmul openblas --precision bf16 \
    --out "$TMP/bf"
# A CPU without AVX512_BF16 (valgrind's, without memcheck: --tool=none): oneDNN's bf16 is
# emulated, and the run says so in one line
valgrind -q --tool=none "$BIN/train_llama" "${TINY[@]}" --norm dyt --matmul onednn --precision bf16 \
    --out "$TMP/bfn" >/dev/null 2>"$TMP/err"
rc=$?
notes=$(grep -c "^train_llama: note: this CPU has no bf16 dot product (AVX512_BF16): bf16 is emulated" "$TMP/err")
if [ $rc -eq 0 ] && [ "$notes" = 1 ] && grep -qx "matmul_emulated=1" "$TMP/bfn/result.txt" &&
    grep -q "threads, matmul onednn bf16 (emulated)" "$TMP/err"; then
    echo "ok - valgrind --tool=none: onednn bf16 on a CPU without AVX512_BF16: emulated, one line says so"
    passed=$((passed + 1))
else
    echo "FAIL - valgrind --tool=none: onednn bf16 on a CPU without AVX512_BF16: exit $rc, $notes notes: $(head -c 300 "$TMP/err")"
    failed=$((failed + 1))
fi
M=$TMP/r/model.bin
vg "generation, 60 tokens, top-p and top-k" 0 "$BIN/infer_llama" "$M" --prompt "ROMEO:" -n 60 \
    --temperature 0.8 --top-p 0.9 --top-k 20 --seed 1
vg "generation to the full context from a checkpoint" 0 "$BIN/infer_llama" "$TMP/d/checkpoint.bin" -n 200
head -c 3000 "$DATA" >"$TMP/e.txt"
vg "--eval of a text file" 0 "$BIN/infer_llama" "$M" --eval "$TMP/e.txt"
head -c 1000 "$M" >"$TMP/trunc.bin"
vg "a truncated model rejected" 1 "$BIN/infer_llama" "$TMP/trunc.bin"
vg "a truncated checkpoint rejected on resume" 1 "$BIN/train_llama" --resume "$TMP/trunc.bin" --data "$DATA"
vg "an unknown flag rejected" 2 "$BIN/train_llama" --frobnicate
vg "data shorter than one sequence rejected" 1 "$BIN/train_llama" --data test/valgrind.supp --seq 4096 \
    --out "$TMP/short"
mkfifo "$TMP/fifo"
vg "a FIFO as --data rejected" 1 "$BIN/train_llama" --data "$TMP/fifo" --out "$TMP/fifo_out"
vg "a FIFO as the model rejected" 1 "$BIN/infer_llama" "$TMP/fifo"
vg "a finished run's resume changes nothing" 0 "$BIN/train_llama" --resume "$TMP/r/checkpoint.bin" --data "$DATA"
vg "a resume into another folder" 0 "$BIN/train_llama" --resume "$TMP/d/checkpoint.bin" --data "$DATA" \
    --threads 1 --out "$TMP/moved"
head -c 200000 "$DATA" >"$TMP/bpe.txt"
# (on OpenBLAS: under memcheck a oneDNN run takes 7 s more, compiling its kernels, and
# the rmsnorm runs above have checked it)
vg "BPE: a 300-token vocabulary, its token cache, 2 steps" 0 "$BIN/train_llama" --data "$TMP/bpe.txt" \
    --vocab-size 300 --dim 32 --layers 2 --heads 4 --seq 32 --batch 4 --steps 2 --eval-batches 1 --matmul openblas \
    --out "$TMP/b"
vg "BPE: the cached vocabulary and tokens reused" 0 "$BIN/train_llama" --data "$TMP/bpe.txt" \
    --vocab-size 300 --dim 32 --layers 2 --heads 4 --seq 32 --batch 4 --steps 2 --eval-batches 1 --matmul openblas \
    --out "$TMP/b2"
vg "BPE: generation with the embedded tokenizer" 0 "$BIN/infer_llama" "$TMP/b/model.bin" --prompt "ROMEO:" -n 40
if [ -f "$SHARED/stories260K.bin" ] && [ -f "$SHARED/tokenizer.bin" ]; then
    vg "stories260K with tokenizer.bin, 40 tokens" 0 "$BIN/infer_llama" "$SHARED/stories260K.bin" \
        -z "$SHARED/tokenizer.bin" --prompt "Once upon a time" -n 40 --temperature 0
fi
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
