# Robustness (issue 13), sourced by test/run_tests.sh after the other
# sections: it uses their helpers (section, expect, bad_case, patch_i32) and
# files ($TMP/a_rmsnorm, $TMP/rt.bin). Each case of the issue, then its class:
# every reader refuses a FIFO (without blocking), every writer creates its
# file fresh (a symlink or FIFO at the name is replaced, never written
# through), every output is checked (> /dev/full), every value read from a
# checkpoint is range-checked.

section "robustness: FIFOs, locks, checkpoint fields, threads, memory, resume, outputs"
RB="$TMP/robust" && mkdir -p "$RB"
head -c 30000 "$DATA" >"$RB/d.txt"
RT=(--dim 32 --layers 1 --heads 2 --seq 32 --batch 4 --threads 1 --eval-every 5 --eval-batches 2)
rtrain() { "$TRAIN" --data "$RB/d.txt" "${RT[@]}" "$@"; }
# sanitizer and valgrind builds reserve far more address space than ulimit -v allows
plain_build=$([ -z "${BIN:-}" ] && echo 1 || echo 0)

# 1. Every reader refuses a FIFO at once (timeout 20: a hang fails the case with 124)
mkfifo "$RB/fifo"
fifo() { bad_case "a FIFO as $1" 1 "fifo: not a regular file (a FIFO)" timeout 20 "${@:2}"; }
fifo "--data" "$TRAIN" --data "$RB/fifo" "${RT[@]}" --steps 1 --out "$RB/f1"
fifo "the model" "$INFER" "$RB/fifo"
fifo "-z tokenizer" "$INFER" "$TMP/rt.bin" -z "$RB/fifo"
fifo "--eval text" "$INFER" "$TMP/a_rmsnorm/model.bin" --eval "$RB/fifo"
fifo "--resume checkpoint" "$TRAIN" --data "$RB/d.txt" --resume "$RB/fifo"
fifo "tokenize train's text" "$TOKENIZE" train "$RB/fifo" --vocab-size 300 --out "$RB/v"
fifo "tokenize encode's --tokenizer" "$TOKENIZE" encode "$RB/d.txt" --tokenizer "$RB/fifo"
fifo "tokenize decode's cache" "$TOKENIZE" decode "$RB/fifo" --tokenizer "$RB/fifo"
mkdir -p "$RB/bv" && cp "$RB/d.txt" "$RB/bv/d.txt" && mkfifo "$RB/bv/d.txt.bpe300"
bad_case "a FIFO as the BPE vocabulary beside the data" 1 "d.txt.bpe300: not a regular file (a FIFO)" \
    timeout 20 "$TRAIN" --data "$RB/bv/d.txt" "${RT[@]}" --vocab-size 300 --steps 1 --out "$RB/f2"
rtrain --steps 4 --stop-after 2 --out "$RB/lg" 2>/dev/null && rm "$RB/lg/log.csv" && mkfifo "$RB/lg/log.csv"
bad_case "a FIFO as log.csv on resume" 1 "log.csv: not a regular file (a FIFO)" \
    timeout 20 "$TRAIN" --data "$RB/d.txt" --resume "$RB/lg/checkpoint.bin"
# (a directory as --data is a folder of texts: the data section tests it)
bad_case "a directory as the model" 1 "not a regular file (a directory)" "$INFER" "$RB"

# 2. llama2.c models with NaN or Inf weights, refused naming the tensor
$PY -c "import struct,sys; b=bytearray(open(sys.argv[1],'rb').read()); b[28+4*5:28+4*6]=struct.pack('<f',float('nan')); open(sys.argv[2],'wb').write(b)" \
    "$TMP/rt.bin" "$RB/l2c_nan.bin"
$PY -c "import struct,sys; b=bytearray(open(sys.argv[1],'rb').read()); b[-4:]=struct.pack('<f',float('inf')); open(sys.argv[2],'wb').write(b)" \
    test/ref/l2c_untied.ak42.bin "$RB/ak42_inf.bin"
bad_case "a llama2.c model with a NaN weight" 1 "l2c_nan.bin: llama2.c legacy: tensor wte holds a non-finite value (nan)" \
    "$INFER" "$RB/l2c_nan.bin" -n 3
bad_case "an ak42 model with an Inf weight (--eval)" 1 "ak42_inf.bin: llama2.c ak42: tensor wcls holds a non-finite value (inf)" \
    "$INFER" "$RB/ak42_inf.bin" --eval "$RB/d.txt"

# 4. One live run per folder: a second is refused at start naming the first;
# a lock left by a killed run blocks nothing
"$TRAIN" --data "$RB/d.txt" "${RT[@]}" --steps 100000 --out "$RB/lock" 2>"$RB/lock1.err" &
pid=$!
for _ in $(seq 100); do [ -s "$RB/lock/log.csv" ] && [ "$(wc -l <"$RB/lock/log.csv")" -gt 2 ] && break; sleep 0.1; done
bad_case "a second run into a folder a live run holds" 1 "lock: another train_llama (pid $pid) is running in this folder" \
    rtrain --steps 5 --seed 2 --out "$RB/lock"
kill -TERM $pid
wait $pid
rc=$?
rows=$(cut -d, -f1 "$RB/lock/log.csv" | tail -n +2 | tr '\n' ' ')
[ $rc -eq 0 ] && [ "$rows" = "$(seq -s ' ' 0 "$(ckpt_step "$RB/lock/checkpoint.bin")") " ]
expect "the first run is untouched by the refused one: exit 0, its log rows 0..N in order" $? "exit $rc, rows $rows"
n0=$(wc -l <"$RB/lock/log.csv")
"$TRAIN" --resume "$RB/lock/checkpoint.bin" --data "$RB/d.txt" 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ "$(wc -l <"$RB/lock/log.csv")" -gt $((n0 + 2)) ] && break; sleep 0.1; done
kill -KILL $pid
wait $pid 2>/dev/null
[ -e "$RB/lock/.lock" ] && "$TRAIN" --resume "$RB/lock/checkpoint.bin" --data "$RB/d.txt" --stop-after 1 2>"$RB/lock2.err"
expect "a lock left by a SIGKILLed run does not block its resume" $? "$(tail -n 1 "$RB/lock2.err")"

# 5. Every training-block field of a checkpoint is range-checked
C="$RB/lg/checkpoint.bin" # step 2 of 4, 128 tokens per step
patch_tb() { # patch_tb NAME OFFSET FORMAT VALUE: a copy of $C with one training-block field changed
    # (the block stands before the 1024-byte settings block and the data record, whose size is at byte 80)
    $PY -c "import struct,sys; b=bytearray(open(sys.argv[1],'rb').read()); o=len(b)-1088-struct.unpack_from('<i',b,80)[0]+int(sys.argv[3]); v=sys.argv[5]; b[o:o+8]=struct.pack('<'+sys.argv[4], float(v) if sys.argv[4]=='d' else int(v)); open(sys.argv[2],'wb').write(b)" \
        "$C" "$RB/$1.bin" "$2" "$3" "$4"
}
patch_tb tb_tokmax 16 q 9223372036854775807
patch_tb tb_tok 16 q 257
patch_tb tb_inf 24 d inf
patch_tb tb_big 24 d 1e300
patch_tb tb_nan 24 d nan
patch_tb tb_step 0 q 9223372036854775807
patch_tb tb_rng 8 q 0
for c in "tb_tokmax:field tokens = 9223372036854775807, but 2 steps of 128 tokens make 256" \
         "tb_tok:field tokens = 257, but 2 steps" "tb_inf:field elapsed_s = inf is not a duration" \
         "tb_big:field elapsed_s = 1e+300 is not a duration" "tb_nan:training block is invalid" \
         "tb_step:step 9223372036854775807 is past the run's 4 steps" "tb_rng:training block is invalid"; do
    bad_case "a checkpoint with ${c%%:*}" 1 "${c#*:}" "$TRAIN" --data "$RB/d.txt" --resume "$RB/${c%%:*}.bin" --out "$RB/tb"
done
bad_case "--steps x tokens per step beyond 64 bits" 2 "overflows the 64-bit token count" \
    "$TRAIN" --data "$RB/d.txt" --dim 32 --layers 1 --heads 2 --seq 65536 --batch 65536 --grad-accum 65536 \
    --steps 1000000000 --out "$RB/ovf"

# 6. --threads beyond what can be served: clamped to the cores and to the
# address space OpenBLAS's buffers need; an impossible limit is a message
if [ "$plain_build" = 1 ]; then
    (ulimit -v 4000000 && exec timeout 60 "$INFER" "$TMP/a_rmsnorm/model.bin" -n 3 --threads 64) >/dev/null 2>"$RB/thr.err"
    rc=$?
    [ $rc -eq 0 ] && grep -q "^infer_llama: --threads 64: using [0-9]* " "$RB/thr.err"
    expect "--threads 64 under ulimit -v 4000000: clamped with a note, generates (exit 0)" $? "exit $rc: $(head -n 1 "$RB/thr.err")"
    bad_case "a ulimit -v that leaves no room for OpenBLAS" 1 "address-space limit (ulimit -v) leaves" \
        sh -c "ulimit -v 400000 && exec timeout 60 \"$INFER\" \"$TMP/a_rmsnorm/model.bin\" -n 3 --threads 64"
    (ulimit -v 4000000 && exec timeout 60 "$TRAIN" --data "$RB/d.txt" "${RT[@]}" --threads 64 --steps 2 --out "$RB/thr") \
        2>"$RB/thrt.err"
    expect "train_llama --threads 64 under ulimit -v 4000000: clamped, trains (exit 0)" $? "$(tail -n 1 "$RB/thrt.err")"
else
    ok "--threads under ulimit -v (skipped: sanitizer or valgrind build)"
fi

# 7. --eval: windows no longer than the text; the memory a window needs is
# checked up front (a legal header allows a context of 2^20 tokens). A
# window's memory is linear in its length (issue 25): 2^20 tokens of this
# model take some 4 GB, more than ulimit -v 2000000 leaves.
patch_i32 "$TMP/a_rmsnorm/model.bin" "$RB/long.bin" 36 1048576
"$INFER" "$RB/long.bin" --eval "$TMP/eval.txt" >"$RB/ev.out" 2>/dev/null && grep -q "2999 tokens, loss" "$RB/ev.out"
expect "--eval with a 2^20-token context on a short text: windows as long as the text" $? "$(cat "$RB/ev.out")"
if [ "$plain_build" = 1 ]; then
    bad_case "--eval whose window needs more than ulimit -v leaves" 1 \
        "^infer_llama: --eval $DATA: windows of 1048576 tokens (the model's context is 1048576): .* needs [0-9]* MB" \
        sh -c "ulimit -v 2000000 && exec timeout 60 \"$INFER\" \"$RB/long.bin\" --eval \"$DATA\" --threads 2"
else
    say "skip - --eval whose window needs more than ulimit -v leaves: sanitizer or valgrind build"
fi

# 8. Resuming a finished run says so and changes nothing
rtrain --steps 4 --out "$RB/fin" 2>/dev/null && cp -r "$RB/fin" "$RB/fin0"
"$TRAIN" --data "$RB/d.txt" --resume "$RB/fin/checkpoint.bin" 2>"$RB/fin.err"
rc=$?
[ $rc -eq 0 ] && grep -q "fin/checkpoint.bin: the run is finished (step 4 of 4); nothing to do" "$RB/fin.err" &&
    diff -r "$RB/fin" "$RB/fin0" >/dev/null
expect "a resume of a finished run says so (exit 0) and changes no file" $? \
    "exit $rc: $(tail -n 1 "$RB/fin.err"); $(diff -r "$RB/fin" "$RB/fin0" | head -3 | tr '\n' ' ')"

# 9. Resume into another --out (the log continues there from the checkpoint's
# step), and without log.csv; never into a folder holding another run
rtrain --steps 8 --out "$RB/full" 2>/dev/null
rtrain --steps 8 --stop-after 4 --out "$RB/half" 2>/dev/null &&
    "$TRAIN" --data "$RB/d.txt" --resume "$RB/half/checkpoint.bin" --threads 1 --out "$RB/moved" 2>/dev/null &&
    cmp -s <(losses "$RB/full/log.csv") <(losses "$RB/moved/log.csv") && cmp -s "$RB/full/model.bin" "$RB/moved/model.bin"
expect "resume into another --out: the log continues there, model and losses equal an uninterrupted run" $? \
    "$(diff <(losses "$RB/full/log.csv") <(losses "$RB/moved/log.csv") 2>&1 | head -3 | tr '\n' ' ')"
rtrain --steps 8 --stop-after 4 --out "$RB/nolog" 2>/dev/null && rm "$RB/nolog/log.csv" &&
    "$TRAIN" --data "$RB/d.txt" --resume "$RB/nolog/checkpoint.bin" --threads 1 2>"$RB/nolog.err" &&
    grep -q "log.csv: not found; .*log.csv starts at step 4" "$RB/nolog.err" &&
    [ "$(cut -d, -f1 "$RB/nolog/log.csv" | tr '\n' ' ')" = "step 5 6 7 8 " ] &&
    cmp -s "$RB/full/model.bin" "$RB/nolog/model.bin"
expect "a run whose log.csv was lost resumes (the log starts at the checkpoint's step)" $? \
    "$(tail -n 1 "$RB/nolog.err"); rows $(cut -d, -f1 "$RB/nolog/log.csv" 2>/dev/null | tr '\n' ' ')"
bad_case "a resume into a folder holding another run" 1 "fin: already holds a run" \
    "$TRAIN" --data "$RB/d.txt" --resume "$RB/half/checkpoint.bin" --out "$RB/fin"

# 10. A SIGTERM during set-up (here: reading the data, training a BPE vocabulary) exits 0 with
# a line saying nothing was trained (or, on a fast machine, a checkpoint)
mkdir -p "$RB/early" && cp "$DATA" "$RB/early/d.txt"
"$TRAIN" --data "$RB/early/d.txt" "${RT[@]}" --vocab-size 300 --steps 100000 --out "$RB/early/o" 2>"$RB/early.err" &
pid=$!
# as soon as its handlers are installed (SigCgt has SIGTERM's bit): the first thing main does
for _ in $(seq 200); do
    cgt=$(sed -n 's/^SigCgt:\t*//p' /proc/$pid/status 2>/dev/null)
    [ -n "$cgt" ] && [ $((0x$cgt & 0x4000)) -ne 0 ] && break
    sleep 0.02
done
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 0 ] && { grep -q "stopped by a signal before the first step: nothing was trained yet" "$RB/early.err" ||
    grep -q "stopped after step [0-9]* (signal)" "$RB/early.err"; }
expect "SIGTERM right after start-up, during set-up: exit 0 and a line saying nothing was trained" $? "exit $rc: $(tail -n 1 "$RB/early.err")"

# General: every file written is created fresh. A symlink at an output name
# (log.csv, a temporary, a tokenizer) is replaced and its target untouched;
# a FIFO there is replaced without blocking.
printf 'precious' >"$RB/victim"
mkdir -p "$RB/sym" && ln -s "$RB/victim" "$RB/sym/log.csv" && ln -s "$RB/victim" "$RB/sym/model.bin.tmp" &&
    mkfifo "$RB/sym/checkpoint.bin.tmp" && ln -s "$RB/victim" "$RB/v300"
timeout 60 "$TRAIN" --data "$RB/d.txt" "${RT[@]}" --steps 2 --out "$RB/sym" 2>/dev/null &&
    timeout 60 "$TOKENIZE" train "$RB/d.txt" --vocab-size 300 --out "$RB/v300" 2>/dev/null &&
    [ "$(cat "$RB/victim")" = precious ] && [ -f "$RB/sym/log.csv" ] && [ ! -L "$RB/sym/log.csv" ] &&
    [ -f "$RB/v300" ] && [ ! -L "$RB/v300" ] && [ -z "$(ls "$RB/sym" | grep '\.tmp$')" ]
expect "symlinks and FIFOs at output names are replaced, never written through" $? \
    "victim: $(head -c 40 "$RB/victim"); $(ls -l "$RB/sym" | tr '\n' ' ')"

# General: every output is checked, standard output included
full() { # full NAME COMMAND...: the command's stdout on a full disk
    "${@:2}" >/dev/full 2>"$RB/full.err"
    local rc=$?
    [ $rc -eq 1 ] && grep -q "stdout: write failed: No space left on device" "$RB/full.err"
    expect "$1 > /dev/full: exit 1, stdout: write failed" $? "exit $rc: $(tail -n 1 "$RB/full.err")"
}
full "--eval" "$INFER" "$TMP/a_rmsnorm/model.bin" --eval "$RB/d.txt"
full "tokenize bench" "$TOKENIZE" bench "$RB/d.txt" --sizes 260 --repeat 1
"$TOKENIZE" train "$RB/d.txt" --vocab-size 300 --out "$RB/v300b" 2>/dev/null &&
    "$TOKENIZE" encode "$RB/d.txt" --tokenizer "$RB/v300b" --out "$RB/d.tok" 2>/dev/null
full "tokenize decode" "$TOKENIZE" decode "$RB/d.tok" --tokenizer "$RB/v300b"
full "generation" "$INFER" "$TMP/a_rmsnorm/model.bin" -n 5
for p in "$TRAIN" "$INFER" "$TOKENIZE"; do full "$(basename "$p") --help" "$p" --help; done

# issue 25, items 5-6: memory checked before it is asked for; evaluation linear in the context

# 5. Big inputs under ulimit -v: what they need is checked before it is asked
# for, so the answer is one line naming the input and the size (OpenBLAS,
# short of its buffer, would retry forever: timeout 60 turns a hang into 124).
# 300 MB of prompt take 1144 MB of tokens, which 1500000 kB can never hold
# beside the prompt (nor under 3000000 fail to); a llama2.c tokenizer's
# encoder takes some 80 bytes a byte; a context of 2^20 needs its KV cache.
if [ "$plain_build" = 1 ]; then
    lim() { local kb=$1; shift; sh -c "ulimit -v $kb && exec timeout 60 \"\$@\"" sh "$@"; }
    aaa() { head -c "$1" /dev/zero | tr '\0' a; }
    big=300000000
    aaa $big | bad_case "a 300 MB prompt on stdin under ulimit -v 1500000" 1 \
        "^infer_llama: --prompt - (standard input): .* needs [0-9]* MB, but the address-space limit" \
        lim 1500000 "$INFER" "$TMP/a_rmsnorm/model.bin" --prompt - -n 2 --threads 2
    aaa $big | lim 3000000 "$INFER" "$TMP/a_rmsnorm/model.bin" --prompt - -n 2 --threads 2 >/dev/null 2>"$RB/stdin.err"
    rc=$?
    [ $rc -eq 0 ] && grep -q "^prompt $big tokens " "$RB/stdin.err"
    expect "the same prompt on stdin under ulimit -v 3000000: generates (exit 0), as from a file" $? \
        "exit $rc: $(tail -n 1 "$RB/stdin.err" | head -c 300)"
    aaa $big >"$RB/big.txt"
    bad_case "--eval of a 300 MB file under ulimit -v 1500000" 1 \
        "^infer_llama: $RB/big.txt.* needs [0-9]* MB, but the address-space limit" \
        lim 1500000 "$INFER" "$TMP/a_rmsnorm/model.bin" --eval "$RB/big.txt" --threads 2
    rm -f "$RB/big.txt"
    aaa 20000000 | bad_case "a 20 MB prompt for a llama2.c tokenizer (-z) under ulimit -v 1500000" 1 \
        "^infer_llama: --prompt - (standard input): encoding 20000000 bytes (llama2.c tokenizer) needs [0-9]* MB" \
        lim 1500000 "$INFER" "$TMP/rt.bin" -z "$TMP/rt.tokenizer.bin" --prompt - -n 2 --threads 2
    bad_case "-n 1000000 with a 2^20 context under ulimit -v 600000" 1 \
        "^infer_llama: --prompt (6 tokens) and -n 1000000: the activation block for 1 x 6 positions with 1000006 keys needs [0-9]* MB" \
        lim 600000 "$INFER" "$RB/long.bin" --prompt ROMEO: -n 1000000
else
    say "skip - big inputs under ulimit -v (prompt, --eval file, -z encoder, context): sanitizer or valgrind build"
fi

# 6. --eval of a model with a 2^20-token context on 20 KB: one window of the
# whole text. Its heads x T x T attention scores (6 GB here) are no longer
# stored, only a block of rows per thread: it runs under a ulimit -v they
# would exceed, and prints the loss of the same weights with a context as long
# as the text (the same one window; test_core holds the bits: the blocks equal
# the stored probabilities, and the training forward).
head -c 20000 "$DATA" >"$RB/e20k.txt"
n20k=$(($(wc -c <"$RB/e20k.txt") - 1)) # byte tokens: 19999 scored
heads=$($PY -c "import struct,sys; print(struct.unpack_from('<i', open(sys.argv[1],'rb').read(), 24)[0])" "$RB/long.bin")
scores_mb=$((4 * heads * n20k * n20k / 1048576)) limit_kb=2000000
patch_i32 "$TMP/a_rmsnorm/model.bin" "$RB/ctx_text.bin" 36 "$n20k"
"$INFER" "$RB/ctx_text.bin" --eval "$RB/e20k.txt" >"$RB/ctx_text.out" 2>/dev/null
if [ "$plain_build" = 1 ]; then
    (ulimit -v $limit_kb && exec timeout 120 "$INFER" "$RB/long.bin" --eval "$RB/e20k.txt" --threads 2) \
        >"$RB/e20k.out" 2>"$RB/e20k.err"
    rc=$?
    [ $rc -eq 0 ] && [ $((scores_mb * 1024)) -gt $limit_kb ] && grep -q "e20k.txt: $n20k tokens, loss [0-9.]*, " "$RB/e20k.out" &&
        cmp -s "$RB/e20k.out" "$RB/ctx_text.out"
    expect "--eval, 2^20-token context, 20 KB: runs under ulimit -v $limit_kb (the old $heads x $n20k^2 scores: $scores_mb MB), the loss of a context as long as the text" \
        $? "exit $rc: $(head -c 200 "$RB/e20k.err") | $(cat "$RB/e20k.out") | $(cat "$RB/ctx_text.out")"
else
    say "skip - --eval of a 2^20-token context under ulimit -v: sanitizer or valgrind build"
fi
