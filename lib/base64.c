/* base64.c: strict base64 (see base64.h). */
#include "base64.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_encode(const uint8_t *in, size_t len, char **ret) {
	if (len > (SIZE_MAX - 1) / 4 * 3 - 3) return -ENOMEM;
	char *o = malloc((len + 2) / 3 * 4 + 1), *p = o;
	if (!o) return -ENOMEM;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
			     (i + 2 < len ? in[i + 2] : 0);
		*p++ = ALPHABET[v >> 18 & 63];
		*p++ = ALPHABET[v >> 12 & 63];
		*p++ = i + 1 < len ? ALPHABET[v >> 6 & 63] : '=';
		*p++ = i + 2 < len ? ALPHABET[v & 63] : '=';
	}
	*p = 0;
	*ret = o;
	return 0;
}

static int value(char c) {
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

int base64_decode(const char *in, size_t max, uint8_t **ret, size_t *ret_len) {
	size_t n = strlen(in);
	if (n % 4) return -EINVAL;
	size_t pad = n && in[n - 1] == '=' ? (in[n - 2] == '=' ? 2 : 1) : 0;
	size_t out_len = n / 4 * 3 - pad;
	if (out_len > max) return -E2BIG;
	_cleanup_free_ uint8_t *o = malloc(out_len ? out_len : 1);
	if (!o) return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i += 4) {
		bool last = i + 4 == n;
		int v[4];
		for (int j = 0; j < 4; j++) {
			if (last && in[i + j] == '=' && j >= 4 - (int)pad) {
				v[j] = 0;
				continue;
			}
			if ((v[j] = value(in[i + j])) < 0) return -EINVAL;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		size_t keep = last ? 3 - pad : 3;
		o[k++] = (uint8_t)(w >> 16);
		if (keep > 1) o[k++] = (uint8_t)(w >> 8);
		if (keep > 2) o[k++] = (uint8_t)w;
		/* Canonical: the bits the padding hides must be zero. */
		if (last && pad == 2 && (w & 0xffff)) return -EINVAL;
		if (last && pad == 1 && (w & 0xff)) return -EINVAL;
	}
	*ret = TAKE_PTR(o);
	*ret_len = out_len;
	return 0;
}
