/* kmsproto.h: the payloads of the enclave <-> eml-kms-relay frames (ARCHITECTURE section 6), JSON inside the
 * project's frames (section 3) on vsock 3:8001:
 *
 *   REQUEST   {"target": "TrentService.Decrypt", "body": {...KMS JSON 1.1 request...}}
 *   RESPONSE  {"status": 200, "body": {...KMS JSON answer, or AWS's error body {"__type", "message"}...}}
 *   ERROR     {"error": "Refused" | "BadRequest" | "Unavailable" | "Timeout" | "Busy" | "Internal",
 *              "message": "..."}   (the relay itself answers: no KMS answer to pass on)
 *
 * A RESPONSE or ERROR carries the seq of its REQUEST. Owns the codec and the relay's admission check: only
 * Decrypt, GenerateDataKey and GenerateRandom, a body of at most 64 KiB that is a JSON object, and a Recipient
 * with KeyEncryptionAlgorithm RSAES_OAEP_SHA_256 and a non-empty AttestationDocument, so that the host never
 * receives a plaintext key. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define KMSPROTO_MAX_BODY (64u * 1024)
#define KMSPROTO_MAX_PAYLOAD (KMSPROTO_MAX_BODY + 256) /* frame cap for REQUEST */
#define KMSPROTO_MAX_RESPONSE (256u * 1024)            /* frame cap for RESPONSE/ERROR */

/* Decode and admit a REQUEST payload. On success *ret_target is one of the allowed targets (static string)
 * and *ret_body the body re-serialised compactly (malloc'ed, NUL-terminated; what gets signed and sent);
 * *ret_key_id (may be NULL) a copy of "KeyId" if the body has one (for logs), else NULL.
 * Errors (distinct), with *ret_reason (static text):
 *   -EBADMSG   not JSON / wrong shape / extra fields
 *   -E2BIG     payload or body too large
 *   -EPERM     target not allowed
 *   -EACCES    no valid Recipient (the request would return a plaintext to the host) */
int kmsproto_request_decode(const uint8_t *payload, size_t len, const char **ret_target, char **ret_body,
			    char **ret_key_id, const char **ret_reason);
/* Encode a REQUEST (body is JSON text of an object). -EBADMSG if body is not a JSON object, -E2BIG. */
int kmsproto_request_encode(const char *target, const char *body, uint8_t **ret, size_t *ret_len);

/* RESPONSE: status and KMS body (JSON text, may be "" when KMS sent nothing parseable: encoded as {}). */
int kmsproto_response_encode(int status, const char *body, size_t body_len, uint8_t **ret, size_t *ret_len);
/* *ret_body is the body object's compact text (malloc'ed). -EBADMSG, -E2BIG. */
int kmsproto_response_decode(const uint8_t *payload, size_t len, int *ret_status, char **ret_body);

int kmsproto_error_encode(const char *error, const char *message, uint8_t **ret, size_t *ret_len);
/* *ret_error and *ret_message malloc'ed. */
int kmsproto_error_decode(const uint8_t *payload, size_t len, char **ret_error, char **ret_message);
