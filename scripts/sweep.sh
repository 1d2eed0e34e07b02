#!/usr/bin/env bash
# sweep.sh: train every value (or grid cell of two flags) x norm x seed, then analyse it.
#
# Each run is one scripts/compare_norms.sh call (--no-analyze --no-sample --seed-list K) with
# its folder in OUT/runs/<param>=<value>[,<param2>=<value2>]/<norm>_s<seed>, so skipping
# finished runs, resuming from checkpoints and recording divergences work exactly as there.
# A run that fails (an error, not a divergence) is reported and the sweep carries on.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/sweep.sh --param NAME --values V1,V2,... [--param2 NAME2 --values2 W1,W2,...]
                        --out DIR [options] [train flags]

Runs ./train_llama for every value (or every cell of the grid of two flags) x norm x seed,
then scripts/analyze.py: a plot of the final val loss against the value, or with --param2 a
heatmap per norm (collapsed cells marked, the baseline's best cell outlined).

Options:
  --param NAME      the train_llama flag to sweep, without dashes (lr, alpha-attn, ...)
  --values LIST     comma-separated values, e.g. 3e-4,1e-3,3e-3
  --param2 NAME     a second flag: the sweep becomes a grid of --values x --values2
  --values2 LIST    its values
  --out DIR         output folder (required)
  --data FILE       training text (default data/tinyshakespeare.txt in the repository)
  --norms LIST      comma-separated norm kinds (default rmsnorm,dyt)
  --baseline NAME   the kind the others are compared with (default rmsnorm if swept)
  --seeds N         seeds 0..N-1 per norm and cell (default 3)
  --jobs auto|N     runs at a time. N > 1: N runs side by side with --threads 1 each;
                    1: one after another with all threads. auto (default): a short probe
                    (20 steps of the first run's configuration, alone with all threads,
                    then one per core side by side) measures which finishes the sweep
                    sooner on this machine now, and the sweep prints which it chose and
                    the load average it measured under. Runs go side by side only when
                    that many fit in the available memory (the probe's peak RSS).
  --dry-run         check the arguments, print the train commands, run nothing
  -h, --help        this text
Other arguments are train_llama flags, passed to every run (see compare_norms.sh --help).

Outputs: OUT/summary.md, OUT/sweep.png/.svg (one flag) or OUT/grid.png/.svg (two flags),
OUT/schedule.txt (the probe's figures and the choice), OUT/runs/<cell>/<norm>_s<k>/.
A diverging run (train_llama exits non-zero with status=diverged) is recorded, not an error.
Exit status: 0 when every run finished or diverged, 1 when some failed, 2 on a usage error.

Examples:
  scripts/sweep.sh --param lr --values 3e-4,1e-3,3e-3,1e-2 --out runs/lr --steps 1000
  scripts/sweep.sh --param lr --values 1e-3,3e-3 --param2 alpha-attn --values2 0.5,1 \
      --norms rmsnorm,dyt --seeds 3 --out runs/grid --steps 600
EOF
}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$SCRIPT_DIR")
COMPARE="$SCRIPT_DIR/compare_norms.sh"
TRAIN=${TRAIN_LLAMA:-$ROOT/train_llama}
PYTHON=/usr/bin/python3
ME=sweep.sh
PROBE_STEPS=20

usage_error() { echo "$ME: error: $*; see --help" >&2; exit 2; }
fail() { echo "$ME: error: $*" >&2; exit 1; }

PARAM="" VALUES="" PARAM2="" VALUES2="" OUT="" DATA="$ROOT/data/tinyshakespeare.txt"
NORMS=rmsnorm,dyt BASELINE="" SEEDS=3 JOBS=auto DRY_RUN=0
PASS=()  # arguments for compare_norms.sh / train_llama, in their original order
OWN=" param values param2 values2 out data norms baseline seeds jobs "

parse_args() {
  local name
  while (($#)); do
    case $1 in
      -h|--help) usage; exit 0 ;;
      --dry-run) DRY_RUN=1; shift; continue ;;
      --) PASS+=("$@"); return ;;
    esac
    name=${1#--}
    name=${name%%=*}
    if [[ $1 == --* && $OWN == *" $name "* ]]; then
      if [[ $1 == *=* ]]; then
        set_own "$name" "${1#*=}"; shift
      else
        (($# >= 2)) || usage_error "$1 needs a value"
        set_own "$name" "$2"; shift 2
      fi
    else
      PASS+=("$1"); shift  # checked by compare_norms.sh
    fi
  done
}

set_own() {
  case $1 in
    param) PARAM=$2 ;;  values) VALUES=$2 ;;  param2) PARAM2=$2 ;;  values2) VALUES2=$2 ;;
    out) OUT=$2 ;;  data) DATA=$2 ;;  norms) NORMS=$2 ;;  baseline) BASELINE=$2 ;;
    seeds) SEEDS=$2 ;;  jobs) JOBS=$2 ;;
  esac
}

check_values() {  # flag-name list-text -> the values in VALUE_OUT
  IFS=, read -r -a VALUE_OUT <<<"$2"
  ((${#VALUE_OUT[@]})) || usage_error "--$1 is empty"
  local v
  for v in "${VALUE_OUT[@]}"; do
    [[ -n $v && $v != */* && $v != *[[:space:],=]* ]] || usage_error "--$1: bad value '$v'"
  done
}

check_param() {  # option-name param
  [[ -n $2 ]] || usage_error "--$1 NAME is required"
  [[ $2 =~ ^[a-z][a-z0-9-]*$ ]] || usage_error "--$1 wants a flag name without dashes, got '$2'"
  case $2 in
    seed|norm|out|data|resume) usage_error "--$1 $2 cannot be swept (set per run by the scripts)" ;;
  esac
  local a
  for a in "${PASS[@]}"; do
    [[ $a == "--$2" || $a == "--$2="* ]] && usage_error "--$2 is swept; leave it out of the train flags"
  done
  return 0
}

check_args() {
  check_param param "$PARAM"
  [[ -n $VALUES ]] || usage_error "--values LIST is required"
  check_values values "$VALUES"
  VALUE_LIST=("${VALUE_OUT[@]}")
  VALUE2_LIST=("")
  if [[ -n $PARAM2 || -n $VALUES2 ]]; then
    check_param param2 "$PARAM2"
    [[ $PARAM2 != "$PARAM" ]] || usage_error "--param2 must differ from --param"
    [[ -n $VALUES2 ]] || usage_error "--values2 LIST is required with --param2"
    check_values values2 "$VALUES2"
    VALUE2_LIST=("${VALUE_OUT[@]}")
  fi
  [[ -n $OUT ]] || usage_error "--out DIR is required"
  [[ $SEEDS =~ ^[1-9][0-9]*$ ]] || usage_error "--seeds wants a positive integer, got '$SEEDS'"
  [[ $JOBS == auto || $JOBS =~ ^[1-9][0-9]*$ ]] || usage_error "--jobs wants auto or a positive integer"
  [[ -f $DATA ]] || fail "--data $DATA: no such file (data/get_data.sh fetches Tiny Shakespeare)"
  [[ -x $TRAIN ]] || fail "train_llama not found at $TRAIN (build it, or set TRAIN_LLAMA)"
  IFS=, read -r -a NORM_LIST <<<"$NORMS"
  if [[ -z $BASELINE ]]; then
    BASELINE=rmsnorm
    [[ ,$NORMS, == *,rmsnorm,* ]] || BASELINE=${NORM_LIST[0]}
  fi
  [[ ,$NORMS, == *,"$BASELINE",* ]] || usage_error "--baseline $BASELINE is not one of --norms ($NORMS)"
}

cell_flags() {  # value value2 -> the train flags of one cell, in CELL_FLAGS; its folder in CELL
  CELL_FLAGS=("--$PARAM" "$1") CELL="$PARAM=$1"
  if [[ -n $PARAM2 ]]; then
    CELL_FLAGS+=("--$PARAM2" "$2") CELL+=",$PARAM2=$2"
  fi
}

compare_args() {  # value value2 norms [seed] -> the compare_norms.sh arguments in COMPARE_ARGS
  cell_flags "$1" "$2"
  COMPARE_ARGS=(--data "$DATA" --norms "$3" --baseline "${3%%,*}" --seeds "$SEEDS"
                ${4:+--seed-list "$4"} --out "$OUT" --runs-dir "$OUT/runs/$CELL" --no-analyze
                --no-sample "${CELL_FLAGS[@]}" "${PASS[@]}")
  if ((JOBS_N > 1)) && ! has_threads; then COMPARE_ARGS+=(--threads 1); fi
}

has_threads() {
  local a
  for a in "${PASS[@]}"; do [[ $a == --threads || $a == --threads=* ]] && return 0; done
  return 1
}

all_jobs() {  # every run as "value|value2|norm|seed", in JOB_LIST
  local v v2 n k
  JOB_LIST=()
  for v in "${VALUE_LIST[@]}"; do
    for v2 in "${VALUE2_LIST[@]}"; do
      for n in "${NORM_LIST[@]}"; do
        for ((k = 0; k < SEEDS; k++)); do JOB_LIST+=("$v|$v2|$n|$k"); done
      done
    done
  done
}

# Check every cell's arguments first (cheap), so that a typo stops the sweep at once; the
# message names this script (compare_norms.sh checks the flags for us).
check_with_compare() {
  local v v2
  for v in "${VALUE_LIST[@]}"; do
    for v2 in "${VALUE2_LIST[@]}"; do check_cell "$v" "$v2"; done
  done
}

check_cell() {  # value value2
  local err
  compare_args "$1" "$2" "$NORMS"
  if ! err=$("$COMPARE" "${COMPARE_ARGS[@]}" --dry-run 2>&1 >"$DRY_OUT"); then
    err=${err#compare_norms.sh: error: }
    err=${err%; see --help}
    [[ $err != "unknown option '--$PARAM'" ]] || err="--param $PARAM: train_llama has no flag --$PARAM"
    [[ -z $PARAM2 || $err != "unknown option '--$PARAM2'" ]] ||
      err="--param2 $PARAM2: train_llama has no flag --$PARAM2"
    usage_error "$err"
  fi
  ((DRY_RUN)) && cat "$DRY_OUT"
  return 0
}

# ---- how many runs at a time ----------------------------------------------------------
result_value() { [[ ! -f $1 ]] || sed -n "s/^$2=//p" "$1" | head -n 1; }

probe_run() {  # dir threads-flags... : PROBE_STEPS steps of the first run's configuration
  local dir=$1
  shift
  local v v2 n k
  IFS='|' read -r v v2 n k <<<"${JOB_LIST[0]}"
  cell_flags "$v" "$v2"
  local a flags=()
  for a in "${PASS[@]}"; do  # as train_llama takes them: no "--", --flag value
    if [[ $a == --*=* ]]; then flags+=("${a%%=*}" "${a#*=}"); elif [[ $a != -- ]]; then flags+=("$a"); fi
  done
  rm -rf "$dir"
  mkdir -p "$dir"
  "$TRAIN" --data "$DATA" --out "$dir" --norm "$n" --seed 0 --shared-flags "${CELL_FLAGS[@]}" "${flags[@]}" \
    --steps "$PROBE_STEPS" --eval-every "$PROBE_STEPS" --ckpt-every "$PROBE_STEPS" --stop-after 0 \
    "$@" >"$dir.log" 2>&1 || true
}

choose_jobs() {
  local cores n_runs want load mem_kb rss_kb fit ms1 msj i pids=() verdict
  cores=$(nproc) n_runs=${#JOB_LIST[@]}
  load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
  SCHEDULE="load average $load on $cores cores at the start"
  if [[ $JOBS != auto ]]; then
    JOBS_N=$JOBS SCHEDULE="--jobs $JOBS: $JOBS run(s) at a time$( ((JOBS > 1)) && echo ' with --threads 1 each'); $SCHEDULE"
    return
  fi
  want=$((cores < n_runs ? cores : n_runs))
  JOBS_N=1
  if ((want < 2)); then
    SCHEDULE="one after another with all threads ($n_runs run(s), $cores core(s): nothing to put side by side); $SCHEDULE"
    return
  fi
  if has_threads; then
    SCHEDULE="one after another (--threads given; --jobs N puts runs side by side); $SCHEDULE"
    return
  fi
  mkdir -p "$OUT/probe"
  probe_run "$OUT/probe/alone"
  ms1=$(result_value "$OUT/probe/alone/result.txt" median_ms)
  rss_kb=$(result_value "$OUT/probe/alone/result.txt" peak_rss_kb)
  if [[ -z $ms1 ]]; then
    SCHEDULE="one after another (the probe failed: see $OUT/probe/alone.log); $SCHEDULE"
    return
  fi
  mem_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo 2>/dev/null || echo 0)
  fit=$want
  if [[ -n $rss_kb && $rss_kb -gt 0 && $mem_kb -gt 0 ]]; then
    fit=$((mem_kb * 8 / 10 / rss_kb))
    ((fit < want)) && want=$fit
  fi
  if ((want < 2)); then
    SCHEDULE="one after another (two runs of ${rss_kb} KB do not fit in ${mem_kb} KB available); $SCHEDULE"
    return
  fi
  for ((i = 0; i < want; i++)); do
    probe_run "$OUT/probe/side$i" --threads 1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  msj=$(for ((i = 0; i < want; i++)); do result_value "$OUT/probe/side$i/result.txt" median_ms; done |
        awk '{ s += $1; n++ } END { if (n) printf "%.3f", s / n }')
  load="$load at the start, $(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?") after the probe"
  if [[ -z $msj ]]; then
    SCHEDULE="one after another (the side-by-side probe failed: see $OUT/probe/side0.log); load average $load on $cores cores"
    return
  fi
  # runs finish sooner side by side when want runs per msj beat one run per ms1
  verdict=$(awk -v a="$ms1" -v b="$msj" -v j="$want" 'BEGIN { printf "%.2f", (j / b) / (1 / a) }')
  if awk -v r="$verdict" 'BEGIN { exit !(r > 1) }'; then JOBS_N=$want; fi
  SCHEDULE="$( ((JOBS_N > 1)) && echo "$want runs side by side with --threads 1 each" ||
               echo "one after another with all threads") (probe, $PROBE_STEPS steps of the first run: $ms1 ms/step alone with $cores threads, $msj ms/step each with $want side by side: ${verdict}x the throughput side by side; load average $load on $cores cores$(awk -v l="${load%% *}" -v c="$cores" 'BEGIN { if (l + 0 > c * 0.5) print ": measured under load, the choice may not hold on a quiet machine" }'))"
}

# ---- running --------------------------------------------------------------------------
run_job() {  # job -> one compare_norms.sh call; its output in the run's folder when side by side
  local v v2 n k rc=0
  IFS='|' read -r v v2 n k <<<"$1"
  compare_args "$v" "$v2" "$n" "$k"
  if ((JOBS_N == 1)); then
    "$COMPARE" "${COMPARE_ARGS[@]}" || rc=$?
  else
    mkdir -p "$OUT/runs/$CELL"
    "$COMPARE" "${COMPARE_ARGS[@]}" >"$OUT/runs/$CELL/${n}_s$k.sweep.log" 2>&1 || rc=$?
    echo "== $CELL/${n}_s$k: $(tail -n 1 "$OUT/runs/$CELL/${n}_s$k.sweep.log")"
  fi
  ((rc == 0)) || echo "$CELL/${n}_s$k" >>"$FAILED_FILE"
}

run_all() {
  local job running
  for job in "${JOB_LIST[@]}"; do
    if ((JOBS_N == 1)); then
      run_job "$job"
      continue
    fi
    while running=$(jobs -rp | wc -l) && ((running >= JOBS_N)); do wait -n || true; done
    run_job "$job" &
  done
  wait
}

main() {
  parse_args "$@"
  check_args
  all_jobs
  DRY_OUT=$(mktemp)
  FAILED_FILE=$(mktemp)
  trap 'rm -f "$DRY_OUT" "$FAILED_FILE"' EXIT
  JOBS_N=1
  check_with_compare
  ((DRY_RUN)) && return
  mkdir -p "$OUT"
  choose_jobs
  echo "$ME: ${#JOB_LIST[@]} runs, $SCHEDULE"
  printf '%s\n' "${#JOB_LIST[@]} runs, $SCHEDULE" >"$OUT/schedule.txt"
  run_all
  local failures="" dirs=() job v v2 n k
  [[ -s $FAILED_FILE ]] && failures="runs failed (not diverged): $(tr '\n' ' ' <"$FAILED_FILE")(see their train.log)"
  for job in "${JOB_LIST[@]}"; do
    IFS='|' read -r v v2 n k <<<"$job"
    cell_flags "$v" "$v2"
    dirs+=("$OUT/runs/$CELL/${n}_s$k")
  done
  local mode=(--sweep "$PARAM")
  [[ -z $PARAM2 ]] || mode+=(--sweep2 "$PARAM2")
  "$PYTHON" "$SCRIPT_DIR/analyze.py" "${mode[@]}" --baseline "$BASELINE" --out "$OUT" "${dirs[@]}" ||
    fail "analyze.py failed${failures:+; also $failures}"
  echo
  echo "Done. Sweep over $PARAM${PARAM2:+ x $PARAM2} in $OUT: summary.md, $([[ -n $PARAM2 ]] && echo grid || echo sweep).png/.svg, runs/"
  echo "Schedule: $SCHEDULE"
  [[ -z $failures ]] || fail "$failures"
}

main "$@"
