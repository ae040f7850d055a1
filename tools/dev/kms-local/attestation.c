/* attestation.c: the Recipient's attestation document, as KMS checks it before answering with
 * CiphertextForRecipient: untagged (or tag 18) COSE_Sign1 with ES384, payload fields of the NSM document, the
 * certificate chain from the pinned root (cabundle[0] must be it) to the leaf at the document's time, freshness,
 * then the PCRs and the RSA public key.
 *
 * This is eml-kms-local's own compact check, written with OpenSSL and libcbor, standing in until the project's
 * attestation verifier (lib/attest_verify.h) lands; attestation_verify_recipient() is the one hook to switch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include "kms-local.h"
#include "macro.h"
#include "util.h"

#define MAX_CABUNDLE 8
#define MAX_CERT 4096

int attestation_config_load(struct attestation_config *c, const char *root_pem, uint64_t max_age) {
	*c = (struct attestation_config){.max_age = max_age};
	if (!root_pem) return 0;
	FILE *f = fopen(root_pem, "re");
	if (!f) return negerrno();
	c->root = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return c->root ? 0 : -EBADMSG;
}

void attestation_config_done(struct attestation_config *c) {
	X509_free(c->root);
	c->root = NULL;
}

void recipient_done(struct recipient *r) {
	if (!r) return;
	EVP_PKEY_free(r->public_key);
	r->public_key = NULL;
}

/* Borrowed value of a text key in a CBOR map, or NULL. */
static cbor_item_t *map_get(cbor_item_t *map, const char *key) {
	struct cbor_pair *p = cbor_map_handle(map);
	size_t kl = strlen(key);
	for (size_t i = 0; i < cbor_map_size(map); i++)
		if (cbor_isa_string(p[i].key) && cbor_string_is_definite(p[i].key) && cbor_string_length(p[i].key) == kl &&
		    memcmp(cbor_string_handle(p[i].key), key, kl) == 0)
			return p[i].value;
	return NULL;
}

static bool is_bytes(cbor_item_t *i) { return i && cbor_isa_bytestring(i) && cbor_bytestring_is_definite(i); }

/* CBOR head for a byte string of length n (major type 2). */
static size_t bstr_head(uint8_t *out, size_t n) {
	if (n < 24) return out[0] = (uint8_t)(0x40 | n), 1;
	if (n < 256) return out[0] = 0x58, out[1] = (uint8_t)n, 2;
	if (n < 65536) return out[0] = 0x59, out[1] = (uint8_t)(n >> 8), out[2] = (uint8_t)n, 3;
	out[0] = 0x5a;
	for (int i = 0; i < 4; i++) out[1 + i] = (uint8_t)(n >> (24 - 8 * i));
	return 5;
}

/* Sig_structure = ["Signature1", protected, h'', payload] (RFC 9052 4.4), definite lengths. */
static int sig_structure(cbor_item_t *prot, cbor_item_t *payload, uint8_t **ret, size_t *ret_len) {
	size_t pl = cbor_bytestring_length(prot), yl = cbor_bytestring_length(payload);
	uint8_t *b = malloc(1 + 11 + 5 + pl + 1 + 5 + yl), *p = b;
	if (!b) return -ENOMEM;
	*p++ = 0x84;
	*p++ = 0x6a;
	memcpy(p, "Signature1", 10);
	p += 10;
	p += bstr_head(p, pl);
	memcpy(p, cbor_bytestring_handle(prot), pl);
	p += pl;
	*p++ = 0x40;
	p += bstr_head(p, yl);
	memcpy(p, cbor_bytestring_handle(payload), yl);
	p += yl;
	*ret = b;
	*ret_len = (size_t)(p - b);
	return 0;
}

static bool es384_verify(X509 *leaf, const uint8_t *tbs, size_t tbs_len, const uint8_t sig[96]) {
	EVP_PKEY *pk = X509_get0_pubkey(leaf);
	char group[32] = "";
	if (!pk || EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC ||
	    !EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) ||
	    strcmp(group, "secp384r1") != 0)
		return false;
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, 48, NULL), *ss = BN_bin2bn(sig + 48, 48, NULL);
	uint8_t *der = NULL;
	int der_len = -1;
	bool ok = false;
	if (s && r && ss && ECDSA_SIG_set0(s, r, ss)) {
		r = ss = NULL;
		der_len = i2d_ECDSA_SIG(s, &der);
	}
	if (der_len > 0) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, pk) == 1 &&
		     EVP_DigestVerify(md, der, (size_t)der_len, tbs, tbs_len) == 1;
		EVP_MD_CTX_free(md);
	}
	OPENSSL_free(der);
	BN_free(r);
	BN_free(ss);
	ECDSA_SIG_free(s);
	return ok;
}

static X509 *cert_from(cbor_item_t *i) {
	if (!is_bytes(i) || cbor_bytestring_length(i) > MAX_CERT) return NULL;
	const uint8_t *p = cbor_bytestring_handle(i);
	X509 *x = d2i_X509(NULL, &p, (long)cbor_bytestring_length(i));
	if (x && p != cbor_bytestring_handle(i) + cbor_bytestring_length(i)) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static bool chain_ok(const struct attestation_config *c, X509 *leaf, cbor_item_t *bundle, time_t at,
		     const char **why) {
	size_t n = cbor_array_size(bundle);
	cbor_item_t **items = cbor_array_handle(bundle);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	bool ok = false;
	if (!store || !ctx || !untrusted || X509_STORE_add_cert(store, c->root) != 1) {
		*why = "out of memory";
		goto done;
	}
	/* cabundle[0] must be our pinned root, byte for byte. */
	uint8_t *root_der = NULL;
	int rl = i2d_X509(c->root, &root_der);
	bool same = rl > 0 && is_bytes(items[0]) && cbor_bytestring_length(items[0]) == (size_t)rl &&
		    memcmp(cbor_bytestring_handle(items[0]), root_der, (size_t)rl) == 0;
	OPENSSL_free(root_der);
	if (!same) {
		*why = "cabundle does not start with the pinned root";
		goto done;
	}
	for (size_t i = 1; i < n; i++) {
		X509 *x = cert_from(items[i]);
		if (!x || !sk_X509_push(untrusted, x)) {
			X509_free(x);
			*why = "cabundle certificate does not parse";
			goto done;
		}
	}
	if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
		*why = "out of memory";
		goto done;
	}
	X509_STORE_CTX_set_time(ctx, 0, at);
	if (X509_verify_cert(ctx) != 1) {
		*why = "certificate chain does not verify to the pinned root at the document's time";
		goto done;
	}
	ok = true;
done:
	sk_X509_pop_free(untrusted, X509_free);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ok;
}

int attestation_verify_recipient(const struct attestation_config *c, const uint8_t *doc, size_t len, time_t now,
				 struct recipient *ret, const char **ret_reason) {
	const char *why = "malformed attestation document";
	struct cbor_load_result res;
	cbor_item_t *root = NULL, *payload_map = NULL, *prot_map = NULL;
	X509 *leaf = NULL;
	uint8_t *tbs = NULL;
	size_t tbs_len;
	struct recipient rec = {};
	int r = -EBADMSG;

	if (!c->root) {
		why = "no attestation root configured: Recipient refused";
		r = -EPERM;
		goto done;
	}
	if (len == 0 || len > KMS_MAX_ATTESTATION_DOC) {
		why = "attestation document empty or too large";
		goto done;
	}
	root = cbor_load(doc, len, &res);
	if (!root || res.error.code != CBOR_ERR_NONE || res.read != len) goto done;
	cbor_item_t *arr = root;
	if (cbor_isa_tag(root) && cbor_tag_value(root) == 18) arr = cbor_tag_item(root); /* a new reference */
	if (!cbor_isa_array(arr) || !cbor_array_is_definite(arr) || cbor_array_size(arr) != 4) goto done_tag;
	cbor_item_t **a = cbor_array_handle(arr);
	if (!is_bytes(a[0]) || !cbor_isa_map(a[1]) || !is_bytes(a[2]) || !is_bytes(a[3])) goto done_tag;
	if (cbor_bytestring_length(a[3]) != 96) {
		why = "signature is not 96 bytes (ES384 r||s)";
		goto done_tag;
	}
	/* protected = {1: -35} (alg ES384) and nothing else. */
	prot_map = cbor_load(cbor_bytestring_handle(a[0]), cbor_bytestring_length(a[0]), &res);
	if (!prot_map || res.read != cbor_bytestring_length(a[0]) || !cbor_isa_map(prot_map) || cbor_map_size(prot_map) != 1 ||
	    !cbor_isa_uint(cbor_map_handle(prot_map)[0].key) || cbor_get_int(cbor_map_handle(prot_map)[0].key) != 1 ||
	    !cbor_isa_negint(cbor_map_handle(prot_map)[0].value) || cbor_get_int(cbor_map_handle(prot_map)[0].value) != 34) {
		why = "protected header is not {alg: ES384}";
		goto done_tag;
	}
	payload_map = cbor_load(cbor_bytestring_handle(a[2]), cbor_bytestring_length(a[2]), &res);
	if (!payload_map || res.read != cbor_bytestring_length(a[2]) || !cbor_isa_map(payload_map)) {
		why = "payload is not a CBOR map";
		goto done_tag;
	}
	cbor_item_t *module = map_get(payload_map, "module_id"), *digest = map_get(payload_map, "digest"),
		    *ts = map_get(payload_map, "timestamp"), *pcrs = map_get(payload_map, "pcrs"),
		    *cert = map_get(payload_map, "certificate"), *bundle = map_get(payload_map, "cabundle"),
		    *pub = map_get(payload_map, "public_key");
	if (!module || !cbor_isa_string(module) || !cbor_string_is_definite(module) || cbor_string_length(module) == 0 ||
	    cbor_string_length(module) >= sizeof rec.module_id || !digest || !cbor_isa_string(digest) ||
	    cbor_string_length(digest) != 6 || memcmp(cbor_string_handle(digest), "SHA384", 6) != 0 || !ts ||
	    !cbor_isa_uint(ts) || !pcrs || !cbor_isa_map(pcrs) || !cert || !bundle || !cbor_isa_array(bundle) ||
	    cbor_array_size(bundle) == 0 || cbor_array_size(bundle) > MAX_CABUNDLE) {
		why = "attestation payload lacks a required field or has a wrong type";
		goto done_tag;
	}
	if (!pub || !is_bytes(pub)) {
		why = "attestation document carries no public_key";
		goto done_tag;
	}
	memcpy(rec.module_id, cbor_string_handle(module), cbor_string_length(module));

	/* Signature by the leaf, then the chain, then freshness. */
	if (!(leaf = cert_from(cert))) {
		why = "leaf certificate does not parse";
		goto done_tag;
	}
	if ((r = sig_structure(a[0], a[2], &tbs, &tbs_len)) < 0) goto done_tag;
	r = -EBADMSG;
	if (!es384_verify(leaf, tbs, tbs_len, cbor_bytestring_handle(a[3]))) {
		why = "ES384 signature does not verify";
		r = -EACCES;
		goto done_tag;
	}
	time_t at = (time_t)(cbor_get_int(ts) / 1000);
	if (!chain_ok(c, leaf, bundle, at, &why)) {
		r = -EACCES;
		goto done_tag;
	}
	uint64_t age = (uint64_t)(now > at ? now - at : at - now);
	if (age > c->max_age) {
		why = "attestation document is not fresh";
		r = -ETIME;
		goto done_tag;
	}

	struct cbor_pair *pp = cbor_map_handle(pcrs);
	for (size_t i = 0; i < cbor_map_size(pcrs); i++) {
		if (!cbor_isa_uint(pp[i].key) || !is_bytes(pp[i].value)) {
			why = "malformed pcrs map";
			goto done_tag;
		}
		uint64_t idx = cbor_get_int(pp[i].key);
		size_t l = cbor_bytestring_length(pp[i].value);
		if (idx > 31 || (l != 32 && l != 48 && l != 64)) {
			why = "malformed PCR";
			goto done_tag;
		}
		if (idx < KMS_PCRS) hex_encode(cbor_bytestring_handle(pp[i].value), l, rec.pcr[idx]);
	}
	const uint8_t *p = cbor_bytestring_handle(pub);
	rec.public_key = d2i_PUBKEY(NULL, &p, (long)cbor_bytestring_length(pub));
	if (!rec.public_key || p != cbor_bytestring_handle(pub) + cbor_bytestring_length(pub) ||
	    EVP_PKEY_get_base_id(rec.public_key) != EVP_PKEY_RSA || EVP_PKEY_get_bits(rec.public_key) < 2048 ||
	    EVP_PKEY_get_bits(rec.public_key) > 4096) {
		why = "public_key is not an RSA SubjectPublicKeyInfo of 2048 to 4096 bits";
		r = -EINVAL;
		goto done_tag;
	}
	*ret = rec;
	rec.public_key = NULL;
	r = 0;
	why = NULL;
done_tag:
	if (arr != root) cbor_decref(&arr);
done:
	recipient_done(&rec);
	free(tbs);
	X509_free(leaf);
	if (payload_map) cbor_decref(&payload_map);
	if (prot_map) cbor_decref(&prot_map);
	if (root) cbor_decref(&root);
	ERR_clear_error();
	if (ret_reason) *ret_reason = why;
	return r;
}
