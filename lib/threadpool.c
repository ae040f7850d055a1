/* threadpool.c: see threadpool.h.
 *
 * One 64-bit word `state` holds (generation << 32 | next task). A thread claims a task with a compare-and-swap
 * that only succeeds within the generation it read, so a late worker can never run a task of a job that has
 * moved on. run() closes the last generation (next task UINT32_MAX) before it rewrites fn/arg/ntasks, so no
 * claim on it can succeed once a worker may see the new ones; the next generation is published after them.
 *
 * When every task is claimed but some still run elsewhere, the caller spins briefly and then sleeps on the
 * `done` futex until the last one finishes. Sleeping (rather than spinning or sched_yield()) matters on a busy
 * machine: a worker preempted in mid-task waits in another CPU's run queue, and only an idle CPU makes the
 * scheduler pull it over; a caller yielding in a loop keeps its CPU busy, so the whole run stalls for the
 * other task's time slice. */
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "macro.h"
#include "threadpool.h"

/* Pauses (about 30 ns each) before a waiting thread sleeps: a worker between runs about 1 ms (gaps within a
 * forward pass are far shorter), the caller waiting for others' last tasks about 300 us (longer than one
 * task of a short sequence's feed-forward product, so sleeping is for preemption, not the normal case). */
#define WORKER_SPINS 40000
#define WAIT_SPINS 10000

struct threadpool {
	unsigned n;
	pthread_t *threads;
	/* Atomic because a late worker may read them while run() publishes the next job; the claim CAS decides
	 * whether what it read is valid. */
	_Atomic(threadpool_fn) fn;
	_Atomic(void *) arg;
	_Atomic unsigned long ntasks;
	_Atomic uint64_t state;
	_Atomic uint32_t gen;      /* futex word: the current generation */
	_Atomic uint32_t sleepers; /* workers blocked in futex_wait on gen */
	_Atomic uint32_t done;     /* futex word: tasks finished in the current generation */
	_Atomic uint32_t waiting;  /* the caller sleeps (or is about to) on done */
	_Atomic uint32_t stop;
};

struct worker_arg {
	struct threadpool *p;
	unsigned tid;
};

static void futex_wait(_Atomic uint32_t *a, uint32_t v) {
	syscall(SYS_futex, a, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *a) {
	syscall(SYS_futex, a, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Claim and run tasks of generation g until none are left. */
static void work(struct threadpool *p, uint32_t g, unsigned tid) {
	uint64_t s = atomic_load_explicit(&p->state, memory_order_acquire);
	for (;;) {
		if ((uint32_t)(s >> 32) != g) return;
		/* Acquire: a field of the next job seen here means its closing of this one is seen too (run()). */
		threadpool_fn fn = atomic_load_explicit(&p->fn, memory_order_acquire);
		void *arg = atomic_load_explicit(&p->arg, memory_order_acquire);
		unsigned long n = atomic_load_explicit(&p->ntasks, memory_order_acquire), i = (uint32_t)s;
		if (i >= n) return;
		if (!atomic_compare_exchange_weak_explicit(&p->state, &s, s + 1, memory_order_acq_rel,
							   memory_order_acquire))
			continue;
		fn(arg, i, tid);
		/* seq_cst, paired with the caller's store to waiting: one of us sees the other. */
		if (atomic_fetch_add(&p->done, 1) + 1 == n && tid != 0 && atomic_load(&p->waiting))
			futex_wake(&p->done);
		s = atomic_load_explicit(&p->state, memory_order_acquire);
	}
}

static void *worker(void *x) {
	struct threadpool *p = ((struct worker_arg *)x)->p;
	unsigned tid = ((struct worker_arg *)x)->tid;
	free(x);
	uint32_t seen = 0;
	for (;;) {
		uint32_t g;
		int spins = 0;
		while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) {
			/* Then sleep rather than yield: an idle CPU is what lets the scheduler move a preempted
			 * caller over to it (see the top comment). */
			if (spins++ < WORKER_SPINS) {
				cpu_relax();
				continue;
			}
			atomic_fetch_add(&p->sleepers, 1);
			if (atomic_load(&p->gen) == seen) futex_wait(&p->gen, seen);
			atomic_fetch_sub(&p->sleepers, 1);
		}
		seen = g;
		if (atomic_load(&p->stop)) return NULL;
		work(p, g, tid);
	}
}

int threadpool_new(unsigned nthreads, struct threadpool **ret) {
	if (nthreads == 0 || nthreads > 256) return -EINVAL;
	struct threadpool *p = calloc(1, sizeof *p);
	if (!p) return -ENOMEM;
	p->threads = calloc(nthreads, sizeof *p->threads);
	if (!p->threads) {
		free(p);
		return -ENOMEM;
	}
	p->n = 1;
	for (unsigned i = 1; i < nthreads; i++) {
		struct worker_arg *a = malloc(sizeof *a);
		int r = a ? 0 : ENOMEM;
		if (a) {
			*a = (struct worker_arg){p, i};
			r = pthread_create(&p->threads[i], NULL, worker, a);
			if (r) free(a);
		}
		if (r) {
			threadpool_free(p);
			return -r;
		}
		p->n++;
	}
	*ret = p;
	return 0;
}

void threadpool_free(struct threadpool *p) {
	if (!p) return;
	atomic_store(&p->stop, 1);
	atomic_fetch_add(&p->gen, 1);
	futex_wake(&p->gen);
	for (unsigned i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
	free(p->threads);
	free(p);
}

unsigned threadpool_size(const struct threadpool *p) {
	return p->n;
}

void threadpool_run(struct threadpool *p, threadpool_fn fn, void *arg, unsigned long ntasks) {
	if (p->n == 1 || ntasks == 1) {
		for (unsigned long i = 0; i < ntasks; i++) fn(arg, i, 0);
		return;
	}
	uint32_t g = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
	/* Close the last job to claims before its fields change. A late worker holding its state (every task
	 * claimed) could otherwise read the new, larger ntasks before the new state and claim with the old
	 * state: a task of this job run twice, and `done` counted one too many, so run() could return before
	 * its last task finished (seen once in test-threadpool on a busy host). Released with the fields. */
	atomic_store_explicit(&p->state, (uint64_t)(g - 1) << 32 | UINT32_MAX, memory_order_relaxed);
	atomic_store_explicit(&p->fn, fn, memory_order_release);
	atomic_store_explicit(&p->arg, arg, memory_order_release);
	atomic_store_explicit(&p->ntasks, ntasks, memory_order_release);
	atomic_store_explicit(&p->done, 0, memory_order_relaxed);
	atomic_store_explicit(&p->state, (uint64_t)g << 32, memory_order_release);
	atomic_store(&p->gen, g); /* seq_cst: pairs with the sleepers count (no lost wake-up) */
	if (atomic_load(&p->sleepers)) futex_wake(&p->gen);
	work(p, g, 0);
	/* Every task is claimed; wait for the ones still running elsewhere: spin briefly, then sleep. */
	for (unsigned i = 0; i < WAIT_SPINS; i++) {
		if (atomic_load_explicit(&p->done, memory_order_acquire) >= ntasks) return;
		cpu_relax();
	}
	atomic_store(&p->waiting, 1);
	for (uint32_t d; (d = atomic_load(&p->done)) < ntasks;) futex_wait(&p->done, d);
	atomic_store_explicit(&p->waiting, 0, memory_order_relaxed);
}
