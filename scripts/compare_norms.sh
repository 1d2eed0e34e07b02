#!/usr/bin/env bash
# compare_norms.sh: train every norm x seed with train_llama, analyse the runs, sample text.
#
# Run folders: OUT/runs/<norm>_s<k> (seed k of every norm uses --seed k, so seeds pair up
# across norms), each with run.json (norm, seed, data, flags; see scripts/analyze.py),
# train.log (the trainer's output) and what train_llama writes (log.csv, result.txt,
# model.bin, checkpoint.bin). Reruns are cheap: a run with result.txt is skipped, and one with
# checkpoint.bin but no result.txt is resumed with the same flags.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/compare_norms.sh --data FILE [options] [train_llama flags] [-- raw flags]

Trains every norm x seed with ./train_llama, then runs scripts/analyze.py and writes a text
sample from each norm's best run (lowest final val loss) with ./infer_llama.

Options:
  --data FILE           training text (required)
  --seeds N             seeds 0..N-1 per norm (default 3)
  --seed-list LIST      only these seeds, comma-separated (e.g. 3,4 to add seeds to a finished
                        comparison; sweep.sh runs one seed per call with it)
  --norms LIST          comma-separated norm kinds, any of `train_llama --list-norms`
                        (default rmsnorm,dyt), e.g. rmsnorm,layernorm,dyt,derf,hardtanh,none
  --baseline NAME       the kind every other kind is compared with (default rmsnorm, or the
                        first of --norms when rmsnorm is not among them)
  --out DIR             output folder (default runs/compare in the repository)
  --sample-prompt STR   prompt for the samples (default "ROMEO:")
  --sample-tokens N     tokens per sample (default 300)
  --dry-run             check the arguments, print the train commands, run nothing
  --no-analyze          skip scripts/analyze.py          (used by sweep.sh)
  --no-sample           skip the text samples            (used by sweep.sh)
  --runs-dir DIR        put run folders in DIR instead of OUT/runs (used by sweep.sh)
  -h, --help            this text

train_llama flags are passed through to every run (also as --flag=value); the flags known
are those `train_llama --help` lists, so every flag of the trainer works here.
  --stop-after N trains each run N more steps and stops it with a checkpoint: rerun the
  same command to continue. It and --threads are left out of run.json (they say how a run
  is executed, not what it is), so they may change between calls.
  Everything after "--" goes to train_llama unchecked.
  --seed, --norm, --out, --resume and --data are set by this script.

The summary gives each kind against the baseline (mean difference, 95% CI, Welch p), the
seeds that collapsed (final val loss within 0.1 nats of the data's unigram loss) and speed
from the runs not measured under load (scripts/speedcheck.py).

Outputs: OUT/summary.md, OUT/loss_curves.png/.svg, OUT/alpha.png, OUT/sample_<norm>.txt,
OUT/runs/<norm>_s<k>/. Binaries: ../train_llama and ../infer_llama relative to this
script, or the environment variables TRAIN_LLAMA and INFER_LLAMA.
Exit status: 0 when every run finished or diverged (a divergence is a result), 1 when a run
or a later step failed, 2 on a usage error.

Example:
  scripts/compare_norms.sh --data data/tinyshakespeare.txt --seeds 3 --steps 2000 --dim 128
EOF
}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$SCRIPT_DIR")
TRAIN=${TRAIN_LLAMA:-$ROOT/train_llama}
INFER=${INFER_LLAMA:-$ROOT/infer_llama}
PYTHON=/usr/bin/python3  # the interpreter with numpy and matplotlib
ME=compare_norms.sh

OWN_FLAGS=" seed norm out resume data "
NOT_PASSED=" help list-norms print-config "  # train_llama flags that do not train
FALLBACK_NORMS="rmsnorm dyt"                # a trainer without --list-norms knows these

usage_error() { echo "$ME: error: $*; see --help" >&2; exit 2; }
fail() { echo "$ME: error: $*" >&2; exit 1; }
is_in() {  # is word $1 in the whitespace-separated list $2?
  local w
  for w in $2; do [[ $w == "$1" ]] && return 0; done
  return 1
}

# The trainer's flags, from its --help ("  --name X  text" takes a value, "  --name  text"
# does not): VALUE_FLAGS and BOOL_FLAGS, space-separated names without dashes.
read_train_flags() {
  local help line
  [[ -x $TRAIN ]] || fail "train_llama not found at $TRAIN (build it, or set TRAIN_LLAMA)"
  help=$("$TRAIN" --help 2>&1) || true
  VALUE_FLAGS=" " BOOL_FLAGS=" "
  while IFS= read -r line; do
    if [[ $line =~ ^\ \ --([a-z0-9-]+)\ [A-Z]+\  ]]; then
      VALUE_FLAGS+="${BASH_REMATCH[1]} "
    elif [[ $line =~ ^\ \ --([a-z0-9-]+)\ \  ]]; then
      BOOL_FLAGS+="${BASH_REMATCH[1]} "
    fi
  done <<<"$help"
  [[ $VALUE_FLAGS != " " ]] || fail "cannot read the flags of $TRAIN from its --help"
}

# The kinds the trainer knows: `train_llama --list-norms` (one per line), or FALLBACK_NORMS.
known_norms() {
  local out
  out=$("$TRAIN" --list-norms 2>/dev/null) || true
  if [[ -n $out && ! $out =~ [^a-z0-9_$'\n'-] ]]; then
    echo $out
  else
    echo $FALLBACK_NORMS
  fi
}

# ---- arguments ------------------------------------------------------------------------
DATA="" SEEDS=3 SEED_LIST_ARG="" NORMS=rmsnorm,dyt BASELINE="" OUT="$ROOT/runs/compare" RUNS_DIR=""
PROMPT="ROMEO:" SAMPLE_TOKENS=300 DRY_RUN=0 ANALYZE=1 SAMPLE=1
TRAIN_FLAGS=()

# Split --flag=value into --flag value (up to a bare "--", after which nothing is touched).
split_args() {
  local raw=0 a
  for a in "$@"; do
    if [[ $a == -- ]]; then
      ARGS+=("$a")
      raw=1
    elif ((raw)) || [[ $a != --*=* ]]; then
      ARGS+=("$a")
    else
      ARGS+=("${a%%=*}" "${a#*=}")
    fi
  done
}

parse_args() {
  while (($#)); do
    local opt=$1
    case $opt in
      -h|--help) usage; exit 0 ;;
      --dry-run) DRY_RUN=1; shift; continue ;;
      --no-analyze) ANALYZE=0; shift; continue ;;
      --no-sample) SAMPLE=0; shift; continue ;;
      --) shift; TRAIN_FLAGS+=("$@"); return ;;
    esac
    local name=${opt#--}
    if [[ $opt != --* ]]; then
      usage_error "unexpected argument '$opt'"
    elif is_in "$name" "$BOOL_FLAGS" && ! is_in "$name" "$OWN_FLAGS $NOT_PASSED"; then
      TRAIN_FLAGS+=("$opt"); shift; continue
    fi
    (($# >= 2)) || usage_error "$opt needs a value"
    case $opt in
      --data) DATA=$2 ;;
      --seeds) SEEDS=$2 ;;
      --seed-list) SEED_LIST_ARG=$2 ;;
      --norms) NORMS=$2 ;;
      --baseline) BASELINE=$2 ;;
      --out) OUT=$2 ;;
      --runs-dir) RUNS_DIR=$2 ;;
      --sample-prompt) PROMPT=$2 ;;
      --sample-tokens) SAMPLE_TOKENS=$2 ;;
      *)
        is_in "$name" "$OWN_FLAGS" && usage_error "$opt is set by this script (per run)"
        is_in "$name" "$VALUE_FLAGS" && ! is_in "$name" "$NOT_PASSED" ||
          usage_error "unknown option '$opt'"
        TRAIN_FLAGS+=("$opt" "$2") ;;
    esac
    shift 2
  done
}

check_args() {
  [[ -n $DATA ]] || usage_error "--data FILE is required"
  [[ -f $DATA && -r $DATA ]] || fail "--data $DATA: no such readable file (data/get_data.sh fetches Tiny Shakespeare)"
  DATA=$(realpath -- "$DATA")
  [[ $SEEDS =~ ^[1-9][0-9]*$ ]] || usage_error "--seeds wants a positive integer, got '$SEEDS'"
  SEED_LIST=($(seq 0 $((SEEDS - 1))))
  if [[ -n $SEED_LIST_ARG ]]; then
    [[ $SEED_LIST_ARG =~ ^[0-9]+(,[0-9]+)*$ ]] ||
      usage_error "--seed-list wants seeds like 0,3, got '$SEED_LIST_ARG'"
    IFS=, read -r -a SEED_LIST <<<"$SEED_LIST_ARG"
  fi
  [[ $SAMPLE_TOKENS =~ ^[1-9][0-9]*$ ]] || usage_error "--sample-tokens wants a positive integer"
  IFS=, read -r -a NORM_LIST <<<"$NORMS"
  ((${#NORM_LIST[@]})) || usage_error "--norms is empty"
  local n known
  known=$(known_norms)
  for n in "${NORM_LIST[@]}"; do
    is_in "$n" "$known" || usage_error "--norms: unknown norm '$n' (train_llama knows: ${known// /, })"
  done
  BASELINE=${BASELINE:-$(is_in rmsnorm "${NORM_LIST[*]}" && echo rmsnorm || echo "${NORM_LIST[0]}")}
  is_in "$BASELINE" "${NORM_LIST[*]}" || usage_error "--baseline $BASELINE is not one of --norms ($NORMS)"
  RUNS_DIR=${RUNS_DIR:-$OUT/runs}
  ((DRY_RUN)) && return
  if ((SAMPLE)) && [[ ! -x $INFER ]]; then
    fail "infer_llama not found at $INFER (build it, set INFER_LLAMA, or pass --no-sample)"
  fi
  return 0
}

# ---- one run --------------------------------------------------------------------------
json_str() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/\\t}; s=${s//$'\n'/\\n}
  printf '"%s"' "$s"
}

run_json() {  # norm seed -> the run.json text (deterministic, so it can be compared)
  local out a sep="" skip=0
  out="{\"norm\": $(json_str "$1"), \"seed\": $2, \"data\": $(json_str "$DATA"), \"args\": ["
  for a in "${TRAIN_FLAGS[@]}"; do
    # --stop-after and --threads say how this call runs, not what the run is
    if ((skip)); then skip=0; continue; fi
    if [[ $a == --stop-after || $a == --threads ]]; then skip=1; continue; fi
    out+="$sep$(json_str "$a")"; sep=", "
  done
  printf '%s]}\n' "$out"
}

result_value() {  # dir key -> value of key= in dir/result.txt (empty if absent)
  [[ -f $1/result.txt ]] || return 0
  awk -F= -v k="$2" '$1 == k { sub(/^[^=]*=/, ""); print; exit }' "$1/result.txt"
}

has_progress() { [[ -f $1/result.txt || -f $1/checkpoint.bin || -s $1/log.csv ]]; }

run_one() {  # norm seed
  local norm=$1 seed=$2
  local dir="$RUNS_DIR/${norm}_s$seed" meta rc=0
  # --shared-flags: one flag set for every kind; what does nothing for this kind (an
  # alpha0 for RMSNorm) is dropped with a note in train.log, and a repeat takes the last
  local cmd=("$TRAIN" --data "$DATA" --out "$dir" --norm "$norm" --seed "$seed" --shared-flags
             "${TRAIN_FLAGS[@]}")
  meta=$(run_json "$norm" "$seed")
  if ((DRY_RUN)); then echo "${cmd[*]}"; return; fi
  mkdir -p "$dir"
  # Settings must match once the run has produced something; a run that never got going
  # (e.g. train_llama rejected its flags) simply takes the new ones.
  if [[ -f $dir/run.json ]] && has_progress "$dir"; then
    [[ $(<"$dir/run.json") == "$meta" ]] || fail "$dir was started with other settings
  (its run.json: $(<"$dir/run.json"))
  (now:          $meta)
  Use another --out, delete that run folder, or delete its run.json to reuse it as it is."
  else
    printf '%s\n' "$meta" >"$dir/run.json"
  fi
  if [[ -f $dir/result.txt ]]; then
    echo "== $dir: $(result_value "$dir" status), skipped"
    return
  fi
  if [[ -f $dir/checkpoint.bin ]]; then
    cmd+=(--resume "$dir/checkpoint.bin")
    echo "== $dir: resuming from checkpoint.bin"
  else
    echo "== $dir: training"
  fi
  echo "   ${cmd[*]}"
  "${cmd[@]}" 2>&1 | tee -a "$dir/train.log" || rc=$?  # pipefail: rc is train_llama's
  if ((rc == 0)); then
    [[ -f $dir/result.txt ]] && return
    [[ -f $dir/checkpoint.bin ]] || fail "train_llama exited 0 but wrote no $dir/result.txt"
    echo "== $dir: stopped before the end (checkpoint saved)"
    STOPPED+=("$dir")
  elif [[ $(result_value "$dir" status) == diverged ]]; then
    echo "== $dir: diverged (recorded, carrying on)"
  else
    fail "train_llama failed on $dir (exit $rc, no status=diverged); see $dir/train.log"
  fi
}

# ---- after training -------------------------------------------------------------------
best_run() {  # norm -> the finished run folder with the lowest final val loss (or nothing)
  local norm=$1 best="" best_loss="" dir loss k
  for k in "${SEED_LIST[@]}"; do
    dir="$RUNS_DIR/${norm}_s$k"
    [[ $(result_value "$dir" status) == finished && -f $dir/model.bin ]] || continue
    loss=$(result_value "$dir" final_val_loss)
    if [[ -z $best ]] || awk -v a="$loss" -v b="$best_loss" 'BEGIN { exit !(a + 0 < b + 0) }'
    then
      best=$dir best_loss=$loss
    fi
  done
  printf '%s' "$best"
}

write_samples() {
  local norm best tmp
  for norm in "${NORM_LIST[@]}"; do
    best=$(best_run "$norm")
    if [[ -z $best ]]; then
      echo "== no finished $norm run: no sample_$norm.txt"
      continue
    fi
    tmp="$OUT/.sample_$norm.txt.tmp"
    "$INFER" "$best/model.bin" --prompt "$PROMPT" -n "$SAMPLE_TOKENS" --temperature 0.8 \
      --top-p 0.9 --seed 7 >"$tmp" || { rm -f "$tmp"; fail "infer_llama failed on $best/model.bin"; }
    mv "$tmp" "$OUT/sample_$norm.txt"
    SAMPLES+=("$OUT/sample_$norm.txt (from $best, final val loss $(result_value "$best" final_val_loss))")
  done
}

report() {
  echo
  echo "Done. Results in $OUT:"
  if ((ANALYZE)); then
    echo "  summary       $OUT/summary.md"
    echo "  loss curves   $OUT/loss_curves.png, $OUT/loss_curves.svg"
    [[ -f $OUT/alpha.png ]] && echo "  alpha         $OUT/alpha.png"
  fi
  local s
  for s in "${SAMPLES[@]}"; do echo "  sample        $s"; done
  echo "  run folders   $RUNS_DIR/<norm>_s<seed>/ (log.csv, result.txt, train.log, model.bin)"
  if ((${#STOPPED[@]})); then
    echo "${#STOPPED[@]} run(s) stopped before the end; run the same command again to continue."
  fi
}

main() {
  ARGS=() STOPPED=()
  split_args "$@"
  [[ " ${ARGS[*]} " == *" -h "* || " ${ARGS[*]} " == *" --help "* ]] && { usage; exit 0; }
  read_train_flags
  parse_args "${ARGS[@]}"
  check_args
  local norm k dirs=()
  for k in "${SEED_LIST[@]}"; do
    for norm in "${NORM_LIST[@]}"; do
      run_one "$norm" "$k"
      dirs+=("$RUNS_DIR/${norm}_s$k")
    done
  done
  ((DRY_RUN)) && return
  mkdir -p "$OUT"
  if ((ANALYZE)); then
    "$PYTHON" "$SCRIPT_DIR/analyze.py" --out "$OUT" --baseline "$BASELINE" "${dirs[@]}" ||
      fail "analyze.py failed"
  fi
  SAMPLES=()
  ((SAMPLE)) && write_samples
  if ((ANALYZE || SAMPLE)); then report; fi  # a sweep (neither) reports for itself
}

main "$@"
