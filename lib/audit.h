/* audit.h: the AUDIT frame payload (ARCHITECTURE section 4, step 6), the one record the enclave tells the host
 * about each request: a CBOR map with exactly these six keys, and nothing else:
 *
 *   receipt_sha256: bstr .size 32     SHA-256 of the AIR receipt the client received
 *   model_id:       tstr              id of the loaded model, 1..128 bytes of printable ASCII
 *   inputs:         uint              number of input texts
 *   tokens:         uint              tokens processed
 *   duration_us:    uint              inference time
 *   status:         tstr              "ok" or an error code, 1..32 bytes of [A-Za-z0-9_]
 *
 * (eml-protocol(7), AUDIT.) Metadata only: no input text and no vector. The decoder is strict because the
 * bytes come from across a trust boundary: the project's validating CBOR decoder (cbor.h) with tight limits
 * and deterministic encoding required, no duplicate, missing or unknown keys. The encoder writes RFC 8949
 * deterministic CBOR. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define AUDIT_MAX_SIZE 1024      /* largest AUDIT payload accepted */
#define AUDIT_MODEL_ID_MAX 128   /* bytes of model_id text */
#define AUDIT_STATUS_MAX 32      /* bytes of status text */

struct audit_record {
	uint8_t receipt_sha256[32];
	char model_id[AUDIT_MODEL_ID_MAX + 1];
	uint64_t inputs;
	uint64_t tokens;
	uint64_t duration_us;
	char status[AUDIT_STATUS_MAX + 1];
};

/* Errors: -EMSGSIZE larger than AUDIT_MAX_SIZE, -EBADMSG malformed or non-deterministic CBOR, or not a map
 * of the shape above (wrong type, missing, duplicate or unknown key, text empty, too long or with characters
 * outside its set, trailing bytes). */
int audit_decode(const uint8_t *buf, size_t len, struct audit_record *ret);

/* Encode r (deterministic CBOR) into a new buffer. -EINVAL if model_id or status is empty, too long or has
 * characters outside its set. */
int audit_encode(const struct audit_record *r, uint8_t **ret, size_t *ret_len);
