// LD_PRELOAD library that counts allocation calls (malloc, calloc, realloc,
// and the aligned ones), so that bench can show that a training step
// allocates nothing: it reads alloc_count_calls() before and after the steps.
// Built as build/alloc_count.so; without it bench reports -1.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

static long calls;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void (*real_free)(void *);

// dlsym itself may calloc before real_calloc is known: serve it from here
static char boot[4096] __attribute__((aligned(64)));
static size_t boot_used;
static int resolving;

static void resolve(void) {
    if (real_free || resolving) return;
    resolving = 1;
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    resolving = 0;
}

long alloc_count_calls(void) { return __atomic_load_n(&calls, __ATOMIC_RELAXED); }

static void count(void) { __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED); }

void *malloc(size_t n) {
    resolve();
    count();
    return real_malloc(n);
}

void *calloc(size_t n, size_t size) {
    if (!real_calloc) {
        resolve();
        if (!real_calloc) { // inside dlsym: zeroed static memory, never freed
            size_t bytes = (n * size + 63) & ~(size_t)63;
            if (boot_used + bytes > sizeof boot) return NULL;
            void *p = boot + boot_used;
            boot_used += bytes;
            return p;
        }
    }
    count();
    return real_calloc(n, size);
}

void *realloc(void *p, size_t n) {
    resolve();
    count();
    return real_realloc(p, n);
}

int posix_memalign(void **p, size_t align, size_t n) {
    resolve();
    count();
    return real_posix_memalign(p, align, n);
}

void *aligned_alloc(size_t align, size_t n) {
    resolve();
    count();
    return real_aligned_alloc(align, n);
}

void free(void *p) {
    if ((char *)p >= boot && (char *)p < boot + sizeof boot) return;
    resolve();
    real_free(p);
}
