/* Tests for audit.c: the AUDIT record round-trips, its encoding is deterministic CBOR with exactly six keys, and
 * the strict decoder refuses every truncation, extra or missing key, wrong type and forbidden character. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit.h"
#include "cbor.h"
#include "macro.h"

static struct audit_record sample(void) {
	struct audit_record a = {.inputs = 3, .tokens = 41, .duration_us = 987654};
	for (int i = 0; i < 32; i++) a.receipt_sha256[i] = (uint8_t)(i * 7);
	strcpy(a.model_id, "sentence-transformers/all-MiniLM-L6-v2");
	strcpy(a.status, "ok");
	return a;
}

static void test_roundtrip(void **state) {
	struct audit_record a = sample(), b;
	_cleanup_free_ uint8_t *p = NULL;
	size_t n;
	assert_int_equal(audit_encode(&a, &p, &n), 0);
	assert_true(n <= AUDIT_MAX);
	assert_int_equal(audit_decode(p, n, &b), 0);
	assert_memory_equal(&a, &b, sizeof a);
	/* Deterministic: keys sorted by encoded length then bytes, so the shortest key comes first. */
	assert_int_equal(p[0], 0xa6);
	assert_int_equal(p[1], 0x66); /* "inputs" and "status" and "tokens" have 6 bytes; "inputs" sorts first */
	assert_memory_equal(p + 2, "inputs", 6);
	for (size_t i = 0; i < n; i++) assert_int_equal(audit_decode(p, i, &b), -EBADMSG);
}

static void test_refused(void **state) {
	struct audit_record a = sample();
	uint8_t *p;
	size_t n;
	strcpy(a.status, "not ok");
	assert_int_equal(audit_encode(&a, &p, &n), -EINVAL);
	a = sample();
	a.model_id[0] = 0;
	assert_int_equal(audit_encode(&a, &p, &n), -EINVAL);
	a = sample();
	a.model_id[3] = '\n';
	assert_int_equal(audit_encode(&a, &p, &n), -EINVAL);

	/* Hand-built maps: an extra key, a missing key, a wrong type, a short hash, a control character. */
	for (int v = 0; v < 5; v++) {
		uint8_t h[32] = {0};
		cbor_item_t *m = ecbor_map();
		assert_int_equal(ecbor_map_put(m, ecbor_tstr("receipt_sha256"), ecbor_bstr(h, v == 3 ? 31 : 32)), 0);
		assert_int_equal(ecbor_map_put(m, ecbor_tstr("model_id"), ecbor_tstr(v == 4 ? "a\x01" : "m")), 0);
		assert_int_equal(ecbor_map_put(m, ecbor_tstr("inputs"), v == 2 ? ecbor_tstr("1") : ecbor_uint(1)), 0);
		assert_int_equal(ecbor_map_put(m, ecbor_tstr("tokens"), ecbor_uint(1)), 0);
		if (v != 1) assert_int_equal(ecbor_map_put(m, ecbor_tstr("duration_us"), ecbor_uint(1)), 0);
		assert_int_equal(ecbor_map_put(m, ecbor_tstr("status"), ecbor_tstr("ok")), 0);
		if (v == 0) assert_int_equal(ecbor_map_put(m, ecbor_tstr("text"), ecbor_tstr("secret")), 0);
		_cleanup_free_ uint8_t *q = NULL;
		assert_int_equal(ecbor_encode(m, &q, &n), 0);
		cbor_decref(&m);
		struct audit_record b;
		assert_int_equal(audit_decode(q, n, &b), -EBADMSG);
	}
	/* Not deterministic: the same record with a two-byte head for inputs = 3. */
	a = sample();
	_cleanup_free_ uint8_t *q = NULL;
	assert_int_equal(audit_encode(&a, &q, &n), 0);
	uint8_t bad[AUDIT_MAX + 1];
	assert_int_equal(q[8], 0x03);
	memcpy(bad, q, 8);
	bad[8] = 0x18, bad[9] = 0x03;
	memcpy(bad + 10, q + 9, n - 9);
	struct audit_record b;
	assert_int_equal(audit_decode(bad, n + 1, &b), -EBADMSG);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
