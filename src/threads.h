// Threads on a shared machine: how idle OpenMP threads wait, and a thread
// count for repeated work (decoding) that follows the cores actually free.
#ifndef THREADS_H
#define THREADS_H

// How long (in spins of libgomp's wait loop, a `pause` each, 20-80 ns) a
// thread spins at a barrier or between parallel regions before it sleeps.
// libgomp's own default is 300,000 (6-20 ms): on a machine where another
// process holds a core, a thread spins that long at every barrier while the
// thread it waits for is not running. Too short a spin costs when idle
// instead: a thread that slept must be woken (tens of microseconds on a VM)
// at the next region. Measured on small (docs/perf.md, issue #14): 1000 made
// an idle decode 1.6x slower, 10,000 is within noise of 300,000 idle and the
// fastest beside a busy process. threads_wait_policy sets it unless the user
// set OMP_WAIT_POLICY or GOMP_SPINCOUNT.
#define THREADS_SPINCOUNT "10000"

// First thing in main: libgomp has read its environment before main, so
// this re-executes the program (argv as given) with GOMP_SPINCOUNT set, once.
// Returns when the variables were set already, or if it cannot re-execute.
void threads_wait_policy(char **argv);

// Chooses, unit by unit (a unit = one decoded token), between all the threads
// asked for and one thread, by timing both: it runs the count that was faster
// when last compared, and every `gap` units times the other for TUNER_KEEP
// units (a probe), comparing the means of the two counts' last TUNER_KEEP
// units (means, not medians: on a busy machine a count's cost is a few slow
// units among fast ones). A probe unit over TUNER_ABORT times (threads.c) the
// running count's mean ends the probe at once, and probes of a count that
// keeps losing are spaced out (every 16, 32, ... 1024 units), so a count far
// slower costs a few percent at most. A probe of all the threads is skipped
// while `crowded` says other processes hold the cores it would need: beside
// a busy process one such probe unit costs several times a one-thread unit
// (threads wait at each barrier for a core that runs someone else). Only for
// work whose results do not depend on the thread count (a decode step:
// tested bit for bit).
#define TUNER_KEEP 3
typedef int (*CrowdedFn)(int max);
typedef struct {
    int max;                  // the thread count asked for (>= 1)
    int best;                 // the count that won the last comparison (at first, the guess): max or 1
    int cur;                  // the count of the unit in progress
    int probe_left;           // units left in the probe in progress (0: none)
    double s[2][TUNER_KEEP];  // the last units' seconds: [0] one thread, [1] max threads
    int n[2];                 // units kept on each (up to TUNER_KEEP; a probe starts afresh)
    int since_probe;          // units run on the best count since the last probe
    int gap;                  // units between probes
    CrowdedFn crowded;        // NULL: times alone decide
} ThreadTuner;

// Whether other runnable processes (/proc/stat's procs_running, less this
// process's own running threads) already hold cores that max threads would
// need: threads would then wait at every barrier for a core that runs
// someone else. 0 when unknown. About 20 us (it reads /proc). It counts the
// whole machine: inside a container or cpuset on a busy host, or beside a
// niced batch job, it says "crowded" where all threads might still pay, and
// the tuner then stays on one thread; `--threads N` fixes the count.
int threads_crowded(int max);
// max <= 1: off (tuner_next returns 1 and leaves the thread count alone).
// Starts on 1 thread if crowded(max), else on max; crowded may be NULL.
void tuner_init(ThreadTuner *t, int max, CrowdedFn crowded);
// The thread count for the next unit; sets it (omp_set_num_threads).
int tuner_next(ThreadTuner *t);
// The time the unit took.
void tuner_done(ThreadTuner *t, double seconds);
// Restores the count asked for (off: does nothing).
void tuner_end(ThreadTuner *t);

#endif
