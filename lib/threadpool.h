/* threadpool.h: a small fork-join pool for compute kernels. One caller thread drives it; each run() hands the
 * same function to every thread (the caller is thread 0) and returns when all are done. Workers spin briefly
 * between runs (a forward pass issues dozens of short runs back to back) and then sleep on a futex. */
#pragma once

struct threadpool;

typedef void (*threadpool_fn)(void *arg, unsigned tid, unsigned nthreads);

/* nthreads in total, including the caller; 1 means no extra threads. */
int threadpool_new(unsigned nthreads, struct threadpool **ret);
void threadpool_free(struct threadpool *p);
unsigned threadpool_size(const struct threadpool *p);
void threadpool_run(struct threadpool *p, threadpool_fn fn, void *arg);

/* Split [0, n) evenly: the range thread tid of nthreads owns. */
static inline void threadpool_split(unsigned long n, unsigned tid, unsigned nthreads, unsigned long *ret_begin,
				    unsigned long *ret_end) {
	*ret_begin = n * tid / nthreads;
	*ret_end = n * (tid + 1) / nthreads;
}
