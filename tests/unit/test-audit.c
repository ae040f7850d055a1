/* Tests for audit.c: a record written by hand from RFC 8949 (not by our encoder) decodes to the right fields,
 * our encoder produces exactly those bytes, and every malformation is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit.h"
#include "macro.h"
#include "util.h"

/* {"inputs": 2, "status": "ok", "tokens": 17, "model_id": "m1", "duration_us": 1234,
 *  "receipt_sha256": h'000102...1f'} in deterministic key order, hand-encoded. */
static const char good_hex[] =
	"a6"
	"66696e70757473" "02"
	"66737461747573" "626f6b"
	"66746f6b656e73" "11"
	"686d6f64656c5f6964" "626d31"
	"6b6475726174696f6e5f7573" "1904d2"
	"6e726563656970745f736861323536" "5820"
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static size_t unhex(const char *h, uint8_t *out) {
	int n = hex_decode(h, out, 1024);
	assert_true(n > 0);
	return (size_t)n;
}

static void test_decode_good(void **state) {
	uint8_t b[1024];
	size_t n = unhex(good_hex, b);
	struct audit_record r;
	assert_int_equal(audit_decode(b, n, &r), 0);
	assert_int_equal(r.inputs, 2);
	assert_int_equal(r.tokens, 17);
	assert_int_equal(r.duration_us, 1234);
	assert_string_equal(r.status, "ok");
	assert_string_equal(r.model_id, "m1");
	for (int i = 0; i < 32; i++)
		assert_int_equal(r.receipt_sha256[i], i);
}

static void test_encode_matches_hand_encoding(void **state) {
	uint8_t b[1024], *e;
	size_t n = unhex(good_hex, b), el;
	struct audit_record r = {.inputs = 2, .tokens = 17, .duration_us = 1234};
	strcpy(r.status, "ok");
	strcpy(r.model_id, "m1");
	for (int i = 0; i < 32; i++)
		r.receipt_sha256[i] = (uint8_t)i;
	assert_int_equal(audit_encode(&r, &e, &el), 0);
	assert_int_equal(el, n);
	assert_memory_equal(e, b, n);
	free(e);
}

static void test_big_ints_and_encoder_checks(void **state) {
	struct audit_record r = {.inputs = UINT64_MAX, .tokens = 65536, .duration_us = 4294967296ULL}, d;
	uint8_t *e;
	size_t el;
	strcpy(r.model_id, "m");
	strcpy(r.status, "error_TOO_long_9");
	assert_int_equal(audit_encode(&r, &e, &el), 0);
	assert_int_equal(audit_decode(e, el, &d), 0);
	assert_int_equal(d.inputs, UINT64_MAX);
	assert_int_equal(d.tokens, 65536);
	assert_int_equal(d.duration_us, 4294967296ULL);
	assert_string_equal(d.status, "error_TOO_long_9");
	free(e);
	/* eml-protocol(7): model_id 1..128 printable, status 1..32 of [A-Za-z0-9_] */
	strcpy(r.model_id, "");
	assert_int_equal(audit_encode(&r, &e, &el), -EINVAL);
	strcpy(r.model_id, "m");
	strcpy(r.status, "bad-status");
	assert_int_equal(audit_encode(&r, &e, &el), -EINVAL);
	memset(r.status, 'a', AUDIT_STATUS_MAX);
	r.status[AUDIT_STATUS_MAX] = 0;
	assert_int_equal(audit_encode(&r, &e, &el), 0);
	free(e);
}

static void expect_bad(const char *hex) {
	uint8_t b[1024];
	size_t n = unhex(hex, b);
	struct audit_record r;
	assert_int_equal(audit_decode(b, n, &r), -EBADMSG);
}

static void test_malformed(void **state) {
	char h[1024];
	/* every truncation */
	uint8_t b[1024];
	size_t n = unhex(good_hex, b);
	struct audit_record r;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(audit_decode(b, i, &r), -EBADMSG);
	/* trailing byte */
	snprintf(h, sizeof(h), "%s00", good_hex);
	expect_bad(h);
	/* map of 5 (a key missing) and of 7 */
	snprintf(h, sizeof(h), "a5%s", good_hex + 2);
	expect_bad(h);
	snprintf(h, sizeof(h), "a7%s" "6178" "01", good_hex + 2);
	expect_bad(h);
	/* duplicate key: "inputs" twice instead of "tokens" */
	strcpy(h, good_hex);
	memcpy(strstr(h, "66746f6b656e73"), "66696e70757473", 14);
	expect_bad(h);
	/* unknown key: "tokenz" */
	strcpy(h, good_hex);
	memcpy(strstr(h, "66746f6b656e73"), "66746f6b656e7a", 14);
	expect_bad(h);
	/* receipt of 31 bytes */
	strcpy(h, good_hex);
	memcpy(strstr(h, "5820"), "581f", 4);
	h[strlen(h) - 2] = 0;
	expect_bad(h);
	/* negative integer for inputs */
	strcpy(h, good_hex);
	memcpy(strstr(h, "7302"), "7321", 4);
	expect_bad(h);
	/* control character in status ("o\n") */
	strcpy(h, good_hex);
	memcpy(strstr(h, "626f6b"), "626f0a", 6);
	expect_bad(h);
	/* indefinite-length map */
	snprintf(h, sizeof(h), "bf%sff", good_hex + 2);
	expect_bad(h);
	/* an array, not a map */
	expect_bad("8102");
	/* model_id null */
	strcpy(h, good_hex);
	{
		char *x = strstr(h, "626d31"); /* "m1" -> null */
		memcpy(x, "f6", 2);
		memmove(x + 2, x + 6, strlen(x + 6) + 1);
	}
	expect_bad(h);
	/* status with a character outside [A-Za-z0-9_] ("o-") */
	strcpy(h, good_hex);
	memcpy(strstr(h, "626f6b"), "626f2d", 6);
	expect_bad(h);
	/* not deterministic: inputs with a two-byte head (18 02), and two keys swapped */
	snprintf(h, sizeof(h), "%s", good_hex);
	{
		char *x = strstr(h, "7302");
		memmove(x + 4, x + 2, strlen(x + 2) + 1);
		memcpy(x + 2, "18", 2);
	}
	expect_bad(h);
	snprintf(h, sizeof(h), "a6" "66737461747573" "626f6b" "66696e70757473" "02" "%s", strstr(good_hex, "66746f6b"));
	expect_bad(h);
	/* status as bytes, not text */
	strcpy(h, good_hex);
	memcpy(strstr(h, "626f6b"), "426f6b", 6);
	expect_bad(h);
}

static void test_size_limit(void **state) {
	uint8_t *b = calloc(1, AUDIT_MAX_SIZE + 1);
	struct audit_record r;
	assert_int_equal(audit_decode(b, AUDIT_MAX_SIZE + 1, &r), -EMSGSIZE);
	free(b);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_good),
		cmocka_unit_test(test_encode_matches_hand_encoding),
		cmocka_unit_test(test_big_ints_and_encoder_checks),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_size_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
