/* x509-chain.c: fixed-order certificate path validation (see x509-chain.h). OpenSSL parses the certificates
 * and decodes their extensions; signatures go through p384 (nettle). */
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>

#include "x509-chain.h"

struct X509Root {
	X509 *cert;
	uint8_t *der;
	size_t der_len;
	uint8_t fingerprint[SHA256_DIGEST_LENGTH];
};

struct cache_entry {
	bool used;
	uint8_t key[SHA256_DIGEST_LENGTH];
	X509 *last;                       /* the bundle's last certificate: the leaf's issuer */
	uint8_t last_point[P384_POINT_LEN];
	time_t not_before, not_after;     /* intersection of the bundle's validity windows */
};

struct X509PathCache {
	pthread_mutex_t lock;
	struct cache_entry *entries;
	size_t capacity, next;
	uint64_t hits;
};

_printf_(4, 5) static int fail(int err, char *reason, size_t size, const char *fmt, ...) {
	if (reason && size) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(reason, size, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* Parse one DER certificate; the whole buffer must be the certificate. */
static X509 *parse_der(const uint8_t *der, size_t len) {
	if (!der || len == 0 || len > X509_CHAIN_MAX_CERT) return NULL;
	const uint8_t *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	if (x && p != der + len) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int root_adopt(X509 *x, X509Root **ret) {
	X509Root *r = calloc(1, sizeof *r);
	if (!r) {
		X509_free(x);
		return -ENOMEM;
	}
	r->cert = x;
	int n = i2d_X509(x, &r->der);
	if (n <= 0) {
		x509_root_free(r);
		return -EBADMSG;
	}
	r->der_len = (size_t)n;
	SHA256(r->der, r->der_len, r->fingerprint);
	*ret = r;
	return 0;
}

int x509_root_from_pem(const uint8_t *pem, size_t len, X509Root **ret) {
	if (!pem || !ret || len > 64 * 1024) return -EINVAL;
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (!b) return -ENOMEM;
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!x) return -EBADMSG;
	return root_adopt(x, ret);
}

int x509_root_from_der(const uint8_t *der, size_t len, X509Root **ret) {
	if (!ret) return -EINVAL;
	X509 *x = parse_der(der, len);
	if (!x) return -EBADMSG;
	return root_adopt(x, ret);
}

int x509_root_load_pem(const char *path, X509Root **ret) {
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f) return negerrno();
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	if (!x) return -EBADMSG;
	return root_adopt(x, ret);
}

const uint8_t *x509_root_der(const X509Root *root, size_t *ret_len) {
	*ret_len = root->der_len;
	return root->der;
}

const uint8_t *x509_root_fingerprint(const X509Root *root) { return root ? root->fingerprint : NULL; }

X509Root *x509_root_free(X509Root *root) {
	if (!root) return NULL;
	X509_free(root->cert);
	OPENSSL_free(root->der);
	free(root);
	return NULL;
}

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
	for (size_t i = 0; i < c->capacity; i++) X509_free(c->entries[i].last);
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

static int asn1_to_time(const ASN1_TIME *a, time_t *ret) {
	struct tm tm;
	if (!a || !ASN1_TIME_to_tm(a, &tm)) return -EBADMSG;
	*ret = timegm(&tm);
	return 0;
}

static int cert_window(X509 *x, time_t *nb, time_t *na) {
	int r = asn1_to_time(X509_get0_notBefore(x), nb);
	if (r < 0) return r;
	return asn1_to_time(X509_get0_notAfter(x), na);
}

/* The to-be-signed bytes exactly as encoded: the first element of the outer SEQUENCE. */
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
		if (level == 1) {
			*ret = der + start;
			*ret_len = off - start + l;
			return 0;
		}
	}
	return -EBADMSG;
}

/* Checks every certificate of the path gets: version, decodable extensions, no unhandled critical one,
 * the signature algorithm. */
static int check_cert(X509 *x, size_t idx, char *reason, size_t size) {
	if (X509_get_version(x) != X509_VERSION_3)
		return fail(-EKEYREJECTED, reason, size, "certificate %zu is not X.509 v3", idx);
	uint32_t fl = X509_get_extension_flags(x);
	if (fl & EXFLAG_INVALID)
		return fail(-EKEYREJECTED, reason, size, "certificate %zu has invalid extensions", idx);
	if (fl & EXFLAG_CRITICAL)
		return fail(-EKEYREJECTED, reason, size, "certificate %zu has an unknown critical extension", idx);
	if (X509_get_signature_nid(x) != NID_ecdsa_with_SHA384 ||
	    X509_ALGOR_cmp(X509_get0_tbs_sigalg(x), ({
			   const X509_ALGOR *a;
			   X509_get0_signature(NULL, &a, x);
			   a;
		   })) != 0)
		return fail(-EKEYREJECTED, reason, size, "certificate %zu is not signed with ecdsa-with-SHA384", idx);
	return 0;
}

static int check_times(time_t nb, time_t na, time_t t_doc, time_t t_verify, const char *what, char *reason,
		       size_t size) {
	if (t_doc < nb || t_doc > na)
		return fail(-EKEYEXPIRED, reason, size, "%s is not valid at the document's time", what);
	if (t_verify < nb || t_verify > na)
		return fail(-EKEYEXPIRED, reason, size, "%s is not valid at the verification time", what);
	return 0;
}

/* issuer -> subject: names and key identifiers, issuer is a CA allowed to sign, signature. */
static int check_link(X509 *issuer, const uint8_t issuer_point[P384_POINT_LEN], X509 *subject,
		      const struct x509_der *subject_der, size_t idx, char *reason, size_t size) {
	int v = X509_check_issued(issuer, subject);
	if (v != X509_V_OK)
		return fail(-EKEYREJECTED, reason, size, "certificate %zu: issuer mismatch (%s)", idx,
			    X509_verify_cert_error_string(v));
	if (!(X509_get_extension_flags(issuer) & EXFLAG_CA))
		return fail(-EKEYREJECTED, reason, size, "issuer of certificate %zu is not a CA", idx);
	const uint8_t *tbs;
	size_t tbs_len;
	if (der_tbs_span(subject_der->data, subject_der->len, &tbs, &tbs_len) < 0)
		return fail(-EBADMSG, reason, size, "certificate %zu: malformed DER", idx);
	const ASN1_BIT_STRING *sig;
	X509_get0_signature(&sig, NULL, subject);
	if (!sig || (sig->flags & 0x07)) /* unused bits */
		return fail(-EKEYREJECTED, reason, size, "certificate %zu: malformed signature", idx);
	int r = p384_verify_der(issuer_point, tbs, tbs_len, sig->data, (size_t)sig->length);
	if (r < 0) return fail(-EKEYREJECTED, reason, size, "certificate %zu: bad signature", idx);
	return 0;
}

static void cache_key(const X509Root *root, const struct x509_der *bundle, size_t n, uint8_t key[32]) {
	uint8_t hashes[(1 + X509_CHAIN_MAX_BUNDLE) * SHA256_DIGEST_LENGTH];
	memcpy(hashes, root->fingerprint, SHA256_DIGEST_LENGTH);
	for (size_t i = 0; i < n; i++) SHA256(bundle[i].data, bundle[i].len, hashes + (1 + i) * SHA256_DIGEST_LENGTH);
	SHA256(hashes, (1 + n) * SHA256_DIGEST_LENGTH, key);
}

/* Looks up key; on a hit copies what the leaf check needs (with a reference on the certificate). */
static bool cache_lookup(X509PathCache *c, const uint8_t key[32], struct cache_entry *ret) {
	bool hit = false;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->capacity; i++) {
		struct cache_entry *e = &c->entries[i];
		if (e->used && memcmp(e->key, key, 32) == 0) {
			*ret = *e;
			X509_up_ref(e->last);
			c->hits++;
			hit = true;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

static void cache_store(X509PathCache *c, const struct cache_entry *in) {
	pthread_mutex_lock(&c->lock);
	struct cache_entry *e = &c->entries[c->next];
	c->next = (c->next + 1) % c->capacity;
	X509_free(e->last);
	*e = *in;
	e->used = true;
	X509_up_ref(e->last);
	pthread_mutex_unlock(&c->lock);
}

/* Name and policy constraints would have to be re-applied to each new leaf; paths carrying them are simply
 * never cached (AWS's carry none). */
static bool cacheable(X509 *x) {
	return X509_get_ext_by_NID(x, NID_name_constraints, -1) < 0 &&
	       X509_get_ext_by_NID(x, NID_policy_constraints, -1) < 0 &&
	       X509_get_ext_by_NID(x, NID_certificate_policies, -1) < 0;
}

static int check_leaf(X509 *issuer, const uint8_t issuer_point[P384_POINT_LEN], const struct x509_der *leaf,
		      size_t idx, time_t t_doc, time_t t_verify, uint8_t ret_point[P384_POINT_LEN], char *reason,
		      size_t size) {
	X509 *x = parse_der(leaf->data, leaf->len);
	if (!x) return fail(-EBADMSG, reason, size, "leaf certificate does not parse");
	time_t nb, na;
	uint8_t point[P384_POINT_LEN];
	int r = check_cert(x, idx, reason, size);
	if (r < 0) goto done;
	if (X509_get_extension_flags(x) & EXFLAG_CA) {
		r = fail(-EKEYREJECTED, reason, size, "leaf certificate is a CA");
		goto done;
	}
	if ((X509_get_extension_flags(x) & EXFLAG_KUSAGE) && !(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE)) {
		r = fail(-EKEYREJECTED, reason, size, "leaf certificate may not sign");
		goto done;
	}
	if (p384_point_from_pkey(X509_get0_pubkey(x), point) < 0) {
		r = fail(-EKEYREJECTED, reason, size, "leaf key is not P-384");
		goto done;
	}
	r = cert_window(x, &nb, &na);
	if (r < 0) {
		r = fail(-EBADMSG, reason, size, "leaf certificate has a malformed validity");
		goto done;
	}
	r = check_times(nb, na, t_doc, t_verify, "leaf certificate", reason, size);
	if (r < 0) goto done;
	r = check_link(issuer, issuer_point, x, leaf, idx, reason, size);
	if (r < 0) goto done;
	if (ret_point) memcpy(ret_point, point, P384_POINT_LEN);
done:
	X509_free(x);
	return r;
}

int x509_chain_verify(const X509Root *root, const struct x509_der *bundle, size_t n, const struct x509_der *leaf,
		      time_t t_doc, time_t t_verify, X509PathCache *cache, uint8_t ret_leaf_point[P384_POINT_LEN],
		      char *reason, size_t size) {
	if (!root || !leaf || (n && !bundle)) return -EINVAL;
	if (n == 0 || n > X509_CHAIN_MAX_BUNDLE)
		return fail(-EBADMSG, reason, size, "CA bundle has %zu certificates", n);
	if (bundle[0].len != root->der_len || memcmp(bundle[0].data, root->der, root->der_len) != 0)
		return fail(-ENOKEY, reason, size, "CA bundle does not start with the pinned root");

	uint8_t key[32];
	struct cache_entry hit = {0};
	if (cache) {
		cache_key(root, bundle, n, key);
		if (cache_lookup(cache, key, &hit)) {
			int r = check_times(hit.not_before, hit.not_after, t_doc, t_verify, "a CA bundle certificate",
					    reason, size);
			if (r == 0)
				r = check_leaf(hit.last, hit.last_point, leaf, n, t_doc, t_verify, ret_leaf_point,
					       reason, size);
			X509_free(hit.last);
			return r;
		}
	}

	X509 *certs[X509_CHAIN_MAX_BUNDLE] = {0};
	uint8_t points[X509_CHAIN_MAX_BUNDLE][P384_POINT_LEN];
	time_t win_nb = 0, win_na = (time_t)INT64_MAX;
	bool can_cache = cache != NULL;
	int r = 0;
	char what[48];

	for (size_t i = 0; i < n; i++) {
		certs[i] = parse_der(bundle[i].data, bundle[i].len);
		if (!certs[i]) {
			r = fail(-EBADMSG, reason, size, "CA bundle certificate %zu does not parse", i);
			goto done;
		}
	}
	for (size_t i = 0; i < n; i++) {
		X509 *x = certs[i];
		time_t nb, na;
		r = check_cert(x, i, reason, size);
		if (r < 0) goto done;
		if (cert_window(x, &nb, &na) < 0) {
			r = fail(-EBADMSG, reason, size, "certificate %zu has a malformed validity", i);
			goto done;
		}
		snprintf(what, sizeof what, "CA bundle certificate %zu", i);
		r = check_times(nb, na, t_doc, t_verify, what, reason, size);
		if (r < 0) goto done;
		win_nb = MAX(win_nb, nb);
		win_na = MIN(win_na, na);
		if (p384_point_from_pkey(X509_get0_pubkey(x), points[i]) < 0) {
			r = fail(-EKEYREJECTED, reason, size, "certificate %zu key is not P-384", i);
			goto done;
		}
		/* CA certificates below this one, the leaf not counted (RFC 5280 4.2.1.9). */
		long pathlen = X509_get_pathlen(x);
		if (pathlen >= 0 && (long)(n - 1 - i) > pathlen) {
			r = fail(-EKEYREJECTED, reason, size, "certificate %zu path length exceeded", i);
			goto done;
		}
		if (!cacheable(x)) can_cache = false;
		/* The root's self-signature is not checked: it is trusted by pinning its exact bytes. */
		if (i > 0) {
			r = check_link(certs[i - 1], points[i - 1], x, &bundle[i], i, reason, size);
			if (r < 0) goto done;
		}
	}
	r = check_leaf(certs[n - 1], points[n - 1], leaf, n, t_doc, t_verify, ret_leaf_point, reason, size);
	if (r < 0) goto done;
	if (can_cache) {
		struct cache_entry e = {.last = certs[n - 1], .not_before = win_nb, .not_after = win_na};
		memcpy(e.key, key, sizeof key);
		memcpy(e.last_point, points[n - 1], P384_POINT_LEN);
		cache_store(cache, &e);
	}
done:
	for (size_t i = 0; i < n; i++) X509_free(certs[i]);
	return r;
}
