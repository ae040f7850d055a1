/* session-stub.h: test-only stand-in attestation for lib/session, shared by the session fuzz targets and
 * benchmark. The "document" is public key (32) || nonce (32) || user_data; the check accepts exactly what the
 * maker produced for that nonce, so handshakes run without NSM or certificates. Header-only on purpose: each
 * fuzz target and benchmark is its own binary, and test code does not belong in libeml. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

static inline int stub_make_attestation(void *u, const uint8_t *nonce, size_t nonce_len, const uint8_t *pk,
					size_t pk_len, const uint8_t *ud, size_t ud_len, uint8_t **ret,
					size_t *ret_len) {
	uint8_t *d = malloc(64 + ud_len);
	if (!d) return -ENOMEM;
	memcpy(d, pk, 32);
	memcpy(d + 32, nonce, 32);
	memcpy(d + 64, ud, ud_len);
	*ret = d, *ret_len = 64 + ud_len;
	return 0;
}

static inline int stub_verify_attestation(void *u, const uint8_t *doc, size_t len, const uint8_t *nonce,
					  size_t nonce_len, SessionAttested *ret) {
	if (len < 64 || len - 64 > sizeof ret->user_data || memcmp(doc + 32, nonce, 32) != 0) return -EPERM;
	memcpy(ret->public_key, doc, 32);
	ret->public_key_len = 32;
	memcpy(ret->user_data, doc + 64, len - 64);
	ret->user_data_len = len - 64;
	return 0;
}
