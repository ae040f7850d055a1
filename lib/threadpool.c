/* threadpool.c: see threadpool.h. */
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "macro.h"
#include "threadpool.h"

#define SPIN_ROUNDS 20000

struct threadpool {
	unsigned n;
	pthread_t *threads;
	threadpool_fn fn;
	void *arg;
	_Atomic uint32_t gen;     /* bumped per run; workers wait for it to change */
	_Atomic uint32_t pending; /* workers still running the current job */
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

/* Wait until *a != v: spin first (runs follow each other within microseconds), then sleep. */
static void wait_change(_Atomic uint32_t *a, uint32_t v) {
	for (int i = 0; i < SPIN_ROUNDS; i++) {
		if (atomic_load_explicit(a, memory_order_acquire) != v) return;
		cpu_relax();
	}
	while (atomic_load_explicit(a, memory_order_acquire) == v) futex_wait(a, v);
}

static void *worker(void *x) {
	struct threadpool *p = ((struct worker_arg *)x)->p;
	unsigned tid = ((struct worker_arg *)x)->tid;
	free(x);
	uint32_t seen = 0;
	for (;;) {
		wait_change(&p->gen, seen);
		seen = atomic_load_explicit(&p->gen, memory_order_acquire);
		if (atomic_load(&p->stop)) return NULL;
		p->fn(p->arg, tid, p->n);
		if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) futex_wake(&p->pending);
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

void threadpool_run(struct threadpool *p, threadpool_fn fn, void *arg) {
	if (p->n == 1) {
		fn(arg, 0, 1);
		return;
	}
	p->fn = fn;
	p->arg = arg;
	atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
	futex_wake(&p->gen);
	fn(arg, 0, p->n);
	uint32_t v;
	for (int i = 0; (v = atomic_load_explicit(&p->pending, memory_order_acquire)) != 0; i++) {
		if (i < SPIN_ROUNDS)
			cpu_relax();
		else
			futex_wait(&p->pending, v);
	}
}
