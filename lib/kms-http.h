/* kms-http.h: AWS KMS JSON 1.1 requests over HTTP(S) with libcurl, SigV4-signed (lib/sigv4), for the host
 * side: `eml model seal` (GenerateDataKey with the operator's credentials) and eml-kms-relay. One client keeps
 * one curl handle, so consecutive calls reuse the connection. Responses are bounded, held in one fixed buffer
 * (never realloc'ed, so no stray copies of a Plaintext are left in freed memory) and wiped when done. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "sigv4.h"

#define KMS_HTTP_MAX_RESPONSE (64u * 1024)
#define KMS_HTTP_MAX_BODY (64u * 1024)

struct kms_http;
struct curl_slist;

struct kms_response {
	long status;            /* HTTP status; 200 on success */
	char *body;             /* NUL-terminated, len bytes; wiped by kms_response_done */
	size_t len;
	char error_type[128];   /* AWS error type when status != 200 ("AccessDeniedException"), else "" */
	char error_message[256];
};

/* endpoint NULL -> https://kms.REGION.amazonaws.com/; region NULL -> $AWS_REGION, else us-east-1.
 * timeout_ms 0 -> 10 s. -EINVAL bad endpoint, -ENOMEM. */
int kms_http_new(const char *endpoint, const char *region, long timeout_ms, struct kms_http **ret);
struct kms_http *kms_http_free(struct kms_http *k);
static inline void kms_http_freep(struct kms_http **k) { kms_http_free(*k); }
#define _cleanup_kms_http_ _cleanup_(kms_http_freep)
const char *kms_http_region(const struct kms_http *k);
const char *kms_http_endpoint(const struct kms_http *k);

/* POST one request. target "GenerateDataKey" or "TrentService.GenerateDataKey". Returns 0 when an HTTP answer
 * arrived (whatever its status: look at ret->status and ret->error_type), -ECONNREFUSED / -ETIMEDOUT /
 * -EHOSTUNREACH (transport; err gets curl's reason), -EMSGSIZE (response too large), -E2BIG (body too
 * large), -EINVAL, -ENOMEM. */
int kms_http_call(struct kms_http *k, const struct sigv4_credentials *creds, const char *target, const char *body,
		  size_t body_len, struct kms_response *ret, char *err, size_t errsz);
void kms_response_done(struct kms_response *r);

/* The HTTP headers of a SigV4-signed request as a curl list: each of the n signed headers h (pass h + 1 to leave
 * Host to curl), X-Amz-Date, X-Amz-Security-Token when session_token is set, Authorization, and an empty Expect
 * (no 100-continue round trip). 0, -E2BIG (a header longer than 8 KiB) or -ENOMEM; nothing is returned on
 * failure. Free with curl_slist_free_all. */
int kms_http_signed_headers(const struct sigv4_header *h, size_t n, const struct sigv4_result *res,
			    const char *session_token, struct curl_slist **ret);

/* AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional). Pointers into the environment.
 * -ENOKEY when the first two are not both set. */
int kms_credentials_from_env(struct sigv4_credentials *ret);
