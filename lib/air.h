/* air.h: Attested Inference Receipts, AIR v1 (air-v1.cddl): build + sign, and verify in four layers.
 *
 * A receipt is a tagged COSE_Sign1 (tag 18) with protected header {1: -8 (EdDSA), 3: 61 (application/cwt)},
 * an empty unprotected header, a payload that is the deterministic CBOR (RFC 8949 4.2) of the CWT/EAT + AIR
 * claims, and a 64-byte Ed25519 signature over Sig_structure ["Signature1", protected, h'', payload].
 * Building is deterministic: the same claims and key give the same bytes.
 *
 * Verification stops at the first failing check, in layer order, and reports it as AIR's check code:
 *   1 parse:  COSE_DECODE_FAILED, BAD_ALG, BAD_CONTENT_TYPE, MISSING_PAYLOAD, PAYLOAD_NOT_MAP, WRONG_PROFILE
 *   2 crypto: BAD_SIG_LENGTH, SIG_FAILED
 *   3 claims: MISSING_CLAIM:<name>, WRONG_TYPE:<name>, BAD_CTI_LENGTH, BAD_HASH_LENGTH:<name>,
 *             ZERO_MODEL_HASH, BAD_MEASUREMENT_LENGTH, UNKNOWN_MTYPE:<type>, UNKNOWN_HASH_SCHEME:<scheme>,
 *             UNKNOWN_CLAIM:<key>
 *   4 policy: TIMESTAMP_FUTURE, TIMESTAMP_STALE, MODEL_HASH_MISMATCH, MODEL_ID_MISMATCH, PLATFORM_MISMATCH,
 *             NONCE_MISSING, NONCE_MISMATCH
 * Fail closed: untagged messages, unprotected headers, extra protected headers, non-deterministic payloads,
 * unknown claims and unknown measurement keys are all refused. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AIR_EAT_PROFILE "https://spec.cyntrisec.com/air/v1"
#define AIR_PLATFORM_NITRO "nitro-pcr"
#define AIR_PLATFORM_TDX "tdx-mrtd-rtmr"
#define AIR_RECEIPT_MAX (64 * 1024) /* bytes accepted by air_verify */
#define AIR_NONCE_MAX 512

enum air_code {
	AIR_OK = 0,
	/* layer 1 */
	AIR_COSE_DECODE_FAILED,
	AIR_BAD_ALG,
	AIR_BAD_CONTENT_TYPE,
	AIR_MISSING_PAYLOAD,
	AIR_PAYLOAD_NOT_MAP,
	AIR_WRONG_PROFILE,
	/* layer 2 */
	AIR_BAD_SIG_LENGTH,
	AIR_SIG_FAILED,
	/* layer 3 */
	AIR_MISSING_CLAIM,
	AIR_WRONG_TYPE,
	AIR_BAD_CTI_LENGTH,
	AIR_BAD_HASH_LENGTH,
	AIR_ZERO_MODEL_HASH,
	AIR_BAD_MEASUREMENT_LENGTH,
	AIR_UNKNOWN_MTYPE,
	AIR_UNKNOWN_HASH_SCHEME,
	AIR_UNKNOWN_CLAIM,
	/* layer 4 */
	AIR_TIMESTAMP_FUTURE,
	AIR_TIMESTAMP_STALE,
	AIR_MODEL_HASH_MISMATCH,
	AIR_MODEL_ID_MISMATCH,
	AIR_PLATFORM_MISMATCH,
	AIR_NONCE_MISSING,
	AIR_NONCE_MISMATCH,
	/* not an AIR code: the verifier itself failed (out of memory) */
	AIR_INTERNAL_ERROR,
	_AIR_CODE_MAX,
};

/* "SIG_FAILED" etc. (without the ":<name>" suffix). */
const char *air_code_name(enum air_code c);
/* 1..4, or 0 for AIR_OK / AIR_INTERNAL_ERROR. */
int air_code_layer(enum air_code c);

struct air_result {
	enum air_code code;
	int layer;
	char check[24];  /* AIR check name: "SIG", "MEAS", "MHASH_PRESENT", ... */
	char full[96];   /* code with its suffix, e.g. "MISSING_CLAIM:model_id": what to print */
	char reason[160]; /* one human-readable line */
};

/* Measurement slots: pcr0, pcr1, pcr2, pcr3, pcr4, pcr8. */
#define AIR_PCR_SLOTS 6
extern const unsigned air_pcr_index[AIR_PCR_SLOTS];

/* The claims. Strings are NUL-terminated; after air_verify they are owned by the struct (air_claims_done). */
struct air_claims {
	char *iss;
	uint64_t iat;
	uint8_t cti[16];
	uint8_t *nonce; /* eat_nonce, NULL when absent */
	size_t nonce_len;
	char *model_id;
	char *model_version;
	uint8_t model_hash[32];
	uint8_t request_hash[32];
	uint8_t response_hash[32];
	uint8_t attestation_doc_hash[32];
	char *measurement_type; /* AIR_PLATFORM_NITRO or AIR_PLATFORM_TDX */
	bool has_pcr[AIR_PCR_SLOTS];
	uint8_t pcr[AIR_PCR_SLOTS][48];
	char *policy_version;
	uint64_t sequence_number;
	uint64_t execution_time_ms;
	uint64_t memory_peak_mb;
	char *security_mode;
	char *model_hash_scheme; /* optional: "sha256-single", "sha256-concat", "sha256-manifest" or NULL */
};

/* Free the strings and nonce of claims filled by air_verify; NULL fine. */
void air_claims_done(struct air_claims *c);

/* A loaded Ed25519 signing key. Loading a raw key costs a scalar multiplication (OpenSSL derives the
 * public key), as much as a signature: an enclave keeps one signer for its per-boot receipt key. */
struct air_signer;
int air_signer_new(const uint8_t sk[32], struct air_signer **ret);
void air_signer_free(struct air_signer *s);
static inline void air_signer_freep(struct air_signer **s) { air_signer_free(*s); }
#define _cleanup_air_signer_ __attribute__((cleanup(air_signer_freep)))
const uint8_t *air_signer_public_key(const struct air_signer *s); /* 32 bytes */
int air_signer_sign(const struct air_signer *s, const struct air_claims *c, uint8_t **ret, size_t *ret_len);

/* One-shot: air_signer_new + air_signer_sign. sk is the 32-byte Ed25519 private key (seed). Refuses (-EINVAL) claims that would
 * not verify: missing strings, zero model hash, unknown platform or scheme, pcr0..2 absent, pcr8 on TDX. */
int air_sign(const struct air_claims *c, const uint8_t sk[32], uint8_t **ret, size_t *ret_len);

/* Ed25519 public key of a seed (for the "receipt_key" the enclave publishes). */
int air_public_key(const uint8_t sk[32], uint8_t ret_pk[32]);

/* Layer 4 inputs. Zero / NULL fields skip their check. */
struct air_policy {
	const uint8_t *nonce; /* expected eat_nonce */
	size_t nonce_len;
	bool require_nonce;        /* fail with NONCE_MISSING if the receipt has none */
	const uint8_t *model_hash; /* 32 bytes */
	const char *model_id;
	const char *platform;      /* "nitro-pcr" or "tdx-mrtd-rtmr" */
	uint64_t max_age;          /* seconds; 0 = no freshness check */
	uint64_t now;              /* unix seconds; 0 = the system clock */
	uint64_t clock_skew;       /* seconds iat may be ahead of now */
};

/* Verify receipt against the Ed25519 public key pk and policy (NULL = no policy). Returns 0 when every check
 * passes; otherwise -EBADMSG with *ret_result saying which check failed (-ENOMEM with AIR_INTERNAL_ERROR).
 * ret_claims (may be NULL) receives the claims when layers 1 to 3 passed, even if a policy check then failed;
 * the caller owns them (air_claims_done); otherwise it is zeroed. ret_result is always filled. */
int air_verify(const uint8_t *receipt, size_t len, const uint8_t pk[32], const struct air_policy *policy,
	       struct air_claims *ret_claims, struct air_result *ret_result);
