/* nsm-random.h: NSM GetRandom without a CBOR library, for eml-init. eml-init links statically and Debian ships
 * no libcbor.a, so it cannot use the general client (nsm.h, over lib/cbor and libcbor); this module does the one
 * request it needs over the same transport (nsm-transport.h: the /dev/nsm ioctl or the simulator's socket)
 * with a strict hand decoder of the one reply shape. Everything else should use nsm.h. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The CBOR request: the bare text string "GetRandom" (serde's unit variant). */
extern const uint8_t nsm_random_request[10];

/* Parses {"GetRandom":{"random":bstr}} strictly (exact shape, definite lengths, no trailing bytes). On success
 * *ret_data points into resp and *ret_len is the byte count (at least 1). -EBADMSG when malformed, -EPROTO for
 * an {"Error":...} reply. */
int nsm_random_parse(const uint8_t *resp, size_t resp_len, const uint8_t **ret_data, size_t *ret_len);

/* One GetRandom through device ("/dev/nsm" or "unix:PATH"); copies up to max bytes into buf and returns the
 * count, or -errno (the open errno, e.g. -ENOENT without a device). */
int nsm_random_fetch(const char *device, uint8_t *buf, size_t max);
