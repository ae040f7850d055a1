/* Fuzz the NSM protocol codec: request decoding (what eml-nsm-sim reads from clients) and response decoding
 * (what the client reads from a device). A decoded request re-encodes to bytes that decode to the same
 * request. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
	return al == bl && (!!a == !!b) && (al == 0 || memcmp(a, b, al) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct nsm_request q;
	if (nsm_request_decode(data, size, &q) == 0) {
		uint8_t *enc;
		size_t len;
		if (nsm_request_encode(&q, &enc, &len) < 0) abort();
		struct nsm_request q2;
		if (nsm_request_decode(enc, len, &q2) < 0) abort();
		if (q2.op != q.op || q2.index != q.index || !same(q.data, q.data_len, q2.data, q2.data_len) ||
		    !same(q.user_data, q.user_data_len, q2.user_data, q2.user_data_len) ||
		    !same(q.nonce, q.nonce_len, q2.nonce, q2.nonce_len) ||
		    !same(q.public_key, q.public_key_len, q2.public_key, q2.public_key_len))
			abort();
		nsm_request_done(&q2);
		nsm_request_done(&q);
		free(enc);
	}
	struct nsm_response s;
	if (nsm_response_decode(data, size, &s) == 0) {
		if (s.op == NSM_OP_ERROR && !nsm_error_name(s.error)) abort();
		if ((s.op == NSM_OP_DESCRIBE_PCR || s.op == NSM_OP_EXTEND_PCR) && s.data_len > 64) abort();
		nsm_response_done(&s);
	}
	return 0;
}
