/* Tests for acceptor.c: the connection cap pauses and resumes accepting, running out of fds pauses and retries
 * after the delay, and stop closes the listeners and ends the loop when the last connection goes or at the
 * deadline. Real loopback sockets, real sd-event loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"
#include "macro.h"
#include "socket.h"
#include "util.h"

struct fixture {
	sd_event *event;
	Acceptor *acceptor;
	struct eml_addr addr; /* where the listener is */
	int accepted[16];
	size_t n_accepted;
};

static void on_accept(Acceptor *a, int fd, void *userdata) {
	struct fixture *f = userdata;
	assert_true(f->n_accepted < ARRAY_SIZE(f->accepted));
	f->accepted[f->n_accepted++] = fd;
	acceptor_conn_opened(a);
}

static void setup(struct fixture *f, uint64_t max, uint64_t retry_usec) {
	*f = (struct fixture){0};
	struct eml_addr any;
	int lfd;
	char buf[ADDR_STRING_MAX];
	assert_int_equal(addr_parse("tcp:127.0.0.1:0", &any), 0);
	assert_int_equal(socket_listen(&any, 16, &lfd), 0);
	assert_int_equal(socket_local_address(lfd, buf, sizeof buf), 0);
	assert_int_equal(addr_parse(buf, &f->addr), 0);
	assert_int_equal(sd_event_new(&f->event), 0);
	AcceptorConfig cfg = {.max_connections = max, .retry_usec = retry_usec, .noun = "connection(s)",
			      .on_accept = on_accept, .userdata = f};
	assert_int_equal(acceptor_new(f->event, &lfd, 1, &cfg, &f->acceptor), 0);
}

static void teardown(struct fixture *f) {
	for (size_t i = 0; i < f->n_accepted; i++)
		if (f->accepted[i] >= 0)
			close(f->accepted[i]);
	f->acceptor = acceptor_free(f->acceptor);
	f->event = sd_event_unref(f->event);
}

static int client(struct fixture *f) {
	int fd;
	assert_int_equal(socket_connect_deadline(&f->addr, 2000000, &fd), 0);
	return fd;
}

/* Run the loop until nothing more happens for a while. */
static void settle(struct fixture *f) {
	while (sd_event_run(f->event, 50000) > 0)
		;
}

/* The daemon frees connection i. */
static void conn_gone(struct fixture *f, size_t i) {
	close(f->accepted[i]);
	f->accepted[i] = -1;
	acceptor_conn_closed(f->acceptor);
}

static void test_cap_pauses_and_resumes(void **state) {
	struct fixture f;
	setup(&f, 2, 1000);
	int c[3] = {client(&f), client(&f), client(&f)};
	settle(&f);
	assert_int_equal(f.n_accepted, 2); /* the third waits in the backlog */
	assert_int_equal(acceptor_connections(f.acceptor), 2);
	assert_true(acceptor_paused(f.acceptor));
	conn_gone(&f, 0);
	assert_false(acceptor_paused(f.acceptor));
	settle(&f);
	assert_int_equal(f.n_accepted, 3);
	assert_int_equal(acceptor_connections(f.acceptor), 2);
	assert_true(acceptor_paused(f.acceptor)); /* at the cap again once it looked for more */
	for (size_t i = 0; i < ARRAY_SIZE(c); i++)
		close(c[i]);
	teardown(&f);
}

static void test_out_of_fds_pauses_then_retries(void **state) {
	struct fixture f;
	setup(&f, 100, 20000);
	int c = client(&f);
	/* The next free descriptor is the limit: accept4 gets EMFILE. */
	struct rlimit old, low;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	int probe = dup(0);
	assert_true(probe >= 0);
	close(probe);
	low = old;
	low.rlim_cur = (rlim_t)probe;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_true(sd_event_run(f.event, 200000) > 0);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(f.n_accepted, 0);
	assert_true(acceptor_paused(f.acceptor));
	uint64_t t0 = now_monotonic_usec();
	settle(&f); /* the retry timer re-enables the listener */
	assert_int_equal(f.n_accepted, 1);
	assert_true(now_monotonic_usec() - t0 >= 15000);
	assert_false(acceptor_paused(f.acceptor));
	close(c);
	teardown(&f);
}

static void test_stop_drains(void **state) {
	struct fixture f;
	setup(&f, 10, 1000);
	int c = client(&f);
	settle(&f);
	assert_int_equal(f.n_accepted, 1);
	assert_int_equal(acceptor_stop(f.acceptor, 10 * 1000000), 0);
	assert_true(acceptor_stopping(f.acceptor));
	assert_int_equal(acceptor_stop(f.acceptor, 0), 0); /* again: nothing changes */
	int late;
	assert_int_equal(socket_connect_deadline(&f.addr, 500000, &late), -ECONNREFUSED); /* listener closed */
	int ecode;
	assert_int_equal(sd_event_get_exit_code(f.event, &ecode), -ENODATA); /* one still open */
	conn_gone(&f, 0);
	assert_int_equal(sd_event_get_exit_code(f.event, &ecode), 0);
	assert_int_equal(ecode, 0);
	close(c);
	teardown(&f);
}

static void test_stop_idle_exits_at_once(void **state) {
	struct fixture f;
	int ecode;
	setup(&f, 10, 1000);
	assert_int_equal(acceptor_stop(f.acceptor, 10 * 1000000), 0);
	assert_int_equal(sd_event_get_exit_code(f.event, &ecode), 0);
	teardown(&f);
}

static void test_stop_deadline(void **state) {
	struct fixture f;
	setup(&f, 10, 1000);
	int c = client(&f);
	settle(&f);
	assert_int_equal(f.n_accepted, 1);
	uint64_t t0 = now_monotonic_usec();
	assert_int_equal(acceptor_stop(f.acceptor, 50000), 0);
	assert_int_equal(sd_event_loop(f.event), 0);
	assert_true(now_monotonic_usec() - t0 >= 50000);
	assert_int_equal(acceptor_connections(f.acceptor), 1); /* left for the daemon to close */
	close(c);
	teardown(&f);
}

static void test_bad_arguments(void **state) {
	sd_event *e;
	Acceptor *a = NULL;
	assert_int_equal(sd_event_new(&e), 0);
	AcceptorConfig cfg = {.max_connections = 1, .noun = "connection(s)"}; /* no handler */
	assert_int_equal(acceptor_new(e, NULL, 0, &cfg, &a), -EINVAL);
	assert_null(a);
	assert_null(acceptor_free(NULL));
	sd_event_unref(e);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cap_pauses_and_resumes),
		cmocka_unit_test(test_out_of_fds_pauses_then_retries),
		cmocka_unit_test(test_stop_drains),
		cmocka_unit_test(test_stop_idle_exits_at_once),
		cmocka_unit_test(test_stop_deadline),
		cmocka_unit_test(test_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
