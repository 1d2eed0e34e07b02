// Small shared helpers: error reporting without global state, checked sizes,
// allocation, timing. Every fallible function in src/ takes an Error* and
// returns 0 on success, -1 on failure with a one-line message in err->msg.
#ifndef COMMON_H
#define COMMON_H

#include <stddef.h>
#include <stdint.h>

// Divergence and input checks rely on isfinite(); -ffast-math lets the
// compiler assume no NaN or inf and delete them.
#ifdef __FAST_MATH__
#error "build without -ffast-math: the non-finite checks would be compiled away"
#endif

typedef struct {
    char msg[512];
} Error;

// printf-style; always returns -1 so callers can `return err_set(...)`.
int err_set(Error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// a * b and a + b, failing (returning -1) instead of wrapping.
int size_mul(size_t a, size_t b, size_t *out);
int size_add(size_t a, size_t b, size_t *out);

// Zeroed allocation of n floats; NULL on failure or overflow (callers report it).
float *alloc_floats(size_t n);

// Sets our OpenMP threads and OpenBLAS's to n (0 = leave the default: all cores).
// OpenBLAS's OpenMP build shares the pool; sgemm runs outside our parallel regions.
void threads_setup(int64_t n);

// Monotonic wall-clock time in seconds.
double now_seconds(void);

// Peak resident memory of this process so far (VmHWM of /proc/self/status),
// in KiB; -1 where that file is absent (not Linux). Linux updates it in
// batches of 64 pages per thread, so it is only good to about 256 KB.
int64_t peak_rss_kb(void);
// The 1-minute load average of the machine (first field of /proc/loadavg):
// runnable threads, ours included; NAN where that file is absent. With the
// core count it tells whether a speed figure was measured on a busy machine.
double load_average(void);
// Bytes of heap in use right now (glibc's mallinfo2: small blocks plus
// mmapped ones); -1 without glibc 2.33+. Exact when glibc's per-thread cache
// is off (GLIBC_TUNABLES=glibc.malloc.tcache_count=0), which otherwise
// counts a few freed blocks as in use. Two equal readings around a stretch
// of work mean it kept nothing it allocated.
int64_t heap_in_use_bytes(void);

// Strict number parsing: the whole string must be the number, in range,
// finite. Return 0 on success, -1 otherwise.
int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);
int parse_f64(const char *s, double lo, double hi, double *out);

// sum(a[i] * b[i]) in double, over fixed chunks summed in order: the same bits
// for any thread count (weight-gradient norms, the DyT embedding scale).
double dot_fixed_order(const float *a, const float *b, size_t n);

// The k-th smallest (k < n) of x[0..n), no NaN (quickselect; reorders x).
// Unlike qsort, which mallocs a buffer as large as its input, it allocates
// nothing, so a median at the end of a long run costs no memory.
double select_kth(double *x, size_t n, size_t k);

// FNV-1a 64-bit hash, for data fingerprints in checkpoints.
uint64_t fnv1a64(const void *data, size_t n, uint64_t h);
#define FNV1A64_INIT 0xcbf29ce484222325ULL

#endif
