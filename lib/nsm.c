/* nsm.c: NSM protocol codec (serde's encoding of the nsm-api enums) and the client (see nsm.h). */
#include "cbor.h"
#include "nsm-transport.h"
#include "nsm.h"
#include "util.h"

static const char *const error_names[_NSM_E_MAX] = {
	[NSM_E_INVALID_ARGUMENT] = "InvalidArgument", [NSM_E_INVALID_INDEX] = "InvalidIndex",
	[NSM_E_INVALID_RESPONSE] = "InvalidResponse", [NSM_E_READ_ONLY_INDEX] = "ReadOnlyIndex",
	[NSM_E_INVALID_OPERATION] = "InvalidOperation", [NSM_E_BUFFER_TOO_SMALL] = "BufferTooSmall",
	[NSM_E_INPUT_TOO_LARGE] = "InputTooLarge", [NSM_E_INTERNAL_ERROR] = "InternalError",
};

const char *nsm_error_name(enum nsm_error e) {
	return (unsigned)e < _NSM_E_MAX ? error_names[e] : NULL;
}

int nsm_error_to_errno(enum nsm_error e) {
	switch (e) {
	case NSM_E_INVALID_ARGUMENT: return -EINVAL;
	case NSM_E_INVALID_INDEX: return -EDOM;
	case NSM_E_INVALID_RESPONSE: return -EBADMSG;
	case NSM_E_READ_ONLY_INDEX: return -EROFS;
	case NSM_E_INVALID_OPERATION: return -EOPNOTSUPP;
	case NSM_E_BUFFER_TOO_SMALL: return -EOVERFLOW;
	case NSM_E_INPUT_TOO_LARGE: return -E2BIG;
	case NSM_E_INTERNAL_ERROR: return -EREMOTEIO;
	default: return -EPROTO;
	}
}

const char *nsm_strerror(int r) {
	for (unsigned e = 1; e < _NSM_E_MAX; e++)
		if (nsm_error_to_errno((enum nsm_error)e) == r) return error_names[e];
	return strerror(r < 0 ? -r : r);
}

/* --- encoding by hand, fields in the Rust declaration order (what serde writes) --------------------- */

struct obuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void ob_raw(struct obuf *b, const void *p, size_t n) {
	if (b->err) return;
	if (b->len + n > b->cap) {
		size_t cap = MAX(b->cap * 2, b->len + n + 64);
		uint8_t *q = realloc(b->p, cap);
		if (!q) {
			b->err = -ENOMEM;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	if (n) memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void ob_head(struct obuf *b, unsigned major, uint64_t v) {
	uint8_t h[9];
	ob_raw(b, h, ecbor_write_head(h, major, v));
}

static void ob_text(struct obuf *b, const char *s) {
	ob_head(b, 3, strlen(s));
	ob_raw(b, s, strlen(s));
}

static void ob_bytes(struct obuf *b, const uint8_t *p, size_t n) {
	ob_head(b, 2, n);
	ob_raw(b, p, n);
}

static void ob_opt_bytes(struct obuf *b, const uint8_t *p, size_t n) {
	if (!p)
		ob_raw(b, "\xf6", 1);
	else
		ob_bytes(b, p, n);
}

/* {"Variant": {n fields follow}} */
static void ob_variant(struct obuf *b, const char *name, unsigned fields) {
	ob_head(b, 5, 1);
	ob_text(b, name);
	ob_head(b, 5, fields);
}

static int ob_finish(struct obuf *b, uint8_t **ret, size_t *ret_len) {
	if (b->err) {
		free(b->p);
		return b->err;
	}
	*ret = b->p;
	*ret_len = b->len;
	return 0;
}

int nsm_request_encode(const struct nsm_request *q, uint8_t **ret, size_t *ret_len) {
	if (!q || !ret || !ret_len) return -EINVAL;
	struct obuf b = {0};
	switch (q->op) {
	case NSM_OP_DESCRIBE_PCR:
	case NSM_OP_LOCK_PCR:
		ob_variant(&b, q->op == NSM_OP_DESCRIBE_PCR ? "DescribePCR" : "LockPCR", 1);
		ob_text(&b, "index");
		ob_head(&b, 0, q->index);
		break;
	case NSM_OP_EXTEND_PCR:
		if (!q->data && q->data_len) return -EINVAL;
		ob_variant(&b, "ExtendPCR", 2);
		ob_text(&b, "index");
		ob_head(&b, 0, q->index);
		ob_text(&b, "data");
		ob_bytes(&b, q->data, q->data_len);
		break;
	case NSM_OP_LOCK_PCRS:
		ob_variant(&b, "LockPCRs", 1);
		ob_text(&b, "range");
		ob_head(&b, 0, q->index);
		break;
	case NSM_OP_DESCRIBE_NSM: ob_text(&b, "DescribeNSM"); break;
	case NSM_OP_GET_RANDOM: ob_text(&b, "GetRandom"); break;
	case NSM_OP_ATTESTATION:
		ob_variant(&b, "Attestation", 3);
		ob_text(&b, "user_data");
		ob_opt_bytes(&b, q->user_data, q->user_data_len);
		ob_text(&b, "nonce");
		ob_opt_bytes(&b, q->nonce, q->nonce_len);
		ob_text(&b, "public_key");
		ob_opt_bytes(&b, q->public_key, q->public_key_len);
		break;
	default: return -EINVAL;
	}
	return ob_finish(&b, ret, ret_len);
}

int nsm_response_encode(const struct nsm_response *s, uint8_t **ret, size_t *ret_len) {
	if (!s || !ret || !ret_len) return -EINVAL;
	struct obuf b = {0};
	switch (s->op) {
	case NSM_OP_DESCRIBE_PCR:
		ob_variant(&b, "DescribePCR", 2);
		ob_text(&b, "lock");
		ob_raw(&b, s->lock ? "\xf5" : "\xf4", 1);
		ob_text(&b, "data");
		ob_bytes(&b, s->data, s->data_len);
		break;
	case NSM_OP_EXTEND_PCR:
		ob_variant(&b, "ExtendPCR", 1);
		ob_text(&b, "data");
		ob_bytes(&b, s->data, s->data_len);
		break;
	case NSM_OP_LOCK_PCR: ob_text(&b, "LockPCR"); break;
	case NSM_OP_LOCK_PCRS: ob_text(&b, "LockPCRs"); break;
	case NSM_OP_DESCRIBE_NSM: {
		const struct nsm_description *d = &s->desc;
		ob_variant(&b, "DescribeNSM", 7);
		ob_text(&b, "version_major");
		ob_head(&b, 0, d->version_major);
		ob_text(&b, "version_minor");
		ob_head(&b, 0, d->version_minor);
		ob_text(&b, "version_patch");
		ob_head(&b, 0, d->version_patch);
		ob_text(&b, "module_id");
		ob_text(&b, d->module_id);
		ob_text(&b, "max_pcrs");
		ob_head(&b, 0, d->max_pcrs);
		ob_text(&b, "locked_pcrs"); /* a BTreeSet: ascending */
		ob_head(&b, 4, (uint64_t)__builtin_popcount(d->locked_mask));
		for (unsigned i = 0; i < 32; i++)
			if (d->locked_mask & (1u << i)) ob_head(&b, 0, i);
		ob_text(&b, "digest");
		ob_text(&b, d->digest[0] ? d->digest : "SHA384");
		break;
	}
	case NSM_OP_ATTESTATION:
		ob_variant(&b, "Attestation", 1);
		ob_text(&b, "document");
		ob_bytes(&b, s->data, s->data_len);
		break;
	case NSM_OP_GET_RANDOM:
		ob_variant(&b, "GetRandom", 1);
		ob_text(&b, "random");
		ob_bytes(&b, s->data, s->data_len);
		break;
	case NSM_OP_ERROR:
		if (!nsm_error_name(s->error)) return -EINVAL;
		ob_head(&b, 5, 1);
		ob_text(&b, "Error");
		ob_text(&b, nsm_error_name(s->error));
		break;
	default: return -EINVAL;
	}
	return ob_finish(&b, ret, ret_len);
}

/* --- decoding --------------------------------------------------------------------------------------- */

static const struct ecbor_limits request_limits = {
	.max_size = NSM_REQUEST_MAX, .max_depth = 3, .max_items = 32, .max_string = NSM_REQUEST_MAX,
};
static const struct ecbor_limits response_limits = {
	.max_size = NSM_RESPONSE_MAX, .max_depth = 3, .max_items = 128, .max_string = NSM_RESPONSE_MAX,
};

/* A one-entry map {"Variant": fields} or a bare text: ret_name/ret_fields (fields NULL for a bare text). */
static int split_variant(const cbor_item_t *top, const char **ret_name, size_t *ret_name_len,
			 const cbor_item_t **ret_fields) {
	if (ecbor_get_tstr(top, ret_name, ret_name_len) == 0) {
		*ret_fields = NULL;
		return 0;
	}
	if (!cbor_isa_map(top) || cbor_map_size(top) != 1) return -EBADMSG;
	struct cbor_pair p = cbor_map_handle(top)[0];
	if (ecbor_get_tstr(p.key, ret_name, ret_name_len) < 0) return -EBADMSG;
	*ret_fields = p.value;
	return 0;
}

/* Decode one message within limits and split its variant (see split_variant). -ENOMEM, or -EBADMSG for anything
 * malformed; on success the caller owns *ret_top, which the name and fields point into. */
static int decode_variant(const uint8_t *buf, size_t len, const struct ecbor_limits *limits, cbor_item_t **ret_top,
			  const char **ret_name, size_t *ret_name_len, const cbor_item_t **ret_fields) {
	cbor_item_t *top = NULL;
	int r = ecbor_decode(buf, len, limits, &top);
	if (r == -ENOMEM) return r;
	if (r < 0) return -EBADMSG;
	r = split_variant(top, ret_name, ret_name_len, ret_fields);
	if (r < 0) {
		cbor_decref(&top);
		return r;
	}
	*ret_top = top;
	return 0;
}

static bool name_is(const char *n, size_t len, const char *want) {
	return strlen(want) == len && memcmp(n, want, len) == 0;
}

/* fields must be a map whose keys are all among allowed (count given); every key is text. */
static int check_fields(const cbor_item_t *fields, const char *const *allowed, size_t n_allowed) {
	if (!fields || !cbor_isa_map(fields) || cbor_map_size(fields) > n_allowed) return -EBADMSG;
	for (size_t i = 0; i < cbor_map_size(fields); i++) {
		bool ok = false;
		for (size_t k = 0; k < n_allowed && !ok; k++) ok = ecbor_tstr_equal(cbor_map_handle(fields)[i].key, allowed[k]);
		if (!ok) return -EBADMSG;
	}
	return 0;
}

static int field_u16(const cbor_item_t *fields, const char *name, uint16_t *ret) {
	uint64_t v;
	if (ecbor_get_uint(ecbor_map_get_text(fields, name), &v) < 0 || v > UINT16_MAX) return -EBADMSG;
	*ret = (uint16_t)v;
	return 0;
}

/* Option<ByteBuf>: absent or null = None. */
static int field_opt_bytes(const cbor_item_t *fields, const char *name, const uint8_t **ret, size_t *ret_len) {
	const cbor_item_t *it = ecbor_map_get_text(fields, name);
	*ret = NULL;
	*ret_len = 0;
	if (!it || ecbor_is_null(it)) return 0;
	if (ecbor_get_bstr(it, ret, ret_len) < 0) return -EBADMSG;
	if (!*ret) *ret = (const uint8_t *)""; /* present but empty */
	return 0;
}

void nsm_request_done(struct nsm_request *q) {
	if (!q) return;
	cbor_item_t *it = q->_item;
	if (it) cbor_decref(&it);
	q->_item = NULL;
}

int nsm_request_decode(const uint8_t *buf, size_t len, struct nsm_request *ret) {
	if (!buf || !ret) return -EINVAL;
	cbor_item_t *top = NULL;
	const char *name;
	size_t nl;
	const cbor_item_t *f;
	int r = decode_variant(buf, len, &request_limits, &top, &name, &nl, &f);
	if (r < 0) return r;
	struct nsm_request q = {._item = top};
	r = -EBADMSG;
	if (!f) {
		if (name_is(name, nl, "DescribeNSM"))
			q.op = NSM_OP_DESCRIBE_NSM;
		else if (name_is(name, nl, "GetRandom"))
			q.op = NSM_OP_GET_RANDOM;
		else
			goto fail;
	} else if (name_is(name, nl, "DescribePCR") || name_is(name, nl, "LockPCR")) {
		static const char *const k[] = {"index"};
		q.op = name_is(name, nl, "LockPCR") ? NSM_OP_LOCK_PCR : NSM_OP_DESCRIBE_PCR;
		if (check_fields(f, k, 1) < 0 || field_u16(f, "index", &q.index) < 0) goto fail;
	} else if (name_is(name, nl, "LockPCRs")) {
		static const char *const k[] = {"range"};
		q.op = NSM_OP_LOCK_PCRS;
		if (check_fields(f, k, 1) < 0 || field_u16(f, "range", &q.index) < 0) goto fail;
	} else if (name_is(name, nl, "ExtendPCR")) {
		static const char *const k[] = {"index", "data"};
		q.op = NSM_OP_EXTEND_PCR;
		if (check_fields(f, k, 2) < 0 || field_u16(f, "index", &q.index) < 0 ||
		    ecbor_get_bstr(ecbor_map_get_text(f, "data"), &q.data, &q.data_len) < 0)
			goto fail;
	} else if (name_is(name, nl, "Attestation")) {
		static const char *const k[] = {"user_data", "nonce", "public_key"};
		q.op = NSM_OP_ATTESTATION;
		if (check_fields(f, k, 3) < 0 ||
		    field_opt_bytes(f, "user_data", &q.user_data, &q.user_data_len) < 0 ||
		    field_opt_bytes(f, "nonce", &q.nonce, &q.nonce_len) < 0 ||
		    field_opt_bytes(f, "public_key", &q.public_key, &q.public_key_len) < 0)
			goto fail;
	} else
		goto fail;
	*ret = q;
	return 0;
fail:
	cbor_decref(&top);
	return r;
}

void nsm_response_done(struct nsm_response *s) {
	if (!s) return;
	cbor_item_t *it = s->_item;
	if (it) cbor_decref(&it);
	s->_item = NULL;
}

static int decode_description(const cbor_item_t *f, struct nsm_description *d) {
	static const char *const k[] = {"version_major", "version_minor", "version_patch", "module_id",
					"max_pcrs",      "locked_pcrs",   "digest"};
	const char *s;
	size_t n;
	if (check_fields(f, k, 7) < 0 || cbor_map_size(f) != 7) return -EBADMSG;
	if (field_u16(f, "version_major", &d->version_major) < 0 || field_u16(f, "version_minor", &d->version_minor) < 0 ||
	    field_u16(f, "version_patch", &d->version_patch) < 0 || field_u16(f, "max_pcrs", &d->max_pcrs) < 0)
		return -EBADMSG;
	if (ecbor_get_tstr(ecbor_map_get_text(f, "module_id"), &s, &n) < 0 || n > NSM_MODULE_ID_MAX || memchr(s, 0, n))
		return -EBADMSG;
	memcpy(d->module_id, s, n);
	d->module_id[n] = 0;
	if (ecbor_get_tstr(ecbor_map_get_text(f, "digest"), &s, &n) < 0 || n >= sizeof d->digest) return -EBADMSG;
	memcpy(d->digest, s, n);
	d->digest[n] = 0;
	const cbor_item_t *l = ecbor_map_get_text(f, "locked_pcrs");
	if (!cbor_isa_array(l) || cbor_array_size(l) > 32) return -EBADMSG;
	for (size_t i = 0; i < cbor_array_size(l); i++) {
		uint64_t v;
		if (ecbor_get_uint(cbor_array_handle(l)[i], &v) < 0 || v >= 32) return -EBADMSG;
		d->locked_mask |= 1u << v;
	}
	return 0;
}

int nsm_response_decode(const uint8_t *buf, size_t len, struct nsm_response *ret) {
	if (!buf || !ret) return -EINVAL;
	cbor_item_t *top = NULL;
	const char *name;
	size_t nl;
	const cbor_item_t *f;
	int r = decode_variant(buf, len, &response_limits, &top, &name, &nl, &f);
	if (r < 0) return r;
	struct nsm_response s = {._item = top};
	r = -EBADMSG;
	if (!f) {
		if (name_is(name, nl, "LockPCR"))
			s.op = NSM_OP_LOCK_PCR;
		else if (name_is(name, nl, "LockPCRs"))
			s.op = NSM_OP_LOCK_PCRS;
		else
			goto fail;
	} else if (name_is(name, nl, "Error")) {
		const char *e;
		size_t el;
		s.op = NSM_OP_ERROR;
		if (ecbor_get_tstr(f, &e, &el) < 0) goto fail;
		for (unsigned i = 1; i < _NSM_E_MAX; i++)
			if (name_is(e, el, error_names[i])) s.error = (enum nsm_error)i;
		if (!s.error) goto fail;
	} else if (name_is(name, nl, "DescribePCR")) {
		static const char *const k[] = {"lock", "data"};
		s.op = NSM_OP_DESCRIBE_PCR;
		if (check_fields(f, k, 2) < 0 || ecbor_get_bool(ecbor_map_get_text(f, "lock"), &s.lock) < 0 ||
		    ecbor_get_bstr(ecbor_map_get_text(f, "data"), &s.data, &s.data_len) < 0 || s.data_len > 64)
			goto fail;
	} else if (name_is(name, nl, "ExtendPCR")) {
		static const char *const k[] = {"data"};
		s.op = NSM_OP_EXTEND_PCR;
		if (check_fields(f, k, 1) < 0 || ecbor_get_bstr(ecbor_map_get_text(f, "data"), &s.data, &s.data_len) < 0 ||
		    s.data_len > 64)
			goto fail;
	} else if (name_is(name, nl, "GetRandom") || name_is(name, nl, "Attestation")) {
		bool rnd = name_is(name, nl, "GetRandom");
		const char *const k[] = {rnd ? "random" : "document"};
		s.op = rnd ? NSM_OP_GET_RANDOM : NSM_OP_ATTESTATION;
		if (check_fields(f, k, 1) < 0 || ecbor_get_bstr(ecbor_map_get_text(f, k[0]), &s.data, &s.data_len) < 0 ||
		    s.data_len == 0)
			goto fail;
	} else if (name_is(name, nl, "DescribeNSM")) {
		s.op = NSM_OP_DESCRIBE_NSM;
		if (decode_description(f, &s.desc) < 0) goto fail;
	} else
		goto fail;
	*ret = s;
	return 0;
fail:
	cbor_decref(&top);
	return r;
}

/* --- client ----------------------------------------------------------------------------------------- */

struct Nsm {
	NsmTransport *t;
	uint8_t resp[NSM_RESPONSE_MAX];
};

int nsm_open(const char *device, Nsm **ret) {
	if (!ret) return -EINVAL;
	Nsm *n = calloc(1, sizeof *n);
	if (!n) return -ENOMEM;
	int r = nsm_transport_open(device, &n->t);
	if (r < 0) {
		free(n);
		return r;
	}
	*ret = n;
	return 0;
}

Nsm *nsm_close(Nsm *n) {
	if (!n) return NULL;
	nsm_transport_free(n->t);
	/* responses may hold random bytes meant as key material */
	wipe(n->resp, sizeof n->resp);
	free(n);
	return NULL;
}

/* Send q, decode the answer, map an Error variant, require the expected variant. */
static int call(Nsm *n, const struct nsm_request *q, struct nsm_response *ret) {
	_cleanup_free_ uint8_t *req = NULL;
	size_t req_len, resp_len;
	int r = nsm_request_encode(q, &req, &req_len);
	if (r < 0) return r;
	r = nsm_transport_call(n->t, req, req_len, n->resp, sizeof n->resp, &resp_len);
	if (r < 0) return r;
	r = nsm_response_decode(n->resp, resp_len, ret);
	if (r < 0) return r;
	if (ret->op == NSM_OP_ERROR) {
		r = nsm_error_to_errno(ret->error);
		nsm_response_done(ret);
		return r;
	}
	if (ret->op != q->op) {
		nsm_response_done(ret);
		return -EBADMSG;
	}
	return 0;
}

int nsm_get_random(Nsm *n, uint8_t *buf, size_t max, size_t *ret_len) {
	if (!n || !buf || !ret_len) return -EINVAL;
	struct nsm_request q = {.op = NSM_OP_GET_RANDOM};
	struct nsm_response s;
	int r = call(n, &q, &s);
	if (r < 0) return r;
	size_t k = MIN(max, s.data_len);
	memcpy(buf, s.data, k);
	*ret_len = k;
	wipe((void *)s.data, s.data_len);
	nsm_response_done(&s);
	return 0;
}

int nsm_describe(Nsm *n, struct nsm_description *ret) {
	if (!n || !ret) return -EINVAL;
	struct nsm_request q = {.op = NSM_OP_DESCRIBE_NSM};
	struct nsm_response s;
	int r = call(n, &q, &s);
	if (r < 0) return r;
	*ret = s.desc;
	nsm_response_done(&s);
	return 0;
}

static int pcr_call(Nsm *n, const struct nsm_request *q, bool *ret_locked, uint8_t value[64], size_t *ret_len) {
	struct nsm_response s;
	int r = call(n, q, &s);
	if (r < 0) return r;
	if (ret_locked) *ret_locked = s.lock;
	if (value) memcpy(value, s.data, s.data_len);
	if (ret_len) *ret_len = s.data_len;
	nsm_response_done(&s);
	return 0;
}

int nsm_describe_pcr(Nsm *n, uint16_t index, bool *ret_locked, uint8_t value[64], size_t *ret_len) {
	if (!n) return -EINVAL;
	struct nsm_request q = {.op = NSM_OP_DESCRIBE_PCR, .index = index};
	return pcr_call(n, &q, ret_locked, value, ret_len);
}

int nsm_extend_pcr(Nsm *n, uint16_t index, const uint8_t *data, size_t len, uint8_t value[64], size_t *ret_len) {
	if (!n || (!data && len)) return -EINVAL;
	struct nsm_request q = {.op = NSM_OP_EXTEND_PCR, .index = index, .data = data, .data_len = len};
	return pcr_call(n, &q, NULL, value, ret_len);
}

int nsm_lock_pcr(Nsm *n, uint16_t index) {
	if (!n) return -EINVAL;
	struct nsm_request q = {.op = NSM_OP_LOCK_PCR, .index = index};
	struct nsm_response s;
	int r = call(n, &q, &s);
	if (r == 0) nsm_response_done(&s);
	return r;
}

int nsm_lock_pcrs(Nsm *n, uint16_t range) {
	if (!n) return -EINVAL;
	struct nsm_request q = {.op = NSM_OP_LOCK_PCRS, .index = range};
	struct nsm_response s;
	int r = call(n, &q, &s);
	if (r == 0) nsm_response_done(&s);
	return r;
}

int nsm_attestation(Nsm *n, const uint8_t *user_data, size_t user_data_len, const uint8_t *nonce,
		    size_t nonce_len, const uint8_t *public_key, size_t public_key_len, uint8_t **ret_doc,
		    size_t *ret_len) {
	if (!n || !ret_doc || !ret_len) return -EINVAL;
	struct nsm_request q = {.op = NSM_OP_ATTESTATION,
				.user_data = user_data, .user_data_len = user_data_len,
				.nonce = nonce, .nonce_len = nonce_len,
				.public_key = public_key, .public_key_len = public_key_len};
	struct nsm_response s;
	int r = call(n, &q, &s);
	if (r < 0) return r;
	uint8_t *d = malloc(s.data_len);
	if (!d) {
		nsm_response_done(&s);
		return -ENOMEM;
	}
	memcpy(d, s.data, s.data_len);
	*ret_doc = d;
	*ret_len = s.data_len;
	nsm_response_done(&s);
	return 0;
}
