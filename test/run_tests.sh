#!/usr/bin/env bash
# The project's test runner: unit and reference tests (build/test_core), then
# end-to-end checks of the two programs, then the analysis scripts' tests.
# Every check prints "ok - NAME" or "FAIL - NAME: why", or "skip - NAME: why"
# when it cannot run here (never "ok"); the last line is "N passed, N failed,
# N skipped" and the exit status is non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
DATA=${DATA:-data/tinyshakespeare.txt} # data/get_data.sh puts it there (make test runs it)
[ -f "$DATA" ] || data/get_data.sh >/dev/null || exit 1
PY=/usr/bin/python3
# BIN=DIR runs the suite against the programs in DIR (make asan / make ubsan
# build them into build/asan, build/ubsan); default: the normal build.
TRAIN=${BIN:-.}/train_llama
INFER=${BIN:-.}/infer_llama
TOKENIZE=${BIN:-.}/tokenize
EXPORT=${BIN:-.}/export_llama
CORE=${BIN:-build}/test_core
# scripts/compare_norms.sh takes them from the environment, as absolute paths
case $TRAIN in /*) abs= ;; *) abs=$PWD/ ;; esac
export TRAIN_LLAMA=$abs$TRAIN INFER_LLAMA=$abs$INFER
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
LOG="$TMP/all.log"
: >"$LOG"

# section NAME: a heading, with the seconds the previous section took
t_section=$SECONDS
section() {
    [ -z "${section_name:-}" ] || echo "# ($section_name: $((SECONDS - t_section)) s)"
    section_name=$1 t_section=$SECONDS
    echo "# $1"
}
say() { printf '%s\n' "$*" | tee -a "$LOG"; }
ok() { say "ok - $1"; }
fail() { say "FAIL - $1: $2"; }
skip() { say "skip - $1: $2"; }
expect() { # expect NAME CONDITION-EXIT-STATUS WHY
    if [ "$2" -eq 0 ]; then ok "$1"; else fail "$1" "$3"; fi
}

# Deterministic columns of log.csv: everything except ms, tok_s, elapsed_s.
losses() { cut -d, -f1-6,10- "$1"; }

TINY=(--dim 32 --layers 2 --heads 4 --kv-heads 2 --seq 32 --batch 4 --warmup 2 --lr 3e-3
      --eval-every 5 --eval-batches 2)
. test/lib.sh
TRAIN_DEFAULTS=(--data "$DATA" "${TINY[@]}")
train() { with_defaults TRAIN_DEFAULTS "$@" && "$TRAIN" "${ARGS[@]}"; }

# ---------------------------------------------------------------------------
section "unit and reference tests"
"$CORE" test/ref | tee -a "$LOG"

# ---------------------------------------------------------------------------
section "determinism and resume"
# every kind of the norm table (train_llama --list-norms)
NORMS=$("$TRAIN" --list-norms | tr '\n' ' ')
[ -n "$NORMS" ] && [ -z "$("$TRAIN" --list-norms | grep -v '^[a-z0-9_]*$')" ]
expect "--list-norms prints one kind name per line: $NORMS" $? "$("$TRAIN" --list-norms | head -3)"
for norm in $NORMS; do
    train --norm $norm --steps 20 --seed 5 --out "$TMP/a_$norm" 2>>"$TMP/stderr" &&
        train --norm $norm --steps 20 --seed 5 --out "$TMP/b_$norm" 2>>"$TMP/stderr"
    cmp -s <(losses "$TMP/a_$norm/log.csv") <(losses "$TMP/b_$norm/log.csv") &&
        cmp -s "$TMP/a_$norm/model.bin" "$TMP/b_$norm/model.bin"
    expect "$norm: same seed, same losses and weights to the last bit" $? "runs differ"

    train --norm $norm --steps 20 --seed 5 --stop-after 10 --out "$TMP/c_$norm" 2>>"$TMP/stderr" &&
        train --resume "$TMP/c_$norm/checkpoint.bin" --out "$TMP/c_$norm" 2>>"$TMP/stderr"
    cmp -s <(losses "$TMP/a_$norm/log.csv") <(losses "$TMP/c_$norm/log.csv") &&
        cmp -s "$TMP/a_$norm/model.bin" "$TMP/c_$norm/model.bin"
    expect "$norm: 10 steps + resume + 10 steps equals 20 steps bit for bit" $? \
        "$(diff <(losses "$TMP/a_$norm/log.csv") <(losses "$TMP/c_$norm/log.csv") | head -3 | tr '\n' ' ')"
    # the file round trip: the model file and the checkpoint hold the same model
    # (greedy text), which the generator reads back and evaluates
    gen() { "$INFER" "$1" --prompt "RO" -n 24 --temperature 0 2>/dev/null; }
    gen "$TMP/a_$norm/model.bin" >"$TMP/gm_$norm" && gen "$TMP/a_$norm/checkpoint.bin" >"$TMP/gc_$norm" &&
        [ "$(wc -c <"$TMP/gm_$norm")" -gt 20 ] && cmp -s "$TMP/gm_$norm" "$TMP/gc_$norm" &&
        "$INFER" "$TMP/a_$norm/model.bin" --eval test/ref/v1/dyt_full.log.csv 2>/dev/null | grep -q "loss [0-9]"
    expect "$norm: model.bin and checkpoint.bin generate the same greedy text; --eval runs" $? \
        "$(head -c 80 "$TMP/gm_$norm") | $(head -c 80 "$TMP/gc_$norm")"
done

# Files written before the norm table (header version 1, by the train_llama
# of commit f1eb584): test/ref/v1 holds a DyT checkpoint at step 3 of 6, its log,
# and the log and model of the uninterrupted run, made with
#   train_llama --data data/tinyshakespeare.txt --dim 16 --layers 1 --heads 2 --kv-heads 1
#     --hidden 32 --seq 16 --batch 2 --warmup 2 --lr 3e-3 --eval-every 3 --eval-batches 2
#     --tie-embeddings --norm dyt --steps 6 --seed 11 --threads 1 [--stop-after 3]
# This build resumes it to the same losses (to 1e-5: the arithmetic of the
# norms may change, the format and the run must not) and evaluates the model.
mkdir -p "$TMP/v1" && cp test/ref/v1/dyt_step3.checkpoint.bin "$TMP/v1/checkpoint.bin" &&
    cp test/ref/v1/dyt_step3.log.csv "$TMP/v1/log.csv" &&
    "$TRAIN" --data "$DATA" --resume "$TMP/v1/checkpoint.bin" --threads 1 2>>"$TMP/stderr" &&
    paste -d, <(cut -d, -f1,3,4 test/ref/v1/dyt_full.log.csv) <(cut -d, -f1,3,4 "$TMP/v1/log.csv") |
    awk -F, 'NR > 1 { if ($1 != $4) bad = 1; for (i = 2; i <= 3; i++) { d = $i - $(i + 3); if (d < 0) d = -d;
             if (($i == "") != ($(i + 3) == "") || d > 1e-5 * $i) bad = 1 } } END { exit bad || NR != 8 }'
expect "a version-1 checkpoint (before the norm table) resumes to the old run's losses" $? \
    "$(diff <(cut -d, -f1,3,4 test/ref/v1/dyt_full.log.csv) <(cut -d, -f1,3,4 "$TMP/v1/log.csv") | head -4 | tr '\n' ' ')"
head -c 20000 "$DATA" >"$TMP/v1/text.txt"
v=$("$INFER" test/ref/v1/dyt_full.model.bin --eval "$TMP/v1/text.txt" 2>/dev/null | sed -n 's/.*loss \([0-9.]*\),.*/\1/p')
[ "$v" = 5.5327 ]
expect "a version-1 model file evaluates to the old build's loss 5.5327 (first 20000 bytes)" $? "loss '$v'"

# resume details: --out defaults to the checkpoint's folder; 0-default flags agree by value;
# a stop that lands on the last step still finishes the run; a row cut short by a crash is dropped
train --norm rmsnorm --steps 6 --seed 5 --kv-heads 0 --stop-after 3 --out "$TMP/d" 2>/dev/null &&
    printf '4,512,5.5' >>"$TMP/d/log.csv" &&
    train --resume "$TMP/d/checkpoint.bin" --kv-heads 0 --stop-after 3 2>/dev/null
[ -f "$TMP/d/model.bin" ] && grep -q "status=finished" "$TMP/d/result.txt" &&
    [ "$(cut -d, -f1 "$TMP/d/log.csv" | tr '\n' ' ')" = "step 0 1 2 3 4 5 6 " ] &&
    ! grep -q "median_ms=0.000" "$TMP/d/result.txt"
expect "resume: default --out, --kv-heads 0 agrees, stop on the last step finishes, cut row dropped" $? \
    "$(cut -d, -f1 "$TMP/d/log.csv" | tr '\n' ' '); $(tr '\n' ' ' <"$TMP/d/result.txt" 2>/dev/null)"

ckpt_step() { # the step in a checkpoint's training block: 64 + 1024 bytes before the tokenizer and the data record
    local version tok data
    read -r version <<<"$(od -An -t d4 -j 4 -N 4 "$1")"
    read -r tok _ _ data <<<"$(od -An -t d4 -j 68 -N 16 "$1")" # header bytes 68 and 80
    [ "$version" -gt 1 ] || data=0
    od -An -t d8 -j $(($(stat -c %s "$1") - tok - data - 1088)) -N 8 "$1" | tr -d ' '
}

# divergence: a NaN weight before step 7 stops the run at step 7 with exit 1 and
# status=diverged; the checkpoint on disk (step 6) stays good and loads
LLAMA_TEST_POISON_STEP=7 train --norm dyt --steps 20 --seed 5 --ckpt-every 2 --out "$TMP/div" 2>"$TMP/div.err"
rc=$?
ckpt_step=$(ckpt_step "$TMP/div/checkpoint.bin")
[ $rc -eq 1 ] && grep -q "diverged at step 7" "$TMP/div.err" && grep -q "status=diverged" "$TMP/div/result.txt" &&
    [ "$ckpt_step" = 6 ] && "$INFER" "$TMP/div/checkpoint.bin" -n 1 --temperature 0 >/dev/null 2>&1
expect "a non-finite loss stops the run (exit 1, step named, status=diverged), checkpoint of step 6 intact" $? \
    "exit $rc, checkpoint step $ckpt_step: $(tail -n 1 "$TMP/div.err")"

# a full disk: with a file-size limit (ulimit -f, 300 KB) below the checkpoint's
# size (495 KB) the write at step 15 fails: exit 1, a message naming the file,
# the step-10 checkpoint byte for byte as it was, no temporary left; resuming
# from it without the limit ends exactly as the uninterrupted run
F="$TMP/full"
train --norm rmsnorm --steps 20 --seed 5 --stop-after 10 --out "$F" 2>/dev/null && cp "$F/checkpoint.bin" "$TMP/full10.bin"
(ulimit -f 300 && exec "$TRAIN" --resume "$F/checkpoint.bin" --data "$DATA" --ckpt-every 5) 2>"$TMP/full.err"
rc=$?
[ $rc -eq 1 ] && grep -q "checkpoint.bin: write failed: File too large (what was on disk is unchanged)" "$TMP/full.err" &&
    cmp -s "$F/checkpoint.bin" "$TMP/full10.bin" && [ ! -e "$F/checkpoint.bin.tmp" ] &&
    train --resume "$F/checkpoint.bin" 2>/dev/null &&
    cmp -s <(losses "$TMP/a_rmsnorm/log.csv") <(losses "$F/log.csv") && cmp -s "$TMP/a_rmsnorm/model.bin" "$F/model.bin"
expect "a write error (disk full) at step 15: exit 1, step-10 checkpoint unchanged, resume ends as 20 steps" $? \
    "exit $rc: $(tail -n 1 "$TMP/full.err")"

# SIGTERM and SIGINT: the step in flight finishes, a checkpoint of it is written, exit 0
# with a line naming the checkpoint; resuming continues from it
# (the binary itself in the background: a function would put a subshell between us and it)
for sig in TERM INT; do
    S="$TMP/sig_$sig"
    "$TRAIN" --data "$DATA" "${TINY[@]}" --norm rmsnorm --steps 100000 --seed 5 --out "$S" 2>"$S.err" &
    pid=$!
    for _ in $(seq 50); do [ -s "$S/log.csv" ] && [ "$(wc -l <"$S/log.csv")" -gt 3 ] && break; sleep 0.1; done
    kill -$sig $pid
    wait $pid
    rc=$?
    step=$(tail -n 1 "$S/log.csv" | cut -d, -f1)
    [ $rc -eq 0 ] && grep -q "stopped after step $step (signal); resume with --resume $S/checkpoint.bin" "$S.err" &&
        [ -f "$S/checkpoint.bin" ] && [ "$(ckpt_step "$S/checkpoint.bin")" = "$step" ] &&
        [ ! -e "$S/checkpoint.bin.tmp" ] &&
        train --resume "$S/checkpoint.bin" --out "$S" --stop-after 2 2>/dev/null &&
        [ "$(tail -n 1 "$S/log.csv" | cut -d, -f1)" -eq $((step + 2)) ]
    expect "SIG$sig: checkpoint at step $step, exit 0, resume continues from it" $? "exit $rc: $(tail -n 1 "$S.err")"
done

# The progress line off a terminal (here a file): a line at each evaluation and at
# the end, and between them once LLAMA_PROGRESS_SECONDS have passed since the last
# line (0: after every step; 1e9: never); between evaluations the validation loss
# names the step it was measured at
P="$TMP/prog"
LLAMA_PROGRESS_SECONDS=0 train --steps 12 --seed 5 --out "$P/a" 2>"$P.a.err" &&
    LLAMA_PROGRESS_SECONDS=1e9 train --steps 12 --seed 5 --out "$P/b" 2>"$P.b.err"
val5=$(awk -F, '$1 == 5 { printf "%.4f", $4 }' "$P/a/log.csv")
steps_shown() { grep -o '^step [0-9]*' "$1" | cut -d' ' -f2 | tr '\n' ' '; }
[ "$(steps_shown "$P.a.err")" = "1 2 3 4 5 6 7 8 9 10 11 12 " ] && [ "$(steps_shown "$P.b.err")" = "5 10 12 " ] &&
    [ "$(grep -c "^step [6-9]/12 | loss [0-9.]* | val $val5 @step 5 (" "$P.a.err")" = 4 ] &&
    grep -q "^step 5/12 | loss [0-9.]* | val $val5 (" "$P.a.err" && ! grep -q "@" "$P.b.err"
expect "off a terminal: a progress line per evaluation, and per LLAMA_PROGRESS_SECONDS; an older val names its step" $? \
    "steps shown: $(steps_shown "$P.a.err")/ $(steps_shown "$P.b.err"); $(grep '^step 7/' "$P.a.err")"

# On a terminal (script(1) gives the run one) the line is rewritten in place, and
# the message after SIGINT (Ctrl-C) starts a line of its own
cmd=$(printf '%q ' "$TRAIN" --data "$DATA" "${TINY[@]}" --steps 100000 --seed 5 --out "$P/t")
script -qec "$cmd & p=\$!; for i in \$(seq 100); do [ \$(cat $P/t/log.csv 2>/dev/null | wc -l) -gt 3 ] && break; sleep 0.1; done
             kill -INT \$p; wait \$p" /dev/null >"$P.tty" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q '^train_llama: stopped after step [0-9]* (signal)' "$P.tty" &&
    [ "$(grep -c '^.step [0-9]*/100000 |' "$P.tty")" = 1 ] && [ "$(grep -o 'step [0-9]*/100000' "$P.tty" | wc -l)" -gt 2 ]
expect "on a terminal: one progress line rewritten in place; the stop message after SIGINT on a fresh line" $? \
    "exit $rc: $(tr '\r' '|' <"$P.tty" | tail -c 300)"

# Crashes lose nothing: SIGKILL a run at random moments, 12 times, resuming
# each time from what is on disk. LLAMA_TEST_WRITE_DELAY_MS stretches every
# atomic write (10 ms after its first chunk, 10 ms before its rename). Half
# the kills land anywhere (start-up, a resume's log rewrite, a step, an
# evaluation, a write); the others wait for the next checkpoint write to
# begin, so some kills certainly land inside one. After every kill the
# checkpoint must load and must not have gone back a step; at the end the
# log and model.bin must equal an uninterrupted run's bit for bit.
# 50 steps and kills 20..159 ms apart: even on a fast machine (steps of ~21 ms, with
# the delay) the run is still unfinished after 12 kills
KFLAGS=("${TINY[@]}" --norm dyt --steps 50 --seed 3 --ckpt-every 1 --threads 1)
"$TRAIN" --data "$DATA" "${KFLAGS[@]}" --out "$TMP/kref" 2>>"$TMP/stderr"
K="$TMP/kill" full=$(stat -c %s "$TMP/kref/checkpoint.bin")
RANDOM=4242 # the kill times and modes are deterministic, the machine's timing is not
kills=0 inwrite=0 partial=0 prev=0 bad="" where=""
while [ -z "$bad" ] && ! grep -qs status=finished "$K/result.txt"; do
    : >"$TMP/kill.start"
    if [ -f "$K/checkpoint.bin" ]; then
        args=(--data "$DATA" --resume "$K/checkpoint.bin" --ckpt-every 1 --keep 3 --threads 1)
    else
        args=(--data "$DATA" "${KFLAGS[@]}" --keep 3 --out "$K")
    fi
    LLAMA_TEST_WRITE_DELAY_MS=10 "$TRAIN" "${args[@]}" 2>>"$TMP/kill.err" &
    pid=$!
    if [ $kills -lt 12 ]; then
        sleep "0.$(printf %03d $((20 + RANDOM % 140)))" # 20..159 ms
        if [ $((RANDOM % 2)) -eq 1 ]; then # then wait for the next checkpoint write (at most 2 s)
            : >"$TMP/kill.mark"
            for _ in $(seq 1000); do
                [ "$K/checkpoint.bin.tmp" -nt "$TMP/kill.mark" ] && break
                sleep 0.002
            done
        fi
        kill -9 $pid 2>/dev/null
    fi
    wait $pid 2>/dev/null # (no "Killed" notice)
    rc=$?
    if [ $rc -eq 137 ]; then
        kills=$((kills + 1))
        if [ "$K/checkpoint.bin.tmp" -nt "$TMP/kill.start" ]; then
            inwrite=$((inwrite + 1))
            [ "$(stat -c %s "$K/checkpoint.bin.tmp")" -lt "$full" ] && partial=$((partial + 1))
        fi
        if [ -f "$K/checkpoint.bin" ]; then
            s=$(ckpt_step "$K/checkpoint.bin")
            where="$where $s"
            "$INFER" "$K/checkpoint.bin" -n 1 --temperature 0 --threads 1 >/dev/null 2>&1 ||
                bad="kill $kills: checkpoint.bin does not load"
            [ "$s" -ge "$prev" ] || bad="kill $kills: checkpoint went back from step $prev to $s"
            prev=$s
        else
            where="$where -"
            [ "$prev" -eq 0 ] || bad="kill $kills: checkpoint.bin vanished"
        fi
    elif [ $rc -ne 0 ]; then
        bad="exit $rc: $(tail -n 1 "$TMP/kill.err")"
    fi
done
[ -z "$bad" ] && [ $kills -ge 10 ] && [ $inwrite -ge 1 ] &&
    cmp -s <(losses "$TMP/kref/log.csv") <(losses "$K/log.csv") && cmp -s "$TMP/kref/model.bin" "$K/model.bin"
expect "SIGKILL x$kills (checkpoint then at step:$where; $inwrite inside a checkpoint write, $partial of them with a partial temp file): every checkpoint loads, the resumed run equals an uninterrupted one bit for bit" \
    $? "${bad:-$kills kills, $inwrite in a write; $(diff <(losses "$TMP/kref/log.csv") <(losses "$K/log.csv") 2>&1 | head -3 | tr '\n' ' ')}"
n_kept=$(ls "$K" | grep -c '^checkpoint-[0-9]*\.bin$')
[ "$n_kept" -ge 1 ] && [ "$n_kept" -le 3 ] && cmp -s "$K/checkpoint.bin" "$K/checkpoint-50.bin" &&
    [ ! -e "$K/checkpoint.bin.tmp" ]
expect "--keep 3 under kills: $n_kept numbered checkpoints, the newest is checkpoint.bin, no temp file left" $? \
    "$(ls "$K" | tr '\n' ' ')"

# A temporary file left by a kill inside a write (here: cut short, or garbage) does not
# break a resume, and is replaced; the resumed run still equals the uninterrupted one
train --norm rmsnorm --steps 20 --seed 5 --stop-after 10 --out "$TMP/left" 2>>"$TMP/stderr" &&
    head -c 1000 "$TMP/left/checkpoint.bin" >"$TMP/left/checkpoint.bin.tmp" &&
    printf 'garbage' >"$TMP/left/log.csv.tmp" && printf 'garbage' >"$TMP/left/model.bin.tmp" &&
    train --resume "$TMP/left/checkpoint.bin" 2>>"$TMP/stderr" &&
    cmp -s <(losses "$TMP/a_rmsnorm/log.csv") <(losses "$TMP/left/log.csv") &&
    cmp -s "$TMP/a_rmsnorm/model.bin" "$TMP/left/model.bin" && [ -z "$(ls "$TMP/left" | grep '\.tmp$')" ]
expect "a leftover checkpoint.bin.tmp (and log, model temps) from a kill mid-write: resume works, temps replaced" $? \
    "$(ls "$TMP/left" | tr '\n' ' ')"

# --keep 3: checkpoint-STEP.bin for the last 3 checkpoints (the newest is checkpoint.bin);
# resuming from an older one reproduces the rest of the run
train --norm rmsnorm --steps 20 --seed 5 --ckpt-every 4 --keep 3 --out "$TMP/keep" 2>>"$TMP/stderr"
kept=$(ls "$TMP/keep" | grep '^checkpoint-' | sort -V | tr '\n' ' ')
[ "$kept" = "checkpoint-12.bin checkpoint-16.bin checkpoint-20.bin " ] &&
    cmp -s "$TMP/keep/checkpoint.bin" "$TMP/keep/checkpoint-20.bin" &&
    train --resume "$TMP/keep/checkpoint-12.bin" --keep 3 2>>"$TMP/stderr" &&
    cmp -s <(losses "$TMP/a_rmsnorm/log.csv") <(losses "$TMP/keep/log.csv") &&
    cmp -s "$TMP/a_rmsnorm/model.bin" "$TMP/keep/model.bin"
expect "--keep 3 keeps checkpoint-12/16/20.bin; resuming from checkpoint-12.bin equals the uninterrupted run" $? \
    "kept: $kept"

train --norm dyt --steps 3 --seed 9 --out "$TMP/acc1" --batch 4 --grad-accum 1 2>>"$TMP/stderr" &&
    train --norm dyt --steps 3 --seed 9 --out "$TMP/acc2" --batch 2 --grad-accum 2 2>>"$TMP/stderr"
# batch 4 and 2x2 micro-batches draw the same windows; only float rounding differs
$PY - "$TMP/acc1/log.csv" "$TMP/acc2/log.csv" <<'PY'
import csv, sys
a, b = ([float(r["train_loss"]) for r in csv.DictReader(open(f)) if r["train_loss"]] for f in sys.argv[1:])
sys.exit(0 if len(a) == 3 and all(abs(x - y) <= 1e-5 * abs(x) for x, y in zip(a, b)) else 1)
PY
expect "grad-accum 2 x batch 2 equals batch 4 (losses within 1e-5)" $? "losses differ"

# ---------------------------------------------------------------------------
section "generation"
M="$TMP/a_dyt/model.bin"
gen() { "$INFER" "$M" --prompt "ROMEO:" "$@" 2>/dev/null; } # bytes may include NUL: compare files
gen -n 20 --temperature 0 >"$TMP/g1" && gen -n 20 --temperature 0 >"$TMP/g2"
[ -s "$TMP/g1" ] && cmp -s "$TMP/g1" "$TMP/g2"
expect "greedy generation is identical across runs" $? "differs"
gen -n 20 --temperature 0.8 --top-k 1 --seed 3 >"$TMP/k1"
cmp -s "$TMP/k1" "$TMP/g1"
expect "top-k 1 equals greedy" $? "differs"
gen -n 25 --temperature 1 --top-p 0.9 --seed 7 >"$TMP/s1"
gen -n 25 --temperature 1 --top-p 0.9 --seed 7 >"$TMP/s2"
gen -n 25 --temperature 1 --top-p 0.9 --seed 8 >"$TMP/s3"
cmp -s "$TMP/s1" "$TMP/s2" && ! cmp -s "$TMP/s1" "$TMP/s3"
expect "a seed reproduces a sampled text (and another seed differs)" $? "seed 7 twice or seed 8 wrong"
[ "$(wc -c <"$TMP/g1")" -eq 27 ] # "ROMEO:" + 20 tokens + a newline
expect "generation prints the prompt and -n tokens" $? "got $(wc -c <"$TMP/g1") bytes"
# a shared machine (src/threads.h): started without OMP_WAIT_POLICY or GOMP_SPINCOUNT, the
# programs run with libgomp's spin count at 10000 (they start themselves again with it set;
# libgomp prints its settings at each start, the last one counts); a user's own setting stands
spin() { env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose "$@" 2>&1 >/dev/null |
    sed -n "s/.*GOMP_SPINCOUNT = '\([0-9]*\)'.*/\1/p" | tail -n 1; }
s_train=$(spin "$TRAIN" --help) s_infer=$(spin "$INFER" "$M" -n 2) s_user=$(spin GOMP_SPINCOUNT=7 "$INFER" --help)
s_pass=$(spin OMP_WAIT_POLICY=passive "$INFER" --help)
[ "$s_train" = 10000 ] && [ "$s_infer" = 10000 ] && [ "$s_user" = 7 ] && [ "$s_pass" = 0 ]
expect "threads spin 10000 times at a barrier, not 300000; GOMP_SPINCOUNT or OMP_WAIT_POLICY given stands" $? \
    "train $s_train, infer $s_infer, GOMP_SPINCOUNT=7: $s_user, passive: $s_pass"
head -c 3000 "$DATA" >"$TMP/eval.txt"
out=$("$INFER" "$M" --eval "$TMP/eval.txt" 2>/dev/null)
echo "$out" | grep -q "2999 tokens, loss [0-9.]*, perplexity"
expect "--eval scores every next token of a file" $? "got: $out"

# Past the context the window slides. This model's context is 32 tokens (bytes):
# greedy, the prompt's 6 and the first 26 generated fill it, and token 27 slides
# it to the last 16 (the last 15 and token 27, recomputed from position 0), as
# tokens 44, 61, 78 and 95 do again. After a slide the run is a fresh run whose
# prompt is those 16 tokens: given them through --prompt-file (or --prompt - on
# standard input), a new run prints the rest of the long run's text exactly.
gen -n 100 --temperature 0 >"$TMP/w" 2>/dev/null
"$INFER" "$M" --prompt "ROMEO:" -n 100 --temperature 0 2>&1 >/dev/null | grep -q "generated 100 tokens .*, the window slid 5 times (keeping 16 tokens)"
rc=$?
tail -c +18 "$TMP/w" | head -c 16 >"$TMP/w1.txt" # bytes 17..32 (from 0): the window after the first slide
"$INFER" "$M" --prompt-file "$TMP/w1.txt" -n 73 --temperature 0 >"$TMP/w1" 2>/dev/null &&
    tail -c +35 "$TMP/w" | head -c 16 | "$INFER" "$M" --prompt - -n 56 --temperature=0 >"$TMP/w2" 2>/dev/null
[ $rc -eq 0 ] && [ "$(wc -c <"$TMP/w")" -eq 107 ] && cmp -s <(tail -c +18 "$TMP/w") "$TMP/w1" &&
    cmp -s <(tail -c +35 "$TMP/w") "$TMP/w2"
expect "-n 100 with a 32-token context: 100 tokens; after a slide a fresh run from the kept tokens continues alike" $? \
    "$(wc -c <"$TMP/w") bytes; $(cmp <(tail -c +18 "$TMP/w") "$TMP/w1" 2>&1) $(cmp <(tail -c +35 "$TMP/w") "$TMP/w2" 2>&1)"
# a prompt longer than the context: the model sees its last 16 tokens
head -c 40 "$DATA" >"$TMP/p40.txt" && tail -c 16 "$TMP/p40.txt" >"$TMP/p16.txt"
"$INFER" "$M" --prompt-file "$TMP/p40.txt" -n 30 --temperature 0 >"$TMP/l40" 2>"$TMP/l40.err" &&
    "$INFER" "$M" --prompt-file "$TMP/p16.txt" -n 30 --temperature 0 >"$TMP/l16" 2>/dev/null &&
    cmp -s <(tail -c +25 "$TMP/l40") "$TMP/l16" && cmp -s <(head -c 40 "$TMP/l40") "$TMP/p40.txt" &&
    grep -q "the prompt's 40 tokens exceed the model's context of 32: it sees the last 16" "$TMP/l40.err"
expect "a 40-token prompt, context 32: printed whole, generates from its last 16 tokens (one line says so)" $? \
    "$(cat "$TMP/l40.err")"

# steady memory: every buffer is allocated before the first token, so the heap
# in use grows by the same bytes (stdout's buffer) over 1600 tokens, past the
# 1024-token context (the window slides twice), as over 10 tokens (glibc's count of bytes in use, not the coarse RSS;
# with its per-thread cache off, which otherwise counts freed blocks as in use)
NOCACHE=glibc.malloc.tcache_count=0
"$TRAIN" --data "$DATA" --dim 32 --layers 2 --heads 4 --seq 1024 --batch 1 --steps 1 --eval-batches 1 \
    --out "$TMP/long" 2>/dev/null
grow() { GLIBC_TUNABLES=$NOCACHE "$INFER" "$TMP/long/model.bin" -n "$1" --seed 1 2>&1 >/dev/null | sed -n 's/.*heap \([-+][0-9]*\) bytes.*/\1/p'; }
g10=$(grow 10) && gfull=$(grow 1600) && [ -n "$gfull" ] && [ "$gfull" -eq "$g10" ]
expect "a generation past the context (1600 tokens, 1024-token context, 2 slides) holds its memory: heap ${gfull:-?} bytes, as for 10 tokens" $? \
    "heap ${gfull:-?} bytes vs ${g10:-?} for 10"

# ---------------------------------------------------------------------------
section "learning: a tiny model on Tiny Shakespeare"
# untrained loss is ln(256) = 5.55; the unigram (bigram-free) entropy of the
# text is about 3.3. 300 steps of this RMSNorm model reach 2.15 (seed 0), so
# 2.6 sits well below both while leaving room for other machines' rounding.
"$TRAIN" --data "$DATA" --norm rmsnorm --dim 64 --layers 2 --heads 4 --kv-heads 2 --seq 64 \
    --batch 16 --steps 300 --warmup 20 --lr 3e-3 --eval-every 100 --out "$TMP/learn" 2>"$TMP/stderr"
v0=$(awk -F, 'NR==2{print $4}' "$TMP/learn/log.csv")
v1=$(awk -F= '/final_val_loss/{print $2}' "$TMP/learn/result.txt")
awk -v a="$v0" -v b="$v1" 'BEGIN{exit !(a > 5.4 && b < 2.6)}'
expect "rmsnorm tiny model: val loss $v0 -> $v1 (must fall from ~5.55 to < 2.6)" $? "val loss $v0 -> $v1"

# steady memory in training: over 5000 steps (an evaluation and a checkpoint
# every 100) the heap in use at the end is what it was after the first checkpoint
GLIBC_TUNABLES=$NOCACHE "$TRAIN" --data "$DATA" --dim 16 --layers 1 --heads 2 --seq 16 --batch 2 --steps 5000 --eval-every 100 \
    --eval-batches 2 --ckpt-every 100 --threads 1 --out "$TMP/steady" 2>/dev/null
hg=$(sed -n 's/^heap_growth_bytes=//p' "$TMP/steady/result.txt" 2>/dev/null)
[ "$hg" = 0 ]
expect "5000 training steps hold their memory: heap growth ${hg:-?} bytes after the first checkpoint" $? \
    "heap grew ${hg:-?} bytes"

# ---------------------------------------------------------------------------
section "bad input: exit code and a one-line message naming the culprit"
# bad_case NAME EXPECTED_EXIT PATTERN COMMAND...
bad_case() {
    local name=$1 want=$2 pat=$3
    shift 3
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -eq "$want" ] && grep -q -- "$pat" "$TMP/err" && [ "$(wc -l <"$TMP/err")" -le 2 ]; then
        ok "rejects $name (exit $rc)"
    else
        fail "rejects $name" "exit $rc (want $want), stderr: $(head -c 200 "$TMP/err")"
    fi
}
GOOD="$TMP/a_rmsnorm/model.bin"
printf 'XXXX' | cat - <(tail -c +5 "$GOOD") >"$TMP/magic.bin"
head -c -1 "$GOOD" >"$TMP/trunc.bin"
cat "$GOOD" <(printf 'x') >"$TMP/trail.bin"
: >"$TMP/empty.bin"
head -c 256 "$GOOD" >"$TMP/header_only.bin"
# header fields by offset: version 4, dim 12, n_heads 24, n_kv_heads 28, vocab 32
patch_i32() { # patch_i32 SRC DST OFFSET VALUE
    $PY -c "import struct,sys; b=bytearray(open(sys.argv[1],'rb').read()); b[int(sys.argv[3]):int(sys.argv[3])+4]=struct.pack('<i',int(sys.argv[4])); open(sys.argv[2],'wb').write(b)" "$@"
}
patch_i32 "$GOOD" "$TMP/version.bin" 4 99 # past MODEL_VERSION
$PY -c "import struct,sys; b=bytearray(open(sys.argv[1],'rb').read()); b[300:304]=struct.pack('<f',float('nan')); open(sys.argv[2],'wb').write(b)" "$GOOD" "$TMP/nan.bin"
patch_i32 "$GOOD" "$TMP/dim0.bin" 12 0
patch_i32 "$GOOD" "$TMP/dimneg.bin" 12 -64
patch_i32 "$GOOD" "$TMP/kvheads.bin" 28 3
patch_i32 "$GOOD" "$TMP/huge.bin" 32 1000000
bad_case "a bad magic" 1 "bad magic" "$INFER" "$TMP/magic.bin"
bad_case "a future version" 1 "version = 99 is not supported" "$INFER" "$TMP/version.bin"
bad_case "dim 0" 1 "dim = 0" "$INFER" "$TMP/dim0.bin"
bad_case "a negative dim" 1 "dim = -64" "$INFER" "$TMP/dimneg.bin"
bad_case "n_kv_heads not dividing n_heads" 1 "n_kv_heads = 3" "$INFER" "$TMP/kvheads.bin"
bad_case "a huge vocab (size mismatch)" 1 "header implies" "$INFER" "$TMP/huge.bin"
bad_case "a NaN parameter" 1 "tensor wte holds a non-finite value (nan) at flat index 11" "$INFER" "$TMP/nan.bin"
bad_case "a file truncated by one byte" 1 "truncated" "$INFER" "$TMP/trunc.bin"
bad_case "one trailing byte" 1 "trailing bytes" "$INFER" "$TMP/trail.bin"
bad_case "an empty model file" 1 "shorter than the 256-byte header" "$INFER" "$TMP/empty.bin"
bad_case "a header only" 1 "truncated" "$INFER" "$TMP/header_only.bin"
bad_case "a directory as model" 1 "not a regular file" "$INFER" "$TMP"
bad_case "a missing model" 1 "cannot open" "$INFER" "$TMP/nope.bin"
bad_case "a fresh run into a folder holding a run" 1 "already holds a run; continue it with --resume" train --steps 2 --out "$TMP/a_rmsnorm"
bad_case "a model file given to --resume" 1 "not a checkpoint" train --resume "$GOOD" --out "$TMP/r"
head -c 40 "$DATA" >"$TMP/short.txt"
bad_case "data shorter than one sequence" 1 "too short" train --data "$TMP/short.txt" --steps 2 --out "$TMP/s"
bad_case "a missing data file" 1 "cannot open" train --data "$TMP/none.txt" --steps 2 --out "$TMP/s"
bad_case "different data on resume" 1 "eval.txt: not the checkpoint's file 1, .*(size differs)" train --data "$TMP/eval.txt" --resume "$TMP/c_rmsnorm/checkpoint.bin" --out "$TMP/s"
bad_case "a conflicting setting on resume" 2 "differs from the checkpoint" train --resume "$TMP/c_rmsnorm/checkpoint.bin" --lr 1e-2 --out "$TMP/s"
bad_case "an unknown flag" 2 "unknown option '--frobnicate'" "$TRAIN" --frobnicate
bad_case "a flag without its value" 2 "needs a value" "$TRAIN" --data "$DATA" --steps
bad_case "a value given to a flag (--flag=x)" 2 "--tie-embeddings takes no value (got '--tie-embeddings=yes')" \
    "$TRAIN" --data "$DATA" --tie-embeddings=yes
bad_case "an out-of-range --name=value" 2 "--steps '-3'" "$TRAIN" --data="$DATA" --steps=-3
bad_case "a non-numeric value" 2 "--dim '12x'" "$TRAIN" --data "$DATA" --dim 12x
bad_case "NaN as a value" 2 "--lr 'nan'" "$TRAIN" --data "$DATA" --lr nan
bad_case "inf as a value" 2 "--temperature 'inf'" "$INFER" "$GOOD" --temperature inf
bad_case "an out-of-range value" 2 "--top-p '1.5'" "$INFER" "$GOOD" --top-p 1.5
bad_case "heads not dividing dim" 2 "(--dim --heads.*does not divide dim" train --heads 3 --kv-heads 3 --steps 1 --out "$TMP/s"
bad_case "an unknown --norm, listing the known kinds" 2 "--norm softmax: unknown kind; known: $(echo $NORMS | sed 's/ /, /g')" \
    "$TRAIN" --data "$DATA" --norm softmax
bad_case "a bad --emb-scale" 2 "--emb-scale must be on or off" "$TRAIN" --data "$DATA" --emb-scale yes
bad_case "a missing MODEL" 2 "MODEL is required" "$INFER"
bad_case "--prompt with --prompt-file" 2 "--prompt and --prompt-file: give one of them" "$INFER" "$GOOD" --prompt x --prompt-file "$DATA"
bad_case "a missing --prompt-file" 1 "nope.txt: cannot open" "$INFER" "$GOOD" --prompt-file "$TMP/nope.txt"
bad_case "a directory as --prompt-file" 1 "not a regular file" "$INFER" "$GOOD" --prompt-file "$TMP"
mkdir -p "$TMP/ro" && chmod 555 "$TMP/ro"
if [ "$(id -u)" -ne 0 ]; then # root can write anywhere
    bad_case "an unwritable output folder" 1 "not writable" train --steps 1 --out "$TMP/ro"
fi

# ---------------------------------------------------------------------------
section "llama2.c checkpoints: reading, exporting, malformed files"
R="$TMP/a_rmsnorm/model.bin"
"$EXPORT" "$R" --format llama2c --out "$TMP/rt.bin" 2>"$TMP/rt.err"
[ -f "$TMP/rt.bin" ] && [ -f "$TMP/rt.tokenizer.bin" ] && [ ! -e "$TMP/rt.bin.tmp" ]
expect "export_llama --format llama2c writes the model and its tokenizer (rt.tokenizer.bin)" $? "$(head -c 200 "$TMP/rt.err")"
g() { "$INFER" "$@" --prompt "ROMEO:" -n 30 --temperature 0 2>/dev/null; }
g "$R" >"$TMP/rt_a" && g "$TMP/rt.bin" >"$TMP/rt_b" && [ -s "$TMP/rt_a" ] && cmp -s "$TMP/rt_a" "$TMP/rt_b"
expect "the exported llama2.c file generates the model's greedy text (byte tokenizer)" $? "differs"
"$EXPORT" "$TMP/rt.bin" --format llama2c --out "$TMP/rt2.bin" 2>/dev/null &&
    cmp -s "$TMP/rt.bin" "$TMP/rt2.bin" && cmp -s "$TMP/rt.tokenizer.bin" "$TMP/rt2.tokenizer.bin"
expect "exporting the exported file gives the same bytes" $? "differs"
g "$TMP/rt.bin" -z "$TMP/rt.tokenizer.bin" >"$TMP/rt_z" && [ "$(head -c 6 "$TMP/rt_z")" = "ROMEO:" ] &&
    [ "$(wc -c <"$TMP/rt_z")" -gt 7 ]
expect "the exported model runs with its exported tokenizer (-z)" $? "$(head -c 100 "$TMP/rt_z")"
bad_case "exporting a DyT model (the error names the model)" 1 "a_dyt/model.bin: cannot export to llama2c: the model has a dyt norm" \
    "$EXPORT" "$TMP/a_dyt/model.bin" --format llama2c --out "$TMP/dyt.bin"
[ ! -e "$TMP/dyt.bin" ] && [ ! -e "$TMP/dyt.tokenizer.bin" ]
expect "a refused export writes nothing" $? "files written"

# malformed llama2.c models and tokenizers: exit 1, one line naming the file and the field
L2C="$TMP/rt.bin" # legacy header: dim 0, hidden 4, layers 8, heads 12, kv heads 16, vocab 20, seq 24
patch_i32 "$L2C" "$TMP/l2c_dim0.bin" 0 0
patch_i32 "$L2C" "$TMP/l2c_kv.bin" 16 3
patch_i32 "$L2C" "$TMP/l2c_vocab.bin" 20 -300
head -c -1 "$L2C" >"$TMP/l2c_trunc.bin"
cat "$L2C" <(printf 'x') >"$TMP/l2c_trail.bin"
patch_i32 test/ref/l2c_tied.ak42.bin "$TMP/ak42_v2.bin" 4 2
patch_i32 "$TMP/rt.tokenizer.bin" "$TMP/tok_maxlen.tok" 0 -1
head -c 100 "$TMP/rt.tokenizer.bin" >"$TMP/tok_short.tok"
bad_case "llama2.c dim 0" 1 "l2c_dim0.bin: .*header field dim = 0" "$INFER" "$TMP/l2c_dim0.bin"
bad_case "llama2.c n_kv_heads 3" 1 "l2c_kv.bin: .*header field n_kv_heads = 3" "$INFER" "$TMP/l2c_kv.bin"
bad_case "llama2.c vocab_size not matching the size" 1 "l2c_vocab.bin: llama2.c legacy file is .* header implies" \
    "$INFER" "$TMP/l2c_vocab.bin"
bad_case "a llama2.c file truncated by one byte" 1 "l2c_trunc.bin: .*(truncated)" "$INFER" "$TMP/l2c_trunc.bin"
bad_case "a llama2.c file with a trailing byte" 1 "l2c_trail.bin: .*(trailing bytes)" "$INFER" "$TMP/l2c_trail.bin"
bad_case "an ak42 file of version 2" 1 "ak42_v2.bin: ak42 header field version = 2" "$INFER" "$TMP/ak42_v2.bin"
bad_case "a llama2.c model (vocab 32) without -z" 1 "l2c_untied.legacy.bin: vocab_size = 32.*-z TOKENIZER" \
    "$INFER" test/ref/l2c_untied.legacy.bin
bad_case "a tokenizer with max_token_length -1" 1 "tok_maxlen.tok: tokenizer header field max_token_length = -1" \
    "$INFER" "$TMP/rt.bin" -z "$TMP/tok_maxlen.tok"
bad_case "a tokenizer with fewer tokens than the model" 1 "tok_short.tok: truncated at token" \
    "$INFER" "$TMP/rt.bin" -z "$TMP/tok_short.tok"
bad_case "a missing tokenizer" 1 "nope.tok: cannot open" "$INFER" "$TMP/rt.bin" -z "$TMP/nope.tok"

SHARED=${SHARED:-../shared/data}
S260="$SHARED/stories260K.bin"
TOKB="$SHARED/tokenizer.bin"
if [ -f "$S260" ] && [ -f "$TOKB" ]; then
    st() { "$INFER" "$S260" -z "$TOKB" --prompt "Once upon a time" -n 200 --temperature 0 "$@"; }
    st >"$TMP/st1" 2>"$TMP/st1.err" && st >"$TMP/st2" 2>/dev/null &&
        [ "$(head -c 16 "$TMP/st1")" = "Once upon a time" ] && [ "$(wc -c <"$TMP/st1")" -gt 100 ] &&
        cmp -s "$TMP/st1" "$TMP/st2"
    expect "stories260K + tokenizer.bin: greedy 200 tokens, identical twice ($(grep -o '[0-9.]* tok/s)' "$TMP/st1.err" | tail -1)" \
        $? "$(tail -n 1 "$TMP/st1.err")"
    # tokenizer.bin is Llama 2's (32000 tokens); like run.c, infer_llama reads its first 512, which an
    # export must be given as a file of exactly the model's tokens (the full one is refused: robust_tests.sh)
    $PY -c "import struct,sys; b=open(sys.argv[1],'rb').read(); o=4
for _ in range(512): o+=8+struct.unpack_from('<i',b,o+4)[0]
open(sys.argv[2],'wb').write(b[:o])" "$TOKB" "$TMP/tok512.bin"
    "$EXPORT" "$S260" -z "$TMP/tok512.bin" --format llama2c --out "$TMP/s.bin" 2>/dev/null &&
        "$INFER" "$TMP/s.bin" -z "$TMP/s.tokenizer.bin" --prompt "Once upon a time" -n 200 --temperature 0 \
            >"$TMP/st3" 2>/dev/null && cmp -s "$TMP/st1" "$TMP/st3" && cmp -s "$TMP/tok512.bin" "$TMP/s.tokenizer.bin"
    expect "stories260K exported with its tokenizer (-z, 512 tokens) generates the same text" $? "differs"
    head -c 2000 "$DATA" >"$TMP/eval2k.txt"
    out=$("$INFER" "$S260" -z "$TOKB" --eval "$TMP/eval2k.txt" 2>/dev/null)
    echo "$out" | grep -q "eval2k.txt: [0-9]* tokens, loss [0-9.]*, perplexity"
    expect "stories260K --eval scores a file through the llama2.c tokenizer" $? "got: $out"
    bad_case "stories260K without -z" 1 "stories260K.bin: vocab_size = 512.*-z TOKENIZER" "$INFER" "$S260"
else
    say "skip - stories260K generation: no $S260 or $TOKB"
fi

# ---------------------------------------------------------------------------
section "BPE tokenizer: training, token cache, models that carry their vocabulary"
BP="$TMP/bpe" && mkdir -p "$BP" && cp "$DATA" "$BP/ts.txt"
BT="$BP/ts.txt"
BTRAIN_DEFAULTS=(--data "$BT" "${TINY[@]}" --vocab-size 512 --norm rmsnorm --seed 5)
btrain() { with_defaults BTRAIN_DEFAULTS "$@" && "$TRAIN" "${ARGS[@]}"; }
btrain --steps 10 --out "$BP/a" 2>"$BP/a.err"
rc=$?
[ $rc -eq 0 ] && [ -f "$BT.bpe512" ] && [ -f "$BT.bpe512.tok" ] &&
    grep -q "tokenizer $BT.bpe512: none yet, trained 512 tokens" "$BP/a.err" &&
    grep -q "token cache $BT.bpe512.tok: none yet, encoding; wrote" "$BP/a.err" &&
    grep -q "^vocab_size=512$" "$BP/a/result.txt" && grep -q "^final_val_bpb=" "$BP/a/result.txt" &&
    head -n 1 "$BP/a/log.csv" | grep -q ",val_bpb$"
expect "--vocab-size 512: trains the vocabulary beside the text (ts.txt.bpe512), caches the tokens (.tok), logs val_bpb" \
    $? "exit $rc: $(tail -n 2 "$BP/a.err" | tr '\n' ' ')"
btrain --steps 10 --out "$BP/b" 2>"$BP/b.err" &&
    grep -q "tokenizer $BT.bpe512: reused" "$BP/b.err" && grep -q "token cache $BT.bpe512.tok: reused" "$BP/b.err" &&
    cmp -s <(losses "$BP/a/log.csv") <(losses "$BP/b/log.csv") && cmp -s "$BP/a/model.bin" "$BP/b/model.bin"
expect "a second run reuses vocabulary and cache, and equals the first bit for bit" $? \
    "$(grep -h "tokenizer\|cache" "$BP/b.err" | tr '\n' ' ')"
btrain --steps 10 --stop-after 5 --out "$BP/c" 2>/dev/null && "$TRAIN" --data "$BT" --resume "$BP/c/checkpoint.bin" 2>/dev/null &&
    cmp -s <(losses "$BP/a/log.csv") <(losses "$BP/c/log.csv") && cmp -s "$BP/a/model.bin" "$BP/c/model.bin"
expect "BPE: 5 steps + resume (the checkpoint's own vocabulary) equals 10 steps bit for bit" $? "runs differ"
BM="$BP/a/model.bin"
"$INFER" "$BM" --prompt "ROMEO:" -n 20 --temperature 0 >"$BP/g1" 2>"$BP/g.err" &&
    "$INFER" "$BM" --prompt "ROMEO:" -n 20 --temperature 0 >"$BP/g2" 2>/dev/null &&
    [ "$(head -c 6 "$BP/g1")" = "ROMEO:" ] && [ "$(wc -c <"$BP/g1")" -gt 27 ] && cmp -s "$BP/g1" "$BP/g2" &&
    grep -q "generated 20 tokens" "$BP/g.err"
expect "a BPE model generates through infer_llama with its own vocabulary (20 tokens, $(($(wc -c <"$BP/g1") - 7)) bytes)" \
    $? "$(tail -n 1 "$BP/g.err")"
out=$("$INFER" "$BM" --eval "$TMP/eval.txt" 2>/dev/null)
echo "$out" | grep -q "eval.txt: [0-9]* tokens, loss [0-9.]*, perplexity [0-9.]*, [0-9.]* bits per byte"
expect "--eval of a BPE model: fewer tokens than bytes, bits per byte" $? "got: $out"
bad_case "-z with a model that carries its vocabulary" 1 "carries its own BPE tokenizer" \
    "$INFER" "$BM" -z "$TOKB" --prompt x
bad_case "exporting a BPE model to llama2.c" 1 "has a BPE vocabulary (512 tokens" \
    "$EXPORT" "$BM" --format llama2c --out "$BP/x.bin"
"$TRAIN" --data "$BT" "${TINY[@]}" --vocab-size 256 --steps 2 --out "$BP/bytes" 2>/dev/null &&
    [ ! -e "$BT.bpe256" ] && [ ! -e "$BT.bpe256.tok" ] && grep -q "^final_val_bpb=" "$BP/bytes/result.txt" &&
    [ "$(stat -c %s "$BP/bytes/model.bin")" -eq $(( $(stat -c %s "$TMP/a_rmsnorm/model.bin") )) ]
expect "--vocab-size 256 keeps the byte tokenizer (no vocabulary or cache file, a plain model file)" $? \
    "$(ls "$BP" | tr '\n' ' ')"

# the tokenize command: train, encode, decode round trip (NUL bytes and invalid UTF-8 too)
{ cat "$TMP/eval.txt"; printf '\0\377\376 \200abc\0'; } >"$BP/rt.txt"
"$TOKENIZE" train "$BT" --vocab-size 300 --out "$BP/v300" 2>/dev/null &&
    "$TOKENIZE" encode "$BP/rt.txt" --tokenizer "$BP/v300" 2>/dev/null &&
    "$TOKENIZE" decode "$BP/rt.txt.bpe300.tok" --tokenizer "$BP/v300" >"$BP/rt.out" 2>/dev/null &&
    cmp -s "$BP/rt.txt" "$BP/rt.out" &&
    [ $(( $(stat -c %s "$BP/rt.txt.bpe300.tok") - 56 )) -lt $(( 2 * $(stat -c %s "$BP/rt.txt") )) ]
expect "tokenize train / encode / decode round trip (with NUL and invalid UTF-8 bytes)" $? "differs"
"$TOKENIZE" train "$BT" --vocab-size 300 --out "$BP/v300b" 2>/dev/null && cmp -s "$BP/v300" "$BP/v300b"
expect "tokenize train is deterministic (the same file twice)" $? "differs"
"$TOKENIZE" bench "$TMP/eval.txt" --sizes 260,300 --repeat 1 >"$BP/bench.out" 2>&1 &&
    [ "$(grep -c '^ *[0-9]' "$BP/bench.out")" -eq 2 ]
expect "tokenize bench prints a row per size" $? "$(head -c 300 "$BP/bench.out")"

# stale caches are rebuilt: the text changed (vocabulary retrained, cache rebuilt), the tokenizer changed
cp "$BT" "$BP/s.txt" && btrain2() { "$TRAIN" --data "$BP/s.txt" "${TINY[@]}" --vocab-size 300 --steps 2 "$@"; }
btrain2 --out "$BP/s1" 2>/dev/null && echo "appended line" >>"$BP/s.txt" && btrain2 --out "$BP/s2" 2>"$BP/s2.err"
rc=$?
[ $rc -eq 0 ] && grep -q "tokenizer $BP/s.txt.bpe300: stale: the text changed, trained" "$BP/s2.err" &&
    grep -q "token cache $BP/s.txt.bpe300.tok: stale (the text changed), rebuilding; wrote" "$BP/s2.err"
expect "a changed text: the vocabulary is retrained and the stale token cache rebuilt" $? "exit $rc: $(head -c 300 "$BP/s2.err")"
"$TOKENIZE" encode "$BP/s.txt" --tokenizer "$BP/v300" --out "$BP/s.txt.bpe300.tok" 2>/dev/null &&
    btrain2 --out "$BP/s3" 2>"$BP/s3.err" &&
    grep -q "token cache $BP/s.txt.bpe300.tok: stale (the tokenizer changed), rebuilding; wrote" "$BP/s3.err"
expect "a cache made with another tokenizer is rebuilt, never used" $? "$(head -c 300 "$BP/s3.err")"

# crafted bad files: exit 1 and a one-line message naming the file and the field
V="$BP/v300" C="$BP/rt.txt.bpe300.tok"
patch_bytes() { # patch_bytes SRC DST OFFSET STRUCT-FORMAT VALUE
    $PY -c "import struct,sys; b=bytearray(open(sys.argv[1],'rb').read()); o=int(sys.argv[3]); v=struct.pack(sys.argv[4],int(sys.argv[5])); b[o:o+len(v)]=v; open(sys.argv[2],'wb').write(b)" "$@"
}
printf 'XXXX' | cat - <(tail -c +5 "$V") >"$BP/v_magic"
patch_i32 "$V" "$BP/v_version" 4 2
patch_i32 "$V" "$BP/v_vocab" 8 100
patch_i32 "$V" "$BP/v_rule" 12 7
head -c -1 "$V" >"$BP/v_trunc"
cat "$V" <(printf 'x') >"$BP/v_trail"
: >"$BP/v_empty"
patch_i32 "$V" "$BP/v_undef" $((32 + 8 * 3)) 300   # merge 3 (token 259) names token 300
patch_i32 "$V" "$BP/v_self" $((32 + 8 * 3 + 4)) 259 # merge 3 names itself
$PY -c "import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[40:48]=b[32:40]; open(sys.argv[2],'wb').write(b)" "$V" "$BP/v_dup"
tk() { "$TOKENIZE" encode "$TMP/eval.txt" --tokenizer "$1" --out "$BP/unused.tok"; }
bad_case "a tokenizer file with a bad magic" 1 "v_magic: bad magic" tk "$BP/v_magic"
bad_case "a tokenizer file of a future version" 1 "v_version: tokenizer field version = 2 is not supported" tk "$BP/v_version"
bad_case "a tokenizer vocab_size under 256" 1 "v_vocab: tokenizer field vocab_size = 100 is not in 256..65536" tk "$BP/v_vocab"
bad_case "a tokenizer with an unknown split rule" 1 "v_rule: tokenizer field split_rule = 7" tk "$BP/v_rule"
bad_case "a tokenizer file truncated by one byte" 1 "v_trunc: tokenizer file is .* (truncated)" tk "$BP/v_trunc"
bad_case "a tokenizer file with a trailing byte" 1 "v_trail: tokenizer file is .* (trailing bytes)" tk "$BP/v_trail"
bad_case "an empty tokenizer file" 1 "v_empty: 0 bytes is shorter than the 32-byte tokenizer header" tk "$BP/v_empty"
bad_case "a merge naming a token not yet defined" 1 "v_undef: merge 3 (token 259) refers to token 300, not defined before it" tk "$BP/v_undef"
bad_case "a merge naming itself" 1 "v_self: merge 3 (token 259) refers to token 259" tk "$BP/v_self"
bad_case "a repeated merge" 1 "v_dup: merge 1 (token 257) repeats the pair" tk "$BP/v_dup"
printf 'XXXX' | cat - <(tail -c +5 "$C") >"$BP/c_magic"
patch_i32 "$C" "$BP/c_version" 4 3
patch_i32 "$C" "$BP/c_vocab" 8 70000
head -c -1 "$C" >"$BP/c_trunc"
cat "$C" <(printf 'x') >"$BP/c_trail"
: >"$BP/c_empty"
patch_bytes "$C" "$BP/c_id" 58 "<H" 300     # token 1 = 300 >= vocab 300
patch_bytes "$C" "$BP/c_count" 16 "<Q" 9223372036854775808 # n_tokens 2^63: 2 bytes each overflows 64 bits
td() { "$TOKENIZE" decode "$1" --tokenizer "$V"; }
bad_case "a token cache with a bad magic" 1 "c_magic: bad magic" td "$BP/c_magic"
bad_case "a token cache of a future version" 1 "c_version: token cache field version = 3 is not supported" td "$BP/c_version"
bad_case "a token cache vocab_size over 65536" 1 "c_vocab: token cache field vocab_size = 70000" td "$BP/c_vocab"
bad_case "a token cache truncated by one byte" 1 "c_trunc: token cache is .* (truncated)" td "$BP/c_trunc"
bad_case "a token cache with a trailing byte" 1 "c_trail: token cache is .* (trailing bytes)" td "$BP/c_trail"
bad_case "an empty token cache" 1 "c_empty: 0 bytes is shorter than the 56-byte token cache header" td "$BP/c_empty"
bad_case "a token id >= vocab_size in a cache" 1 "c_id: token id 300 at index 1 is >= vocab_size 300" td "$BP/c_id"
bad_case "a token count whose size overflows" 1 "c_count: token cache field n_tokens = 9223372036854775808 is too large" td "$BP/c_count"
bad_case "a cache made with another tokenizer (decode)" 1 "was encoded with another tokenizer" \
    "$TOKENIZE" decode "$BT.bpe512.tok" --tokenizer "$V"
# the trainer refuses a corrupt cache (it is not stale: it cannot be trusted at all)
cp "$BT.bpe512.tok" "$BP/good.tok" && patch_bytes "$BP/good.tok" "$BT.bpe512.tok" 56 "<H" 65535
bad_case "a trainer's token cache with an id >= vocab" 1 "ts.txt.bpe512.tok: token id 65535 at index 0 is >= vocab_size 512 (delete the file to rebuild it)" \
    btrain --steps 2 --out "$BP/z"
# damaged tokens under a valid header (#13 case 3) are never trained on: the
# cache is rebuilt with a warning, and the run equals the clean one bit for bit
damaged_case() { # damaged_case NAME WARNING-PATTERN: $BT.bpe512.tok is already crafted
    btrain --steps 10 --out "$BP/d_$1" 2>"$BP/d_$1.err"
    local rc=$?
    [ $rc -eq 0 ] && grep -q "^train_llama: warning: .*$2.*rebuilding it; wrote" "$BP/d_$1.err" &&
        cmp -s "$BT.bpe512.tok" "$BP/good.tok" && cmp -s <(losses "$BP/a/log.csv") <(losses "$BP/d_$1/log.csv")
    expect "a token cache with $1: rebuilt with a warning, the run equals the clean one" $? \
        "exit $rc: $(grep -v '^step' "$BP/d_$1.err" | head -c 300)"
}
# cut to its first 1000 tokens, header count and checksum made to match
$PY - "$BP/good.tok" "$BT.bpe512.tok" <<'PYEOF'
import struct, sys
b = open(sys.argv[1], 'rb').read()
tok = b[56:56 + 2000]
h = 0xcbf29ce484222325
for x in tok:
    h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
open(sys.argv[2], 'wb').write(b[:16] + struct.pack('<Q', 1000) + b[24:48] + struct.pack('<Q', h) + tok)
PYEOF
damaged_case "1000 tokens and a matching header" "its tokens do not decode to the text"
# two ids swapped (each below vocab_size), the header untouched
$PY -c "import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[100:102],b[102:104]=b[102:104],b[100:102]; b[200:202]=b'\x05\x00'; open(sys.argv[2],'wb').write(b)" "$BP/good.tok" "$BT.bpe512.tok"
damaged_case "scrambled token ids" "the tokens are damaged (checksum"
# a cache written before the checksum (version 1) cannot be verified
$PY -c "import sys,struct; b=open(sys.argv[1],'rb').read(); open(sys.argv[2],'wb').write(b[:4]+struct.pack('<i',1)+b[8:48]+b[56:])" "$BP/good.tok" "$BT.bpe512.tok"
damaged_case "version 1 (no checksum)" "token cache version 1 (written before the checksum)"
cp "$BP/good.tok" "$BT.bpe512.tok"
# a model file's tokenizer field
patch_i32 "$BM" "$BP/m_tokbytes" 68 12
head -c -1 "$BM" >"$BP/m_trunc"
bad_case "a model whose tokenizer_bytes is not a tokenizer's size" 1 "m_tokbytes: header field tokenizer_bytes = 12" "$INFER" "$BP/m_tokbytes"
bad_case "a model whose embedded tokenizer is cut by one byte" 1 "m_trunc: file is .* (truncated)" "$INFER" "$BP/m_trunc"
msize=$(stat -c %s "$BM")
patch_i32 "$BM" "$BP/m_tokvocab" $((msize - 8 * 256 - 32 + 8)) 511 # the tokenizer's vocab_size field
bad_case "a model whose embedded tokenizer is damaged" 1 "m_tokvocab: embedded tokenizer: tokenizer file is" "$INFER" "$BP/m_tokvocab"
bad_case "--vocab-size over 65536" 2 "--vocab-size '70000'" "$TRAIN" --data "$BT" --vocab-size 70000
bad_case "tokenize without a command" 2 "a command is required" "$TOKENIZE"
bad_case "tokenize encode without --tokenizer" 2 "encode needs --tokenizer FILE" "$TOKENIZE" encode "$BT"
bad_case "a vocabulary the text cannot fill" 1 "pairs to merge: vocab size at most" "$TOKENIZE" train "$TMP/short.txt" --vocab-size 2000 --out "$BP/x"
if [ "$(id -u)" -ne 0 ]; then # root can write anywhere
    mkdir -p "$BP/ro" && cp "$TMP/eval.txt" "$BP/ro/t.txt" && chmod 555 "$BP/ro"
    "$TRAIN" --data "$BP/ro/t.txt" "${TINY[@]}" --vocab-size 260 --seq 8 --steps 2 --out "$BP/rorun" 2>"$BP/ro.err"
    [ $? -eq 0 ] && grep -q "warning: not saved" "$BP/ro.err" && grep -q "warning: not cached" "$BP/ro.err"
    expect "a read-only data folder: trains without writing vocabulary or cache (warnings)" $? "$(head -c 300 "$BP/ro.err")"
fi

# ---------------------------------------------------------------------------
section "recipes: the settings record, presets, parameter groups"
R="$TMP/rec"
mkdir -p "$R"
# config.txt is the checkpoint's record, and a run started from it is the same run
train --norm dyt --steps 4 --seed 3 --alpha-attn 0.2 --norm-decay --scalar-lr-mult 10 --out "$R/a" 2>/dev/null &&
    "$TRAIN" --print-config "$R/a/checkpoint.bin" >"$R/a.flags" 2>"$R/a.err" &&
    cmp -s "$R/a.flags" "$R/a/config.txt" && [ ! -s "$R/a.err" ] &&
    grep -qx -- "--alpha-attn 0.2" "$R/a.flags" && grep -qx -- "--scalar-lr-mult 10" "$R/a.flags" &&
    grep -qx -- "--norm-decay" "$R/a.flags" && grep -qx -- "--lr 0.003" "$R/a.flags" && grep -qx -- "--seed 3" "$R/a.flags" &&
    grep -qx -- "--data $DATA" "$R/a.flags" && ! grep -q -- "--val-data" "$R/a.flags"
expect "config.txt holds the resolved flags and the data (the checkpoint's data record), and --print-config prints them from the checkpoint" $? \
    "$(tr '\n' ' ' <"$R/a.flags"; head -c 200 "$R/a.err")"
xargs -a "$R/a/config.txt" "$TRAIN" --out "$R/b" 2>/dev/null &&
    cmp -s "$R/a/config.txt" "$R/b/config.txt" && cmp -s "$R/a/model.bin" "$R/b/model.bin" &&
    cmp -s <(losses "$R/a/log.csv") <(losses "$R/b/log.csv")
expect "a run started with the printed flags has the same settings and weights, bit for bit" $? \
    "$(diff "$R/a/config.txt" "$R/b/config.txt" 2>&1 | head -4 | tr '\n' ' ')"
"$TRAIN" --print-config "$R/a/model.bin" >"$R/m.flags" 2>"$R/m.err"
[ $? -eq 0 ] && grep -qx -- "--dim 32" "$R/m.flags" && grep -qx -- "--alpha-attn 0.2" "$R/m.flags" &&
    ! grep -q -- "--lr\|--seed\|--norm-decay\|--data" "$R/m.flags" && grep -q "model file: it records the model's settings only" "$R/m.err"
expect "--print-config of a model file: the model's flags only, and says so" $? "$(tr '\n' ' ' <"$R/m.flags")"
bad_case "--print-config of a file that is no model" 1 "bad magic" "$TRAIN" --print-config "$DATA"
bad_case "--resume with a --scalar-lr-mult other than the checkpoint's" 2 "\-\-scalar-lr-mult 2 differs from the checkpoint's 10" \
    train --resume "$R/a/checkpoint.bin" --scalar-lr-mult 2
# presets: each resolves to the flags its --help lists (for this --dim), explicit flags win
for p in dyt-official dyt-vision; do
    sets=$("$TRAIN" --preset $p --dim 32 --help | sed -n "/^  $p /{n;s/^ *sets: //;s/ (alpha0 for this --dim)//;p}")
    # shellcheck disable=SC2086
    train --preset $p --steps 2 --out "$R/p_$p" 2>/dev/null && train $sets --steps 2 --out "$R/f_$p" 2>/dev/null &&
        cmp -s "$R/p_$p/config.txt" "$R/f_$p/config.txt" && cmp -s "$R/p_$p/model.bin" "$R/f_$p/model.bin"
    expect "--preset $p is the run of the flags its --help lists ($sets)" $? "$(diff "$R/p_$p/config.txt" "$R/f_$p/config.txt" | tr '\n' ' ')"
done
grep -qx -- "--no-dyt-beta" "$R/p_dyt-official/config.txt" && grep -qx -- "--norm-decay" "$R/p_dyt-official/config.txt" &&
    grep -qx -- "--weight-decay 0.1" "$R/p_dyt-official/config.txt" && grep -qx -- "--alpha-ffn 1" "$R/p_dyt-official/config.txt" &&
    ! grep -q -- "--no-dyt-beta\|--norm-decay" "$R/p_dyt-vision/config.txt" && grep -qx -- "--alpha-attn 0.5" "$R/p_dyt-vision/config.txt"
expect "dyt-official: no beta, one decay group, wd 0.1, alpha0 1 at d 32; dyt-vision: beta, 1-D without decay, alpha0 0.5" $? \
    "$(tr '\n' ' ' <"$R/p_dyt-official/config.txt")"
h() { "$TRAIN" --preset dyt-official --dim "$1" --help | sed -n '/^  dyt-official /{n;p}'; }
h 4096 | grep -q -- "--alpha-attn 0.8 --alpha-ffn 0.2" && h 6000 | grep -q -- "--alpha-attn 0.6 --alpha-ffn 0.15" &&
    h 8192 | grep -q -- "--alpha-attn 0.2 --alpha-ffn 0.05" && h 2048 | grep -q -- "--alpha-attn 1 --alpha-ffn 0.5"
expect "dyt-official: alpha0 per site from the paper's table for the width (2048, 4096, 6000, 8192)" $? "$(h 4096)"
train --preset dyt-official --weight-decay 0.05 --alpha-ffn 0.3 --seed 4 --steps 2 --out "$R/o" 2>/dev/null &&
    grep -qx -- "--weight-decay 0.05" "$R/o/config.txt" && grep -qx -- "--alpha-ffn 0.3" "$R/o/config.txt" &&
    grep -qx -- "--alpha-attn 1" "$R/o/config.txt" && grep -qx -- "--norm-decay" "$R/o/config.txt" &&
    "$TRAIN" --preset dyt-official --weight-decay 0.05 --help | grep -q -- "--weight-decay X.*(default: 0.05)"
expect "explicit flags override a preset's (and --help shows the resolved defaults)" $? "$(tr '\n' ' ' <"$R/o/config.txt")"
train --preset dyt-official --norm rmsnorm --steps 2 --out "$R/or" 2>/dev/null &&
    grep -qx -- "--norm rmsnorm" "$R/or/config.txt" && grep -qx -- "--norm-decay" "$R/or/config.txt" &&
    grep -qx -- "--weight-decay 0.1" "$R/or/config.txt" && ! grep -q -- "--no-dyt-beta" "$R/or/config.txt"
expect "--preset dyt-official --norm rmsnorm: the authors' recipe for their RMSNorm baseline (the preset's --no-dyt-beta dropped)" $? \
    "$(tr '\n' ' ' <"$R/or/config.txt" 2>&1)"
bad_case "--no-dyt-beta typed for a kind without an optional beta" 2 "\-\-no-dyt-beta does nothing in this run (--norm rmsnorm): it applies to a norm kind with an optional beta" \
    train --norm rmsnorm --no-dyt-beta
# --mlp gelu: two matrices, hidden 4d, recorded; resumes bit for bit; --alpha-final
# follows --alpha-ffn unless given, and is the final alpha's init
train --norm dyt --mlp gelu --alpha-ffn 0.3 --steps 20 --seed 5 --out "$R/g" 2>/dev/null &&
    train --norm dyt --mlp gelu --alpha-ffn 0.3 --steps 20 --seed 5 --stop-after 10 --out "$R/g2" 2>/dev/null &&
    train --resume "$R/g2/checkpoint.bin" 2>/dev/null &&
    cmp -s <(losses "$R/g/log.csv") <(losses "$R/g2/log.csv") && cmp -s "$R/g/model.bin" "$R/g2/model.bin" &&
    grep -qx -- "--mlp gelu" "$R/g/config.txt" && grep -qx -- "--hidden 128" "$R/g/config.txt" &&
    grep -qx -- "--alpha-final 0.3" "$R/g/config.txt"
expect "--mlp gelu: hidden 4d, recorded, 10 + resume + 10 steps equal 20; --alpha-final follows --alpha-ffn" $? \
    "$(tr '\n' ' ' <"$R/g/config.txt")"
train --norm dyt --alpha-final 0.7 --steps 1 --out "$R/af" 2>/dev/null
col=$(head -1 "$R/af/log.csv" | tr ',' '\n' | grep -nx alpha_final | cut -d: -f1)
[ -n "$col" ] && [ "$(sed -n 2p "$R/af/log.csv" | cut -d, -f"$col")" = "0.700000" ] &&
    grep -qx -- "--alpha-final 0.7" "$R/af/config.txt" && grep -qx -- "--alpha-ffn 1" "$R/af/config.txt"
expect "--alpha-final 0.7: the final DyT starts at alpha 0.7, the FFN-input ones at --alpha-ffn's 1" $? \
    "$(sed -n 2p "$R/af/log.csv" | cut -c1-200)"
bad_case "exporting a GELU model to hf (export_check's table)" 1 "cannot export to hf: the model has a gelu MLP (the targets have SwiGLU only)" \
    "$EXPORT" test/ref/rms_gelu_untied.model.bin --format hf --out "$R/g.hf"
bad_case "an unknown --mlp, naming the known ones" 2 "\-\-mlp 'relu' unknown (known: swiglu, gelu)" train --mlp relu
bad_case "an unknown preset, naming the known ones" 2 "\-\-preset 'nope' unknown (known: default, dyt-official, dyt-vision)" train --preset nope
bad_case "--preset with --resume" 2 "\-\-preset with \-\-resume" train --preset dyt-vision --resume "$R/a/checkpoint.bin"
# a checkpoint written before the recipes (header version 2: the data record's size at
# byte 80, no MLP kind or final alpha0 after it; run block version 2: the parameter-group
# slots zero, and version 4's --beta2 and build name, version 5's matmul backend and precision)
# resumes as SwiGLU, final alpha0 = FFN's, the groups' defaults, OpenBLAS in fp32 (what main
# then had), and ends as the uninterrupted run
train --norm rmsnorm --steps 20 --seed 5 --matmul openblas --out "$R/v2straight" 2>/dev/null
train --norm rmsnorm --steps 20 --seed 5 --matmul openblas --stop-after 10 --out "$R/v2" 2>/dev/null
size=$(stat -c %s "$R/v2/checkpoint.bin")
# the run block: before the tokenizer (none: bytes) and the data record (header byte 80 its size)
rbo=$((size - 1024 - $($PY -c "import struct,sys; print(struct.unpack_from('<i', open(sys.argv[1],'rb').read(), 80)[0])" "$R/v2/checkpoint.bin")))
patch_bytes "$R/v2/checkpoint.bin" "$R/v2.bin" $rbo "<q" 2 && patch_bytes "$R/v2.bin" "$R/v2.bin" $((rbo + 8 * 17)) "<q" 0 &&
    $PY -c "import sys; b=bytearray(open(sys.argv[1],'rb').read()); o=int(sys.argv[2]); b[o:o+64]=bytes(64); open(sys.argv[1],'wb').write(b)" \
        "$R/v2.bin" $((rbo + 8 * 120)) &&
    patch_bytes "$R/v2.bin" "$R/v2/checkpoint.bin" $((rbo + 8 * 16)) "<q" 0 &&
    patch_bytes "$R/v2/checkpoint.bin" "$R/v2/checkpoint.bin" 4 "<i" 2 && patch_bytes "$R/v2/checkpoint.bin" "$R/v2/checkpoint.bin" 88 "<i" 0 &&
    train --resume "$R/v2/checkpoint.bin" 2>/dev/null &&
    cmp -s <(losses "$R/v2straight/log.csv") <(losses "$R/v2/log.csv") && cmp -s "$R/v2straight/model.bin" "$R/v2/model.bin"
expect "a version-2 checkpoint (header and run block, as main wrote them) resumes and ends as 20 steps straight" $? "differs"
patch_bytes "$R/v2.bin" "$R/v2bad.bin" $((rbo + 8 * 15)) "<q" 1
bad_case "a version-2 run block with a parameter-group slot set" 1 "v2bad.bin: run settings slot 15 is not zero" \
    train --resume "$R/v2bad.bin" --out "$R/v2bad"

# the four recipe experiments: each command resolves to its runs (the lead runs them full size)
for f in 1 2 3 4; do scripts/recipes.sh --finding $f --dry-run --out "$R/rx" >"$R/rx$f.txt" 2>&1 || echo "exit $?" >>"$R/rx$f.txt"; done
[ "$(grep -c -- '--preset dyt-official' "$R/rx1.txt")" = 6 ] && [ "$(grep -c -- '--preset default' "$R/rx1.txt")" = 6 ] &&
    [ "$(grep -c -- '--mlp gelu' "$R/rx2.txt")" = 6 ] &&
    [ "$(grep -c -- '--alpha-attn 2 --alpha-ffn 2 --alpha-final 2' "$R/rx3.txt")" = 18 ] &&
    [ "$(grep -c -- '--norm rmsnorm' "$R/rx3.txt")" = 9 ] && [ "$(grep -c -- '--norm derf' "$R/rx3.txt")" = 27 ] &&
    [ "$(grep -c -- '--alpha-attn 0.1 ' "$R/rx3.txt")" = 9 ] &&
    [ "$(grep -c -- '--scalar-lr-mult 100' "$R/rx4.txt")" = 3 ] && ! grep -q "^exit" "$R"/rx?.txt
expect "scripts/recipes.sh --finding 1..4 --dry-run: 12, 12, 72 (RMSNorm 9, DyT 36, Derf 27) and 9 runs with their flags" $? "$(grep -h "exit\|error" "$R"/rx?.txt | head -3)"

# ---------------------------------------------------------------------------
section "issue 27: matmul backends and precision"
# Each backend in each precision (test_core checks their numbers against the
# PyTorch references): a run is reproducible and resumes bit for bit, and says
# what it ran. bf16 is emulated on OpenBLAS (no bf16 product in its Debian
# build), and on oneDNN where the CPU lacks AVX512_BF16 (test_core forces that case).
M="$TMP/mm"
mkdir -p "$M"
MODES=("openblas fp32" "openblas bf16")
if "$TRAIN" --help | grep -q -- "--matmul NAME.*(default: onednn)"; then
    MODES+=("onednn fp32" "onednn bf16")
else
    skip "onednn fp32, onednn bf16: reproducible, resume, result.txt" \
        "this build has no oneDNN (scripts/setup.sh installs libdnnl-dev; then make clean all)"
fi
grep -qw avx512_bf16 /proc/cpuinfo && cpu_bf16=1 || cpu_bf16=0
for mode in "${MODES[@]}"; do
    read -r mm prec <<<"$mode"
    d="$M/${mm}_$prec" flags=(--norm dyt --steps 12 --seed 7 --matmul "$mm" --precision "$prec")
    train "${flags[@]}" --out "$d.a" 2>"$d.a.err" && train "${flags[@]}" --out "$d.b" 2>/dev/null &&
        cmp -s <(losses "$d.a/log.csv") <(losses "$d.b/log.csv") && cmp -s "$d.a/model.bin" "$d.b/model.bin"
    expect "$mm $prec: same seed, threads, backend and precision: same losses and weights to the last bit" $? \
        "runs differ"
    train "${flags[@]}" --stop-after 6 --out "$d.c" 2>/dev/null && cp -r "$d.c" "$d.half" &&
        train --resume "$d.c/checkpoint.bin" 2>"$d.c.err" &&
        cmp -s <(losses "$d.a/log.csv") <(losses "$d.c/log.csv") && cmp -s "$d.a/model.bin" "$d.c/model.bin" &&
        ! grep -q "note: resuming with" "$d.c.err"
    expect "$mm $prec: 6 steps + resume + 6 steps equals 12 steps bit for bit" $? \
        "$(diff <(losses "$d.a/log.csv") <(losses "$d.c/log.csv") | head -3 | tr '\n' ' ')"
    # emulated: bf16 on OpenBLAS, or on a CPU without AVX512_BF16; its one note says so and how fast
    emu=0 note="" desc="$mm $prec"
    if [ "$prec" = bf16 ] && { [ "$mm" = openblas ] || [ $cpu_bf16 = 0 ]; }; then
        emu=1 desc="$mm bf16 (emulated)" note="note: bf16 is emulated on this backend"
        [ "$mm" = onednn ] && note="note: this CPU has no bf16 dot product (AVX512_BF16): bf16 is emulated"
    fi
    grep -qx "matmul=$mm" "$d.a/result.txt" && grep -qx "precision=$prec" "$d.a/result.txt" &&
        grep -qx "matmul_emulated=$emu" "$d.a/result.txt" && grep -q "threads, matmul $desc[ ,]" "$d.a.err" &&
        [ "$(grep -c "note: .*emulated" "$d.a.err")" = $((emu)) ] &&
        { [ $emu = 0 ] || grep -q "^train_llama: $note (operands rounded to bf16, then fp32 products: bf16's numbers at fp32's speed" "$d.a.err"; }
    expect "$mm $prec: result.txt has matmul=$mm, precision=$prec, matmul_emulated=$emu; the start line says '$desc'${note:+, and one line: $note}" $? \
        "$(grep "^matmul\|^precision" "$d.a/result.txt" | tr '\n' ' '); $(grep "matmul\|note" "$d.a.err" | head -3)"
done
# bf16 changes the numbers a little, and both backends compute the same bf16
# and fp32 products (in another order): final validation losses compared
vloss() { sed -n 's/^final_val_loss=//p' "$M/$1.a/result.txt"; }
rel() { awk -v a="$1" -v b="$2" 'BEGIN { d = (a - b) / b; print (d < 0 ? -d : d) }'; }
ob32=$(vloss openblas_fp32) ob16=$(vloss openblas_bf16)
d16=$(rel "$ob16" "$ob32")
awk -v d="$d16" 'BEGIN { exit !(d > 0 && d < 1e-2) }' && ! cmp -s "$M/openblas_fp32.a/model.bin" "$M/openblas_bf16.a/model.bin"
expect "openblas: bf16's weights differ from fp32's, its validation loss within 1% (${d16} relative)" $? \
    "fp32 $ob32, bf16 $ob16"
if [ ${#MODES[@]} = 4 ]; then
    dn32=$(rel "$(vloss onednn_fp32)" "$ob32") dn16=$(rel "$(vloss onednn_bf16)" "$ob16")
    awk -v a="$dn32" -v b="$dn16" 'BEGIN { exit !(a < 1e-4 && b < 1e-3) }'
    expect "onednn against openblas after 12 steps: validation loss within 1e-4 in fp32 ($dn32), 1e-3 in bf16 ($dn16)" $? \
        "fp32 $(vloss onednn_fp32) vs $ob32, bf16 $(vloss onednn_bf16) vs $ob16"
fi
# a resume with another backend and precision: one line says the bits will differ, and the run goes on
read -r mm prec <<<"${MODES[-2]}" # onednn fp32 (openblas fp32 without oneDNN)
h="$M/${mm}_$prec.half"
train --resume "$h/checkpoint.bin" --matmul openblas --precision bf16 2>"$M/switch.err"
rc=$?
[ $rc -eq 0 ] && [ "$(grep -c "note: resuming with" "$M/switch.err")" = 1 ] &&
    grep -qxF "train_llama: note: resuming with --matmul openblas --precision bf16, the checkpoint was written with $mm $prec: losses will not match an uninterrupted run bit for bit" "$M/switch.err" &&
    grep -qx "status=finished" "$h/result.txt" && grep -qx "matmul=openblas" "$h/result.txt" &&
    grep -qx "precision=bf16" "$h/result.txt" && [ "$(tail -n 1 "$h/log.csv" | cut -d, -f1)" = 12 ]
expect "a $mm $prec checkpoint resumed with --matmul openblas --precision bf16: one line says the bits will differ, the run ends at step 12 in openblas bf16" $? \
    "exit $rc: $(grep -v "^step" "$M/switch.err" | head -3 | tr '\n' ' ')"
bad_case "--matmul bogus, naming the backends" 2 "\-\-matmul 'bogus': expected one of openblas, onednn" train --matmul bogus
bad_case "--precision fp16, naming the precisions" 2 "\-\-precision 'fp16': expected one of fp32, bf16" train --precision fp16

# a version-4 run block (as main wrote it before --matmul and --precision: slots 18 and 19
# zero) resumes as openblas fp32, what that main ran, and ends as 12 openblas fp32 steps
# straight; such a block with slot 18 set, or a version-5 block with an unknown code, is refused
cp -r "$M/openblas_fp32.half" "$M/v4" && ck="$M/v4/checkpoint.bin"
rbo=$(($(stat -c %s "$ck") - 1024 - $($PY -c "import struct,sys; print(struct.unpack_from('<i', open(sys.argv[1],'rb').read(), 80)[0])" "$ck")))
patch_bytes "$ck" "$M/v5bad.bin" $((rbo + 8 * 18)) "<q" 2 && patch_bytes "$ck" "$ck" $rbo "<q" 4 &&
    patch_bytes "$ck" "$M/v4bad.bin" $((rbo + 8 * 18)) "<q" 1 &&
    train --resume "$ck" 2>"$M/v4.err" && ! grep -q "note: resuming" "$M/v4.err" &&
    grep -qx "matmul=openblas" "$M/v4/result.txt" && grep -qx "precision=fp32" "$M/v4/result.txt" &&
    cmp -s <(losses "$M/openblas_fp32.a/log.csv") <(losses "$M/v4/log.csv") && cmp -s "$M/openblas_fp32.a/model.bin" "$M/v4/model.bin"
expect "a version-4 run block (as main wrote it) resumes as openblas fp32 and ends as 12 steps straight" $? \
    "$(grep -v "^step" "$M/v4.err" | head -3 | tr '\n' ' ')"
bad_case "a version-4 run block with slot 18 (--matmul) set" 1 "v4bad.bin: run settings slot 18 is not zero" \
    train --resume "$M/v4bad.bin" --out "$M/v4bad"
bad_case "a version-5 run block with a --matmul code this build does not know" 1 "v5bad.bin: run settings: --matmul code 2 unknown" \
    train --resume "$M/v5bad.bin" --out "$M/v5bad"

# A build without oneDNN (make NO_DNNL=1; only its trainer, in build-nodnnl/): --matmul
# onednn is refused in one line, the default is openblas, whose run is the normal
# build's --matmul openblas bit for bit. Built and checked once, in the plain suite.
if [ -n "${BIN:-}" ]; then
    skip "a build without oneDNN (make NO_DNNL=1)" "checked by the plain suite (make test), not again for BIN=$BIN"
else
    ND=build-nodnnl/train_llama
    ndtrain() { with_defaults TRAIN_DEFAULTS "$@" && "$ND" "${ARGS[@]}"; }
    make --no-print-directory -j2 NO_DNNL=1 $ND >"$M/nodnnl.log" 2>&1 && ! ldd $ND | grep -q libdnnl
    expect "make NO_DNNL=1 $ND: a trainer without oneDNN" $? "$(tail -n 5 "$M/nodnnl.log" | tr '\n' ' ')"
    ndtrain --norm dyt --steps 12 --seed 7 --matmul onednn --out "$M/nd_refused" 2>"$M/nd_refused.err"
    rc=$?
    [ $rc -ne 0 ] && [ "$(wc -l <"$M/nd_refused.err")" = 1 ] &&
        grep -q "^train_llama: --matmul onednn: this build has no oneDNN: run scripts/setup.sh" "$M/nd_refused.err"
    expect "without oneDNN: --matmul onednn is refused in one line (exit $rc)" $? "$(head -c 300 "$M/nd_refused.err")"
    ndtrain --norm dyt --steps 12 --seed 7 --out "$M/nd" 2>/dev/null && grep -qx "matmul=openblas" "$M/nd/result.txt" &&
        "$ND" --help | grep -q -- "--matmul NAME.*(default: openblas)" &&
        cmp -s <(losses "$M/openblas_fp32.a/log.csv") <(losses "$M/nd/log.csv") && cmp -s "$M/openblas_fp32.a/model.bin" "$M/nd/model.bin"
    expect "without oneDNN: the default is openblas (--help says so), and its run equals the normal build's --matmul openblas bit for bit" $? \
        "$(grep "^matmul" "$M/nd/result.txt" 2>&1)"
fi

section "your own data: folders, lists, --val-data, resume from the checkpoint alone, large-text paths"
OD="$TMP/own" && mkdir -p "$OD/c"
head -c 60000 "$DATA" >"$OD/c/a.txt" && tail -c 40000 "$DATA" >"$OD/c/b.txt" && tail -c 20000 "$DATA" | head -c 12000 >"$OD/val.txt"
{ cat "$OD/c/a.txt"; printf '\n\036\n'; cat "$OD/c/b.txt"; } >"$OD/joined.txt"
OTRAIN_DEFAULTS=("${TINY[@]}" --seed 9 --steps 10)
otrain() { with_defaults OTRAIN_DEFAULTS "$@" && "$TRAIN" "${ARGS[@]}"; }
otrain --data "$OD/c" --out "$OD/folder" 2>/dev/null && otrain --data "$OD/joined.txt" --out "$OD/joined" 2>/dev/null &&
    otrain --data "$OD/c/a.txt,$OD/c/b.txt" --out "$OD/list" 2>/dev/null &&
    cmp -s <(losses "$OD/folder/log.csv") <(losses "$OD/joined/log.csv") && cmp -s "$OD/folder/model.bin" "$OD/joined/model.bin" &&
    cmp -s <(losses "$OD/folder/log.csv") <(losses "$OD/list/log.csv")
expect "--data FOLDER and --data A,B train on the files joined by \\n 0x1E \\n (bit for bit the joined file)" $? "runs differ"
otrain --data "$OD/c" --val-data "$OD/val.txt" --stop-after 5 --out "$OD/v" 2>"$OD/v.err"
# unfinished copies for the refusals below (a finished run's resume only says it is finished)
cp -r "$OD/v" "$OD/v5" && otrain --data "$OD/c" --stop-after 5 --out "$OD/f5" 2>/dev/null
hint=$(grep -o "resume with --resume .*" "$OD/v.err" | sed 's/^resume with //')
otrain --data "$OD/c" --val-data "$OD/val.txt" --out "$OD/vfull" 2>/dev/null &&
    [ -n "$hint" ] && (cd "$PWD" && "$TRAIN" $hint 2>"$OD/v2.err") &&
    cmp -s <(losses "$OD/vfull/log.csv") <(losses "$OD/v/log.csv") && cmp -s "$OD/vfull/model.bin" "$OD/v/model.bin" &&
    ! cmp -s <(cut -d, -f4 "$OD/vfull/log.csv") <(cut -d, -f4 "$OD/folder/log.csv")
expect "--val-data: validates on its own file; the stop hint '$hint' resumes with no --data, bit for bit" $? \
    "$(tail -n 1 "$OD/v2.err")"
"$TRAIN" --print-config "$OD/v/checkpoint.bin" >"$OD/v.flags" 2>/dev/null &&
    grep -qx -- "--data $OD/c" "$OD/v.flags" && grep -qx -- "--val-data $OD/val.txt" "$OD/v.flags"
expect "--print-config prints the data specs the checkpoint's data record holds (--data, --val-data)" $? \
    "$(grep -- "-data" "$OD/v.flags" | tr '\n' ' ')"
cp "$OD/c/b.txt" "$OD/b.keep" && echo "one more line" >>"$OD/c/b.txt"
bad_case "a resume whose folder has a changed file (named)" 1 "c/b.txt: changed since the checkpoint (size differs)" \
    "$TRAIN" --resume "$OD/v5/checkpoint.bin"
cp "$OD/b.keep" "$OD/c/b.txt"
bad_case "a resume with another --val-data" 1 "c/a.txt: not the checkpoint's file 1, .*val.txt (size differs)" \
    "$TRAIN" --resume "$OD/v5/checkpoint.bin" --val-data "$OD/c/a.txt"
bad_case "a resume that drops --val-data's file" 1 "the checkpoint was validated on" \
    "$TRAIN" --resume "$OD/f5/checkpoint.bin" --val-data "$OD/val.txt"
# a checkpoint written by the train_llama before the data record (test/ref/old_run: 2 of 4 steps)
cp -r test/ref/old_run "$OD/old"
bad_case "an old checkpoint resumed without --data" 2 "does not record its data (written by an older train_llama): give --data" \
    "$TRAIN" --resume "$OD/old/checkpoint.bin"
"$TRAIN" --resume "$OD/old/checkpoint.bin" --data test/ref/old_run.txt --threads 1 2>"$OD/old.err" &&
    cmp -s <(losses "$OD/old/log.csv") <(losses test/ref/old_run/full_log.csv)
expect "an old-format checkpoint resumes with --data and finishes as the old build's uninterrupted run" $? \
    "$(tail -n 1 "$OD/old.err")"
mkdir -p "$OD/empty" && touch "$OD/empty/.hidden"
bad_case "an empty folder" 1 "empty: the folder holds no files to train on" otrain --data "$OD/empty" --out "$OD/e"
printf 'abcde' >"$OD/short5.txt"
bad_case "--val-data shorter than one window" 1 "short5.txt: 5 tokens is too short: --seq 32 needs at least 33" \
    otrain --data "$OD/c" --val-data "$OD/short5.txt" --out "$OD/e"
mkfifo "$OD/fifo"
bad_case "a FIFO as --data (no hang)" 1 "fifo: not a regular file" timeout 10 "$TRAIN" --data "$OD/fifo" "${TINY[@]}" --out "$OD/e"
# large texts, scaled down by the test variables: pairs counted on a sample, the
# text encoded in chunks (the same tokens as in one piece), progress lines
cp "$DATA" "$OD/big.txt"
LLAMA_TEST_BPE_SAMPLE_BYTES=50000 LLAMA_TEST_ENCODE_CHUNK_BYTES=20000 LLAMA_TEST_PROGRESS_SECONDS=0 \
    otrain --data "$OD/big.txt" --vocab-size 300 --steps 2 --out "$OD/big" 2>"$OD/big.err"
rc=$?
sample=$(grep -o "trained 300 tokens on a [0-9]*-byte sample" "$OD/big.err" | grep -o "[0-9]*-byte" | tr -d -- -byte)
"$TOKENIZE" encode "$OD/big.txt" --tokenizer "$OD/big.txt.bpe300" --out "$OD/whole.tok" 2>/dev/null
[ $rc -eq 0 ] && [ -n "$sample" ] && [ "$sample" -le 50000 ] && [ "$sample" -gt 40000 ] &&
    grep -q "^train_llama: training the vocabulary: [0-9]* of 44 merges" "$OD/big.err" &&
    grep -q "^train_llama: encoding the text: .* MB" "$OD/big.err" && cmp -s "$OD/big.txt.bpe300.tok" "$OD/whole.tok"
expect "a large text (test scale): BPE on a ${sample:-?}-byte sample of 64 pieces, chunked encoding equals whole, progress lines" \
    $? "exit $rc: $(grep -v '^step' "$OD/big.err" | head -c 300)"

# ---------------------------------------------------------------------------
section "exports: GGUF for llama.cpp, a Hugging Face folder (docs/export.md)"
E="$TMP/export" && mkdir -p "$E"
REF=build/export_ref
# test/test_export.py's ok/FAIL lines into the log; a crash is a failure too
pycheck() {
    $PY test/test_export.py "$@" >"$E/py.out" 2>&1
    local rc=$?
    tee -a "$LOG" <"$E/py.out"
    [ $rc -eq 0 ] || grep -q '^FAIL' "$E/py.out" || fail "test_export.py $1 $2" "exit $rc: $(tail -n 2 "$E/py.out" | tr '\n' ' ')"
}
# two small trained models: the learning section's (bytes, 2 of 4 key/value heads,
# untied head, 300 steps: its greedy text is not one repeated token), and BPE-512
# with 1 of 4 (multi-query) and the head tied to the embedding (60 steps at a high rate)
mkdir -p "$E/byte" && cp "$TMP/learn/model.bin" "$E/byte/model.bin" &&
    "$TRAIN" --data "$BT" --vocab-size 512 --dim 32 --layers 2 --heads 4 --kv-heads 1 --tie-embeddings --seq 64 \
        --batch 8 --steps 60 --warmup 5 --lr 1e-2 --eval-every 60 --eval-batches 1 --seed 3 --out "$E/bpe" 2>/dev/null
expect "export models trained (bytes GQA untied, BPE-512 MQA tied)" $? "training failed"
"$EXPORT" --help | grep -q -- "--format" && "$EXPORT" --help | grep -q "llama2c, gguf (llama.cpp), hf (Hugging Face folder) or model"
expect "export_llama --help lists --format llama2c, gguf, hf, model" $? "$("$EXPORT" --help 2>&1 | head -3)"
bad_case "an unknown --format" 2 "format xml: must be llama2c, gguf, hf or model" "$EXPORT" "$E/byte/model.bin" --format xml --out "$E/x"
bad_case "an export without --out" 2 "out is required" "$EXPORT" "$E/byte/model.bin" --format gguf
bad_case "the removed infer_llama --export-llama2c (export_llama --format llama2c now)" 2 "export-llama2c" \
    "$INFER" "$E/byte/model.bin" --export-llama2c "$E/x.bin"

# the text for the token-id checks: where llama.cpp's GPT-2 pre-tokenizer cuts words as ours
# does; and one where it cuts finer (docs/export.md): a blank line before a word, a
# contraction's letters continuing into a word ("know'st")
printf "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun;  arise, fair sun, 1599 times.\n" >"$E/same.txt"
printf "KING:\n\nWhat know'st thou?\n" >"$E/differs.txt"
cases="["
for m in byte bpe; do
    M="$E/$m/model.bin"
    "$EXPORT" "$M" --format gguf --out "$E/$m.gguf" 2>/dev/null &&
        "$EXPORT" "$M" --format gguf --out "$E/$m.2.gguf" 2>/dev/null && cmp -s "$E/$m.gguf" "$E/$m.2.gguf" &&
        "$EXPORT" "$M" --format hf --out "$E/$m.hf" 2>/dev/null &&
        "$EXPORT" "$M" --format hf --out "$E/$m.2.hf" 2>/dev/null && diff -r -q "$E/$m.hf" "$E/$m.2.hf" >/dev/null &&
        [ "$(ls "$E/$m.hf" | tr '\n' ' ')" = "config.json model.safetensors tokenizer.json tokenizer_config.json " ] &&
        [ "$(head -c 4 "$E/$m.gguf")" = GGUF ] && [ -z "$(ls -d "$E"/*.tmp 2>/dev/null)" ]
    expect "$m: GGUF and Hugging Face exports, twice: the same bytes; no temporaries left" $? "$(ls "$E" | tr '\n' ' ')"
    # 12 tokens of the text, then our logits at each position and our greedy 32 tokens
    toks=$("$REF" "$M" --encode "$E/same.txt" | cut -d' ' -f1-12)
    "$REF" "$M" 32 $toks >"$E/$m.ref.json" && "$REF" "$M" 0 $toks >"$E/$m.ref0.json"
    expect "$m: our logits and greedy tokens for [$toks]" $? "export_ref failed"
    # the Hugging Face folder: tensors, config and tokenizer read back in Python, and
    # a float64 forward pass in Hugging Face's conventions
    pycheck "$M" "$E/$m.hf" "$E/$m.ref0.json" 1e-4 $toks
    cases="$cases$([ "$m" = byte ] || echo ,){\"gguf\": \"$E/$m.gguf\", \"ref\": \"$E/$m.ref.json\", \"text\": \"$E/same.txt\", \"tokens\": [${toks// /,}]}"
done
"$EXPORT" "$E/bpe/model.bin" --format hf --f16 --out "$E/bpe16.hf" 2>/dev/null &&
    pycheck "$E/bpe/model.bin" "$E/bpe16.hf" "$E/bpe.ref0.json" 5e-2 --f16 $toks
"$EXPORT" "$E/bpe/model.bin" --format gguf --f16 --out "$E/bpe16.gguf" 2>/dev/null
cases="$cases, {\"gguf\": \"$E/bpe16.gguf\", \"ref\": \"$E/bpe.ref.json\", \"text\": \"$E/differs.txt\", \"tokens\": [${toks// /,}]}]"
echo "$cases" >"$E/cases.json"

# llama.cpp itself (node-llama-cpp's prebuilt CPU build, installed by scripts/setup_node.sh)
NLC=build/node
if [ -f "$NLC/node_modules/node-llama-cpp/package.json" ] && command -v node >/dev/null; then
    node test/test_gguf.mjs "$NLC" "$E/cases.json" >"$E/llama.out" 2>"$E/llama.err"
    rc=$?
    [ $rc -eq 0 ] && [ "$(wc -l <"$E/llama.out")" -eq 3 ]
    expect "llama.cpp (node-llama-cpp 3.21.1) loads the three GGUF files" $? "exit $rc: $(tail -n 3 "$E/llama.err" | tr '\n' ' ')"
    field() { sed -n "$1p" "$E/llama.out" | $PY -c "import json,sys; print(json.load(sys.stdin)['$2'])" 2>/dev/null; }
    i=1
    for m in byte bpe; do
        worst=$(field $i worst) compared=$(field $i compared)
        $PY -c "import sys; sys.exit(not (float('$worst') <= 1e-4))" 2>/dev/null && [ "$compared" = "$([ $m = byte ] && echo 256 || echo 512)" ]
        expect "$m: llama.cpp's next-token log-probabilities equal ours over all $compared tokens (worst $worst <= 1e-4)" $? "worst '$worst', compared '$compared'"
        want=$($PY -c "import json; print(json.load(open('$E/$m.ref.json'))['greedy'])")
        [ "$(field $i greedy)" = "$want" ]
        rc=$? # before the name's $(...), which would set $? itself
        expect "$m: llama.cpp's greedy 32 tokens from the same ids are ours ($(echo "$want" | cut -c1-40)...)" $rc "llama.cpp $(field $i greedy)"
        [ "$(field $i text_ids)" = "$("$REF" "$E/$m/model.bin" --encode "$E/same.txt")" ] && [ "$(field $i detokenized)" = True ]
        expect "$m: llama.cpp tokenizes the text to our ids and detokenizes it back" $? "llama.cpp: $(field $i text_ids)"
        i=$((i + 1))
    done
    worst=$(field 3 worst)
    $PY -c "import sys; sys.exit(not (float('$worst') <= 5e-2))" 2>/dev/null
    expect "bpe, F16 GGUF: log-probabilities within 5e-2 of ours (worst $worst)" $? "worst '$worst'"
    # where the pre-tokenizers differ, the ids differ and the text survives (docs/export.md)
    ours=$("$REF" "$E/bpe/model.bin" --encode "$E/differs.txt")
    theirs=$(field 3 text_ids)
    [ "$ours" != "$theirs" ] && [ "$(field 3 detokenized)" = True ] &&
        [ "$(echo "$theirs" | wc -w)" -gt "$(echo "$ours" | wc -w)" ]
    expect "a blank line and \"know'st\": llama.cpp cuts finer (more tokens), the text round-trips" $? "ours $ours, llama.cpp $theirs"
elif [ "${REQUIRE_LLAMA_CPP:-0}" = 1 ]; then
    fail "llama.cpp checks" "node-llama-cpp is not installed under $NLC (scripts/setup_node.sh)"
else
    say "skip - llama.cpp checks of the GGUF exports: node-llama-cpp is not installed (scripts/setup_node.sh needs node and npm's registry)"
fi

# refused models: one line, exit 1, nothing written
for f in gguf hf; do
    bad_case "exporting a DyT model to $f" 1 "cannot export to $f: the model has a dyt norm" \
        "$EXPORT" "$TMP/a_dyt/model.bin" --format $f --out "$E/dyt.$f"
    [ -z "$(ls -d "$E"/dyt.* 2>/dev/null)" ]
    expect "a refused $f export writes nothing" $? "$(ls "$E" | tr '\n' ' ')"
done
"$TRAIN" --data "$DATA" "${TINY[@]}" --norm rmsnorm --residual-gate --emb-scale on --steps 1 --out "$E/gate" 2>/dev/null
bad_case "exporting an RMSNorm model with an embedding scale and residual gates" 1 \
    "cannot export to hf: the model has an embedding scale" "$EXPORT" "$E/gate/model.bin" --format hf --out "$E/gate.hf"
bad_case "-z for a GGUF export" 2 "llama2.c tokenizer cannot be written" \
    "$EXPORT" "$E/byte/model.bin" --format gguf -z "$E/same.txt" --out "$E/z.gguf"

# a write error (a file-size limit, as a full disk): exit 1, the file or folder
# under the output name as it was, no temporary left
cp "$E/byte.gguf" "$E/keep.gguf" && cp -r "$E/byte.hf" "$E/keep.hf"
(ulimit -f 64 && exec "$EXPORT" "$E/bpe/model.bin" --format gguf --out "$E/keep.gguf") 2>"$E/full.err"
rc=$?
[ $rc -eq 1 ] && grep -q "keep.gguf: write failed: File too large" "$E/full.err" && cmp -s "$E/keep.gguf" "$E/byte.gguf" &&
    [ ! -e "$E/keep.gguf.tmp" ]
expect "GGUF: a write error leaves the old file as it was and no temporary (exit $rc)" $? "$(head -n 1 "$E/full.err")"
(ulimit -f 64 && exec "$EXPORT" "$E/bpe/model.bin" --format hf --out "$E/keep.hf") 2>"$E/full.err"
rc=$?
[ $rc -eq 1 ] && grep -q "model.safetensors: write failed: File too large" "$E/full.err" &&
    diff -r -q "$E/keep.hf" "$E/byte.hf" >/dev/null && [ ! -e "$E/keep.hf.tmp" ] && [ ! -e "$E/keep.hf.old" ]
expect "Hugging Face: a write error leaves the old folder as it was and no temporary folder (exit $rc)" $? "$(head -n 1 "$E/full.err")"
(ulimit -f 64 && exec "$EXPORT" "$E/bpe/model.bin" --format hf --out "$E/new.hf") 2>/dev/null
[ ! -e "$E/new.hf" ] && [ ! -e "$E/new.hf.tmp" ]
expect "Hugging Face: a failed export into a new folder leaves nothing" $? "$(ls "$E" | tr '\n' ' ')"
"$EXPORT" "$E/bpe/model.bin" --format hf --out "$E/keep.hf" 2>/dev/null && diff -r -q "$E/keep.hf" "$E/bpe.hf" >/dev/null &&
    [ ! -e "$E/keep.hf.old" ]
expect "Hugging Face: exporting over an existing folder replaces it" $? "$(ls "$E" | tr '\n' ' ')"
mkdir -p "$E/other" && : >"$E/other/notes.txt"
bad_case "exporting over a folder that is not an export" 1 "other: exists and holds notes.txt" \
    "$EXPORT" "$E/bpe/model.bin" --format hf --out "$E/other"

# ---------------------------------------------------------------------------
section "issue 27: bf16 model files"
# header field dtype (byte 92): 0 = fp32 (every file before it), 1 = bf16, every tensor rounded to
# nearest even; the trainer writes one with --save-dtype bf16, export_llama --format model converts
B16="$TMP/bf16" && mkdir -p "$B16"
train --steps 12 --seed 9 --save-dtype bf16 --out "$B16/run" 2>/dev/null &&
    "$EXPORT" "$B16/run/checkpoint.bin" --format model --dtype bf16 --out "$B16/conv.bin" 2>/dev/null &&
    "$EXPORT" "$B16/run/checkpoint.bin" --format model --out "$B16/f32.bin" 2>/dev/null &&
    cmp -s "$B16/run/model.bin" "$B16/conv.bin"
expect "--save-dtype bf16 writes what export_llama --format model --dtype bf16 makes of the same weights (cmp)" $?     "$(ls -l "$B16" "$B16/run" | tr '\n' ' ')"
# the layout: version 3, dtype 1 at byte 92, 2 bytes a weight; fp32 files are the format before it
$PY - "$B16/run/model.bin" "$B16/f32.bin" "$TMP/learn/model.bin" <<'PYEOF'
import struct, sys
def head(p):
    b = open(p, "rb").read()
    return len(b), struct.unpack_from("<3i", b, 0)[1:], struct.unpack_from("<i", b, 92)[0], b[96:256]
(n16, vk16, dt16, r16), (n32, vk32, dt32, r32), (_, vk, dt, r) = map(head, sys.argv[1:4])
ok = (vk16 == vk32 == vk == (3, 1) and (dt16, dt32, dt) == (1, 0, 0) and r16 == r32 == r == bytes(160)
      and n32 - 256 == 2 * (n16 - 256))
sys.exit(0 if ok else 1)
PYEOF
expect "bf16 model.bin: version 3, header field dtype 1, half the weights' bytes; fp32 files keep dtype 0 (the bytes before it)" $? \
    "headers or sizes differ from docs/format.md"
# exact both ways: bf16 -> fp32 widens (every bf16 value is a float32), -> bf16 gives the same bytes back
"$EXPORT" "$B16/run/model.bin" --format model --dtype fp32 --out "$B16/wide.bin" 2>/dev/null &&
    "$EXPORT" "$B16/wide.bin" --format model --dtype bf16 --out "$B16/again.bin" 2>/dev/null &&
    cmp -s "$B16/again.bin" "$B16/run/model.bin" && [ "$(stat -c %s "$B16/wide.bin")" = "$(stat -c %s "$B16/f32.bin")" ]
expect "bf16 -> fp32 -> bf16: the same bytes (the widening is exact)" $? "round trip differs"
# generation from bf16 weights (kept bf16, a bf16 KV cache, every product's input rounded to bf16)
# against the fp32 model: the trained model of the learning section, 24 tokens of text, then 40
# greedy tokens. bf16 keeps 8 significant bits, so each of its two roundings (the weights, and
# the products' inputs) moves a logit by up to about 2^-8 of the logits' scale, and a
# log-probability (a logit less the log-sum of all) by up to twice that: every next-token
# log-probability at every position must be within 4 * 2^-8 * max|logit| (0.14 nats here;
# measured 0.07), and the greedy tokens must be the fp32 model's.
head -c 200 "$DATA" >"$B16/prompt.txt"
toks=$(build/export_ref "$TMP/learn/model.bin" --encode "$B16/prompt.txt" | cut -d' ' -f1-24)
"$EXPORT" "$TMP/learn/model.bin" --format model --dtype bf16 --out "$B16/learn16.bin" 2>/dev/null &&
    build/export_ref "$TMP/learn/model.bin" 40 $toks >"$B16/ref32.json" &&
    build/export_ref "$B16/learn16.bin" 40 $toks >"$B16/ref16.json"
out=$($PY - "$B16/ref32.json" "$B16/ref16.json" <<'PYEOF'
import json, sys
import numpy as np
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def logp(z):
    z = np.array(z, dtype=np.float64)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))
worst = float(np.abs(logp(a["logits"]) - logp(b["logits"])).max())
tol = 4 * 2.0 ** -8 * float(np.abs(np.array(a["logits"])).max())
print(f"{worst:.4f} {tol:.4f} {int(a['greedy'] == b['greedy'])}")
PYEOF
)
read -r worst tol same <<<"$out"
$PY -c "import sys; sys.exit(not (float('$worst') <= float('$tol') and '$same' == '1'))" 2>/dev/null
expect "bf16 weights: every next-token log-probability within 4 * 2^-8 * max|logit| = $tol nats of fp32's (worst $worst), the same 40 greedy tokens" \
    $? "worst '$worst', tolerance '$tol', same greedy tokens '$same'"
# steady memory, as for fp32 (the generation section): 1600 tokens past a 1024-token context
# (2 slides) grow the heap as 10 do; and its threads: a decoded token's bits do not depend on them
"$EXPORT" "$TMP/long/model.bin" --format model --dtype bf16 --out "$B16/long16.bin" 2>/dev/null
grow16() { GLIBC_TUNABLES=$NOCACHE "$INFER" "$B16/long16.bin" -n "$1" --seed 1 "${@:2}" 2>&1 >/dev/null |
    sed -n 's/.*heap \([-+][0-9]*\) bytes.*/\1/p'; }
g10=$(grow16 10) && gfull=$(grow16 1600) && [ -n "$gfull" ] && [ "$gfull" -eq "$g10" ]
expect "bf16: a generation past the context holds its memory: heap ${gfull:-?} bytes over 1600 tokens, as for 10" $? \
    "heap ${gfull:-?} bytes vs ${g10:-?} for 10"
"$INFER" "$B16/learn16.bin" --prompt "ROMEO:" -n 300 --temperature 0 --threads 1 >"$B16/t1" 2>/dev/null &&
    "$INFER" "$B16/learn16.bin" --prompt "ROMEO:" -n 300 --temperature 0 --threads 2 >"$B16/t2" 2>/dev/null &&
    cmp -s "$B16/t1" "$B16/t2" && [ "$(wc -c <"$B16/t1")" -eq 307 ]
expect "bf16: greedy text on 1 and 2 threads the same (300 tokens, 4 slides of the 64-token context)" $? "differs"
# every norm kind: the bf16 model generates (greedy) and evaluates
for norm in $NORMS; do
    "$EXPORT" "$TMP/a_$norm/model.bin" --format model --dtype bf16 --out "$B16/$norm.bin" 2>/dev/null &&
        "$INFER" "$B16/$norm.bin" --prompt "RO" -n 24 --temperature 0 >"$B16/g_$norm" 2>/dev/null &&
        [ "$(wc -c <"$B16/g_$norm")" -gt 20 ] &&
        "$INFER" "$B16/$norm.bin" --eval "$TMP/eval.txt" 2>/dev/null | grep -q "2999 tokens, loss [0-9]"
    expect "$norm: a bf16 model.bin generates and evaluates" $? "$(head -c 80 "$B16/g_$norm")"
done
# refused: a corrupt dtype field (one line naming the file and the field), a bf16 checkpoint,
# a bf16 file of the wrong size, a type the target does not store
patch_i32 "$B16/run/model.bin" "$B16/dtype7.bin" 92 7
patch_i32 "$B16/run/checkpoint.bin" "$B16/ck_bf16.bin" 92 1
patch_i32 "$B16/f32.bin" "$B16/f32_as_bf16.bin" 92 1
bad_case "a model.bin with header field dtype 7" 1 "dtype7.bin: header field dtype = 7 is not 0 (fp32) or 1 (bf16)" \
    "$INFER" "$B16/dtype7.bin"
bad_case "a checkpoint with header field dtype 1" 1 "ck_bf16.bin: header field dtype = 1, but a checkpoint holds fp32" \
    "$TRAIN" --resume "$B16/ck_bf16.bin" --out "$B16/r"
bad_case "fp32 weights under header field dtype 1" 1 "f32_as_bf16.bin: file is .* bytes but its header implies .* (trailing bytes)" \
    "$EXPORT" "$B16/f32_as_bf16.bin" --format model --out "$B16/x.bin"
bad_case "--save-dtype fp16" 2 "save-dtype.*fp32, bf16" "$TRAIN" --data "$DATA" --save-dtype fp16
bad_case "--format model --dtype fp16" 2 "dtype fp16: infer_llama's format has no fp16 weights (--dtype fp32 or bf16)" \
    "$EXPORT" "$B16/f32.bin" --format model --dtype fp16 --out "$B16/x.bin"
bad_case "--format llama2c --dtype bf16" 2 "dtype bf16: llama2.c's format has no bf16 weights (--dtype fp32)" \
    "$EXPORT" "$B16/f32.bin" --format llama2c --dtype bf16 --out "$B16/x.bin"
bad_case "--f16 with --dtype" 2 "f16 and --dtype: give one of them" \
    "$EXPORT" "$B16/f32.bin" --format gguf --f16 --dtype fp32 --out "$B16/x.gguf"
bad_case "--format model over a checkpoint" 1 "checkpoint.bin: exists and is not a model file of this project" \
    "$EXPORT" "$B16/f32.bin" --format model --out "$B16/run/checkpoint.bin"
# a finite weight bf16 cannot hold (3.4e38 rounds to inf; its largest is 3.3895e38): refused by name
$PY -c "import struct,sys; b=bytearray(open(sys.argv[1],'rb').read()); o=256+4*8261; b[o:o+4]=struct.pack('<f',3.4e38); open(sys.argv[2],'wb').write(b)" \
    "$TMP/a_rmsnorm/model.bin" "$B16/big.bin" # parameter 8261: wq[0], index 5
bad_case "--dtype bf16 of a weight of 3.4e38 (gguf)" 1 "big.bin: --dtype bf16: tensor blk.0.attn_q.weight holds 3.4e+38 (index 5), beyond bfloat16's range" \
    "$EXPORT" "$B16/big.bin" --format gguf --dtype bf16 --out "$B16/x.gguf"
bad_case "--dtype bf16 of a weight of 3.4e38 (model)" 1 "x.bin: tensor wq holds 3.4e+38 (flat index 8261), beyond bf16's range" \
    "$EXPORT" "$B16/big.bin" --format model --dtype bf16 --out "$B16/x.bin"
[ ! -e "$B16/x.bin" ] && [ ! -e "$B16/x.gguf" ]
expect "the refused conversions wrote nothing" $? "$(ls "$B16" | tr '\n' ' ')"

# exports of a bf16 model.bin (the BPE model of the exports section, converted): by default
# GGUF and Hugging Face carry its bf16 weights as BF16 (GGUF: the matrices, norms F32, file
# type 32; safetensors: every tensor), bit for bit; llama2.c's format has no bf16, so they go
# out as fp32 (exactly their values) with a note
BM="$E/bpe/model.bin"
"$EXPORT" "$BM" --format model --dtype bf16 --out "$B16/bpe16.bin" 2>/dev/null &&
    "$EXPORT" "$B16/bpe16.bin" --format model --dtype fp32 --out "$B16/bpe16w.bin" 2>/dev/null &&
    "$EXPORT" "$B16/bpe16.bin" --format hf --out "$B16/bpe16.hf" 2>"$B16/hf.err" &&
    "$EXPORT" "$B16/bpe16.bin" --format gguf --out "$B16/bpe16.gguf" 2>"$B16/gguf.err" &&
    "$EXPORT" "$B16/bpe16.bin" --format gguf --out "$B16/bpe16.2.gguf" 2>/dev/null && cmp -s "$B16/bpe16.gguf" "$B16/bpe16.2.gguf" &&
    grep -q "bfloat16" "$B16/hf.err" && grep -q "bfloat16" "$B16/gguf.err" &&
    "$EXPORT" "$B16/rmsnorm.bin" --format llama2c --out "$B16/l2c.bin" 2>"$B16/l2c.err" &&
    grep -q "holds bf16 weights; llama2.c's format has none, so they go out as float32" "$B16/l2c.err" &&
    "$EXPORT" "$TMP/a_rmsnorm/model.bin" --format llama2c --out "$B16/l2c32.bin" 2>/dev/null &&
    [ "$(stat -c %s "$B16/l2c.bin")" = "$(stat -c %s "$B16/l2c32.bin")" ]
expect "a bf16 model.bin exports: GGUF and Hugging Face in bfloat16 (twice: the same bytes), llama2.c in float32 with a note" $? \
    "$(cat "$B16"/*.err | tr '\n' ' ')"
# Hugging Face: BF16 tensors equal the model.bin's bit for bit, and the float64 forward on
# them reproduces our fp32 forward of the same weights (the widened model) within 1e-4
toks=$(build/export_ref "$BM" --encode "$E/same.txt" | cut -d' ' -f1-12)
build/export_ref "$B16/bpe16w.bin" 0 $toks >"$B16/bpe16w.ref0.json" &&
    pycheck "$B16/bpe16.bin" "$B16/bpe16.hf" "$B16/bpe16w.ref0.json" 1e-4 --bf16 $toks
# an fp32 model with --dtype bf16: the tensors rounded to nearest even (numpy's rounding of ours)
"$EXPORT" "$BM" --format hf --dtype bf16 --out "$B16/bpe32to16.hf" 2>/dev/null &&
    pycheck "$BM" "$B16/bpe32to16.hf" "$B16/bpe16w.ref0.json" 1e-4 --bf16 $toks
# llama.cpp runs the BF16 GGUF: its bf16 products round their inputs to bf16 too (its F32
# KV cache does not), so its next-token log-probabilities are within 5e-2 of our bf16
# forward's (the F16 file's tolerance above), and its greedy tokens are ours
if [ -f "$NLC/node_modules/node-llama-cpp/package.json" ] && command -v node >/dev/null; then
    build/export_ref "$B16/bpe16.bin" 32 $toks >"$B16/bpe16.ref.json" &&
        echo "[{\"gguf\": \"$B16/bpe16.gguf\", \"ref\": \"$B16/bpe16.ref.json\", \"text\": \"$E/same.txt\", \"tokens\": [${toks// /,}]}]" \
            >"$B16/cases.json" && node test/test_gguf.mjs "$NLC" "$B16/cases.json" >"$B16/llama.out" 2>"$B16/llama.err"
    rc=$?
    worst=$(sed -n 1p "$B16/llama.out" | $PY -c "import json,sys; print(json.load(sys.stdin)['worst'])" 2>/dev/null)
    greedy=$(sed -n 1p "$B16/llama.out" | $PY -c "import json,sys; print(json.load(sys.stdin)['greedy'])" 2>/dev/null)
    want=$($PY -c "import json; print(json.load(open('$B16/bpe16.ref.json'))['greedy'])" 2>/dev/null)
    [ $rc -eq 0 ] && $PY -c "import sys; sys.exit(not (float('$worst') <= 5e-2))" 2>/dev/null && [ "$greedy" = "$want" ]
    expect "llama.cpp (node-llama-cpp 3.21.1) runs the BF16 GGUF: log-probabilities within 5e-2 of our bf16 forward's (worst $worst), our 32 greedy tokens" \
        $? "exit $rc, worst '$worst', greedy $greedy vs ours $want: $(tail -n 2 "$B16/llama.err" | tr '\n' ' ')"
elif [ "${REQUIRE_LLAMA_CPP:-0}" = 1 ]; then
    fail "llama.cpp check of the BF16 GGUF" "node-llama-cpp is not installed under $NLC (scripts/setup_node.sh)"
else
    say "skip - llama.cpp check of the BF16 GGUF: node-llama-cpp is not installed (scripts/setup_node.sh needs node and npm's registry)"
fi

# ---------------------------------------------------------------------------
section "the comparison end to end: real trainer, 2 seeds x 2 norms, a few steps"
CMP=(scripts/compare_norms.sh --data "$DATA" --seeds 2 --out "$TMP/cmp" --dim 32 --layers 2 --heads 4
     --seq 32 --batch 4 --steps 6 --warmup 2 --eval-every 3 --eval-batches 2 --sample-tokens 20)
"${CMP[@]}" >"$TMP/cmp.log" 2>&1
rc=$?
ls "$TMP"/cmp/runs/{rmsnorm,dyt}_s{0,1}/model.bin >/dev/null 2>&1 &&
    head -c 8 "$TMP/cmp/loss_curves.png" | od -An -c | grep -q "P   N   G" &&
    grep -q "<svg" "$TMP/cmp/loss_curves.svg" && [ -s "$TMP/cmp/alpha.png" ] &&
    grep -q "Welch" "$TMP/cmp/summary.md" && [ -s "$TMP/cmp/sample_dyt.txt" ]
expect "compare_norms.sh: 4 runs, loss_curves.png/.svg, alpha.png, summary.md, samples (exit $rc)" \
    $(( $? || rc )) "$(tail -n 3 "$TMP/cmp.log" | tr '\n' ' ')"
# repeating the command redoes nothing: every run is skipped
"${CMP[@]}" >"$TMP/cmp2.log" 2>&1
[ $? -eq 0 ] && [ "$(grep -c 'skipped\|skipping' "$TMP/cmp2.log")" -ge 4 ] && ! grep -q ': training$' "$TMP/cmp2.log"
expect "compare_norms.sh: a repeated command skips the finished runs" $? "$(grep -i 'train\|skip' "$TMP/cmp2.log" | head -3 | tr '\n' ' ')"

# ---------------------------------------------------------------------------
section "scripts: --help, usage errors, a clean clone after the demo, the grid sweep"
# every script answers -h/--help with its usage on stdout and does nothing else: setup.sh and
# setup_node.sh run with an apt-get, dpkg-query, node and npm on PATH that only record being called
FB="$TMP/fakebin" && mkdir -p "$FB"
printf '#!/bin/sh\necho "$0 $*" >>%s/called\n' "$FB" >"$FB/apt-get"
for f in dpkg-query node npm; do cp "$FB/apt-get" "$FB/$f"; done
chmod +x "$FB"/*
for s in $(cd scripts && ls *.sh *.py); do
    for h in --help -h; do
        PATH="$FB:$PATH" scripts/$s $h >"$TMP/help.out" 2>"$TMP/help.err"
        rc=$?
        [ $rc -eq 0 ] && [ ! -s "$TMP/help.err" ] && [ ! -e "$FB/called" ] &&
            grep -qi "usage\|scripts/$s" "$TMP/help.out" && ! grep -q "pipefail" "$TMP/help.out"
        expect "$s $h: usage on stdout, exit 0, nothing else done" $? \
            "exit $rc: $(head -c 200 "$TMP/help.err") $(cat "$FB/called" 2>/dev/null)"
    done
done
# usage errors: exit 2, one line on stderr, naming the script that was called
usage_case() { # NAME SCRIPT-AND-ARGS... ; the expected message prefix in $WANT
    "${@:2}" >/dev/null 2>"$TMP/usage.err"
    rc=$?
    [ $rc -eq 2 ] && [ "$(wc -l <"$TMP/usage.err")" -eq 1 ] && grep -q "^$WANT" "$TMP/usage.err"
    expect "$1" $? "exit $rc: $(head -c 300 "$TMP/usage.err")"
}
WANT="demo.sh: error: --seeds needs a value" usage_case "demo.sh --seeds without a value: a usage error" scripts/demo.sh --seeds
WANT="setup.sh: error: unknown option '--bogus'" usage_case "setup.sh --bogus: a usage error, no package named --bogus" \
    env PATH="$FB:$PATH" scripts/setup.sh --bogus
WANT="bpe_compare.sh: error: --steps needs a value" usage_case "bpe_compare.sh --steps without a value" scripts/bpe_compare.sh --steps
WANT="sweep.sh: error: --param lrr: train_llama has no flag --lrr" usage_case "sweep.sh --param lrr blames sweep.sh" \
    scripts/sweep.sh --param lrr --values 1 --out "$TMP/sw_bad" --data "$DATA"
WANT="compare_norms.sh: error: --norms: unknown norm 'nope'" usage_case "compare_norms.sh --norms with an unknown kind lists the known ones" \
    scripts/compare_norms.sh --data "$DATA" --norms rmsnorm,nope --dry-run
# make without OpenBLAS's header: one line saying what to install, before compiling
make --no-print-directory BLAS_INC="$TMP/no-blas" all >"$TMP/make.out" 2>&1
rc=$?
[ $rc -ne 0 ] && [ "$(wc -l <"$TMP/make.out")" -eq 1 ] &&
    grep -q "OpenBLAS is missing.*scripts/setup.sh.*apt-get install -y libopenblas-openmp-dev" "$TMP/make.out"
expect "make without cblas.h: one line naming scripts/setup.sh and the apt-get line" $? "$(head -c 300 "$TMP/make.out")"

# the demo (tiny) writes only under runs/: git status is the same before and after
if git rev-parse --git-dir >/dev/null 2>&1; then
    D=runs/.test_demo_$$
    before=$(git status --porcelain --untracked-files=all)
    scripts/demo.sh --tiny --seeds 1 --steps 4 --out "$D" >"$TMP/demo.log" 2>&1
    rc=$?
    after=$(git status --porcelain --untracked-files=all)
    [ $rc -eq 0 ] && [ "$before" = "$after" ] && [ -s "$D/summary.md" ] && [ -s "$D/loss_curves.png" ]
    expect "a demo run (tiny) leaves git status as it was: it writes only under runs/" $? \
        "exit $rc: $(diff <(echo "$before") <(echo "$after") | head -3 | tr '\n' ' ') $(tail -n 2 "$TMP/demo.log" | tr '\n' ' ')"
    rm -rf "$D"
else
    say "skip - a demo run leaves git status as it was: not a git checkout"
fi

# the grid sweep end to end: 2 x 2 cells (lr x alpha-attn), RMSNorm and DyT, 1 seed, 6 steps;
# --jobs auto measures side by side against one after another and says which it chose
SW=(scripts/sweep.sh --param lr --values 1e-3,3e-3 --param2 alpha-attn --values2 0.5,1 --norms rmsnorm,dyt
    --seeds 1 --out "$TMP/grid" --data "$DATA" --dim 32 --layers 2 --heads 4 --seq 32 --batch 4 --warmup 2
    --steps 6 --eval-every 3 --eval-batches 2)
"${SW[@]}" >"$TMP/grid.log" 2>&1
rc=$?
n_runs=$(ls "$TMP"/grid/runs/lr=*,alpha-attn=*/{rmsnorm,dyt}_s0/result.txt 2>/dev/null | wc -l)
[ $rc -eq 0 ] && [ "$n_runs" -eq 8 ] && head -c 8 "$TMP/grid/grid.png" | od -An -c | grep -q "P   N   G" &&
    grep -q "^## DyT: final val loss" "$TMP/grid/summary.md" && grep -q "^| alpha-attn \\\\ lr | 1e-3 | 3e-3 |" "$TMP/grid/summary.md" &&
    grep -q "Baseline: RMSNorm's best cell" "$TMP/grid/summary.md" &&
    grep -q "^sweep.sh: 8 runs, \(2 runs side by side with --threads 1 each\|one after another\).*load average" "$TMP/grid.log"
expect "sweep.sh grid: 2x2 cells x 2 norms, heatmap, summary per norm, the schedule chosen and why (exit $rc, $n_runs runs)" \
    $? "$(grep -h "sweep.sh\|rror" "$TMP/grid.log" | head -3 | tr '\n' ' ')"
"${SW[@]}" --jobs 2 >"$TMP/grid2.log" 2>&1
[ $? -eq 0 ] && [ "$(grep -c 'skipped' "$TMP/grid2.log")" -eq 8 ] && grep -q "^sweep.sh: 8 runs, --jobs 2" "$TMP/grid2.log"
expect "sweep.sh grid rerun with --jobs 2: every run skipped" $? "$(head -c 300 "$TMP/grid2.log")"

# ---------------------------------------------------------------------------
section "docs: the generated --help pages, every relative link"
# docs/help/PROGRAM.txt is what `make help-docs` writes: each must equal the program's --help now
for p in train_llama infer_llama export_llama tokenize; do
    "${BIN:-.}/$p" --help >"$TMP/help_$p.txt" 2>&1
    diff -u "docs/help/$p.txt" "$TMP/help_$p.txt" >"$TMP/help_$p.diff" 2>&1
    expect "docs/help/$p.txt equals $p --help" $? \
        "stale: run make help-docs and commit docs/help/ ($(sed -n '3,8p' "$TMP/help_$p.diff" | tr '\n' ' ' | head -c 300))"
done
# every relative link (and #heading) in README.md and docs/**/*.md names something that exists
$PY test/check_links.py >"$TMP/links.out" 2>&1
expect "README.md and docs/: every relative link resolves" $? "$(head -n 5 "$TMP/links.out" | tr '\n' ' ')"

# ---------------------------------------------------------------------------
if [ -f test/test_analyze.py ]; then
    section "analysis scripts"
    $PY test/test_analyze.py 2>&1 | tee -a "$LOG"
fi

. test/robust_tests.sh

section "code structure"
# the module graph (test/include_graph.py): no include cycle, nothing in src/ includes a header above it
$PY test/include_graph.py >"$TMP/graph" 2>&1
rc=$? # before the name's $(...), which would set $? itself
expect "no include cycle among the modules, no upward include from src/: $(tail -n 1 "$TMP/graph")" $rc \
    "$(head -n 3 "$TMP/graph" | tr '\n' ';')"

section "done"
passed=$(grep -c '^ok - ' "$LOG")
failed=$(grep -c '^FAIL - ' "$LOG")
skipped=$(grep -c '^skip - ' "$LOG")
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
