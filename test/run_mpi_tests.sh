#!/usr/bin/env bash
# Data-parallel tests: the MPI build of train_llama (make MPI=1; `make
# test-mpi` builds it and runs this) under mpirun with 2 processes, which
# --oversubscribe allows on any machine. Same protocol as run_tests.sh: "ok -
# NAME" or "FAIL - NAME: why", then "N passed, N failed"; non-zero exit on
# any failure. Every mpirun runs under `timeout`: a hang is a failure.
set -u
cd "$(dirname "$0")/.."
DATA=${DATA:-data/tinyshakespeare.txt}
[ -f "$DATA" ] || data/get_data.sh >/dev/null || exit 1
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
LOG="$TMP/all.log"
: >"$LOG"

say() { printf '%s\n' "$*" | tee -a "$LOG"; }
ok() { say "ok - $1"; }
fail() { say "FAIL - $1: $2"; }
skip() { say "skip - $1: $2"; }
expect() { # expect NAME CONDITION-EXIT-STATUS WHY
    if [ "$2" -eq 0 ]; then ok "$1"; else fail "$1" "$3"; fi
}

if ! ldd ./train_llama 2>/dev/null | grep -q libmpi; then
    say "FAIL - ./train_llama is not the MPI build: run make MPI=1 (or make test-mpi)"
    say "0 passed, 1 failed"
    exit 1
fi
# Open MPI refuses to run as root unless told it may (CI runs as root)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# -q: no Open MPI banners (our one line is the message); 1 thread per rank
mpi() { # mpi NP ARGS...: train under mpirun, at most 120 s
    local np=$1
    shift
    with_defaults MPI_DEFAULTS "$@"
    timeout 120 mpirun -q --oversubscribe -np "$np" ./train_llama "${ARGS[@]}"
}
TINY=(--dim 32 --layers 2 --heads 4 --kv-heads 2 --seq 32 --warmup 2 --lr 3e-3 --eval-every 5 --eval-batches 2)
MPI_DEFAULTS=(--data "$DATA" "${TINY[@]}" --threads 1)
. test/lib.sh
losses() { cut -d, -f1-6,10- "$1"; } # log.csv without ms, tok_s, elapsed_s

# close LOG_A LOG_B: train and val losses and grad norms of every row within 1e-5 (relative)
close() {
    $PY - "$1" "$2" <<'PY'
import csv, sys
a, b = (list(csv.DictReader(open(f))) for f in sys.argv[1:])
def cells(rows):
    return [(r["step"], k, r[k]) for r in rows for k in ("train_loss", "val_loss", "grad_norm")]
ca, cb = cells(a), cells(b)
if len(a) != 21 or [c[:2] + (c[2] == "",) for c in ca] != [c[:2] + (c[2] == "",) for c in cb]:
    sys.exit("rows or cells differ")
worst = max((abs(float(x[2]) - float(y[2])) / abs(float(x[2])) for x, y in zip(ca, cb) if x[2]), default=0)
print(f"{worst:.1e}")
sys.exit(0 if worst <= 1e-5 else 1)
PY
}

# fnv1a64 of a model file's parameters (what the trainer reports for every rank)
fnv() {
    $PY - "$1" <<'PY'
import sys
h = 0xcbf29ce484222325
for b in open(sys.argv[1], "rb").read()[256:]:
    h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
print(f"{h:016x}")
PY
}

echo "# 2 ranks x batch B against 1 rank x batch 2B"
for norm in rmsnorm dyt; do
    mpi 1 --norm $norm --steps 20 --seed 5 --batch 4 --out "$TMP/one_$norm" 2>>"$TMP/stderr" &&
        mpi 2 --norm $norm --steps 20 --seed 5 --batch 2 --out "$TMP/two_$norm" 2>"$TMP/two_$norm.err"
    rc=$?
    worst=$(close "$TMP/one_$norm/log.csv" "$TMP/two_$norm/log.csv" 2>&1)
    expect "$norm: 2 ranks x batch 2 reproduce 1 rank x batch 4 over 20 steps (train, val loss, grad norm within 1e-5: worst $worst)" \
        $((rc || $?)) "exit $rc, $worst"

    want=$(fnv "$TMP/two_$norm/model.bin")
    grep -q "the weights are the same on all 2 ranks (fnv1a64 of the parameters $want)" "$TMP/two_$norm.err"
    expect "$norm: every rank ends with the weights of model.bin (fnv1a64 $want)" $? \
        "$(grep fnv1a64 "$TMP/two_$norm.err" || echo "no checksum line")"

    mpi 2 --norm $norm --steps 20 --seed 5 --batch 2 --stop-after 10 --out "$TMP/res_$norm" 2>>"$TMP/stderr" &&
        timeout 120 mpirun -q --oversubscribe -np 2 ./train_llama --data "$DATA" --threads 1 \
            --resume "$TMP/res_$norm/checkpoint.bin" 2>>"$TMP/stderr"
    rc=$?
    [ $rc -eq 0 ] && cmp -s <(losses "$TMP/two_$norm/log.csv") <(losses "$TMP/res_$norm/log.csv") &&
        cmp -s "$TMP/two_$norm/model.bin" "$TMP/res_$norm/model.bin"
    expect "$norm: 2 ranks, 10 steps + resume + 10 steps equals 20 steps bit for bit" $? \
        "exit $rc; $(diff <(losses "$TMP/two_$norm/log.csv") <(losses "$TMP/res_$norm/log.csv") | head -3 | tr '\n' ' ')"
done

# BPE: rank 0 trains the vocabulary and writes it and the token cache beside
# the text before rank 1 reads them; the run equals 1 rank x batch 4
mkdir -p "$TMP/bpe" && head -c 300000 "$DATA" >"$TMP/bpe/t.txt"
bmpi() { local np=$1; shift; timeout 120 mpirun -q --oversubscribe -np "$np" ./train_llama --data "$TMP/bpe/t.txt" \
    "${TINY[@]}" --threads 1 --vocab-size 300 --norm rmsnorm --steps 20 --seed 5 "$@"; }
bmpi 2 --batch 2 --out "$TMP/bpe/two" 2>"$TMP/bpe/two.err" && bmpi 1 --batch 4 --out "$TMP/bpe/one" 2>"$TMP/bpe/one.err"
rc=$?
worst=$(close "$TMP/bpe/one/log.csv" "$TMP/bpe/two/log.csv" 2>&1)
[ $rc -eq 0 ] && [ -f "$TMP/bpe/t.txt.bpe300" ] && [ -f "$TMP/bpe/t.txt.bpe300.tok" ] &&
    [ "$(grep -c "trained 300 tokens" "$TMP/bpe/two.err")" -eq 1 ] && grep -q "reused" "$TMP/bpe/one.err"
expect "BPE under 2 ranks: one vocabulary written once, reused, equal to 1 rank x batch 4 (worst $worst)" $? \
    "exit $rc, $worst: $(head -c 300 "$TMP/bpe/two.err")"

mpi 2 --norm dyt --steps 20 --seed 5 --batch 2 --overlap 0 --out "$TMP/blocking" 2>>"$TMP/stderr"
cmp -s <(losses "$TMP/two_dyt/log.csv") <(losses "$TMP/blocking/log.csv") &&
    cmp -s "$TMP/two_dyt/model.bin" "$TMP/blocking/model.bin"
expect "dyt: --overlap 0 (one reduction after backward) equals --overlap 1 (layer by layer) bit for bit on 2 ranks" $? \
    "runs differ"
# tied head: its gradient is the embedding's, reduced once after the backward pass
for ov in 0 1; do
    mpi 2 --norm rmsnorm --tie-embeddings --steps 6 --seed 5 --batch 2 --overlap $ov --out "$TMP/tied$ov" 2>>"$TMP/stderr"
done
cmp -s <(losses "$TMP/tied0/log.csv") <(losses "$TMP/tied1/log.csv") && cmp -s "$TMP/tied0/model.bin" "$TMP/tied1/model.bin"
expect "rmsnorm, tied embeddings: --overlap 0 equals --overlap 1 bit for bit on 2 ranks" $? "runs differ"

mpi 1 --norm dyt --steps 3 --seed 9 --batch 8 --out "$TMP/acc1" 2>>"$TMP/stderr" &&
    mpi 2 --norm dyt --steps 3 --seed 9 --batch 2 --grad-accum 2 --out "$TMP/acc2" 2>>"$TMP/stderr"
$PY - "$TMP/acc1/log.csv" "$TMP/acc2/log.csv" <<'PY'
import csv, sys
a, b = ([float(r["train_loss"]) for r in csv.DictReader(open(f)) if r["train_loss"]] for f in sys.argv[1:])
sys.exit(0 if len(a) == 3 and all(abs(x - y) <= 1e-5 * abs(x) for x, y in zip(a, b)) else 1)
PY
expect "2 ranks x batch 2 x grad-accum 2 equals 1 rank x batch 8 (losses within 1e-5)" $? "losses differ"

echo "# bf16 products (--precision bf16) on oneDNN (the runs above: oneDNN in fp32, the default)"
if ./train_llama --help | grep -q -- "--matmul NAME.*(default: onednn)"; then
    mpi 2 --norm dyt --precision bf16 --steps 20 --seed 5 --batch 2 --out "$TMP/bf16" 2>"$TMP/bf16.err" &&
        mpi 1 --norm dyt --precision bf16 --steps 20 --seed 5 --batch 4 --out "$TMP/bf16_one" 2>>"$TMP/stderr"
    rc=$?
    want=$(fnv "$TMP/bf16/model.bin")
    [ $rc -eq 0 ] && grep -q "the weights are the same on all 2 ranks (fnv1a64 of the parameters $want)" "$TMP/bf16.err" &&
        grep -qx "matmul=onednn" "$TMP/bf16/result.txt" && grep -qx "precision=bf16" "$TMP/bf16/result.txt"
    expect "onednn bf16: every rank ends with the weights of model.bin (fnv1a64 $want)" $? \
        "exit $rc: $(grep "fnv1a64\|note" "$TMP/bf16.err" | head -2)"
    # the same products in bf16 (the reduction adds the ranks' gradients in another order)
    worst=$(close "$TMP/bf16_one/log.csv" "$TMP/bf16/log.csv" 2>&1)
    expect "onednn bf16: 2 ranks x batch 2 reproduce 1 rank x batch 4 over 20 steps (within 1e-5: worst $worst)" $? "$worst"
    mpi 2 --norm dyt --precision bf16 --steps 20 --seed 5 --batch 2 --stop-after 10 --out "$TMP/bf16_res" 2>>"$TMP/stderr" &&
        timeout 120 mpirun -q --oversubscribe -np 2 ./train_llama --data "$DATA" --threads 1 \
            --resume "$TMP/bf16_res/checkpoint.bin" 2>>"$TMP/stderr"
    rc=$?
    [ $rc -eq 0 ] && cmp -s <(losses "$TMP/bf16/log.csv") <(losses "$TMP/bf16_res/log.csv") &&
        cmp -s "$TMP/bf16/model.bin" "$TMP/bf16_res/model.bin"
    expect "onednn bf16: 2 ranks, 10 steps + resume + 10 steps equals 20 steps bit for bit" $? \
        "exit $rc; $(diff <(losses "$TMP/bf16/log.csv") <(losses "$TMP/bf16_res/log.csv") | head -3 | tr '\n' ' ')"
else
    skip "onednn bf16 on 2 ranks" "this build has no oneDNN (scripts/setup.sh installs libdnnl-dev; then make clean)"
fi

echo "# failures end the whole job, with one message"
timeout 120 mpirun -q --oversubscribe -np 1 ./train_llama --data "$DATA" --resume "$TMP/res_dyt/checkpoint.bin" \
    --out "$TMP/np1" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] &&
    grep -q "checkpoint was written by 2 processes, this job has 1; resume it with mpirun -np 2" "$TMP/err"
expect "resuming a 2-rank checkpoint with 1 rank is refused (exit 2, one line)" $? "exit $rc: $(head -c 300 "$TMP/err")"

mpi 2 --norm rmsnorm --steps 5 --batch 2 --data "$TMP/missing.txt" --out "$TMP/bad" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "rank 0: $TMP/missing.txt: cannot open" "$TMP/err"
expect "a data file no rank can open: exit 1, one line naming it (not one per rank)" $? \
    "exit $rc: $(head -c 300 "$TMP/err")"

# a NaN in rank 1's weights only: the reduced loss is NaN on every rank, so all stop at the same step
LLAMA_TEST_POISON_STEP=7 LLAMA_TEST_POISON_RANK=1 mpi 2 --norm dyt --steps 20 --batch 2 --ckpt-every 2 \
    --out "$TMP/div" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] && [ "$(grep -c "train_llama: .*diverged" "$TMP/err")" -eq 1 ] && grep -q "diverged at step 7" "$TMP/err" &&
    grep -q "status=diverged" "$TMP/div/result.txt"
expect "a non-finite loss on one rank stops the job (exit 1, one line, status=diverged)" $? \
    "exit $rc: $(tail -n 2 "$TMP/err" | tr '\n' ' ')"

# a rank that dies mid-run (SIGKILL, before step 5): mpirun ends the others, no hang
start=$(date +%s)
LLAMA_TEST_CRASH_RANK=1 LLAMA_TEST_CRASH_STEP=5 timeout 60 mpirun --oversubscribe -np 2 ./train_llama \
    --data "$DATA" "${TINY[@]}" --threads 1 --steps 20 --batch 2 --out "$TMP/crash" >"$TMP/out" 2>"$TMP/err"
rc=$?
secs=$(($(date +%s) - start))
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "rank 1 .*exited on signal 9" "$TMP/err"
expect "a rank killed mid-run ends the job in ${secs}s (exit $rc, mpirun names rank 1), no hang" $? \
    "exit $rc (124 = hung until timeout): $(tail -n 3 "$TMP/err" | tr '\n' ' ')"

# SIGTERM to one rank only: every rank stops after the same step, with a checkpoint of it
S="$TMP/sig"
mpirun -q --oversubscribe -np 2 ./train_llama --data "$DATA" "${TINY[@]}" --threads 1 --norm rmsnorm \
    --batch 2 --steps 100000 --out "$S" 2>"$S.err" &
mp=$!
(sleep 120 && kill -9 $mp 2>/dev/null) & # a hang fails the test instead of blocking it
watchdog=$!
for _ in $(seq 100); do [ -s "$S/log.csv" ] && [ "$(wc -l <"$S/log.csv")" -gt 3 ] && break; sleep 0.1; done
ranks=$(pgrep -P $mp | tr '\n' ' ')
set -- $ranks
[ $# -eq 2 ] && kill -TERM "$2"
wait $mp
rc=$?
kill $watchdog 2>/dev/null
step=$(tail -n 1 "$S/log.csv" | cut -d, -f1)
[ $rc -eq 0 ] && grep -q "stopped after step $step (signal); resume with --resume $S/checkpoint.bin" "$S.err" &&
    timeout 120 mpirun -q --oversubscribe -np 2 ./train_llama --data "$DATA" --threads 1 --resume "$S/checkpoint.bin" \
        --stop-after 2 2>/dev/null &&
    [ "$(tail -n 1 "$S/log.csv" | cut -d, -f1)" -eq $((step + 2)) ]
expect "SIGTERM to one of 2 ranks: both stop after step $step with a checkpoint (exit 0), resume continues" $? \
    "exit $rc, ranks '$ranks': $(tail -n 2 "$S.err" | tr '\n' ' ')"

passed=$(grep -c '^ok - ' "$LOG")
failed=$(grep -c '^FAIL - ' "$LOG")
skipped=$(grep -c '^skip - ' "$LOG")
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
