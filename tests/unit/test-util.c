/* Tests for util.c: hex, integer parsing, bounded file reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "macro.h"
#include "util.h"

static void test_hex(void **state) {
	uint8_t b[4];
	char s[9];
	assert_int_equal(hex_decode("00ff7A", b, sizeof b), 3);
	assert_int_equal(b[0], 0);
	assert_int_equal(b[1], 0xff);
	assert_int_equal(b[2], 0x7a);
	hex_encode(b, 3, s);
	assert_string_equal(s, "00ff7a");
	assert_int_equal(hex_decode("abc", b, sizeof b), -EINVAL);
	assert_int_equal(hex_decode("zz", b, sizeof b), -EINVAL);
	assert_int_equal(hex_decode("0011223344", b, sizeof b), -ENOBUFS);
	assert_int_equal(hex_decode("", b, sizeof b), 0);
}

static void test_parse_u64(void **state) {
	uint64_t v;
	assert_int_equal(parse_u64("42", 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(parse_u64("101", 100, &v), -ERANGE);
	assert_int_equal(parse_u64("", 100, &v), -EINVAL);
	assert_int_equal(parse_u64("-1", 100, &v), -EINVAL);
	assert_int_equal(parse_u64("1x", 100, &v), -EINVAL);
	assert_int_equal(parse_u64("18446744073709551616", UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_u64("18446744073709551615", UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
}

static void test_read_file_limit(void **state) {
	char path[] = "/tmp/eml-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	uint8_t data[10000];
	memset(data, 'x', sizeof data);
	assert_int_equal(write_all(fd, data, sizeof data), 0);
	close(fd);
	uint8_t *buf = NULL;
	size_t len = 0;
	assert_int_equal(read_file(path, 9999, &buf, &len), -EFBIG);
	assert_int_equal(read_file(path, 10000, &buf, &len), 0);
	assert_int_equal(len, 10000);
	assert_int_equal(buf[len], 0);
	free(buf);
	assert_int_equal(read_file("/nonexistent/x", 10, &buf, &len), -ENOENT);
	unlink(path);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_read_file_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
