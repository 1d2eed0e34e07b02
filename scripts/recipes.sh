#!/usr/bin/env bash
# recipes.sh: the four training-recipe experiments of docs/findings/recipes.md,
# each one command built on scripts/sweep.sh (every value x norm x seed, then analyze.py).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/recipes.sh --finding N [options] [train_llama flags]

Runs one of the recipe experiments on Tiny Shakespeare, 3 seeds per cell:
  1  the DyT authors' LLaMA recipe against this trainer's defaults, RMSNorm and DyT:
     sweep.sh --param preset --values default,dyt-official
  2  GELU MLP against SwiGLU, RMSNorm and DyT (does DyT's collapse go away?):
     sweep.sh --param mlp --values swiglu,gelu
  3  lr x alpha0 grid for DyT and Derf (alpha0 the same at every site), beside RMSNorm's
     lr row: one sweep.sh --param lr per kind and alpha0, then grid.md (mean final val
     loss per cell)
  4  --scalar-lr-mult 1, 10, 100 for DyT (does alpha then track 1/std?):
     sweep.sh --param scalar-lr-mult --values 1,10,100, then alpha.png per value

Options:
  --finding N       1, 2, 3 or 4 (required)
  --out DIR         output folder (default runs/recipes); finding N writes DIR/fN
  --size NAME       demo: d 128, 4 layers, 600 steps (the demo's size, default);
                    6layer: d 128, 6 layers, 1000 steps (docs/findings/six-layers.md's three-seed run)
  --seeds N         seeds per cell (default 3)
  --lrs LIST        finding 3: learning rates (default 3e-4,1e-3,3e-3)
  --alphas LIST     finding 3: DyT's alpha0 values (default 0.1,0.5,1,2)
  --derf-alphas LIST
                    finding 3: Derf's alpha0 values (default 0.5,1,2: its paper's 0.5 and
                    up; DyT's 0.1 is left out for time), or none
  --dry-run         print the train commands, run nothing
  -h, --help        this text
Other arguments are train_llama flags for every run, after the size's (they win).
A repeated command skips finished runs and resumes stopped ones (compare_norms.sh).

Outputs: DIR/fN/summary.md and sweep.png (sweep.sh); finding 3 DIR/f3/grid.md, grid.png and a sweep
per kind and alpha0 (DIR/f3/dyt_alpha=A, derf_alpha=A),
finding 4 DIR/f4/alpha_mult=V.png (alpha and 1/std of each site, per value).
EOF
}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$SCRIPT_DIR")
SWEEP="$SCRIPT_DIR/sweep.sh"
PYTHON=/usr/bin/python3
ME=recipes.sh

usage_error() { echo "$ME: error: $*; see --help" >&2; exit 2; }

FINDING="" OUT="$ROOT/runs/recipes" SIZE=demo SEEDS=3 LRS=3e-4,1e-3,3e-3 ALPHAS=0.1,0.5,1,2 DERF_ALPHAS=0.5,1,2 DRY=()
PASS=()
while (($#)); do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --dry-run) DRY=(--dry-run); shift ;;
    --finding|--out|--size|--seeds|--lrs|--alphas|--derf-alphas)
      (($# >= 2)) || usage_error "$1 needs a value"
      case $1 in
        --finding) FINDING=$2 ;; --out) OUT=$2 ;; --size) SIZE=$2 ;;
        --seeds) SEEDS=$2 ;; --lrs) LRS=$2 ;; --alphas) ALPHAS=$2 ;; --derf-alphas) DERF_ALPHAS=$2 ;;
      esac
      shift 2 ;;
    *) PASS+=("$1"); shift ;;
  esac
done
case $SIZE in
  demo) SIZE_FLAGS=(--dim 128 --layers 4 --heads 4 --seq 128 --batch 16 --steps 600 --warmup 60
                    --lr 1e-3 --eval-every 50 --eval-batches 8) ;;
  6layer) SIZE_FLAGS=(--dim 128 --layers 6 --heads 4 --seq 128 --batch 16 --steps 1000 --warmup 100
                      --lr 1e-3 --eval-every 50 --eval-batches 8) ;;
  *) usage_error "--size: demo or 6layer, got '$SIZE'" ;;
esac
# a flag given twice: the runs take the last (compare_norms.sh passes --shared-flags), so the
# caller's flags win over the size's
COMMON=(--data "$ROOT/data/tinyshakespeare.txt" --seeds "$SEEDS" "${DRY[@]}" "${SIZE_FLAGS[@]}" "${PASS[@]}")
F="$OUT/f$FINDING"

case $FINDING in
  1) "$SWEEP" --param preset --values default,dyt-official --norms rmsnorm,dyt --out "$F" "${COMMON[@]}" ;;
  2) "$SWEEP" --param mlp --values swiglu,gelu --norms rmsnorm,dyt --out "$F" "${COMMON[@]}" ;;
  3)
    # lr is swept: the size's --lr is left out
    FLAGS=() skip=0
    for a in "${COMMON[@]}"; do
      if ((skip)); then skip=0; continue; fi
      [[ $a == --lr ]] && { skip=1; continue; }
      FLAGS+=("$a")
    done
    "$SWEEP" --param lr --values "$LRS" --norms rmsnorm --out "$F/rmsnorm" "${FLAGS[@]}"
    [[ $DERF_ALPHAS != none ]] || DERF_ALPHAS=""
    for kind in dyt derf; do
      [[ $kind == dyt ]] && list=$ALPHAS || list=$DERF_ALPHAS
      IFS=, read -r -a alpha_list <<<"$list"
      for al in "${alpha_list[@]}"; do
        "$SWEEP" --param lr --values "$LRS" --norms $kind --out "$F/${kind}_alpha=$al" "${FLAGS[@]}" \
          --alpha-attn "$al" --alpha-ffn "$al" --alpha-final "$al"
      done
    done
    ((${#DRY[@]})) || "$PYTHON" - "$F" "$LRS" "$ALPHAS" "$DERF_ALPHAS" "$SCRIPT_DIR" <<'EOF'
# grid.md and grid.png: mean final validation loss per lr x alpha0 cell, with the seeds
# that collapsed (analyze.py's rule: within 0.1 nats of the data's unigram loss) or diverged
import math, os, statistics, sys
out, lrs = sys.argv[1], sys.argv[2].split(",")
sys.path.insert(0, sys.argv[5])
import analyze
kinds = [(name, kind, [a for a in alphas.split(",") if a])
         for name, kind, alphas in (("DyT", "dyt", sys.argv[3]), ("Derf", "derf", sys.argv[4]))]
kinds = [k for k in kinds if k[2]]
def cell(folder, lr):  # (mean or nan, text)
    runs = analyze.load_runs([os.path.join(folder, "runs", f"lr={lr}")]) if os.path.isdir(folder) else []
    vals = analyze.finals(runs)
    if not vals: return math.nan, "—", 0
    bad = sum(r.status != "finished" for r in runs)
    col = sum(bool(r.collapsed) for r in runs)
    s = f"{statistics.mean(vals):.3f}" + (f" ± {statistics.stdev(vals):.3f}" if len(vals) > 1 else "")
    notes = [f"{col}/{len(runs)} collapsed"] * bool(col) + [f"{bad} diverged"] * bool(bad)
    return statistics.mean(vals), s + (f" ({', '.join(notes)})" if notes else ""), col + bad
rms = [cell(os.path.join(out, "rmsnorm"), lr) for lr in lrs]
rows = ["| | " + " | ".join(f"lr {lr}" for lr in lrs) + " |", "|---" * (len(lrs) + 1) + "|",
        "| RMSNorm | " + " | ".join(c[1] for c in rms) + " |"]
grids = {}
for name, kind, alphas in kinds:
    grids[name] = [[cell(os.path.join(out, f"{kind}_alpha={a}"), lr) for lr in lrs] for a in alphas]
    rows += [f"| {name} α0 {a} | " + " | ".join(c[1] for c in row) + " |" for a, row in zip(alphas, grids[name])]
text = ("# Final validation loss, mean ± std over seeds: lr x alpha0 (DyT, Derf) and RMSNorm's lr row\n\n"
        + "\n".join(rows) + "\n")
open(os.path.join(out, "grid.md"), "w").write(text)
print(text)
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit(0)
finite = [c[0] for g in grids.values() for row in g for c in row if math.isfinite(c[0])] + \
         [c[0] for c in rms if math.isfinite(c[0])]
if not finite: sys.exit(0)
lo, hi = min(finite), max(finite)
fig, axes = plt.subplots(1, len(grids) + 1, figsize=(4.2 * (len(grids) + 1), 3.8), squeeze=False,
                         gridspec_kw={"wspace": 0.4})
best = min((c[0] for c in rms if math.isfinite(c[0])), default=math.nan)
def draw(ax, g, ylabels, title):
    m = [[c[0] for c in row] for row in g]
    im = ax.imshow(m, vmin=lo, vmax=hi, cmap="viridis_r", aspect="auto")
    for y, row in enumerate(g):
        for x, c in enumerate(row):
            if math.isfinite(c[0]):
                ax.text(x, y, f"{c[0]:.2f}" + ("\n×" * bool(c[2])), ha="center", va="center",
                        color="white" if c[0] > (lo + hi) / 2 else "black", fontsize=9)
    ax.set_xticks(range(len(lrs)), [f"lr {v}" for v in lrs])
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.set_title(title)
    return im
for ax, (name, kind, alphas) in zip(axes[0], kinds):
    im = draw(ax, grids[name], [f"α0 {a}" for a in alphas], f"{name}: final val loss")
draw(axes[0][-1], [rms], ["RMSNorm"], f"RMSNorm (best {best:.2f})")
fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="final val loss (mean of seeds)")
fig.suptitle("lr x alpha0: mean final val loss over seeds (× : a seed collapsed or diverged)", fontsize=10)
fig.savefig(os.path.join(out, "grid.png"), dpi=110, bbox_inches="tight")
EOF
    ;;
  4)
    "$SWEEP" --param scalar-lr-mult --values 1,10,100 --norms dyt --out "$F" "${COMMON[@]}"
    if ((${#DRY[@]} == 0)); then
      for v in 1 10 100; do # alpha against 1/std of its input, every site and seed
        "$PYTHON" "$SCRIPT_DIR/analyze.py" --out "$F/analysis_mult=$v" "$F/runs/scalar-lr-mult=$v" >/dev/null
        [[ ! -f $F/analysis_mult=$v/alpha.png ]] || cp "$F/analysis_mult=$v/alpha.png" "$F/alpha_mult=$v.png"
      done
    fi ;;
  "") usage_error "--finding N is required" ;;
  *) usage_error "--finding: 1, 2, 3 or 4, got '$FINDING'" ;;
esac
