/* threadpool.h: a small fork-join pool for compute kernels. One caller thread drives it; run() splits a job
 * into n tasks that the caller and the workers claim one by one, and returns when all are done. Claiming
 * (rather than a fixed share per thread) keeps a run fast when a worker is descheduled on a busy machine: the
 * others take its tasks. Workers spin briefly between runs (a forward pass issues dozens of short runs back to
 * back) and then sleep on a futex; the caller, waiting for the last tasks of a run, does the same. */
#pragma once

struct threadpool;

typedef void (*threadpool_fn)(void *arg, unsigned long task, unsigned tid);

/* nthreads in total, including the caller; 1 means no extra threads. */
int threadpool_new(unsigned nthreads, struct threadpool **ret);
void threadpool_free(struct threadpool *p);
unsigned threadpool_size(const struct threadpool *p);
/* Run fn(arg, task, tid) for task in [0, ntasks), ntasks < 2^32; tid < threadpool_size() identifies the
 * executing thread (for per-thread scratch). */
void threadpool_run(struct threadpool *p, threadpool_fn fn, void *arg, unsigned long ntasks);
