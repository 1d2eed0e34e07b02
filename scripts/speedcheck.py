#!/usr/bin/python3
"""Was a speed figure measured on a quiet machine? One definition for every summary that
reports speed (analyze.py for demo, compare and sweep; bench.py may import it too).

A run's speed is *measured under load* (and no conclusion is drawn from it) when either:

- its step times are unsteady: the ratio p90 / p10 of the per-step milliseconds, leaving
  out the first SKIP_STEPS steps (thread start-up, page faults, cold caches), is above
  MAX_SPREAD (2). A quiet machine keeps it near 1; another process taking the cores now
  and then makes some steps several times slower than others. (max / min is reported too,
  but one hiccup is enough to double it, so it is not the test.)
- the machine was busy: the load average counts runnable threads, ours included, and is
  an exponential average over a minute, so the runnable threads during the run are
  n = (end - start d) / (1 - d), d = exp(-span / 60 s), and the load of *other* work is n
  less our threads. (The start figure alone also holds the previous minute: a run that
  follows another in a comparison would see that one's threads as load.) Runs under
  MIN_SPAN_S seconds, or of unknown length, take the cautious max(load at the start,
  load at the end - our threads). The run was disturbed when the other load plus our
  threads exceeds the cores by more than LOAD_SLACK (0.5). Two 1-thread runs side by side
  on 2 cores do not disturb each other by this test; anything else running beside a
  2-thread run on 2 cores does.

train_llama writes loadavg_start, loadavg_end, loadavg_span_s, cores and threads into
result.txt (runs written before loadavg_span_s take steps x median_ms as the span, a
little short: evaluations are left out); runs without them are judged by their step times
alone.

    python3 scripts/speedcheck.py RUN_DIR...   prints the verdict of each run folder

A folder or file it cannot read is one line on stderr naming it, and exit 1.
"""
import csv
import math
import os
import sys

SKIP_STEPS = 5
MAX_SPREAD = 2.0
LOAD_SLACK = 0.5
LOAD_TAU_S = 60.0   # the 1-minute load average's time constant
MIN_SPAN_S = 15.0   # shorter: a sample or two of the load average, too few to solve for


def percentile(xs, q):
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    xs = sorted(xs)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def step_spread(step_ms):
    """(p90/p10, max/min) of per-step milliseconds given in step order, the first
    SKIP_STEPS left out; (nan, nan) when fewer than 2 steps remain."""
    xs = [x for x in list(step_ms)[SKIP_STEPS:] if math.isfinite(x) and x > 0]
    if len(xs) < 2:
        return math.nan, math.nan
    return percentile(xs, 90) / percentile(xs, 10), max(xs) / min(xs)


def other_load(load_start, load_end, threads, span_s=math.nan):
    """The load of other work during a run of span_s seconds (see the module's text)."""
    if all(math.isfinite(x) for x in (load_start, load_end, span_s)) and span_s >= MIN_SPAN_S:
        d = math.exp(-span_s / LOAD_TAU_S)
        return max(0.0, (load_end - load_start * d) / (1.0 - d) - threads)
    parts = [x for x in (load_start, load_end - threads) if math.isfinite(x)]
    return max(parts) if parts else math.nan


def busy(load_start, load_end, cores, threads, span_s=math.nan):
    """True when other work plus our threads exceeded the cores (nan inputs: False)."""
    other = other_load(load_start, load_end, threads, span_s)
    if not (math.isfinite(other) and cores > 0 and threads > 0):
        return False
    return other + threads > cores + LOAD_SLACK


def reasons(step_ms, load_start=math.nan, load_end=math.nan, cores=0, threads=0, span_s=math.nan):
    """Why a speed figure was measured under load: a list of short texts, empty when the
    run looks undisturbed."""
    out = []
    p9010, maxmin = step_spread(step_ms)
    if math.isfinite(p9010) and p9010 > MAX_SPREAD:
        out.append(f"step times p90/p10 {p9010:.1f}x (max/min {maxmin:.1f}x)")
    if busy(load_start, load_end, cores, threads, span_s):
        other = other_load(load_start, load_end, threads, span_s)
        out.append(f"load average {load_start:.1f} at start, {load_end:.1f} at end "
                   f"on {cores} cores with {threads} threads (other work about {other:.1f} threads)")
    return out


def machine_now():
    """(1-minute load average, cores) of this machine now."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = math.nan
    return load, os.cpu_count() or 0


def _num(d, key):
    try:
        return float(d.get(key, "nan"))
    except ValueError:
        return math.nan


def result_reasons(step_ms, result):
    """reasons() with the load fields of a result.txt dict."""
    span = _num(result, "loadavg_span_s")
    if not math.isfinite(span):  # written before the field: the steps' time alone
        span = _num(result, "steps") * _num(result, "median_ms") / 1000.0
    return reasons(step_ms, _num(result, "loadavg_start"), _num(result, "loadavg_end"),
                   int(_num(result, "cores")) if math.isfinite(_num(result, "cores")) else 0,
                   int(_num(result, "threads")) if math.isfinite(_num(result, "threads")) else 0, span)


class RunFileError(Exception):
    """A run folder or file that cannot be read: the message names it."""


def _read_result(path):
    """result.txt as a dict ({} when absent)."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            return dict(line.strip().split("=", 1) for line in f if "=" in line)
    except UnicodeDecodeError as e:
        raise RunFileError(f"{path}: not UTF-8 text ({e.reason})") from None


def _read_step_ms(path):
    """log.csv's ms column for steps 1.. (step 0 is the evaluation before training)."""
    ms = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = csv.DictReader(f)
            if "ms" not in (rows.fieldnames or []):
                raise RunFileError(f"{path}: no ms column in its header: not a train_llama log.csv")
            for row in rows:
                if (row.get("step") or "0").strip() in ("", "0") or not (row.get("ms") or "").strip():
                    continue
                try:
                    ms.append(float(row["ms"]))
                except ValueError:
                    raise RunFileError(f"{path}: line {rows.line_num}: ms = {row['ms']!r} is not a number") from None
    except UnicodeDecodeError as e:
        raise RunFileError(f"{path}: not UTF-8 text ({e.reason})") from None
    except csv.Error as e:
        raise RunFileError(f"{path}: {e}") from None
    return ms


def _run_dir_reasons(path):
    """reasons() of a run folder (log.csv's ms column, result.txt's load fields)."""
    if not os.path.isdir(path):
        raise RunFileError(f"{path}: not a run folder (one with log.csv and result.txt)"
                           if os.path.exists(path) else f"{path}: no such folder")
    result = _read_result(os.path.join(path, "result.txt"))
    return result_reasons(_read_step_ms(os.path.join(path, "log.csv")), result)


def main(argv):
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if not argv:
        print("speedcheck.py: error: give one or more run folders; see --help", file=sys.stderr)
        return 2
    rc = 0
    for d in argv:
        try:
            why = _run_dir_reasons(d)
        except RunFileError as e:
            print(f"speedcheck.py: {e}", file=sys.stderr)
            rc = 1
            continue
        except OSError as e:  # unreadable, or a folder where a file should be
            print(f"speedcheck.py: {e.filename or d}: {e.strerror or e}", file=sys.stderr)
            rc = 1
            continue
        print(f"{d}: " + ("measured under load: " + "; ".join(why) if why else "undisturbed"))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
