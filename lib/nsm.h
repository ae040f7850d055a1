/* nsm.h: the Nitro Secure Module request/response protocol, encoded exactly as the Rust
 * aws-nitro-enclaves-nsm-api crate (serde) encodes it: unit variants as a bare text ("DescribeNSM",
 * "GetRandom", "LockPCR"), struct variants as a one-entry map {"Variant": {fields in declaration order}},
 * byte fields as bstr, None as null, errors as {"Error": "InvalidArgument"}. Owns both sides of the codec
 * (the client here, eml-nsm-sim for the device side) and the client over nsm-transport. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define NSM_RANDOM_MAX 256u         /* bytes per GetRandom answer */
#define NSM_PCR_DATA_MAX 4096u      /* bytes of data to ExtendPCR (the request limit bounds it anyway) */
#define NSM_MODULE_ID_MAX 256u

enum nsm_op {
	NSM_OP_DESCRIBE_PCR = 1,
	NSM_OP_EXTEND_PCR,
	NSM_OP_LOCK_PCR,
	NSM_OP_LOCK_PCRS,
	NSM_OP_DESCRIBE_NSM,
	NSM_OP_ATTESTATION,
	NSM_OP_GET_RANDOM,
	NSM_OP_ERROR, /* responses only */
};

/* The device's ErrorCode variants (Success is never sent). */
enum nsm_error {
	NSM_E_INVALID_ARGUMENT = 1,
	NSM_E_INVALID_INDEX,
	NSM_E_INVALID_RESPONSE,
	NSM_E_READ_ONLY_INDEX,
	NSM_E_INVALID_OPERATION,
	NSM_E_BUFFER_TOO_SMALL,
	NSM_E_INPUT_TOO_LARGE,
	NSM_E_INTERNAL_ERROR,
	_NSM_E_MAX,
};
/* Variant name ("InvalidArgument" ...) or NULL. */
const char *nsm_error_name(enum nsm_error e);
/* The distinct negative errno the client returns for each variant:
 *   InvalidArgument -EINVAL, InvalidIndex -EDOM, InvalidResponse -EBADMSG, ReadOnlyIndex -EROFS,
 *   InvalidOperation -EOPNOTSUPP, BufferTooSmall -EOVERFLOW, InputTooLarge -E2BIG, InternalError -EREMOTEIO. */
int nsm_error_to_errno(enum nsm_error e);
/* For messages: the variant name for those errnos ("ReadOnlyIndex"), strerror() for anything else. */
const char *nsm_strerror(int r);

struct nsm_request {
	enum nsm_op op;
	uint16_t index;              /* DescribePCR, ExtendPCR, LockPCR; the range of LockPCRs */
	const uint8_t *data;         /* ExtendPCR */
	size_t data_len;
	const uint8_t *user_data, *nonce, *public_key; /* Attestation; NULL = None */
	size_t user_data_len, nonce_len, public_key_len;
	void *_item;                 /* decoded tree the pointers refer to (nsm_request_done) */
};

struct nsm_description {
	uint16_t version_major, version_minor, version_patch;
	char module_id[NSM_MODULE_ID_MAX + 1];
	uint16_t max_pcrs;
	uint32_t locked_mask;        /* PCRs 0..31 */
	char digest[8];              /* "SHA384" */
};

struct nsm_response {
	enum nsm_op op;
	enum nsm_error error;        /* op == NSM_OP_ERROR */
	bool lock;                   /* DescribePCR */
	const uint8_t *data;         /* DescribePCR/ExtendPCR data, GetRandom random, Attestation document */
	size_t data_len;
	struct nsm_description desc; /* DescribeNSM */
	void *_item;
};

/* Encoders return a malloc'ed buffer. Decoders: -EBADMSG when the bytes are not one of the shapes above
 * (sizes bounded), -ENOMEM; call *_done to release. */
int nsm_request_encode(const struct nsm_request *req, uint8_t **ret, size_t *ret_len);
int nsm_request_decode(const uint8_t *buf, size_t len, struct nsm_request *ret);
void nsm_request_done(struct nsm_request *req);
int nsm_response_encode(const struct nsm_response *resp, uint8_t **ret, size_t *ret_len);
int nsm_response_decode(const uint8_t *buf, size_t len, struct nsm_response *ret);
void nsm_response_done(struct nsm_response *resp);

/* The client. device: "/dev/nsm" or "unix:PATH" (see nsm-transport.h). Every call returns 0, a local
 * negative errno, or the errno of the device's Error variant (nsm_error_to_errno); a reply of the wrong
 * variant is -EBADMSG. */
typedef struct Nsm Nsm;
int nsm_open(const char *device, Nsm **ret);
Nsm *nsm_close(Nsm *nsm);
static inline void nsm_closep(Nsm **n) { nsm_close(*n); }
#define _cleanup_nsm_ _cleanup_(nsm_closep)

int nsm_get_random(Nsm *nsm, uint8_t *buf, size_t max, size_t *ret_len);
int nsm_describe(Nsm *nsm, struct nsm_description *ret);
/* value must hold 64 bytes; *ret_len gets the PCR length. */
int nsm_describe_pcr(Nsm *nsm, uint16_t index, bool *ret_locked, uint8_t value[64], size_t *ret_len);
int nsm_extend_pcr(Nsm *nsm, uint16_t index, const uint8_t *data, size_t len, uint8_t value[64], size_t *ret_len);
int nsm_lock_pcr(Nsm *nsm, uint16_t index);
int nsm_lock_pcrs(Nsm *nsm, uint16_t range);
/* NULL arguments are sent as None. *ret_doc is malloc'ed. */
int nsm_attestation(Nsm *nsm, const uint8_t *user_data, size_t user_data_len, const uint8_t *nonce,
		    size_t nonce_len, const uint8_t *public_key, size_t public_key_len, uint8_t **ret_doc,
		    size_t *ret_len);
