/* Tests for addr.c: every address form, canonical formatting, and hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <linux/vm_sockets.h>

#include "addr.h"
#include "macro.h"

static void roundtrip(const char *in, const char *canonical) {
	struct eml_addr a;
	char buf[ADDR_STRING_MAX];
	assert_int_equal(addr_parse(in, &a), 0);
	assert_int_equal(addr_format(&a, buf, sizeof buf), 0);
	assert_string_equal(buf, canonical);
	struct eml_addr b;
	assert_int_equal(addr_parse(buf, &b), 0);
	assert_memory_equal(&a, &b, sizeof a);
}

static void test_valid(void **state) {
	roundtrip("vsock:3:8001", "vsock:3:8001");
	roundtrip("vsock::5000", "vsock::5000");
	roundtrip("vsock:any:5000", "vsock::5000");
	roundtrip("vsock:16:4294967294", "vsock:16:4294967294");
	roundtrip("tcp:127.0.0.1:5000", "tcp:127.0.0.1:5000");
	roundtrip("tcp:[::1]:443", "tcp:[::1]:443");
	roundtrip("tcp:[fe80::1:2]:0", "tcp:[fe80::1:2]:0");
	roundtrip("tcp:kms.eu-west-1.amazonaws.com:443", "tcp:kms.eu-west-1.amazonaws.com:443");
	roundtrip("tcp:*:5000", "tcp:*:5000");
	roundtrip("tcp:localhost:65535", "tcp:localhost:65535");
	roundtrip("unix:/run/eml/nsm.sock", "unix:/run/eml/nsm.sock");
	roundtrip("unix:@abstract", "unix:@abstract");
	roundtrip("unix:relative/path", "unix:relative/path");

	struct eml_addr a;
	assert_int_equal(addr_parse("vsock:3:8001", &a), 0);
	assert_int_equal(a.kind, ADDR_VSOCK);
	assert_int_equal(a.cid, 3);
	assert_int_equal(a.port, 8001);
	assert_int_equal(addr_parse("vsock::5000", &a), 0);
	assert_true(a.cid == ADDR_VSOCK_CID_ANY);
	assert_int_equal(addr_parse("tcp:[::1]:443", &a), 0);
	assert_string_equal(a.host, "::1");
}

static void test_errors(void **state) {
	struct eml_addr a;
	char longpath[200] = "unix:";
	memset(longpath + 5, 'p', 150);
	longpath[155] = 0;
	char longhost[300] = "tcp:";
	memset(longhost + 4, 'h', 260);
	strcpy(longhost + 264, ":80");
	static const struct { const char *s; int r; } cases[] = {
		{"", -EINVAL}, {"tcp", -EINVAL}, {"tcp:", -EINVAL}, {"tcp:host", -EINVAL}, {"tcp:host:", -EINVAL},
		{"tcp::80", -EINVAL}, {"tcp:host:65536", -ERANGE}, {"tcp:host:-1", -EINVAL}, {"tcp:host:8x", -EINVAL},
		{"tcp:host:99999999999999999999999", -ERANGE}, {"tcp:::1:80", -EINVAL}, {"tcp:[::1]80", -EINVAL},
		{"tcp:[::1", -EINVAL}, {"tcp:[nothex]:80", -EINVAL}, {"tcp:[]:80", -EINVAL}, {"tcp:a b:80", -EINVAL},
		{"tcp:-lead:80", -EINVAL}, {"tcp:ho$t:80", -EINVAL}, {"vsock:3", -EINVAL}, {"vsock:3:", -EINVAL},
		{"vsock:x:1", -EINVAL}, {"vsock:4294967295:1", -ERANGE}, {"vsock:3:4294967295", -ERANGE},
		{"vsock:99999999999999999999:1", -ERANGE}, {"vsock:3:1:2", -EINVAL}, {"unix:", -EINVAL},
		{"unix:@", -EINVAL}, {"udp:1.2.3.4:5", -EINVAL}, {"TCP:1.2.3.4:5", -EINVAL}, {"tcp:1.2.3.4:5\n", -EINVAL},
		{"vsock: 3:1", -EINVAL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r = addr_parse(cases[i].s, &a);
		if (r != cases[i].r) fail_msg("'%s': got %d want %d", cases[i].s, r, cases[i].r);
		assert_non_null(addr_strerror(r));
	}
	assert_int_equal(addr_parse(longpath, &a), -ENAMETOOLONG);
	assert_int_equal(addr_parse(longhost, &a), -ENAMETOOLONG);
	assert_int_equal(addr_parse(NULL, &a), -EINVAL);
	/* 107 characters is the longest path that fits sun_path with its NUL */
	char maxpath[120] = "unix:/";
	memset(maxpath + 6, 'x', 106);
	maxpath[112] = 0;
	assert_int_equal(addr_parse(maxpath, &a), 0);
	maxpath[112] = 'x';
	maxpath[113] = 0;
	assert_int_equal(addr_parse(maxpath, &a), -ENAMETOOLONG);
}

static void test_sockaddr(void **state) {
	struct eml_addr a;
	struct sockaddr_storage ss;
	socklen_t len;
	assert_int_equal(addr_parse("vsock:3:8001", &a), 0);
	assert_int_equal(addr_to_sockaddr(&a, &ss, &len), 0);
	struct sockaddr_vm *vm = (struct sockaddr_vm *)&ss;
	assert_int_equal(vm->svm_family, AF_VSOCK);
	assert_int_equal(vm->svm_cid, 3);
	assert_int_equal(vm->svm_port, 8001);
	assert_int_equal(addr_parse("tcp:10.1.2.3:80", &a), 0);
	assert_int_equal(addr_to_sockaddr(&a, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 80);
	assert_int_equal(addr_parse("tcp:example.org:80", &a), 0);
	assert_int_equal(addr_to_sockaddr(&a, &ss, &len), -EADDRNOTAVAIL);
	assert_int_equal(addr_parse("unix:@abs", &a), 0);
	assert_int_equal(addr_to_sockaddr(&a, &ss, &len), 0);
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 4);
	assert_int_equal(((struct sockaddr_un *)&ss)->sun_path[0], 0);

	char buf[ADDR_STRING_MAX];
	assert_int_equal(addr_format_sockaddr((struct sockaddr *)&ss, len, buf, sizeof buf), 0);
	assert_string_equal(buf, "unix:@abs");
	assert_int_equal(addr_parse("tcp:localhost:80", &a), 0);
	struct sockaddr_storage res[4];
	socklen_t lens[4];
	assert_true(addr_resolve(&a, res, lens, 4) >= 1);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_sockaddr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
