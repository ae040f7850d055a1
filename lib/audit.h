/* audit.h: the AUDIT frame payload (eml-protocol(7)): one record per request, written by the enclave toward
 * the relay, which turns it into a journal entry and never forwards it to the client. Metadata only: a hash
 * of the receipt, the model id, counts, timing and a status word; never text, vectors or keys.
 *
 *   {"receipt_sha256": bstr .size 32, "model_id": tstr, "inputs": uint, "tokens": uint,
 *    "duration_us": uint, "status": tstr}
 *
 * Encoded as deterministic CBOR; decoding is strict (deterministic encoding, exactly these six keys, sizes
 * and character sets bounded) since the relay reads it from the enclave side of the connection and logs it. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define AUDIT_MAX 512             /* encoded bytes */
#define AUDIT_MODEL_ID_MAX 128    /* bytes of printable ASCII (0x20..0x7e) */
#define AUDIT_STATUS_MAX 32       /* bytes of [A-Za-z0-9_] */

struct audit_record {
	uint8_t receipt_sha256[32];
	char model_id[AUDIT_MODEL_ID_MAX + 1];
	uint64_t inputs;
	uint64_t tokens;
	uint64_t duration_us;
	char status[AUDIT_STATUS_MAX + 1]; /* "ok", or an error code such as "NO_MODEL" */
};

/* Encode into a new buffer. -EINVAL when model_id or status is empty, too long or has a forbidden byte. */
int audit_encode(const struct audit_record *a, uint8_t **ret, size_t *ret_len);
/* Decode strictly. -EBADMSG for anything but the shape above (the ecbor errors are folded into it). */
int audit_decode(const uint8_t *buf, size_t len, struct audit_record *ret);
