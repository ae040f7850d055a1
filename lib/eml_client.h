/* eml_client.h: the small client API an application links to use an EphemeralML enclave: connect to an
 * endpoint (through the blind relay), run the attested session with the attestation judged by a policy
 * (lib/policy, lib/session-verify), send texts, get embeddings back with their AIR receipt verified against
 * the receipt key the attestation published, close. Blocking; one request at a time.
 *
 *   EmlClientOptions o = {.endpoint = "tcp:relay.example:5000", .policy = policy};
 *   eml_client_connect(&o, &c, reason, sizeof reason);
 *   eml_client_embed(c, texts, n, &e, reason, sizeof reason);   // e->vectors: n * e->dim floats
 *   eml_embedding_free(e); eml_client_free(c);                    // free closes cleanly
 *
 * Application messages (inside the session, deterministic CBOR):
 *   request  {"op": "embed", "inputs": [+ tstr]}
 *   response {"embeddings": [+ bstr (dim little-endian f32)], "dim": uint, "receipt": bstr (AIR v1)} */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "air.h"
#include "attest.h"
#include "macro.h"
#include "policy.h"
#include "session.h"

#define EML_CLIENT_MAX_INPUTS 1024
#define EML_CLIENT_MAX_DIM 4096

typedef struct EmlClientOptions {
	const char *endpoint;  /* tcp:HOST:PORT, unix:PATH or vsock:CID:PORT */
	const Policy *policy;  /* required; borrowed, must outlive the client */
	uint64_t timeout_usec; /* connect and handshake; 0 = 10 s */
	uint64_t now_ms;       /* verification time for tests; 0 = the clock */
	uint16_t aead;         /* 0 = ChaCha20-Poly1305 */
} EmlClientOptions;

typedef struct EmlClient EmlClient;

/* Connect and complete the attested handshake. On failure reason holds "CODE: why" (CONNECT, ATTEST_FAILED
 * ..., or the enclave's ERROR code). */
int eml_client_connect(const EmlClientOptions *o, EmlClient **ret, char *reason, size_t reason_size);
/* Close cleanly (CLOSE frame) and free. NULL ok. */
EmlClient *eml_client_free(EmlClient *c);
static inline void eml_client_freep(EmlClient **c) { eml_client_free(*c); }
#define _cleanup_eml_client_ _cleanup_(eml_client_freep)

/* The verified attestation document (PCRs, module id, timestamp) and the enclave's user_data. */
const AttestDoc *eml_client_attestation(const EmlClient *c);
const SessionUserData *eml_client_peer(const EmlClient *c);
/* The raw document bytes and their SHA-256. */
const uint8_t *eml_client_document(const EmlClient *c, size_t *ret_len);

typedef struct EmlEmbedding {
	size_t n, dim;
	float *vectors;           /* n * dim */
	uint8_t *receipt;         /* AIR v1 COSE_Sign1 */
	size_t receipt_len;
	struct air_claims claims; /* verified: signature by the attested receipt key, model hash, PCRs */
	bool receipt_bound;       /* claims.attestation_doc_hash is SHA-256 of this session's document */
} EmlEmbedding;

/* Embed texts. Fails (reason "CODE: why") on a session failure, a malformed response, or a receipt that
 * does not verify (RECEIPT: AIR code), whose model hash is not the attested one, or whose PCRs differ from
 * the attested document's. */
int eml_client_embed(EmlClient *c, const char *const *texts, size_t n, EmlEmbedding **ret, char *reason,
		     size_t reason_size);
void eml_embedding_free(EmlEmbedding *e);

/* Helpers for servers and tests: the application payloads. */
int eml_embed_request_encode(const char *const *texts, size_t n, uint8_t **ret, size_t *ret_len);
int eml_embed_response_encode(const float *vectors, size_t n, size_t dim, const uint8_t *receipt,
			      size_t receipt_len, uint8_t **ret, size_t *ret_len);
