#include "common.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define HAVE_MALLINFO2 1
#endif

int err_set(Error *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int size_mul(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out) ? -1 : 0; }
int size_add(size_t a, size_t b, size_t *out) { return __builtin_add_overflow(a, b, out) ? -1 : 0; }


// ----------------------------------------------------------------------------
// files

const char *file_kind(unsigned m) {
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : S_ISLNK(m) ? "a symlink" : "not a file";
}

// fd (opened O_NONBLOCK) as a blocking stream if it is a regular file; closes it otherwise.
static FILE *regular_stream(int fd, const char *path, const char *mode, size_t *size, Error *err) {
    struct stat st;
    if (fstat(fd, &st)) {
        err_set(err, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        err_set(err, "%s: not a regular file (%s)", path, file_kind(st.st_mode));
    } else if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)PTRDIFF_MAX) {
        err_set(err, "%s: size %lld out of range", path, (long long)st.st_size);
    } else {
        int fl = fcntl(fd, F_GETFL);
        FILE *f = fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) ? NULL : fdopen(fd, mode);
        if (f) {
            if (size) *size = (size_t)st.st_size;
            return f;
        }
        err_set(err, "%s: cannot open: %s", path, strerror(errno));
    }
    close(fd);
    return NULL;
}

FILE *open_regular(const char *path, size_t *size, Error *err) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    return regular_stream(fd, path, "rb", size, err);
}

int read_exact(FILE *f, void *p, size_t n, const char *path, const char *what, Error *err) {
    if (fread(p, 1, n, f) != n) return err_set(err, "%s: truncated while reading %s", path, what);
    return 0;
}

FILE *open_append(const char *path, Error *err) {
    int fd = open(path, O_WRONLY | O_APPEND | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        err_set(err, "%s: cannot append: %s", path, strerror(errno));
        return NULL;
    }
    return regular_stream(fd, path, "ab", NULL, err);
}

void stdout_buffer(void) {
    static char buf[1 << 16]; // glibc ignores the size unless given the buffer
    if (!isatty(STDOUT_FILENO)) setvbuf(stdout, buf, _IOFBF, sizeof buf);
}

int stream_check(FILE *f, const char *name, Error *err) {
    errno = 0;
    if (fflush(f) || ferror(f))
        return err_set(err, "%s: write failed: %s", name, errno ? strerror(errno) : "an earlier write failed");
    return 0;
}

// ----------------------------------------------------------------------------
// memory and threads

// OpenBLAS (0.3.x, x86_64) reserves a buffer of this much address space per
// thread that runs an sgemm; when it cannot, it retries forever.
#define BLAS_BUFFER_BYTES (128.0 * 1048576.0)

// A "KEY: N kB" line of a /proc file in bytes; -1 if absent.
static double proc_bytes(const char *path, const char *key) {
    FILE *f = fopen(path, "r"); // /proc files only: never a user's path
    if (!f) return -1;
    char line[256];
    size_t klen = strlen(key);
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == ':' && sscanf(line + klen + 1, "%lld", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : 1024.0 * (double)kb;
}

// Address space left under ulimit -v (infinite without a limit).
static double address_space_left(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) || rl.rlim_cur == RLIM_INFINITY) return INFINITY;
    double used = proc_bytes("/proc/self/status", "VmSize");
    return (double)rl.rlim_cur - (used > 0 ? used : 0);
}

int memory_check(size_t bytes, const char *what, Error *err) {
    double need = (double)bytes, MB = 1048576.0;
    double blas = BLAS_BUFFER_BYTES * omp_get_max_threads(), room = address_space_left() - blas;
    if (need > room && !bytes)
        return err_set(err, "the address-space limit (ulimit -v) leaves %.0f MB, less than OpenBLAS's buffers "
                       "(%.0f MB for %d threads): raise the limit", (room + blas) / MB, blas / MB,
                       omp_get_max_threads());
    if (need > room)
        return err_set(err, "%s needs %.0f MB, but the address-space limit (ulimit -v) leaves %.0f MB after "
                       "OpenBLAS's buffers (%.0f MB for %d threads): raise the limit or use fewer --threads",
                       what, need / MB, room > 0 ? room / MB : 0.0, blas / MB, omp_get_max_threads());
    double avail = proc_bytes("/proc/meminfo", "MemAvailable");
    if (avail >= 0 && need > avail)
        return err_set(err, "%s needs %.0f MB, more than the %.0f MB of memory available", what, need / MB,
                       avail / MB);
    return 0;
}

// calloc rather than aligned_alloc + memset: fresh pages come zeroed from the
// kernel, so nothing is touched (or made resident) before it is used. Large
// blocks are checked first: with overcommit, calloc would grant more than
// the machine has, and the first touch would swap or be killed.
float *alloc_floats(size_t n) {
    size_t bytes;
    if (size_mul(n ? n : 1, sizeof(float), &bytes)) return NULL;
    if (bytes >= LARGE_BYTES && memory_check(bytes, "", NULL)) return NULL;
    return calloc(n ? n : 1, sizeof(float));
}

int64_t threads_usable(int64_t n) {
    int64_t cores = omp_get_num_procs();
    if (n <= 0 || n > cores) n = n <= 0 && omp_get_max_threads() < cores ? omp_get_max_threads() : cores;
    double left = address_space_left() - 64.0 * 1048576.0; // what the program itself takes, roughly
    int64_t fit = isinf(left) ? n : (int64_t)(left / BLAS_BUFFER_BYTES);
    if (fit < n) n = fit;
    return n < 1 ? 1 : n;
}

int threads_start(int64_t n, const char *prog, Error *err) {
    int64_t usable = threads_usable(n);
    if (n > usable)
        fprintf(stderr, "%s: --threads %lld: using %lld (more than the cores, or than the address-space limit "
                        "leaves room for, cannot be served)\n", prog, (long long)n, (long long)usable);
    threads_setup(n);
    return memory_check(0, "OpenBLAS", err);
}

void threads_setup(int64_t n) {
    if (n <= 0 && threads_usable(0) == omp_get_max_threads()) return;
    n = threads_usable(n);
    omp_set_num_threads((int)n);
    openblas_set_num_threads((int)n);
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int parse_f64(const char *s, double lo, double hi, double *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

#define DOT_CHUNKS 256

double dot_fixed_order(const float *a, const float *b, size_t n) {
    double partial[DOT_CHUNKS];
    size_t chunk = (n + DOT_CHUNKS - 1) / DOT_CHUNKS;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < DOT_CHUNKS; k++) {
        size_t i0 = (size_t)k * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
        double s = 0.0;
        for (size_t i = i0; i < i1; i++) s += (double)a[i] * b[i];
        partial[k] = s;
    }
    double total = 0.0;
    for (int k = 0; k < DOT_CHUNKS; k++) total += partial[k];
    return total;
}

uint64_t fnv1a64(const void *data, size_t n, uint64_t h) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int64_t heap_in_use_bytes(void) {
#ifdef HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();
    return (int64_t)(mi.uordblks + mi.hblkhd);
#else
    return -1;
#endif
}

int64_t peak_rss_kb(void) {
    double b = proc_bytes("/proc/self/status", "VmHWM");
    return b < 0 ? -1 : (int64_t)(b / 1024.0);
}

double load_average(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    double load = NAN;
    if (!f) return load;
    if (fscanf(f, "%lf", &load) != 1) load = NAN;
    fclose(f);
    return load;
}

double select_kth(double *x, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = x[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (x[i] < pivot) i++;
            while (x[j] > pivot) j--;
            if (i <= j) {
                double t = x[i];
                x[i++] = x[j];
                x[j] = t;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return x[k];
    }
    return x[k];
}

const char *printable(const char *s, long n, char *buf, size_t cap) {
    size_t w = 0;
    for (long i = 0; (n < 0 || i < n) && s[i] && w + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') w += (size_t)snprintf(buf + w, cap - w, "\\n");
        else if (c == '\t') w += (size_t)snprintf(buf + w, cap - w, "\\t");
        else if (c < 0x20 || c == 0x7f) w += (size_t)snprintf(buf + w, cap - w, "\\x%02x", c);
        else buf[w++] = (char)c;
        if (w + 8 >= cap && s[i + 1] && (n < 0 || i + 1 < n)) {
            memcpy(buf + w, "...", 4);
            return buf;
        }
    }
    buf[w] = 0;
    return buf;
}
