/* cose.c: COSE_Sign1 decode, verify and sign (see cose.h). */
#include <nettle/eddsa.h>
#include <openssl/evp.h>

#include "cbor.h"
#include "cose.h"
#include "util.h"

#define HEADER_MAX 1024 /* protected header bytes: we only ever need alg */

static const struct ecbor_limits cose_limits = {
	.max_size = COSE_SIGN1_MAX, .max_depth = 8, .max_items = 4096, .max_string = COSE_SIGN1_MAX,
};

/* Strict decode of a whole buffer; every decoder complaint is a malformed message to our callers. */
static cbor_item_t *load_strict(const uint8_t *p, size_t len) {
	cbor_item_t *it = NULL;
	if (ecbor_decode(p, len, &cose_limits, &it) < 0) return NULL;
	return it;
}

int cose_key_ed25519(const uint8_t pub[32], CoseKey *ret) {
	if (!pub || !ret) return -EINVAL;
	*ret = (CoseKey){.alg = COSE_ALG_EDDSA, .len = 32};
	memcpy(ret->pub, pub, 32);
	return 0;
}

int cose_key_es384(const uint8_t point[P384_POINT_LEN], CoseKey *ret) {
	if (!point || !ret || point[0] != 0x04) return -EINVAL;
	*ret = (CoseKey){.alg = COSE_ALG_ES384, .len = P384_POINT_LEN};
	memcpy(ret->pub, point, P384_POINT_LEN);
	return 0;
}

/* An integer label or value within int range; false for anything else. */
static bool get_int(const cbor_item_t *it, int64_t *ret) {
	if (cbor_isa_uint(it)) {
		uint64_t v = cbor_get_int(it);
		if (v > INT32_MAX) return false;
		*ret = (int64_t)v;
		return true;
	}
	if (cbor_isa_negint(it)) {
		uint64_t v = cbor_get_int(it);
		if (v > INT32_MAX) return false;
		*ret = -1 - (int64_t)v;
		return true;
	}
	return false;
}

static int parse_protected(const uint8_t *p, size_t len, int *ret_alg) {
	if (len == 0) return -EPROTONOSUPPORT; /* empty map: no alg */
	if (len > HEADER_MAX) return -EBADMSG;
	cbor_item_t *m = load_strict(p, len);
	int r = 0;
	bool have_alg = false;
	int64_t alg = 0;
	if (!m || !cbor_isa_map(m)) {
		r = -EBADMSG;
		goto done;
	}
	for (size_t i = 0; i < cbor_map_size(m); i++) {
		struct cbor_pair pr = cbor_map_handle(m)[i];
		int64_t label;
		if (!get_int(pr.key, &label)) {
			if (cbor_isa_string(pr.key)) continue; /* text labels: private use, not critical */
			r = -EBADMSG;
			goto done;
		}
		for (size_t j = 0; j < i; j++) {
			int64_t other;
			if (get_int(cbor_map_handle(m)[j].key, &other) && other == label) {
				r = -EBADMSG; /* duplicate label */
				goto done;
			}
		}
		if (label == 1) {
			if (!get_int(pr.value, &alg)) {
				r = -EPROTONOSUPPORT;
				goto done;
			}
			have_alg = true;
		} else if (label == 2) {
			/* crit: we only process alg, so any other critical label fails */
			if (!cbor_isa_array(pr.value) || cbor_array_size(pr.value) == 0) {
				r = -EBADMSG;
				goto done;
			}
			for (size_t j = 0; j < cbor_array_size(pr.value); j++) {
				int64_t c;
				if (!get_int(cbor_array_handle(pr.value)[j], &c) || c != 1) {
					r = -EOPNOTSUPP;
					goto done;
				}
			}
		}
	}
	if (!have_alg || (alg != COSE_ALG_EDDSA && alg != COSE_ALG_ES384))
		r = -EPROTONOSUPPORT;
	else
		*ret_alg = (int)alg;
done:
	if (m) cbor_decref(&m);
	return r;
}

static uint8_t *dup_bytes(const cbor_item_t *it, size_t *ret_len) {
	size_t n = cbor_bytestring_length(it);
	uint8_t *p = malloc(n ? n : 1);
	if (p && n) memcpy(p, cbor_bytestring_handle(it), n);
	*ret_len = n;
	return p;
}

CoseSign1 *cose_sign1_free(CoseSign1 *m) {
	if (!m) return NULL;
	free(m->protected_bytes);
	free(m->payload);
	free(m->signature);
	free(m);
	return NULL;
}

int cose_sign1_decode(const uint8_t *msg, size_t len, CoseSign1 **ret) {
	if (!msg || !ret) return -EINVAL;
	if (len == 0 || len > COSE_SIGN1_MAX) return -EBADMSG;
	cbor_item_t *top = load_strict(msg, len);
	if (!top) return -EBADMSG;
	_cleanup_(cose_sign1_freep) CoseSign1 *m = calloc(1, sizeof *m);
	int r = -ENOMEM;
	if (!m) goto done;
	r = -EBADMSG;
	const cbor_item_t *arr = top;
	if (cbor_isa_tag(top)) {
		if (cbor_tag_value(top) != COSE_TAG_SIGN1) goto done;
		m->tagged = true;
		cbor_item_t *inner = cbor_tag_item(top);
		arr = inner;
		cbor_decref(&inner); /* top keeps it alive */
	}
	if (!cbor_isa_array(arr) || cbor_array_size(arr) != 4) goto done;
	cbor_item_t **a = cbor_array_handle(arr);
	if (!cbor_isa_bytestring(a[0]) || !cbor_isa_map(a[1]) || !cbor_isa_bytestring(a[3])) goto done;
	if (!(cbor_isa_bytestring(a[2]) || ecbor_is_null(a[2]))) goto done;
	/* alg (1) and crit (2) belong in the protected bucket only */
	for (size_t i = 0; i < cbor_map_size(a[1]); i++) {
		int64_t label;
		if (get_int(cbor_map_handle(a[1])[i].key, &label) && (label == 1 || label == 2)) goto done;
	}
	m->protected_bytes = dup_bytes(a[0], &m->protected_len);
	m->signature = dup_bytes(a[3], &m->signature_len);
	if (cbor_isa_bytestring(a[2])) m->payload = dup_bytes(a[2], &m->payload_len);
	if (!m->protected_bytes || !m->signature || (cbor_isa_bytestring(a[2]) && !m->payload)) {
		r = -ENOMEM;
		goto done;
	}
	r = parse_protected(m->protected_bytes, m->protected_len, &m->alg);
	if (r < 0) goto done;
	if (m->signature_len != (m->alg == COSE_ALG_ES384 ? P384_SIG_RAW_LEN : 64u)) {
		r = -EBADMSG;
		goto done;
	}
	*ret = TAKE_PTR(m);
	r = 0;
done:
	cbor_decref(&top);
	return r;
}

static size_t put_head(uint8_t *out, uint8_t major, uint64_t n) { return ecbor_write_head(out, major, n); }

static size_t put_bstr(uint8_t *out, const uint8_t *p, size_t n) {
	size_t h = put_head(out, 2, n);
	if (n) memcpy(out + h, p, n);
	return h + n;
}

int cose_sig_structure(const uint8_t *prot, size_t prot_len, const uint8_t *aad, size_t aad_len,
		       const uint8_t *payload, size_t payload_len, uint8_t **ret, size_t *ret_len) {
	if (!ret || !ret_len || prot_len > COSE_SIGN1_MAX || aad_len > COSE_SIGN1_MAX || payload_len > COSE_SIGN1_MAX)
		return -EINVAL;
	size_t cap = 1 + 11 + 3 * 9 + prot_len + aad_len + payload_len;
	uint8_t *out = malloc(cap), *p = out;
	if (!out) return -ENOMEM;
	p += put_head(p, 4, 4);
	p += put_head(p, 3, 10);
	memcpy(p, "Signature1", 10);
	p += 10;
	p += put_bstr(p, prot, prot_len);
	p += put_bstr(p, aad, aad_len);
	p += put_bstr(p, payload, payload_len);
	*ret = out;
	*ret_len = (size_t)(p - out);
	return 0;
}

/* nettle, like lib/air.c's receipts (faster than OpenSSL's EVP here; both refuse S >= L). */
static int ed25519_verify(const uint8_t pub[32], const uint8_t *msg, size_t len, const uint8_t sig[64]) {
	return ed25519_sha512_verify(pub, len, msg, sig) ? 0 : -EKEYREJECTED;
}

int cose_sign1_verify(const CoseSign1 *m, const CoseKey *key, const uint8_t *aad, size_t aad_len,
		      const uint8_t *detached_payload, size_t detached_len) {
	if (!m || !key) return -EINVAL;
	if (key->alg != m->alg) return -EPROTONOSUPPORT;
	const uint8_t *payload = m->payload;
	size_t payload_len = m->payload_len;
	if (!payload) {
		if (!detached_payload) return -EINVAL;
		payload = detached_payload;
		payload_len = detached_len;
	}
	_cleanup_free_ uint8_t *tbs = NULL;
	size_t tbs_len;
	int r = cose_sig_structure(m->protected_bytes, m->protected_len, aad, aad_len, payload, payload_len, &tbs,
				   &tbs_len);
	if (r < 0) return r;
	if (m->alg == COSE_ALG_EDDSA) {
		if (key->len != 32 || m->signature_len != 64) return -EINVAL;
		return ed25519_verify(key->pub, tbs, tbs_len, m->signature);
	}
	if (key->len != P384_POINT_LEN || m->signature_len != P384_SIG_RAW_LEN) return -EINVAL;
	r = p384_verify_raw(key->pub, tbs, tbs_len, m->signature);
	return r == -EBADMSG ? -EKEYREJECTED : r;
}

int cose_sign1_sign(int alg, EVP_PKEY *key, const uint8_t *payload, size_t payload_len, const uint8_t *aad,
		    size_t aad_len, bool tagged, uint8_t **ret, size_t *ret_len) {
	static const uint8_t prot_es384[] = {0xa1, 0x01, 0x38, 0x22}; /* {1: -35} */
	static const uint8_t prot_eddsa[] = {0xa1, 0x01, 0x27};       /* {1: -8} */
	if (!key || !ret || !ret_len || (!payload && payload_len)) return -EINVAL;
	const uint8_t *prot;
	size_t prot_len;
	if (alg == COSE_ALG_ES384 && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
		prot = prot_es384;
		prot_len = sizeof prot_es384;
	} else if (alg == COSE_ALG_EDDSA && EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519) {
		prot = prot_eddsa;
		prot_len = sizeof prot_eddsa;
	} else
		return -EPROTONOSUPPORT;
	_cleanup_free_ uint8_t *tbs = NULL;
	size_t tbs_len;
	int r = cose_sig_structure(prot, prot_len, aad, aad_len, payload, payload_len, &tbs, &tbs_len);
	if (r < 0) return r;
	uint8_t sig[P384_SIG_RAW_LEN];
	size_t sig_len;
	if (alg == COSE_ALG_ES384) {
		r = p384_sign_raw(key, tbs, tbs_len, sig);
		if (r < 0) return r;
		sig_len = P384_SIG_RAW_LEN;
	} else {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		sig_len = 64;
		r = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
				    EVP_DigestSign(ctx, sig, &sig_len, tbs, tbs_len) == 1 && sig_len == 64
			    ? 0
			    : -EIO;
		EVP_MD_CTX_free(ctx);
		if (r < 0) return r;
	}
	uint8_t *out = malloc(2 + 1 + 3 * 9 + prot_len + 1 + payload_len + sig_len), *p = out;
	if (!out) return -ENOMEM;
	if (tagged) p += put_head(p, 6, COSE_TAG_SIGN1);
	p += put_head(p, 4, 4);
	p += put_bstr(p, prot, prot_len);
	*p++ = 0xa0; /* unprotected: {} */
	p += put_bstr(p, payload, payload_len);
	p += put_bstr(p, sig, sig_len);
	*ret = out;
	*ret_len = (size_t)(p - out);
	return 0;
}
