/* Tests for nsm.c: the byte layout serde gives the nsm-api enums, both directions, and the error mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "macro.h"
#include "nsm.h"
#include "util.h"

static void expect_request_hex(const struct nsm_request *q, const char *hex) {
	uint8_t *b;
	size_t n;
	assert_int_equal(nsm_request_encode(q, &b, &n), 0);
	char *h = malloc(2 * n + 1);
	hex_encode(b, n, h);
	assert_string_equal(h, hex);
	free(h);
	/* and it decodes back to the same request */
	struct nsm_request d;
	assert_int_equal(nsm_request_decode(b, n, &d), 0);
	assert_int_equal(d.op, q->op);
	assert_int_equal(d.index, q->index);
	assert_int_equal(d.data_len, q->data_len);
	assert_int_equal(!!d.user_data, !!q->user_data);
	assert_int_equal(!!d.nonce, !!q->nonce);
	assert_int_equal(!!d.public_key, !!q->public_key);
	nsm_request_done(&d);
	free(b);
}

static void test_request_bytes(void **state) {
	/* unit variants: a bare text */
	expect_request_hex(&(struct nsm_request){.op = NSM_OP_DESCRIBE_NSM}, "6b44657363726962654e534d");
	expect_request_hex(&(struct nsm_request){.op = NSM_OP_GET_RANDOM}, "6947657452616e646f6d");
	/* {"DescribePCR": {"index": 3}} */
	expect_request_hex(&(struct nsm_request){.op = NSM_OP_DESCRIBE_PCR, .index = 3},
			   "a16b4465736372696265504352a165696e64657803");
	/* {"LockPCRs": {"range": 16}} */
	expect_request_hex(&(struct nsm_request){.op = NSM_OP_LOCK_PCRS, .index = 16},
			   "a1684c6f636b50435273a16572616e676510");
	/* {"ExtendPCR": {"index": 16, "data": h'abcd'}} */
	expect_request_hex(&(struct nsm_request){.op = NSM_OP_EXTEND_PCR, .index = 16, .data = (const uint8_t *)"\xab\xcd", .data_len = 2},
			   "a169457874656e64504352a265696e646578106464617461" "42abcd");
	/* {"Attestation": {"user_data": h'01', "nonce": null, "public_key": null}}: fields in declaration order */
	expect_request_hex(&(struct nsm_request){.op = NSM_OP_ATTESTATION, .user_data = (const uint8_t *)"\x01", .user_data_len = 1},
			   "a16b4174746573746174696f6ea3" "69757365725f64617461" "4101" "656e6f6e6365" "f6"
			   "6a7075626c69635f6b6579" "f6");
}

static int decode_request_hex(const char *hex) {
	_cleanup_free_ uint8_t *b = NULL;
	size_t n;
	assert_int_equal(hex_decode_alloc(hex, &b, &n), 0);
	struct nsm_request q;
	int r = nsm_request_decode(b, n, &q);
	if (r == 0) nsm_request_done(&q);
	return r;
}

static void test_request_rejects(void **state) {
	/* "Describensm" (case), an unknown unit variant, a struct variant given as text */
	assert_int_equal(decode_request_hex("6b44657363726962656e736d"), -EBADMSG);
	assert_int_equal(decode_request_hex("674c6f636b504352"), -EBADMSG);
	/* index out of u16 range */
	assert_int_equal(decode_request_hex("a16b4465736372696265504352a165696e6465781a00010000"), -EBADMSG);
	/* an extra field */
	assert_int_equal(decode_request_hex("a16b4465736372696265504352a265696e646578036178f6"), -EBADMSG);
	/* missing index */
	assert_int_equal(decode_request_hex("a16b4465736372696265504352a0"), -EBADMSG);
	/* two variants in one map */
	assert_int_equal(decode_request_hex("a2" "6b4465736372696265504352a165696e64657803" "684c6f636b50435273a16572616e676510"), -EBADMSG);
	/* Attestation with missing fields is None for each (serde's Option default) */
	assert_int_equal(decode_request_hex("a16b4174746573746174696f6ea0"), 0);
	/* user_data as text */
	assert_int_equal(decode_request_hex("a16b4174746573746174696f6ea169757365725f646174616161"), -EBADMSG);
	/* trailing byte, garbage */
	assert_int_equal(decode_request_hex("6947657452616e646f6d00"), -EBADMSG);
	assert_int_equal(decode_request_hex("ff"), -EBADMSG);
}

static void test_responses(void **state) {
	uint8_t *b;
	size_t n;
	struct nsm_response s = {.op = NSM_OP_DESCRIBE_NSM,
				 .desc = {.version_major = 1, .max_pcrs = 32, .locked_mask = 0xffff, .module_id = "i-1", .digest = "SHA384"}};
	assert_int_equal(nsm_response_encode(&s, &b, &n), 0);
	struct nsm_response d;
	assert_int_equal(nsm_response_decode(b, n, &d), 0);
	assert_int_equal(d.op, NSM_OP_DESCRIBE_NSM);
	assert_int_equal(d.desc.locked_mask, 0xffff);
	assert_int_equal(d.desc.max_pcrs, 32);
	assert_string_equal(d.desc.module_id, "i-1");
	assert_string_equal(d.desc.digest, "SHA384");
	nsm_response_done(&d);
	free(b);

	/* {"Error": "ReadOnlyIndex"} exactly */
	s = (struct nsm_response){.op = NSM_OP_ERROR, .error = NSM_E_READ_ONLY_INDEX};
	assert_int_equal(nsm_response_encode(&s, &b, &n), 0);
	char h[64];
	hex_encode(b, n, h);
	assert_string_equal(h, "a1654572726f726d526561644f6e6c79496e646578");
	free(b);

	/* "LockPCR" is a bare text answer */
	s = (struct nsm_response){.op = NSM_OP_LOCK_PCR};
	assert_int_equal(nsm_response_encode(&s, &b, &n), 0);
	assert_int_equal(nsm_response_decode(b, n, &d), 0);
	assert_int_equal(d.op, NSM_OP_LOCK_PCR);
	nsm_response_done(&d);
	free(b);

	/* every error variant round-trips and maps to its own errno */
	int seen[_NSM_E_MAX] = {0};
	for (int e = 1; e < _NSM_E_MAX; e++) {
		s = (struct nsm_response){.op = NSM_OP_ERROR, .error = (enum nsm_error)e};
		assert_int_equal(nsm_response_encode(&s, &b, &n), 0);
		assert_int_equal(nsm_response_decode(b, n, &d), 0);
		assert_int_equal(d.op, NSM_OP_ERROR);
		assert_int_equal(d.error, e);
		nsm_response_done(&d);
		free(b);
		seen[e] = nsm_error_to_errno((enum nsm_error)e);
		assert_true(seen[e] < 0);
		for (int k = 1; k < e; k++) assert_int_not_equal(seen[k], seen[e]);
	}
	assert_string_equal(nsm_error_name(NSM_E_INPUT_TOO_LARGE), "InputTooLarge");
	assert_null(nsm_error_name(_NSM_E_MAX));
	/* an unknown error name is not accepted */
	_cleanup_free_ uint8_t *bad = NULL;
	assert_int_equal(hex_decode_alloc("a1654572726f72674e6f7065", &bad, &n), 0);
	assert_int_equal(nsm_response_decode(bad, n, &d), -EBADMSG);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_bytes),
		cmocka_unit_test(test_request_rejects),
		cmocka_unit_test(test_responses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
