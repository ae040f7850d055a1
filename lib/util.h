/* util.h: small helpers with no better home: hex, bounded file I/O, clocks, wiping secrets. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void hex_encode(const uint8_t *in, size_t len, char *out);
/* Decode hex (either case, even length). Returns bytes written, or -EINVAL / -ENOBUFS. */
int hex_decode(const char *in, uint8_t *out, size_t out_max);
/* Decode hex into a new buffer. 0 or -EINVAL / -ENOMEM. */
int hex_decode_alloc(const char *in, uint8_t **ret, size_t *ret_len);

/* Read a whole file (or "-" for stdin) of at most max bytes; NUL-terminated for convenience (not counted).
 * -EFBIG when larger than max. */
int read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_len);
/* Write atomically (temp file + rename) with the given mode. */
int write_file(const char *path, const void *data, size_t len, unsigned mode);

/* Write/read exactly len bytes on a blocking fd, retrying on EINTR. Short read at EOF -> -EPIPE. */
int write_all(int fd, const void *buf, size_t len);
int read_all(int fd, void *buf, size_t len);

/* Clocks, microseconds. */
uint64_t now_monotonic_usec(void);
uint64_t now_realtime_usec(void);

/* Wipe secrets; never optimised away (OPENSSL_cleanse). free_secret wipes len bytes then frees (NULL ok). */
void wipe(void *p, size_t len);
void free_secret(void *p, size_t len);

/* Constant-time comparison. */
bool mem_equal_ct(const void *a, const void *b, size_t len);

/* Format a reason into buf (size bytes; nothing written when buf is NULL or size 0) and return r, so that
 * a failing check is one line: return errorf(-EINVAL, reason, size, "bad %s", what). */
__attribute__((format(printf, 4, 5))) int errorf(int r, char *buf, size_t size, const char *fmt, ...);
__attribute__((format(printf, 4, 0))) int verrorf(int r, char *buf, size_t size, const char *fmt, va_list ap);

/* Parse an unsigned decimal integer fully ("12" yes, "12x", "", "-1" no) bounded by max. */
int parse_u64(const char *s, uint64_t max, uint64_t *ret);
