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
RT_DEFAULTS=(--data "$RB/d.txt" "${RT[@]}")
rtrain() { with_defaults RT_DEFAULTS "$@" && "$TRAIN" "${ARGS[@]}"; }
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
bad_case "a FIFO as log.csv on resume" 1 "lg/log.csv: exists and is a FIFO: not replaced" \
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
    say "skip - --threads under ulimit -v: sanitizer or valgrind build"
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

# General: no output is written through or replaces what stands at its name
# unless it is a regular file (issue 25): a symlink at log.csv, at a
# temporary, at a tokenizer's --out, or a FIFO at a temporary, is refused in
# one line, the link and its target kept.
printf 'precious' >"$RB/victim"
mkdir -p "$RB/sym1" "$RB/sym2" "$RB/sym3" && ln -s "$RB/victim" "$RB/sym1/log.csv" &&
    ln -s "$RB/victim" "$RB/sym2/model.bin.tmp" && mkfifo "$RB/sym3/checkpoint.bin.tmp" && ln -s "$RB/victim" "$RB/v300"
refused_out() { # refused_out NAME PATTERN COMMAND...: exit 1 and the line, whatever else was printed
    timeout 60 "${@:3}" >/dev/null 2>"$RB/sym.err"
    local rc=$?
    [ $rc -eq 1 ] && grep -q -- "$2" "$RB/sym.err"
    expect "$1: refused (exit 1, one line)" $? "exit $rc: $(tail -n 1 "$RB/sym.err")"
}
refused_out "a symlink at OUT/log.csv" "sym1/log.csv: exists and is a symlink" \
    "$TRAIN" --data "$RB/d.txt" "${RT[@]}" --steps 2 --out "$RB/sym1"
refused_out "a symlink at OUT/model.bin.tmp" "sym2/model.bin.tmp: exists and is a symlink" \
    "$TRAIN" --data "$RB/d.txt" "${RT[@]}" --steps 2 --out "$RB/sym2"
[ ! -e "$RB/sym2/log.csv" ]
expect "refused at start, before a step: no log.csv" $? "$(ls "$RB/sym2" | tr '\n' ' ')"
refused_out "a FIFO at OUT/checkpoint.bin.tmp" "sym3/checkpoint.bin.tmp: exists and is a FIFO" \
    "$TRAIN" --data "$RB/d.txt" "${RT[@]}" --steps 2 --out "$RB/sym3"
refused_out "a symlink as tokenize train --out" "v300: exists and is a symlink" \
    "$TOKENIZE" train "$RB/d.txt" --vocab-size 300 --out "$RB/v300"
[ "$(cat "$RB/victim")" = precious ] && [ -L "$RB/sym1/log.csv" ] && [ -L "$RB/sym2/model.bin.tmp" ] &&
    [ -p "$RB/sym3/checkpoint.bin.tmp" ] && [ -L "$RB/v300" ]
expect "symlinks and FIFOs at output names are kept, their target never written" $? \
    "victim: $(head -c 40 "$RB/victim"); $(ls -l "$RB/sym1" "$RB/sym2" "$RB/sym3" | tr '\n' ' ')"

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
full "train_llama --list-norms" "$TRAIN" --list-norms

# ---------------------------------------------------------------------------
# issue 25, items 1, 2, 4, 12: outputs never written through a symlink, never
# replacing a device or what is not ours; a mapped input that shrinks
XP="$RB/x25" && mkdir -p "$XP"
M25="$TMP/a_rmsnorm/model.bin"
"$EXPORT" "$M25" --format hf --out "$XP/A" 2>/dev/null && "$EXPORT" "$M25" --format hf --out "$XP/B" 2>/dev/null
ls "$XP/A" >"$XP/A.list"
# 1. a symlink as --out (to another export) and as OUT.tmp: refused, the target untouched
ln -s "$XP/A" "$XP/link"
bad_case "an hf --out that is a symlink to another export" 1 "link: exists and is a symlink: not replaced" \
    "$EXPORT" "$M25" --format hf --out "$XP/link"
[ -L "$XP/link" ] && [ ! -e "$XP/link.old" ] && cmp -s <(ls "$XP/A") "$XP/A.list" && cmp -s "$XP/A/config.json" "$XP/B/config.json"
expect "the symlinked export folder keeps its files, the link stays" $? "$(ls -l "$XP" | tr '\n' ' ')"
ln -s "$XP/A" "$XP/new.tmp"
bad_case "a symlink at OUT.tmp of an hf export" 1 "new.tmp: exists and is a symlink" \
    "$EXPORT" "$M25" --format hf --out "$XP/new"
cmp -s <(ls "$XP/A") "$XP/A.list" && [ ! -e "$XP/new" ]
expect "the folder behind OUT.tmp keeps its files; nothing written" $? "$(ls "$XP/A" | tr '\n' ' ')"
rm "$XP/new.tmp"
for fmt in gguf llama2c model; do
    case $fmt in gguf | model) src=$M25 ;; llama2c) src=$TMP/rt.bin ;; esac
    printf 'precious' >"$XP/victim"
    ln -sf "$XP/victim" "$XP/o.$fmt"
    bad_case "a $fmt --out that is a symlink" 1 "o.$fmt: exists and is a symlink: not replaced" \
        "$EXPORT" "$src" --format $fmt --out "$XP/o.$fmt"
    rm "$XP/o.$fmt" && ln -s "$XP/victim" "$XP/o.$fmt.tmp"
    bad_case "a symlink at a $fmt export's OUT.tmp" 1 "o.$fmt.tmp: exists and is a symlink" \
        "$EXPORT" "$src" --format $fmt --out "$XP/o.$fmt"
    [ "$(cat "$XP/victim")" = precious ] && [ -L "$XP/o.$fmt.tmp" ] && [ ! -e "$XP/o.$fmt" ]
    expect "$fmt: the symlinks' target untouched, the links kept, nothing written" $? "$(ls -l "$XP" | tr '\n' ' ')"
    rm "$XP/o.$fmt.tmp"
    # an existing file that is not this format's: refused; one that is: replaced
    printf 'not a model' >"$XP/o.$fmt"
    bad_case "a $fmt --out holding another file" 1 "o.$fmt: exists and is not a" "$EXPORT" "$src" --format $fmt --out "$XP/o.$fmt"
    [ "$(cat "$XP/o.$fmt")" = "not a model" ]
    expect "$fmt: the other file is kept as it was" $? "$(head -c 40 "$XP/o.$fmt")"
    rm "$XP/o.$fmt"
    "$EXPORT" "$src" --format $fmt --out "$XP/o.$fmt" 2>/dev/null && cp "$XP/o.$fmt" "$XP/first.$fmt" &&
        "$EXPORT" "$src" --format $fmt --out "$XP/o.$fmt" 2>/dev/null && cmp -s "$XP/o.$fmt" "$XP/first.$fmt"
    expect "$fmt: an export of ours is replaced by the same export" $? "second export failed or differs"
done
# a stale OUT.tmp and OUT.old export folder (a crash) are cleared; another folder at OUT.old is not
mkdir -p "$XP/C.tmp" "$XP/C.old" && cp "$XP/A/config.json" "$XP/C.tmp/" && cp "$XP/A/config.json" "$XP/C.old/"
"$EXPORT" "$M25" --format hf --out "$XP/C" 2>/dev/null && [ -f "$XP/C/model.safetensors" ] && [ ! -e "$XP/C.tmp" ] && [ ! -e "$XP/C.old" ]
expect "stale C.tmp and C.old export folders are removed and the export lands" $? "$(ls "$XP" | tr '\n' ' ')"
mkdir -p "$XP/D.old" && printf 'mine' >"$XP/D.old/notes.txt"
bad_case "a foreign folder at OUT.old" 1 "D.old: exists and holds notes.txt" "$EXPORT" "$M25" --format hf --out "$XP/D"
[ "$(cat "$XP/D.old/notes.txt")" = mine ]
expect "the foreign OUT.old folder keeps its file" $? "gone"
ln -s "$XP/victim" "$XP/B/config.json.tmp" 2>/dev/null; rm -f "$XP/B/config.json" && ln -s "$XP/victim" "$XP/B/config.json"
bad_case "an export folder holding a symlink among its files" 1 "B: exists and its config.json" \
    "$EXPORT" "$M25" --format hf --out "$XP/B"
[ "$(cat "$XP/victim")" = precious ]
expect "the symlink's target inside the folder untouched" $? "victim changed"
# 2. a FIFO, and when root a device node, as an output: refused, never replaced
mkfifo "$XP/fifo"
out_kind() { # out_kind KIND PATH
    bad_case "$1 as export_llama --out" 1 "exists and is $1" timeout 20 "$EXPORT" "$M25" --format gguf --out "$2"
    bad_case "$1 as tokenize train --out" 1 "exists and is $1" timeout 20 "$TOKENIZE" train "$RB/d.txt" --vocab-size 300 --out "$2"
    bad_case "$1 as tokenize encode --out" 1 "exists and is $1" timeout 20 "$TOKENIZE" encode "$RB/d.txt" --tokenizer "$RB/v300b" --out "$2"
}
out_kind "a FIFO" "$XP/fifo"
[ -p "$XP/fifo" ]
expect "the FIFO is still a FIFO" $? "$(ls -l "$XP/fifo")"
if [ "$(id -u)" = 0 ] && mknod "$XP/dev" c 1 3 2>/dev/null; then # /dev/null's numbers: harmless if written
    out_kind "a character device" "$XP/dev"
    [ -c "$XP/dev" ]
    expect "the device node is still a device" $? "$(ls -l "$XP/dev")"
else
    skip "a device node as an output" "not root, or mknod is not allowed here"
fi
# the trainer's own files: a symlink at log.csv or a temporary is refused, not followed or removed
# outputs on an input: the model, the tokenizer, the text
cp "$M25" "$XP/in.bin"
bad_case "export --out equal to the model" 1 "lands on or inside the input" "$EXPORT" "$XP/in.bin" --format gguf --out "$XP/in.bin"
cmp -s "$XP/in.bin" "$M25"
expect "the model is untouched" $? "changed"
bad_case "tokenize train --out equal to its text" 1 "lands on or inside the input" \
    "$TOKENIZE" train "$RB/d.txt" --vocab-size 300 --out "$RB/d.txt"
bad_case "tokenize encode --out equal to its tokenizer" 1 "lands on or inside the input" \
    "$TOKENIZE" encode "$RB/d.txt" --tokenizer "$RB/v300b" --out "$RB/v300b"
bad_case "tokenize train --out holding another file" 1 "exists and is not a BPE vocabulary" \
    "$TOKENIZE" train "$RB/d.txt" --vocab-size 300 --out "$XP/A.list"
# 12. errors name what they are about
bad_case "an hf --out with a trailing slash to a symlink" 1 "link: exists and is a symlink" \
    "$EXPORT" "$M25" --format hf --out "$XP/link/"
"$EXPORT" "$M25" --format hf --out "$XP/E/" 2>/dev/null && [ -f "$XP/E/config.json" ] && [ ! -e "$XP/E/.tmp" ]
expect "an hf --out with a trailing slash writes that folder" $? "$(ls -a "$XP/E" 2>&1 | tr '\n' ' ')"
bad_case "an empty --out" 2 "--out: an empty path" "$EXPORT" "$M25" --format gguf --out ''
bad_case "an export the target cannot run names the model" 1 "^export_llama: $TMP/a_dyt/model.bin: cannot export" \
    "$EXPORT" "$TMP/a_dyt/model.bin" --format gguf --out "$XP/dyt.gguf"

# 4. A mapped input that shrinks under a run: one line naming it, exit 1, the checkpoint intact
cp "$RB/d.txt" "$XP/shrink.txt"
"$TRAIN" --data "$XP/shrink.txt" "${RT[@]}" --steps 100000 --ckpt-every 5 --out "$XP/sh" 2>"$XP/sh.err" &
pid=$!
for _ in $(seq 200); do [ -f "$XP/sh/checkpoint.bin" ] && break; sleep 0.05; done
truncate -s 0 "$XP/shrink.txt"
timeout 20 tail --pid=$pid -f /dev/null
wait $pid
rc=$?
[ $rc -eq 1 ] && grep -q "^train_llama: .*shrink.txt: the file shrank while it was being read" "$XP/sh.err" &&
    "$INFER" "$XP/sh/checkpoint.bin" -n 4 --temperature 0 >/dev/null 2>&1
expect "training text truncated mid-run: exit 1, one line naming it, checkpoint.bin loads" $? \
    "exit $rc: $(tail -n 2 "$XP/sh.err" | tr '\n' ' ')"
head -c 400000 "$DATA" >"$XP/big.txt"
"$TOKENIZE" train "$XP/big.txt" --vocab-size 300 --out "$XP/big.v" 2>/dev/null &&
    "$TOKENIZE" encode "$XP/big.txt" --tokenizer "$XP/big.v" --out "$XP/big.tok" 2>/dev/null
# decode blocks on a full pipe; the cache is cut while it waits
{ "$TOKENIZE" decode "$XP/big.tok" --tokenizer "$XP/big.v" 2>"$XP/dec.err"; echo $? >"$XP/dec.rc"; } |
    { sleep 1; truncate -s 64 "$XP/big.tok"; cat >/dev/null; }
grep -q "^tokenize: .*big.tok: the file shrank while it was being read" "$XP/dec.err" && [ "$(cat "$XP/dec.rc")" = 1 ]
expect "tokenize decode's cache truncated mid-read: exit 1, one line naming it" $? \
    "exit $(cat "$XP/dec.rc"): $(head -c 200 "$XP/dec.err")"

# issue 25, items 7, 8, 9, 12, 13: float16 overflow, a foreign tokenizer, unchecked stdout, tracebacks, --help
section "robustness (issue 25): --f16 overflow, a foreign -z tokenizer, stdout, script errors, --help"

# 7. --f16 never turns a finite weight into inf: past float16's 65504 (from 65520 on, which rounds
# up to inf) the export is refused naming the tensor, and nothing is written, in GGUF and HF alike;
# 65504 and -65519 go out as the largest half. $TMP/a_rmsnorm: d 32, 2 layers, vocab 256, so wq[0]
# starts at parameter 256*32 + 2*32 (after wte and attn_norm) and attn_norm[0] at 8192.
patch_f32() { # patch_f32 SRC DST INDEX VALUE: parameter INDEX (after the 256-byte header) set to VALUE
    $PY -c "import struct,sys; b=bytearray(open(sys.argv[1],'rb').read()); o=256+4*int(sys.argv[3]); b[o:o+4]=struct.pack('<f',float(sys.argv[4])); open(sys.argv[2],'wb').write(b)" "$@"
}
patch_f32 "$TMP/a_rmsnorm/model.bin" "$RB/f16_big.bin" 8261 1e6      # wq[0], index 5
patch_f32 "$TMP/a_rmsnorm/model.bin" "$RB/f16_tie.bin" 8261 65520    # the tie between 65504 and inf
patch_f32 "$TMP/a_rmsnorm/model.bin" "$RB/f16_norm.bin" 8195 1e6     # attn_norm[0], index 3
patch_f32 "$TMP/a_rmsnorm/model.bin" "$RB/f16_max.bin" 8261 65504
patch_f32 "$TMP/a_rmsnorm/model.bin" "$RB/f16_below.bin" 8261 -65519
q_name() { [ "$1" = gguf ] && echo blk.0.attn_q.weight || echo model.layers.0.self_attn.q_proj.weight; }
for f in gguf hf; do
    bad_case "--format $f --f16 of a weight of 1e6" 1 \
        "f16_big.bin: --f16: tensor $(q_name $f) holds 1e+06 (index 5), beyond float16's range (65504): export in float32" \
        "$EXPORT" "$RB/f16_big.bin" --format $f --f16 --out "$RB/f16_big.$f"
    bad_case "--format $f --f16 of 65520 (rounds to inf)" 1 "f16_tie.bin: --f16: tensor $(q_name $f) holds 65520 (index 5)" \
        "$EXPORT" "$RB/f16_tie.bin" --format $f --f16 --out "$RB/f16_tie.$f"
    [ -z "$(ls -d "$RB"/f16_big."$f"* "$RB"/f16_tie."$f"* 2>/dev/null)" ]
    expect "a refused --format $f --f16 export leaves nothing (no file, folder or temporary)" $? "$(ls -d "$RB"/f16_*."$f"* 2>/dev/null)"
    "$EXPORT" "$RB/f16_big.bin" --format $f --out "$RB/f16_big32.$f" 2>/dev/null
    expect "the same model exports in float32 (--format $f)" $? "exit $?"
done
bad_case "--format hf --f16 of a norm gain of 1e6 (HF stores norms as float16)" 1 \
    "tensor model.layers.0.input_layernorm.weight holds 1e+06 (index 3)" \
    "$EXPORT" "$RB/f16_norm.bin" --format hf --f16 --out "$RB/f16_norm.hf"
"$EXPORT" "$RB/f16_norm.bin" --format gguf --f16 --out "$RB/f16_norm.gguf" 2>/dev/null
expect "--format gguf --f16 of a norm gain of 1e6 exports (GGUF keeps the norms float32)" $? "exit $?"
# the edge values differ from the model's own export in one half only, which holds 0x7bff (0xfbff)
one_half() { # one_half REF NEW HEX: NEW is REF with one aligned 2-byte value changed, to HEX
    $PY -c "import sys; a=open(sys.argv[1],'rb').read(); b=open(sys.argv[2],'rb').read(); d=[i for i in range(len(a)) if a[i]!=b[i]]; o=d[0]&~1 if d else 0; sys.exit(not (len(a)==len(b) and d and d[-1]<o+2 and b[o:o+2]==bytes.fromhex(sys.argv[3])))" "$@"
}
for f in gguf hf; do
    f16_file() { [ $f = gguf ] && echo "$RB/$1.gguf" || echo "$RB/$1.hf/model.safetensors"; }
    "$EXPORT" "$TMP/a_rmsnorm/model.bin" --format $f --f16 --out "$RB/f16_ref.$f" 2>/dev/null &&
        "$EXPORT" "$RB/f16_max.bin" --format $f --f16 --out "$RB/f16_max.$f" 2>/dev/null &&
        "$EXPORT" "$RB/f16_below.bin" --format $f --f16 --out "$RB/f16_below.$f" 2>/dev/null &&
        one_half "$(f16_file f16_ref)" "$(f16_file f16_max)" ff7b && one_half "$(f16_file f16_ref)" "$(f16_file f16_below)" fffb
    expect "--format $f --f16 of 65504 and -65519: exported, as the largest half 0x7bff and 0xfbff" $? "differs"
done

# 8. -z for llama2c names a llama2.c model's own vocabulary: refused for our byte model (its
# vocabulary is written without -z) and for a file that holds other than the model's tokens
# (run.c reads the first vocab_size; the first 256 of Llama 2's 32000 gave token 65 the text <0x3E>)
TOKL2=${TOKB:-../shared/data/tokenizer.bin}
if [ -f "$TOKL2" ]; then
    bad_case "-z Llama 2's tokenizer for a byte model (--format llama2c)" 1 \
        "-z .*tokenizer.bin: the model's vocabulary is our 256 bytes, written without -z" \
        "$EXPORT" "$TMP/a_rmsnorm/model.bin" -z "$TOKL2" --format llama2c --out "$RB/z_byte.bin"
    bad_case "-z Llama 2's tokenizer (32000 tokens) for a 256-token llama2.c file" 1 \
        "tokenizer.bin: holds 32000 tokens, the model has 256: not this model's tokenizer" \
        "$EXPORT" "$TMP/rt.bin" -z "$TOKL2" --format llama2c --out "$RB/z_l2c.bin"
    [ -z "$(ls "$RB"/z_byte* "$RB"/z_l2c* 2>/dev/null)" ]
    expect "a refused -z export writes neither model nor tokenizer" $? "$(ls "$RB"/z_* 2>/dev/null)"
else
    say "skip - -z Llama 2's tokenizer for a byte model: no $TOKL2"
fi
cat "$TMP/rt.tokenizer.bin" <($PY -c "import struct,sys; sys.stdout.buffer.write(struct.pack('<fi',0.0,2)+b'zz')") >"$RB/z257.tok"
cat "$TMP/rt.tokenizer.bin" <(printf 'abc') >"$RB/z_torn.tok"
bad_case "-z with one token more than the model" 1 "z257.tok: holds 257 tokens, the model has 256" \
    "$EXPORT" "$TMP/rt.bin" -z "$RB/z257.tok" --format llama2c --out "$RB/z257.bin"
bad_case "-z with a torn entry after the model's tokens" 1 "z_torn.tok: the bytes after the model's 256 tokens are not whole entries" \
    "$EXPORT" "$TMP/rt.bin" -z "$RB/z_torn.tok" --format llama2c --out "$RB/z_torn.bin"
"$EXPORT" "$TMP/rt.bin" -z "$TMP/rt.tokenizer.bin" --format llama2c --out "$RB/z_own.bin" 2>/dev/null &&
    cmp -s "$TMP/rt.bin" "$RB/z_own.bin" && cmp -s "$TMP/rt.tokenizer.bin" "$RB/z_own.tokenizer.bin"
expect "a llama2.c file with -z its own 256-token tokenizer: exported, the same bytes" $? "differs"

# 9. export_llama's --help checks its write as the other programs' do (tokenize's is above)
full "export_llama --help" "$EXPORT" --help
full "export_llama -h" "$EXPORT" -h
full "tokenize -h" "$TOKENIZE" -h

# 12. speedcheck.py on a folder or file it cannot read: one line naming the file, exit 1, no traceback
SC="$RB/sc" && mkdir -p "$SC"/nolog "$SC"/badms "$SC"/bin "$SC"/nocol "$SC"/dirlog/log.csv
awk -F, 'BEGIN { OFS = "," } NR == 3 { $7 = "abc" } { print }' "$TMP/a_rmsnorm/log.csv" >"$SC/badms/log.csv"
head -c 300 /dev/urandom | tr -d '\n' | { printf '\377'; cat; } >"$SC/bin/log.csv"
printf 'a,b\n1,2\n' >"$SC/nocol/log.csv"
sc() { bad_case "speedcheck.py on $1" 1 "^speedcheck.py: $2" $PY scripts/speedcheck.py "$3"; }
sc "a folder without log.csv" "$SC/nolog/log.csv: No such file or directory" "$SC/nolog"
sc "a log.csv with ms = abc" "$SC/badms/log.csv: line 3: ms = 'abc' is not a number" "$SC/badms"
sc "a log.csv that is not text" "$SC/bin/log.csv: not UTF-8 text" "$SC/bin"
sc "a log.csv without an ms column" "$SC/nocol/log.csv: no ms column" "$SC/nocol"
sc "a folder as log.csv" "$SC/dirlog/log.csv: Is a directory" "$SC/dirlog"
sc "a file for a run folder" "$TMP/a_rmsnorm/log.csv: not a run folder" "$TMP/a_rmsnorm/log.csv"
sc "a missing folder" "$SC/nope: no such folder" "$SC/nope"
$PY scripts/speedcheck.py "$TMP/a_rmsnorm" >"$RB/sc.out" 2>&1 && grep -q "a_rmsnorm: \(undisturbed\|measured under load\)" "$RB/sc.out"
expect "speedcheck.py on a run folder: its verdict, exit 0" $? "$(head -c 200 "$RB/sc.out")"
# issue 25, items 3, 10, 14: a log re-saved by another tool, an output inside the data, a closed pipe
section "robustness: a log re-saved by another tool, an output inside the data, a closed pipe"

# 3. A log.csv re-saved by another tool: CRLF line ends are read as LF (said
# in one line; the log is written back with LF); a header cell this run does
# not write, or a row whose cells do not match the header, is refused naming
# log.csv and the column or line (exit 1, nothing changed), never blanked
L="$RB/relog" && mkdir -p "$L"
rtrain --steps 8 --out "$L/full" 2>/dev/null
for k in crlf renamed row; do rtrain --steps 8 --stop-after 4 --out "$L/$k" 2>/dev/null; done
sed -i 's/$/\r/' "$L/crlf/log.csv"
"$TRAIN" --resume "$L/crlf/checkpoint.bin" --threads 1 2>"$L/crlf.err"
rc=$?
[ $rc -eq 0 ] && grep -q "crlf/log.csv: CRLF line ends (another tool's) read as LF; .*crlf/log.csv is written with LF" \
    "$L/crlf.err" && cmp -s <(losses "$L/full/log.csv") <(losses "$L/crlf/log.csv")
expect "a CRLF log.csv resumes with every column kept (the uninterrupted run's log, LF) and a line saying so" $? \
    "exit $rc: $(grep -v '^step' "$L/crlf.err" | tail -n 1); $(diff <(losses "$L/full/log.csv") <(losses "$L/crlf/log.csv") | head -3 | tr '\r\n' '^ ')"
sed -i '1s/,train_loss,/,loss,/' "$L/renamed/log.csv" && cp -r "$L/renamed" "$L/renamed0"
bad_case "a log.csv header cell renamed by another tool (train_loss -> loss)" 1 \
    "renamed/log.csv: column 3 'loss' is not one train_llama writes for this run (its columns missing from the header: train_loss); give the column its name back, or move the file away (the resume then starts a new log at step 4)" \
    "$TRAIN" --resume "$L/renamed/checkpoint.bin" --threads 1
diff -r "$L/renamed" "$L/renamed0" >/dev/null
expect "the refused resume changed nothing (log.csv, checkpoint)" $? "$(diff -r "$L/renamed" "$L/renamed0" | head -3 | tr '\n' ' ')"
sed -i '1s/,loss,/,train_loss,/' "$L/renamed/log.csv" &&
    "$TRAIN" --resume "$L/renamed/checkpoint.bin" --threads 1 2>/dev/null &&
    cmp -s <(losses "$L/full/log.csv") <(losses "$L/renamed/log.csv")
expect "with the name given back it resumes to the uninterrupted run's log" $? \
    "$(diff <(losses "$L/full/log.csv") <(losses "$L/renamed/log.csv") | head -3 | tr '\n' ' ')"
sed -i '4s/,[^,]*$//' "$L/row/log.csv"
bad_case "a log.csv row with a cell fewer than its header" 1 "row/log.csv line 4: not the header's [0-9]* cells; mend the line" \
    "$TRAIN" --resume "$L/row/checkpoint.bin" --threads 1

# 10. An output folder on or inside an input (--data, --val-data; a symlink
# to one is the same), or an input the run would overwrite there, is refused
# up front (exit 2) and nothing is written; an input inside the output is fine
O="$RB/outin" && mkdir -p "$O/corp" "$O/x" "$O/y" && head -c 15000 "$RB/d.txt" >"$O/corp/a.txt" &&
    tail -c 15000 "$RB/d.txt" >"$O/corp/b.txt" && ln -s corp "$O/link" && cp "$RB/d.txt" "$O/x/log.csv" &&
    cp "$RB/d.txt" "$O/y/d.txt" && cp "$RB/d.txt" "$O/v.txt" && ls -laR "$O" >"$O.before"
otr() { "$TRAIN" "${RT[@]}" --steps 4 "$@"; }
bad_case "--out equal to the --data folder" 2 \
    "--out $O/corp is the input $O/corp (--data): the run would write into its own input" \
    otr --data "$O/corp" --out "$O/corp"
bad_case "--out inside the --data folder" 2 "--out $O/corp/run lies inside the input $O/corp (--data)" \
    otr --data "$O/corp" --out "$O/corp/run"
bad_case "--out a symlink to the --data folder" 2 "--out $O/link is the input $O/corp (--data)" \
    otr --data "$O/corp" --out "$O/link"
bad_case "--out inside the --val-data folder" 2 "--out $O/corp/v lies inside the input $O/corp (--val-data)" \
    otr --data "$O/v.txt" --val-data "$O/corp" --out "$O/corp/v"
bad_case "--data naming a file the run writes in --out (a list's second file)" 2 \
    "$O/x/log.csv (--data): a file the run writes in --out $O/x; move it or choose another --out" \
    otr --data "$O/v.txt,$O/x/log.csv" --out "$O/x"
ls -laR "$O" | cmp -s - "$O.before" && cmp -s "$RB/d.txt" "$O/x/log.csv"
expect "the refused runs wrote nothing (the data folder and the colliding log.csv unchanged)" $? \
    "$(ls -laR "$O" | diff "$O.before" - | head -4 | tr '\n' ' ')"
otr --data "$O/corp" --stop-after 2 --out "$O/r" 2>/dev/null
bad_case "a resume into the --data folder (it would then hold other files)" 2 \
    "--out $O/corp is the input $O/corp (--data)" "$TRAIN" --resume "$O/r/checkpoint.bin" --out "$O/corp"
# allowed: the data inside the output folder, the validation text beside it by a ../ path; resumed there
otr --data "$O/y/d.txt" --val-data "$O/y/../v.txt" --stop-after 2 --out "$O/y" 2>/dev/null &&
    "$TRAIN" --resume "$O/y/checkpoint.bin" 2>"$O/y.err" && grep -q "status=finished" "$O/y/result.txt" &&
    cmp -s "$RB/d.txt" "$O/y/d.txt"
expect "--data inside --out and --val-data OUT/../v.txt: trained and resumed in the folder (exit 0)" $? \
    "$(tail -n 1 "$O/y.err")"

# 14. A stdout or stderr whose reader went away (SIGPIPE, EPIPE) or that was
# closed never ends a run: it goes on to its model, result and every log row
run_done() { # run_done DIR: finished, with model.bin and log rows 0..12
    grep -q "status=finished" "$1/result.txt" 2>/dev/null && [ -f "$1/model.bin" ] &&
        [ "$(cut -d, -f1 "$1/log.csv" | tr '\n' ' ')" = "step $(seq -s ' ' 0 12) " ]
}
done_why() { echo "exit $1; $(ls "$2" 2>/dev/null | tr '\n' ' '); log rows $(($(wc -l <"$2/log.csv" 2>/dev/null) - 1))"; }
rtrain --steps 12 --out "$RB/pipe" 2>&1 | head -n 1 >/dev/null
rc=${PIPESTATUS[0]}
[ $rc -eq 0 ] && run_done "$RB/pipe"
expect "train_llama ... 2>&1 | head -1: the run finishes (exit 0, result.txt, model.bin, every log row)" $? \
    "$(done_why $rc "$RB/pipe")"
# a pipe read by no one from the start: every write to it fails (head -1 may not have exited yet)
$PY -c 'import os, subprocess, sys; r, w = os.pipe(); os.close(r); sys.exit(subprocess.call(sys.argv[1:], stdout=w, stderr=w) & 255)' \
    "$TRAIN" --data "$RB/d.txt" "${RT[@]}" --steps 12 --out "$RB/pipe0"
rc=$?
[ $rc -eq 0 ] && run_done "$RB/pipe0"
expect "stdout and stderr a pipe with no reader: the run finishes (exit 0)" $? "$(done_why $rc "$RB/pipe0")"
rtrain --steps 12 --out "$RB/shut1" <&- >&- 2>/dev/null
rc=$?
[ $rc -eq 0 ] && run_done "$RB/shut1"
expect "stdin and stdout closed (<&- >&-): the run finishes (exit 0)" $? "$(done_why $rc "$RB/shut1")"
rtrain --steps 12 --out "$RB/shut2" 2>&-
rc=$?
# a closed stderr's number must not be reused by a file the run writes: progress lines land nowhere
[ $rc -eq 0 ] && run_done "$RB/shut2" && [ ! -s "$RB/shut2/.lock" ] && ! grep -q "^step [0-9]\|train_llama:" "$RB/shut2/log.csv"
expect "stderr closed (2>&-): the run finishes (exit 0), no progress line in its files" $? \
    "$(done_why $rc "$RB/shut2"); .lock $(wc -c <"$RB/shut2/.lock" 2>/dev/null) bytes"

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

# ---------------------------------------------------------------------------
# issue 25, what a hostile look at the fixes found (docs/robustness.md)
# --keep's numbered checkpoints: a device, symlink or foreign file there is refused at start, kept
mkdir -p "$XP/keep" && ln -s "$XP/victim" "$XP/keep/checkpoint-2.bin" && printf 'precious' >"$XP/keep/checkpoint-1.bin"
refused_out "a symlink at OUT/checkpoint-2.bin with --keep" "checkpoint-[12].bin: is not a checkpoint this trainer wrote" \
    "$TRAIN" --data "$RB/d.txt" "${RT[@]}" --steps 4 --ckpt-every 2 --keep 3 --out "$XP/keep"
rm "$XP/keep/checkpoint-1.bin"
refused_out "a foreign file at OUT/checkpoint-2.bin with --keep" "checkpoint-2.bin: is not a checkpoint this trainer wrote" \
    "$TRAIN" --data "$RB/d.txt" "${RT[@]}" --steps 4 --ckpt-every 2 --keep 3 --out "$XP/keep"
[ -L "$XP/keep/checkpoint-2.bin" ] && [ "$(cat "$XP/victim")" = precious ] && [ ! -e "$XP/keep/log.csv" ]
expect "the numbered names are kept, nothing trained" $? "$(ls -l "$XP/keep" | tr '\n' ' ')"
# a log whose last line lost its line end (an editor) or that runs past the checkpoint: said, not silent
rtrain --steps 8 --stop-after 4 --out "$XP/nl" 2>/dev/null && printf '%s' "$(cat "$XP/nl/log.csv")" >"$XP/nl/log.tmp" &&
    mv "$XP/nl/log.tmp" "$XP/nl/log.csv" && "$TRAIN" --resume "$XP/nl/checkpoint.bin" 2>"$XP/nl.err" >/dev/null
rc=$?
[ $rc -eq 0 ] && grep -q "log.csv: 1 line after step 4 dropped" "$XP/nl.err"
expect "a log.csv without its last line end: the dropped row is said (exit 0)" $? "exit $rc: $(grep log.csv "$XP/nl.err")"
# a reader that goes away: exit 1 and a line, not SIGPIPE's 141
"$INFER" "$TMP/a_rmsnorm/model.bin" -n 2000 --temperature 0 2>"$XP/pipe.err" | head -c 1 >/dev/null
rc=${PIPESTATUS[0]}
[ $rc -eq 1 ] && grep -q "stdout: write failed: Broken pipe" "$XP/pipe.err"
expect "infer_llama into a closed pipe: exit 1, stdout: write failed" $? "exit $rc: $(tail -n 1 "$XP/pipe.err")"
bad_case "train_llama --out ''" 2 "--out: an empty path" "$TRAIN" --data "$RB/d.txt" --out ''
bad_case "train_llama --data ''" 2 "--data: an empty path" "$TRAIN" --data ''

# ---------------------------------------------------------------------------
section "issue 25 item 11: flags that do nothing, repeats; issue 26 item 9: --version and provenance"
FD="$TMP/flags" && mkdir -p "$FD"
bad_case "--alpha-attn typed for RMSNorm" 2 \
    "\-\-alpha-attn does nothing in this run (--norm rmsnorm): it applies to a norm kind with alpha" \
    "$TRAIN" --data "$RB/d.txt" --alpha-attn 0.5 --out "$FD/x"
bad_case "--scalar-lr-mult for a model without scalar parameters" 2 "\-\-scalar-lr-mult does nothing in this run" \
    "$TRAIN" --data "$RB/d.txt" --scalar-lr-mult 2 --out "$FD/x"
bad_case "--norm-decay for a model of matrices and embeddings only" 2 "\-\-norm-decay does nothing in this run (--norm none)" \
    "$TRAIN" --data "$RB/d.txt" --norm none --emb-scale off --norm-decay --out "$FD/x"
bad_case "--overlap in one process" 2 "\-\-overlap does nothing in this run (--norm rmsnorm): it applies to a run of 2 or more" \
    "$TRAIN" --data "$RB/d.txt" --overlap 1 --out "$FD/x"
bad_case "--print-config with another flag" 2 "\-\-print-config takes no other option (got --dim)" \
    "$TRAIN" --print-config "$TMP/a_dyt/model.bin" --dim 64
bad_case "--list-norms with another flag" 2 "\-\-list-norms takes no other option (got --norm)" "$TRAIN" --list-norms --norm dyt
bad_case "a trainer flag given twice" 2 "\-\-lr given 2 times: give it once" \
    "$TRAIN" --data "$RB/d.txt" --lr 1e-3 --lr=2e-3 --out "$FD/x"
bad_case "an infer_llama flag given twice" 2 "\-\-temperature given 2 times: give it once" \
    "$INFER" "$TMP/a_rmsnorm/model.bin" --temperature 0 --temperature 1
bad_case "an alpha0 on resuming an RMSNorm checkpoint" 2 "\-\-alpha-attn does nothing in this run (--norm rmsnorm)" \
    "$TRAIN" --resume "$TMP/a_rmsnorm/checkpoint.bin" --alpha-attn 1 --out "$FD/x"
[ ! -e "$FD/x" ]
expect "the refused runs wrote nothing" $? "$(ls "$FD")"
# a flag whose help says "the last wins": the last, said
rtrain --steps 2 --threads 2 --threads 1 --out "$FD/rep" 2>"$FD/rep.err" >/dev/null &&
    grep -q "note: --threads given 2 times: the last, 1, is used" "$FD/rep.err" && grep -q "^threads=1$" "$FD/rep/result.txt"
expect "--threads given twice: the last wins, with a note" $? "$(head -c 300 "$FD/rep.err")"
# --shared-flags (compare_norms.sh, sweep.sh): what does nothing is dropped with one note and not recorded;
# the run equals the one typed without it
rtrain --steps 3 --shared-flags --alpha-attn 0.5 --lr 1e-3 --lr 2e-3 --out "$FD/sh" 2>"$FD/sh.err" >/dev/null &&
    rtrain --steps 3 --lr 2e-3 --out "$FD/plain" 2>/dev/null >/dev/null &&
    [ "$(grep -c "note: dropped, as they do nothing in this run (--norm rmsnorm): --alpha-attn$" "$FD/sh.err")" = 1 ] &&
    ! grep -q -- "--alpha" "$FD/sh/config.txt" && grep -qx -- "--lr 0.002" "$FD/sh/config.txt" &&
    cmp -s "$FD/sh/model.bin" "$FD/plain/model.bin"
expect "--shared-flags: an alpha0 for RMSNorm dropped with one note, not recorded (model.bin equals the run without it)" \
    $? "$(head -c 300 "$FD/sh.err")"
rtrain --norm dyt --steps 2 --shared-flags --alpha-attn 0.5 --out "$FD/shd" 2>"$FD/shd.err" >/dev/null &&
    ! grep -q dropped "$FD/shd.err" && grep -qx -- "--alpha-attn 0.5" "$FD/shd/config.txt"
expect "--shared-flags: DyT keeps its alpha0" $? "$(head -c 300 "$FD/shd.err")"
# a preset's flags that do nothing for the kind: dropped with a note; the run is that of the flags that remain
rtrain --steps 3 --preset dyt-official --norm rmsnorm --out "$FD/pr" 2>"$FD/pr.err" >/dev/null &&
    rtrain --steps 3 --norm rmsnorm --norm-decay --weight-decay 0.1 --clip 1 --out "$FD/pr2" 2>/dev/null >/dev/null &&
    grep -q "note: dropped.*--no-dyt-beta (from --preset)" "$FD/pr.err" && cmp -s "$FD/pr/model.bin" "$FD/pr2/model.bin"
expect "--preset dyt-official --norm rmsnorm: its DyT flags dropped with a note, the run that of the rest" $? \
    "$(head -c 300 "$FD/pr.err")"
# --version: every program; the trainer's files record the build
build=$("$TRAIN" --version | sed -n 's/^train_llama //p')
ok_v=1
for p in "$INFER:infer_llama" "$EXPORT:export_llama" "$TOKENIZE:tokenize"; do
    [ "$("${p%%:*}" --version)" = "${p##*:} $build" ] || ok_v=0
done
[ $ok_v = 1 ] && [[ $build =~ ^[0-9]+\.[0-9]+-([0-9a-f]+(-dirty)?|unknown)$ ]]
expect "--version: every program prints the same build ($build)" $? "train_llama says '$build'"
grep -qx "build=$build" "$FD/rep/result.txt" && [ "$(head -n 1 "$FD/rep/config.txt")" = "--made-by $build" ] &&
    "$TRAIN" --print-config "$FD/rep/checkpoint.bin" | cmp -s - "$FD/rep/config.txt"
expect "result.txt, config.txt and the checkpoint record the build" $? "$(grep build "$FD/rep/result.txt")"
# a config from another build: said
sed '1s/.*/--made-by 0.1-0000000/; s/^--out .*//' "$FD/rep/config.txt" | xargs "$TRAIN" --out "$FD/other" --stop-after 1 \
    2>"$FD/other.err" >/dev/null && grep -q "note: --made-by 0.1-0000000: the settings come from another build" "$FD/other.err"
expect "a config.txt from another build: the run says so" $? "$(head -c 300 "$FD/other.err")"
# the build's name in the run block: text, or the checkpoint is refused naming the slots
size=$(stat -c %s "$FD/rep/checkpoint.bin")
rbo=$((size - 1024 - $($PY -c "import struct,sys; print(struct.unpack_from('<i', open(sys.argv[1],'rb').read(), 80)[0])" "$FD/rep/checkpoint.bin")))
patch_bytes "$FD/rep/checkpoint.bin" "$FD/badbuild.bin" $((rbo + 8 * 120)) "<q" -1
bad_case "a checkpoint whose build name is not text" 1 "badbuild.bin: run settings slots 120 to 127: the build's name is not text" \
    "$TRAIN" --resume "$FD/badbuild.bin" --out "$FD/bb"
