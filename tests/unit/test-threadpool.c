/* test-threadpool: every task of every run executes exactly once, on a valid thread id, and run() returns only
 * after all of them finished, whether the caller finds them done while spinning or has to sleep for them. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "macro.h"
#include "threadpool.h"

#define MAX_TASKS 4096

struct counts {
	unsigned nthreads;
	unsigned long sleep_task; /* this task sleeps (so the caller must wait for it), or ULONG_MAX */
	_Atomic unsigned runs[MAX_TASKS];
	_Atomic unsigned bad_tid;
};

static void count(void *arg, unsigned long task, unsigned tid) {
	struct counts *c = arg;
	if (tid >= c->nthreads) atomic_fetch_add(&c->bad_tid, 1);
	if (task == c->sleep_task) nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
	atomic_fetch_add(&c->runs[task], 1);
}

static void check_runs(unsigned nthreads, unsigned long sleep_every) {
	struct threadpool *p;
	assert_int_equal(threadpool_new(nthreads, &p), 0);
	assert_int_equal(threadpool_size(p), nthreads);
	struct counts *c = calloc(1, sizeof *c);
	assert_non_null(c);
	c->nthreads = nthreads;
	for (unsigned long round = 0; round < 300; round++) {
		unsigned long n = 1 + (round * 37) % MAX_TASKS;
		memset(c->runs, 0, sizeof c->runs);
		/* Every sleep_every-th run has a task that outlasts the caller's spinning. */
		c->sleep_task = sleep_every && round % sleep_every == 0 ? n - 1 : ULONG_MAX;
		threadpool_run(p, count, c, n);
		for (unsigned long t = 0; t < MAX_TASKS; t++)
			if (atomic_load(&c->runs[t]) != (t < n))
				fail_msg("%u threads, run %lu of %lu tasks: task %lu ran %u times", nthreads, round, n, t,
					 atomic_load(&c->runs[t]));
	}
	assert_int_equal(atomic_load(&c->bad_tid), 0);
	free(c);
	threadpool_free(p);
}

static void test_every_task_once(void **state) {
	(void)state;
	check_runs(1, 0);
	check_runs(2, 0);
	check_runs(3, 0);
}

static void test_waits_for_slow_tasks(void **state) {
	(void)state;
	check_runs(2, 3);
	check_runs(4, 5);
}

static void test_refusals(void **state) {
	(void)state;
	struct threadpool *p = NULL;
	assert_int_equal(threadpool_new(0, &p), -EINVAL);
	assert_int_equal(threadpool_new(257, &p), -EINVAL);
	assert_null(p);
	threadpool_free(NULL);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_task_once),
		cmocka_unit_test(test_waits_for_slow_tasks),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
