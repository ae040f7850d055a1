/* nsmrandom.h: the one NSM request eml-init needs before anything else runs: GetRandom over the /dev/nsm
 * ioctl, to seed the kernel RNG at boot. Self-contained (libc only, no CBOR library) so eml-init links
 * statically. The general NSM client (lib/nsm.h) supersedes this for everything else; when it lands this can
 * become a thin wrapper over it. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define NSM_DEVICE "/dev/nsm"
#define NSM_RESPONSE_MAX 12288

/* The CBOR request: the bare text string "GetRandom", as the Rust nsm-api encodes the unit variant. */
extern const uint8_t nsm_get_random_request[10];

/* Parses a GetRandom response {"GetRandom":{"random":bstr}} strictly (exact shape, definite lengths, no
 * trailing bytes). On success *ret_data points into resp and *ret_len is the byte count (1..resp_len).
 * -EBADMSG when malformed, -EPROTO for an {"Error":...} reply. */
int nsm_parse_get_random(const uint8_t *resp, size_t resp_len, const uint8_t **ret_data, size_t *ret_len);

/* Asks the device at path for random bytes (one ioctl) and copies up to max of them into buf. Returns the byte
 * count or -errno (-ENOENT when there is no device). */
int nsm_get_random(const char *path, uint8_t *buf, size_t max);
