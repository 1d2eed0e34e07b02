#include "dist.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef USE_MPI
#include <mpi.h>

// MPI counts are int: larger buffers go in pieces of this many elements.
#define CHUNK ((size_t)1 << 30)

void dist_init(Dist *d, int *argc, char ***argv) {
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &d->local_size);
    MPI_Comm_free(&local);
}

void dist_finalize(const Dist *d) {
    (void)d;
    MPI_Finalize();
}

_Noreturn void dist_abort(const Dist *d, int code) {
    (void)d;
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code); // not reached
}

void dist_sum_floats(const Dist *d, float *x, size_t n) {
    if (d->size == 1) return;
    for (size_t i = 0; i < n; i += CHUNK)
        MPI_Allreduce(MPI_IN_PLACE, x + i, (int)(n - i < CHUNK ? n - i : CHUNK), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

void dist_sum_doubles(const Dist *d, double *x, size_t n) {
    if (d->size == 1) return;
    for (size_t i = 0; i < n; i += CHUNK)
        MPI_Allreduce(MPI_IN_PLACE, x + i, (int)(n - i < CHUNK ? n - i : CHUNK), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

int dist_max_int(const Dist *d, int v) {
    (void)d;
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return v;
}

int dist_agree(const Dist *d, int rc, int *first) {
    int v[2] = {rc, rc ? d->size - d->rank : 0}; // the max of size - rank is the lowest failed rank
    MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    *first = v[1] ? d->size - v[1] : -1;
    return v[0];
}

void dist_gather_u64(const Dist *d, uint64_t v, uint64_t *all) {
    MPI_Gather(&v, 1, MPI_UINT64_T, d->rank == 0 ? all : NULL, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
}

void dist_isum_floats(const Dist *d, DistReqs *q, float *x, size_t n) {
    if (d->size == 1 || n == 0) return;
    if (!q->req && !(q->req = malloc(DIST_MAX_REQS * sizeof(MPI_Request)))) {
        // a blocking sum here would not match the other ranks' non-blocking
        // ones (a hang): end the job instead
        fprintf(stderr, "train_llama: rank %d: out of memory for MPI requests\n", d->rank);
        dist_abort(d, 1);
    }
    MPI_Request *r = q->req;
    for (size_t i = 0; i < n; i += CHUNK) {
        if (q->n == DIST_MAX_REQS) dist_wait_all(q);
        MPI_Iallreduce(MPI_IN_PLACE, x + i, (int)(n - i < CHUNK ? n - i : CHUNK), MPI_FLOAT, MPI_SUM,
                       MPI_COMM_WORLD, &r[q->n++]);
    }
}

// MPI moves non-blocking operations on only inside MPI calls (no progress
// thread by default): testing them lets the transfers advance.
void dist_progress(DistReqs *q) {
    int done;
    if (q->n) MPI_Testall(q->n, q->req, &done, MPI_STATUSES_IGNORE);
}

void dist_wait_all(DistReqs *q) {
    if (q->n) MPI_Waitall(q->n, q->req, MPI_STATUSES_IGNORE);
    q->n = 0;
}

void dist_reqs_free(DistReqs *q) {
    free(q->req);
    q->req = NULL;
    q->n = 0;
}

#else // one process

void dist_init(Dist *d, int *argc, char ***argv) {
    (void)argc, (void)argv;
    *d = (Dist){.rank = 0, .size = 1, .local_size = 1};
}

void dist_finalize(const Dist *d) { (void)d; }

_Noreturn void dist_abort(const Dist *d, int code) {
    (void)d;
    exit(code);
}

void dist_sum_floats(const Dist *d, float *x, size_t n) { (void)d, (void)x, (void)n; }
void dist_sum_doubles(const Dist *d, double *x, size_t n) { (void)d, (void)x, (void)n; }
int dist_max_int(const Dist *d, int v) {
    (void)d;
    return v;
}

int dist_agree(const Dist *d, int rc, int *first) {
    (void)d;
    *first = rc ? 0 : -1;
    return rc;
}

void dist_gather_u64(const Dist *d, uint64_t v, uint64_t *all) {
    (void)d;
    all[0] = v;
}

void dist_isum_floats(const Dist *d, DistReqs *q, float *x, size_t n) { (void)d, (void)q, (void)x, (void)n; }
void dist_progress(DistReqs *q) { (void)q; }
void dist_wait_all(DistReqs *q) { q->n = 0; }
void dist_reqs_free(DistReqs *q) { q->n = 0; }

#endif
