/* kmsclient.h: the enclave's KMS client. It never holds AWS credentials: it sends its requests over the relay
 * frame protocol (kmsproto.h) to eml-kms-relay, which signs them. Every request carries a Recipient: a fresh
 * attestation document whose public_key is the SubjectPublicKeyInfo of the client's own RSA-2048 key, so KMS
 * answers with CiphertextForRecipient (CMS, cms.h) that only this client can open. Owns that key, the
 * connection to the relay, the AWS error mapping and bounded, jittered retries of throttling and transient
 * failures. Plaintexts returned are secrets: free them with free_secret(). One client per thread. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Produce an attestation document with public_key = spki (and fresh, as the NSM makes them). */
typedef int (*kms_attest_fn)(void *userdata, const uint8_t *spki, size_t spki_len, uint8_t **ret_doc,
			     size_t *ret_len);

struct kms_client_config {
	const char *relay;        /* relay address, e.g. "vsock:3:8001" (unix: and tcp: for dev mode) */
	kms_attest_fn attest;
	void *attest_userdata;
	uint64_t timeout_usec;    /* per attempt (connect, send, answer); 0: 15 s, above the relay's 10 s */
	unsigned retries;         /* for Busy, Unavailable, throttling and 5xx; default 3 when retries_set is 0 */
	int retries_set;
};

/* What went wrong, for messages: the AWS __type or relay error, and its message. */
struct kms_error {
	char type[64];
	char message[256];
};

/* Distinct errors of the calls below:
 *   -EACCES         AccessDeniedException (the key policy does not admit this enclave)
 *   -EBADMSG        InvalidCiphertextException (wrong blob or encryption context)
 *   -ENOENT         NotFoundException
 *   -EKEYREJECTED   IncorrectKeyException
 *   -EKEYREVOKED    DisabledException
 *   -EKEYEXPIRED    KMSInvalidStateException (e.g. pending deletion)
 *   -EINVAL         ValidationException / SerializationException (a bad request) or bad arguments
 *   -EPERM          the host's credentials were refused (signature, unknown key id)
 *   -EBUSY          throttled (ThrottlingException, relay Busy) after the retries
 *   -EREMOTEIO      KMS internal error / HTTP 5xx after the retries, or another KMS error
 *   -ECONNREFUSED   the relay refused the request (e.g. it had no Recipient)
 *   -EHOSTUNREACH   the relay could not reach KMS after its retries
 *   -ETIMEDOUT      no answer in time (from the relay or from us)
 *   -EPROTO         a malformed answer (relay or KMS), or a Plaintext where only CiphertextForRecipient may be
 *   -EKEYREJECTED / -EBADE / ... from cms_decrypt when CiphertextForRecipient does not open
 *   transport errors of connect/send/recv */
typedef struct KmsClient KmsClient;

/* Creates the RSA-2048 recipient key. */
int kms_client_new(const struct kms_client_config *cfg, KmsClient **ret);
KmsClient *kms_client_free(KmsClient *c);
static inline void kms_client_freep(KmsClient **c) { kms_client_free(*c); }
#define _cleanup_kms_client_ _cleanup_(kms_client_freep)

/* context_json: the EncryptionContext as a JSON object text, or NULL. key_id may be NULL for Decrypt. err may
 * be NULL. */
int kms_client_decrypt(KmsClient *c, const char *key_id, const uint8_t *blob, size_t blob_len,
		       const char *context_json, uint8_t **ret_plain, size_t *ret_len, struct kms_error *err);
/* nbytes 1..1024 (32 for an AES-256 key). *ret_blob is the CiphertextBlob to store (not secret). */
int kms_client_generate_data_key(KmsClient *c, const char *key_id, size_t nbytes, const char *context_json,
				 uint8_t **ret_plain, size_t *ret_plain_len, uint8_t **ret_blob, size_t *ret_blob_len,
				 struct kms_error *err);
int kms_client_generate_random(KmsClient *c, size_t nbytes, uint8_t **ret, size_t *ret_len, struct kms_error *err);

/* A kms_attest_fn over the NSM client (lib/nsm): userdata is an open Nsm *. */
int kms_attest_nsm(void *userdata, const uint8_t *spki, size_t spki_len, uint8_t **ret_doc, size_t *ret_len);

/* Map an AWS error __type to the errno above (-EREMOTEIO for anything unknown). */
int kms_error_from_type(const char *type);
