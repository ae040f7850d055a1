/* Tests for curl-body.c: chunks accumulate NUL-terminated, a body past max is refused whole (the transfer
 * fails) with overflow set, and done leaves the sink empty and reusable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "curl-body.h"

static size_t put(struct curl_body *b, const char *s) {
	return curl_body_write((char *)s, 1, strlen(s), b);
}

static void test_accumulates(void **state) {
	struct curl_body b = {.max = 10};
	assert_int_equal(put(&b, "{\"a\":"), 5);
	assert_int_equal(put(&b, "1}"), 2);
	assert_int_equal(curl_body_write((char *)"x", 1, 0, &b), 0); /* an empty chunk takes nothing */
	assert_int_equal(b.len, 7);
	assert_string_equal(b.p, "{\"a\":1}");
	assert_false(b.overflow);
	curl_body_done(&b);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.max, 10);
	curl_body_done(NULL);
}

static void test_max(void **state) {
	struct curl_body b = {.max = 10};
	assert_int_equal(put(&b, "0123456789"), 10); /* exactly max */
	assert_int_equal(put(&b, "x"), 0);
	assert_true(b.overflow);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.p, "0123456789");
	curl_body_done(&b);
	assert_false(b.overflow);
	/* size * n counts, not n alone */
	assert_int_equal(curl_body_write((char *)"0123456789ab", 4, 3, &b), 0);
	assert_true(b.overflow);
	assert_null(b.p);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accumulates),
		cmocka_unit_test(test_max),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
