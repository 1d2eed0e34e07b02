#!/usr/bin/env bash
# sweep.sh: train every value x norm x seed of one train_llama flag, then analyse the sweep.
#
# Each value is one scripts/compare_norms.sh call (--no-analyze --no-sample) with its run
# folders in OUT/runs/<param>=<value>/<norm>_s<seed>, so skipping finished runs, resuming
# from checkpoints and recording divergences work exactly as there. A value whose runs fail
# (an error, not a divergence) is reported and the sweep carries on with the next value.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/sweep.sh --param NAME --values V1,V2,... --out DIR [options] [train flags]

Runs ./train_llama for every value x norm x seed, then scripts/analyze.py --sweep NAME.

Options:
  --param NAME      the train_llama flag to sweep, without dashes (lr, alpha-attn, ...)
  --values LIST     comma-separated values, e.g. 3e-4,1e-3,3e-3
  --out DIR         output folder (required)
  --data FILE       training text (default data/tinyshakespeare.txt in the repository)
  --norms LIST      comma-separated norms (default rmsnorm,dyt)
  --seeds N         seeds 0..N-1 per norm and value (default 3)
  --dry-run         check the arguments, print the train commands, run nothing
  -h, --help        this text
Other arguments are train_llama flags, passed to every run (see compare_norms.sh --help).

Outputs: OUT/sweep.png, OUT/sweep.svg, OUT/summary.md, OUT/runs/<param>=<value>/<norm>_s<k>/.
A diverging run (train_llama exits non-zero with status=diverged) is recorded, not an error.
Exit status: 0 when every run finished or diverged, 1 when some failed, 2 on a usage error.

Example:
  scripts/sweep.sh --param lr --values 3e-4,1e-3,3e-3,1e-2 --out runs/lr --steps 1000
EOF
}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$SCRIPT_DIR")
COMPARE="$SCRIPT_DIR/compare_norms.sh"
PYTHON=/usr/bin/python3
ME=sweep.sh

usage_error() { echo "$ME: error: $*; see --help" >&2; exit 2; }
fail() { echo "$ME: error: $*" >&2; exit 1; }

PARAM="" VALUES="" OUT="" DATA="$ROOT/data/tinyshakespeare.txt" NORMS=rmsnorm,dyt SEEDS=3
DRY_RUN=0
PASS=()  # arguments for compare_norms.sh / train_llama, in their original order

parse_args() {
  while (($#)); do
    case $1 in
      -h|--help) usage; exit 0 ;;
      --dry-run) DRY_RUN=1; shift ;;
      --) PASS+=("$@"); return ;;
      --param|--values|--out|--data|--norms|--seeds)
        (($# >= 2)) || usage_error "$1 needs a value"
        set_own "$1" "$2"; shift 2 ;;
      --param=*|--values=*|--out=*|--data=*|--norms=*|--seeds=*)
        set_own "${1%%=*}" "${1#*=}"; shift ;;
      *) PASS+=("$1"); shift ;;  # checked by compare_norms.sh
    esac
  done
}

set_own() {
  case $1 in
    --param) PARAM=$2 ;;
    --values) VALUES=$2 ;;
    --out) OUT=$2 ;;
    --data) DATA=$2 ;;
    --norms) NORMS=$2 ;;
    --seeds) SEEDS=$2 ;;
  esac
}

check_args() {
  [[ -n $PARAM ]] || usage_error "--param NAME is required"
  [[ $PARAM =~ ^[a-z][a-z0-9-]*$ ]] || usage_error "--param wants a flag name without dashes, got '$PARAM'"
  case $PARAM in
    seed|norm|out|data|resume) usage_error "--param $PARAM cannot be swept (set per run by the scripts)" ;;
  esac
  [[ -n $VALUES ]] || usage_error "--values LIST is required"
  [[ -n $OUT ]] || usage_error "--out DIR is required"
  [[ -f $DATA ]] || fail "--data $DATA: no such file (data/get_data.sh fetches Tiny Shakespeare)"
  local train=${TRAIN_LLAMA:-$ROOT/train_llama}
  ((DRY_RUN)) || [[ -x $train ]] || fail "train_llama not found at $train (build it, or set TRAIN_LLAMA)"
  IFS=, read -r -a VALUE_LIST <<<"$VALUES"
  local v a
  for v in "${VALUE_LIST[@]}"; do
    [[ -n $v && $v != */* && $v != *[[:space:]]* ]] || usage_error "--values: bad value '$v'"
  done
  for a in "${PASS[@]}"; do
    [[ $a == "--$PARAM" || $a == "--$PARAM="* ]] && usage_error "--$PARAM is swept; leave it out of the train flags"
  done
  return 0
}

compare_args() {  # value -> the compare_norms.sh arguments for that value, in COMPARE_ARGS
  COMPARE_ARGS=(--data "$DATA" --norms "$NORMS" --seeds "$SEEDS" --out "$OUT"
                --runs-dir "$OUT/runs/$PARAM=$1" --no-analyze --no-sample "--$PARAM" "$1"
                "${PASS[@]}")
}

run_dirs() {  # the run folders of the whole sweep, in RUN_DIRS
  local v n k norms
  IFS=, read -r -a norms <<<"$NORMS"
  RUN_DIRS=()
  for v in "${VALUE_LIST[@]}"; do
    for n in "${norms[@]}"; do
      for ((k = 0; k < SEEDS; k++)); do RUN_DIRS+=("$OUT/runs/$PARAM=$v/${n}_s$k"); done
    done
  done
}

main() {
  parse_args "$@"
  check_args
  local v failed=()
  # Check every value's arguments first (cheap), so that a typo stops the sweep at once.
  for v in "${VALUE_LIST[@]}"; do
    compare_args "$v"
    if ((DRY_RUN)); then
      "$COMPARE" "${COMPARE_ARGS[@]}" --dry-run
    else
      "$COMPARE" "${COMPARE_ARGS[@]}" --dry-run >/dev/null
    fi
  done
  ((DRY_RUN)) && return
  for v in "${VALUE_LIST[@]}"; do
    echo "==== $PARAM=$v"
    compare_args "$v"
    "$COMPARE" "${COMPARE_ARGS[@]}" || failed+=("$v")
  done
  local failures=""
  ((${#failed[@]})) && failures="runs failed (not diverged) for $PARAM = ${failed[*]}; see their train.log"
  run_dirs
  "$PYTHON" "$SCRIPT_DIR/analyze.py" --sweep "$PARAM" --out "$OUT" "${RUN_DIRS[@]}" ||
    fail "analyze.py failed${failures:+; also $failures}"
  echo
  echo "Done. Sweep over $PARAM in $OUT: summary.md, sweep.png, sweep.svg, runs/$PARAM=<value>/"
  [[ -z $failures ]] || fail "$failures"
}

main "$@"
