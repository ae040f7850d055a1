/* x509-chain.c: fixed-order certificate path validation (see x509-chain.h).
 *
 * Certificates are decoded with OpenSSL's ASN.1 templates, but into our own Certificate type whose
 * SubjectPublicKeyInfo stays raw: d2i_X509 in OpenSSL 3 builds an EVP_PKEY for every certificate, which
 * costs about 150 us, more than a third of a P-384 signature check, and five of those per document made the
 * 2 ms budget impossible. Extensions still go through OpenSSL's decoders; signatures through p384 (nettle). */
#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "x509-chain.h"
#include "util.h"

/* RFC 5280 section 4.1, the parts we read. */
typedef struct {
	X509_ALGOR *algor;
	ASN1_BIT_STRING *public_key;
} EML_SPKI;

typedef struct {
	ASN1_INTEGER *version;
	ASN1_INTEGER *serial;
	X509_ALGOR *signature;
	X509_NAME *issuer;
	X509_VAL *validity;
	X509_NAME *subject;
	EML_SPKI *spki;
	ASN1_BIT_STRING *issuer_uid;
	ASN1_BIT_STRING *subject_uid;
	STACK_OF(X509_EXTENSION) *extensions;
} EML_TBS;

typedef struct {
	EML_TBS *tbs;
	X509_ALGOR *sig_alg;
	ASN1_BIT_STRING *signature;
} EML_CERT;

ASN1_SEQUENCE(EML_SPKI) = {
	ASN1_SIMPLE(EML_SPKI, algor, X509_ALGOR),
	ASN1_SIMPLE(EML_SPKI, public_key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(EML_SPKI)

ASN1_SEQUENCE(EML_TBS) = {
	ASN1_EXP_OPT(EML_TBS, version, ASN1_INTEGER, 0),
	ASN1_SIMPLE(EML_TBS, serial, ASN1_INTEGER),
	ASN1_SIMPLE(EML_TBS, signature, X509_ALGOR),
	ASN1_SIMPLE(EML_TBS, issuer, X509_NAME),
	ASN1_SIMPLE(EML_TBS, validity, X509_VAL),
	ASN1_SIMPLE(EML_TBS, subject, X509_NAME),
	ASN1_SIMPLE(EML_TBS, spki, EML_SPKI),
	ASN1_IMP_OPT(EML_TBS, issuer_uid, ASN1_BIT_STRING, 1),
	ASN1_IMP_OPT(EML_TBS, subject_uid, ASN1_BIT_STRING, 2),
	ASN1_EXP_SEQUENCE_OF_OPT(EML_TBS, extensions, X509_EXTENSION, 3),
} static_ASN1_SEQUENCE_END(EML_TBS)

ASN1_SEQUENCE(EML_CERT) = {
	ASN1_SIMPLE(EML_CERT, tbs, EML_TBS),
	ASN1_SIMPLE(EML_CERT, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(EML_CERT, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(EML_CERT)

/* What the path checks need from one certificate, decoded once. */
struct cert {
	atomic_int refs;
	EML_CERT *c;
	const uint8_t *tbs;   /* into the caller's DER (NULL once cached: never needed again) */
	size_t tbs_len;
	time_t not_before, not_after;
	uint8_t point[P384_POINT_LEN];
	bool ca;
	long pathlen;         /* -1: no limit */
	bool has_ku;
	uint32_t ku;          /* KU_* bits */
	ASN1_OCTET_STRING *skid;
	AUTHORITY_KEYID *akid;
};

struct X509Root {
	struct cert *cert;
	uint8_t *der;
	size_t der_len;
	uint8_t fingerprint[SHA256_DIGEST_LENGTH];
};

struct cache_entry {
	bool used;
	uint8_t key[SHA256_DIGEST_LENGTH];
	struct cert *last;                /* the bundle's last certificate: the leaf's issuer */
	time_t not_before, not_after;     /* intersection of the bundle's validity windows */
};

struct X509PathCache {
	pthread_mutex_t lock;
	struct cache_entry *entries;
	size_t capacity, next;
	uint64_t hits;
};

static void cert_unref(struct cert *c) {
	if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
	ASN1_item_free((ASN1_VALUE *)c->c, ASN1_ITEM_rptr(EML_CERT));
	ASN1_OCTET_STRING_free(c->skid);
	AUTHORITY_KEYID_free(c->akid);
	free(c);
}

static struct cert *cert_ref(struct cert *c) {
	atomic_fetch_add(&c->refs, 1);
	return c;
}

/* The to-be-signed bytes exactly as encoded: the first element of the outer SEQUENCE (definite lengths). */
static int der_tbs_span(const uint8_t *der, size_t len, const uint8_t **ret, size_t *ret_len) {
	size_t off = 0;
	for (int level = 0; level < 2; level++) {
		if (off + 2 > len || der[off] != 0x30) return -EBADMSG;
		size_t start = off, l;
		uint8_t b = der[off + 1];
		off += 2;
		if (b < 0x80)
			l = b;
		else {
			size_t nb = b & 0x7f;
			if (nb == 0 || nb > 3 || off + nb > len) return -EBADMSG;
			l = 0;
			for (size_t i = 0; i < nb; i++) l = l << 8 | der[off++];
		}
		if (l > len - off) return -EBADMSG;
		if (level == 0 && off + l != len) return -EBADMSG; /* trailing bytes */
		if (level == 1) {
			*ret = der + start;
			*ret_len = off - start + l;
			return 0;
		}
	}
	return -EBADMSG;
}

static int asn1_to_time(const ASN1_TIME *a, time_t *ret) {
	struct tm tm;
	if (!a || !ASN1_TIME_to_tm(a, &tm)) return -EBADMSG;
	*ret = timegm(&tm);
	return 0;
}

static bool is_ecdsa_sha384(const X509_ALGOR *a) {
	const ASN1_OBJECT *oid;
	int ptype;
	X509_ALGOR_get0(&oid, &ptype, NULL, a);
	/* RFC 5758 section 3.2: the parameters field is absent */
	return OBJ_obj2nid(oid) == NID_ecdsa_with_SHA384 && ptype == V_ASN1_UNDEF;
}

/* Extensions: the ones path validation reads are decoded (a malformed one fails); any other critical
 * extension fails; each extension at most once. */
static int cert_extensions(struct cert *c, size_t idx, char *reason, size_t size) {
	const STACK_OF(X509_EXTENSION) *exts = c->c->tbs->extensions;
	bool seen_bc = false;
	c->pathlen = -1;
	for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
		X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
		int nid = OBJ_obj2nid(X509_EXTENSION_get_object(e));
		for (int j = 0; j < i; j++)
			if (OBJ_cmp(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, j)), X509_EXTENSION_get_object(e)) == 0)
				return errorf(-EKEYREJECTED, reason, size, "certificate %zu repeats an extension", idx);
		switch (nid) {
		case NID_basic_constraints: {
			BASIC_CONSTRAINTS *bc = X509V3_EXT_d2i(e);
			if (!bc) return errorf(-EKEYREJECTED, reason, size, "certificate %zu: bad basicConstraints", idx);
			c->ca = bc->ca != 0;
			if (bc->pathlen) {
				long pl = ASN1_INTEGER_get(bc->pathlen);
				if (pl < 0 || !c->ca) {
					BASIC_CONSTRAINTS_free(bc);
					return errorf(-EKEYREJECTED, reason, size, "certificate %zu: bad pathLenConstraint", idx);
				}
				c->pathlen = pl;
			}
			BASIC_CONSTRAINTS_free(bc);
			seen_bc = true;
			break;
		}
		case NID_key_usage: {
			ASN1_BIT_STRING *ku = X509V3_EXT_d2i(e);
			if (!ku) return errorf(-EKEYREJECTED, reason, size, "certificate %zu: bad keyUsage", idx);
			c->has_ku = true;
			c->ku = 0;
			for (int b = 0; b < 9; b++)
				if (ASN1_BIT_STRING_get_bit(ku, b)) c->ku |= b < 8 ? (0x80u >> b) : 0x8000u;
			ASN1_BIT_STRING_free(ku);
			break;
		}
		case NID_subject_key_identifier:
			c->skid = X509V3_EXT_d2i(e);
			if (!c->skid) return errorf(-EKEYREJECTED, reason, size, "certificate %zu: bad subjectKeyIdentifier", idx);
			break;
		case NID_authority_key_identifier:
			c->akid = X509V3_EXT_d2i(e);
			if (!c->akid) return errorf(-EKEYREJECTED, reason, size, "certificate %zu: bad authorityKeyIdentifier", idx);
			break;
		default:
			/* name and policy constraints, extended key usage ... would change the verdict: fail closed */
			if (X509_EXTENSION_get_critical(e))
				return errorf(-EKEYREJECTED, reason, size, "certificate %zu has an unsupported critical extension", idx);
		}
	}
	(void)seen_bc;
	return 0;
}

/* Decode and check everything about one certificate that does not involve its issuer. */
static int cert_parse(const struct x509_der *der, size_t idx, struct cert **ret, char *reason, size_t size) {
	if (!der->data || der->len == 0 || der->len > X509_CHAIN_MAX_CERT)
		return errorf(-EBADMSG, reason, size, "certificate %zu has a bad size", idx);
	struct cert *c = calloc(1, sizeof *c);
	if (!c) return -ENOMEM;
	atomic_init(&c->refs, 1);
	int r;
	if (der_tbs_span(der->data, der->len, &c->tbs, &c->tbs_len) < 0) {
		r = errorf(-EBADMSG, reason, size, "certificate %zu is not DER", idx);
		goto fail;
	}
	const uint8_t *p = der->data;
	c->c = (EML_CERT *)ASN1_item_d2i(NULL, &p, (long)der->len, ASN1_ITEM_rptr(EML_CERT));
	if (!c->c || p != der->data + der->len) {
		r = errorf(-EBADMSG, reason, size, "certificate %zu does not parse", idx);
		goto fail;
	}
	EML_TBS *t = c->c->tbs;
	r = -EKEYREJECTED;
	if (!t->version || ASN1_INTEGER_get(t->version) != 2) {
		errorf(r, reason, size, "certificate %zu is not X.509 v3", idx);
		goto fail;
	}
	if (!is_ecdsa_sha384(c->c->sig_alg) || X509_ALGOR_cmp(c->c->sig_alg, t->signature) != 0) {
		errorf(r, reason, size, "certificate %zu is not signed with ecdsa-with-SHA384", idx);
		goto fail;
	}
	if (c->c->signature->flags & 0x07) {
		errorf(r, reason, size, "certificate %zu: malformed signature", idx);
		goto fail;
	}
	if (asn1_to_time(t->validity->notBefore, &c->not_before) < 0 ||
	    asn1_to_time(t->validity->notAfter, &c->not_after) < 0) {
		r = errorf(-EBADMSG, reason, size, "certificate %zu has a malformed validity", idx);
		goto fail;
	}
	const ASN1_OBJECT *kalg;
	int ptype;
	const void *pval;
	X509_ALGOR_get0(&kalg, &ptype, &pval, t->spki->algor);
	const ASN1_BIT_STRING *pk = t->spki->public_key;
	if (OBJ_obj2nid(kalg) != NID_X9_62_id_ecPublicKey || ptype != V_ASN1_OBJECT || OBJ_obj2nid(pval) != NID_secp384r1 ||
	    pk->length != P384_POINT_LEN || pk->data[0] != 0x04 || (pk->flags & 0x07)) {
		errorf(r, reason, size, "certificate %zu key is not an uncompressed P-384 point", idx);
		goto fail;
	}
	memcpy(c->point, pk->data, P384_POINT_LEN);
	r = cert_extensions(c, idx, reason, size);
	if (r < 0) goto fail;
	*ret = c;
	return 0;
fail:
	cert_unref(c);
	return r;
}

static int check_times(time_t nb, time_t na, time_t t_doc, time_t t_verify, const char *what, char *reason,
		       size_t size) {
	if (t_doc < nb || t_doc > na)
		return errorf(-EKEYEXPIRED, reason, size, "%s is not valid at the document's time", what);
	if (t_verify < nb || t_verify > na)
		return errorf(-EKEYEXPIRED, reason, size, "%s is not valid at the verification time", what);
	return 0;
}

/* issuer -> subject: names and key identifiers, issuer is a CA allowed to sign certificates. The signature
 * itself is a separate job (struct sig_job) so that the links' signatures can run on two threads. */
static int check_link_names(const struct cert *issuer, const struct cert *subject, size_t idx, char *reason,
			    size_t size) {
	if (X509_NAME_cmp(subject->c->tbs->issuer, issuer->c->tbs->subject) != 0)
		return errorf(-EKEYREJECTED, reason, size, "certificate %zu: issuer name mismatch", idx);
	if (subject->akid && subject->akid->keyid && issuer->skid &&
	    ASN1_OCTET_STRING_cmp(subject->akid->keyid, issuer->skid) != 0)
		return errorf(-EKEYREJECTED, reason, size, "certificate %zu: authority key identifier mismatch", idx);
	if (!issuer->ca) return errorf(-EKEYREJECTED, reason, size, "issuer of certificate %zu is not a CA", idx);
	if (issuer->has_ku && !(issuer->ku & KU_KEY_CERT_SIGN))
		return errorf(-EKEYREJECTED, reason, size, "issuer of certificate %zu may not sign certificates", idx);
	return 0;
}

/* Everything about the leaf but its signature; on success *ret holds the parsed leaf. */
static int check_leaf(const struct cert *issuer, const struct x509_der *leaf, size_t idx, time_t t_doc,
		      time_t t_verify, struct cert **ret, char *reason, size_t size) {
	struct cert *c = NULL;
	int r = cert_parse(leaf, idx, &c, reason, size);
	if (r < 0) return r == -EBADMSG ? errorf(r, reason, size, "leaf certificate does not parse") : r;
	if (c->ca)
		r = errorf(-EKEYREJECTED, reason, size, "leaf certificate is a CA");
	else if (c->has_ku && !(c->ku & KU_DIGITAL_SIGNATURE))
		r = errorf(-EKEYREJECTED, reason, size, "leaf certificate may not sign");
	else
		r = check_times(c->not_before, c->not_after, t_doc, t_verify, "leaf certificate", reason, size);
	if (r == 0) r = check_link_names(issuer, c, idx, reason, size);
	if (r < 0) {
		cert_unref(c);
		return r;
	}
	*ret = c;
	return 0;
}

/* --- signature jobs ----------------------------------------------------------------------------------- */

/* One signature check: subject's signature under issuer's key, or (subject NULL) the caller's leaf check. */
struct sig_job {
	const struct cert *issuer, *subject;
	size_t idx;
	const struct x509_chain_opts *opts;
	int r;
};

struct sig_batch {
	struct sig_job *jobs;
	size_t n;
};

static void sig_job_run(struct sig_job *j) {
	if (!j->subject) {
		j->opts->leaf_check(j->issuer->point, j->opts->userdata);
		j->r = 0;
		return;
	}
	const ASN1_BIT_STRING *sig = j->subject->c->signature;
	j->r = p384_verify_der(j->issuer->point, j->subject->tbs, j->subject->tbs_len, sig->data, (size_t)sig->length)
	       < 0 ? -EKEYREJECTED : 0;
}

static void *sig_batch_run(void *userdata) {
	struct sig_batch *b = userdata;
	for (size_t i = 0; i < b->n; i++) sig_job_run(&b->jobs[i]);
	return NULL;
}

/* The jobs are independent (each reads its own two certificates, and nettle keeps no global state): a
 * short-lived worker takes the first half while the caller does the rest; creating and joining a thread
 * costs tens of microseconds against 0.4 ms per check. Where no thread can be made, all run here. */
static void sig_jobs_run(struct sig_job *jobs, size_t n, bool sequential) {
	struct sig_batch mine = {jobs, n}, theirs = {jobs, n / 2};
	pthread_t worker;
	bool spawned = false;
	if (!sequential && n >= 2 && pthread_create(&worker, NULL, sig_batch_run, &theirs) == 0) {
		spawned = true;
		mine = (struct sig_batch){jobs + n / 2, n - n / 2};
	}
	sig_batch_run(&mine);
	if (spawned) pthread_join(worker, NULL);
}

/* --- roots -------------------------------------------------------------------------------------------- */

static int root_adopt_der(uint8_t *der, size_t len, X509Root **ret) {
	X509Root *r = calloc(1, sizeof *r);
	if (!r) {
		OPENSSL_free(der);
		return -ENOMEM;
	}
	r->der = der;
	r->der_len = len;
	struct x509_der d = {der, len};
	int k = cert_parse(&d, 0, &r->cert, NULL, 0);
	if (k < 0 || !r->cert->ca) {
		x509_root_free(r);
		return k == -ENOMEM ? k : -EBADMSG;
	}
	r->cert->tbs = NULL; /* a root's own signature is never checked: it is pinned */
	SHA256(der, len, r->fingerprint);
	*ret = r;
	return 0;
}

static int root_adopt_x509(X509 *x, X509Root **ret) {
	uint8_t *der = NULL;
	int n = i2d_X509(x, &der);
	X509_free(x);
	if (n <= 0) return -EBADMSG;
	return root_adopt_der(der, (size_t)n, ret);
}

int x509_root_from_pem(const uint8_t *pem, size_t len, X509Root **ret) {
	if (!pem || !ret || len > 64 * 1024) return -EINVAL;
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (!b) return -ENOMEM;
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL), *more = x ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	ERR_clear_error();
	if (!x || more) { /* one root, not a bundle: which one would be meant? */
		X509_free(x);
		X509_free(more);
		return -EBADMSG;
	}
	return root_adopt_x509(x, ret);
}

int x509_root_from_der(const uint8_t *der, size_t len, X509Root **ret) {
	if (!der || !ret || len == 0 || len > X509_CHAIN_MAX_CERT) return -EINVAL;
	uint8_t *copy = OPENSSL_malloc(len);
	if (!copy) return -ENOMEM;
	memcpy(copy, der, len);
	return root_adopt_der(copy, len, ret);
}

int x509_root_load_pem(const char *path, X509Root **ret) {
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f) return negerrno();
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL), *more = x ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	ERR_clear_error();
	if (!x || more) {
		X509_free(x);
		X509_free(more);
		return -EBADMSG;
	}
	return root_adopt_x509(x, ret);
}

const uint8_t *x509_root_der(const X509Root *root, size_t *ret_len) {
	*ret_len = root->der_len;
	return root->der;
}

const uint8_t *x509_root_fingerprint(const X509Root *root) { return root ? root->fingerprint : NULL; }

X509Root *x509_root_free(X509Root *root) {
	if (!root) return NULL;
	cert_unref(root->cert);
	OPENSSL_free(root->der);
	free(root);
	return NULL;
}

/* --- cache -------------------------------------------------------------------------------------------- */

int x509_path_cache_new(size_t capacity, X509PathCache **ret) {
	if (!ret || capacity == 0 || capacity > 4096) return -EINVAL;
	X509PathCache *c = calloc(1, sizeof *c);
	if (!c) return -ENOMEM;
	c->entries = calloc(capacity, sizeof *c->entries);
	if (!c->entries) {
		free(c);
		return -ENOMEM;
	}
	c->capacity = capacity;
	pthread_mutex_init(&c->lock, NULL);
	*ret = c;
	return 0;
}

X509PathCache *x509_path_cache_free(X509PathCache *c) {
	if (!c) return NULL;
	for (size_t i = 0; i < c->capacity; i++) cert_unref(c->entries[i].last);
	free(c->entries);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return NULL;
}

uint64_t x509_path_cache_hits(X509PathCache *c) {
	if (!c) return 0;
	pthread_mutex_lock(&c->lock);
	uint64_t h = c->hits;
	pthread_mutex_unlock(&c->lock);
	return h;
}

static void cache_key(const X509Root *root, const struct x509_der *bundle, size_t n, uint8_t key[32]) {
	uint8_t hashes[(1 + X509_CHAIN_MAX_BUNDLE) * SHA256_DIGEST_LENGTH];
	memcpy(hashes, root->fingerprint, SHA256_DIGEST_LENGTH);
	for (size_t i = 0; i < n; i++) SHA256(bundle[i].data, bundle[i].len, hashes + (1 + i) * SHA256_DIGEST_LENGTH);
	SHA256(hashes, (1 + n) * SHA256_DIGEST_LENGTH, key);
}

/* On a hit, a reference to the entry's certificate (the entry may be evicted meanwhile). */
static bool cache_lookup(X509PathCache *c, const uint8_t key[32], struct cache_entry *ret) {
	bool hit = false;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->capacity; i++) {
		struct cache_entry *e = &c->entries[i];
		if (e->used && memcmp(e->key, key, 32) == 0) {
			*ret = *e;
			cert_ref(e->last);
			c->hits++;
			hit = true;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

static void cache_store(X509PathCache *c, const uint8_t key[32], struct cert *last, time_t nb, time_t na) {
	pthread_mutex_lock(&c->lock);
	struct cache_entry *e = &c->entries[c->next];
	c->next = (c->next + 1) % c->capacity;
	cert_unref(e->last);
	*e = (struct cache_entry){.used = true, .last = cert_ref(last), .not_before = nb, .not_after = na};
	memcpy(e->key, key, 32);
	pthread_mutex_unlock(&c->lock);
}

/* --- the path ----------------------------------------------------------------------------------------- */

/* The walk does every check but the signatures in the serial order and stops at the first failure; the
 * signatures of the links before that point are then checked (in parallel), and the verdict is the first
 * failure in the serial order: an earlier bad signature wins over a later failure, as if one by one. */
int x509_chain_verify_opts(const X509Root *root, const struct x509_der *bundle, size_t n,
			   const struct x509_der *leaf, time_t t_doc, time_t t_verify, X509PathCache *cache,
			   const struct x509_chain_opts *opts, uint8_t ret_leaf_point[P384_POINT_LEN], char *reason,
			   size_t size) {
	if (!root || !leaf || (n && !bundle)) return -EINVAL;
	if (n == 0 || n > X509_CHAIN_MAX_BUNDLE)
		return errorf(-EBADMSG, reason, size, "CA bundle has %zu certificates", n);
	if (bundle[0].len != root->der_len || memcmp(bundle[0].data, root->der, root->der_len) != 0)
		return errorf(-ENOKEY, reason, size, "CA bundle does not start with the pinned root");

	struct cert *certs[X509_CHAIN_MAX_BUNDLE] = {0}, *leaf_cert = NULL;
	const struct cert *issuer = NULL;
	struct sig_job jobs[X509_CHAIN_MAX_BUNDLE + 1]; /* n - 1 links, the leaf, the caller's check */
	size_t n_jobs = 0;
	struct cache_entry hit = {0};
	time_t win_nb = 0, win_na = 0;
	uint8_t key[32];
	int r;

	if (cache) {
		cache_key(root, bundle, n, key);
		hit.used = cache_lookup(cache, key, &hit);
	}
	if (hit.used) {
		r = check_times(hit.not_before, hit.not_after, t_doc, t_verify, "a CA bundle certificate", reason, size);
		issuer = hit.last;
	} else {
		win_nb = root->cert->not_before;
		win_na = root->cert->not_after;
		r = check_times(win_nb, win_na, t_doc, t_verify, "the root certificate", reason, size);
		if (r < 0) return r;
		certs[0] = cert_ref(root->cert);
		for (size_t i = 1; i < n && r == 0; i++) {
			r = cert_parse(&bundle[i], i, &certs[i], reason, size);
			if (r < 0) break;
			char what[48];
			snprintf(what, sizeof what, "CA bundle certificate %zu", i);
			r = check_times(certs[i]->not_before, certs[i]->not_after, t_doc, t_verify, what, reason, size);
			if (r < 0) break;
			win_nb = MAX(win_nb, certs[i]->not_before);
			win_na = MIN(win_na, certs[i]->not_after);
			if (!certs[i]->ca) {
				r = errorf(-EKEYREJECTED, reason, size, "certificate %zu is not a CA", i);
				break;
			}
			r = check_link_names(certs[i - 1], certs[i], i, reason, size);
			if (r == 0) jobs[n_jobs++] = (struct sig_job){.issuer = certs[i - 1], .subject = certs[i], .idx = i};
		}
		/* path lengths: CA certificates below each one, the leaf not counted (RFC 5280 section 4.2.1.9) */
		for (size_t i = 0; i < n && r == 0; i++)
			if (certs[i]->pathlen >= 0 && (long)(n - 1 - i) > certs[i]->pathlen)
				r = errorf(-EKEYREJECTED, reason, size, "certificate %zu path length exceeded", i);
		issuer = certs[n - 1];
	}
	if (r == 0) r = check_leaf(issuer, leaf, n, t_doc, t_verify, &leaf_cert, reason, size);
	if (r == 0) {
		jobs[n_jobs++] = (struct sig_job){.issuer = issuer, .subject = leaf_cert, .idx = n};
		if (opts && opts->leaf_check) jobs[n_jobs++] = (struct sig_job){.issuer = leaf_cert, .opts = opts};
	}
	sig_jobs_run(jobs, n_jobs, opts && opts->sequential);
	for (size_t j = 0; j < n_jobs; j++)
		if (jobs[j].r < 0) {
			r = errorf(jobs[j].r, reason, size, "certificate %zu: bad signature", jobs[j].idx);
			break;
		}
	if (r < 0) goto done;
	if (ret_leaf_point) memcpy(ret_leaf_point, leaf_cert->point, P384_POINT_LEN);
	if (cache && !hit.used) {
		certs[n - 1]->tbs = NULL; /* points into the caller's buffer; only its key and names are kept */
		cache_store(cache, key, certs[n - 1], win_nb, win_na);
	}
done:
	cert_unref(leaf_cert);
	cert_unref(hit.last);
	for (size_t i = 0; i < n; i++) cert_unref(certs[i]);
	return r;
}

int x509_chain_verify(const X509Root *root, const struct x509_der *bundle, size_t n, const struct x509_der *leaf,
		      time_t t_doc, time_t t_verify, X509PathCache *cache, uint8_t ret_leaf_point[P384_POINT_LEN],
		      char *reason, size_t size) {
	return x509_chain_verify_opts(root, bundle, n, leaf, t_doc, t_verify, cache, NULL, ret_leaf_point, reason,
				      size);
}
