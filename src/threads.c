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
#define GAP_MAX 256

void tuner_init(ThreadTuner *t, int max) {
    *t = (ThreadTuner){.max = max > 1 ? max : 1, .cur = max > 1 ? max : 1, .gap = GAP_MIN};
}

// arm index of a count: 0 one thread, 1 max threads
static int arm(const ThreadTuner *t, int threads) { return threads == t->max && t->max > 1; }

// the least of an arm's kept times; 0 = not timed yet
static double arm_time(const ThreadTuner *t, int a) {
    int k = t->n[a] < TUNER_KEEP ? t->n[a] : TUNER_KEEP;
    double m = 0.0;
    for (int i = 0; i < k; i++) m = i == 0 || t->s[a][i] < m ? t->s[a][i] : m;
    return m;
}

// the count to run: the faster; all threads until both are timed
static int best(const ThreadTuner *t) {
    if (!t->n[0] || !t->n[1]) return t->max;
    return arm_time(t, 0) < arm_time(t, 1) ? 1 : t->max;
}

int tuner_next(ThreadTuner *t) {
    if (t->max == 1) return 1;
    int b = best(t), other = b == 1 ? t->max : 1;
    // the first unit times all threads, the second one thread; after that, every
    // `gap` units on the faster count, one unit on the other
    int probe = t->n[arm(t, b)] && (!t->n[arm(t, other)] || t->since_probe >= t->gap);
    t->cur = probe ? other : b;
    omp_set_num_threads(t->cur);
    return t->cur;
}

void tuner_done(ThreadTuner *t, double seconds) {
    if (t->max == 1) return;
    int a = arm(t, t->cur), was_best = best(t) == t->cur;
    t->s[a][t->n[a]++ % TUNER_KEEP] = seconds;
    if (was_best) {
        t->since_probe++;
    } else { // a probe: a loser is timed again later and later, a winner takes over
        int lost = best(t) != t->cur;
        t->gap = lost ? (t->gap * 2 < GAP_MAX ? t->gap * 2 : GAP_MAX) : GAP_MIN;
        t->since_probe = 0;
    }
}

void tuner_end(ThreadTuner *t) {
    if (t->max > 1) omp_set_num_threads(t->max);
}
