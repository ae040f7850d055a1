/* sigv4.h: AWS Signature Version 4 (AWS4-HMAC-SHA256): canonical request, string to sign, signature, signed
 * headers, session tokens and URI path normalisation, for both the Authorization-header form and the presigned
 * query-string form; plus the server-side check (parse Authorization, recompute, date window, credential scope)
 * that eml-kms-local uses. Owns no state: every call is a pure function of its inputs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Limits on what we canonicalise (hostile input on the verifier side). */
#define SIGV4_MAX_HEADERS 64
#define SIGV4_MAX_QUERY_PARAMS 64
#define SIGV4_MAX_FIELD 8192 /* any single path, query, header value */

struct sigv4_header {
	const char *name;  /* any case; duplicates allowed (joined with ',' in order, as AWS does) */
	const char *value; /* raw; trimmed and whitespace runs collapsed when canonicalised */
};

struct sigv4_request {
	const char *method;
	const char *path;  /* decoded path ("/example space/"); encoded once while canonicalising */
	const char *query; /* raw query string without '?', NULL or "" for none; percent-escapes are decoded
	                    * then re-encoded canonically */
	const struct sigv4_header *headers;
	size_t n_headers;
	const uint8_t *body;
	size_t body_len;
};

struct sigv4_credentials {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token; /* NULL when none */
};

struct sigv4_params {
	const char *region;
	const char *service;
	time_t timestamp;         /* signing time (UTC) */
	bool normalize_path;      /* remove dot segments and duplicate slashes (every service except S3) */
	bool sign_body;           /* header form: add and sign X-Amz-Content-Sha256 */
	bool omit_session_token;  /* the token is added after signing and not signed (some services want it so) */
	uint64_t expires;         /* query form only: X-Amz-Expires seconds */
};

struct sigv4_result {
	char amz_date[17];        /* YYYYMMDDTHHMMSSZ: send as X-Amz-Date (header form) */
	char payload_hash[65];    /* hex SHA-256 of the body: send as X-Amz-Content-Sha256 when sign_body */
	char signature[65];
	char *canonical_request;
	char *string_to_sign;
	char *signed_headers;     /* "host;x-amz-date" */
	char *authorization;      /* header form: the Authorization header value */
	char *query;              /* query form: the canonical query plus X-Amz-Signature (and an unsigned token) */
};

/* Header form. The caller sends X-Amz-Date (result.amz_date), X-Amz-Security-Token (credentials) when a token
 * is given, X-Amz-Content-Sha256 when sign_body, and Authorization. The request's headers must include Host.
 * 0, -EINVAL (bad input), -E2BIG (a limit), -ENOMEM, -EIO (crypto). */
int sigv4_sign(const struct sigv4_request *req, const struct sigv4_credentials *creds,
	       const struct sigv4_params *params, struct sigv4_result *ret);
/* Presigned query-string form (X-Amz-Algorithm ... X-Amz-Signature); send result.query as the query. */
int sigv4_presign(const struct sigv4_request *req, const struct sigv4_credentials *creds,
		  const struct sigv4_params *params, struct sigv4_result *ret);
void sigv4_result_done(struct sigv4_result *r);

/* Server side. Looks the secret up by access key id; returns 0 or -ENOKEY when unknown. */
typedef int (*sigv4_lookup_t)(void *userdata, const char *access_key_id, const char **ret_secret,
			      const char **ret_session_token);

struct sigv4_verify_params {
	const char *region;
	const char *service;
	time_t now;
	uint64_t max_skew; /* seconds either side of now (AWS uses 15 minutes) */
	sigv4_lookup_t lookup;
	void *userdata;
};

/* Verify a header-form request (its headers include Authorization and X-Amz-Date). Errors, distinct:
 *   -EBADMSG  missing or malformed Authorization / X-Amz-Date / SignedHeaders (or a signed header absent)
 *   -EPROTONOSUPPORT  algorithm other than AWS4-HMAC-SHA256
 *   -ENOKEY   unknown access key id
 *   -EDOM     credential scope wrong (date, region, service or terminator)
 *   -ETIME    X-Amz-Date outside the window
 *   -EPERM    session token required by the credentials missing, unsigned or different
 *   -EACCES   signature mismatch
 * On success *ret_access_key_id (may be NULL) gets a copy of the key id. */
int sigv4_verify(const struct sigv4_request *req, const struct sigv4_verify_params *params,
		 char **ret_access_key_id);

/* Short reason for a sigv4_verify() error, for AWS-style error messages. */
const char *sigv4_strerror(int r);

/* Helpers the HTTP code shares. "20150830T123600Z" <-> time_t; -EINVAL on anything else. */
int sigv4_parse_amz_date(const char *s, time_t *ret);
void sigv4_format_amz_date(time_t t, char out[17]);
