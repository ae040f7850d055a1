/* cose.h: COSE_Sign1 (RFC 9052 section 4.2, algorithms RFC 9053): sign and verify with EdDSA (Ed25519) and
 * ES384 (P-384, SHA-384, raw r||s signature), verify ES384 as AWS Nitro attestation documents use it.
 * Tagged (tag 18) and untagged messages are both accepted. The algorithm comes only from the protected
 * header and must match the key's; a `crit` header naming anything but alg is rejected; the Sig_structure
 * ["Signature1", protected, external_aad, payload] is built byte for byte, never re-encoded from a decode. */
#pragma once

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "p384.h"

#define COSE_ALG_EDDSA (-8)
#define COSE_ALG_ES384 (-35)
#define COSE_TAG_SIGN1 18
#define COSE_SIGN1_MAX (64 * 1024) /* whole message, bytes */

typedef struct CoseKey {
	int alg;                     /* COSE_ALG_EDDSA: 32-byte Ed25519 key; COSE_ALG_ES384: P-384 point */
	uint8_t pub[P384_POINT_LEN];
	size_t len;
} CoseKey;

int cose_key_ed25519(const uint8_t pub[32], CoseKey *ret);
int cose_key_es384(const uint8_t point[P384_POINT_LEN], CoseKey *ret);

typedef struct CoseSign1 {
	bool tagged;
	int alg;                     /* from the protected header */
	uint8_t *protected_bytes;    /* serialized protected header map (the bstr's content) */
	size_t protected_len;
	uint8_t *payload;            /* NULL for a detached (nil) payload */
	size_t payload_len;
	uint8_t *signature;
	size_t signature_len;
} CoseSign1;

/* Decode and check the structure. Errors: -EBADMSG malformed (types, sizes, trailing bytes, alg in the
 * unprotected bucket, signature length wrong for the alg); -EPROTONOSUPPORT alg missing or not EdDSA/ES384;
 * -EOPNOTSUPP a critical header we do not understand. */
int cose_sign1_decode(const uint8_t *msg, size_t len, CoseSign1 **ret);
CoseSign1 *cose_sign1_free(CoseSign1 *m);
static inline void cose_sign1_freep(CoseSign1 **m) { cose_sign1_free(*m); }
#define _cleanup_cose_sign1_ _cleanup_(cose_sign1_freep)

/* Verify. detached_payload is used (and required) only when the message's payload is nil.
 * Errors: -EPROTONOSUPPORT the key's alg differs from the message's; -EKEYREJECTED bad signature;
 * -EINVAL bad key. */
int cose_sign1_verify(const CoseSign1 *m, const CoseKey *key, const uint8_t *aad, size_t aad_len,
		      const uint8_t *detached_payload, size_t detached_len);

/* Sign payload with key (Ed25519 for EDDSA, P-384 for ES384; -EPROTONOSUPPORT if it does not match alg).
 * Protected header {1: alg}, unprotected {}; tagged adds tag 18. */
int cose_sign1_sign(int alg, EVP_PKEY *key, const uint8_t *payload, size_t payload_len, const uint8_t *aad,
		    size_t aad_len, bool tagged, uint8_t **ret, size_t *ret_len);

/* The Sig_structure for COSE_Sign1 (RFC 9052 section 4.4), deterministically encoded. */
int cose_sig_structure(const uint8_t *prot, size_t prot_len, const uint8_t *aad, size_t aad_len,
		       const uint8_t *payload, size_t payload_len, uint8_t **ret, size_t *ret_len);
