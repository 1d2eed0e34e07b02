#include "threads.h"

#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// the wait policy
//
// libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, in its own ELF
// constructor, before main, and no API call changes them later. Earlier hooks
// do not work: the executable's .preinit_array runs before libgomp's
// constructor but also before libc's, which then resets `environ` to the
// process's original one (glibc 2.36: tried). So the program, started
// without either variable, sets GOMP_SPINCOUNT and executes itself again,
// once; the second start sees the variable and goes on.
void threads_wait_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", THREADS_SPINCOUNT, 1)) return;
    execv("/proc/self/exe", argv);
    // no /proc (not Linux) or exec refused: run on with libgomp's default
}

// ----------------------------------------------------------------------------
// the decode thread count

#define GAP_MIN 16
#define GAP_MAX 512

void tuner_init(ThreadTuner *t, int max) {
    *t = (ThreadTuner){.max = max > 1 ? max : 1, .cur = max > 1 ? max : 1, .gap = GAP_MIN};
}

// arm index of a count: 0 one thread, 1 max threads
static int arm(const ThreadTuner *t, int threads) { return threads == t->max && t->max > 1; }

static int best(const ThreadTuner *t) {
    if (t->mean[0] == 0.0 || t->mean[1] == 0.0) return t->mean[0] == 0.0 ? 1 : t->max; // untimed: all threads
    return t->mean[0] < t->mean[1] ? 1 : t->max;
}

int tuner_next(ThreadTuner *t) {
    if (t->max == 1) return 1;
    int b = best(t), other = b == 1 ? t->max : 1;
    // the first units time all threads, then one unit times one thread; after
    // that, every `gap` units on the best count, one unit on the other
    if (t->mean[arm(t, b)] != 0.0 && (t->mean[arm(t, other)] == 0.0 || t->since_probe >= t->gap))
        t->cur = other;
    else
        t->cur = b;
    omp_set_num_threads(t->cur);
    return t->cur;
}

void tuner_done(ThreadTuner *t, double seconds) {
    if (t->max == 1) return;
    int a = arm(t, t->cur), was_best = best(t) == t->cur;
    double *m = &t->mean[a];
    if (was_best) {
        // the count in use: a running mean over the last few units
        *m = *m == 0.0 ? seconds : 0.75 * *m + 0.25 * seconds;
        t->since_probe++;
    } else {
        // a probe: its time stands for that count until the next probe
        int lost = seconds >= t->mean[!a];
        *m = seconds;
        t->gap = lost ? (t->gap * 2 < GAP_MAX ? t->gap * 2 : GAP_MAX) : GAP_MIN;
        t->since_probe = 0;
    }
}

void tuner_end(ThreadTuner *t) {
    if (t->max > 1) omp_set_num_threads(t->max);
}
