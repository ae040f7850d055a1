/* cms.c: CMS EnvelopedData for KMS CiphertextForRecipient: BER reader, shape checks, OAEP unwrap, AES-CBC
 * (see cms.h). */
#include "cms.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "macro.h"
#include "util.h"

/* DER contents of the object identifiers we accept. */
static const uint8_t OID_ENVELOPED_DATA[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03};
static const uint8_t OID_DATA[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01};
static const uint8_t OID_RSAES_OAEP[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07};
static const uint8_t OID_MGF1[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08};
static const uint8_t OID_P_SPECIFIED[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x09};
static const uint8_t OID_SHA256[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
static const uint8_t OID_AES256_CBC[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a};

enum { CLS_UNIVERSAL = 0, CLS_CONTEXT = 2 };
enum { T_INTEGER = 2, T_OCTET_STRING = 4, T_NULL = 5, T_OID = 6, T_SEQUENCE = 16, T_SET = 17 };

struct tlv {
	uint8_t cls;
	bool cons;
	uint8_t tag;
	bool indefinite;
	const uint8_t *body; /* contents, without the end-of-contents octets of an indefinite element */
	size_t body_len;
	size_t total;        /* header + contents (+ EOC) */
	unsigned depth;
};

struct ctx {
	const char *reason;
};

static int fail(struct ctx *c, int r, const char *reason) {
	if (!c->reason) c->reason = reason;
	return r;
}

/* Read one element at p[0..n). Indefinite-length elements are walked child by child to find their end. */
static int ber_read(struct ctx *c, const uint8_t *p, size_t n, unsigned depth, struct tlv *t) {
	if (depth > CMS_MAX_DEPTH) return fail(c, -E2BIG, "BER nesting too deep");
	if (n < 2) return fail(c, -ENODATA, "truncated element header");
	*t = (struct tlv){.cls = p[0] >> 6, .cons = p[0] & 0x20, .tag = p[0] & 0x1f, .depth = depth};
	if (p[0] == 0) return fail(c, -EBADMSG, "unexpected end-of-contents");
	if (t->tag == 0x1f) return fail(c, -EBADMSG, "high tag number form (not used by CMS)");
	size_t i = 2, len = 0;
	uint8_t l0 = p[1];
	if (l0 < 0x80)
		len = l0;
	else if (l0 == 0x80) {
		if (!t->cons) return fail(c, -EBADMSG, "indefinite length on a primitive element");
		t->indefinite = true;
	} else {
		size_t nb = l0 & 0x7f;
		if (nb > 3 || l0 == 0xff) return fail(c, -E2BIG, "element length field too long");
		if (n - i < nb) return fail(c, -ENODATA, "truncated length field");
		for (size_t k = 0; k < nb; k++) len = len << 8 | p[i + k];
		i += nb;
	}
	if (!t->indefinite) {
		if (len > n - i) return fail(c, -ENODATA, "element longer than its input (truncated)");
		t->body = p + i;
		t->body_len = len;
		t->total = i + len;
		return 0;
	}
	size_t off = i;
	for (;;) {
		if (n - off < 2) return fail(c, -ENODATA, "missing end-of-contents (truncated)");
		if (p[off] == 0 && p[off + 1] == 0) break;
		struct tlv child;
		int r = ber_read(c, p + off, n - off, depth + 1, &child);
		if (r < 0) return r;
		off += child.total;
	}
	t->body = p + i;
	t->body_len = off - i;
	t->total = off + 2;
	return 0;
}

struct iter {
	const uint8_t *p;
	size_t n;
	unsigned depth;
};

static void iter_init(struct iter *it, const struct tlv *t) { *it = (struct iter){t->body, t->body_len, t->depth + 1}; }

/* 1 and *t filled, 0 at the end, or a negative error. */
static int iter_next(struct ctx *c, struct iter *it, struct tlv *t) {
	if (it->n == 0) return 0;
	int r = ber_read(c, it->p, it->n, it->depth, t);
	if (r < 0) return r;
	it->p += t->total;
	it->n -= t->total;
	return 1;
}

static bool is(const struct tlv *t, uint8_t cls, bool cons, uint8_t tag) {
	return t->cls == cls && t->cons == cons && t->tag == tag;
}

/* The next element must exist and have this tag. */
static int expect(struct ctx *c, struct iter *it, uint8_t cls, bool cons, uint8_t tag, struct tlv *t,
		  const char *what) {
	int r = iter_next(c, it, t);
	if (r < 0) return r;
	if (r == 0) return fail(c, -EBADMSG, what);
	if (!is(t, cls, cons, tag)) return fail(c, -EBADMSG, what);
	return 0;
}

static int expect_end(struct ctx *c, struct iter *it, const char *what) {
	return it->n == 0 ? 0 : fail(c, -EBADMSG, what);
}

static int expect_oid(struct ctx *c, struct iter *it, const uint8_t *oid, size_t oid_len, const char *what_shape,
		      const char *what_oid) {
	struct tlv t;
	int r = expect(c, it, CLS_UNIVERSAL, false, T_OID, &t, what_shape);
	if (r < 0) return r;
	if (t.body_len != oid_len || memcmp(t.body, oid, oid_len) != 0) return fail(c, -EPROTONOSUPPORT, what_oid);
	return 0;
}

/* A small non-negative INTEGER (versions). */
static int read_version(struct ctx *c, struct iter *it, int *ret, const char *what) {
	struct tlv t;
	int r = expect(c, it, CLS_UNIVERSAL, false, T_INTEGER, &t, what);
	if (r < 0) return r;
	if (t.body_len != 1 || t.body[0] > 0x7f) return fail(c, -EPROTO, what);
	*ret = t.body[0];
	return 0;
}

/* OCTET STRING contents, primitive or constructed (BER: nested universal OCTET STRING segments, joined). */
static int collect_octets(struct ctx *c, const struct tlv *t, uint8_t *out, size_t max, size_t *len,
			  unsigned *segments) {
	if (!t->cons) {
		if (++*segments > CMS_MAX_SEGMENTS) return fail(c, -E2BIG, "too many OCTET STRING segments");
		if (t->body_len > max - *len) return fail(c, -E2BIG, "OCTET STRING too large");
		if (t->body_len) memcpy(out + *len, t->body, t->body_len);
		*len += t->body_len;
		return 0;
	}
	struct iter it;
	struct tlv s;
	iter_init(&it, t);
	for (;;) {
		int r = iter_next(c, &it, &s);
		if (r < 0) return r;
		if (r == 0) return 0;
		if (s.cls != CLS_UNIVERSAL || s.tag != T_OCTET_STRING)
			return fail(c, -EBADMSG, "constructed OCTET STRING holds something else");
		r = collect_octets(c, &s, out, max, len, segments);
		if (r < 0) return r;
	}
}

static int octets(struct ctx *c, const struct tlv *t, size_t max, uint8_t **ret, size_t *ret_len) {
	/* The contents bound the joined size: segments only add headers. */
	size_t cap = MIN(t->body_len, max);
	_cleanup_free_ uint8_t *buf = malloc(cap ? cap : 1);
	if (!buf) return -ENOMEM;
	size_t len = 0;
	unsigned segments = 0;
	int r = collect_octets(c, t, buf, cap, &len, &segments);
	if (r < 0) return r;
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

/* The next element is an OCTET STRING with this class and tag, in either encoding. */
static int expect_octets(struct ctx *c, struct iter *it, uint8_t cls, uint8_t tag, size_t max, uint8_t **ret,
			 size_t *ret_len, const char *what) {
	struct tlv t;
	int r = iter_next(c, it, &t);
	if (r < 0) return r;
	if (r == 0 || t.cls != cls || t.tag != tag) return fail(c, -EBADMSG, what);
	if (t.body_len > max && !t.cons) return fail(c, -E2BIG, "OCTET STRING too large");
	return octets(c, &t, max, ret, ret_len);
}

/* AlgorithmIdentifier { sha256, NULL or absent } (RFC 5754 allows both). */
static int expect_sha256_alg(struct ctx *c, const struct tlv *seq, const char *what) {
	struct iter it;
	struct tlv t;
	iter_init(&it, seq);
	int r = expect_oid(c, &it, OID_SHA256, sizeof OID_SHA256, what, what);
	if (r < 0) return r;
	r = iter_next(c, &it, &t);
	if (r < 0) return r;
	if (r == 1 && (!is(&t, CLS_UNIVERSAL, false, T_NULL) || t.body_len != 0))
		return fail(c, -EBADMSG, "hash AlgorithmIdentifier parameters are not NULL");
	return expect_end(c, &it, "trailing data in a hash AlgorithmIdentifier");
}

/* [n] EXPLICIT AlgorithmIdentifier: the wrapper holds exactly one SEQUENCE. */
static int explicit_seq(struct ctx *c, const struct tlv *wrapper, struct tlv *seq, const char *what) {
	struct iter it;
	iter_init(&it, wrapper);
	int r = expect(c, &it, CLS_UNIVERSAL, true, T_SEQUENCE, seq, what);
	if (r < 0) return r;
	return expect_end(c, &it, what);
}

/* RSAES-OAEP-params (RFC 8017 A.2.1): hash SHA-256, MGF1 with SHA-256, empty label. The defaults (SHA-1) are
 * refused, so both explicit fields are required. */
static int parse_oaep_params(struct ctx *c, const struct tlv *params) {
	struct iter it;
	struct tlv t, seq;
	bool have_hash = false, have_mgf = false, have_label = false;
	iter_init(&it, params);
	for (;;) {
		int r = iter_next(c, &it, &t);
		if (r < 0) return r;
		if (r == 0) break;
		if (t.cls != CLS_CONTEXT || !t.cons || t.tag > 2)
			return fail(c, -EBADMSG, "unexpected element in RSAES-OAEP parameters");
		if ((t.tag == 0 && (have_hash || have_mgf || have_label)) || (t.tag == 1 && (have_mgf || have_label)) ||
		    (t.tag == 2 && have_label))
			return fail(c, -EBADMSG, "RSAES-OAEP parameters out of order or repeated");
		r = explicit_seq(c, &t, &seq, "RSAES-OAEP parameter is not an AlgorithmIdentifier");
		if (r < 0) return r;
		if (t.tag == 0) {
			r = expect_sha256_alg(c, &seq, "OAEP hash is not SHA-256");
			have_hash = true;
		} else if (t.tag == 1) {
			struct iter mi;
			struct tlv inner;
			iter_init(&mi, &seq);
			r = expect_oid(c, &mi, OID_MGF1, sizeof OID_MGF1, "malformed mask generation AlgorithmIdentifier",
				       "mask generation function is not MGF1");
			if (r >= 0) r = expect(c, &mi, CLS_UNIVERSAL, true, T_SEQUENCE, &inner, "MGF1 without hash");
			if (r >= 0) r = expect_sha256_alg(c, &inner, "MGF1 hash is not SHA-256");
			if (r >= 0) r = expect_end(c, &mi, "trailing data in the MGF1 AlgorithmIdentifier");
			have_mgf = true;
		} else {
			struct iter li;
			struct tlv label;
			iter_init(&li, &seq);
			r = expect_oid(c, &li, OID_P_SPECIFIED, sizeof OID_P_SPECIFIED,
				       "malformed OAEP label AlgorithmIdentifier", "OAEP label source is not pSpecified");
			if (r >= 0) r = expect(c, &li, CLS_UNIVERSAL, false, T_OCTET_STRING, &label, "OAEP label missing");
			if (r >= 0 && label.body_len != 0) r = fail(c, -EINVAL, "non-empty OAEP label");
			if (r >= 0) r = expect_end(c, &li, "trailing data in the OAEP label");
			have_label = true;
		}
		if (r < 0) return r;
	}
	if (!have_hash) return fail(c, -EPROTONOSUPPORT, "OAEP hash absent (SHA-1 default refused)");
	if (!have_mgf) return fail(c, -EPROTONOSUPPORT, "OAEP MGF absent (MGF1-SHA-1 default refused)");
	return 0;
}

static int parse_ktri(struct ctx *c, const struct tlv *ktri, struct cms_enveloped *e, int *ret_version) {
	struct iter it;
	struct tlv t, alg, params;
	int version, r;
	iter_init(&it, ktri);
	r = read_version(c, &it, &version, "KeyTransRecipientInfo version");
	if (r < 0) return r;
	r = iter_next(c, &it, &t);
	if (r < 0) return r;
	if (r == 0) return fail(c, -EBADMSG, "KeyTransRecipientInfo without recipient identifier");
	if (is(&t, CLS_CONTEXT, false, 0)) {
		/* subjectKeyIdentifier [0] IMPLICIT OCTET STRING: version 2 (RFC 5652 6.2.1). */
		if (version != 2) return fail(c, -EPROTO, "KeyTransRecipientInfo version is not 2 for a key identifier");
		if (t.body_len == 0 || t.body_len > 64) return fail(c, -EINVAL, "bad subject key identifier length");
		e->key_id = malloc(t.body_len);
		if (!e->key_id) return -ENOMEM;
		memcpy(e->key_id, t.body, t.body_len);
		e->key_id_len = t.body_len;
	} else if (is(&t, CLS_UNIVERSAL, true, T_SEQUENCE)) {
		if (version != 0)
			return fail(c, -EPROTO, "KeyTransRecipientInfo version is not 0 for issuerAndSerialNumber");
	} else
		return fail(c, -EBADMSG, "unknown recipient identifier");

	r = expect(c, &it, CLS_UNIVERSAL, true, T_SEQUENCE, &alg, "missing key encryption AlgorithmIdentifier");
	if (r < 0) return r;
	struct iter ai;
	iter_init(&ai, &alg);
	r = expect_oid(c, &ai, OID_RSAES_OAEP, sizeof OID_RSAES_OAEP, "malformed key encryption AlgorithmIdentifier",
		       "key encryption algorithm is not RSAES-OAEP");
	if (r < 0) return r;
	r = iter_next(c, &ai, &params);
	if (r < 0) return r;
	if (r == 0 || !is(&params, CLS_UNIVERSAL, true, T_SEQUENCE))
		return fail(c, -EPROTONOSUPPORT, "RSAES-OAEP parameters absent (SHA-1 default refused)");
	r = parse_oaep_params(c, &params);
	if (r < 0) return r;
	r = expect_end(c, &ai, "trailing data in the key encryption AlgorithmIdentifier");
	if (r < 0) return r;

	r = expect_octets(c, &it, CLS_UNIVERSAL, T_OCTET_STRING, CMS_MAX_ENCRYPTED_KEY, &e->encrypted_key,
			  &e->encrypted_key_len, "missing encrypted key");
	if (r < 0) return r;
	if (e->encrypted_key_len == 0) return fail(c, -EINVAL, "empty encrypted key");
	r = expect_end(c, &it, "trailing data in KeyTransRecipientInfo");
	if (r < 0) return r;
	*ret_version = version;
	return 0;
}

static int parse_eci(struct ctx *c, const struct tlv *eci, struct cms_enveloped *e) {
	struct iter it, ai;
	struct tlv alg, ivt;
	iter_init(&it, eci);
	int r = expect_oid(c, &it, OID_DATA, sizeof OID_DATA, "malformed EncryptedContentInfo",
			   "encrypted content type is not id-data");
	if (r < 0) return r;
	r = expect(c, &it, CLS_UNIVERSAL, true, T_SEQUENCE, &alg, "missing content encryption AlgorithmIdentifier");
	if (r < 0) return r;
	iter_init(&ai, &alg);
	r = expect_oid(c, &ai, OID_AES256_CBC, sizeof OID_AES256_CBC,
		       "malformed content encryption AlgorithmIdentifier", "content encryption is not AES-256-CBC");
	if (r < 0) return r;
	r = expect(c, &ai, CLS_UNIVERSAL, false, T_OCTET_STRING, &ivt, "missing AES-CBC IV");
	if (r < 0) return r;
	if (ivt.body_len != 16) return fail(c, -EINVAL, "AES-CBC IV is not 16 bytes");
	memcpy(e->iv, ivt.body, 16);
	r = expect_end(c, &ai, "trailing data in the content encryption AlgorithmIdentifier");
	if (r < 0) return r;
	/* encryptedContent [0] IMPLICIT OCTET STRING, definite primitive or constructed segments. */
	r = expect_octets(c, &it, CLS_CONTEXT, 0, CMS_MAX_INPUT, &e->content, &e->content_len,
			  "missing encrypted content");
	if (r < 0) return r;
	if (e->content_len == 0 || e->content_len % 16)
		return fail(c, -EINVAL, "encrypted content is not a whole number of AES blocks");
	return expect_end(c, &it, "trailing data in EncryptedContentInfo");
}

void cms_enveloped_done(struct cms_enveloped *e) {
	if (!e) return;
	free(e->encrypted_key);
	free(e->content);
	free(e->key_id);
	*e = (struct cms_enveloped){};
}

int cms_parse_enveloped(const uint8_t *ber, size_t len, struct cms_enveloped *ret, const char **ret_reason) {
	struct ctx c = {};
	struct cms_enveloped e = {};
	struct tlv top, wrapper, ed, t, ktri;
	struct iter it, wi, ei, ri;
	int r, version, ktri_version;
	if (!ber || !ret) return -EINVAL;
	if (len > CMS_MAX_INPUT) {
		r = fail(&c, -E2BIG, "input larger than the CMS limit");
		goto fail;
	}
	if ((r = ber_read(&c, ber, len, 0, &top)) < 0) goto fail;
	if (top.total != len) {
		r = fail(&c, -EBADMSG, "trailing bytes after ContentInfo");
		goto fail;
	}
	if (!is(&top, CLS_UNIVERSAL, true, T_SEQUENCE)) {
		r = fail(&c, -EBADMSG, "ContentInfo is not a SEQUENCE");
		goto fail;
	}
	iter_init(&it, &top);
	if ((r = expect_oid(&c, &it, OID_ENVELOPED_DATA, sizeof OID_ENVELOPED_DATA, "malformed ContentInfo",
			    "content type is not id-envelopedData")) < 0)
		goto fail;
	if ((r = expect(&c, &it, CLS_CONTEXT, true, 0, &wrapper, "ContentInfo without [0] content")) < 0) goto fail;
	if ((r = expect_end(&c, &it, "trailing data in ContentInfo")) < 0) goto fail;
	iter_init(&wi, &wrapper);
	if ((r = expect(&c, &wi, CLS_UNIVERSAL, true, T_SEQUENCE, &ed, "EnvelopedData is not a SEQUENCE")) < 0) goto fail;
	if ((r = expect_end(&c, &wi, "trailing data after EnvelopedData")) < 0) goto fail;

	iter_init(&ei, &ed);
	if ((r = read_version(&c, &ei, &version, "EnvelopedData version")) < 0) goto fail;
	if ((r = iter_next(&c, &ei, &t)) < 0) goto fail;
	if (r == 0) {
		r = fail(&c, -EBADMSG, "EnvelopedData without recipientInfos");
		goto fail;
	}
	if (is(&t, CLS_CONTEXT, true, 0)) {
		r = fail(&c, -EBADMSG, "originatorInfo present (not used by KMS)");
		goto fail;
	}
	if (!is(&t, CLS_UNIVERSAL, true, T_SET)) {
		r = fail(&c, -EBADMSG, "recipientInfos is not a SET");
		goto fail;
	}
	iter_init(&ri, &t);
	if ((r = iter_next(&c, &ri, &ktri)) < 0) goto fail;
	if (r == 0) {
		r = fail(&c, -EBADMSG, "no RecipientInfo");
		goto fail;
	}
	if (!is(&ktri, CLS_UNIVERSAL, true, T_SEQUENCE)) {
		/* kari [1], kekri [2], pwri [3], ori [4] */
		r = fail(&c, -EPROTONOSUPPORT, "RecipientInfo is not KeyTransRecipientInfo");
		goto fail;
	}
	if ((r = expect_end(&c, &ri, "more than one RecipientInfo")) < 0) goto fail;
	if ((r = parse_ktri(&c, &ktri, &e, &ktri_version)) < 0) goto fail;
	/* RFC 5652 6.1: no originatorInfo, no attributes, one ktri -> 0 if it is v0, else 2. */
	if (version != (ktri_version == 0 ? 0 : 2)) {
		r = fail(&c, -EPROTO, "EnvelopedData version does not match its RecipientInfo");
		goto fail;
	}
	if ((r = expect(&c, &ei, CLS_UNIVERSAL, true, T_SEQUENCE, &t, "missing EncryptedContentInfo")) < 0) goto fail;
	if ((r = parse_eci(&c, &t, &e)) < 0) goto fail;
	if ((r = iter_next(&c, &ei, &t)) < 0) goto fail;
	if (r == 1) {
		r = fail(&c, -EBADMSG, is(&t, CLS_CONTEXT, true, 1) ? "unprotectedAttrs present (not used by KMS)"
								    : "trailing data in EnvelopedData");
		goto fail;
	}
	*ret = e;
	if (ret_reason) *ret_reason = NULL;
	return 0;
fail:
	cms_enveloped_done(&e);
	if (ret_reason) *ret_reason = c.reason ? c.reason : "out of memory";
	return r;
}

int cms_enveloped_decrypt(const struct cms_enveloped *e, EVP_PKEY *pkey, uint8_t **ret_plain, size_t *ret_len,
			  const char **ret_reason) {
	struct ctx c = {};
	uint8_t cek[32 + 512];
	size_t cek_len = sizeof cek;
	uint8_t *plain = NULL;
	int r, outl = 0, finl = 0;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_CIPHER_CTX *cctx = NULL;
	if (!e || !pkey || !ret_plain || !ret_len) return -EINVAL;
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		r = fail(&c, -EINVAL, "recipient key is not RSA");
		goto done;
	}
	if (e->encrypted_key_len != (size_t)EVP_PKEY_get_size(pkey)) {
		r = fail(&c, -EKEYREJECTED, "encrypted key length does not match the RSA modulus");
		goto done;
	}
	pctx = EVP_PKEY_CTX_new(pkey, NULL);
	if (!pctx || EVP_PKEY_decrypt_init(pctx) <= 0 || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0) {
		r = fail(&c, -EIO, "cannot set up RSA-OAEP");
		goto done;
	}
	if (EVP_PKEY_decrypt(pctx, cek, &cek_len, e->encrypted_key, e->encrypted_key_len) <= 0) {
		r = fail(&c, -EKEYREJECTED, "RSA-OAEP unwrap failed (wrong key or corrupted encrypted key)");
		goto done;
	}
	if (cek_len != 32) {
		r = fail(&c, -EKEYREJECTED, "unwrapped key is not 32 bytes (AES-256)");
		goto done;
	}
	plain = malloc(e->content_len);
	cctx = EVP_CIPHER_CTX_new();
	if (!plain || !cctx) {
		r = -ENOMEM;
		goto done;
	}
	if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, cek, e->iv) <= 0) {
		r = fail(&c, -EIO, "cannot set up AES-256-CBC");
		goto done;
	}
	if (EVP_DecryptUpdate(cctx, plain, &outl, e->content, (int)e->content_len) <= 0 ||
	    EVP_DecryptFinal_ex(cctx, plain + outl, &finl) <= 0) {
		r = fail(&c, -EBADE, "content decryption failed (bad padding)");
		goto done;
	}
	*ret_plain = TAKE_PTR(plain);
	*ret_len = (size_t)outl + (size_t)finl;
	r = 0;
done:
	if (plain) free_secret(plain, e->content_len);
	wipe(cek, sizeof cek);
	EVP_CIPHER_CTX_free(cctx);
	EVP_PKEY_CTX_free(pctx);
	ERR_clear_error();
	if (ret_reason) *ret_reason = r < 0 ? (c.reason ? c.reason : "out of memory") : NULL;
	return r;
}

int cms_decrypt(const uint8_t *ber, size_t len, EVP_PKEY *pkey, uint8_t **ret_plain, size_t *ret_len,
		const char **ret_reason) {
	struct cms_enveloped e;
	int r = cms_parse_enveloped(ber, len, &e, ret_reason);
	if (r < 0) return r;
	r = cms_enveloped_decrypt(&e, pkey, ret_plain, ret_len, ret_reason);
	cms_enveloped_done(&e);
	return r;
}

/* OpenSSL's CMS wants a certificate to name a key-transport recipient; KMS only has the public key from the
 * attestation document, so we wrap it in a throwaway certificate whose SubjectKeyIdentifier is the SHA-256 of
 * the SubjectPublicKeyInfo, and ask CMS to identify the recipient by that key id. OpenSSL only reads a key id
 * from a certificate that encodes, hence the signature by an ephemeral Ed25519 key (nobody ever checks it). */
static X509 *recipient_cert(EVP_PKEY *pub) {
	_cleanup_free_ uint8_t *spki = NULL;
	uint8_t md[32];
	int n = i2d_PUBKEY(pub, &spki);
	if (n <= 0) return NULL;
	SHA256(spki, (size_t)n, md);
	X509 *x = X509_new();
	ASN1_OCTET_STRING *ski = ASN1_OCTET_STRING_new();
	EVP_PKEY *signer = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	X509_NAME *name = x ? X509_get_subject_name(x) : NULL;
	bool ok = x && ski && signer && name && X509_set_version(x, X509_VERSION_3) &&
		  ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
		  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)"kms recipient", -1, -1, 0) &&
		  X509_set_issuer_name(x, name) && X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
		  X509_gmtime_adj(X509_getm_notAfter(x), 60) && X509_set_pubkey(x, pub) &&
		  ASN1_OCTET_STRING_set(ski, md, sizeof md) &&
		  X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, X509V3_ADD_DEFAULT) &&
		  X509_sign(x, signer, NULL) > 0;
	ASN1_OCTET_STRING_free(ski);
	EVP_PKEY_free(signer);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

int cms_build_for_recipient(EVP_PKEY *recipient, const uint8_t *plain, size_t plain_len, uint8_t **ret,
			    size_t *ret_len) {
	int r = -EIO;
	X509 *cert = NULL;
	CMS_ContentInfo *cms = NULL;
	BIO *in = NULL, *out = NULL;
	if (!recipient || !ret || !ret_len || (!plain && plain_len)) return -EINVAL;
	if (EVP_PKEY_get_base_id(recipient) != EVP_PKEY_RSA) return -EINVAL;
	unsigned flags = CMS_BINARY | CMS_PARTIAL | CMS_STREAM | CMS_USE_KEYID;
	if (!(cert = recipient_cert(recipient))) goto done;
	if (!(cms = CMS_encrypt(NULL, NULL, EVP_aes_256_cbc(), flags))) goto done;
	CMS_RecipientInfo *ri = CMS_add1_recipient_cert(cms, cert, flags | CMS_KEY_PARAM);
	if (!ri) goto done;
	EVP_PKEY_CTX *pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
	if (!pctx || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0)
		goto done;
	in = BIO_new_mem_buf(plain ? (const void *)plain : "", (int)plain_len);
	out = BIO_new(BIO_s_mem());
	if (!in || !out) {
		r = -ENOMEM;
		goto done;
	}
	/* Streaming output gives indefinite lengths and a constructed [0] content, as KMS sends. */
	if (!i2d_CMS_bio_stream(out, cms, in, flags)) goto done;
	char *data;
	long n = BIO_get_mem_data(out, &data);
	if (n <= 0) goto done;
	*ret = malloc((size_t)n);
	if (!*ret) {
		r = -ENOMEM;
		goto done;
	}
	memcpy(*ret, data, (size_t)n);
	*ret_len = (size_t)n;
	r = 0;
done:
	BIO_free(in);
	BIO_free(out);
	CMS_ContentInfo_free(cms);
	X509_free(cert);
	ERR_clear_error();
	return r;
}

const char *cms_strerror(int r) {
	switch (r) {
	case -ENODATA: return "truncated";
	case -EBADMSG: return "malformed";
	case -E2BIG: return "too large";
	case -EPROTONOSUPPORT: return "unsupported algorithm or content type";
	case -EPROTO: return "wrong version";
	case -EINVAL: return "invalid parameter";
	case -EKEYREJECTED: return "key unwrap failed";
	case -EBADE: return "content decryption failed";
	case -ENOMEM: return "out of memory";
	default: return "crypto failure";
	}
}
