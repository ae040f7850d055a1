/* session-verify.h: the client's real attestation check of a session: an AWS Nitro attestation document
 * judged by a policy (lib/policy): chain to one of the policy's roots, ES384 signature, freshness, nonce equal
 * to the HELLO nonce, PCR allow-lists (lib/attest), then the session's user_data shape and the policy's list
 * of models. session_verify_nitro plugs into SessionClientConfig.verify_attestation. */
#pragma once

#include <stdint.h>

#include "attest.h"
#include "policy.h"
#include "session.h"

typedef struct SessionVerifier SessionVerifier;

/* The policy is borrowed: it must outlive the verifier. */
int session_verifier_new(const Policy *policy, SessionVerifier **ret);
SessionVerifier *session_verifier_free(SessionVerifier *v);
static inline void session_verifier_freep(SessionVerifier **v) { session_verifier_free(*v); }
#define _cleanup_session_verifier_ _cleanup_(session_verifier_freep)

/* Verify at this time (unix ms) instead of the clock: tests and replays. 0 = the clock. */
void session_verifier_set_time(SessionVerifier *v, uint64_t now_ms);

/* The callback (userdata = the SessionVerifier). On refusal ret->reason says "CODE: why" with CODE an
 * AttestError name (BAD_STRUCTURE, UNKNOWN_ROOT, PCR_NOT_ALLOWED, ...) or MODEL_NOT_ALLOWED / BAD_USER_DATA. */
int session_verify_nitro(void *userdata, const uint8_t *doc, size_t len, const uint8_t *nonce, size_t nonce_len,
			 SessionAttested *ret);

/* The last document that verified (PCRs, module id, timestamp), or NULL. */
const AttestDoc *session_verifier_doc(const SessionVerifier *v);
