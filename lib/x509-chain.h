/* x509-chain.h: validation of certificate paths shaped like AWS Nitro's: a pinned root, an ordered bundle
 * (root first, each certificate issuing the next) and a leaf. Every link must be ECDSA P-384 with SHA-384,
 * every issuer a CA within its path length, no unknown critical extension, and every certificate valid at
 * two given times (the document's and the verifier's). Owns the pinned root and the verified-bundle cache
 * that lets repeat callers pay for the leaf only. The path is fixed by the bundle order: no path building. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "macro.h"
#include "p384.h"

#define X509_CHAIN_MAX_BUNDLE 8      /* AWS uses 4 (root + 3 intermediates) */
#define X509_CHAIN_MAX_CERT 8192     /* DER bytes per certificate */

struct x509_der {
	const uint8_t *data;
	size_t len;
};

typedef struct X509Root X509Root;
/* Load a pinned root from a PEM file / PEM bytes holding exactly one certificate, a P-384 CA. -EBADMSG if it
 * does not parse, is not such a certificate, or more than one is there. */
int x509_root_load_pem(const char *path, X509Root **ret);
int x509_root_from_pem(const uint8_t *pem, size_t len, X509Root **ret);
/* Load from DER bytes. */
int x509_root_from_der(const uint8_t *der, size_t len, X509Root **ret);
/* The root's DER bytes (valid while root lives). */
const uint8_t *x509_root_der(const X509Root *root, size_t *ret_len);
/* SHA-256 of the root's DER (32 bytes). */
const uint8_t *x509_root_fingerprint(const X509Root *root);
X509Root *x509_root_free(X509Root *root);
static inline void x509_root_freep(X509Root **r) { x509_root_free(*r); }
#define _cleanup_x509_root_ _cleanup_(x509_root_freep)

/* Cache of bundles already validated up to their last certificate, keyed by SHA-256 over the bundle's
 * certificate hashes (and the root). Thread-safe. A hit still checks every certificate's validity window
 * at both times and always verifies the leaf. */
typedef struct X509PathCache X509PathCache;
int x509_path_cache_new(size_t capacity, X509PathCache **ret);
X509PathCache *x509_path_cache_free(X509PathCache *cache);
static inline void x509_path_cache_freep(X509PathCache **c) { x509_path_cache_free(*c); }
#define _cleanup_x509_path_cache_ _cleanup_(x509_path_cache_freep)
/* Number of hits so far (for tests and benchmarks). */
uint64_t x509_path_cache_hits(X509PathCache *cache);

/* Validate root -> bundle[1] -> ... -> bundle[n-1] -> leaf, with bundle[0] byte-equal to root.
 * t_doc and t_verify in seconds since the epoch. cache may be NULL. On success ret_leaf_point (may be NULL)
 * receives the leaf's P-384 public point. reason (may be NULL) gets a short human explanation on failure.
 * Errors: -EBADMSG a certificate does not parse (or has trailing bytes, or n is 0 or too large);
 *         -ENOKEY  bundle[0] is not the pinned root;
 *         -EKEYREJECTED a link fails (issuer name/key id, signature, CA flag, path length, algorithm, critical
 *                  extension, key usage);
 *         -EKEYEXPIRED a certificate is not valid at t_doc or t_verify. */
int x509_chain_verify(const X509Root *root, const struct x509_der *bundle, size_t n, const struct x509_der *leaf,
		      time_t t_doc, time_t t_verify, X509PathCache *cache, uint8_t ret_leaf_point[P384_POINT_LEN],
		      char *reason, size_t reason_size);

/* How x509_chain_verify_opts runs. By default the signature checks (one per link, and the caller's
 * leaf_check) are split over the calling thread and one short-lived worker; the verdict and reason are the
 * ones the one-by-one order gives. */
struct x509_chain_opts {
	bool sequential; /* all checks on the calling thread */
	/* Optional: one more check that needs the leaf's public point (e.g. a document signature), run alongside
	 * the chain's signatures, possibly on the worker thread. Called only when every non-signature check has
	 * passed; when x509_chain_verify_opts returns 0 it has been called exactly once. It reports its verdict
	 * through userdata (start that verdict as a failure: fail closed). */
	void (*leaf_check)(const uint8_t leaf_point[P384_POINT_LEN], void *userdata);
	void *userdata;
};

/* x509_chain_verify with opts (NULL: the defaults). */
int x509_chain_verify_opts(const X509Root *root, const struct x509_der *bundle, size_t n,
			   const struct x509_der *leaf, time_t t_doc, time_t t_verify, X509PathCache *cache,
			   const struct x509_chain_opts *opts, uint8_t ret_leaf_point[P384_POINT_LEN], char *reason,
			   size_t reason_size);
