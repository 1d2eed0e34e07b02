#!/usr/bin/python3
"""`make bench`: runs build/benchmark (one process per measurement, so each peak
RSS is its own) and the PyTorch peer (scripts/bench_torch.py), prints the
table and writes it to runs/bench/bench.md and runs/bench/bench.csv (`make figures`
copies them to docs/, which the README links: a run never rewrites tracked files).

    /usr/bin/python3 scripts/bench.py [--threads N] [--quick] [--out runs/bench]

--threads defaults to the number of cores; scaling compares 1 thread with it.
--quick (or BENCH_QUICK=1) runs a few steps only: a smoke run, not numbers.
Environment: BENCH_CFLAGS (set by the Makefile) is recorded as the build flags.

Every measurement also records the CPU that other processes used while it ran
(all cores' busy time from /proc/stat, minus the measured process's and the
benchmark's own load's): a figure taken while more than DISTURBED cores'
worth ran beside it is marked as disturbed, not presented as the program's speed.
The contended section (issue #14) measures generation and training idle and
beside a load the benchmark starts itself (`benchmark spin N`).

The matmul section (issue #27) trains the small config in every matmul backend
and precision (`benchmark train ... MATMUL PRECISION`) and PyTorch in float32 and
in bf16 autocast, taking turns in MODE_ROUNDS rounds, idle and then beside one
busy loop; each mode's FLOP rate is shown against this CPU's physical peak for
its precision (`benchmark peak`: the clock from a chain of dependent FMAs, times
the FLOP per cycle per core of its widest instruction, times the cores) and
against the measured products.
"""

import argparse
import csv
import datetime
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BENCH = os.path.join(ROOT, "build", "benchmark")
PRELOAD = os.path.join(ROOT, "build", "alloc_count.so")

# the shapes of issue #5; steps (timed, warm-up) chosen so the suite takes minutes
CONFIGS = {
    "tiny": dict(dim=64, layers=4, heads=4, kv_heads=2, seq=128, batch=16, vocab=256, steps=20, warmup=3),
    "small": dict(dim=288, layers=6, heads=6, kv_heads=6, seq=256, batch=8, vocab=512, steps=10, warmup=2),
    "medium": dict(dim=512, layers=8, heads=8, kv_heads=8, seq=256, batch=8, vocab=4096, steps=4, warmup=1),
}
NORMS = ("rmsnorm", "dyt")
LAYER_DIMS = (288, 1024, 4096)
# generation at the sizes of issue #14 (d 288 / 6 layers, 512 / 8, 768 / 12) and tiny
GEN_CONFIGS = ("tiny", "small", "medium", "large")
# the contended section: loads started by the benchmark (threads of `benchmark spin`)
LOADS = (("idle", 0), ("1 busy loop", 1), ("2-thread load", 2))
DISTURBED = 0.25  # cores of other processes' CPU during a measurement that mark it
# the training step per norm kind (issue #12): rounds of every kind in turn, timed steps each
# (5 rounds: the norms are 1 % of a step, the run-to-run noise about 1 %)
KIND_ROUNDS, KIND_STEPS = 5, 6
GEN_REPS = 3  # the contended section's generation runs per cell
# the matmul section (issue #27): small, every backend and precision (the trainer's --matmul,
# --precision; the first is the base of the ratios) and PyTorch's two, taking turns in rounds
MODES = (("openblas", "fp32"), ("onednn", "fp32"), ("onednn", "bf16"), ("openblas", "bf16"))
TORCH_PRECISIONS = {"fp32": "PyTorch fp32 (eager)", "bf16": "PyTorch bf16 autocast"}
MODE_ROUNDS, MODE_STEPS, MODE_WARMUP = 3, 6, 2
TORCH_WARMUP = 3  # PyTorch's first bf16 steps create oneDNN's kernels: seconds each
# decoding from bf16 weights (issue #27 item 3): the configs of its rows
GEN_BF16_CONFIGS = ("small", "medium", "large")


def cpu_busy_s():
    """Seconds of CPU all cores spent busy (not idle or waiting for I/O) since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    """CPU seconds (user + system) of a running process, 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


LOAD_PIDS = []  # the benchmark's own load processes, whose CPU is not foreign


def run_kv(cmd, env=None, timeout=None):
    """Runs cmd, returns its key=value lines as a dict (values as float where they parse),
    plus foreign_cores: other processes' CPU while it ran, in cores. Past `timeout`
    seconds the program is stopped and the dict says timed_out."""
    t0, busy0, mine0 = time.monotonic(), cpu_busy_s(), children_cpu_s()
    load0 = sum(proc_cpu_s(p) for p in LOAD_PIDS)
    try:
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timed_out": timeout, "foreign_cores": 0.0}
    wall = time.monotonic() - t0
    other = (cpu_busy_s() - busy0) - (children_cpu_s() - mine0) - (sum(proc_cpu_s(p) for p in LOAD_PIDS) - load0)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed (exit {r.returncode}): {r.stderr.strip()[:300]}")
    out = {}
    for line in r.stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    out["foreign_cores"] = max(0.0, other / wall) if wall > 0 else 0.0
    return out


def disturbed(d):
    """' (disturbed: N cores)' when other processes ran beside the measurement, else ''."""
    f = d.get("foreign_cores", 0.0)
    return f" (disturbed: {f:.1f} cores)" if f > DISTURBED else ""


def start_load(threads):
    """Starts `benchmark spin threads` (nothing for 0); returns the process or None."""
    if not threads:
        return None
    p = subprocess.Popen([BENCH, "spin", str(threads)], cwd=ROOT, stdout=subprocess.DEVNULL)
    LOAD_PIDS.append(p.pid)
    time.sleep(0.3)  # its threads running before the measurement starts
    return p


def stop_load(p):
    if p is not None:
        p.kill()
        p.wait()
        LOAD_PIDS.remove(p.pid)


def bench_env():
    env = dict(os.environ)
    env["LD_PRELOAD"] = PRELOAD
    return env


def fmt(x, nd=1):
    return f"{x:,.{nd}f}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "bench"))
    a = p.parse_args()
    T = a.threads
    t_start = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    load_start = os.getloadavg()[0]
    rows = []  # (section, config, norm, threads, metric, value) for the CSV

    def rec(section, config, norm, threads, d, keys):
        for k in keys:
            rows.append((section, config, norm, threads, k, d[k]))

    def log(msg):  # with the seconds since the start: where a run's time goes
        print(f"[{time.monotonic() - t0:4.0f} s] {msg}", file=sys.stderr, flush=True)

    log(f"bench: sgemm peak and memory bandwidth ({T} threads)")
    peak = run_kv([BENCH, "peak", str(T)])
    rec("peak", "", "", T, peak, ["sgemm_gflops", "mem_read_gbs", "clock_ghz", "peak_avx2_gflops", "peak_fp32_gflops",
                                  "peak_bf16_gflops", "fma_avx2_gflops", "fma_avx512_gflops", "dot_bf16_gflops"]
        + [k for k in peak if k.startswith("mm_") and k.endswith("_gflops")])
    train, torch, gen, layer = {}, {}, {}, {}
    for name, c in CONFIGS.items():
        steps, warm = (2, 1) if a.quick else (c["steps"], c["warmup"])
        thread_list = [T] + ([1] if name != "tiny" and T > 1 else [])
        for norm in NORMS:
            for th in thread_list:
                if th == 1 and norm == "dyt":
                    continue  # scaling is measured on RMSNorm
                log(f"bench: train {name} {norm} {th} threads")
                d = run_kv([BENCH, "train", name, norm, str(th), str(steps), str(warm)], env=bench_env())
                train[name, norm, th] = d
                rec("train", name, norm, th, d, ["matmul_mode", "step_ms", "tok_s", "flops_per_token",
                                                 "achieved_gflops", "share_matmul", "share_attention", "share_norm",
                                                 "share_other", "share_optimizer", "peak_rss_bytes", "analytic_bytes",
                                                 "allocs_in_steps", "foreign_cores"])
            log(f"bench: torch {name} {norm} {T} threads")
            d = run_kv(torch_args(c, norm, T, steps, warm, "fp32"))
            torch[name, norm] = d
            rec("torch", name, norm, T, d, ["step_ms", "tok_s"])
    for name in GEN_CONFIGS:
        for norm in NORMS:
            # THREADS 0: the default, as infer_llama runs (all cores, or one while that is faster)
            log(f"bench: generation {name} {norm}")
            d = run_kv([BENCH, "gen", name, norm, "0"])
            gen[name, norm] = d
            rec("gen", name, norm, 0, d, ["prefill_tok_s", "decode_tok_s", "decode_ms_per_token",
                                          "decode_weight_bytes", "decode_flops_per_token", "decode_kv_bytes",
                                          "decode_one_thread_share", "mem_read_gbs", "foreign_cores"])
    modes = run_modes(a, T, log, rec, peak)
    gen_bf16 = run_gen_bf16(log, rec)
    contended = run_contended(a, T, log, rec)
    kind_steps = run_kinds(a, T, log, rec)
    for dim in LAYER_DIMS:
        log(f"bench: layer d={dim}")
        d = run_kv([BENCH, "layer", str(dim), str(T)])
        layer[dim] = d
        rec("layer", str(dim), "", T, d, [k for k in d if k.endswith("_us")])
    wall = (datetime.datetime.now(datetime.timezone.utc) - t_start).total_seconds()
    loads = (load_start, os.getloadavg()[0])

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "bench.csv"), "w", newline="") as f:  # first: the report may fail
        w = csv.writer(f)
        w.writerow(["section", "config", "norm", "threads", "metric", "value"])
        w.writerows(rows)
    md = report(a, T, peak, train, torch, gen, layer, contended, kind_steps, wall, t_start, loads, modes, gen_bf16)
    with open(os.path.join(a.out, "bench.md"), "w") as f:
        f.write(md)
    print(md)
    log(f"bench: wrote {a.out}/bench.md and {a.out}/bench.csv in {wall:.0f} s")


def run_contended(a, T, log, rec):
    """Generation (small, decode tok/s) and training (small, tok/s), ours and PyTorch's,
    default threads and 1, idle and beside each load. Returns {(what, threads, load): dict}."""
    c = CONFIGS["small"]
    steps, warm = (1, 1) if a.quick else (3, 1)
    out = {}
    # seconds per measurement: a program that collapses under the load (PyTorch's threads
    # spin 300,000 times at each barrier, as ours did) is cut short and shown as timed out
    limit = 60

    def measure(what, th, load, cmd, key):
        d = run_kv(cmd, timeout=limit)
        d["speed"] = d.get(key, 0.0)
        out[what, th, load] = d

    gen = "ours: generation (decode tok/s)"
    for load, lt in LOADS:
        p = start_load(lt)
        try:
            # generation takes a second: GEN_REPS runs each, default and 1 taking turns, the
            # median run (one run swings by 20-30 % on a shared VM)
            log(f"bench: contended, {load}: generation, threads default and 1, {1 if a.quick else GEN_REPS} rounds")
            runs = {"default": [], "1": []}
            for _ in range(1 if a.quick else GEN_REPS):
                for th in runs:
                    # one timed run per process (the best of several would flatter a loaded machine,
                    # whose throughput is its mean): the median of GEN_REPS processes
                    runs[th].append(run_kv([BENCH, "gen", "small", "rmsnorm", "0" if th == "default" else "1", "1"],
                                           timeout=limit))
            for th, ds in runs.items():
                d = dict(sorted(ds, key=lambda d: d.get("decode_tok_s", 0.0))[len(ds) // 2])
                d["speed"] = d.get("decode_tok_s", 0.0)
                out[gen, th, load] = d
            for th in ("default", "1"):
                arg = "0" if th == "default" else "1"
                log(f"bench: contended, {load}: training, PyTorch training; threads {th}")
                measure("ours: training (tok/s)", th, load,
                        [BENCH, "train", "small", "rmsnorm", arg, str(steps), str(warm)], "tok_s")
                tth = T if th == "default" else 1  # torch's default is all cores too
                # PyTorch's step is 3x ours: 2 steps
                measure("PyTorch: training (tok/s)", th, load,
                        torch_args(c, "rmsnorm", tth, min(steps, 2), warm, "fp32"), "tok_s")
        finally:
            stop_load(p)
    for (what, th, load), d in out.items():
        rec("contended", what, load, th, d, ["speed", "foreign_cores"])
    return out


def torch_args(c, norm, threads, steps, warm, precision):
    """bench_torch.py's command for config c (a CONFIGS entry)."""
    targs = ["--dim", c["dim"], "--layers", c["layers"], "--heads", c["heads"], "--kv-heads", c["kv_heads"],
             "--seq", c["seq"], "--batch", c["batch"], "--vocab", c["vocab"], "--norm", norm, "--threads", threads,
             "--steps", steps, "--warmup", warm, "--precision", precision]
    return ["/usr/bin/python3", os.path.join(HERE, "bench_torch.py")] + [str(x) for x in targs]


def mode_name(be, pr):
    return f"{be} {pr}"


def run_modes(a, T, log, rec, peak):
    """The small config's training step (RMSNorm, T threads) in every matmul backend and
    precision (MODES) and PyTorch's fp32 and bf16 autocast, all taking turns in each of
    MODE_ROUNDS rounds (so that a load that comes and goes hits them alike), then one
    round beside one busy loop (reported, not targeted). Returns {load: {mode: dict}}, each
    dict the median run by step time; a backend this build lacks (`benchmark peak` said
    mm_BACKEND_unavailable) has {"skipped": why}."""
    c = CONFIGS["small"]
    steps, warm = (1, 1) if a.quick else (MODE_STEPS, MODE_WARMUP)
    tsteps, twarm = (1, 1) if a.quick else (max(2, steps - 2), TORCH_WARMUP)  # PyTorch's f32 step is 2-3x ours
    cmds = {mode_name(be, pr): [BENCH, "train", "small", "rmsnorm", str(T), str(steps), str(warm), be, pr]
            for be, pr in MODES if f"mm_{be}_unavailable" not in peak}
    skipped = {mode_name(be, pr): {"skipped": peak[f"mm_{be}_unavailable"]}
               for be, pr in MODES if f"mm_{be}_unavailable" in peak}
    cmds.update({name: torch_args(c, "rmsnorm", T, tsteps, twarm, pr) for pr, name in TORCH_PRECISIONS.items()})
    out = {}
    for load, lt in (LOADS[0], LOADS[1]):
        rounds = 1 if a.quick or lt else MODE_ROUNDS
        # --quick: beside the load ours only (PyTorch's collapse there takes minutes)
        runs = {m: [] for m, cmd in cmds.items() if not (a.quick and lt and cmd[0] != BENCH)}
        p = start_load(lt)
        try:
            for r in range(rounds):
                for m in runs:
                    cmd = cmds[m]
                    log(f"bench: matmul modes, {load}: {m} (round {r + 1} of {rounds})")
                    # a load collapses PyTorch's threads (the contended section): cut short there
                    d = run_kv(cmd, env=bench_env() if cmd[0] == BENCH else None, timeout=120 if lt else None)
                    runs[m].append(d)
        finally:
            stop_load(p)
        out[load] = dict(skipped)
        out[load].update({m: {"skipped": "not run (--quick)"} for m in cmds if m not in runs})
        for m, ds in runs.items():
            done = [d for d in ds if "timed_out" not in d]
            d = dict(sorted(done, key=lambda d: d["step_ms"])[len(done) // 2]) if done else dict(ds[0])
            d["rounds"] = len(ds)
            out[load][m] = d
            if "step_ms" in d:
                rec("modes", "small", m, T, d, ["step_ms", "tok_s", "foreign_cores"] +
                    (["achieved_gflops", "allocs_in_steps"] if "achieved_gflops" in d else []))
    return out


def run_gen_bf16(log, rec):
    """==== bf16 weights (issue #27 item 3) ====
    Decoding from bf16 weights and a bf16 KV cache (RMSNorm, default threads) at
    GEN_BF16_CONFIGS, beside the fp32 rows of the generation section. The benchmark
    says whether this build can (bench/bench.c, WEIGHT_FORMATS' unavailable column);
    when it cannot, this returns {"skipped": its reason} and the report says so."""
    out = {}
    for name in GEN_BF16_CONFIGS:
        log(f"bench: generation {name} rmsnorm, bf16 weights")
        d = run_kv([BENCH, "gen", name, "rmsnorm", "0", "3", "bf16"])
        if "unavailable" in d:
            log(f"bench: skip: bf16 weights: {d['unavailable']}")
            return {"skipped": d["unavailable"]}
        out[name] = d
        rec("gen_bf16", name, "rmsnorm", 0, d, ["prefill_tok_s", "decode_tok_s", "decode_ms_per_token",
                                                "decode_weight_bytes", "decode_kv_bytes", "mem_read_gbs",
                                                "foreign_cores"])
    return out


def run_kinds(a, T, log, rec):
    """A training step of every norm kind (train_llama --list-norms) on the small config,
    the kinds taking turns in each of KIND_ROUNDS rounds, so that a load that comes and
    goes hits them alike; per kind the median over rounds of each run's step time."""
    names = subprocess.run([os.path.join(ROOT, "train_llama"), "--list-norms"], capture_output=True,
                           text=True, check=True).stdout.split()
    steps, warm = (2, 1) if a.quick else (KIND_STEPS, 1)
    runs = {k: [] for k in names}
    for r in range(1 if a.quick else KIND_ROUNDS):
        for k in names:
            log(f"bench: train small {k} {T} threads (kinds, round {r + 1})")
            runs[k].append(run_kv([BENCH, "train", "small", k, str(T), str(steps), str(warm)], env=bench_env()))
    out = {}
    for k, ds in runs.items():
        d = dict(sorted(ds, key=lambda d: d["step_ms"])[len(ds) // 2])  # the median run
        d["rounds"] = len(ds)
        out[k] = d
        rec("kinds", "small", k, T, d, ["step_ms", "share_norm", "foreign_cores"])
    return out


def product_peak(peak, d):
    """The measured peak (GFLOP/s) of a training run's own products: its backend and
    precision through the matmul module at 1536^3 (`benchmark peak`); 0 if not measured."""
    return peak.get(f"mm_{d['matmul']}_{d['precision']}_gflops", 0.0)


def pct(x, of):
    return f"{100 * x / of:.0f}%" if of else "-"


def report(a, T, peak, train, torch, gen, layer, contended, kind_steps, wall, t_start, loads, modes, gen_bf16):
    pk = peak["sgemm_gflops"]
    bw = peak["mem_read_gbs"]
    L = []
    L.append("# `make bench`\n")
    L.append(f"Run {t_start:%Y-%m-%d %H:%M} UTC, {wall:.0f} s{' (--quick: smoke run, not numbers)' if a.quick else ''}. "
             f"Threads {T}; OpenBLAS core `{peak['corename']}` ({peak['blas_config']}); "
             f"CFLAGS `{os.environ.get('BENCH_CFLAGS', '?')}`; PyTorch {next(iter(torch.values()))['torch']}. "
             f"Load average (1 min) {loads[0]:.1f} at the start, {loads[1]:.1f} at the end: "
             f"a load above {T} means other processes shared the cores, inflating the times. "
             f"A figure measured while other processes used more than {DISTURBED} cores' worth of CPU "
             f"(from /proc/stat, less the benchmark's own) is marked *disturbed*.\n")
    L.append(f"- sgemm peak: **{pk:.1f} GFLOP/s**, best of 8 `cblas_sgemm` of shape {peak['sgemm_shape']} "
             f"(M x N x K, B transposed as in our matmuls), same BLAS, {T} threads.")
    L.extend(peak_lines(T, peak))
    L.append(f"- memory read bandwidth: **{bw:.1f} GB/s** (sum of a 512 MiB array, best of 4).")
    L.append("- FLOPs per token = 6 x matmul parameters (q, k, v, o, w1, w2, w3, head) "
             "+ 6 x n_layers x seq x d (causal attention); MFU = FLOPs/token x tokens/s / the measured peak of the "
             "row's own products (its backend and precision at 1536^3, above); \"physical\" = the same rate / the "
             f"physical peak of its precision (both peaks x threads / {T} on a row of fewer threads).")
    L.append("- analytic memory = 16 bytes x parameters (weights, gradients, two AdamW moments) + the activation "
             "block as acts_create lays it out (what backward keeps, its scratch, the logits and their gradient).")
    L.append("- allocs/step: malloc-family calls during the timed steps (LD_PRELOAD counter), per step.\n")

    L.append("## Training\n")
    L.append("| config | norm | threads | matmul | ms/step | tok/s | MFLOP/token | GFLOP/s | MFU | physical "
             "| PyTorch fp32 tok/s | ours / PyTorch | peak RSS MiB | analytic MiB | RSS / analytic | allocs/step |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, norm, th), d in train.items():
        t = torch.get((name, norm)) if th == T else None
        peer = f"{fmt(t['tok_s'], 0)} | {d['tok_s'] / t['tok_s']:.2f}x" if t else " | "
        L.append(f"| {name} | {norm} | {th} | {d['matmul_mode']} | {fmt(d['step_ms'])}{disturbed(d)} | "
                 f"{fmt(d['tok_s'], 0)} | {fmt(d['flops_per_token'] / 1e6)} | {fmt(d['achieved_gflops'])} | "
                 f"{pct(d['achieved_gflops'] * T / th, product_peak(peak, d))} | "
                 f"{pct(d['achieved_gflops'] * T / th, peak.get('peak_' + d['precision'] + '_gflops', 0))} | {peer} | "
                 f"{d['peak_rss_bytes'] / 2**20:.0f} | {d['analytic_bytes'] / 2**20:.0f} | "
                 f"{d['peak_rss_bytes'] / d['analytic_bytes']:.2f} | {d['allocs_in_steps'] / d['steps']:.0f} |")
    L.extend(modes_section(T, peak, modes))
    L.append("\nTime shares of a step (the program's own timers; optimizer = clip + AdamW):\n")
    L.append("| config | norm | threads | matmuls | attention (incl. RoPE) | norms | rest (elementwise, loss, embedding) | optimizer |")
    L.append("|---|---|---|---|---|---|---|---|")
    for (name, norm, th), d in train.items():
        L.append(f"| {name} | {norm} | {th} | " + " | ".join(
            f"{100 * d['share_' + k]:.1f}%" for k in ("matmul", "attention", "norm", "other", "optimizer")) + " |")
    L.append(f"\nThread scaling (RMSNorm, ms/step):\n")
    L.append(f"| config | 1 thread | {T} threads | speed-up |")
    L.append("|---|---|---|---|")
    for name in CONFIGS:
        if (name, "rmsnorm", 1) in train and T > 1:
            one, many = train[name, "rmsnorm", 1]["step_ms"], train[name, "rmsnorm", T]["step_ms"]
            L.append(f"| {name} | {fmt(one)} | {fmt(many)} | {one / many:.2f}x |")

    L.append("\n## Every norm kind's layer alone, side by side in one process (4096 tokens, "
             "fwd + bwd microseconds, median of 41; in brackets RMSNorm's time / the kind's)\n")
    kinds = [k[:-7] for k in next(iter(layer.values()), {}) if k.endswith("_fwd_us")]
    L.append("| d | " + " | ".join(kinds) + " |")
    L.append("|---|" + "---|" * len(kinds))
    for dim, d in layer.items():
        rms = d["rmsnorm_fwd_us"] + d["rmsnorm_bwd_us"]
        L.append(f"| {dim} | " + " | ".join(
            f"{fmt(d[k + '_fwd_us'] + d[k + '_bwd_us'])} ({rms / (d[k + '_fwd_us'] + d[k + '_bwd_us']):.2f}x)"
            for k in kinds) + " |")

    if kind_steps:
        rms = kind_steps["rmsnorm"]["step_ms"]
        L.append(f"\n## A training step per norm kind (small, {T} threads; the kinds take turns in each of "
                 f"{next(iter(kind_steps.values()))['rounds']} rounds, median run; in brackets RMSNorm's step time / "
                 "the kind's)\n")
        L.append("| kind | ms/step | norms' share of the step |")
        L.append("|---|---|---|")
        for k, d in kind_steps.items():
            L.append(f"| {k} | {fmt(d['step_ms'])} ({rms / d['step_ms']:.3f}x){disturbed(d)} | "
                     f"{100 * d['share_norm']:.1f}% |")

    g0 = next(iter(gen.values()), {})  # what every gen run printed of its protocol
    prompt, made, timed = (int(g0.get(k, 0)) for k in ("prompt", "generated", "timed"))
    mean_pos = prompt + made // 2
    L.append(f"\n## Generation (batch 1, KV cache; prompt {prompt} tokens, then {made} greedy tokens)\n")
    L.append("Default threads, as infer_llama runs: all cores, or one for the tokens where one is faster "
             "(the share of tokens decoded on one thread is shown). The bound (issue #5, #14) is the time to "
             "stream the weights once, at the read bandwidth the same process measured seconds before decoding "
             f"(this VM's speed drifts over minutes); a token also reads the KV cache (at the mean position {mean_pos} "
             f"on small, a fifth of the weights' bytes), shown beside it. Prefill and decoding: the best of {timed} "
             "timed runs after a warm-up, as the bandwidth is the best of 4.\n")
    L.append("| config | norm | prefill tok/s | decode tok/s | decode ms/token | bound ms/token | cost / bound "
             "| cost / (weights + KV cache) | prefill / decode per token | tokens on 1 thread |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for (name, norm), d in gen.items():
        ms, which = bound(d, pk)
        with_kv = (d["decode_weight_bytes"] + d["decode_kv_bytes"]) / (d["mem_read_gbs"] * 1e6)
        L.append(f"| {name} | {norm} | {fmt(d['prefill_tok_s'], 0)} | {fmt(d['decode_tok_s'])} | "
                 f"{d['decode_ms_per_token']:.3f} | {ms:.3f} ({which}) | {d['decode_ms_per_token'] / ms:.2f}x | "
                 f"{d['decode_ms_per_token'] / with_kv:.2f}x | "
                 f"{prefill_ratio(d):.1f}x | "
                 f"{100 * d['decode_one_thread_share']:.0f}%{disturbed(d)} |")

    L.extend(gen_bf16_section(gen, gen_bf16))

    L.append("\n## Contended (issue #14): small (d 288, 6 layers), idle and beside a load the benchmark starts\n")
    L.append("Speed (decode tok/s; training tok/s = batch x seq / median step time) and, under a load, "
             "the share of the same row's idle speed. The load is `benchmark spin N`: N threads of arithmetic. "
             f"Generation: the median of {1 if a.quick else GEN_REPS} run(s), default and 1 taking turns; for the default, the share "
             "of tokens the tuner ran on one thread.\n")
    L.append("| program | threads | " + " | ".join(name for name, _ in LOADS) + " |")
    L.append("|---|---|" + "---|" * len(LOADS))
    for what in dict.fromkeys(k[0] for k in contended):
        for th in ("default", "1"):
            idle = contended[what, th, LOADS[0][0]]["speed"]
            cells = []
            for name, _ in LOADS:
                d = contended[what, th, name]
                if "timed_out" in d:
                    cells.append(f"timed out (> {d['timed_out']} s)")
                    continue
                share = "" if name == LOADS[0][0] or not idle else f" ({100 * d['speed'] / idle:.0f}%)"
                one = d.get("decode_one_thread_share") if th == "default" else None
                on1 = "" if one is None else f", {100 * one:.0f}% on 1 thread"
                cells.append(f"{fmt(d['speed'])}{share}{on1}{disturbed(d)}")
            L.append(f"| {what} | {th} | " + " | ".join(cells) + " |")

    L.append("\n## Targets (issue #5)\n")
    L.extend(targets(T, peak, train, torch, gen, layer))
    L.append("\n## Targets (issue #12)\n")
    L.extend(targets12(layer, kind_steps))
    L.append("\n## Targets (issue #14)\n")
    L.extend(targets14(pk, gen, contended))
    L.append("\n## Targets (issue #27)\n")
    L.extend(targets27(T, peak, train, modes, gen, gen_bf16))
    return "\n".join(L) + "\n"


def peak_lines(T, peak):
    """The header's lines on the measured products and the physical peaks."""
    L = []
    mm = [f"{mode_name(be, pr)}{' (emulated)' if peak.get(f'mm_{be}_{pr}_emulated') else ''} "
          f"**{peak[f'mm_{be}_{pr}_gflops']:.1f}**" for be, pr in MODES if f"mm_{be}_{pr}_gflops" in peak]
    missing = [f"{be}: {peak[f'mm_{be}_unavailable']}" for be in dict.fromkeys(be for be, _ in MODES)
               if f"mm_{be}_unavailable" in peak]
    L.append(f"- products through the matmul module (`matmul_forward`, our {T} threads, a slice of rows each; "
             f"as the model runs them) at {peak['sgemm_shape']}, GFLOP/s, best of 8: " + ", ".join(mm)
             + (f" (not measured: {'; '.join(missing)})" if missing else "")
             + (". The onednn fp32 figure is `dnnl_sgemm`'s." if "mm_onednn_fp32_gflops" in peak else "."))
    ghz, cores = peak.get("clock_ghz", 0.0), int(peak.get("cores", T))
    if not ghz:
        L.append("- physical peak: not measured (no FMA kernel for this CPU or compiler)")
        return L
    L.append(f"- clock: **{ghz:.2f} GHz**, from a chain of dependent FMAs (`vfmadd` on one ymm register, "
             f"each waiting for the one before, so each takes the FMA latency, {int(peak['fma_latency_cycles'])} "
             f"cycles on Zen 4/5): FMAs x latency / seconds, each thread's best of 200 runs of about 1 ms, all "
             f"{cores} threads at once, the mean over threads.")
    meas = {"avx2": "fma_avx2_gflops", "fp32": "fma_avx512_gflops", "bf16": "dot_bf16_gflops"}
    parts = []
    for p, what in (("avx2", "AVX2 FMA"), ("fp32", "fp32"), ("bf16", "bf16")):
        per = int(peak[f"peak_{p}_flop_per_cycle"])
        parts.append(f"{what} **{peak[f'peak_{p}_gflops']:.0f}** ({per} FLOP/cycle/core)")
    L.append(f"- physical peak, clock x FLOP per cycle per core x {cores} cores, GFLOP/s: " + ", ".join(parts) + ".")
    checks = []
    for p, key, what in (("avx2", "fma_avx2_gflops", "ymm FMA"), ("fp32", "fma_avx512_gflops", "zmm FMA"),
                         ("bf16", "dot_bf16_gflops", "vdpbf16ps")):
        if peak.get(key):
            checks.append(f"{what} {peak[key]:.0f} GFLOP/s = {peak[key] / (ghz * cores):.1f} FLOP/cycle/core")
    L.append("- the same instructions in independent chains (every FMA unit busy), all threads: " + ", ".join(checks)
             + ": the nominal constants at the chain's clock where these read 32, 64 and 128.")
    return L


def why_missing(d):
    """Why a mode's cell holds no figure: its skip reason, a time-out, or not run."""
    return d.get("skipped") or (f"timed out (> {d['timed_out']} s)" if "timed_out" in d else "not run")


def mode_rates(rows):
    """GFLOP/s of each measured mode of one load: ours as the benchmark computed it,
    PyTorch's with our FLOPs per token (the same model)."""
    fpt = next((d["flops_per_token"] for d in rows.values() if "flops_per_token" in d), 0.0)
    return {m: d.get("achieved_gflops", fpt * d["tok_s"] / 1e9) for m, d in rows.items() if "tok_s" in d}


def torch_ratio(rows, m):
    """Ours / PyTorch in the same precision (ours only), as '1.23x', or ''."""
    d = rows[m]
    t = rows.get(TORCH_PRECISIONS.get(d.get("precision", "")), {})
    return f"{d['tok_s'] / t['tok_s']:.2f}x" if "matmul" in d and "tok_s" in t else ""


def modes_section(T, peak, modes, base=mode_name(*MODES[0])):
    """The matmul section's tables: idle, and beside one busy loop."""
    idle, busy = LOADS[0][0], LOADS[1][0]
    names = [mode_name(be, pr) for be, pr in MODES] + list(TORCH_PRECISIONS.values())
    rows = modes[idle]
    rounds = next((d["rounds"] for d in rows.values() if "rounds" in d), 0)
    L = [f"\n## Matmul backends and precisions (issue #27): small (d 288, 6 layers), RMSNorm, {T} threads\n"]
    L.append(f"Every mode's training step, ours and PyTorch's, taking turns in each of {rounds} round(s); the median "
             "run by step time. GFLOP/s = FLOPs/token x tokens/s (PyTorch's with our FLOP count). \"physical\": of "
             "the physical peak of the mode's precision (fp32 or bf16, above); \"AVX2\": of the AVX2 FMA peak "
             "(what OpenBLAS's Haswell kernels can reach); \"product\": of the mode's own product at 1536^3; "
             "\"sgemm\", \"dnnl_sgemm\": of the measured OpenBLAS and oneDNN fp32 products. PyTorch's bf16 is "
             "CPU autocast (bf16 products with bf16 outputs, through oneDNN); ours rounds operands only. "
             "ours / PyTorch: against PyTorch in the same precision.\n")
    L.append(f"| mode | ms/step | tok/s | / {base} | GFLOP/s | physical | AVX2 | product | sgemm | dnnl_sgemm "
             "| ours / PyTorch | allocs/step |")
    L.append("|---|" + "---|" * 11)
    gf, b = mode_rates(rows), rows.get(base, {}).get("tok_s")
    for m in names:
        d = rows.get(m, {})
        if "tok_s" not in d:
            L.append(f"| {m} | {why_missing(d)} |" + " |" * 10)
            continue
        prec = d["precision"]
        own = peak.get(f"mm_{d['matmul']}_{prec}_gflops", 0.0) if "matmul" in d else 0.0
        cells = [f"{fmt(d['step_ms'])}{disturbed(d)}", fmt(d["tok_s"], 0), f"{d['tok_s'] / b:.2f}x" if b else "-",
                 fmt(gf[m]), pct(gf[m], peak.get(f"peak_{prec}_gflops", 0.0)),
                 pct(gf[m], peak.get("peak_avx2_gflops", 0.0)), pct(gf[m], own),
                 pct(gf[m], peak.get("sgemm_gflops", 0.0)), pct(gf[m], peak.get("mm_onednn_fp32_gflops", 0.0)),
                 torch_ratio(rows, m),
                 fmt(d["allocs_in_steps"] / d["steps"], 0) if "allocs_in_steps" in d else ""]
        emu = " (emulated)" if d.get("matmul_emulated") else ""
        L.append(f"| {m}{emu} | " + " | ".join(cells) + " |")
    L.append("\nThe same, one round beside one busy loop (`benchmark spin 1`; reported, not targeted), tok/s "
             "(in brackets: of the idle row):\n")
    L.append(f"| mode | tok/s | / {base} | ours / PyTorch |")
    L.append("|---|---|---|---|")
    loaded = modes[busy]
    b = loaded.get(base, {}).get("tok_s")
    for m in names:
        d, i = loaded.get(m, {}), rows.get(m, {})
        if "tok_s" not in d:
            L.append(f"| {m} | {why_missing(d)} | | |")
            continue
        share = f" ({pct(d['tok_s'], i['tok_s'])})" if "tok_s" in i else ""
        emu = " (emulated)" if d.get("matmul_emulated") else ""
        ratio = f"{d['tok_s'] / b:.2f}x" if b else "-"
        L.append(f"| {m}{emu} | {fmt(d['tok_s'], 0)}{share}{disturbed(d)} | {ratio} | {torch_ratio(loaded, m)} |")
    return L


def targets(T, peak, train, torch, gen, layer):
    pk = peak["sgemm_gflops"]
    out = []

    def line(ok, text):
        out.append(f"- {'met' if ok else '**not met**'}: {text}")

    s = train.get(("small", "rmsnorm", T))
    if s and ("small", "rmsnorm") in torch:
        for norm in NORMS:
            r = train["small", norm, T]["tok_s"] / torch["small", norm]["tok_s"]
            line(r >= 2.0, f"small {norm}: {r:.2f}x PyTorch's tokens/s at {T} threads (target 2x)")
        for norm in NORMS:
            d = train["small", norm, T]
            own = product_peak(peak, d)
            if not own:
                out.append(f"- skip: small {norm}: MFU: no measured peak of {d['matmul_mode']}'s products")
                continue
            mfu = d["achieved_gflops"] / own
            line(mfu >= 0.8, f"small {norm}: MFU {100 * mfu:.0f}% of the measured peak of its products "
                 f"({d['matmul_mode']}, {own:.1f} GFLOP/s; target 80%)")
    for name in CONFIGS:
        if (name, "dyt", T) in train:
            r = train[name, "dyt", T]["step_ms"] / train[name, "rmsnorm", T]["step_ms"]
            line(r <= 1.0, f"{name}: a DyT step takes {r:.3f}x the RMSNorm step (target <= 1)")
    for dim, d in layer.items():
        r = (d["rmsnorm_fwd_us"] + d["rmsnorm_bwd_us"]) / (d["dyt_fwd_us"] + d["dyt_bwd_us"])
        line(r >= 1.5, f"d={dim}: the DyT layer is {r:.2f}x faster than RMSNorm, fwd+bwd (target 1.5x)")
    for name in ("small", "medium"):
        if (name, "rmsnorm", 1) in train and T > 1:
            r = train[name, "rmsnorm", 1]["step_ms"] / train[name, "rmsnorm", T]["step_ms"]
            line(r >= 1.8, f"{name}: {T} threads are {r:.2f}x faster than 1 (target 1.8x)")
    for (name, norm, th), d in train.items():
        r = d["peak_rss_bytes"] / d["analytic_bytes"]
        line(r <= 1.2, f"{name} {norm} {th} threads: peak RSS {r:.2f}x the analytic need (target 1.2x)")
        line(d["allocs_in_steps"] == 0, f"{name} {norm} {th} threads: {d['allocs_in_steps'] / d['steps']:.0f} "
             "allocation calls per training step (target 0)")
    for (name, norm), d in gen.items():
        r = bound_ratio(d, pk)
        line(r <= 1.5, f"{name} {norm}: a decoded token costs {r:.2f}x its bound (target 1.5x)")
        r = prefill_ratio(d)
        line(r >= 10, f"{name} {norm}: prefill is {r:.1f}x faster per token than decoding (target 10x)")
    return out


def targets12(layer, kinds):
    """Every element-wise kind (its forward saves no per-row statistics) at least as fast
    as RMSNorm's layer at every width; a DyT training step no slower than RMSNorm's."""
    out = []
    for dim, d in layer.items():
        rms = d["rmsnorm_fwd_us"] + d["rmsnorm_bwd_us"]
        for k in [k[:-6] for k in d if k.endswith("_stats") and d[k] == 0 and k != "none_stats"]:
            r = rms / (d[k + "_fwd_us"] + d[k + "_bwd_us"])
            out.append(f"- {'met' if r >= 1.0 else '**not met**'}: d={dim}: the {k} layer runs at {r:.2f}x "
                       "RMSNorm's speed, fwd + bwd (target >= 1)")
    if "dyt" in kinds and "rmsnorm" in kinds:
        r = kinds["dyt"]["step_ms"] / kinds["rmsnorm"]["step_ms"]
        out.append(f"- {'met' if r <= 1.0 else '**not met**'}: small: a DyT training step takes {r:.3f}x the "
                   f"RMSNorm step, side by side (target <= 1){disturbed(kinds['dyt'])}{disturbed(kinds['rmsnorm'])}")
    return out


def bound(d, pk):
    """A decoded token's bound in ms (streaming the weights once at the bandwidth the gen run measured
    seconds before decoding, or its FLOPs at the sgemm peak, whichever is longer) and what it is."""
    gbw = d["mem_read_gbs"]
    stream = d["decode_weight_bytes"] / (gbw * 1e9) * 1e3
    compute = d["decode_flops_per_token"] / (pk * 1e9) * 1e3
    return (stream, f"weights / {gbw:.1f} GB/s") if stream >= compute else (compute, "FLOPs / peak")


def bound_ratio(d, pk):
    return d["decode_ms_per_token"] / bound(d, pk)[0]


def prefill_ratio(d):
    """How many times faster per token prefill is than decoding."""
    return d["prefill_tok_s"] / d["decode_tok_s"]


def targets14(pk, gen, contended):
    out = []

    def line(ok, text, *ds):
        marks = "".join(disturbed(d) for d in ds)
        out.append(f"- {'met' if ok else '**not met**'}: {text}{marks}")

    idle, busy = LOADS[0][0], LOADS[1][0]
    for what, goal in (("ours: generation (decode tok/s)", 0.40), ("ours: training (tok/s)", 0.45)):
        i, b = contended[what, "default", idle], contended[what, "default", busy]
        r = b["speed"] / i["speed"] if i["speed"] else 0.0
        line(r >= goal, f"{what}, default threads, {busy}: {100 * r:.0f}% of idle speed "
             f"(target {100 * goal:.0f}%)", i, b)
        for name, _ in LOADS:
            dflt, one = contended[what, "default", name], contended[what, "1", name]
            r = dflt["speed"] / one["speed"] if one["speed"] else float("inf")
            line(r >= 0.97, f"{what}, {name}: default threads {r:.2f}x the speed of --threads 1 "
                 "(target: never slower; 3% noise allowed)", dflt, one)
    for name in ("small", "medium", "large"):
        for norm in NORMS:
            if (name, norm) not in gen:
                continue
            d = gen[name, norm]
            r = bound_ratio(d, pk)
            line(r <= 1.25, f"{name} {norm}: a decoded token costs {r:.2f}x its bound (target 1.25x)", d)
            r = prefill_ratio(d)
            line(r >= 10, f"{name} {norm}: prefill is {r:.1f}x faster per token than decoding (target 10x)", d)
    return out


def bf16_bound_ms(d):
    """A bf16-weights token's bound (issue #27): its weights and its KV cache (both bf16, the
    benchmark counted their bytes) streamed once at the bandwidth the same run measured, ms."""
    return (d["decode_weight_bytes"] + d["decode_kv_bytes"]) / (d["mem_read_gbs"] * 1e9) * 1e3


def gen_bf16_section(gen, gen_bf16):
    """==== bf16 weights (issue #27 item 3) ==== the generation rows of run_gen_bf16."""
    L = ["\nDecoding from bf16 weights with a bf16 KV cache (issue #27; RMSNorm, default threads, the same "
         "protocol): its bound streams the bf16 weights and the bf16 KV cache once.\n"]
    if "skipped" in gen_bf16:
        L.append(f"Skipped: {gen_bf16['skipped']}.")
        return L
    L.append("| config | decode tok/s | / fp32 weights (row above) | decode ms/token | bound ms/token | cost / bound |")
    L.append("|---|---|---|---|---|---|")
    for name, d in gen_bf16.items():
        f = gen.get((name, "rmsnorm"), {}).get("decode_tok_s")
        ratio = f"{d['decode_tok_s'] / f:.2f}x" if f else "-"
        ms = bf16_bound_ms(d)
        L.append(f"| {name} | {fmt(d['decode_tok_s'])} | {ratio} | {d['decode_ms_per_token']:.3f} | {ms:.3f} | "
                 f"{d['decode_ms_per_token'] / ms:.2f}x{disturbed(d)} |")
    return L


def targets27(T, peak, train, modes, gen, gen_bf16):
    out = []

    def line(ok, text, *ds):
        marks = "".join(disturbed(d) for d in ds)
        out.append(f"- {'met' if ok else '**not met**'}: {text}{marks}")

    def skip(text):
        out.append(f"- skip: {text}")

    rows = modes[LOADS[0][0]]
    base = rows.get(mode_name(*MODES[0]), {})
    for m, goal in ((mode_name("onednn", "fp32"), 1.5), (mode_name("onednn", "bf16"), 2.5)):
        d = rows.get(m, {})
        if "tok_s" in d and "tok_s" in base:
            r = d["tok_s"] / base["tok_s"]
            line(r >= goal, f"small: {m} trains at {r:.2f}x {mode_name(*MODES[0])}'s tokens/s "
                 f"({fmt(d['tok_s'], 0)} vs {fmt(base['tok_s'], 0)}; target {goal}x)", d, base)
        else:
            skip(f"small: {m} against {mode_name(*MODES[0])}: {why_missing(d if 'tok_s' not in d else base)}")
    gf = mode_rates(rows)
    if peak.get("clock_ghz"):
        for m in (mode_name(be, pr) for be, pr in MODES):
            if m in gf:
                prec = rows[m]["precision"]
                line(True, f"small: {m} runs at {fmt(gf[m])} GFLOP/s, {pct(gf[m], peak[f'peak_{prec}_gflops'])} of "
                     f"the {prec} physical peak ({peak[f'peak_{prec}_gflops']:.0f} GFLOP/s at {peak['clock_ghz']:.2f} "
                     f"GHz; {pct(gf[m], peak['peak_avx2_gflops'])} of AVX2's) (target: printed)")
    else:
        skip("the physical peak: the clock was not measured (no FMA kernel for this CPU)")
    # ours in fp32 is the trainer's default backend (what the training rows ran)
    default = train.get(("small", "rmsnorm", T), {}).get("matmul", MODES[0][0])
    for ours, prec, goal in ((mode_name(default, "fp32"), "fp32", 2.0), (mode_name("onednn", "bf16"), "bf16", 1.5)):
        d, t = rows.get(ours, {}), rows.get(TORCH_PRECISIONS[prec], {})
        if "tok_s" in d and "tok_s" in t:
            r = d["tok_s"] / t["tok_s"]
            line(r >= goal, f"small: ours ({ours}) at {r:.2f}x {TORCH_PRECISIONS[prec]}'s tokens/s "
                 f"({fmt(d['tok_s'], 0)} vs {fmt(t['tok_s'], 0)}; target {goal}x)", d, t)
        else:
            skip(f"small: ours ({ours}) against {TORCH_PRECISIONS[prec]}: {why_missing(d if 'tok_s' not in d else t)}")
    if "skipped" in gen_bf16:
        skip(f"decoding from bf16 weights (>= 1.6x fp32's tokens/s at medium and large, within 1.25x of its "
             f"bound): {gen_bf16['skipped']}")
    for name, d in ({} if "skipped" in gen_bf16 else gen_bf16).items():
        f = gen.get((name, "rmsnorm"))
        r = d["decode_tok_s"] / f["decode_tok_s"] if f else 0.0
        b = d["decode_ms_per_token"] / bf16_bound_ms(d)
        if name == "small":  # reported, not targeted
            out.append(f"- reported: small: bf16 weights decode at {r:.2f}x fp32's tokens/s, {b:.2f}x their bound")
            continue
        line(r >= 1.6, f"{name}: bf16 weights decode at {r:.2f}x fp32 weights' tokens/s (target 1.6x)", d, f or {})
        line(b <= 1.25, f"{name}: a bf16-weights token costs {b:.2f}x its bound (target 1.25x)", d)
    one, many = train.get(("medium", "rmsnorm", 1)), train.get(("medium", "rmsnorm", T))
    if one and many and T > 1:
        r = one["step_ms"] / many["step_ms"]
        line(r >= 1.8, f"medium ({many['matmul_mode']}): {T} threads train {r:.2f}x faster than 1 (target 1.8x)",
             one, many)
    else:
        skip(f"medium: {T} threads against 1: no medium RMSNorm rows at 1 and {T} threads (--threads 1?)")
    return out


if __name__ == "__main__":
    main()
