// Small shared helpers: error reporting without global state, checked sizes,
// allocation, timing. Every fallible function in src/ takes an Error* and
// returns 0 on success, -1 on failure with a one-line message in err->msg.
#ifndef COMMON_H
#define COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

// Elementwise loops smaller than this (elements) run on the calling thread
// alone (an OpenMP `if` clause): a parallel region costs a wake-up and a
// barrier (microseconds idle, far more when another process holds a core),
// more than a decoded token's few thousand elements take to compute.
#define PAR_MIN 32768

// Every file the programs read is opened here: without blocking (O_NONBLOCK,
// so a FIFO or a device cannot hang the open), then checked to be a regular
// file before a byte is read. Returns the stream and its size; errors name
// the path ("PATH: not a regular file (a FIFO)").
FILE *open_regular(const char *path, size_t *size, Error *err);
// "a FIFO", "a directory", "a symlink", ... for a stat mode (messages).
const char *file_kind(unsigned mode);
// Reads exactly n bytes; a short read is "PATH: truncated while reading WHAT".
int read_exact(FILE *f, void *p, size_t n, const char *path, const char *what, Error *err);

// Opens an existing file of ours for appending (log.csv): not through a
// symlink (O_NOFOLLOW), not blocking, and only if it is a regular file.
FILE *open_append(const char *path, Error *err);

// Checks that `bytes` more memory can be had before allocating them: against
// the address-space limit (ulimit -v) and physical memory. A clear message
// ("WHAT needs N MB, but ...") instead of an allocation that fails deep inside
// a library, or a machine driven into swap.
int memory_check(size_t bytes, const char *what, Error *err);
// Allocations from this size up are checked (alloc_floats, whole files read).
#define LARGE_BYTES ((size_t)64 << 20)

// Flushes a stream we printed results to (stdout) and reports a failed write
// (a full disk, > /dev/full) as an error naming `name`.
int stream_check(FILE *f, const char *name, Error *err);
// The first n bytes of s (n < 0: all) for a one-line message: control bytes
// (a newline in a typed value) as \n, \t or \xHH, the rest as they are.
// Returns buf (cap bytes; cut short with "..." when it does not fit).
const char *printable(const char *s, long n, char *buf, size_t cap);
// Off a terminal, standard output in one 64 KiB buffer: a --help or a report
// then leaves in one write at the end, whose error (a full disk) stream_check
// names; with stdio's 4 KiB the write that fails comes earlier and its errno
// is gone by the check. Call first in main.
void stdout_buffer(void);

// Sets our OpenMP threads and OpenBLAS's to n (0 = leave the default: all cores).
// OpenBLAS's OpenMP build shares the pool: the matmuls (layers.c) call sgemm
// inside our parallel regions, a block of rows per thread, where OpenBLAS runs
// single-threaded, so the two never oversubscribe.
// n is clamped to threads_usable(n).
void threads_setup(int64_t n);
// n, or the machine's cores if n is more: more threads cannot run faster, and
// each costs OpenBLAS a buffer, which under a memory limit (ulimit -v) it
// retries forever instead of failing.
int64_t threads_usable(int64_t n);
// threads_setup(n) at a program's start: a note on stderr ("PROG: --threads N:
// using M ...") when n was clamped; an error if the address-space limit
// leaves no room for OpenBLAS's buffer at all.
int threads_start(int64_t n, const char *prog, Error *err);

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
