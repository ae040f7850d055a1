/* Tests for base64.c: RFC 4648 section 10 test vectors and strictness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base64.h"
#include "macro.h"

static void test_rfc4648(void **state) {
	static const char *const pairs[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
					       {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
					       {"foobar", "Zm9vYmFy"}};
	for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
		char *e;
		uint8_t *d;
		size_t n;
		assert_int_equal(base64_encode((const uint8_t *)pairs[i][0], strlen(pairs[i][0]), &e), 0);
		assert_string_equal(e, pairs[i][1]);
		free(e);
		assert_int_equal(base64_decode(pairs[i][1], 100, &d, &n), 0);
		assert_int_equal(n, strlen(pairs[i][0]));
		assert_memory_equal(d, pairs[i][0], n);
		free(d);
	}
}

static void test_strict(void **state) {
	uint8_t *d;
	size_t n;
	const char *bad[] = {"Zg", "Zg=", "Zh==", "Zm9=", "Zm9v\n", "Z===", "=Zg=", "Zm9vYmFy====", "Zm 9v", "Zg==Zg=="};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) assert_int_equal(base64_decode(bad[i], 100, &d, &n), -EINVAL);
	assert_int_equal(base64_decode("Zm9vYmFy", 5, &d, &n), -E2BIG);
}

int main(void) {
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_rfc4648), cmocka_unit_test(test_strict)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
