/* Tests for kms-http.c's kms_http_signed_headers: the signed request's headers in the order sent, the session
 * token only when there is one, and a refusal (not a truncated header) when a value is too long. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <string.h>

#include "kms-http.h"
#include "macro.h"
#include "sigv4.h"

static struct sigv4_result result(void) {
	struct sigv4_result r = {0};
	memcpy(r.amz_date, "20261121T120000Z", 17);
	r.authorization = (char *)"AWS4-HMAC-SHA256 Credential=AKID/20261121/us-east-1/kms/aws4_request, "
				  "SignedHeaders=host, Signature=00";
	return r;
}

static void assert_list(const struct curl_slist *l, const char *const *want, size_t n) {
	size_t i = 0;
	for (; l; l = l->next, i++) {
		assert_true(i < n);
		assert_string_equal(l->data, want[i]);
	}
	assert_int_equal(i, n);
}

static void test_headers_in_order(void **state) {
	struct sigv4_header h[] = {{"Host", "kms.example"}, {"X-Amz-Target", "TrentService.Decrypt"}};
	struct sigv4_result res = result();
	struct curl_slist *l = NULL;
	assert_int_equal(kms_http_signed_headers(h, ARRAY_SIZE(h), &res, NULL, &l), 0);
	char auth[256];
	snprintf(auth, sizeof auth, "Authorization: %s", res.authorization);
	const char *const want[] = {"Host: kms.example", "X-Amz-Target: TrentService.Decrypt",
				    "X-Amz-Date: 20261121T120000Z", auth, "Expect:"};
	assert_list(l, want, ARRAY_SIZE(want));
	curl_slist_free_all(l);

	l = NULL;
	assert_int_equal(kms_http_signed_headers(h + 1, 1, &res, "TOKEN", &l), 0); /* Host left to curl */
	const char *const with_token[] = {want[1], want[2], "X-Amz-Security-Token: TOKEN", auth, want[4]};
	assert_list(l, with_token, ARRAY_SIZE(with_token));
	curl_slist_free_all(l);
}

static void test_too_long_refused(void **state) {
	static char token[9000];
	memset(token, 'T', sizeof token - 1);
	struct sigv4_result res = result();
	struct curl_slist *l = (struct curl_slist *)&l; /* must stay untouched */
	assert_int_equal(kms_http_signed_headers(NULL, 0, &res, token, &l), -E2BIG);
	assert_ptr_equal(l, (struct curl_slist *)&l);
	assert_int_equal(kms_http_signed_headers(NULL, 1, &res, NULL, &l), -EINVAL);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_headers_in_order),
		cmocka_unit_test(test_too_long_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
