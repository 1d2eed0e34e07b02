#!/usr/bin/python3
"""Analyse train_llama runs: loss curves, seed statistics, speed, DyT alpha vs 1/std, sweeps.

Usage
-----
    scripts/analyze.py [--out DIR] [--config STR] RUN_DIR...              # compare mode
    scripts/analyze.py --sweep PARAM [--out DIR] [--config STR] RUN_DIR... # sweep mode

A RUN_DIR argument is either a run folder or a folder holding run folders (searched two
levels deep), so `scripts/analyze.py --out OUT OUT/runs` works.

Run-folder convention (what scripts/compare_norms.sh and scripts/sweep.sh create)
-------------------------------------------------------------------------------
    compare:  OUT/runs/<norm>_s<seed>/                e.g. OUT/runs/dyt_s0
    sweep:    OUT/runs/<param>=<value>/<norm>_s<seed>/ e.g. OUT/runs/lr=1e-3/rmsnorm_s2

A run folder holds the trainer's log.csv and (once the run ended) result.txt, both
described in docs/format.md, plus a run.json written by the scripts:
    {"norm": "dyt", "seed": 0, "data": "/abs/path.txt", "args": ["--lr", "1e-3", ...]}
Identification order: run.json, then the folder name, then result.txt (norm=, seed=).
The swept value comes from the parent folder name `<param>=<value>`, or failing that from
`--<param> <value>` in run.json's args.

A run is *diverged* when result.txt says status=diverged, its log has a non-finite
train/val loss, or it finished with a final val loss above its first (step-0) one, i.e.
training made it worse than at initialisation (a finite blow-up the trainer does not flag);
it is *incomplete* when it has no result.txt (still running, stopped or killed).
Seed statistics use finished runs only; diverged runs are listed and drawn, never hidden.

Outputs (in --out, default "."): compare mode writes loss_curves.png/.svg, alpha.png
(when a DyT run has alpha columns) and summary.md; sweep mode writes sweep.png/.svg and
summary.md. summary.md is also printed on stdout.
"""
import argparse
import csv
import json
import math
import os
import re
import sys
import textwrap
import warnings

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402  (backend must be chosen first)
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.transforms as mtransforms  # noqa: E402

matplotlib.rcParams["svg.hashsalt"] = "analyze"  # deterministic SVG ids

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speedcheck  # noqa: E402  (the one definition of "measured under load")

# How kinds are shown: the order, colour and label of the kinds train_llama knows today
# (train_llama --list-norms is the list of kinds; any other name is shown as it is, after
# these, in the next spare colour).
KIND_STYLE = [("rmsnorm", "RMSNorm", "tab:blue"), ("layernorm", "LayerNorm", "tab:green"),
              ("dyt", "DyT", "tab:orange"), ("derf", "Derf", "tab:red"),
              ("hardtanh", "hardtanh", "tab:purple"), ("none", "none", "tab:brown")]
NORM_ORDER = [k for k, _, _ in KIND_STYLE]
NORM_COLORS = {k: c for k, _, c in KIND_STYLE}
NORM_LABELS = {k: lab for k, lab, _ in KIND_STYLE}
EXTRA_COLORS = ["tab:pink", "tab:olive", "tab:cyan", "tab:gray", "black"]
BASELINE = "rmsnorm"  # the kind every other kind is compared with (--baseline)
COLLAPSE_NATS = 0.1   # a run within this of the unigram loss learned nothing beyond it


# ----------------------------------------------------------------------------------------
# Statistics (pure Python; no scipy on the target machine)
# ----------------------------------------------------------------------------------------

def mean(xs):
    """Arithmetic mean; nan for an empty sample."""
    xs = list(xs)
    return sum(xs) / len(xs) if xs else math.nan


def sample_std(xs):
    """Sample standard deviation (n - 1 denominator); nan when n < 2."""
    xs = list(xs)
    if len(xs) < 2:
        return math.nan
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _welch_parts(a, b):
    """Per-sample squared standard errors s^2/n of the two samples."""
    return sample_std(a) ** 2 / len(a), sample_std(b) ** 2 / len(b)


def welch_t(a, b):
    """Welch's t statistic for mean(a) - mean(b) (needs n >= 2 in each sample)."""
    va, vb = _welch_parts(a, b)
    return (mean(a) - mean(b)) / math.sqrt(va + vb)


def welch_dof(a, b):
    """Welch-Satterthwaite degrees of freedom."""
    va, vb = _welch_parts(a, b)
    return (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))


def _betacf(a, b, x):
    """Continued fraction for the incomplete beta function (Numerical Recipes, betacf)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc_reg(a, b, x):
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(log_front)
    # The continued fraction converges fast only for x < (a+1)/(a+b+2); use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t, dof):
    """Two-sided p-value P(|T| >= |t|) for Student's t with dof degrees of freedom."""
    if math.isnan(t) or math.isnan(dof):
        return math.nan
    if math.isinf(t):
        return 0.0
    if math.isinf(dof):
        return math.erfc(abs(t) / math.sqrt(2.0))
    return betainc_reg(dof / 2.0, 0.5, dof / (dof + t * t))


def t_cdf(t, dof):
    """CDF of Student's t distribution."""
    half_tail = t_two_sided_p(t, dof) / 2.0
    return 1.0 - half_tail if t > 0 else half_tail


def t_quantile(p, dof):
    """Inverse CDF of Student's t (bisection on t_cdf; accurate to ~1e-12 relative)."""
    if not 0.0 < p < 1.0 or math.isnan(dof):
        return math.nan
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, dof)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, dof) < p and hi < 1e12:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, dof) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


def welch_test(a, b, conf=0.95):
    """Welch comparison of mean(a) - mean(b).

    Returns None when either sample has fewer than 2 values, else a dict with
    diff, lo, hi (the conf-level CI of the difference), t, dof and p (two-sided).
    """
    a, b = list(a), list(b)
    if len(a) < 2 or len(b) < 2:
        return None
    diff = mean(a) - mean(b)
    va, vb = _welch_parts(a, b)
    if va + vb == 0.0:  # both samples constant: no spread, the difference is exact
        return {"diff": diff, "lo": diff, "hi": diff, "t": math.copysign(math.inf, diff)
                if diff else 0.0, "dof": math.nan, "p": 0.0 if diff else 1.0}
    t, dof = welch_t(a, b), welch_dof(a, b)
    half = t_quantile(0.5 + conf / 2.0, dof) * math.sqrt(va + vb)
    return {"diff": diff, "lo": diff - half, "hi": diff + half, "t": t, "dof": dof,
            "p": t_two_sided_p(t, dof)}


def pearson(x, y):
    """Pearson correlation coefficient; nan when undefined (n < 2 or a constant series)."""
    x, y = list(x), list(y)
    if len(x) != len(y) or len(x) < 2:
        return math.nan
    mx, my = mean(x), mean(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0.0 or syy == 0.0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


# ----------------------------------------------------------------------------------------
# Loading run folders
# ----------------------------------------------------------------------------------------

class Log:
    """log.csv as float columns (nan where a cell is empty) plus masks of non-empty cells."""

    def __init__(self, header, rows):
        self.header = header
        cells = [[r[i] if i < len(r) else "" for r in rows] for i in range(len(header))]
        self.has = {h: np.array([c.strip() != "" for c in col], dtype=bool)
                    for h, col in zip(header, cells)}
        self.col = {h: np.array([_to_float(c) for c in col], dtype=float)
                    for h, col in zip(header, cells)}

    def __contains__(self, name):
        return name in self.col

    def get(self, name):
        return self.col.get(name, np.full(len(self), np.nan))

    def __len__(self):
        return len(next(iter(self.col.values()))) if self.col else 0

    def indexed(self, prefix):
        """Columns prefix0, prefix1, ... in layer order (e.g. alpha_attn_)."""
        names = [h for h in self.header if re.fullmatch(re.escape(prefix) + r"\d+", h)]
        return sorted(names, key=lambda h: int(h[len(prefix):]))

    def eval_rows(self):
        return np.nonzero(self.has.get("val_loss", np.zeros(len(self), bool)))[0]


def _to_float(cell):
    cell = cell.strip()
    if not cell:
        return math.nan
    try:
        return float(cell)  # accepts nan, -nan, inf, -inf as C's printf writes them
    except ValueError:
        return math.nan


def read_log(path):
    """Read log.csv; a step logged twice (a resumed run re-doing steps) keeps its last row."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        return None
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if "step" in header:
        i = header.index("step")
        last = {}
        for r in body:
            step = _to_float(r[i]) if i < len(r) else math.nan
            if math.isfinite(step):  # skips e.g. a line cut short by a killed trainer
                last[int(step)] = r
        body = [last[s] for s in sorted(last)]
    log = Log(header, body)
    if "elapsed_s" in log:
        log.col["elapsed_s"] = _monotonic(log.col["elapsed_s"])
    return log


def _monotonic(elapsed):
    """Make elapsed_s non-decreasing: a resumed trainer may restart its clock at zero."""
    out, offset, prev = elapsed.copy(), 0.0, -math.inf
    for i, e in enumerate(elapsed):
        if not math.isfinite(e):
            continue
        if e + offset < prev:
            offset = prev - e
        out[i] = e + offset
        prev = out[i]
    return out


def read_kv(path):
    """key=value lines (result.txt)."""
    out = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip()
    return out


class Run:
    """One run folder with its log, result and derived metrics."""

    def __init__(self, path, norm, seed, value, log, result, data=None):
        self.path, self.name = path, _run_name(path)
        self.norm, self.seed, self.value = norm, seed, value
        self.log, self.result, self.data = log, result, data
        self.status, self.why, self.broke_at = _classify(log, result)
        self.final_val = _final_val(log, result) if self.status == "finished" else math.nan
        self.best_val = _best_val(log, result)
        self.median_ms = _median_metric(log, result, "ms", "median_ms")
        self.tok_s = _median_metric(log, result, "tok_s", "tok_s")
        ms = log.get("ms")[(log.get("step") > 0) & np.isfinite(log.get("ms"))]
        self.under_load = speedcheck.result_reasons(list(ms), result)  # [] = undisturbed
        v = _result_float(result, "vocab_size")
        self.vocab = int(v) if math.isfinite(v) else 256
        self.final_bpb = _result_float(result, "final_val_bpb")
        self.unigram = None     # (loss, unit) of the data's unigram distribution, if known
        self.collapsed = None   # True/False once the unigram loss is known (finished runs)

    def judge_collapse(self, unigram):
        """Collapsed: finished with a final val loss within COLLAPSE_NATS of the unigram
        loss or above it (it learned no more than the token frequencies). In bits/byte
        (a BPE run without its token cache) the threshold is COLLAPSE_NATS / ln 2."""
        self.unigram = unigram
        if unigram is None or self.status != "finished":
            return
        loss, unit = unigram
        got = self.final_val if unit == "nats/token" else self.final_bpb
        slack = COLLAPSE_NATS if unit == "nats/token" else COLLAPSE_NATS / math.log(2)
        if math.isfinite(got):
            self.collapsed = got > loss - slack

    @property
    def diverged(self):
        return self.status == "diverged"

    def diverge_step(self):
        """The step where the run broke down (else its last step)."""
        if self.broke_at is not None:
            return self.broke_at
        steps = self.log.get("step")
        return float(steps[-1]) if len(steps) else math.nan


def _classify(log, result):
    """(status, reason, step it broke at) of a run.

    Diverged: result.txt says so, a loss is non-finite, or the finished run ends with a val
    loss above its first one (training made it worse than at initialisation: the trainer
    only flags non-finite losses, and a finite blow-up to loss 100 would wreck the means).
    """
    status = result.get("status") if result else None
    bad = _first_nonfinite_step(log)
    if bad is not None:
        return "diverged", f"non-finite loss at step {bad:.0f}", bad
    if status == "diverged":
        return "diverged", "status=diverged", None
    if status != "finished":
        return "incomplete", "no result.txt", None
    first, final = _first_val(log), _final_val(log, result)
    if final > first:
        return ("diverged", f"final val loss {final:.4g} > initial {first:.4g}",
                _first_step_above(log, first))
    return "finished", "", None


def _first_val(log):
    rows = log.eval_rows()
    return float(log.get("val_loss")[rows[0]]) if len(rows) else math.nan


def _first_step_above(log, level):
    rows = log.eval_rows()
    vals, steps = log.get("val_loss")[rows], log.get("step")[rows]
    above = np.nonzero(vals > level)[0]
    return float(steps[above[0]]) if len(above) else None


def _run_name(path):
    """'dyt_s0', or 'lr=1e-3/dyt_s0' for a sweep run."""
    parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
    base = os.path.basename(os.path.abspath(path))
    return f"{parent}/{base}" if "=" in parent else base


def _first_nonfinite_step(log):
    """Step of the first non-finite train or val loss, or None."""
    bad = np.zeros(len(log), dtype=bool)
    for name in ("train_loss", "val_loss"):
        if name in log:
            bad |= log.has[name] & ~np.isfinite(log.col[name])
    return float(log.get("step")[bad][0]) if bad.any() else None


def _result_float(result, key):
    return _to_float(result.get(key, "")) if result else math.nan


def _final_val(log, result):
    v = _result_float(result, "final_val_loss")
    if math.isfinite(v):
        return v
    rows = log.eval_rows()
    return float(log.get("val_loss")[rows[-1]]) if len(rows) else math.nan


def _best_val(log, result):
    v = _result_float(result, "best_val_loss")
    if math.isfinite(v):
        return v
    vals = log.get("val_loss")
    vals = vals[np.isfinite(vals)]
    return float(vals.min()) if len(vals) else math.nan


def _median_metric(log, result, column, result_key):
    v = _result_float(result, result_key)
    if math.isfinite(v):
        return v
    vals = log.get(column)[log.get("step") > 0]
    vals = vals[np.isfinite(vals)]
    return float(np.median(vals)) if len(vals) else math.nan


NAME_RE = re.compile(r"^(?P<norm>[A-Za-z0-9-]+)_s(?P<seed>\d+)$")


def identify(path, sweep_param=None):
    """(norm, seed, value) of a run folder, from run.json, the folder names or result.txt."""
    meta = _read_json(os.path.join(path, "run.json"))
    result = _read_result(path)
    m = NAME_RE.match(os.path.basename(os.path.abspath(path)))
    norm = meta.get("norm") or (m and m["norm"]) or result.get("norm")
    seed = meta.get("seed")
    if seed is None:
        seed = m["seed"] if m else result.get("seed")
    seed = int(seed) if seed not in (None, "") else None
    value = _sweep_value(path, meta, sweep_param) if sweep_param else None
    return norm, seed, value


def _read_json(path):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _read_result(path):
    p = os.path.join(path, "result.txt")
    return read_kv(p) if os.path.exists(p) else {}


def _folder_values(path):
    """{param: value} from the parent folder's name: `lr=1e-3` or `lr=1e-3,alpha-attn=0.5`."""
    parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
    parts = parent.split(",")
    return dict(p.split("=", 1) for p in parts) if all("=" in p for p in parts) else {}


def _sweep_value(path, meta, param):
    v = _folder_values(path).get(param)
    if v is not None:
        return v
    args = meta.get("args", [])
    for i, a in enumerate(args):
        if a == "--" + param and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--" + param + "="):
            return a.split("=", 1)[1]
    return None


def find_run_dirs(paths, depth=2):
    """Run folders among paths: a folder with log.csv/run.json/result.txt, else its children."""
    found = []
    for p in paths:
        if not os.path.isdir(p):
            continue
        if any(os.path.exists(os.path.join(p, f)) for f in ("log.csv", "run.json", "result.txt")):
            found.append(p)
        elif depth > 0:
            kids = sorted(os.path.join(p, k) for k in os.listdir(p))
            found += find_run_dirs(kids, depth - 1)
    return found


_UNIGRAM = {}


def unigram_loss(data, vocab):
    """(loss, unit) of predicting each token by its frequency in the whole text (the
    entropy of the unigram distribution), or None when the text cannot be read.

    In the run's token space: bytes for vocab 256; for a BPE vocabulary the token cache
    DATA.bpeN.tok that train_llama writes beside the text (docs/format.md), unit
    'nats/token'. Without that cache, the byte unigram in bits per byte (unit 'bits/byte',
    compared with val_bpb): an upper bound on what a collapsed BPE model reaches, so the
    test then finds fewer collapses, never more."""
    key = (data, vocab)
    if key in _UNIGRAM:
        return _UNIGRAM[key]
    out = None
    try:
        tok = f"{data}.bpe{vocab}.tok"
        if vocab > 256 and os.path.exists(tok):
            t = np.memmap(tok, dtype="<u2", mode="r", offset=48)
            out = (_entropy(_chunked_counts(t, vocab)), "nats/token")
        elif os.path.exists(data):
            counts = _chunked_counts(np.memmap(data, dtype=np.uint8, mode="r"), 256)
            h = _entropy(counts)
            out = (h, "nats/token") if vocab <= 256 else (h / math.log(2), "bits/byte")
    except (OSError, ValueError):
        out = None
    _UNIGRAM[key] = out
    return out


def _chunked_counts(arr, n, chunk=1 << 26):
    counts = np.zeros(n, dtype=np.int64)
    for i in range(0, len(arr), chunk):
        counts += np.bincount(np.asarray(arr[i:i + chunk]), minlength=n)[:n]
    return counts


def _entropy(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def load_runs(paths, sweep_param=None, data=None, sweep_param2=None):
    """Load every run folder below paths; folders without a readable log are skipped.
    data: the training text for runs whose run.json does not name it."""
    runs = []
    for d in find_run_dirs(paths):
        log_path = os.path.join(d, "log.csv")
        log = read_log(log_path) if os.path.exists(log_path) else None
        if log is None or len(log) == 0:
            warn(f"{d}: no log.csv (or no rows in it), skipped")
            continue
        norm, seed, value = identify(d, sweep_param)
        if norm is None:
            warn(f"{d}: cannot tell the norm (no run.json, name not <norm>_s<seed>), skipped")
            continue
        if sweep_param and value is None:
            warn(f"{d}: no value for --sweep {sweep_param}, skipped")
            continue
        value2 = None
        if sweep_param2:
            value2 = _sweep_value(d, _read_json(os.path.join(d, "run.json")), sweep_param2)
            if value2 is None:
                warn(f"{d}: no value for --sweep2 {sweep_param2}, skipped")
                continue
        run_data = _read_json(os.path.join(d, "run.json")).get("data") or data
        run = Run(d, norm, seed, value, log, _read_result(d), run_data)
        run.value2 = value2
        if run_data:
            run.judge_collapse(unigram_loss(run_data, run.vocab))
        runs.append(run)
    return runs


def warn(msg):
    print(f"analyze.py: warning: {msg}", file=sys.stderr)


# ----------------------------------------------------------------------------------------
# Grouping and formatting helpers
# ----------------------------------------------------------------------------------------

def norms_of(runs):
    """The kinds present: the baseline first, then KIND_STYLE's order, then others by name."""
    present = {r.norm for r in runs}
    order = [n for n in NORM_ORDER if n in present] + sorted(present - set(NORM_ORDER))
    return sorted(order, key=lambda n: n != BASELINE)


def baseline_of(runs):
    """The kind the others are compared with: BASELINE if present, else the first kind."""
    norms = norms_of(runs)
    return BASELINE if BASELINE in norms else (norms[0] if norms else None)


def norm_color(norm):
    """Fixed colours for the known kinds; any other name gets the next spare colour."""
    if norm not in NORM_COLORS:
        NORM_COLORS[norm] = EXTRA_COLORS[(len(NORM_COLORS) - len(KIND_STYLE)) % len(EXTRA_COLORS)]
    return NORM_COLORS[norm]


def norm_label(norm):
    return NORM_LABELS.get(norm, norm)


def by_norm(runs, norm):
    return sorted((r for r in runs if r.norm == norm), key=lambda r: (r.seed is None, r.seed))


def finals(runs):
    """Final val losses of the finished runs (the sample the statistics use)."""
    return [r.final_val for r in runs if r.status == "finished" and math.isfinite(r.final_val)]


def bests(runs):
    return [r.best_val for r in runs if r.status == "finished" and math.isfinite(r.best_val)]


def fmt(x, digits=4):
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def fmt_pm(xs, digits=4):
    """'mean ± std' of a sample ('mean' alone for n = 1, '—' for n = 0)."""
    if not xs:
        return "—"
    if len(xs) == 1:
        return fmt(xs[0], digits)
    return f"{fmt(mean(xs), digits)} ± {fmt(sample_std(xs), digits)}"


def fmt_p(p):
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def config_from_runs(runs, swept=()):
    """A title from run.json (data file and train flags of the first run), if there is one."""
    drop = {"--seed", "--norm", "--out", "--resume", "--ckpt-every", "--threads"}
    drop |= {"--" + p for p in swept}
    for r in runs:
        meta = _read_json(os.path.join(r.path, "run.json"))
        if meta:
            args = _strip_flags(meta.get("args", []), drop)
            data = os.path.basename(meta.get("data", "")) or "?"
            return f"{data} " + (" ".join(args) or "(trainer defaults)")
    return ""


def _strip_flags(args, drop):
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in drop:
            skip = True
        elif a.split("=", 1)[0] not in drop:
            out.append(a)
    return out


# ----------------------------------------------------------------------------------------
# Curve aggregation
# ----------------------------------------------------------------------------------------

def ema(values, span):
    """Bias-corrected exponential moving average over the finite values (nan kept as nan)."""
    beta = 1.0 - 2.0 / (span + 1.0)
    out, acc, weight = np.full(len(values), np.nan), 0.0, 0.0
    for i, v in enumerate(values):
        if math.isfinite(v):
            acc = beta * acc + (1.0 - beta) * v
            weight = beta * weight + (1.0 - beta)
            out[i] = acc / weight  # dividing by the weight removes the start-up bias
    return out


def run_series(run, column, smooth_span=None):
    """(steps, values, elapsed) of a run's rows where column is present."""
    mask = run.log.has.get(column, np.zeros(len(run.log), bool))
    steps = run.log.get("step")[mask]
    vals = run.log.get(column)[mask]
    if smooth_span:
        vals = ema(vals, smooth_span)
    return steps, vals, run.log.get("elapsed_s")[mask]


def aggregate(runs, column, smooth_span=None):
    """Mean/min/max over runs at each step (finite values only) and the mean elapsed time."""
    series = [run_series(r, column, smooth_span) for r in runs]
    all_steps = np.unique(np.concatenate([s for s, _, _ in series])) if series else np.array([])
    vals = np.full((len(series), len(all_steps)), np.nan)
    times = np.full_like(vals, np.nan)
    for i, (s, v, t) in enumerate(series):
        idx = np.searchsorted(all_steps, s)
        vals[i, idx], times[i, idx] = v, t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns are fine
        vals[~np.isfinite(vals)] = np.nan
        return {"step": all_steps, "mean": np.nanmean(vals, 0), "lo": np.nanmin(vals, 0),
                "hi": np.nanmax(vals, 0), "elapsed": np.nanmean(times, 0)}


def smoothing_span(runs):
    """EMA span ~2% of the run length: smooth enough to read, short enough to follow trends."""
    longest = max((len(r.log) for r in runs), default=1)
    return max(1.0, longest / 50.0)


# ----------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------

def save(fig, out_dir, stem, svg=True):
    fig.savefig(os.path.join(out_dir, stem + ".png"), dpi=130)
    if svg:
        fig.savefig(os.path.join(out_dir, stem + ".svg"), metadata={"Date": None})
    plt.close(fig)


def plot_loss_curves(runs, out_dir, config):
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.4), sharey=True)
    span = smoothing_span(runs)
    limits = []
    for norm in norms_of(runs):
        group = by_norm(runs, norm)
        healthy = [r for r in group if not r.diverged]
        for ax, xkey in zip(axes, ("step", "elapsed")):
            limits += _draw_norm(ax, xkey, norm, healthy, span)
            for r in group:
                if r.diverged:
                    _draw_diverged(ax, xkey, r)
    _finish_loss_axes(axes, limits or _diverged_limits(runs), runs)
    for ax, xkey in zip(axes, ("step", "elapsed")):
        _zoom_inset(ax, xkey, [r for r in runs if not r.diverged])
    _bpb_axis(axes[1], runs)
    kinds = " vs ".join(norm_label(n) for n in norms_of(runs))
    fig.suptitle(_wrap(f"Validation loss, {kinds} — {config}"), fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))  # room for the legend rows at the bottom
    save(fig, out_dir, "loss_curves")


def _seed_lines(ax, xkey, runs, color, lw=0.8):
    """Each seed's val loss, thin: a mean through a bimodal outcome would hide it."""
    for r in runs:
        steps, vals, elapsed = run_series(r, "val_loss")
        ok = np.isfinite(vals)
        ax.plot((steps if xkey == "step" else elapsed)[ok], vals[ok], color=color, lw=lw,
                alpha=0.45)


def _draw_norm(ax, xkey, norm, runs, span):
    """Each seed's val loss (thin), their mean (thick) and the mean smoothed train loss
    (faint) of one kind; returns the y values drawn."""
    if not runs:
        return []
    color = norm_color(norm)
    val = aggregate(runs, "val_loss")
    train = aggregate(runs, "train_loss", span)
    if len(runs) > 1:
        _seed_lines(ax, xkey, runs, color)
    ax.plot(val[xkey], val["mean"], color=color, lw=2.2, marker="o", ms=3,
            label=f"{norm_label(norm)} val (n={len(runs)})")
    ax.plot(train[xkey], train["mean"], color=color, lw=1, alpha=0.35, ls=":")
    ys = np.concatenate([val["hi"], val["lo"], train["mean"]])
    return list(ys[np.isfinite(ys)])


def _bpb_axis(ax, runs):
    """Bits per byte on a right-hand axis, when every run has the same ratio of val_bpb to
    val_loss (the same bytes per token: always so for byte tokens)."""
    ratios = []
    for r in runs:
        rows = r.log.eval_rows()
        loss, bpb = r.log.get("val_loss")[rows], r.log.get("val_bpb")[rows]
        ok = np.isfinite(loss) & np.isfinite(bpb) & (loss > 0)
        if ok.any():
            ratios.append(float(np.median(bpb[ok] / loss[ok])))
    if not ratios or max(ratios) - min(ratios) > 1e-3 * max(ratios):
        return
    k = mean(ratios)
    sec = ax.secondary_yaxis("right", functions=(lambda y: y * k, lambda b: b / k))
    sec.set_ylabel("bits per byte of text")


def _zoom_inset(ax, xkey, runs):
    """Inset with the val loss of the second half of training: the norms differ by a few
    hundredths there, invisible on the full scale that starts at ~ln(vocab)."""
    curves = [(n, aggregate(by_norm(runs, n), "val_loss")) for n in norms_of(runs)]
    curves = [(n, c) for n, c in curves if np.isfinite(c[xkey]).sum() >= 2]
    if not curves:
        return
    box = _free_box(ax)
    if box is None:
        return
    x_end = max(np.nanmax(c[xkey]) for _, c in curves)
    x_start = 0.5 * x_end
    ins = ax.inset_axes(box)
    lows, highs = [], []
    for norm, c in curves:
        keep = c[xkey] >= x_start
        group = by_norm(runs, norm)
        if len(group) > 1:
            _seed_lines(ins, xkey, group, norm_color(norm), lw=0.7)
        ins.plot(c[xkey][keep], c["mean"][keep], color=norm_color(norm), lw=1.8, marker="o", ms=3)
        lows += list(c["lo"][keep])
        highs += list(c["hi"][keep])
    lo, hi = np.nanmin(lows), np.nanmax(highs)
    pad = 0.08 * (hi - lo or 0.01)
    ins.set_xlim(x_start, x_end * 1.02)
    ins.set_ylim(lo - pad, hi + pad)
    ins.set_title("val loss, second half (zoom)", fontsize=8)
    ins.tick_params(labelsize=7)
    ins.grid(alpha=0.3)


def _diverged_limits(runs):
    """y range when no run stayed finite: the finite val losses, without the blow-up
    (values above twice the median are left off the scale)."""
    vals = np.concatenate([run_series(r, "val_loss")[1] for r in runs])
    vals = vals[np.isfinite(vals)]
    return [] if not len(vals) else list(vals[vals <= 2 * np.median(vals)])


INSET_BOXES = ([0.40, 0.34, 0.56, 0.42], [0.40, 0.50, 0.56, 0.36], [0.40, 0.06, 0.56, 0.36])


def _free_box(ax):
    """The first inset box (axes fractions x, y, w, h) that no line of ax passes through."""
    pts = np.concatenate([_line_points(ax, line) for line in ax.get_lines()] or
                         [np.empty((0, 2))])
    for x, y, w, h in INSET_BOXES:
        # a margin of 0.02 keeps the inset frame off the lines
        inside = ((pts[:, 0] > x - 0.02) & (pts[:, 0] < x + w + 0.02)
                  & (pts[:, 1] > y - 0.02) & (pts[:, 1] < y + h + 0.02))
        if not inside.any():
            return [x, y, w, h]
    return None


def _line_points(ax, line, spacing=0.004):
    """Points along a line in axes fractions, resampled every `spacing` along its length
    (vertices alone miss long straight segments)."""
    xy = np.column_stack(line.get_data()).astype(float)
    if line.get_transform() != ax.transData or len(xy) == 0:
        return np.empty((0, 2))
    xy = xy[np.isfinite(xy).all(axis=1)]
    to_axes = ax.transData + ax.transAxes.inverted()
    xy = to_axes.transform(xy) if len(xy) else xy
    if len(xy) < 2:
        return xy
    dist = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    t = np.arange(0.0, dist[-1] + spacing, spacing)
    return np.column_stack([np.interp(t, dist, xy[:, 0]), np.interp(t, dist, xy[:, 1])])


def _draw_diverged(ax, xkey, run):
    """A diverged run: its finite val losses dashed, an X at the top where it broke down
    (the names go in the legend: labels beside the markers collide when runs break together)."""
    color = norm_color(run.norm)
    steps, vals, elapsed = run_series(run, "val_loss")
    x = steps if xkey == "step" else elapsed
    ok = np.isfinite(vals)
    ax.plot(x[ok], vals[ok], color=color, lw=1, ls="--", alpha=0.8)
    step = run.diverge_step()
    xd = step if xkey == "step" else _elapsed_at(run, step)
    top = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot([xd], [0.96], transform=top, marker="X", ms=11, color=color, mec="black",
            clip_on=False, ls="none")


def _elapsed_at(run, step):
    steps, el = run.log.get("step"), run.log.get("elapsed_s")
    ok = np.isfinite(el) & (steps <= step)
    return float(el[ok][-1]) if ok.any() else 0.0


def _finish_loss_axes(axes, limits, runs):
    if limits:
        lo, hi = min(limits), max(limits)
        pad = 0.05 * (hi - lo or 1.0)
        diverged = any(r.diverged for r in runs)
        # headroom at the top for the divergence markers (they sit at axes height 0.96)
        axes[0].set_ylim(lo - pad, hi + pad + (0.12 * (hi - lo) if diverged else 0.0))
        if diverged:
            for ax in axes:
                _divergence_strip(ax, 0.915, hi + pad)
    axes[0].set_xlabel("optimizer step")
    axes[1].set_xlabel("elapsed training time (s, evaluation excluded)")
    axes[0].set_ylabel("loss (cross-entropy, nats/token)")
    axes[0].set_title("against step")
    axes[1].set_title("against wall-clock time")
    for ax in axes:
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    diverged = [r.name for r in runs if r.diverged]
    if diverged:
        names = ", ".join(diverged[:4]) + (f" +{len(diverged) - 4} more" if len(diverged) > 4
                                          else "")
        handles.append(plt.Line2D([], [], color="gray", ls="--", marker="X", mec="black"))
        labels.append(f"diverged (X: where): {names}")
    if any(len([r for r in by_norm(runs, n) if not r.diverged]) > 1 for n in norms_of(runs)):
        labels.append("thin: each seed's val loss")
        handles.append(plt.Line2D([], [], color="gray", lw=0.8, alpha=0.6))
    labels.append("dotted: mean train loss (EMA)")
    handles.append(plt.Line2D([], [], color="gray", lw=1, ls=":"))
    axes[0].figure.legend(handles, labels, fontsize=8, loc="lower center",
                          ncol=min(len(labels), 5), frameon=False)


def _divergence_strip(ax, bottom, data_top):
    """Grey strip from axes height `bottom` to the top, holding the divergence markers, with
    no y tick labels in it (a marker there is not a loss value)."""
    ax.add_patch(matplotlib.patches.Rectangle((0, bottom), 1, 1 - bottom, transform=ax.transAxes,
                                              color="0.92", zorder=0, lw=0))
    lim = ax.get_ylim()
    ax.set_yticks([t for t in ax.get_yticks() if lim[0] <= t <= data_top])
    ax.set_ylim(lim)


def _wrap(text, width=110):
    """Wrap a title, never between a --flag and its value."""
    glued = re.sub(r"(--[\w-]+) (?!--)", "\\1\u00a0", text)
    lines = textwrap.wrap(glued, width, break_on_hyphens=False)
    return "\n".join(lines).replace("\u00a0", " ")


SITES = (("attn", "attention input"), ("ffn", "FFN input"), ("final", "final norm"))


def site_columns(log, prefix, site):
    """The columns of one site group: prefix_site_0.. in layer order, or prefix_final."""
    if site == "final":
        return [f"{prefix}_final"] if f"{prefix}_final" in log else []
    return log.indexed(f"{prefix}_{site}_")


def alpha_kinds(runs):
    """The kinds that have alpha columns in some run, in norms_of order."""
    return [n for n in norms_of(runs)
            if any(site_columns(r.log, "alpha", s) for r in by_norm(runs, n) for s, _ in SITES)]


def plot_alpha(runs, out_dir):
    """|alpha| (solid) and 1/std of its input (dotted, eval rows) on one log scale, for every
    seed and every site: a row per kind that has alpha, a column per site group (layers in
    colour), and the final values of every seed against each other."""
    kinds = alpha_kinds(runs)
    n_layers = max(len(r.log.indexed("alpha_attn_")) for r in runs)
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, max(n_layers, 1)))
    fig, axes = plt.subplots(len(kinds), 4, figsize=(18, 3.9 * len(kinds) + 0.8), squeeze=False,
                             gridspec_kw={"width_ratios": [1.2, 1.2, 1.2, 1]})
    for row, kind in zip(axes, kinds):
        group = by_norm(runs, kind)
        for ax, (site, title) in zip(row, SITES):
            _alpha_panel(ax, group, site, colors)
            ax.set_title(f"{norm_label(kind)}: {title} ({len(group)} seeds)", fontsize=10)
        _alpha_scatter(row[3], group)
    handles = [plt.Line2D([], [], color=c, lw=2) for c in colors]
    labels = [f"layer {i}" for i in range(n_layers)]
    handles.append(plt.Line2D([], [], color="black", lw=2))
    labels.append("final norm")
    handles += [plt.Line2D([], [], color="gray", lw=1.4),
                plt.Line2D([], [], color="gray", ls=":", marker="o", ms=3)]
    labels += ["|alpha|", "1/std of the input (eval rows)"]
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 10), fontsize=8,
               frameon=False)
    fig.suptitle("alpha vs 1/std of its input, one log scale (the DyT paper: alpha tracks "
                 "1/std); every seed, every site", fontsize=11)
    fig.tight_layout(rect=(0, 0.5 / (3.9 * len(kinds) + 0.8), 1, 1))
    save(fig, out_dir, "alpha", svg=False)


def _alpha_panel(ax, group, site, colors):
    for run in group:
        log = run.log
        steps, ev = log.get("step"), log.eval_rows()
        alphas, stds = site_columns(log, "alpha", site), site_columns(log, "std", site)
        for i, name in enumerate(alphas):
            c = "black" if site == "final" else colors[i % len(colors)]
            ax.plot(steps, np.abs(log.get(name)), color=c, lw=1.2, alpha=0.8)
            if i < len(stds):
                with np.errstate(divide="ignore", invalid="ignore"):
                    ax.plot(steps[ev], 1.0 / log.get(stds[i])[ev], color=c, lw=0.9, ls=":",
                            marker="o", ms=2)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.grid(alpha=0.3, which="both")


def final_alpha_pairs(run):
    """(alphas, inv_stds, sites) at the last eval row with every alpha and std finite, over
    every site that has both (attention, FFN, final)."""
    log = run.log
    names = [(a, sd, site) for site, _ in SITES
             for a, sd in zip(site_columns(log, "alpha", site), site_columns(log, "std", site))]
    if not names:
        return [], [], []
    for row in log.eval_rows()[::-1]:
        a = [log.get(an)[row] for an, _, _ in names]
        s = [log.get(sn)[row] for _, sn, _ in names]
        if all(math.isfinite(v) for v in a + s) and all(v > 0 for v in s):
            return a, [1.0 / v for v in s], [k for _, _, k in names]
    return [], [], []


def _alpha_scatter(ax, group):
    rs = []
    for run in [r for r in group if not r.diverged]:
        a, inv, sites = final_alpha_pairs(run)
        for (site, _), marker in zip(SITES, "o^s"):
            pts = [(x, abs(y)) for x, y, k in zip(inv, a, sites) if k == site]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, s=30, alpha=0.7, color=norm_color(run.norm),
                           label=site if run is group[0] else None)
        if len(a) >= 3:
            rs.append(pearson(inv, a))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("final 1 / std of the input")
    ax.set_ylabel("final |alpha|")
    r = mean([x for x in rs if math.isfinite(x)])
    ax.set_title(f"final values, all seeds (mean r = {fmt(r, 3)})", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def numeric_values(values):
    """Sorted sweep values and their x positions (floats, or 0..k-1 when not all numeric)."""
    try:
        pairs = sorted((float(v), v) for v in values)
        return [v for _, v in pairs], [x for x, _ in pairs], True
    except ValueError:
        vals = sorted(values)
        return vals, list(range(len(vals))), False


def plot_sweep(runs, param, out_dir, config):
    values, xs, numeric = numeric_values({r.value for r in runs})
    logx = numeric and min(xs) > 0 and max(xs) / min(xs) > 10
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    norms = norms_of(runs)
    any_div = False
    for j, norm in enumerate(norms):
        offset = (j - (len(norms) - 1) / 2) * 0.05  # shift so error bars don't overlap
        px = [_shift(x, offset, logx, xs) for x in xs]
        any_div |= _sweep_norm(ax, runs, norm, values, px, 0.95 - 0.08 * j)
    _finish_sweep_axes(ax, param, values, xs, numeric, logx, any_div)
    ax.set_title(_wrap(f"Final validation loss vs {param} — {config}", 80), fontsize=10)
    fig.tight_layout()
    save(fig, out_dir, "sweep")


def _shift(x, offset, logx, xs):
    """Move x by offset times the smallest gap between sweep values (in log space if logx)."""
    pos = [math.log10(v) for v in xs] if logx else list(xs)
    gaps = [b - a for a, b in zip(pos, pos[1:]) if b > a]
    step = offset * (min(gaps) if gaps else 1.0)
    return x * 10 ** step if logx else x + step


def _sweep_norm(ax, runs, norm, values, px, marker_y):
    """Means with std error bars for one norm; X markers at the top for diverged runs
    (at axes height marker_y, one row per norm so that they never overlap)."""
    color, mx, my, me = norm_color(norm), [], [], []
    top = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    had_div = False
    for v, x in zip(values, px):
        group = [r for r in runs if r.norm == norm and r.value == v]
        f = finals(group)
        if f:
            mx.append(x)
            my.append(mean(f))
            me.append(sample_std(f) if len(f) > 1 else 0.0)
        n_div = sum(r.diverged for r in group)
        if n_div:
            had_div = True
            ax.plot([x], [marker_y], transform=top, marker="X", ms=11, color=color,
                    mec="black", ls="none", clip_on=False)
            right = x == px[0]  # the leftmost value's label goes right, to stay inside
            ax.annotate(f"{n_div}/{len(group)} diverged", (x, marker_y), xycoords=top,
                        xytext=(9 if right else -9, 0), textcoords="offset points",
                        ha="left" if right else "right", va="center", fontsize=8, color=color)
    if mx:
        ax.errorbar(mx, my, yerr=me, color=color, marker="o", ms=5, capsize=4, lw=1.8,
                    label=f"{norm_label(norm)} (mean ± std over seeds)")
    return had_div


def _finish_sweep_axes(ax, param, values, xs, numeric, logx, any_div):
    if logx:
        ax.set_xscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels(values)
    ax.minorticks_off()
    lo, hi = ax.get_ylim()
    if any_div:  # free a strip at the top for the divergence markers
        ax.set_ylim(lo, hi + 0.35 * (hi - lo))
        _divergence_strip(ax, 0.8, hi)
    ax.set_xlabel(param + (" (log scale)" if logx else ""))
    ax.set_ylabel("final validation loss")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if any_div:
        handles.append(plt.Line2D([], [], color="gray", marker="X", mec="black", ls="none",
                                  ms=10))
        labels.append("diverged (k/n seeds at that value)")
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="lower left" if any_div else "best")


# ----------------------------------------------------------------------------------------
# Summaries
# ----------------------------------------------------------------------------------------

def welch_line(a, b, what="final val loss", names=("DyT", "RMSNorm")):
    """One markdown line: the names[0] - names[1] difference with CI and p, or why n/a."""
    head = f"{names[0]} − {names[1]} {what}"
    w = welch_test(a, b)
    if w is None:
        return f"{head}: n/a (need >= 2 seeds) (n = {len(a)} vs {len(b)})"
    return (f"{head}: **{w['diff']:+.4f}**, 95% CI [{w['lo']:+.4f}, "
            f"{w['hi']:+.4f}] (Welch t = {w['t']:.3f}, dof = {fmt(w['dof'], 2)}, "
            f"two-sided p = {fmt_p(w['p'])}; n = {len(a)} vs {len(b)})")


def summary_compare(runs, config):
    norms = norms_of(runs)
    kinds = " vs ".join(norm_label(n) for n in norms)
    out = [f"# {kinds} — {config}", "",
           f"{len(runs)} runs: " + ", ".join(f"{n} {len(by_norm(runs, n))}" for n in norms), ""]
    out += _loss_table(runs, norms) + _difference_section(runs, norms)
    out += _speed_section(runs, norms) + _diverged_section(runs)
    out += _alpha_section(runs) + _diagnostics_section(runs) + _runs_table(runs)
    return "\n".join(out) + "\n"


def n_collapsed(runs):
    """'k' collapsed runs, or 'n/a' when the unigram loss is unknown for a finished run."""
    done = [r for r in runs if r.status == "finished"]
    if any(r.collapsed is None for r in done):
        return "n/a"
    return str(sum(bool(r.collapsed) for r in done))


def _collapse_note(runs):
    """What 'collapsed' means here, with the unigram losses used."""
    seen = sorted({(os.path.basename(r.data), r.vocab, r.unigram) for r in runs
                   if r.unigram is not None}, key=str)
    if not seen:
        return ["Collapsed: n/a (no run.json names a readable training text; analyze.py --data "
                "FILE names it)."]
    losses = "; ".join(f"{d} vocab {v}: {u[0]:.4f} {u[1]}" for d, v, u in seen)
    return [f"Collapsed = finished with a final val loss within {COLLAPSE_NATS} nats of the "
            f"unigram loss (predicting each token by its frequency in the text), or above it: "
            f"{losses}."]


def _loss_table(runs, norms):
    out = ["## Validation loss (finished runs; mean ± sample std over seeds)", "",
           "| norm | seeds | finished | diverged | collapsed | incomplete | final val loss | "
           "best val loss | final val bpb |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n in norms:
        g = by_norm(runs, n)
        counts = [sum(r.status == s for r in g) for s in ("finished", "diverged", "incomplete")]
        bpb = [r.final_bpb for r in g if r.status == "finished" and math.isfinite(r.final_bpb)]
        out.append(f"| {norm_label(n)} | {len(g)} | {counts[0]} | {counts[1]} | {n_collapsed(g)} | "
                   f"{counts[2]} | {fmt_pm(finals(g))} | {fmt_pm(bests(g))} | {fmt_pm(bpb)} |")
    return out + [""] + _collapse_note(runs) + [""]


def _difference_section(runs, norms):
    base = baseline_of(runs)
    out = [f"## Each kind against {norm_label(base)} (the baseline)", ""]
    others = [n for n in norms if n != base]
    if not others:
        return out + ["n/a (runs of one kind only)", ""]
    ref = by_norm(runs, base)
    for n in others:
        g = by_norm(runs, n)
        names = (norm_label(n), norm_label(base))
        out.append("- " + welch_line(finals(g), finals(ref), names=names))
        out.append("  - " + welch_line(bests(g), bests(ref), "best val loss", names))
    return out + ["", f"Positive = higher (worse) loss than {norm_label(base)}. Diverged and "
                  "incomplete runs are left out of these samples.", ""]


def _speed_section(runs, norms):
    """Speed per kind from the runs measured undisturbed only (speedcheck.py)."""
    base = baseline_of(runs)
    out = ["## Speed (median over undisturbed runs of each run's median step)", "",
           "| norm | undisturbed runs | median ms/step | median tokens/s |", "| --- | --- | --- | --- |"]
    tok = {}
    for n in norms:
        quiet = [r for r in by_norm(runs, n) if not r.under_load]
        ms = _finite_median([r.median_ms for r in quiet])
        tok[n] = _finite_median([r.tok_s for r in quiet])
        out.append(f"| {norm_label(n)} | {len(quiet)}/{len(by_norm(runs, n))} | "
                   f"{fmt(ms, 1) if quiet else 'under load'} | {fmt(tok[n], 0) if quiet else 'under load'} |")
    out.append("")
    for n in norms:
        if n == base:
            continue
        pair = f"{norm_label(n)} / {norm_label(base)} tokens/s"
        if math.isfinite(tok.get(n, math.nan)) and tok.get(base, 0) > 0:
            ratio = tok[n] / tok[base]
            word = "faster" if ratio >= 1 else "slower"
            out.append(f"- {pair}: **{fmt(ratio, 3)}** ({norm_label(n)} "
                       f"{abs(ratio - 1) * 100:.1f}% {word})")
        else:
            out.append(f"- {pair}: not compared (every run of one of them was measured under load)")
    loaded = [r for r in runs if r.under_load]
    out += ["", f"Measured under load (left out above): {len(loaded)} of {len(runs)} runs"
            + (": " + "; ".join(f"{r.name}: {', '.join(r.under_load)}" for r in loaded)
               if loaded else ".")]
    out += [f"A run counts as measured under load when its step times spread (p90/p10 of "
            f"the per-step ms after the first {speedcheck.SKIP_STEPS} steps above "
            f"{speedcheck.MAX_SPREAD:g}x) or other work kept the cores busy (load average "
            f"against cores, from result.txt); see scripts/speedcheck.py.", ""]
    return out


def _finite_median(xs):
    xs = [x for x in xs if math.isfinite(x)]
    return float(np.median(xs)) if xs else math.nan


def _diverged_section(runs):
    div = [r for r in runs if r.diverged]
    out = ["## Diverged runs", ""]
    out += [f"- {r.name} ({norm_label(r.norm)}, seed {r.seed}): {r.why}" for r in div]
    out += (["none"] if not div else []) + [""]
    inc = [r for r in runs if r.status == "incomplete"]
    if inc:
        out += ["## Incomplete runs (no result.txt yet; left out of the statistics)", ""]
        out += [f"- {r.name}: at step {fmt(float(r.log.get('step')[-1]), 0)}" for r in inc]
        out.append("")
    return out


def alpha_correlations(runs):
    """[(run, r)] Pearson of final alpha vs final 1/std across sites, per non-diverged run
    that has alpha columns."""
    out = []
    for r in runs:
        if r.diverged:
            continue
        a, inv, _ = final_alpha_pairs(r)
        if len(a) >= 3:
            out.append((r, pearson(a, inv)))
    return out


def _alpha_section(runs):
    out = ["## alpha vs 1/std of its input", ""]
    corr = [(r, c) for r, c in alpha_correlations(runs) if math.isfinite(c)]
    if not corr:
        return out + ["n/a (no run with alpha and std columns at an eval row)", ""]
    out.append("Pearson r between final alpha and final 1/std across sites (attention, FFN "
               "and final norm inputs, last eval row; diverged runs left out):")
    for n in norms_of(runs):
        cs = [(r, c) for r, c in corr if r.norm == n]
        if cs:
            per = ", ".join(f"{r.name}: {c:.3f}" for r, c in cs)
            out.append(f"- {norm_label(n)}: mean **{mean([c for _, c in cs]):.3f}** over "
                       f"{len(cs)} run(s) ({per})")
    return out + [""]


DIAGNOSTICS = (("alpha", "alpha"), ("s", "shift s"), ("sat", "fraction saturated"),
               ("gate", "residual gate"))


def _diagnostics_section(runs):
    """The per-site columns a kind logs (alpha, s, sat, gate: any subset), at the last row,
    as min..max over layers of the mean over finished seeds."""
    rows = []
    for n in norms_of(runs):
        g = [r for r in by_norm(runs, n) if r.status == "finished"]
        for prefix, what in DIAGNOSTICS:
            cells = []
            for site, _ in SITES:
                per_layer = []
                for i in range(max((len(site_columns(r.log, prefix, site)) for r in g), default=0)):
                    last = [_last_finite(r.log.get(site_columns(r.log, prefix, site)[i]))
                            for r in g if i < len(site_columns(r.log, prefix, site))]
                    per_layer.append(mean([x for x in last if math.isfinite(x)]))
                per_layer = [x for x in per_layer if math.isfinite(x)]
                cells.append("—" if not per_layer else fmt(per_layer[0], 3) if len(per_layer) == 1
                             else f"{fmt(min(per_layer), 3)} .. {fmt(max(per_layer), 3)}")
            if any(c != "—" for c in cells):
                rows.append(f"| {norm_label(n)} | {what} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return (["## Per-site values at the end (mean over finished seeds; min .. max over layers)",
             "", "| norm | column | attention input | FFN input | final |",
             "| --- | --- | --- | --- | --- |"] + rows + [""])


def _last_finite(col):
    ok = col[np.isfinite(col)]
    return float(ok[-1]) if len(ok) else math.nan


def _runs_table(runs):
    out = ["## Runs", "", "| run | norm | seed | status | collapsed | steps | final val | best val | "
           "median ms | tokens/s | speed |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    values = numeric_values({str(r.value) for r in runs})[0]  # numeric order when possible
    values2 = numeric_values({str(getattr(r, "value2", None)) for r in runs})[0]
    norms = norms_of(runs)
    for r in sorted(runs, key=lambda r: (values.index(str(r.value)),
                                         values2.index(str(getattr(r, "value2", None))),
                                         norms.index(r.norm), r.seed if r.seed is not None else -1)):
        steps = r.log.get("step")
        last = fmt(float(steps[-1]), 0) if len(steps) else "n/a"
        final = fmt(_final_val(r.log, r.result))
        coll = "n/a" if r.collapsed is None else ("yes" if r.collapsed else "no")
        out.append(f"| {r.name} | {norm_label(r.norm)} | {r.seed} | {r.status} | {coll} | {last} | "
                   f"{final} | {fmt(r.best_val)} | {fmt(r.median_ms, 1)} | {fmt(r.tok_s, 0)} | "
                   f"{'under load' if r.under_load else 'undisturbed'} |")
    return out + [""]


def summary_sweep(runs, param, config):
    values, _, _ = numeric_values({r.value for r in runs})
    norms = norms_of(runs)
    out = [f"# Sweep over {param} — {config}", "",
           f"| {param} | norm | final val loss (mean ± std) | best val loss | n | diverged | collapsed |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for v in values:
        for n in norms:
            g = [r for r in runs if r.norm == n and r.value == v]
            if g:
                out.append(f"| {v} | {norm_label(n)} | {fmt_pm(finals(g))} | "
                           f"{fmt_pm(bests(g))} | {len(finals(g))} | "
                           f"{sum(r.diverged for r in g)}/{len(g)} | {n_collapsed(g)} |")
    out += [""] + _collapse_note(runs) + [""]
    out += _sweep_best(runs, norms, values, param) + _sweep_diff(runs, norms, values, param)
    return "\n".join(out + _speed_lines(runs) + _diverged_section(runs) + _runs_table(runs)) + "\n"


def _speed_lines(runs):
    """A sweep's speed note: how many runs were measured under load."""
    loaded = [r for r in runs if r.under_load]
    return [f"Speed: {len(loaded)} of {len(runs)} runs measured under load (their ms/step in "
            "the table below is not the program's speed; scripts/speedcheck.py)." if loaded
            else "Speed: every run measured undisturbed (scripts/speedcheck.py).", ""]


def _sweep_best(runs, norms, values, param):
    out = ["## Best value per norm (lowest mean final val loss)", ""]
    for n in norms:
        scored = [(mean(finals(g)), v, g) for v in values
                  for g in [[r for r in runs if r.norm == n and r.value == v]] if finals(g)]
        if scored:
            m, v, g = min(scored, key=lambda s: s[0])
            out.append(f"- {norm_label(n)}: {param}={v} ({fmt_pm(finals(g))})")
        else:
            out.append(f"- {norm_label(n)}: no finished run")
    return out + [""]


def _sweep_diff(runs, norms, values, param):
    base = baseline_of(runs)
    out = []
    for n in [n for n in norms if n != base]:
        out += [f"## {norm_label(n)} − {norm_label(base)} at each value (Welch, final val loss)", ""]
        for v in values:
            a = finals([r for r in runs if r.norm == n and r.value == v])
            b = finals([r for r in runs if r.norm == base and r.value == v])
            out.append(f"- {param}={v}: " + welch_line(a, b).split(": ", 1)[1])
        out.append("")
    return out


# ----------------------------------------------------------------------------------------
# Grids of two flags (sweep.sh --param A --param2 B)
# ----------------------------------------------------------------------------------------

def grid_cells(runs, norm, values, values2):
    """{(v, v2): (mean final, finished n, runs)} of one norm."""
    out = {}
    for v in values:
        for v2 in values2:
            g = [r for r in runs if r.norm == norm and r.value == v and r.value2 == v2]
            if g:
                out[v, v2] = (mean(finals(g)) if finals(g) else math.nan, len(finals(g)), g)
    return out


def best_cell(cells):
    """The (v, v2) with the lowest mean final val loss, or None."""
    ok = [(m, k) for k, (m, _, _) in cells.items() if math.isfinite(m)]
    return min(ok)[1] if ok else None


def plot_grid(runs, p1, p2, out_dir, config):
    """A heatmap of the mean final val loss per norm (p1 across, p2 up), one colour scale;
    D = every seed diverged, C = some seed collapsed; the baseline's best cell outlined in
    every panel, its loss marked on the colour bar."""
    values, _, _ = numeric_values({r.value for r in runs})
    values2, _, _ = numeric_values({r.value2 for r in runs})
    norms = norms_of(runs)
    base = baseline_of(runs)
    cells = {n: grid_cells(runs, n, values, values2) for n in norms}
    allm = [m for c in cells.values() for m, _, _ in c.values() if math.isfinite(m)]
    lo, hi = (min(allm), max(allm)) if allm else (0.0, 1.0)
    fig, axes = plt.subplots(1, len(norms), figsize=(2.2 + (2.0 + 0.9 * len(values)) * len(norms),
                                                     2.4 + 0.5 * len(values2)),
                             squeeze=False, layout="constrained")
    ref = best_cell(cells[base])
    image = None
    for ax, n in zip(axes[0], norms):
        grid = np.full((len(values2), len(values)), np.nan)
        for (v, v2), (m, k, g) in cells[n].items():
            grid[values2.index(v2), values.index(v)] = m
        image = ax.imshow(grid, origin="lower", cmap="viridis_r", vmin=lo, vmax=hi if hi > lo else lo + 1e-6,
                          aspect="auto")
        for (v, v2), (m, k, g) in cells[n].items():
            x, y = values.index(v), values2.index(v2)
            mark = "D" if all(r.diverged for r in g) else ("C" if any(r.collapsed for r in g) else "")
            text = (fmt(m, 3) if math.isfinite(m) else "") + (f" {mark}" if mark else "")
            ax.text(x, y, text, ha="center", va="center", fontsize=8,
                    color="black" if math.isfinite(m) and m < (lo + hi) / 2 else "white")
        if ref is not None:
            ax.add_patch(matplotlib.patches.Rectangle(
                (values.index(ref[0]) - 0.5, values2.index(ref[1]) - 0.5), 1, 1, fill=False,
                ec="red", lw=2, ls="-" if n == base else "--"))
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(values)
        ax.set_yticks(range(len(values2)))
        ax.set_yticklabels(values2)
        ax.set_xlabel(p1)
        ax.set_ylabel(p2)
        ax.set_title(norm_label(n), fontsize=10)
    bar = fig.colorbar(image, ax=list(axes[0]), shrink=0.9)
    bar.set_label("final validation loss (mean over finished seeds)")
    if ref is not None:
        bar.ax.axhline(cells[base][ref][0], color="red", lw=2)
    fig.suptitle(_wrap(f"Final val loss over {p1} x {p2} — {config}", 40 + 25 * len(norms)),
                 fontsize=10)
    fig.supxlabel(f"D: every seed diverged, C: a seed collapsed; red box: {norm_label(base)}'s "
                  "best cell (also marked on the colour bar)", fontsize=8)
    save(fig, out_dir, "grid")


def summary_grid(runs, p1, p2, config):
    values, _, _ = numeric_values({r.value for r in runs})
    values2, _, _ = numeric_values({r.value2 for r in runs})
    norms = norms_of(runs)
    base = baseline_of(runs)
    ref_cells = grid_cells(runs, base, values, values2)
    ref = best_cell(ref_cells)
    out = [f"# Grid over {p1} x {p2} — {config}", ""]
    if ref is not None:
        out += [f"Baseline: {norm_label(base)}'s best cell {p1}={ref[0]}, {p2}={ref[1]}: "
                f"{fmt_pm(finals(ref_cells[ref][2]))}.", ""]
    for n in norms:
        cells = grid_cells(runs, n, values, values2)
        out += [f"## {norm_label(n)}: final val loss (mean ± std; n finished, diverged, collapsed)",
                "", f"| {p2} \\ {p1} | " + " | ".join(values) + " |",
                "| --- | " + " | ".join("---" for _ in values) + " |"]
        for v2 in values2:
            row = []
            for v in values:
                if (v, v2) not in cells:
                    row.append("")
                    continue
                _, k, g = cells[v, v2]
                row.append(f"{fmt_pm(finals(g))} (n {k}, div {sum(r.diverged for r in g)}, "
                           f"coll {n_collapsed(g)})")
            out.append(f"| {v2} | " + " | ".join(row) + " |")
        best = best_cell(cells)
        if best is not None and ref is not None and n != base:
            line = welch_line(finals(cells[best][2]), finals(ref_cells[ref][2]),
                              names=(f"{norm_label(n)} best", f"{norm_label(base)} best"))
            out += ["", f"Best cell {p1}={best[0]}, {p2}={best[1]}; " + line]
        out.append("")
    out += _collapse_note(runs) + [""] + _speed_lines(runs)
    return "\n".join(out + _diverged_section(runs) + _runs_table(runs)) + "\n"


# ----------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See the top of this script for the run-folder "
                                        "convention.")
    ap.add_argument("runs", nargs="+", help="run folders, or folders holding run folders")
    ap.add_argument("--out", default=".", help="output folder (default: .)")
    ap.add_argument("--config", default="", help="config text for titles")
    ap.add_argument("--sweep", metavar="PARAM", help="sweep mode: the swept train flag")
    ap.add_argument("--sweep2", metavar="PARAM2",
                    help="grid mode (with --sweep): the second swept flag")
    ap.add_argument("--baseline", default="rmsnorm",
                    help="the kind every other kind is compared with (default: rmsnorm; the "
                         "first kind present when it has no runs)")
    ap.add_argument("--data", help="the training text, for runs without a run.json naming it "
                                   "(for the unigram loss behind 'collapsed')")
    args = ap.parse_args(argv)
    if args.sweep2 and not args.sweep:
        ap.error("--sweep2 needs --sweep")
    return args


def main(argv=None):
    global BASELINE
    args = parse_args(sys.argv[1:] if argv is None else argv)
    BASELINE = args.baseline
    runs = load_runs(args.runs, args.sweep, args.data, args.sweep2)
    if not runs:
        print("analyze.py: error: no run folders with a log.csv found in "
              + " ".join(args.runs), file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    swept = [p for p in (args.sweep, args.sweep2) if p]
    config = args.config or config_from_runs(runs, swept) or os.path.basename(
        os.path.abspath(args.out))
    if args.sweep2:
        plot_grid(runs, args.sweep, args.sweep2, args.out, config)
        text = summary_grid(runs, args.sweep, args.sweep2, config)
    elif args.sweep:
        plot_sweep(runs, args.sweep, args.out, config)
        text = summary_sweep(runs, args.sweep, config)
    else:
        plot_loss_curves(runs, args.out, config)
        if alpha_kinds(runs):
            plot_alpha(runs, args.out)
        text = summary_compare(runs, config)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
