/* Tests for resolve.c: DNS responses written by hand after RFC 1035 (header, question, answers with name
 * compression), TTL taken as the minimum, error responses and truncation refused; hosts-file lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "macro.h"
#include "resolve.h"
#include "util.h"

/* id 1234, flags 8180 (response, RD, RA, NOERROR), 1 question, 3 answers:
 *   backend.test A IN  ->  CNAME real.test (TTL 300), real.test A 192.0.2.7 (TTL 60),
 *   real.test AAAA 2001:db8::1 (TTL 30) */
static const char answer_hex[] =
	"1234" "8180" "0001" "0003" "0000" "0000"
	"076261636b656e640474657374" "00" "0001" "0001"
	"c00c" "0005" "0001" "0000012c" "0007" "047265616c" "c014"
	"c02a" "0001" "0001" "0000003c" "0004" "c0000207"
	"c02a" "001c" "0001" "0000001e" "0010" "20010db8000000000000000000000001";

static void test_answer(void **state) {
	uint8_t m[512];
	int n = hex_decode(answer_hex, m, sizeof(m));
	assert_true(n > 0);
	struct resolve_result r = {.ttl = RESOLVE_TTL_FOREVER};
	assert_int_equal(resolve_parse_answer(m, (size_t)n, &r), 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.ttl, 30);
	struct sockaddr_in *a = (struct sockaddr_in *)&r.addrs[0];
	assert_int_equal(a->sin_family, AF_INET);
	assert_int_equal(ntohl(a->sin_addr.s_addr), 0xc0000207);
	struct sockaddr_in6 *b = (struct sockaddr_in6 *)&r.addrs[1];
	assert_int_equal(b->sin6_family, AF_INET6);
	assert_int_equal(b->sin6_addr.s6_addr[0], 0x20);
	assert_int_equal(b->sin6_addr.s6_addr[15], 0x01);
	assert_int_equal(r.lens[1], sizeof(struct sockaddr_in6));

	/* every truncation is refused or yields fewer addresses, never more */
	for (int i = 0; i < n; i++) {
		struct resolve_result t = {.ttl = RESOLVE_TTL_FOREVER};
		int k = resolve_parse_answer(m, (size_t)i, &t);
		assert_true(k == -EBADMSG || t.n < 2);
	}
	/* NXDOMAIN, and a query instead of a response */
	m[3] = 0x83;
	assert_int_equal(resolve_parse_answer(m, (size_t)n, &r), -EBADMSG);
	m[3] = 0x80;
	m[2] = 0x01;
	assert_int_equal(resolve_parse_answer(m, (size_t)n, &r), -EBADMSG);
}

static void test_hosts(void **state) {
	const char *t = "# comment\n127.0.0.1 localhost\n192.0.2.1 Backend.Test other # trailing\n"
			"2001:db8::2 backend.test\nnot-an-ip backend.test\n192.0.2.1 backend.test\n";
	struct resolve_result r = {0};
	assert_int_equal(resolve_parse_hosts(t, strlen(t), "backend.test", AF_UNSPEC, &r), 2); /* duplicate dropped */
	assert_int_equal(r.n, 2);
	struct resolve_result r4 = {0};
	assert_int_equal(resolve_parse_hosts(t, strlen(t), "backend.test", AF_INET, &r4), 1);
	struct resolve_result none = {0};
	assert_int_equal(resolve_parse_hosts(t, strlen(t), "nothere", AF_UNSPEC, &none), 0);
}

static void test_resolve_name(void **state) {
	struct resolve_result r;
	assert_int_equal(resolve_name("192.0.2.9", AF_UNSPEC, NULL, 60, &r), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.ttl, RESOLVE_TTL_FOREVER);
	assert_int_equal(resolve_name("192.0.2.9", AF_INET6, NULL, 60, &r), -EHOSTUNREACH);

	char path[] = "/tmp/test-resolve-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *t = "192.0.2.3 pinned.test\n";
	assert_int_equal(write_all(fd, t, strlen(t)), 0);
	close(fd);
	assert_int_equal(resolve_name("pinned.test", AF_UNSPEC, path, 7, &r), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.ttl, 7);
	unlink(path);
	assert_int_equal(resolve_name("", AF_UNSPEC, NULL, 7, &r), -EINVAL);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answer),
		cmocka_unit_test(test_hosts),
		cmocka_unit_test(test_resolve_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
