#!/usr/bin/python3
"""Tests for scripts/analyze.py: statistics against hand-computed values, and the plot and
summary steps on synthetic run folders (compare and sweep mode, with diverged runs); plus
scripts/compare_norms.sh and scripts/sweep.sh end to end with a fake train_llama.

Prints `ok - NAME` or `FAIL - NAME: why` per test; exits 1 if any failed.
Usage: test/test_analyze.py [--keep DIR]   (--keep: write the synthetic runs and outputs to
DIR and leave them there, to look at the plots)
"""
import contextlib
import importlib.util
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import traceback
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "..", "scripts")
SCRIPT = os.path.join(SCRIPTS, "analyze.py")

try:
    spec = importlib.util.spec_from_file_location("analyze", SCRIPT)
    A = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(A)
except Exception as e:  # noqa: BLE001  (the runner counts lines: a crash must print FAIL)
    print(f"FAIL - import_analyze: {type(e).__name__}: {e}")
    sys.exit(1)

RESULTS = []


def test(fn):
    """Run fn now; record ok or FAIL with the assertion message."""
    name = fn.__name__[len("test_"):] if fn.__name__.startswith("test_") else fn.__name__
    try:
        fn()
        print(f"ok - {name}")
        RESULTS.append(True)
    except Exception as e:  # noqa: BLE001  (any failure is a test failure)
        why = str(e) or type(e).__name__
        if not isinstance(e, AssertionError):
            why = f"{type(e).__name__}: {e} @ {traceback.extract_tb(e.__traceback__)[-1].lineno}"
        print(f"FAIL - {name}: {why}".replace("\n", " | "))
        RESULTS.append(False)
    return fn


def close(got, want, tol, what):
    assert abs(got - want) <= tol, f"{what}: got {got!r}, want {want!r} (tol {tol})"


# ----------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------

def simpson_t_pdf(dof, x, n=4000):
    """Integral of Student's t density from 0 to x (composite Simpson, n even)."""
    c = math.exp(math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2)) / math.sqrt(dof * math.pi)
    f = [c * (1 + (x * i / n) ** 2 / dof) ** (-(dof + 1) / 2) for i in range(n + 1)]
    return x / n / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))


def stats_tests():
    @test
    def test_mean_and_sample_std():
        # [2, 4, 4, 4, 5, 5, 7, 9]: mean 5, squared deviations sum to 32, 32 / 7 = 4.571429
        xs = [2, 4, 4, 4, 5, 5, 7, 9]
        close(A.mean(xs), 5.0, 1e-15, "mean")
        close(A.sample_std(xs), math.sqrt(32 / 7), 1e-12, "std")
        assert math.isnan(A.sample_std([1.0])), "std of one value must be nan"

    @test
    def test_welch_t_and_dof_by_hand():
        # a = [1,2,3,4]: mean 2.5, s^2 = 5/3, s^2/n = 0.4166667
        # b = [2,4,6,8,10]: mean 6, s^2 = 10, s^2/n = 2
        # t = (2.5 - 6) / sqrt(2.4166667) = -3.5 / 1.5545632 = -2.2514363
        # dof = 2.4166667^2 / (0.4166667^2 / 3 + 2^2 / 4) = 5.8402778 / 1.0578704 = 5.5207876
        a, b = [1, 2, 3, 4], [2, 4, 6, 8, 10]
        close(A.welch_t(a, b), -2.2514363, 1e-6, "t")
        close(A.welch_dof(a, b), 5.5207876, 1e-6, "dof")

    @test
    def test_betainc_identities():
        # I_x(1,1) = x; I_x(a,1) = x^a; I_0.5(a,a) = 0.5 (symmetry)
        close(A.betainc_reg(1, 1, 0.3), 0.3, 1e-14, "I_x(1,1)")
        close(A.betainc_reg(3.5, 1, 0.7), 0.7 ** 3.5, 1e-13, "I_x(a,1)")
        close(A.betainc_reg(7.3, 7.3, 0.5), 0.5, 1e-13, "I_0.5(a,a)")

    @test
    def test_t_quantile_table_values():
        # standard t-table values; dof 2 also has the closed form t = (2p-1) / sqrt(2p(1-p)):
        # p = 0.975 -> 0.95 / sqrt(0.04875) = 4.302653
        for p, dof, want in ((0.975, 4, 2.776445), (0.975, 1, 12.706205), (0.975, 10, 2.228139),
                             (0.95, 30, 1.697261), (0.995, 2, 9.924843), (0.975, 2, 4.302653),
                             (0.975, math.inf, 1.959964)):
            close(A.t_quantile(p, dof), want, 2e-6, f"t_{p},{dof}")
        close(A.t_quantile(0.025, 4), -2.776445, 2e-6, "lower tail")
        assert A.t_quantile(0.5, 3) == 0.0

    @test
    def test_t_p_values():
        # dof 1 is Cauchy: P(|T| > 1) = 1 - 2 atan(1) / pi = 0.5
        close(A.t_two_sided_p(1.0, 1), 0.5, 1e-12, "p(1, 1)")
        # dof 2: CDF = 1/2 + t / (2 sqrt(2 + t^2)), so p(2, 2) = 1 - 2 / sqrt(6) = 0.18350342
        close(A.t_two_sided_p(2.0, 2), 1 - 2 / math.sqrt(6), 1e-12, "p(2, 2)")
        close(A.t_two_sided_p(2.776445, 4), 0.05, 1e-6, "p(2.776445, 4)")
        close(A.t_two_sided_p(-2.0, 10), 0.07338803, 1e-7, "p(-2, 10)")  # table: 0.0734
        close(A.t_cdf(-1.0, 1), 0.25, 1e-12, "cdf(-1, 1)")

    @test
    def test_t_cdf_fractional_dof_by_integration():
        # Welch dof are fractional: compare t_cdf with Simpson's rule on the t density
        for dof, x in ((2.5, 1.7), (5.5207876, 2.2514363), (0.7, 3.0)):
            close(A.t_cdf(x, dof), 0.5 + simpson_t_pdf(dof, x), 1e-9, f"cdf({x}, {dof})")
            close(A.t_cdf(A.t_quantile(0.975, dof), dof), 0.975, 1e-10, f"round trip {dof}")

    @test
    def test_welch_test_ci_and_p():
        # same samples as above: CI = diff +- t_0.975,5.5207876 * 1.5545632
        a, b = [1, 2, 3, 4], [2, 4, 6, 8, 10]
        w = A.welch_test(a, b)
        half = A.t_quantile(0.975, 5.5207876) * 1.5545632
        close(w["diff"], -3.5, 1e-12, "diff")
        close(w["lo"], -3.5 - half, 1e-5, "lo")
        close(w["hi"], -3.5 + half, 1e-5, "hi")
        close(w["p"], A.t_two_sided_p(-2.2514363, 5.5207876), 1e-6, "p")
        assert 0.06 < w["p"] < 0.08, f"p = {w['p']} (expected ~0.07)"
        assert A.welch_test([1.0], [1.0, 2.0]) is None, "n = 1 must give None"
        const = A.welch_test([1.0, 1.0], [2.0, 2.0])
        assert const["p"] == 0.0 and const["lo"] == const["hi"] == -1.0, const

    @test
    def test_pearson_known_set():
        # x = 1..5, y = [2,4,5,4,5]: Sxy = 6, Sxx = 10, Syy = 6, r = 6 / sqrt(60) = 0.7745967
        close(A.pearson([1, 2, 3, 4, 5], [2, 4, 5, 4, 5]), 0.7745967, 1e-7, "r")
        close(A.pearson([1, 2, 3], [3, 2, 1]), -1.0, 1e-12, "r = -1")
        assert math.isnan(A.pearson([1, 1, 1], [1, 2, 3])), "constant x must give nan"


# ----------------------------------------------------------------------------------------
# Synthetic run folders
# ----------------------------------------------------------------------------------------

N_LAYERS, STEPS, EVAL_EVERY, TOKENS = 3, 200, 20, 1024


def val_curve(step, final):
    """Decays from ~4.17 (ln 65) to exactly `final` at STEPS."""
    return final + (4.17 - final) * (math.exp(-step / 40) - math.exp(-STEPS / 40))


def layer_std(kind, i, step):
    base = 1.0 + 0.6 * i + (0.3 if kind == "ffn" else 0.0)
    return base * (1.0 + 0.4 * math.sin(step / 60.0))


def fmt_cell(x):
    return "" if x is None else ("nan" if isinstance(x, float) and math.isnan(x) else f"{x:.6g}")


def log_rows(norm, final, seed, ms, diverge_at=None):
    """Header and rows of a log.csv as docs/format.md describes; DyT gets alpha columns."""
    kinds = ("attn", "ffn")
    alpha_cols = [f"alpha_{k}_{i}" for k in kinds for i in range(N_LAYERS)] + ["alpha_final"]
    std_cols = [f"std_{k}_{i}" for k in kinds for i in range(N_LAYERS)] + ["std_final"]
    header = ["step", "tokens", "train_loss", "val_loss", "lr", "grad_norm", "ms", "tok_s",
              "elapsed_s"] + (alpha_cols if norm == "dyt" else []) + std_cols
    rows, elapsed = [], 0.0
    last = STEPS if diverge_at is None else diverge_at + EVAL_EVERY
    for s in range(last + 1):
        broken = diverge_at is not None and s > diverge_at
        is_eval = s % EVAL_EVERY == 0
        step_ms = None if s == 0 else (5 * ms if s == 1 else ms * (1 + 0.01 * ((s * 7 + seed) % 5)))
        elapsed += (step_ms or 0) / 1000
        val = val_curve(s, final)
        row = [s, s * TOKENS, None if s == 0 else (math.nan if broken else
                                                   val + 0.03 + 0.04 * math.sin(s * 1.3 + seed)),
               (math.nan if broken else val) if is_eval else None, 1e-3, 0.5,
               step_ms, None if s == 0 else TOKENS / (step_ms / 1000), elapsed]
        if norm == "dyt":  # alpha = 0.5 / std exactly, so the final correlation is +1
            row += [0.5 / layer_std(k, i, s) for k in kinds for i in range(N_LAYERS)] + [0.25]
        row += ([layer_std(k, i, s) for k in kinds for i in range(N_LAYERS)] + [2.0]
                if is_eval else [None] * len(std_cols))
        rows.append(row)
    return header, rows


# The training text the synthetic runs name: 64 byte values equally often, so its unigram
# loss is ln 64 = 4.158883 nats/byte (a run ending above 4.058883 has collapsed).
DATA_TEXT = bytes(range(32, 96)) * 100
UNIGRAM = math.log(64)
DATA_FILE = None  # written by main()


def make_run(path, norm, seed, final, ms, diverge_at=None, run_json=True, args=(), load=None,
             step_ms=None):
    """load: (start, end, cores, threads) for result.txt; step_ms(step) -> ms overrides."""
    os.makedirs(path, exist_ok=True)
    header, rows = log_rows(norm, final, seed, ms, diverge_at)
    if step_ms:
        for r in rows[1:]:
            r[6] = step_ms(r[0])
    with open(os.path.join(path, "log.csv"), "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(fmt_cell(c) for c in r) + "\n")
    status = "finished" if diverge_at is None else "diverged"
    steps = STEPS if diverge_at is None else diverge_at + EVAL_EVERY
    final_txt = f"{final:.6f}" if diverge_at is None else "nan"
    with open(os.path.join(path, "result.txt"), "w") as f:
        f.write(f"status={status}\nsteps={steps}\nfinal_val_loss={final_txt}\n"
                f"best_val_loss={final:.6f}\nmedian_ms={ms:.3f}\n"
                f"tok_s={TOKENS / (ms / 1000):.3f}\nparams=12345\nnorm={norm}\nseed={seed}\n"
                + ("loadavg_start={}\nloadavg_end={}\ncores={}\nthreads={}\n".format(*load)
                   if load else ""))
    if run_json:
        with open(os.path.join(path, "run.json"), "w") as f:
            json.dump({"norm": norm, "seed": seed, "data": DATA_FILE,
                       "args": ["--dim", "64", "--layers", str(N_LAYERS), *args,
                                "--seed", str(seed)]}, f)


# Compare set: RMSNorm finals [1.50, 1.52, 1.54] -> 1.5200 +- 0.0200;
# DyT finished finals [1.53, 1.56, 1.59] -> 1.5600 +- 0.0300, plus dyt_s3 diverged at 100.
# Welch (DyT - RMSNorm): diff 0.04, se^2 = 0.0004/3 + 0.0009/3 = 0.00043333,
# t = 0.04 / 0.0208167 = 1.9215, dof = 0.00043333^2 / ((0.00013333^2 + 0.0003^2) / 2) = 3.4845.
# Speed: RMSNorm 100 ms -> 10240 tok/s, DyT 110 ms -> 9309 tok/s, ratio 0.909 (9.1% slower).
RMS_FINALS, DYT_FINALS = [1.50, 1.52, 1.54], [1.53, 1.56, 1.59]


def make_compare_set(root):
    runs = os.path.join(root, "runs")
    for k, f in enumerate(RMS_FINALS):
        # rmsnorm_s1 has no run.json: it must be identified by its folder name alone
        make_run(os.path.join(runs, f"rmsnorm_s{k}"), "rmsnorm", k, f, 100.0, run_json=k != 1)
    for k, f in enumerate(DYT_FINALS):
        make_run(os.path.join(runs, f"dyt_s{k}"), "dyt", k, f, 110.0)
    make_run(os.path.join(runs, "dyt_s3"), "dyt", 3, 1.6, 110.0, diverge_at=100)
    return runs


# Sweep over lr, 2 seeds: RMSNorm 1e-4 [1.60, 1.62] -> 1.6100 +- 0.0141, 1e-3 [1.50, 1.52]
# -> 1.5100 +- 0.0141, 1e-2 [1.70] + 1 diverged; DyT 1e-4 [1.64, 1.66] -> 1.6500 +- 0.0141,
# 1e-3 [1.53, 1.57] -> 1.5500 +- 0.0283, 1e-2 both diverged.
SWEEP = {("rmsnorm", "1e-4"): [1.60, 1.62], ("rmsnorm", "1e-3"): [1.50, 1.52],
         ("rmsnorm", "1e-2"): [1.70, None], ("dyt", "1e-4"): [1.64, 1.66],
         ("dyt", "1e-3"): [1.53, 1.57], ("dyt", "1e-2"): [None, None]}


def make_sweep_set(root):
    runs = os.path.join(root, "runs")
    for (norm, value), fins in SWEEP.items():
        for k, f in enumerate(fins):
            path = os.path.join(runs, f"lr={value}", f"{norm}_s{k}")
            make_run(path, norm, k, f or 2.0, 100.0 if norm == "rmsnorm" else 110.0,
                     diverge_at=None if f else 60 + 20 * k, args=("--lr", value))
    return runs


# ----------------------------------------------------------------------------------------
# Output checks
# ----------------------------------------------------------------------------------------

def assert_png(path):
    assert os.path.exists(path), f"{path} missing"
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert os.path.getsize(path) > 10000, f"{path} suspiciously small"


def assert_svg(path):
    assert os.path.exists(path), f"{path} missing"
    root = ET.parse(path).getroot()
    assert root.tag.split("}")[-1] == "svg", f"{path} root is {root.tag}"


def assert_contains(text, *needles):
    for n in needles:
        assert n in text, f"summary lacks {n!r}"


def run_main(argv):
    """analyze.main in-process with stdout captured; returns (rc, stdout)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        rc = A.main(argv)
    return rc, buf.getvalue()


def compare_tests(tmp):
    runs_dir = make_compare_set(os.path.join(tmp, "compare"))
    out = os.path.join(tmp, "compare")
    rc, stdout = run_main(["--out", out, runs_dir])
    summary = open(os.path.join(out, "summary.md")).read() if rc == 0 else ""

    @test
    def test_compare_runs_identified():
        runs = A.load_runs([runs_dir])
        got = sorted((r.norm, r.seed, r.status) for r in runs)
        want = sorted([("rmsnorm", k, "finished") for k in range(3)]
                      + [("dyt", k, "finished") for k in range(3)] + [("dyt", 3, "diverged")])
        assert got == want, got

    @test
    def test_compare_plots_written():
        assert rc == 0, f"main returned {rc}"
        for stem in ("loss_curves", "alpha"):
            assert_png(os.path.join(out, stem + ".png"))
        assert_svg(os.path.join(out, "loss_curves.svg"))

    @test
    def test_compare_summary_numbers():
        assert stdout == summary, "stdout differs from summary.md"
        # rmsnorm_s1 has no run.json, so no known text: its collapse is n/a, and so the count
        assert_contains(summary, "| RMSNorm | 3 | 3 | 0 | n/a | 0 | 1.5200 ± 0.0200 |",
                        "| DyT | 4 | 3 | 1 | 0 | 0 | 1.5600 ± 0.0300 |",
                        "- DyT − RMSNorm final val loss: **+0.0400**", "t = 1.922", "dof = 3.48",
                        "| RMSNorm | 3/3 | 100.0 | 10240 |", "| DyT | 4/4 | 110.0 | 9309 |",
                        "DyT / RMSNorm tokens/s: **0.909** (DyT 9.1% slower)",
                        "data.txt vocab 256: 4.1589 nats/token")
        w = A.welch_test(DYT_FINALS, RMS_FINALS)
        assert_contains(summary, f"[{w['lo']:+.4f}, {w['hi']:+.4f}]", f"p = {w['p']:.3f}")

    @test
    def test_compare_summary_diverged_and_alpha():
        assert_contains(summary, "- dyt_s3 (DyT, seed 3): non-finite loss at step 101")
        # alpha = 0.5 / std exactly in the synthetic logs -> r = 1 for each finished DyT seed
        assert_contains(summary, "- DyT: mean **1.000** over 3 run(s)")

    @test
    def test_compare_single_seed_is_na():
        one = os.path.join(tmp, "one")
        make_run(os.path.join(one, "runs", "rmsnorm_s0"), "rmsnorm", 0, 1.5, 100.0)
        make_run(os.path.join(one, "runs", "dyt_s0"), "dyt", 0, 1.55, 110.0)
        rc1, text = run_main(["--out", one, "--config", "tiny test", os.path.join(one, "runs")])
        assert rc1 == 0, f"rc {rc1}"
        assert_contains(text, "n/a (need >= 2 seeds)", "# RMSNorm vs DyT — tiny test")

    @test
    def test_collapsed_seeds_against_the_unigram_loss():
        # finals 4.10 and 4.15 (within 0.1 of ln 64 = 4.1589: collapsed),
        # 1.50 (learned); LayerNorm as the baseline, "none" compared with it
        root = os.path.join(tmp, "coll")
        for k, f in enumerate((4.10, 4.15, 1.50)):
            make_run(os.path.join(root, "runs", f"none_s{k}"), "none", k, f, 100.0)
        for k, f in enumerate((1.40, 1.42, 1.44)):
            make_run(os.path.join(root, "runs", f"layernorm_s{k}"), "layernorm", k, f, 100.0)
        rc1, text = run_main(["--out", root, "--baseline", "layernorm", os.path.join(root, "runs")])
        assert rc1 == 0, f"rc {rc1}"
        runs = {r.name: r for r in A.load_runs([os.path.join(root, "runs")])}
        close(runs["none_s0"].unigram[0], UNIGRAM, 1e-9, "unigram loss")
        assert [runs[f"none_s{k}"].collapsed for k in range(3)] == [True, True, False]
        assert_contains(text, "# LayerNorm vs none", "| none | 3 | 3 | 0 | 2 | 0 |",
                        "| LayerNorm | 3 | 3 | 0 | 0 | 0 |", "- none − LayerNorm final val loss")
        assert text.index("| LayerNorm | 3") < text.index("| none | 3"), "baseline first"

    @test
    def test_any_kind_and_any_diagnostic_columns():
        # a "derf" run whose log has alpha, s, sat (attention, FFN, final) and gate columns
        # (attention, FFN), as the zoo's kinds write them: the summary lists their last
        # values per site, the alpha plot gets a row for it, nothing is DyT-specific
        root = os.path.join(tmp, "derf")
        for k in range(2):
            path = os.path.join(root, "runs", f"derf_s{k}")
            make_run(path, "dyt", k, 1.6 + 0.01 * k, 100.0)  # alpha/std columns as DyT's
            with open(os.path.join(path, "log.csv")) as f:
                lines = f.read().splitlines()
            extra = ([f"s_{site}_{i}" for site in ("attn", "ffn") for i in range(N_LAYERS)] + ["s_final"]
                     + [f"sat_{site}_{i}" for site in ("attn", "ffn") for i in range(N_LAYERS)]
                     + ["sat_final"] + [f"gate_{site}_{i}" for site in ("attn", "ffn")
                                        for i in range(N_LAYERS)])
            vals = ([0.01 * i for i in range(2 * N_LAYERS)] + [0.5] + [0.1] * (2 * N_LAYERS)
                    + [0.2] + [0.3 + 0.1 * i for i in range(2 * N_LAYERS)])
            with open(os.path.join(path, "log.csv"), "w") as f:
                f.write(lines[0] + "," + ",".join(extra) + "\n")
                for line in lines[1:]:
                    f.write(line + "," + ",".join(f"{v:g}" for v in vals) + "\n")
            meta = json.load(open(os.path.join(path, "run.json")))
            meta["norm"] = "derf"
            json.dump(meta, open(os.path.join(path, "run.json"), "w"))
            make_run(os.path.join(root, "runs", f"rmsnorm_s{k}"), "rmsnorm", k, 1.5, 100.0)
        rc1, text = run_main(["--out", root, os.path.join(root, "runs")])
        assert rc1 == 0, f"rc {rc1}"
        assert_contains(text, "# RMSNorm vs Derf", "- Derf − RMSNorm final val loss",
                        "| Derf | alpha | ", "| Derf | shift s | 0.000 .. 0.020 | 0.030 .. 0.050 | 0.500 |",
                        "| Derf | fraction saturated | 0.100 .. 0.100 | 0.100 .. 0.100 | 0.200 |",
                        "| Derf | residual gate | 0.300 .. 0.500 | 0.600 .. 0.800 | — |",
                        "- Derf: mean **1.000** over 2 run(s)")
        assert_png(os.path.join(root, "alpha.png"))

    @test
    def test_speed_under_load_is_flagged_not_compared():
        # stand-in logs: RMSNorm steps of 100 ms on a quiet machine, with our 2 threads on 2
        # cores: one from idle (0.1 rising towards 2 over its span of STEPS x 100 ms, as the
        # 1-minute average does), one right after another 2-thread run (2.0 throughout);
        # DyT: steps alternating 127 and 1800 ms (p90/p10 14x), and a second DyT run with
        # steady steps but a load of 3.9 at the start on 2 cores
        root = os.path.join(tmp, "load")
        d = math.exp(-STEPS * 0.1 / 60)
        for k, load in enumerate(((0.1, round(0.1 * d + 2.0 * (1 - d), 2), 2, 2), (2.0, 2.0, 2, 2))):
            make_run(os.path.join(root, "runs", f"rmsnorm_s{k}"), "rmsnorm", k, 1.5, 100.0, load=load)
        make_run(os.path.join(root, "runs", "dyt_s0"), "dyt", 0, 1.6, 963.0, load=(0.2, 2.1, 2, 2),
                 step_ms=lambda s: 127.0 if s % 2 else 1800.0)
        make_run(os.path.join(root, "runs", "dyt_s1"), "dyt", 1, 1.6, 200.0, load=(3.9, 4.2, 2, 2))
        rc1, text = run_main(["--out", root, os.path.join(root, "runs")])
        assert rc1 == 0, f"rc {rc1}"
        runs = {r.name: r for r in A.load_runs([os.path.join(root, "runs")])}
        assert not runs["rmsnorm_s0"].under_load, runs["rmsnorm_s0"].under_load
        assert "step times p90/p10 14.2x" in runs["dyt_s0"].under_load[0], runs["dyt_s0"].under_load
        assert "load average 3.9 at start" in runs["dyt_s1"].under_load[0], runs["dyt_s1"].under_load
        assert_contains(text, "| DyT | 0/2 | under load | under load |", "| RMSNorm | 2/2 | 100.0 |",
                        "DyT / RMSNorm tokens/s: not compared",
                        "Measured under load (left out above): 2 of 4 runs")
        assert "slower" not in text and "faster" not in text, "a conclusion drawn from loaded runs"
        # the definition itself: p90/p10 and the load rule
        import speedcheck as S
        assert S.reasons([50] * 5 + [100, 100, 100, 190]) == []
        assert S.reasons([50] * 5 + [100] * 8 + [300, 300])[0].startswith("step times p90/p10 3.0x")
        assert not S.busy(1.0, 2.0, 2, 1), "two 1-thread runs side by side on 2 cores"
        assert S.busy(1.0, 3.0, 2, 2) and not S.busy(0.3, 2.2, 2, 2)
        # a run that follows another 2-thread run: the start figure is that run's, not load
        assert not S.busy(2.0, 2.0, 2, 2, 75.0) and S.busy(2.0, 2.0, 2, 2, 5.0)
        # one busy process beside a 2-thread run all along: about 1 thread of other work
        assert abs(S.other_load(1.0, 3.0 - 2.0 * math.exp(-90 / 60), 2, 90.0) - 1.0) < 1e-9
        assert S.busy(1.0, 3.0 - 2.0 * math.exp(-90 / 60), 2, 2, 90.0)

    @test
    def test_cli_subprocess_and_no_runs_error():
        out2 = os.path.join(tmp, "cli")
        p = subprocess.run([sys.executable, SCRIPT, "--out", out2, runs_dir],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-500:]
        assert "1.5200 ± 0.0200" in p.stdout
        p = subprocess.run([sys.executable, SCRIPT, "--out", out2, os.path.join(tmp, "nope")],
                           capture_output=True, text=True)
        assert p.returncode == 1 and "no run folders" in p.stderr, p.stderr


def sweep_tests(tmp):
    root = os.path.join(tmp, "sweep")
    runs_dir = make_sweep_set(root)
    rc, stdout = run_main(["--sweep", "lr", "--out", root, runs_dir])
    summary = open(os.path.join(root, "summary.md")).read() if rc == 0 else ""

    @test
    def test_sweep_plots_written():
        assert rc == 0, f"main returned {rc}"
        assert_png(os.path.join(root, "sweep.png"))
        assert_svg(os.path.join(root, "sweep.svg"))

    @test
    def test_sweep_summary_table():
        assert_contains(summary, "| 1e-4 | RMSNorm | 1.6100 ± 0.0141 |", "| 2 | 0/2 |",
                        "| 1e-3 | DyT | 1.5500 ± 0.0283 |",
                        "| 1e-2 | RMSNorm | 1.7000 |", "| 1 | 1/2 |",
                        "| 1e-2 | DyT | — |", "| 0 | 2/2 |",
                        "- RMSNorm: lr=1e-3 (1.5100 ± 0.0141)", "- DyT: lr=1e-3",
                        "- lr=1e-2: n/a (need >= 2 seeds)")
        # values sorted numerically, not as strings
        assert summary.index("| 1e-4 |") < summary.index("| 1e-3 |") < summary.index("| 1e-2 |")

    @test
    def test_sweep_value_from_run_json_args():
        # a run folder outside the <param>=<value> convention still gets its value from run.json
        path = os.path.join(tmp, "loose", "dyt_s0")
        make_run(path, "dyt", 0, 1.5, 110.0, args=("--lr", "3e-3"))
        assert A.identify(path, "lr") == ("dyt", 0, "3e-3")


# Grid lr x alpha-attn, 2 seeds: RMSNorm best at (1e-3, 0.5) [1.50, 1.52] -> 1.5100 ± 0.0141;
# DyT (1e-3, 0.5): one seed collapsed (4.10, within 0.1 of ln 64); (1e-2, 1): both diverged;
# DyT best (1e-3, 1) [1.53, 1.57] -> 1.5500 ± 0.0283, Welch against RMSNorm's best cell.
GRID = {("rmsnorm", "1e-3", "0.5"): [1.50, 1.52], ("rmsnorm", "1e-3", "1"): [1.55, 1.57],
        ("rmsnorm", "1e-2", "0.5"): [1.60, 1.62], ("rmsnorm", "1e-2", "1"): [1.65, 1.67],
        ("dyt", "1e-3", "0.5"): [4.10, 1.60], ("dyt", "1e-3", "1"): [1.53, 1.57],
        ("dyt", "1e-2", "0.5"): [1.70, 1.72], ("dyt", "1e-2", "1"): [None, None]}


def grid_tests(tmp):
    root = os.path.join(tmp, "grid")
    for (norm, lr, a), fins in GRID.items():
        for k, f in enumerate(fins):
            make_run(os.path.join(root, "runs", f"lr={lr},alpha-attn={a}", f"{norm}_s{k}"), norm, k,
                     f or 2.0, 100.0, diverge_at=None if f else 60, args=("--lr", lr, "--alpha-attn", a))
    rc, text = run_main(["--sweep", "lr", "--sweep2", "alpha-attn", "--out", root,
                         os.path.join(root, "runs")])

    @test
    def test_grid_heatmap_and_summary():
        assert rc == 0, f"main returned {rc}"
        assert_png(os.path.join(root, "grid.png"))
        assert_svg(os.path.join(root, "grid.svg"))
        w = A.welch_test([1.53, 1.57], [1.50, 1.52])
        assert_contains(text, "Baseline: RMSNorm's best cell lr=1e-3, alpha-attn=0.5: 1.5100 ± 0.0141.",
                        "| alpha-attn \\ lr | 1e-3 | 1e-2 |",
                        "| 0.5 | 2.8500 ± 1.7678 (n 2, div 0, coll 1) |",
                        "| — (n 0, div 2, coll 0) |",
                        "Best cell lr=1e-3, alpha-attn=1; DyT best − RMSNorm best final val loss: "
                        f"**{w['diff']:+.4f}**, 95% CI [{w['lo']:+.4f}, {w['hi']:+.4f}]")
        # rows are alpha-attn (sorted numerically), columns lr
        assert text.index("| 0.5 | 1.5100") < text.index("| 1 | 1.5600"), text[:600]


# ----------------------------------------------------------------------------------------
# Log reading edge cases
# ----------------------------------------------------------------------------------------

def log_tests(tmp):
    @test
    def test_log_resume_duplicates_and_clock_restart():
        # steps 0..3, then a resume from step 2 that restarted its clock at 0
        path = os.path.join(tmp, "dup.csv")
        with open(path, "w") as f:
            f.write("step,train_loss,val_loss,elapsed_s\n0,,4.0,0\n1,3.9,,1\n2,3.8,3.7,2\n"
                    "3,9.9,,3\n3,3.6,,0.5\n4,3.5,3.4,1.5\n")
        log = A.read_log(path)
        assert list(log.get("step")) == [0, 1, 2, 3, 4], list(log.get("step"))
        assert log.get("train_loss")[3] == 3.6, "the later row of a repeated step must win"
        el = list(log.get("elapsed_s"))
        assert el == sorted(el), f"elapsed not monotonic: {el}"
        assert list(log.eval_rows()) == [0, 2, 4]

    @test
    def test_nonfinite_loss_marks_diverged_without_result():
        path = os.path.join(tmp, "crash", "dyt_s0")
        os.makedirs(path)
        with open(os.path.join(path, "log.csv"), "w") as f:
            f.write("step,train_loss,val_loss\n0,,4.0\n1,3.9,\n2,-nan,\n")
        (run,) = A.load_runs([path])
        assert run.status == "diverged" and run.diverge_step() == 2.0, run.status


    @test
    def test_finite_blowup_counts_as_diverged():
        # finished per result.txt, but the val loss ends above the step-0 one (5.5 -> 91.9)
        path = os.path.join(tmp, "blowup", "dyt_s0")
        os.makedirs(path)
        with open(os.path.join(path, "log.csv"), "w") as f:
            f.write("step,train_loss,val_loss\n0,,5.5\n1,4.0,\n2,3.9,3.8\n3,60,\n4,95,91.9\n")
        with open(os.path.join(path, "result.txt"), "w") as f:
            f.write("status=finished\nfinal_val_loss=91.9\nbest_val_loss=3.8\n")
        (run,) = A.load_runs([path])
        assert run.status == "diverged", run.status
        assert run.diverge_step() == 4.0 and "91.9 > initial 5.5" in run.why, run.why
        assert A.finals([run]) == [], "a blown-up run must stay out of the statistics"


# ----------------------------------------------------------------------------------------
# compare_norms.sh and sweep.sh with a fake train_llama
# ----------------------------------------------------------------------------------------

# Logs its argv to OUT/argv.txt; diverges (status=diverged, exit 1) when --lr >= 1.
FAKE_TRAIN = r"""#!/usr/bin/python3
import sys
a = sys.argv[1:]
if a == ["--help"]:  # the scripts read the trainer's flags from its --help
    print("usage: train_llama --data FILE [options]\n  --data S   text\n  --out S   folder\n"
          "  --norm S   kind\n  --seed N   seed\n  --resume S   ckpt\n  --steps N   steps\n"
          "  --lr X   lr\n  --threads N   threads\n  --alpha-attn X   a\n"
          "  --no-dyt-beta        flag\n  --list-norms         kinds\n  --help               this")
    sys.exit(0)
if a == ["--list-norms"]:
    print("rmsnorm\nlayernorm\ndyt\nnone")
    sys.exit(0)
opt = {a[i]: a[i + 1] for i in range(len(a) - 1) if a[i].startswith("--")}
out, lr, seed = opt["--out"], float(opt.get("--lr", "1e-3")), int(opt["--seed"])
open(out + "/argv.txt", "w").write(" ".join(a))
bad = lr >= 1
rows = ["step,train_loss,val_loss,ms,tok_s,elapsed_s", "0,,4.0,,,0"]
rows += [f"{s},{'nan' if bad and s > 2 else 3.0},{'nan' if bad and s > 2 else 2.5 - 0.01 * seed}"
         f",10,1000,{s / 100}" for s in range(1, 5)]
open(out + "/log.csv", "w").write("\n".join(rows) + "\n")
open(out + "/model.bin", "w").write("m")
final = "nan" if bad else 2.5 - 0.01 * seed
open(out + "/result.txt", "w").write(f"status={'diverged' if bad else 'finished'}\n"
                                     f"final_val_loss={final}\nnorm={opt['--norm']}\n")
sys.exit(1 if bad else 0)
"""
FAKE_INFER = "#!/bin/sh\necho \"sample of $1\"\n"


def sh(tmp, script, *args):
    """Run scripts/<script> with the fake binaries; returns CompletedProcess."""
    env = dict(os.environ, TRAIN_LLAMA=os.path.join(tmp, "fake_train"),
               INFER_LLAMA=os.path.join(tmp, "fake_infer"))
    return subprocess.run([os.path.join(SCRIPTS, script), *args], capture_output=True,
                          text=True, env=env)


def script_tests(tmp):
    for name, text in (("fake_train", FAKE_TRAIN), ("fake_infer", FAKE_INFER)):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(tmp, name), 0o755)
    data = os.path.join(tmp, "script_data.txt")
    with open(data, "w") as f:
        f.write("hello world\n")

    @test
    def test_compare_sh_usage_errors():
        p = sh(tmp, "compare_norms.sh", "--help")
        assert p.returncode == 0 and "Usage:" in p.stdout, p.returncode
        for args, want in ((["--seeds", "2"], "--data FILE is required"),
                           (["--data", data, "--bogus", "1"], "unknown option '--bogus'"),
                           (["--data", data, "--seed", "1"], "--seed is set by this script")):
            p = sh(tmp, "compare_norms.sh", *args)
            lines = p.stderr.strip().splitlines()
            assert p.returncode == 2 and len(lines) == 1 and want in lines[0], (args, p.stderr)

    @test
    def test_compare_sh_skip_resume_sample():
        out = os.path.join(tmp, "sh_compare")
        runs = os.path.join(out, "runs")
        for d in ("rmsnorm_s0", "dyt_s0"):
            os.makedirs(os.path.join(runs, d))
        # rmsnorm_s0 already finished: skipped; dyt_s0 has only a checkpoint: resumed
        make_run(os.path.join(runs, "rmsnorm_s0"), "rmsnorm", 0, 2.6, 10.0, run_json=False)
        open(os.path.join(runs, "dyt_s0", "checkpoint.bin"), "w").write("c")
        p = sh(tmp, "compare_norms.sh", "--data", data, "--seeds", "2", "--out", out,
               "--steps", "4", "--lr=1e-3")
        assert p.returncode == 0, p.stderr[-600:]
        assert not os.path.exists(os.path.join(runs, "rmsnorm_s0", "argv.txt")), "not skipped"
        argv = open(os.path.join(runs, "dyt_s0", "argv.txt")).read()
        resume = "--resume " + os.path.join(runs, "dyt_s0", "checkpoint.bin")
        assert resume in argv and "--steps 4 --lr 1e-3" in argv, argv
        assert "--seed 1" in open(os.path.join(runs, "rmsnorm_s1", "argv.txt")).read()
        # best dyt run: seed 1 (final 2.49 < 2.50)
        sample = open(os.path.join(out, "sample_dyt.txt")).read()
        assert "dyt_s1/model.bin" in sample, sample
        for f in ("summary.md", "loss_curves.png", "sample_rmsnorm.txt"):
            assert os.path.exists(os.path.join(out, f)), f

    @test
    def test_sweep_sh_carries_on_after_divergence():
        out = os.path.join(tmp, "sh_sweep")
        p = sh(tmp, "sweep.sh", "--param", "lr", "--values", "1e-3,3", "--seeds", "2",
               "--norms", "dyt", "--out", out, "--data", data)
        assert p.returncode == 0, p.stderr[-600:]
        assert os.path.exists(os.path.join(out, "runs", "lr=3", "dyt_s1", "result.txt")), \
            "the sweep stopped at the first divergence"
        summary = open(os.path.join(out, "summary.md")).read()
        assert_contains(summary, "| 3 | DyT | — | — | 0 | 2/2 |", "| 1e-3 | DyT | 2.4950 ± 0.0071")
        assert_png(os.path.join(out, "sweep.png"))


def main():
    global DATA_FILE
    keep = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--keep" else None
    stats_tests()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = keep or tmp
        os.makedirs(tmp, exist_ok=True)
        DATA_FILE = os.path.join(tmp, "data.txt")
        with open(DATA_FILE, "wb") as f:
            f.write(DATA_TEXT)
        for group in (compare_tests, sweep_tests, grid_tests, log_tests, script_tests):
            try:
                group(tmp)
            except Exception as e:  # noqa: BLE001  (setup outside a test crashed)
                print(f"FAIL - {group.__name__}: {type(e).__name__}: {e}")
                RESULTS.append(False)
    failed = RESULTS.count(False)
    print(f"# {len(RESULTS) - failed} passed, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
