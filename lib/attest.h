/* attest.h: AWS Nitro attestation documents. Owns the document's schema (the payload map as the NSM writes
 * it: module_id, digest, timestamp, pcrs, certificate, cabundle, public_key, user_data, nonce; sizes as
 * AWS documents them), its verification (ARCHITECTURE section 5: pinned root = cabundle[0], chain valid at
 * the document's time and at the verification time, ES384 signature by the leaf, freshness, nonce, PCR
 * allow-lists) with one stable error code per failure, and the interim policy (allowed PCR values and a
 * freshness window, loadable from JSON until the signed policy bundle replaces it). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "x509-chain.h"

#define ATTEST_DOC_MAX 16384u      /* the NSM's response buffer is 12288 bytes */
#define ATTEST_PCR_COUNT 32u
#define ATTEST_PCR_LEN 48u         /* SHA-384 bank */
#define ATTEST_MODULE_ID_MAX 256u
#define ATTEST_PUBLIC_KEY_MAX 1024u
#define ATTEST_USER_DATA_MAX 512u
#define ATTEST_NONCE_MAX 512u
#define ATTEST_CLOCK_SKEW_MS 60000u /* how far in the future a document may be when freshness is checked */

/* Stable: values and names never change meaning; new codes are appended. */
typedef enum AttestError {
	ATTEST_OK = 0,
	ATTEST_BAD_STRUCTURE,   /* not a COSE_Sign1 / payload not the NSM schema / sizes / unknown fields */
	ATTEST_BAD_ALG,         /* protected header alg is not ES384 */
	ATTEST_UNKNOWN_ROOT,    /* cabundle[0] is not the pinned root */
	ATTEST_CHAIN,           /* a certificate link fails (signature, issuer, CA rules, algorithm) */
	ATTEST_EXPIRED,         /* a certificate is not valid at the document's time or the verification time */
	ATTEST_SIGNATURE,       /* the document signature does not verify with the leaf key */
	ATTEST_STALE,           /* outside the freshness window (too old, or from the future) */
	ATTEST_NONCE_MISMATCH,  /* expected nonce absent or different */
	ATTEST_PCR_NOT_ALLOWED, /* a PCR named by the policy is missing or not in its allow-list */
	ATTEST_INTERNAL,        /* out of memory and the like: not a verdict on the document */
	_ATTEST_ERROR_MAX,
} AttestError;

/* "BAD_STRUCTURE", "BAD_ALG", ... ("INTERNAL" for out-of-range values). */
const char *attest_error_name(AttestError e);

typedef struct AttestDoc {
	char *module_id;
	char digest[8];              /* "SHA384" */
	uint64_t timestamp_ms;
	uint32_t pcr_mask;           /* bit i set: pcrs[i] present */
	uint8_t pcrs[ATTEST_PCR_COUNT][ATTEST_PCR_LEN];
	struct x509_der certificate; /* leaf DER (points into the decoded document) */
	struct x509_der cabundle[X509_CHAIN_MAX_BUNDLE];
	size_t n_cabundle;
	/* optional fields: data NULL when null or absent */
	const uint8_t *public_key, *user_data, *nonce;
	size_t public_key_len, user_data_len, nonce_len;
	/* internal: decoded structures the pointers above refer to */
	void *_cose, *_payload;
} AttestDoc;

AttestDoc *attest_doc_free(AttestDoc *doc);
static inline void attest_doc_freep(AttestDoc **d) { attest_doc_free(*d); }
#define _cleanup_attest_doc_ _cleanup_(attest_doc_freep)

/* Parse without verifying anything cryptographic. 0, or -EBADMSG with *ret_error = BAD_STRUCTURE / BAD_ALG
 * (ret_error and reason may be NULL), or -ENOMEM. */
int attest_parse(const uint8_t *doc, size_t len, AttestDoc **ret, AttestError *ret_error, char *reason,
		 size_t reason_size);

typedef struct AttestPolicy {
	uint64_t max_age_ms;                   /* 0: freshness not checked */
	uint32_t pcr_mask;                     /* bit i set: PCR i must be one of allowed[i] */
	size_t n_allowed[ATTEST_PCR_COUNT];
	uint8_t (*allowed[ATTEST_PCR_COUNT])[ATTEST_PCR_LEN];
} AttestPolicy;

int attest_policy_new(AttestPolicy **ret);
/* Add value to PCR index's allow-list (and start checking that index). */
int attest_policy_allow(AttestPolicy *p, unsigned index, const uint8_t value[ATTEST_PCR_LEN]);
/* {"pcrs": {"0": ["hex96", ...], "8": [...]}, "max_age_s": N}: unknown keys, bad hex, indexes outside 0..31,
 * more than 64 values per PCR or max_age_s above 10 years are -EINVAL with a reason. */
int attest_policy_from_json(const char *text, size_t len, AttestPolicy **ret, char *reason, size_t reason_size);
int attest_policy_load(const char *path, AttestPolicy **ret, char *reason, size_t reason_size);

struct json_object;
/* The "pcrs" member of a JSON policy, {"INDEX": ["hex96", ...], ...} (this file's and policy.h's): an index
 * 0..ATTEST_PCR_COUNT-1 written without leading zeros, 1..max_values values of ATTEST_PCR_LEN bytes each,
 * each handed to add (whose negative return ends the walk). -EINVAL with a reason for anything else. */
int attest_pcrs_from_json(struct json_object *pcrs, unsigned max_values,
			  int (*add)(void *ctx, unsigned index, const uint8_t value[ATTEST_PCR_LEN]), void *ctx,
			  char *reason, size_t reason_size);
AttestPolicy *attest_policy_free(AttestPolicy *p);
static inline void attest_policy_freep(AttestPolicy **p) { attest_policy_free(*p); }
#define _cleanup_attest_policy_ _cleanup_(attest_policy_freep)

struct attest_verify_params {
	const X509Root *root;        /* required */
	X509PathCache *cache;        /* optional: verified bundles */
	uint64_t now_ms;             /* verification time */
	const uint8_t *nonce;        /* optional: required equal to the document's nonce */
	size_t nonce_len;
	const AttestPolicy *policy;  /* optional: PCR allow-lists and freshness */
	bool sequential;             /* all signature checks on the calling thread (default: two threads) */
};

/* Verify. 0 with *ret_doc (may be NULL) holding the parsed fields; otherwise -EPERM (the document is
 * rejected: *ret_error says why, reason explains), -EINVAL (bad params) or -ENOMEM (ret_error INTERNAL). */
int attest_verify(const uint8_t *doc, size_t len, const struct attest_verify_params *params, AttestDoc **ret_doc,
		  AttestError *ret_error, char *reason, size_t reason_size);

/* The payload of a document, encoded as the NSM does (fields in this order, pcrs ascending, absent optional
 * fields as null), for the simulator. pcr_mask selects which pcrs[i] to include. */
struct attest_payload {
	const char *module_id;
	uint64_t timestamp_ms;
	uint32_t pcr_mask;
	const uint8_t (*pcrs)[ATTEST_PCR_LEN];
	struct x509_der certificate;
	const struct x509_der *cabundle;
	size_t n_cabundle;
	const uint8_t *public_key, *user_data, *nonce; /* NULL: null */
	size_t public_key_len, user_data_len, nonce_len;
};
int attest_payload_encode(const struct attest_payload *p, uint8_t **ret, size_t *ret_len);
