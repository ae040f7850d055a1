/* curl-body.h: a bounded in-memory sink for an HTTP response body received with libcurl (KMS answers, IMDS
 * credentials). The body is kept NUL-terminated; growing it never leaves an old copy behind unwiped, since a
 * body may hold a Plaintext data key or a secret access key. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct curl_body {
	char *p;       /* NUL-terminated, len bytes; NULL until something arrives */
	size_t len;
	size_t max;    /* larger bodies are refused: the transfer fails, overflow is set */
	bool overflow;
};

/* CURLOPT_WRITEFUNCTION, with CURLOPT_WRITEDATA a struct curl_body. Returns what it took (0 fails the transfer:
 * too large or out of memory). */
size_t curl_body_write(char *data, size_t size, size_t n, void *userdata);

/* Wipe and free the body (struct may then be reused; max is kept). */
void curl_body_done(struct curl_body *b);
