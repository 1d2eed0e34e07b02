#!/usr/bin/python3
"""Paired comparison of two compare_norms.sh folders that differ in one setting
(issue #27: --precision bf16 against fp32): per norm kind, the final validation
loss of each seed in B minus the same seed's in A, their mean and 95% interval
(Student t over the seeds), and the median step times. Writes a markdown table
and a plot of the mean validation curves.

  scripts/precision_compare.py A B --out DIR [--label-a fp32] [--label-b bf16]

A and B are compare_norms.sh --out folders (run folders in A/runs/<norm>_s<k>).
"""
import argparse
import csv
import math
import os
import sys

# two-sided 95% Student t quantiles by degrees of freedom (1..10)
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]


def read_result(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            out[k] = v
    return out


def read_curve(path):
    steps, vals = [], []
    with open(path) as f:
        for row in csv.DictReader(f):
            if row["val_loss"]:
                steps.append(int(row["step"]))
                vals.append(float(row["val_loss"]))
    return steps, vals


def runs(folder):
    """{(norm, seed): run folder} of a compare_norms.sh output folder."""
    base = os.path.join(folder, "runs")
    found = {}
    for name in sorted(os.listdir(base)):
        norm, _, seed = name.rpartition("_s")
        if norm and seed.isdigit() and os.path.exists(os.path.join(base, name, "result.txt")):
            found[norm, int(seed)] = os.path.join(base, name)
    return found


def interval(diffs):
    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    return mean, T95[min(n - 1, len(T95)) - 1] * sd / math.sqrt(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--out", required=True)
    ap.add_argument("--label-a", default="fp32")
    ap.add_argument("--label-b", default="bf16")
    args = ap.parse_args()
    ra, rb = runs(args.a), runs(args.b)
    pairs = sorted(set(ra) & set(rb))
    if not pairs:
        sys.exit(f"precision_compare.py: no run of {args.a} has a partner (same norm and seed) in {args.b}")
    norms = sorted({n for n, _ in pairs}, key=lambda n: (n != "rmsnorm", n))
    os.makedirs(args.out, exist_ok=True)
    la, lb = args.label_a, args.label_b
    lines = [f"| norm | seeds | {la} final val loss | {lb} final val loss | {lb} - {la}: mean | 95% interval | "
             f"{la} ms/step | {lb} ms/step | {la} / {lb} step time | load (1 min) during runs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for norm in norms:
        seeds = [s for n, s in pairs if n == norm]
        A = [read_result(os.path.join(ra[norm, s], "result.txt")) for s in seeds]
        B = [read_result(os.path.join(rb[norm, s], "result.txt")) for s in seeds]
        va = [float(r["final_val_loss"]) for r in A]
        vb = [float(r["final_val_loss"]) for r in B]
        mean, half = interval([y - x for x, y in zip(va, vb)])
        ma = sorted(float(r["median_ms"]) for r in A)[len(A) // 2]
        mb = sorted(float(r["median_ms"]) for r in B)[len(B) // 2]
        loads = [float(r[k]) for r in A + B for k in ("loadavg_start", "loadavg_end")]
        lines.append(f"| {norm} | {len(seeds)} | {sum(va) / len(va):.4f} | {sum(vb) / len(vb):.4f} | {mean:+.4f} | "
                     f"[{mean - half:+.4f}, {mean + half:+.4f}] | {ma:.1f} | {mb:.1f} | {ma / mb:.2f}x | "
                     f"{min(loads):.1f}-{max(loads):.1f} |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "precision_summary.md"), "w") as f:
        f.write(table)
    sys.stdout.write(table)
    plot(ra, rb, pairs, norms, la, lb, os.path.join(args.out, "precision_curves.png"))


def plot(ra, rb, pairs, norms, la, lb, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, norm in enumerate(norms):
        for runs_, style, label in ((ra, "-", la), (rb, "--", lb)):
            curves = [read_curve(os.path.join(runs_[n, s], "log.csv")) for n, s in pairs if n == norm]
            steps = curves[0][0]
            n = min(len(c[1]) for c in curves)
            mean = [sum(c[1][j] for c in curves) / len(curves) for j in range(n)]
            ax.plot(steps[:n], mean, style, color=f"C{i}", label=f"{norm} {label}")
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (mean over seeds)")
    ax.set_ylim(top=min(3.5, ax.get_ylim()[1]))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
