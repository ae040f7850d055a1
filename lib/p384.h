/* p384.h: ECDSA on NIST P-384 with SHA-384 (FIPS 186-5): verification through nettle (about twice as fast
 * as OpenSSL 3.0's generic P-384 code, and an attestation check needs five verifications), signing through
 * OpenSSL (only the simulator and the dev CA sign). Owns the signature encodings: raw r||s (COSE, RFC 9053
 * section 2.1) and DER ECDSA-Sig-Value (X.509). */
#pragma once

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#define P384_POINT_LEN 97   /* 0x04 || X || Y */
#define P384_SCALAR_LEN 48
#define P384_SIG_RAW_LEN 96 /* r || s, big-endian, 48 bytes each */

/* Verify sig over msg (hashed here with SHA-384). 0 when valid; -EBADMSG when the signature does not verify
 * (including r or s out of range); -EINVAL when pub is not a point on the curve. */
int p384_verify_raw(const uint8_t pub[P384_POINT_LEN], const uint8_t *msg, size_t len,
		    const uint8_t sig[P384_SIG_RAW_LEN]);
/* Same with a DER ECDSA-Sig-Value (strict DER; -EBADMSG if malformed). */
int p384_verify_der(const uint8_t pub[P384_POINT_LEN], const uint8_t *msg, size_t len, const uint8_t *der,
		    size_t der_len);

/* The uncompressed public point of an EC key on secp384r1; -EINVAL for any other key type or curve. */
int p384_point_from_pkey(const EVP_PKEY *pkey, uint8_t ret[P384_POINT_LEN]);

/* DER ECDSA-Sig-Value -> raw r||s. -EBADMSG if malformed or a value is wider than 48 bytes. */
int p384_sig_der_to_raw(const uint8_t *der, size_t len, uint8_t ret[P384_SIG_RAW_LEN]);

/* Sign msg with a P-384 private key; raw r||s out. */
int p384_sign_raw(EVP_PKEY *key, const uint8_t *msg, size_t len, uint8_t ret[P384_SIG_RAW_LEN]);

/* A fresh P-384 key pair (OpenSSL). */
int p384_generate(EVP_PKEY **ret);
