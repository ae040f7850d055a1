/* Tests for notify.c: the messages sent to $NOTIFY_SOCKET and the watchdog timer pinging at half the interval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "notify.h"
#include "util.h"

static int notify_fd = -1;
static char sock_path[108];

static int setup(void **state) {
	snprintf(sock_path, sizeof sock_path, "/tmp/eml-notify-%d", getpid());
	unlink(sock_path);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	strcpy(un.sun_path, sock_path);
	assert_int_equal(bind(notify_fd, (struct sockaddr *)&un, sizeof un), 0);
	setenv("NOTIFY_SOCKET", sock_path, 1);
	return 0;
}

static int teardown(void **state) {
	close(notify_fd);
	unlink(sock_path);
	return 0;
}

static char *next_msg(int timeout_ms) {
	static char buf[1024];
	struct pollfd p = {.fd = notify_fd, .events = POLLIN};
	if (poll(&p, 1, timeout_ms) != 1) return NULL;
	ssize_t n = recv(notify_fd, buf, sizeof buf - 1, 0);
	if (n < 0) return NULL;
	buf[n] = 0;
	return buf;
}

static void test_messages(void **state) {
	assert_int_equal(notify_ready(), 0);
	assert_string_equal(next_msg(1000), "READY=1");
	assert_int_equal(notify_status("serving %d connections", 3), 0);
	assert_string_equal(next_msg(1000), "STATUS=serving 3 connections");
	assert_int_equal(notify_ready_status("up"), 0);
	assert_string_equal(next_msg(1000), "READY=1\nSTATUS=up");
	assert_int_equal(notify_stopping(), 0);
	assert_string_equal(next_msg(1000), "STOPPING=1");
	assert_int_equal(notify_reloading(), 0);
	assert_true(strncmp(next_msg(1000), "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
	assert_int_equal(notify_watchdog(), 0);
	assert_string_equal(next_msg(1000), "WATCHDOG=1");
}

static void test_watchdog_timer(void **state) {
	char pid[32];
	snprintf(pid, sizeof pid, "%d", getpid());
	setenv("WATCHDOG_PID", pid, 1);
	setenv("WATCHDOG_USEC", "200000", 1);
	assert_int_equal(notify_watchdog_interval_usec(), 100000);
	sd_event *e = NULL;
	assert_int_equal(sd_event_new(&e), 0);
	assert_int_equal(notify_watchdog_attach(e), 0);
	uint64_t start = now_monotonic_usec();
	while (now_monotonic_usec() - start < 450000) sd_event_run(e, 50000);
	int pings = 0;
	char *m;
	while ((m = next_msg(0))) {
		assert_string_equal(m, "WATCHDOG=1");
		pings++;
	}
	/* one at once, then every 100 ms: 4-6 in 450 ms */
	assert_true(pings >= 4 && pings <= 6);
	sd_event_unref(e);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(notify_watchdog_interval_usec(), 0);
}

static void test_no_socket(void **state) {
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(notify_ready(), 0);
	assert_int_equal(notify_status("x"), 0);
	setenv("NOTIFY_SOCKET", sock_path, 1);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_watchdog_timer),
		cmocka_unit_test(test_no_socket),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
