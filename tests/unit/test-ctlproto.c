/* Tests for ctlproto.c: request and reply round trips, strict request decoding (unknown ops and keys, sizes),
 * reply decoding of hand-built CBOR (RFC 8949 bytes written out here, not produced by our encoder). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ctlproto.h"
#include "macro.h"
#include "util.h"

static void test_requests(void **state) {
	uint8_t *buf;
	size_t len;
	struct ctl_request req;
	assert_int_equal(ctl_request_encode(&(struct ctl_request){.op = CTL_OP_STATUS}, &buf, &len), 0);
	/* {"op": "status"} */
	static const uint8_t status[] = {0xa1, 0x62, 'o', 'p', 0x66, 's', 't', 'a', 't', 'u', 's'};
	assert_int_equal(len, sizeof status);
	assert_memory_equal(buf, status, len);
	free(buf);
	assert_int_equal(ctl_request_decode(status, sizeof status, &req), 0);
	assert_int_equal(req.op, CTL_OP_STATUS);

	assert_int_equal(ctl_request_encode(&(struct ctl_request){.op = CTL_OP_LOAD, .size = 1000000}, &buf, &len), 0);
	assert_int_equal(ctl_request_decode(buf, len, &req), 0);
	assert_int_equal(req.op, CTL_OP_LOAD);
	assert_int_equal(req.size, 1000000);
	free(buf);
	assert_int_equal(ctl_request_encode(&(struct ctl_request){.op = CTL_OP_LOAD, .size = 0}, &buf, &len), -E2BIG);

	/* {"op": "load"} without size; {"op": "load", "size": 0}; size above the cap; an extra key; unknown op;
	 * not a map; trailing bytes. */
	static const uint8_t no_size[] = {0xa1, 0x62, 'o', 'p', 0x64, 'l', 'o', 'a', 'd'};
	static const uint8_t zero[] = {0xa2, 0x62, 'o', 'p', 0x64, 'l', 'o', 'a', 'd', 0x64, 's', 'i', 'z', 'e', 0x00};
	static const uint8_t huge[] = {0xa2, 0x62, 'o', 'p', 0x64, 'l', 'o', 'a', 'd', 0x64, 's', 'i', 'z', 'e',
				       0x1b, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00};
	static const uint8_t extra[] = {0xa2, 0x62, 'o', 'p', 0x66, 's', 't', 'a', 't', 'u', 's', 0x61, 'x', 0x01};
	static const uint8_t unknown[] = {0xa1, 0x62, 'o', 'p', 0x64, 'e', 'x', 'e', 'c'};
	static const uint8_t array[] = {0x81, 0x01};
	static const uint8_t trailing[] = {0xa1, 0x62, 'o', 'p', 0x66, 's', 't', 'a', 't', 'u', 's', 0x00};
	assert_int_equal(ctl_request_decode(no_size, sizeof no_size, &req), -EBADMSG);
	assert_int_equal(ctl_request_decode(zero, sizeof zero, &req), -EBADMSG);
	assert_int_equal(ctl_request_decode(huge, sizeof huge, &req), -E2BIG);
	assert_int_equal(ctl_request_decode(extra, sizeof extra, &req), -EBADMSG);
	assert_int_equal(ctl_request_decode(unknown, sizeof unknown, &req), -EBADMSG);
	assert_int_equal(ctl_request_decode(array, sizeof array, &req), -EBADMSG);
	assert_int_equal(ctl_request_decode(trailing, sizeof trailing, &req), -EBADMSG);
	uint8_t big[CTL_MAX_REQUEST + 1] = {0};
	assert_int_equal(ctl_request_decode(big, sizeof big, &req), -E2BIG);
}

static void test_replies(void **state) {
	struct ctl_reply rep = {.ok = false, .has_model = true, .loads = 3, .load_failures = 2, .load_ms = 120};
	snprintf(rep.error, sizeof rep.error, "%s", CTL_E_ACCESS_DENIED);
	snprintf(rep.message, sizeof rep.message, "AccessDeniedException: no");
	snprintf(rep.model_id, sizeof rep.model_id, "m");
	snprintf(rep.version, sizeof rep.version, "7");
	memset(rep.manifest_sha256, 0xab, 32);
	snprintf(rep.security_mode, sizeof rep.security_mode, "evaluation");
	uint8_t *buf;
	size_t len;
	assert_int_equal(ctl_reply_encode(&rep, &buf, &len), 0);
	struct ctl_reply back;
	assert_int_equal(ctl_reply_decode(buf, len, &back), 0);
	free(buf);
	assert_false(back.ok);
	assert_string_equal(back.error, "AccessDenied");
	assert_string_equal(back.message, "AccessDeniedException: no");
	assert_true(back.has_model);
	assert_string_equal(back.model_id, "m");
	assert_string_equal(back.version, "7");
	assert_memory_equal(back.manifest_sha256, rep.manifest_sha256, 32);
	assert_int_equal(back.loads, 3);
	assert_int_equal(back.load_failures, 2);
	assert_int_equal(back.load_ms, 120);
	assert_string_equal(back.security_mode, "evaluation");

	/* {"ok": true, "model": null, "loads": 0, "load_ms": 0, "load_failures": 0, "security_mode": "a\nb"}:
	 * the control character is neutralised. */
	static const uint8_t hand[] = {
		0xa6, 0x62, 'o', 'k', 0xf5, 0x65, 'm', 'o', 'd', 'e', 'l', 0xf6, 0x65, 'l', 'o', 'a', 'd', 's', 0x00,
		0x67, 'l', 'o', 'a', 'd', '_', 'm', 's', 0x00, 0x6d, 'l', 'o', 'a', 'd', '_', 'f', 'a', 'i', 'l',
		'u', 'r', 'e', 's', 0x00, 0x6d, 's', 'e', 'c', 'u', 'r', 'i', 't', 'y', '_', 'm', 'o', 'd', 'e',
		0x63, 'a', '\n', 'b'};
	assert_int_equal(ctl_reply_decode(hand, sizeof hand, &back), 0);
	assert_true(back.ok);
	assert_false(back.has_model);
	assert_string_equal(back.security_mode, "a?b");
	/* ok false needs error and message. */
	uint8_t bad[sizeof hand];
	memcpy(bad, hand, sizeof hand);
	bad[4] = 0xf4;
	assert_int_equal(ctl_reply_decode(bad, sizeof bad, &back), -EBADMSG);
	assert_int_equal(ctl_reply_decode(hand, sizeof hand - 1, &back), -EBADMSG);
	/* A float where a bool or null belongs (found by fuzz-ctlproto: libcbor asserted). */
	static const uint8_t float_ok[] = {0xa1, 0x62, 'o', 'k', 0xfa, 0xfa, 0x65, 0x3a, 0x73};
	assert_int_equal(ctl_reply_decode(float_ok, sizeof float_ok, &back), -EBADMSG);
	uint8_t float_model[sizeof hand + 2]; /* "model": 1.5 (f9 3e00) instead of null */
	memcpy(float_model, hand, 11);
	float_model[11] = 0xf9, float_model[12] = 0x3e, float_model[13] = 0x00;
	memcpy(float_model + 14, hand + 12, sizeof hand - 12);
	assert_int_equal(ctl_reply_decode(float_model, sizeof float_model, &back), -EBADMSG);
}

int main(void) {
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_requests), cmocka_unit_test(test_replies)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
