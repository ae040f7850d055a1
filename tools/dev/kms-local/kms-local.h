/* kms-local.h: the pieces of eml-kms-local, a stand-in for AWS KMS on loopback (JSON 1.1 protocol):
 * keystore.c (keys in a directory, ciphertext blobs), attestation.c (the Recipient's attestation document),
 * main.c (HTTP, SigV4, operations); key policies are lib/kmspolicy. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "x509-chain.h"

#define KMS_KEY_ID_LEN 36            /* UUID text */
#define KMS_MAX_PLAINTEXT 4096       /* AWS's Encrypt limit */
#define KMS_MAX_CIPHERTEXT 6144      /* AWS's CiphertextBlob limit */
#define KMS_MAX_CONTEXT_PAIRS 64
#define KMS_MAX_CONTEXT_BYTES 8192   /* AWS: 8192 characters of encryption context */
#define KMS_MAX_ATTESTATION_DOC 16384
#define KMS_PCRS 9                   /* kms:RecipientAttestation:PCR0..PCR8 */

struct kms_key {
	char id[KMS_KEY_ID_LEN + 1];
	char arn[160];
	int64_t created;
	bool enabled;
	char *description;
	char *policy; /* JSON text */
	uint8_t material[32];
};

void kms_key_free(struct kms_key *k);

/* ---- keystore.c ---- */
/* Create a key (fresh id and material) and write DIR/ID.json with mode 0600. */
int keystore_create(const char *dir, const char *region, const char *account, const char *description,
		    const char *policy, struct kms_key **ret);
/* Load by key id or key ARN (the ARN's region and account must be ours). -ENOENT when there is no such key,
 * -EINVAL for a malformed id, -EBADMSG for a damaged key file. */
int keystore_load(const char *dir, const char *region, const char *account, const char *key_id,
		  struct kms_key **ret);

/* Ciphertext blob, version 1 (our own format, not AWS's):
 *   "EMLK" | 0x01 | key id (36 ASCII) | nonce (12) | AES-256-GCM ciphertext | tag (16)
 * The AAD is the 41-byte header followed by the canonical encryption context, so the blob is bound to its key
 * id and context. */
int blob_seal(const struct kms_key *k, json_object *context, const uint8_t *plain, size_t len, uint8_t **ret,
	      size_t *ret_len);
/* The key id a blob names, without decrypting. -EBADMSG when it is not one of ours. */
int blob_key_id(const uint8_t *blob, size_t len, char ret_id[KMS_KEY_ID_LEN + 1]);
/* -EBADMSG for a malformed blob, -EBADE when authentication fails (wrong context, key or tampering). */
int blob_open(const struct kms_key *k, json_object *context, const uint8_t *blob, size_t len, uint8_t **ret,
	      size_t *ret_len);
/* An EncryptionContext value: NULL or an object of string values within the limits. */
int context_validate(json_object *context);

/* ---- attestation.c ---- */
struct recipient {
	EVP_PKEY *public_key;              /* RSA, from the document's public_key */
	char pcr[KMS_PCRS][2 * 64 + 1];    /* lower-case hex; "" when absent */
	char module_id[64];
};

struct attestation_config {
	X509Root *root;         /* pinned root; NULL means every Recipient is refused */
	X509PathCache *cache;   /* verified bundles (thread-safe) */
	uint64_t max_age;       /* seconds a document may be old */
};

int attestation_config_load(struct attestation_config *c, const char *root_pem, uint64_t max_age);
void attestation_config_done(struct attestation_config *c);
/* Verify an NSM attestation document with lib/attest (COSE_Sign1, ES384, chain to the pinned root, freshness)
 * and take its PCRs and RSA public key. On failure *ret_reason (thread-local) says why. */
int attestation_verify_recipient(const struct attestation_config *c, const uint8_t *doc, size_t len, time_t now,
				 struct recipient *ret, const char **ret_reason);
void recipient_done(struct recipient *r);
