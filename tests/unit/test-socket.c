/* Tests for socket.c: listen/connect over tcp and unix, connect deadlines, stale unix sockets, and listeners
 * from systemd socket activation (LISTEN_FDS/LISTEN_FDNAMES) or from --listen addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include "macro.h"
#include "socket.h"
#include "util.h"

static void test_tcp_listen_connect(void **state) {
	struct eml_addr a;
	int lfd, cfd;
	char buf[ADDR_STRING_MAX];
	assert_int_equal(addr_parse("tcp:127.0.0.1:0", &a), 0);
	assert_int_equal(socket_listen(&a, 16, &lfd), 0);
	assert_true(fcntl(lfd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(socket_local_address(lfd, buf, sizeof buf), 0);
	assert_true(strncmp(buf, "tcp:127.0.0.1:", 14) == 0);
	assert_string_not_equal(buf, "tcp:127.0.0.1:0");
	struct eml_addr b;
	assert_int_equal(addr_parse(buf, &b), 0);
	assert_int_equal(socket_connect_deadline(&b, 2000000, &cfd), 0);
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 2000), 1);
	int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd >= 0);
	assert_int_equal(write_all(cfd, "ping", 4), 0);
	char r[4];
	assert_int_equal(read_all(afd, r, 4), 0);
	assert_memory_equal(r, "ping", 4);
	assert_int_equal(socket_peer_address(afd, buf, sizeof buf), 0);
	assert_true(strncmp(buf, "tcp:127.0.0.1:", 14) == 0);
	close(afd);
	close(cfd);
	close(lfd);
	/* nobody listening: refused, quickly */
	assert_int_equal(socket_connect_deadline(&b, 2000000, &cfd), -ECONNREFUSED);
}

static void test_ipv6_and_names(void **state) {
	struct eml_addr a;
	int lfd, cfd;
	char buf[ADDR_STRING_MAX];
	assert_int_equal(addr_parse("tcp:localhost:0", &a), 0);
	assert_int_equal(socket_listen(&a, 16, &lfd), 0);
	assert_int_equal(socket_local_address(lfd, buf, sizeof buf), 0);
	struct eml_addr b;
	assert_int_equal(addr_parse(buf, &b), 0);
	assert_int_equal(socket_connect_deadline(&b, 2000000, &cfd), 0);
	close(cfd);
	close(lfd);
	if (addr_parse("tcp:[::1]:0", &a) == 0 && socket_listen(&a, 16, &lfd) == 0) {
		assert_int_equal(socket_local_address(lfd, buf, sizeof buf), 0);
		assert_true(strncmp(buf, "tcp:[::1]:", 10) == 0);
		close(lfd);
	}
}

static void test_unix_stale(void **state) {
	char dir[] = "/tmp/eml-sock-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char spec[128];
	snprintf(spec, sizeof spec, "unix:%s/s.sock", dir);
	struct eml_addr a;
	int l1, l2, cfd;
	assert_int_equal(addr_parse(spec, &a), 0);
	assert_int_equal(socket_listen(&a, 4, &l1), 0);
	/* a live listener is not replaced */
	assert_int_equal(socket_listen(&a, 4, &l2), -EADDRINUSE);
	assert_int_equal(socket_connect_deadline(&a, 1000000, &cfd), 0);
	close(cfd);
	/* the listener reports the path it is reachable by */
	char name[ADDR_STRING_MAX];
	assert_int_equal(socket_local_address(l1, name, sizeof name), 0);
	assert_string_equal(name, spec);
	close(l1); /* leaves the socket file behind: stale */
	assert_int_equal(socket_listen(&a, 4, &l2), 0);
	assert_int_equal(socket_connect_deadline(&a, 1000000, &cfd), 0);
	close(cfd);
	close(l2);
	/* a regular file in the way is never unlinked */
	unlink(a.path);
	int f = open(a.path, O_CREAT | O_WRONLY, 0600);
	close(f);
	assert_int_equal(socket_listen(&a, 4, &l2), -EADDRINUSE);
	unlink(a.path);
	rmdir(dir);
}

static void test_connect_deadline(void **state) {
	/* A listener with a full accept queue drops further SYNs: the connect hangs until our deadline. */
	struct eml_addr a;
	int lfd;
	char buf[ADDR_STRING_MAX];
	assert_int_equal(addr_parse("tcp:127.0.0.1:0", &a), 0);
	assert_int_equal(socket_listen(&a, 1, &lfd), 0);
	assert_int_equal(socket_local_address(lfd, buf, sizeof buf), 0);
	assert_int_equal(addr_parse(buf, &a), 0);
	int fds[8], n = 0, r = 0;
	uint64_t start = 0;
	for (n = 0; n < 8; n++) {
		start = now_monotonic_usec();
		r = socket_connect_deadline(&a, 300000, &fds[n]);
		if (r < 0) break;
	}
	assert_int_equal(r, -ETIMEDOUT);
	uint64_t took = now_monotonic_usec() - start;
	assert_true(took >= 250000 && took < 3000000);
	for (int i = 0; i < n; i++) close(fds[i]);
	close(lfd);
}

static void test_listeners_from_systemd(void **state) {
	struct eml_addr a;
	int l1, l2;
	assert_int_equal(addr_parse("tcp:127.0.0.1:0", &a), 0);
	assert_int_equal(socket_listen(&a, 4, &l1), 0);
	assert_int_equal(socket_listen(&a, 4, &l2), 0);
	/* put them where systemd would: fds 3 and 4 */
	int keep3 = dup(3), keep4 = dup(4);
	assert_int_equal(dup2(l1, 3), 3);
	assert_int_equal(dup2(l2, 4), 4);
	char pid[32];
	snprintf(pid, sizeof pid, "%d", getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "2", 1);
	setenv("LISTEN_FDNAMES", "control:session", 1);
	int *fds = NULL, activated = -1;
	size_t n = 0;
	char *addrs[] = {"tcp:127.0.0.1:0"};
	assert_int_equal(listeners_get("session", 0, addrs, 1, &fds, &n, &activated), 1);
	assert_int_equal(activated, 1);
	assert_int_equal(fds[0], 4);
	free(fds);
	/* sd_listen_fds unsets the variables: set them again for the next case */
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "2", 1);
	setenv("LISTEN_FDNAMES", "unknown:unknown", 1);
	assert_int_equal(listeners_get("session", 1, NULL, 0, &fds, &n, &activated), 2);
	assert_int_equal(fds[0], 3);
	assert_int_equal(fds[1], 4);
	free(fds);
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "2", 1);
	setenv("LISTEN_FDNAMES", "unknown:unknown", 1);
	assert_int_equal(listeners_get("session", 0, NULL, 0, &fds, &n, &activated), -ENOENT);
	/* not activated: --listen addresses are bound */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	char *two[] = {"tcp:127.0.0.1:0", "tcp:127.0.0.1:0"};
	assert_int_equal(listeners_get("session", 0, two, 2, &fds, &n, &activated), 2);
	assert_int_equal(activated, 0);
	close(fds[0]);
	close(fds[1]);
	free(fds);
	char *bad[] = {"tcp:127.0.0.1:0", "bogus"};
	assert_int_equal(listeners_get("session", 0, bad, 2, &fds, &n, &activated), -EINVAL);
	assert_int_equal(listeners_get("session", 0, NULL, 0, &fds, &n, &activated), -ENOENT);
	dup2(keep3, 3);
	dup2(keep4, 4);
	close(keep3);
	close(keep4);
	close(l1);
	close(l2);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_listen_connect),
		cmocka_unit_test(test_ipv6_and_names),
		cmocka_unit_test(test_unix_stale),
		cmocka_unit_test(test_connect_deadline),
		cmocka_unit_test(test_listeners_from_systemd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
