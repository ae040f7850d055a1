/* audit.c: strict decoder and deterministic encoder of the AUDIT frame payload (see audit.h). */
#include "audit.h"

#include <cbor/callbacks.h>
#include <cbor/streaming.h>
#include <stdbool.h>

#include "macro.h"

enum ev_kind { EV_NONE, EV_UINT, EV_BSTR, EV_TSTR, EV_MAP, EV_NULL, EV_OTHER };

struct ev {
	enum ev_kind kind;
	uint64_t u;          /* EV_UINT value, EV_MAP size */
	const uint8_t *data; /* EV_BSTR/EV_TSTR */
	size_t len;
};

static void on_u8(void *c, uint8_t v) { *(struct ev *)c = (struct ev){.kind = EV_UINT, .u = v}; }
static void on_u16(void *c, uint16_t v) { *(struct ev *)c = (struct ev){.kind = EV_UINT, .u = v}; }
static void on_u32(void *c, uint32_t v) { *(struct ev *)c = (struct ev){.kind = EV_UINT, .u = v}; }
static void on_u64(void *c, uint64_t v) { *(struct ev *)c = (struct ev){.kind = EV_UINT, .u = v}; }
static void on_bstr(void *c, cbor_data d, size_t l) { *(struct ev *)c = (struct ev){.kind = EV_BSTR, .data = d, .len = l}; }
static void on_tstr(void *c, cbor_data d, size_t l) { *(struct ev *)c = (struct ev){.kind = EV_TSTR, .data = d, .len = l}; }
static void on_map(void *c, size_t n) { *(struct ev *)c = (struct ev){.kind = EV_MAP, .u = n}; }
static void on_null(void *c) { *(struct ev *)c = (struct ev){.kind = EV_NULL}; }
/* Everything else (negative ints, floats, tags, arrays, indefinite items, booleans) is refused. */
static void on_other(void *c) { *(struct ev *)c = (struct ev){.kind = EV_OTHER}; }
static void on_other_coll(void *c, size_t n) { on_other(c); }
static void on_other_u8(void *c, uint8_t v) { on_other(c); }
static void on_other_u16(void *c, uint16_t v) { on_other(c); }
static void on_other_u32(void *c, uint32_t v) { on_other(c); }
static void on_other_u64(void *c, uint64_t v) { on_other(c); }
static void on_other_f(void *c, float v) { on_other(c); }
static void on_other_d(void *c, double v) { on_other(c); }
static void on_other_b(void *c, bool v) { on_other(c); }

static const struct cbor_callbacks callbacks = {
	.uint8 = on_u8, .uint16 = on_u16, .uint32 = on_u32, .uint64 = on_u64,
	.negint8 = on_other_u8, .negint16 = on_other_u16, .negint32 = on_other_u32, .negint64 = on_other_u64,
	.byte_string_start = on_other, .byte_string = on_bstr,
	.string = on_tstr, .string_start = on_other,
	.indef_array_start = on_other, .array_start = on_other_coll,
	.indef_map_start = on_other, .map_start = on_map,
	.tag = on_other_u64,
	.float2 = on_other_f, .float4 = on_other_f, .float8 = on_other_d,
	.undefined = on_other, .null = on_null, .boolean = on_other_b, .indef_break = on_other,
};

/* Decode the next item head at *off into ev. */
static int next_item(const uint8_t *buf, size_t len, size_t *off, struct ev *ev) {
	*ev = (struct ev){.kind = EV_NONE};
	if (*off >= len)
		return -EBADMSG;
	struct cbor_decoder_result r = cbor_stream_decode(buf + *off, len - *off, &callbacks, ev);
	if (r.status != CBOR_DECODER_FINISHED || r.read == 0 || ev->kind == EV_NONE || ev->kind == EV_OTHER)
		return -EBADMSG;
	*off += r.read;
	return 0;
}

static int copy_text(const struct ev *ev, char *out, size_t max) {
	if (ev->kind != EV_TSTR || ev->len > max)
		return -EBADMSG;
	for (size_t i = 0; i < ev->len; i++)
		if (ev->data[i] < 0x20 || ev->data[i] > 0x7e) /* printable ASCII only: it goes into logs */
			return -EBADMSG;
	memcpy(out, ev->data, ev->len);
	out[ev->len] = 0;
	return 0;
}

static const char *const keys[] = {"receipt_sha256", "model_id", "inputs", "tokens", "duration_us", "status"};

int audit_decode(const uint8_t *buf, size_t len, struct audit_record *ret) {
	struct audit_record r = {0};
	struct ev ev;
	size_t off = 0;
	unsigned seen = 0;
	int k;

	if (!buf || len > AUDIT_MAX_SIZE)
		return len > AUDIT_MAX_SIZE ? -EMSGSIZE : -EBADMSG;
	if (next_item(buf, len, &off, &ev) < 0 || ev.kind != EV_MAP || ev.u != ARRAY_SIZE(keys))
		return -EBADMSG;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (next_item(buf, len, &off, &ev) < 0 || ev.kind != EV_TSTR)
			return -EBADMSG;
		for (k = 0; k < (int)ARRAY_SIZE(keys); k++)
			if (strlen(keys[k]) == ev.len && memcmp(keys[k], ev.data, ev.len) == 0)
				break;
		if (k == (int)ARRAY_SIZE(keys) || (seen & (1u << k)))
			return -EBADMSG;
		seen |= 1u << k;
		if (next_item(buf, len, &off, &ev) < 0)
			return -EBADMSG;
		switch (k) {
		case 0:
			if (ev.kind != EV_BSTR || ev.len != sizeof(r.receipt_sha256))
				return -EBADMSG;
			memcpy(r.receipt_sha256, ev.data, ev.len);
			break;
		case 1:
			if (ev.kind == EV_NULL)
				r.model_id[0] = 0;
			else if (copy_text(&ev, r.model_id, AUDIT_MODEL_ID_MAX) < 0)
				return -EBADMSG;
			break;
		case 2: case 3: case 4:
			if (ev.kind != EV_UINT)
				return -EBADMSG;
			*(k == 2 ? &r.inputs : k == 3 ? &r.tokens : &r.duration_us) = ev.u;
			break;
		case 5:
			if (copy_text(&ev, r.status, AUDIT_STATUS_MAX) < 0)
				return -EBADMSG;
			break;
		}
	}
	if (off != len)
		return -EBADMSG;
	*ret = r;
	return 0;
}

/* CBOR head with the shortest argument (RFC 8949 4.2.1). */
static size_t put_head(uint8_t *p, uint8_t major, uint64_t v) {
	major <<= 5;
	if (v < 24) {
		p[0] = major | (uint8_t)v;
		return 1;
	}
	int n = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
	p[0] = major | (n == 1 ? 24 : n == 2 ? 25 : n == 4 ? 26 : 27);
	for (int i = 0; i < n; i++)
		p[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	return 1 + (size_t)n;
}

static size_t put_text(uint8_t *p, const char *s) {
	size_t l = strlen(s), n = put_head(p, 3, l);
	memcpy(p + n, s, l);
	return n + l;
}

int audit_encode(const struct audit_record *r, uint8_t **ret, size_t *ret_len) {
	size_t ml = strnlen(r->model_id, sizeof(r->model_id)), sl = strnlen(r->status, sizeof(r->status));
	if (ml > AUDIT_MODEL_ID_MAX || sl > AUDIT_STATUS_MAX)
		return -EINVAL;
	uint8_t *b = malloc(AUDIT_MAX_SIZE), *p = b;
	if (!b)
		return -ENOMEM;
	/* Keys in deterministic order: shorter encodings first, then bytewise. */
	p += put_head(p, 5, 6);
	p += put_text(p, "inputs");
	p += put_head(p, 0, r->inputs);
	p += put_text(p, "status");
	p += put_text(p, r->status);
	p += put_text(p, "tokens");
	p += put_head(p, 0, r->tokens);
	p += put_text(p, "model_id");
	if (ml == 0)
		*p++ = 0xf6; /* null */
	else
		p += put_text(p, r->model_id);
	p += put_text(p, "duration_us");
	p += put_head(p, 0, r->duration_us);
	p += put_text(p, "receipt_sha256");
	p += put_head(p, 2, sizeof(r->receipt_sha256));
	memcpy(p, r->receipt_sha256, sizeof(r->receipt_sha256));
	p += sizeof(r->receipt_sha256);
	*ret_len = (size_t)(p - b);
	*ret = b;
	return 0;
}
