/* util.c: hex, bounded file I/O, clocks and secret wiping (see util.h). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "macro.h"

void hex_encode(const uint8_t *in, size_t len, char *out) {
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = 0;
}

static int hex_nibble(char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *in, uint8_t *out, size_t out_max) {
	size_t n = strlen(in);
	if (n % 2) return -EINVAL;
	if (n / 2 > out_max) return -ENOBUFS;
	if (n / 2 > INT_MAX) return -EINVAL;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_nibble(in[2 * i]), lo = hex_nibble(in[2 * i + 1]);
		if (hi < 0 || lo < 0) return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (int)(n / 2);
}

int hex_decode_alloc(const char *in, uint8_t **ret, size_t *ret_len) {
	size_t n = strlen(in) / 2;
	_cleanup_free_ uint8_t *buf = malloc(n ? n : 1);
	if (!buf) return -ENOMEM;
	int r = hex_decode(in, buf, n);
	if (r < 0) return r;
	*ret = TAKE_PTR(buf);
	*ret_len = (size_t)r;
	return 0;
}

int read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_len) {
	_cleanup_close_ int fd = -1;
	int in = STDIN_FILENO;
	if (strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) return negerrno();
		in = fd;
	}
	size_t cap = 4096, len = 0;
	_cleanup_free_ uint8_t *buf = malloc(cap + 1);
	if (!buf) return -ENOMEM;
	for (;;) {
		if (len == cap) {
			if (cap > max) return -EFBIG;
			size_t ncap = cap * 2;
			uint8_t *nb = realloc(buf, ncap + 1);
			if (!nb) return -ENOMEM;
			buf = nb;
			cap = ncap;
		}
		ssize_t n = read(in, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR) continue;
			return negerrno();
		}
		if (n == 0) break;
		len += (size_t)n;
		if (len > max) return -EFBIG;
	}
	buf[len] = 0;
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

int write_file(const char *path, const void *data, size_t len, unsigned mode) {
	size_t plen = strlen(path);
	_cleanup_free_ char *tmp = malloc(plen + 16);
	if (!tmp) return -ENOMEM;
	snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) return negerrno();
	int r = 0;
	if (fchmod(fd, mode) < 0) r = negerrno();
	if (r == 0) r = write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0) r = negerrno();
	if (r == 0 && rename(tmp, path) < 0) r = negerrno();
	if (r < 0) unlink(tmp);
	return r;
}

int write_all(int fd, const void *buf, size_t len) {
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR) continue;
			return negerrno();
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int read_all(int fd, void *buf, size_t len) {
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR) continue;
			return negerrno();
		}
		if (n == 0) return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static uint64_t clock_usec(clockid_t id) {
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t now_monotonic_usec(void) { return clock_usec(CLOCK_MONOTONIC); }
uint64_t now_realtime_usec(void) { return clock_usec(CLOCK_REALTIME); }

void wipe(void *p, size_t len) {
	if (p && len) OPENSSL_cleanse(p, len);
}

void free_secret(void *p, size_t len) {
	if (!p) return;
	OPENSSL_cleanse(p, len);
	free(p);
}

bool mem_equal_ct(const void *a, const void *b, size_t len) {
	return CRYPTO_memcmp(a, b, len) == 0;
}

int parse_u64(const char *s, uint64_t max, uint64_t *ret) {
	if (!s || !*s) return -EINVAL;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9') return -EINVAL;
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10) return -ERANGE;
		v = v * 10 + d;
	}
	if (v > max) return -ERANGE;
	*ret = v;
	return 0;
}

int verrorf(int r, char *buf, size_t size, const char *fmt, va_list ap) {
	if (buf && size)
		vsnprintf(buf, size, fmt, ap);
	return r;
}

int errorf(int r, char *buf, size_t size, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	verrorf(r, buf, size, fmt, ap);
	va_end(ap);
	return r;
}
