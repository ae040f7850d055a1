/* ctlproto.h: the control port protocol of eml-inferenced (vsock 5001; man/eml-inferenced.8), payloads of
 * CTL frames (type 8) in the project's framing:
 *
 *   client -> CTL {"op": "status"}                      daemon -> CTL reply
 *   client -> CTL {"op": "load", "size": N}             then CTL frames whose payloads are the raw bytes of
 *             the sealed model, in order, 1 byte to 1 MiB each, N bytes in all; daemon -> CTL reply (at the end,
 *             or as soon as the load fails, after which it closes the connection)
 *
 *   reply {"ok": true|false, "error": CODE, "message": TEXT,                     (error, message when !ok)
 *          "model": null | {"model_id", "version", "manifest_sha256": bstr 32},  (the live model)
 *          "loads": uint, "load_failures": uint, "load_ms": uint, "security_mode": TEXT}
 *
 * A reply carries the seq of the request it answers (for a load, the seq of {"op": "load"}). Requests are small CBOR maps decoded strictly (unknown keys
 * refused). Owns the codec only; no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_MAX_REQUEST 256u              /* a request payload */
#define CTL_MAX_REPLY 4096u               /* a reply payload */
#define CTL_MAX_DATA (1u << 20)           /* one data frame of a load */
#define CTL_MAX_MODEL_BYTES (16ull << 30) /* the size a load may announce */

enum ctl_op {
	CTL_OP_STATUS = 1,
	CTL_OP_LOAD,
};

struct ctl_request {
	enum ctl_op op;
	uint64_t size; /* load */
};

/* Error codes of replies (stable strings: `eml ctl` prints them and tests match them). */
#define CTL_E_BAD_REQUEST "BadRequest"   /* malformed request or stream */
#define CTL_E_BUSY "Busy"                /* another load is running */
#define CTL_E_TOO_LARGE "TooLarge"       /* announced size or model above the daemon's limit */
#define CTL_E_MALFORMED "Malformed"      /* not a valid sealed model */
#define CTL_E_UNTRUSTED "Untrusted"      /* manifest not signed by a trusted owner */
#define CTL_E_ACCESS_DENIED "AccessDenied" /* KMS refused the data key (key policy, e.g. PCR0) */
#define CTL_E_KMS "KMSError"             /* KMS unreachable or another KMS error */
#define CTL_E_TAMPERED "Tampered"        /* a chunk failed authentication */
#define CTL_E_HASH "HashMismatch"        /* a file's SHA-256 differs from the manifest */
#define CTL_E_TRUNCATED "Truncated"      /* the stream ended early */
#define CTL_E_MODEL "ModelInvalid"       /* decrypted files are not a model the engine accepts */
#define CTL_E_INTERNAL "Internal"

struct ctl_reply {
	bool ok;
	char error[32];
	char message[256];
	bool has_model;
	char model_id[129];
	char version[65];
	uint8_t manifest_sha256[32];
	uint64_t loads, load_failures, load_ms;
	char security_mode[16];
};

int ctl_request_encode(const struct ctl_request *req, uint8_t **ret, size_t *ret_len);
/* -EBADMSG (malformed, unknown op or key), -E2BIG (size above CTL_MAX_MODEL_BYTES or payload too long). */
int ctl_request_decode(const uint8_t *buf, size_t len, struct ctl_request *ret);
int ctl_reply_encode(const struct ctl_reply *rep, uint8_t **ret, size_t *ret_len);
/* Strings are truncated to their fields; control characters replaced. -EBADMSG. */
int ctl_reply_decode(const uint8_t *buf, size_t len, struct ctl_reply *ret);
