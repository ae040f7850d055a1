/* policy.h: the signed policy bundle: what a client accepts of an enclave. Owns the bundle's contents
 * (allowed PCR values, trusted attestation roots, freshness window, allowed model hashes, validity period),
 * its canonical encoding (deterministic CBOR), its signature (COSE_Sign1, EdDSA, by a policy key), the JSON
 * form people write, and the conversion into what the verifiers take (AttestPolicy + roots, model checks).
 *
 * Canonical payload (deterministic CBOR, RFC 8949 section 4.2), the signed content of a tagged COSE_Sign1
 * with protected header {1: -8}:
 *   {"v": 1, "name": tstr, "key_id": bstr .size 8, "issued": uint, ? "expires": uint,
 *    "pcrs": {uint => [+ bstr .size 48]}, "roots": [+ bstr DER], "max_age_s": uint,
 *    ? "models": [+ bstr .size 32]}
 * key_id = the first 8 bytes of SHA-256 of the signer's raw Ed25519 public key; it names the signer so that a
 * verifier holding several trusted keys knows which one must have signed, and being inside the signed
 * payload it cannot be swapped. */
#pragma once

#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest.h"
#include "macro.h"
#include "x509-chain.h"

#define POLICY_BUNDLE_MAX (256u * 1024)  /* bytes of a signed bundle or a JSON policy */
#define POLICY_NAME_MAX 64
#define POLICY_MAX_PCR_VALUES 64         /* per PCR */
#define POLICY_MAX_ROOTS 4
#define POLICY_MAX_MODELS 256
#define POLICY_MAX_AGE_LIMIT_S (7u * 24 * 3600) /* a freshness window longer than a week is a mistake */
#define POLICY_KEY_ID_LEN 8
#define POLICY_ROOT_AWS "aws-nitro-g1"   /* JSON name of the built-in AWS Nitro root */

/* Stable failure codes of policy_verify (and of the JSON loader: BAD_FORMAT). */
typedef enum PolicyError {
	POLICY_OK = 0,
	POLICY_BAD_FORMAT,   /* not a COSE_Sign1 EdDSA bundle, or the payload is not the canonical shape */
	POLICY_UNKNOWN_KEY,  /* key_id names none of the trusted keys */
	POLICY_BAD_SIGNATURE,
	POLICY_NOT_YET_VALID, /* issued in the future */
	POLICY_EXPIRED,
	POLICY_UNTRUSTED,    /* no trusted key to check against (for callers) */
	POLICY_INTERNAL,
	_POLICY_ERROR_MAX,
} PolicyError;

const char *policy_error_name(PolicyError e);

typedef struct PolicyRoot {
	uint8_t *der;
	size_t len;
} PolicyRoot;

typedef struct Policy {
	char name[POLICY_NAME_MAX + 1];
	uint8_t key_id[POLICY_KEY_ID_LEN]; /* zero for an unsigned (local JSON) policy */
	bool is_signed;                    /* came from a verified bundle */
	uint64_t issued;                   /* unix seconds */
	uint64_t expires;                  /* unix seconds; 0: no expiry */
	uint64_t max_age_s;                /* attestation documents older than this are stale */
	uint32_t pcr_mask;
	size_t n_pcr_values[ATTEST_PCR_COUNT];
	uint8_t (*pcr_values[ATTEST_PCR_COUNT])[ATTEST_PCR_LEN];
	PolicyRoot roots[POLICY_MAX_ROOTS];
	size_t n_roots;
	uint8_t (*models)[32]; /* NULL when any model is acceptable */
	size_t n_models;
} Policy;

Policy *policy_free(Policy *p);
static inline void policy_freep(Policy **p) { policy_free(*p); }
#define _cleanup_policy_ _cleanup_(policy_freep)

/* The JSON form (eml-policy(1)):
 *   {"name": "prod-1", "pcrs": {"0": ["hex96", ...], "1": [...], "2": [...], "8": [...]},
 *    "roots": ["aws-nitro-g1" | "PEM text" | "@path/to/root.pem"], "max_age_s": 300,
 *    "models": ["hex64", ...], "issued": unix, "expires": unix}
 * name and pcrs (at least one PCR) are required; roots default to the AWS root, max_age_s to 300, issued
 * to now; models and expires are optional. "@path" is relative to base_dir (NULL: the working directory).
 * Unknown keys are refused. -EINVAL with reason on any mistake. */
int policy_from_json(const char *text, size_t len, const char *base_dir, uint64_t now, Policy **ret, char *reason,
		     size_t reason_size);
/* JSON of a policy (the same shape, roots as PEM text, plus "key_id" and "signed"). */
json_object *policy_to_json(const Policy *p);

/* Canonical CBOR of the payload (key_id as set in p). */
int policy_encode(const Policy *p, uint8_t **ret, size_t *ret_len);
/* Strict decode of a payload: -EBADMSG with reason unless canonical and within the limits above. */
int policy_decode(const uint8_t *buf, size_t len, Policy **ret, char *reason, size_t reason_size);

/* key_id of a raw Ed25519 public key. */
void policy_key_id(const uint8_t pub[32], uint8_t ret[POLICY_KEY_ID_LEN]);

/* Sign: sets p->key_id from key, encodes, returns the tagged COSE_Sign1. */
int policy_sign(Policy *p, EVP_PKEY *key, uint8_t **ret, size_t *ret_len);

/* Verify a bundle against trusted raw Ed25519 keys at time now (unix seconds; 0 = the clock): decode, find
 * the key by key_id, check the signature, then the validity period. 0 and *ret, or -EPERM with *ret_error
 * and reason (-ENOMEM: INTERNAL). ret_unverified (may be NULL) receives the decoded payload even when the
 * signature or key is wrong, for `eml policy show`. */
int policy_verify(const uint8_t *bundle, size_t len, const uint8_t (*keys)[32], size_t n_keys, uint64_t now,
		  Policy **ret, PolicyError *ret_error, char *reason, size_t reason_size);
/* Decode a bundle's payload without checking its signature (for display only). */
int policy_peek(const uint8_t *bundle, size_t len, Policy **ret, char *reason, size_t reason_size);

/* What the attestation verifier takes: an AttestPolicy (PCR allow-lists, max_age) and the trusted roots. */
int policy_attest_policy(const Policy *p, AttestPolicy **ret);
int policy_root(const Policy *p, size_t i, X509Root **ret);
/* Whether a model hash is acceptable (true for every hash when the policy lists none). */
bool policy_model_allowed(const Policy *p, const uint8_t hash[32]);

/* Load what a client was given as --policy FILE: a signed bundle (COSE; verified against keys) or a JSON
 * policy the user wrote (accepted unsigned only when the file is not writable by group or others).
 * Policy errors come back as -EPERM with *ret_error; I/O errors as their errno. */
int policy_load(const char *path, const uint8_t (*keys)[32], size_t n_keys, uint64_t now, Policy **ret,
		PolicyError *ret_error, char *reason, size_t reason_size);
/* The trusted policy keys of a client: every *.pem or *.pub (public or private PEM, or 64 hex digits) in
 * dir. Appends to *keys (realloc'ed), bounded at 64 keys in total. A missing dir is not an error. */
int policy_keys_load_dir(const char *dir, uint8_t (**keys)[32], size_t *n_keys);
