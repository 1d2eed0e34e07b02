// Data-parallel training across processes: the few collective operations the
// trainer needs, behind one interface. Built with -DUSE_MPI (`make MPI=1`)
// they are MPI's; otherwise they are single-process stubs (rank 0 of 1) and
// the program has no MPI dependency. The model code never sees this module.
//
// Every function is collective (all ranks call it, in the same order) except
// dist_abort. MPI's default error handler ends the whole job on a
// communication error, so these return nothing to check.
#ifndef DIST_H
#define DIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, size;   // this process, and how many there are (1 without MPI)
    int local_size;   // processes on this machine (for the default thread count)
} Dist;

// Starts MPI (with MPI_THREAD_FUNNELED: only the main thread calls MPI).
void dist_init(Dist *d, int *argc, char ***argv);
void dist_finalize(const Dist *d);
// Ends every process of the job at once with this exit code (MPI_Abort);
// for a failure only this rank knows of, where the others may be waiting in
// a collective. Without MPI: exit(code).
_Noreturn void dist_abort(const Dist *d, int code);

// In-place sums over ranks (every rank gets the result).
void dist_sum_floats(const Dist *d, float *x, size_t n);
void dist_sum_doubles(const Dist *d, double *x, size_t n);
// The largest of every rank's v (flags: any rank set it).
int dist_max_int(const Dist *d, int v);
// Agreement on failure: returns the largest rc over ranks (0 if none failed)
// and sets *first to the lowest rank whose rc is not 0 (-1 if none), so that
// exactly one rank reports and every rank exits with the same code.
int dist_agree(const Dist *d, int rc, int *first);
// Rank 0 receives every rank's v in all[0 .. size-1] (others: all untouched).
void dist_gather_u64(const Dist *d, uint64_t v, uint64_t *all);

// Non-blocking float sums, to overlap the reduction of one layer's gradients
// with the backward pass of the layers below it. dist_isum_floats starts one
// (in place; x must not be touched until dist_wait_all); dist_progress lets
// MPI advance them (call it between pieces of work); dist_wait_all finishes
// every one started. Without MPI they do nothing.
#define DIST_MAX_REQS 16384
typedef struct {
    int n;
    void *req; // MPI_Request[DIST_MAX_REQS], allocated on first use
} DistReqs;
void dist_isum_floats(const Dist *d, DistReqs *q, float *x, size_t n);
void dist_progress(DistReqs *q);
void dist_wait_all(DistReqs *q);
void dist_reqs_free(DistReqs *q);

#endif
