/* attest.c: NSM attestation document parsing and verification, and the interim JSON policy (attest.h). */
#include <json-c/json.h>
#include <stdarg.h>

#include "attest.h"
#include "cbor.h"
#include "cose.h"
#include "json-hex.h"
#include "util.h"

static const char *const error_names[_ATTEST_ERROR_MAX] = {
	[ATTEST_OK] = "OK",
	[ATTEST_BAD_STRUCTURE] = "BAD_STRUCTURE",
	[ATTEST_BAD_ALG] = "BAD_ALG",
	[ATTEST_UNKNOWN_ROOT] = "UNKNOWN_ROOT",
	[ATTEST_CHAIN] = "CHAIN",
	[ATTEST_EXPIRED] = "EXPIRED",
	[ATTEST_SIGNATURE] = "SIGNATURE",
	[ATTEST_STALE] = "STALE",
	[ATTEST_NONCE_MISMATCH] = "NONCE_MISMATCH",
	[ATTEST_PCR_NOT_ALLOWED] = "PCR_NOT_ALLOWED",
	[ATTEST_INTERNAL] = "INTERNAL",
};

const char *attest_error_name(AttestError e) {
	if ((unsigned)e >= _ATTEST_ERROR_MAX) return "INTERNAL";
	return error_names[e];
}

_printf_(5, 6) static int reject(AttestError code, AttestError *ret_error, char *reason, size_t size,
				 const char *fmt, ...) {
	va_list ap;
	if (ret_error) *ret_error = code;
	va_start(ap, fmt);
	verrorf(0, reason, size, fmt, ap);
	va_end(ap);
	return code == ATTEST_INTERNAL ? -ENOMEM : code == ATTEST_BAD_STRUCTURE || code == ATTEST_BAD_ALG ? -EBADMSG : -EPERM;
}

AttestDoc *attest_doc_free(AttestDoc *d) {
	if (!d) return NULL;
	free(d->module_id);
	cose_sign1_free(d->_cose);
	cbor_item_t *pl = d->_payload;
	if (pl) cbor_decref(&pl);
	free(d);
	return NULL;
}

static const struct ecbor_limits payload_limits = {
	.max_size = ATTEST_DOC_MAX, .max_depth = 3, .max_items = 256, .max_string = X509_CHAIN_MAX_CERT,
};

/* bstr or null (or absent: item NULL); size within [min, max]. */
static int optional_bstr(const cbor_item_t *it, size_t min, size_t max, const uint8_t **ret, size_t *ret_len) {
	*ret = NULL;
	*ret_len = 0;
	if (!it || ecbor_is_null(it)) return 0;
	const uint8_t *p;
	size_t n;
	if (ecbor_get_bstr(it, &p, &n) < 0 || n < min || n > max) return -EBADMSG;
	/* a zero-length value is still "present": give it a non-NULL pointer */
	*ret = p ? p : (const uint8_t *)"";
	*ret_len = n;
	return 0;
}

int attest_parse(const uint8_t *doc, size_t len, AttestDoc **ret, AttestError *ret_error, char *reason,
		 size_t reason_size) {
#define BAD(...) reject(ATTEST_BAD_STRUCTURE, ret_error, reason, reason_size, __VA_ARGS__)
	if (!ret) return -EINVAL;
	if (!doc || len == 0 || len > ATTEST_DOC_MAX) return BAD("document is empty or larger than %u bytes", ATTEST_DOC_MAX);
	_cleanup_attest_doc_ AttestDoc *d = calloc(1, sizeof *d);
	if (!d) return reject(ATTEST_INTERNAL, ret_error, reason, reason_size, "out of memory");
	CoseSign1 *m = NULL;
	int r = cose_sign1_decode(doc, len, &m);
	if (r == -ENOMEM) return reject(ATTEST_INTERNAL, ret_error, reason, reason_size, "out of memory");
	if (r == -EPROTONOSUPPORT)
		return reject(ATTEST_BAD_ALG, ret_error, reason, reason_size, "protected header alg is not ES384");
	if (r == -EOPNOTSUPP) return BAD("unknown critical header");
	if (r < 0) return BAD("not a COSE_Sign1 message");
	d->_cose = m;
	if (m->alg != COSE_ALG_ES384)
		return reject(ATTEST_BAD_ALG, ret_error, reason, reason_size, "protected header alg is not ES384");
	if (!m->payload) return BAD("payload is nil");

	cbor_item_t *pl = NULL;
	r = ecbor_decode(m->payload, m->payload_len, &payload_limits, &pl);
	if (r == -ENOMEM) return reject(ATTEST_INTERNAL, ret_error, reason, reason_size, "out of memory");
	if (r < 0) return BAD("payload is not valid CBOR: %s", ecbor_strerror(r));
	d->_payload = pl;
	if (!cbor_isa_map(pl)) return BAD("payload is not a map");

	enum { F_MODULE_ID, F_DIGEST, F_TIMESTAMP, F_PCRS, F_CERTIFICATE, F_CABUNDLE, F_PUBLIC_KEY, F_USER_DATA, F_NONCE, F_MAX };
	static const char *const names[F_MAX] = {"module_id", "digest", "timestamp", "pcrs", "certificate",
						 "cabundle", "public_key", "user_data", "nonce"};
	const cbor_item_t *field[F_MAX] = {0};
	struct cbor_pair *pairs = cbor_map_handle(pl);
	for (size_t i = 0; i < cbor_map_size(pl); i++) {
		size_t f;
		for (f = 0; f < F_MAX; f++)
			if (ecbor_tstr_equal(pairs[i].key, names[f])) break;
		if (f == F_MAX) return BAD("unknown field in the payload");
		field[f] = pairs[i].value; /* duplicates were refused by the decoder */
	}
	for (size_t f = 0; f <= F_CABUNDLE; f++)
		if (!field[f]) return BAD("payload lacks %s", names[f]);

	const char *s;
	size_t n;
	if (ecbor_get_tstr(field[F_MODULE_ID], &s, &n) < 0 || n == 0 || n > ATTEST_MODULE_ID_MAX ||
	    memchr(s, 0, n))
		return BAD("module_id is not a text of 1..%u bytes", ATTEST_MODULE_ID_MAX);
	d->module_id = strndup(s, n);
	if (!d->module_id) return reject(ATTEST_INTERNAL, ret_error, reason, reason_size, "out of memory");
	if (!ecbor_tstr_equal(field[F_DIGEST], "SHA384")) return BAD("digest is not SHA384");
	strcpy(d->digest, "SHA384");
	if (ecbor_get_uint(field[F_TIMESTAMP], &d->timestamp_ms) < 0 || d->timestamp_ms == 0)
		return BAD("timestamp is not a positive integer");

	const cbor_item_t *pcrs = field[F_PCRS];
	if (!cbor_isa_map(pcrs) || cbor_map_size(pcrs) == 0 || cbor_map_size(pcrs) > ATTEST_PCR_COUNT)
		return BAD("pcrs is not a map of 1..%u entries", ATTEST_PCR_COUNT);
	for (size_t i = 0; i < cbor_map_size(pcrs); i++) {
		uint64_t idx;
		const uint8_t *v;
		if (ecbor_get_uint(cbor_map_handle(pcrs)[i].key, &idx) < 0 || idx >= ATTEST_PCR_COUNT)
			return BAD("PCR index is not 0..%u", ATTEST_PCR_COUNT - 1);
		if (ecbor_get_bstr_len(cbor_map_handle(pcrs)[i].value, ATTEST_PCR_LEN, &v) < 0)
			return BAD("PCR%u is not %u bytes", (unsigned)idx, ATTEST_PCR_LEN);
		memcpy(d->pcrs[idx], v, ATTEST_PCR_LEN);
		d->pcr_mask |= 1u << idx;
	}

	if (ecbor_get_bstr(field[F_CERTIFICATE], &d->certificate.data, &d->certificate.len) < 0 ||
	    d->certificate.len == 0 || d->certificate.len > X509_CHAIN_MAX_CERT)
		return BAD("certificate is not a DER blob of 1..%u bytes", X509_CHAIN_MAX_CERT);
	const cbor_item_t *cab = field[F_CABUNDLE];
	if (!cbor_isa_array(cab) || cbor_array_size(cab) == 0 || cbor_array_size(cab) > X509_CHAIN_MAX_BUNDLE)
		return BAD("cabundle is not an array of 1..%u certificates", X509_CHAIN_MAX_BUNDLE);
	d->n_cabundle = cbor_array_size(cab);
	for (size_t i = 0; i < d->n_cabundle; i++)
		if (ecbor_get_bstr(cbor_array_handle(cab)[i], &d->cabundle[i].data, &d->cabundle[i].len) < 0 ||
		    d->cabundle[i].len == 0 || d->cabundle[i].len > X509_CHAIN_MAX_CERT)
			return BAD("cabundle[%zu] is not a DER blob", i);

	if (optional_bstr(field[F_PUBLIC_KEY], 1, ATTEST_PUBLIC_KEY_MAX, &d->public_key, &d->public_key_len) < 0)
		return BAD("public_key is not null or 1..%u bytes", ATTEST_PUBLIC_KEY_MAX);
	if (optional_bstr(field[F_USER_DATA], 0, ATTEST_USER_DATA_MAX, &d->user_data, &d->user_data_len) < 0)
		return BAD("user_data is not null or at most %u bytes", ATTEST_USER_DATA_MAX);
	if (optional_bstr(field[F_NONCE], 0, ATTEST_NONCE_MAX, &d->nonce, &d->nonce_len) < 0)
		return BAD("nonce is not null or at most %u bytes", ATTEST_NONCE_MAX);
	if (ret_error) *ret_error = ATTEST_OK;
	*ret = TAKE_PTR(d);
	return 0;
#undef BAD
}

struct doc_sig {
	const CoseSign1 *cose;
	int r;
};

static void doc_sig_check(const uint8_t leaf_point[P384_POINT_LEN], void *userdata) {
	struct doc_sig *s = userdata;
	CoseKey key;
	int r = cose_key_es384(leaf_point, &key);
	if (r == 0) r = cose_sign1_verify(s->cose, &key, NULL, 0, NULL, 0);
	s->r = r;
}

int attest_verify(const uint8_t *doc, size_t len, const struct attest_verify_params *p, AttestDoc **ret_doc,
		  AttestError *ret_error, char *reason, size_t reason_size) {
	if (!p || !p->root || (p->nonce_len && !p->nonce)) return -EINVAL;
	_cleanup_attest_doc_ AttestDoc *d = NULL;
	int r = attest_parse(doc, len, &d, ret_error, reason, reason_size);
	if (r < 0) return r;

	/* The document signature runs alongside the chain's (x509_chain_opts.leaf_check); its verdict counts
	 * only once the chain is good, as if checked after it. */
	struct doc_sig sig = {.cose = d->_cose, .r = -EIO};
	const struct x509_chain_opts opts = {.sequential = p->sequential, .leaf_check = doc_sig_check, .userdata = &sig};
	char why[160] = "";
	r = x509_chain_verify_opts(p->root, d->cabundle, d->n_cabundle, &d->certificate,
				   (time_t)(d->timestamp_ms / 1000), (time_t)(p->now_ms / 1000), p->cache, &opts, NULL,
				   why, sizeof why);
	switch (r) {
	case 0: break;
	case -ENOKEY: return reject(ATTEST_UNKNOWN_ROOT, ret_error, reason, reason_size, "%s", why);
	case -EKEYEXPIRED: return reject(ATTEST_EXPIRED, ret_error, reason, reason_size, "%s", why);
	case -EBADMSG: return reject(ATTEST_BAD_STRUCTURE, ret_error, reason, reason_size, "%s", why);
	case -ENOMEM: return reject(ATTEST_INTERNAL, ret_error, reason, reason_size, "out of memory");
	default: return reject(ATTEST_CHAIN, ret_error, reason, reason_size, "%s", why[0] ? why : "chain rejected");
	}

	r = sig.r;
	if (r == -ENOMEM) return reject(ATTEST_INTERNAL, ret_error, reason, reason_size, "out of memory");
	if (r < 0)
		return reject(ATTEST_SIGNATURE, ret_error, reason, reason_size,
			      "document signature does not verify with the leaf key");

	const AttestPolicy *pol = p->policy;
	if (pol && pol->max_age_ms) {
		if (d->timestamp_ms > p->now_ms + ATTEST_CLOCK_SKEW_MS)
			return reject(ATTEST_STALE, ret_error, reason, reason_size, "document is dated %llu ms in the future",
				      (unsigned long long)(d->timestamp_ms - p->now_ms));
		if (p->now_ms > d->timestamp_ms && p->now_ms - d->timestamp_ms > pol->max_age_ms)
			return reject(ATTEST_STALE, ret_error, reason, reason_size, "document is %llu s old (max %llu s)",
				      (unsigned long long)((p->now_ms - d->timestamp_ms) / 1000),
				      (unsigned long long)(pol->max_age_ms / 1000));
	}
	if (p->nonce) {
		if (!d->nonce) return reject(ATTEST_NONCE_MISMATCH, ret_error, reason, reason_size, "document has no nonce");
		if (d->nonce_len != p->nonce_len || !mem_equal_ct(d->nonce, p->nonce, p->nonce_len))
			return reject(ATTEST_NONCE_MISMATCH, ret_error, reason, reason_size, "nonce differs from the expected one");
	}
	if (pol)
		for (unsigned i = 0; i < ATTEST_PCR_COUNT; i++) {
			if (!(pol->pcr_mask & (1u << i))) continue;
			if (!(d->pcr_mask & (1u << i)))
				return reject(ATTEST_PCR_NOT_ALLOWED, ret_error, reason, reason_size, "PCR%u is absent", i);
			bool ok = false;
			for (size_t k = 0; k < pol->n_allowed[i] && !ok; k++)
				ok = memcmp(pol->allowed[i][k], d->pcrs[i], ATTEST_PCR_LEN) == 0;
			if (!ok)
				return reject(ATTEST_PCR_NOT_ALLOWED, ret_error, reason, reason_size,
					      "PCR%u is not in the policy's allow-list", i);
		}
	if (ret_error) *ret_error = ATTEST_OK;
	if (ret_doc) *ret_doc = TAKE_PTR(d);
	return 0;
}

int attest_policy_new(AttestPolicy **ret) {
	AttestPolicy *p = calloc(1, sizeof *p);
	if (!p) return -ENOMEM;
	*ret = p;
	return 0;
}

AttestPolicy *attest_policy_free(AttestPolicy *p) {
	if (!p) return NULL;
	for (unsigned i = 0; i < ATTEST_PCR_COUNT; i++) free(p->allowed[i]);
	free(p);
	return NULL;
}

#define POLICY_MAX_VALUES 64u

int attest_policy_allow(AttestPolicy *p, unsigned index, const uint8_t value[ATTEST_PCR_LEN]) {
	if (!p || index >= ATTEST_PCR_COUNT || !value) return -EINVAL;
	if (p->n_allowed[index] >= POLICY_MAX_VALUES) return -E2BIG;
	void *n = realloc(p->allowed[index], (p->n_allowed[index] + 1) * ATTEST_PCR_LEN);
	if (!n) return -ENOMEM;
	p->allowed[index] = n;
	memcpy(p->allowed[index][p->n_allowed[index]++], value, ATTEST_PCR_LEN);
	p->pcr_mask |= 1u << index;
	return 0;
}

int attest_pcrs_from_json(struct json_object *pcrs, unsigned max_values,
			  int (*add)(void *ctx, unsigned index, const uint8_t value[ATTEST_PCR_LEN]), void *ctx,
			  char *reason, size_t size) {
	if (!json_object_is_type(pcrs, json_type_object)) return errorf(-EINVAL, reason, size, "pcrs is not an object");
	json_object_object_foreach(pcrs, idx, list) {
		uint64_t i;
		if (parse_u64(idx, ATTEST_PCR_COUNT - 1, &i) < 0 || (idx[0] == '0' && idx[1]))
			return errorf(-EINVAL, reason, size, "pcrs key \"%.8s\" is not an index 0..%u", idx,
				      ATTEST_PCR_COUNT - 1);
		size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
		if (n == 0 || n > max_values)
			return errorf(-EINVAL, reason, size, "pcrs.%s is not an array of 1..%u values", idx, max_values);
		for (size_t k = 0; k < n; k++) {
			uint8_t value[ATTEST_PCR_LEN];
			if (!json_hex_get(json_object_array_get_idx(list, k), value, sizeof value))
				return errorf(-EINVAL, reason, size, "pcrs.%s[%zu] is not %u bytes of hex", idx, k,
					      ATTEST_PCR_LEN);
			int r = add(ctx, (unsigned)i, value);
			if (r < 0) return r;
		}
	}
	return 0;
}

static int policy_allow(void *p, unsigned index, const uint8_t value[ATTEST_PCR_LEN]) {
	return attest_policy_allow(p, index, value);
}

#define POLICY_MAX_BYTES (1u << 20)
#define POLICY_MAX_AGE_S (10ull * 365 * 86400)

int attest_policy_from_json(const char *text, size_t len, AttestPolicy **ret, char *reason, size_t size) {
	if (!text || !ret) return -EINVAL;
	if (len > POLICY_MAX_BYTES) return errorf(-EINVAL, reason, size, "policy larger than %u bytes", POLICY_MAX_BYTES);
	json_tokener *tok = json_tokener_new_ex(8);
	if (!tok) return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *root = json_tokener_parse_ex(tok, text, (int)len);
	bool complete = json_tokener_get_error(tok) == json_tokener_success &&
			json_tokener_get_parse_end(tok) == len;
	json_tokener_free(tok);
	_cleanup_attest_policy_ AttestPolicy *p = NULL;
	int r;
	if (!root || !complete) {
		r = errorf(-EINVAL, reason, size, "policy is not one valid JSON document");
		goto done;
	}
	if (!json_object_is_type(root, json_type_object)) {
		r = errorf(-EINVAL, reason, size, "policy is not a JSON object");
		goto done;
	}
	r = attest_policy_new(&p);
	if (r < 0) goto done;
	json_object_object_foreach(root, key, val) {
		if (strcmp(key, "max_age_s") == 0) {
			if (!json_object_is_type(val, json_type_int) || json_object_get_int64(val) < 0 ||
			    (uint64_t)json_object_get_int64(val) > POLICY_MAX_AGE_S) {
				r = errorf(-EINVAL, reason, size, "max_age_s is not an integer in 0..%llu", POLICY_MAX_AGE_S);
				goto done;
			}
			p->max_age_ms = (uint64_t)json_object_get_int64(val) * 1000;
		} else if (strcmp(key, "pcrs") == 0) {
			if ((r = attest_pcrs_from_json(val, POLICY_MAX_VALUES, policy_allow, p, reason, size)) < 0)
				goto done;
		} else {
			r = errorf(-EINVAL, reason, size, "unknown policy key \"%.32s\"", key);
			goto done;
		}
	}
	*ret = TAKE_PTR(p);
	r = 0;
done:
	json_object_put(root);
	return r;
}

int attest_policy_load(const char *path, AttestPolicy **ret, char *reason, size_t size) {
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int r = read_file(path, POLICY_MAX_BYTES, &buf, &len);
	if (r < 0) {
		if (reason && size) snprintf(reason, size, "cannot read %s: %s", path, strerror(-r));
		return r;
	}
	return attest_policy_from_json((const char *)buf, len, ret, reason, size);
}

/* Hand-written like the NSM's serde output: the field order is part of being byte-compatible. */
static int put(uint8_t **p, size_t *len, size_t *cap, const void *data, size_t n) {
	if (*len + n > *cap) {
		size_t c = MAX(*cap * 2, *len + n + 256);
		uint8_t *q = realloc(*p, c);
		if (!q) return -ENOMEM;
		*p = q;
		*cap = c;
	}
	if (n) memcpy(*p + *len, data, n);
	*len += n;
	return 0;
}

int attest_payload_encode(const struct attest_payload *a, uint8_t **ret, size_t *ret_len) {
	if (!a || !a->module_id || !a->certificate.data || !a->cabundle || !a->n_cabundle || !ret || !ret_len)
		return -EINVAL;
	uint8_t *buf = NULL, h[9];
	size_t len = 0, cap = 0;
	int r = 0;
#define PUT(d, n) do { if (r == 0) r = put(&buf, &len, &cap, (d), (n)); } while (0)
#define HEAD(m, v) PUT(h, ecbor_write_head(h, (m), (v)))
#define TEXT(s) do { HEAD(3, strlen(s)); PUT((s), strlen(s)); } while (0)
#define BYTES(d, n) do { HEAD(2, (n)); PUT((d), (n)); } while (0)
#define OPT(d, n) do { if (d) BYTES((d), (n)); else PUT("\xf6", 1); } while (0)
	HEAD(5, 9);
	TEXT("module_id");
	TEXT(a->module_id);
	TEXT("digest");
	TEXT("SHA384");
	TEXT("timestamp");
	HEAD(0, a->timestamp_ms);
	TEXT("pcrs");
	HEAD(5, (uint64_t)__builtin_popcount(a->pcr_mask));
	for (unsigned i = 0; i < ATTEST_PCR_COUNT; i++)
		if (a->pcr_mask & (1u << i)) {
			HEAD(0, i);
			BYTES(a->pcrs[i], ATTEST_PCR_LEN);
		}
	TEXT("certificate");
	BYTES(a->certificate.data, a->certificate.len);
	TEXT("cabundle");
	HEAD(4, a->n_cabundle);
	for (size_t i = 0; i < a->n_cabundle; i++) BYTES(a->cabundle[i].data, a->cabundle[i].len);
	TEXT("public_key");
	OPT(a->public_key, a->public_key_len);
	TEXT("user_data");
	OPT(a->user_data, a->user_data_len);
	TEXT("nonce");
	OPT(a->nonce, a->nonce_len);
#undef PUT
#undef HEAD
#undef TEXT
#undef BYTES
#undef OPT
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}
