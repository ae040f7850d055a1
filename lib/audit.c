/* audit.c: AUDIT record codec (see audit.h). */
#include "audit.h"

#include <errno.h>
#include <string.h>

#include "cbor.h"
#include "macro.h"

static bool model_id_ok(const char *s, size_t n) {
	if (n == 0 || n > AUDIT_MODEL_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

static bool status_ok(const char *s, size_t n) {
	if (n == 0 || n > AUDIT_STATUS_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

int audit_encode(const struct audit_record *a, uint8_t **ret, size_t *ret_len) {
	size_t ml = strnlen(a->model_id, sizeof a->model_id), sl = strnlen(a->status, sizeof a->status);
	if (!model_id_ok(a->model_id, ml) || !status_ok(a->status, sl))
		return -EINVAL;
	_cleanup_cbor_ cbor_item_t *m = ecbor_map();
	int r = 0;
	r = r ?: ecbor_map_put(m, ecbor_tstr("receipt_sha256"), ecbor_bstr(a->receipt_sha256, 32));
	r = r ?: ecbor_map_put(m, ecbor_tstr("model_id"), ecbor_tstrn(a->model_id, ml));
	r = r ?: ecbor_map_put(m, ecbor_tstr("inputs"), ecbor_uint(a->inputs));
	r = r ?: ecbor_map_put(m, ecbor_tstr("tokens"), ecbor_uint(a->tokens));
	r = r ?: ecbor_map_put(m, ecbor_tstr("duration_us"), ecbor_uint(a->duration_us));
	r = r ?: ecbor_map_put(m, ecbor_tstr("status"), ecbor_tstrn(a->status, sl));
	if (r < 0)
		return r;
	return ecbor_encode(m, ret, ret_len);
}

int audit_decode(const uint8_t *buf, size_t len, struct audit_record *ret) {
	const struct ecbor_limits lim = {.max_size = AUDIT_MAX, .max_depth = 1, .max_items = 13,
					 .max_string = AUDIT_MODEL_ID_MAX, .deterministic = true};
	_cleanup_cbor_ cbor_item_t *m = NULL;
	struct audit_record a = {0};
	const uint8_t *h;
	const char *s;
	size_t n;

	memset(ret, 0, sizeof *ret);
	int r = ecbor_decode(buf, len, &lim, &m);
	if (r == -ENOMEM)
		return r;
	if (r < 0 || !cbor_isa_map(m) || cbor_map_size(m) != 6)
		return -EBADMSG;
	if (ecbor_map_text_bstr(m, "receipt_sha256", &h, &n) < 0 || n != 32)
		return -EBADMSG;
	memcpy(a.receipt_sha256, h, 32);
	if (ecbor_map_text_tstr(m, "model_id", &s, &n) < 0 || !model_id_ok(s, n))
		return -EBADMSG;
	memcpy(a.model_id, s, n);
	if (ecbor_map_text_tstr(m, "status", &s, &n) < 0 || !status_ok(s, n))
		return -EBADMSG;
	memcpy(a.status, s, n);
	/* Six keys, six distinct names found: nothing unknown can hide among them (duplicates are refused). */
	if (ecbor_map_text_uint(m, "inputs", &a.inputs) < 0 || ecbor_map_text_uint(m, "tokens", &a.tokens) < 0 ||
	    ecbor_map_text_uint(m, "duration_us", &a.duration_us) < 0)
		return -EBADMSG;
	*ret = a;
	return 0;
}
