/* base64.h: strict RFC 4648 base64 (standard alphabet, '=' padding required, no whitespace), as the AWS JSON
 * protocols carry binary fields. Decoding refuses anything non-canonical so one value has one encoding. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Encode into a new NUL-terminated string. 0 or -ENOMEM. */
int base64_encode(const uint8_t *in, size_t len, char **ret);
/* Decode a NUL-terminated string of at most max decoded bytes into a new buffer.
 * 0, -EINVAL (bad character, length or padding, non-zero pad bits), -E2BIG (over max), -ENOMEM. */
int base64_decode(const char *in, size_t max, uint8_t **ret, size_t *ret_len);
