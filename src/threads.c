#include "threads.h"

#include <dirent.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#define GAP_MAX 1024
// A probe unit this many times the running count's mean ends the probe. Idle,
// one thread decodes 1.3-1.7x slower than two: at 2 (as first chosen) each
// probe ran all its TUNER_KEEP units, 3 % of an idle decode (docs/perf.md).
#define TUNER_ABORT 1.5

// Threads runnable right now on the whole machine (/proc/stat's
// procs_running); 0 if unknown.
static int procs_running(void) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "procs_running %d", &n) == 1) break;
    fclose(f);
    return n;
}

// This process's runnable threads: its OpenMP workers may still be spinning
// from the last parallel region, and they are not someone else's load.
static int own_running(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return 1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        const char *rp = strrchr(buf, ')'); // "tid (comm) S ...": comm may hold anything
        n += rp && rp[1] == ' ' && rp[2] == 'R';
    }
    closedir(d);
    return n > 0 ? n : 1;
}

int threads_crowded(int max) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int others = procs_running() - own_running();
    return max > 1 && cores > 0 && others > 0 && others + max > cores;
}

void tuner_init(ThreadTuner *t, int max, CrowdedFn crowded) {
    max = max > 1 ? max : 1;
    int first = max > 1 && crowded && crowded(max) ? 1 : max;
    // since_probe = gap: the first probe comes as soon as the first count has TUNER_KEEP units
    *t = (ThreadTuner){.max = max, .best = first, .cur = first, .gap = GAP_MIN, .since_probe = GAP_MIN,
                       .crowded = crowded};
}

// arm index of a count: 0 one thread, 1 max threads
static int arm(const ThreadTuner *t, int threads) { return threads == t->max && t->max > 1; }

// the mean of an arm's kept units: what decides speed is the total time, and
// on a busy machine that is a few slow units among many fast ones
static double arm_time(const ThreadTuner *t, int a) {
    double sum = 0.0;
    for (int i = 0; i < t->n[a]; i++) sum += t->s[a][i];
    return sum / t->n[a];
}

static void keep(ThreadTuner *t, int a, double seconds) {
    if (t->n[a] == TUNER_KEEP) { // drop the oldest
        t->s[a][0] = t->s[a][1], t->s[a][1] = t->s[a][2];
        t->n[a]--;
    }
    t->s[a][t->n[a]++] = seconds;
}

int tuner_next(ThreadTuner *t) {
    if (t->max == 1) return 1;
    int other = t->best == 1 ? t->max : 1;
    if (!t->probe_left && t->n[arm(t, t->best)] == TUNER_KEEP && t->since_probe >= t->gap) {
        if (other == t->max && t->crowded && t->crowded(t->max)) {
            t->since_probe = 0; // not now: look again a gap later
        } else {
            t->probe_left = TUNER_KEEP; // a probe: the other count's units afresh
            t->n[arm(t, other)] = 0;
        }
    }
    t->cur = t->probe_left ? other : t->best;
    omp_set_num_threads(t->cur);
    return t->cur;
}

void tuner_done(ThreadTuner *t, double seconds) {
    if (t->max == 1) return;
    int a = arm(t, t->cur), b = arm(t, t->best);
    keep(t, a, seconds);
    if (!t->probe_left) {
        t->since_probe++;
        return;
    }
    int abort = seconds > TUNER_ABORT * arm_time(t, b); // clearly slower: stop now
    if (--t->probe_left && !abort) return;
    t->probe_left = 0;
    t->since_probe = 0;
    if (!abort && arm_time(t, a) < arm_time(t, b)) {
        t->best = t->cur;
        t->gap = GAP_MIN;
    } else {
        t->gap = t->gap * 2 < GAP_MAX ? t->gap * 2 : GAP_MAX;
    }
}

void tuner_end(ThreadTuner *t) {
    if (t->max > 1) omp_set_num_threads(t->max);
}
