/* cms.h: CMS EnvelopedData as AWS KMS returns it in CiphertextForRecipient (RFC 5652, RFC 8017 RSAES-OAEP,
 * RFC 3565 AES-CBC). Owns: a strict BER reader of our own (definite and indefinite lengths, primitive and
 * constructed OCTET STRINGs, bounded depth, sizes and segment counts), the shape check of ContentInfo /
 * EnvelopedData with one KeyTransRecipientInfo (every OID and version checked, anything unexpected refused),
 * the RSAES-OAEP(SHA-256, MGF1-SHA-256) key unwrap and the AES-256-CBC content decryption; and, for the local
 * KMS, building the same structure with OpenSSL's CMS code as AWS does. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define CMS_MAX_INPUT (64u * 1024)   /* a whole CiphertextForRecipient */
#define CMS_MAX_DEPTH 12             /* BER nesting */
#define CMS_MAX_SEGMENTS 1024        /* pieces of one constructed OCTET STRING */
#define CMS_MAX_ENCRYPTED_KEY 1024   /* RSA up to 8192 bits */

struct cms_enveloped {
	uint8_t *encrypted_key; /* RSAES-OAEP output */
	size_t encrypted_key_len;
	uint8_t iv[16];
	uint8_t *content;       /* AES-256-CBC ciphertext, segments joined */
	size_t content_len;
	uint8_t *key_id;        /* recipient SubjectKeyIdentifier, or NULL when the rid is issuerAndSerialNumber */
	size_t key_id_len;
};

/* Errors (negative errno, distinct per failure class; *ret_reason, if given, names the exact check):
 *   -ENODATA          input ends inside an element (truncated)
 *   -EBADMSG          malformed BER or wrong ASN.1 shape (unexpected tag, trailing bytes, bad length)
 *   -E2BIG            a limit exceeded (input size, depth, segments, key size)
 *   -EPROTONOSUPPORT  an OID other than the one required (content type, algorithm, hash, MGF)
 *   -EPROTO           a version number other than the required one
 *   -EINVAL           a parameter of the right type but unusable (IV length, content not whole blocks, label)
 *   -EKEYREJECTED     RSA-OAEP unwrap failed (wrong private key or corrupted encrypted key)
 *   -EBADE            content decryption failed (bad padding: wrong key or corrupted content)
 *   -ENOMEM, -EIO     allocation / crypto library failure */
int cms_parse_enveloped(const uint8_t *ber, size_t len, struct cms_enveloped *ret, const char **ret_reason);
void cms_enveloped_done(struct cms_enveloped *e);

/* Unwrap the content-encryption key with pkey (RSA private key) and decrypt the content. The plaintext is a
 * secret: free it with free_secret(plain, len). */
int cms_enveloped_decrypt(const struct cms_enveloped *e, EVP_PKEY *pkey, uint8_t **ret_plain, size_t *ret_len,
			  const char **ret_reason);

/* Parse and decrypt in one call. */
int cms_decrypt(const uint8_t *ber, size_t len, EVP_PKEY *pkey, uint8_t **ret_plain, size_t *ret_len,
		const char **ret_reason);

/* Build CiphertextForRecipient the way AWS KMS does, with OpenSSL's CMS: EnvelopedData v2, one
 * KeyTransRecipientInfo identified by SubjectKeyIdentifier = SHA-256 of the recipient's SubjectPublicKeyInfo,
 * RSAES-OAEP with SHA-256 and MGF1-SHA-256, AES-256-CBC content, BER with indefinite lengths (streamed).
 * recipient is an RSA public key. 0, -EINVAL (not RSA), -EIO, -ENOMEM. */
int cms_build_for_recipient(EVP_PKEY *recipient, const uint8_t *plain, size_t plain_len, uint8_t **ret,
			    size_t *ret_len);

/* Short name of a cms_* error class. */
const char *cms_strerror(int r);
