/* audit.c: strict decoder and deterministic encoder of the AUDIT frame payload (see audit.h). */
#include "audit.h"

#include <ctype.h>
#include <stdbool.h>

#include "cbor.h"
#include "macro.h"

static bool model_id_ok(const char *s, size_t n) {
	if (n == 0 || n > AUDIT_MODEL_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e) /* printable ASCII only: it goes into logs */
			return false;
	return true;
}

static bool status_ok(const char *s, size_t n) {
	if (n == 0 || n > AUDIT_STATUS_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(isascii((unsigned char)s[i]) && (isalnum((unsigned char)s[i]) || s[i] == '_')))
			return false;
	return true;
}

int audit_decode(const uint8_t *buf, size_t len, struct audit_record *ret) {
	/* Six keys and six values; nothing nests. */
	const struct ecbor_limits lim = {.max_size = AUDIT_MAX_SIZE, .max_depth = 1, .max_items = 13,
					 .max_string = AUDIT_MODEL_ID_MAX, .deterministic = true};
	_cleanup_cbor_ cbor_item_t *m = NULL;
	struct audit_record r = {0};
	const uint8_t *rs;
	const char *t;
	size_t tl;

	if (!buf)
		return -EBADMSG;
	if (len > AUDIT_MAX_SIZE)
		return -EMSGSIZE;
	int k = ecbor_decode(buf, len, &lim, &m);
	if (k == -ENOMEM)
		return k;
	if (k < 0 || !cbor_isa_map(m) || cbor_map_size(m) != 6)
		return -EBADMSG;
	/* Six entries, no duplicates (the decoder refuses them), all six keys found: no unknown key either. */
	if (ecbor_get_bstr_len(ecbor_map_get_text(m, "receipt_sha256"), sizeof(r.receipt_sha256), &rs) < 0 ||
	    ecbor_map_text_uint(m, "inputs", &r.inputs) < 0 || ecbor_map_text_uint(m, "tokens", &r.tokens) < 0 ||
	    ecbor_map_text_uint(m, "duration_us", &r.duration_us) < 0)
		return -EBADMSG;
	memcpy(r.receipt_sha256, rs, sizeof(r.receipt_sha256));
	if (ecbor_map_text_tstr(m, "model_id", &t, &tl) < 0 || !model_id_ok(t, tl))
		return -EBADMSG;
	memcpy(r.model_id, t, tl);
	if (ecbor_map_text_tstr(m, "status", &t, &tl) < 0 || !status_ok(t, tl))
		return -EBADMSG;
	memcpy(r.status, t, tl);
	*ret = r;
	return 0;
}

static size_t put_text(uint8_t *p, const char *s) {
	size_t l = strlen(s), n = ecbor_write_head(p, 3, l);
	memcpy(p + n, s, l);
	return n + l;
}

int audit_encode(const struct audit_record *r, uint8_t **ret, size_t *ret_len) {
	size_t ml = strnlen(r->model_id, sizeof(r->model_id)), sl = strnlen(r->status, sizeof(r->status));
	if (ml >= sizeof(r->model_id) || sl >= sizeof(r->status) || !model_id_ok(r->model_id, ml) ||
	    !status_ok(r->status, sl))
		return -EINVAL;
	uint8_t *b = malloc(AUDIT_MAX_SIZE), *p = b;
	if (!b)
		return -ENOMEM;
	/* Keys in deterministic order: shorter encodings first, then bytewise. At most ~330 bytes in all. */
	p += ecbor_write_head(p, 5, 6);
	p += put_text(p, "inputs");
	p += ecbor_write_head(p, 0, r->inputs);
	p += put_text(p, "status");
	p += put_text(p, r->status);
	p += put_text(p, "tokens");
	p += ecbor_write_head(p, 0, r->tokens);
	p += put_text(p, "model_id");
	p += put_text(p, r->model_id);
	p += put_text(p, "duration_us");
	p += ecbor_write_head(p, 0, r->duration_us);
	p += put_text(p, "receipt_sha256");
	p += ecbor_write_head(p, 2, sizeof(r->receipt_sha256));
	memcpy(p, r->receipt_sha256, sizeof(r->receipt_sha256));
	p += sizeof(r->receipt_sha256);
	*ret_len = (size_t)(p - b);
	*ret = b;
	return 0;
}
