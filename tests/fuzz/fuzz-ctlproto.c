/* libFuzzer target: the control port's request and reply decoders; what decodes must re-encode and decode to
 * the same values. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"

static int same(const struct ctl_reply *a, const struct ctl_reply *b) {
	return a->ok == b->ok && strcmp(a->error, b->error) == 0 && strcmp(a->message, b->message) == 0 &&
	       a->has_model == b->has_model && strcmp(a->model_id, b->model_id) == 0 &&
	       strcmp(a->version, b->version) == 0 && memcmp(a->manifest_sha256, b->manifest_sha256, 32) == 0 &&
	       a->loads == b->loads && a->load_failures == b->load_failures && a->load_ms == b->load_ms &&
	       strcmp(a->security_mode, b->security_mode) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct ctl_request req, req2;
	uint8_t *buf;
	size_t len;
	if (ctl_request_decode(data, size, &req) == 0) {
		if (ctl_request_encode(&req, &buf, &len) < 0 || ctl_request_decode(buf, len, &req2) < 0 ||
		    req.op != req2.op || req.size != req2.size)
			__builtin_trap();
		free(buf);
	}
	struct ctl_reply rep, rep2;
	if (ctl_reply_decode(data, size, &rep) == 0) {
		if (ctl_reply_encode(&rep, &buf, &len) < 0 || ctl_reply_decode(buf, len, &rep2) < 0 ||
		    !same(&rep, &rep2))
			__builtin_trap();
		free(buf);
	}
	return 0;
}
