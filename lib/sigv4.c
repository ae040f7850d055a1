/* sigv4.c: AWS Signature Version 4 signing and verification (see sigv4.h). */
#include "sigv4.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "macro.h"
#include "util.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"

/* A growable string; errors are sticky so call sites stay short. */
struct buf {
	char *p;
	size_t len, cap;
	int err;
};

static void buf_add(struct buf *b, const char *s, size_t n) {
	if (b->err) return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = MAX(b->cap * 2, b->len + n + 64);
		char *p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void buf_adds(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }
static void buf_addc(struct buf *b, char c) { buf_add(b, &c, 1); }

/* The credential scope "YYYYMMDD/region/service/aws4_request" (amz_date's first 8 characters are the date):
 * in the string to sign, the Authorization header and a presigned X-Amz-Credential alike. */
static void buf_add_scope(struct buf *b, const char *amz_date, const char *region, const char *service) {
	buf_add(b, amz_date, 8);
	buf_addc(b, '/');
	buf_adds(b, region);
	buf_addc(b, '/');
	buf_adds(b, service);
	buf_adds(b, "/" TERMINATOR);
}

static char *buf_steal(struct buf *b) {
	if (!b->p) buf_add(b, "", 0);
	if (b->err) {
		free(b->p);
		b->p = NULL;
		return NULL;
	}
	b->len = b->cap = 0;
	return TAKE_PTR(b->p);
}

static void buf_done(struct buf *b) {
	free(b->p);
	b->p = NULL;
}
#define _cleanup_buf_ _cleanup_(buf_done)

static bool unreserved(unsigned char c) {
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '.' || c == '_' || c == '~';
}

/* RFC 3986 encoding as SigV4 wants it: upper-case hex, everything but unreserved (and '/' in paths). */
static void uri_encode(struct buf *b, const char *s, size_t n, bool keep_slash) {
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c) || (keep_slash && c == '/'))
			buf_addc(b, (char)c);
		else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			buf_add(b, e, 3);
		}
	}
}

static int hexval(char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..n) into a new NUL-terminated string. A '%' not followed by two hex digits is an error. */
static int pct_decode(const char *s, size_t n, char **ret) {
	char *o = malloc(n + 1);
	if (!o) return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
			int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi | lo) == 0) { /* %00 would truncate the string */
				free(o);
				return -EINVAL;
			}
			o[k++] = (char)(hi << 4 | lo);
			i += 2;
			continue;
		}
		o[k++] = s[i];
	}
	o[k] = 0;
	*ret = o;
	return 0;
}

/* Path: optional RFC 3986 dot-segment removal plus duplicate-slash collapsing, then encoded once. */
static int canonical_uri(const char *path, bool normalize, struct buf *out) {
	if (!path || !*path) path = "/";
	size_t n = strlen(path);
	if (n > SIGV4_MAX_FIELD) return -E2BIG;
	if (!normalize) {
		uri_encode(out, path, n, true);
		return out->err;
	}
	/* Segment stack as (offset, length) pairs into path. */
	size_t max = n / 2 + 2, depth = 0;
	_cleanup_free_ size_t *seg = calloc(max, 2 * sizeof(size_t));
	if (!seg) return -ENOMEM;
	for (size_t i = 0; i < n;) {
		while (i < n && path[i] == '/') i++;
		size_t s = i;
		while (i < n && path[i] != '/') i++;
		size_t l = i - s;
		if (l == 0 || (l == 1 && path[s] == '.')) continue;
		if (l == 2 && path[s] == '.' && path[s + 1] == '.') {
			if (depth) depth--;
			continue;
		}
		seg[2 * depth] = s;
		seg[2 * depth + 1] = l;
		depth++;
	}
	buf_addc(out, '/');
	for (size_t d = 0; d < depth; d++) {
		if (d) buf_addc(out, '/');
		uri_encode(out, path + seg[2 * d], seg[2 * d + 1], true);
	}
	if (depth && path[n - 1] == '/') buf_addc(out, '/');
	return out->err;
}

struct qparam {
	char *key, *value; /* encoded */
};

static void qparams_free(struct qparam *q, size_t n) {
	for (size_t i = 0; q && i < n; i++) {
		free(q[i].key);
		free(q[i].value);
	}
	free(q);
}

static int qparam_cmp(const void *a, const void *b) {
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : strcmp(x->value, y->value);
}

static int qparam_add_decoded(struct qparam *q, size_t *n, const char *k, size_t kl, const char *v, size_t vl) {
	struct buf kb = {}, vb = {};
	uri_encode(&kb, k, kl, false);
	uri_encode(&vb, v, vl, false);
	q[*n].key = buf_steal(&kb);
	q[*n].value = buf_steal(&vb);
	if (!q[*n].key || !q[*n].value) {
		free(q[*n].key);
		free(q[*n].value);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

/* Canonical query: decode every name and value, re-encode, sort by name then value. extra[] are added
 * (decoded) name/value pairs for the presigned form. */
static int canonical_query(const char *query, const char *const *extra, size_t n_extra, struct buf *out) {
	size_t cap = SIGV4_MAX_QUERY_PARAMS + n_extra, n = 0;
	struct qparam *q = calloc(cap, sizeof *q);
	int r = 0;
	if (!q) return -ENOMEM;
	if (query && *query) {
		if (strlen(query) > SIGV4_MAX_FIELD) {
			r = -E2BIG;
			goto done;
		}
		for (const char *p = query; *p;) {
			size_t l = strcspn(p, "&");
			if (l > 0) {
				if (n >= SIGV4_MAX_QUERY_PARAMS) {
					r = -E2BIG;
					goto done;
				}
				const char *eq = memchr(p, '=', l);
				size_t kl = eq ? (size_t)(eq - p) : l;
				_cleanup_free_ char *k = NULL, *v = NULL;
				r = pct_decode(p, kl, &k);
				if (r >= 0) r = pct_decode(eq ? eq + 1 : "", eq ? l - kl - 1 : 0, &v);
				if (r >= 0) r = qparam_add_decoded(q, &n, k, strlen(k), v, strlen(v));
				if (r < 0) goto done;
			}
			p += l;
			if (*p == '&') p++;
		}
	}
	for (size_t i = 0; i < n_extra; i++) {
		r = qparam_add_decoded(q, &n, extra[2 * i], strlen(extra[2 * i]), extra[2 * i + 1],
				       strlen(extra[2 * i + 1]));
		if (r < 0) goto done;
	}
	qsort(q, n, sizeof *q, qparam_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i) buf_addc(out, '&');
		buf_adds(out, q[i].key);
		buf_addc(out, '=');
		buf_adds(out, q[i].value);
	}
	r = out->err;
done:
	qparams_free(q, n);
	return r;
}

struct hentry {
	char *name;        /* lower case */
	const char *value; /* raw */
	size_t index;      /* original position: keeps duplicate values in order */
};

static int hentry_cmp(const void *a, const void *b) {
	const struct hentry *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c) return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Trim and collapse runs of whitespace to one space (this also joins folded continuation lines). */
static void canonical_value(struct buf *b, const char *v) {
	while (is_ws(*v)) v++;
	bool pending = false;
	for (; *v; v++) {
		if (is_ws(*v)) {
			pending = true;
			continue;
		}
		if (pending) buf_addc(b, ' ');
		pending = false;
		buf_addc(b, *v);
	}
}

/* Headers never signed: hop-by-hop or rewritten by proxies (the same list the AWS SDKs skip). */
static bool header_skipped(const char *lname) {
	static const char *const skip[] = {"authorization", "user-agent", "x-amzn-trace-id", "expect",
					   "connection", "transfer-encoding", "content-length-hint"};
	for (size_t i = 0; i < ARRAY_SIZE(skip); i++)
		if (strcmp(lname, skip[i]) == 0) return true;
	return false;
}

/* Is lname one of the ';'-separated names in list? */
static bool name_in_list(const char *lname, const char *list) {
	size_t n = strlen(lname);
	for (const char *p = list; *p;) {
		size_t l = strcspn(p, ";");
		if (l == n && memcmp(p, lname, n) == 0) return true;
		p += l;
		if (*p) p++;
	}
	return false;
}

/* Canonical headers block and signed-header list. With only (a SignedHeaders list) just those names are taken
 * and each must be present; otherwise every header but the skip list. */
static int canonical_headers(const struct sigv4_header *h, size_t n, const char *only, struct buf *canon,
			     struct buf *signed_names) {
	if (n > SIGV4_MAX_HEADERS + 4) return -E2BIG;
	struct hentry *e = calloc(n ? n : 1, sizeof *e);
	size_t m = 0;
	int r = 0;
	if (!e) return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!h[i].name || !h[i].value || !*h[i].name) {
			r = -EINVAL;
			goto done;
		}
		if (strlen(h[i].value) > SIGV4_MAX_FIELD || strlen(h[i].name) > 256) {
			r = -E2BIG;
			goto done;
		}
		char *l = strdup(h[i].name);
		if (!l) {
			r = -ENOMEM;
			goto done;
		}
		for (char *c = l; *c; c++) *c = (char)tolower((unsigned char)*c);
		if (only ? !name_in_list(l, only) : header_skipped(l)) {
			free(l);
			continue;
		}
		e[m++] = (struct hentry){l, h[i].value, i};
	}
	qsort(e, m, sizeof *e, hentry_cmp);
	for (size_t i = 0; i < m; i++) {
		bool first = i == 0 || strcmp(e[i].name, e[i - 1].name) != 0;
		if (first) {
			if (i) {
				buf_addc(canon, '\n');
				buf_addc(signed_names, ';');
			}
			buf_adds(canon, e[i].name);
			buf_addc(canon, ':');
			buf_adds(signed_names, e[i].name);
		} else
			buf_addc(canon, ',');
		canonical_value(canon, e[i].value);
	}
	if (m) buf_addc(canon, '\n');
	if (only) {
		/* Every name the client says it signed must be there. */
		for (const char *p = only; *p;) {
			size_t l = strcspn(p, ";");
			bool found = false;
			for (size_t i = 0; i < m && !found; i++)
				found = strlen(e[i].name) == l && memcmp(e[i].name, p, l) == 0;
			if (!found) {
				r = -EBADMSG;
				goto done;
			}
			p += l;
			if (*p) p++;
		}
	}
	r = canon->err ? canon->err : signed_names->err;
done:
	for (size_t i = 0; i < m; i++) free(e[i].name);
	free(e);
	return r;
}

static void sha256_hex(const void *d, size_t n, char out[65]) {
	uint8_t md[SHA256_DIGEST_LENGTH];
	SHA256(d, n, md);
	hex_encode(md, sizeof md, out);
}

static int hmac(const uint8_t *key, size_t klen, const char *msg, uint8_t out[32]) {
	unsigned int len = 32;
	if (!HMAC(EVP_sha256(), key, (int)klen, (const uint8_t *)msg, strlen(msg), out, &len) || len != 32)
		return -EIO;
	return 0;
}

void sigv4_format_amz_date(time_t t, char out[17]) {
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

int sigv4_parse_amz_date(const char *s, time_t *ret) {
	if (!s || strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z') return -EINVAL;
	for (int i = 0; i < 15; i++)
		if (i != 8 && !isdigit((unsigned char)s[i])) return -EINVAL;
	struct tm tm = {};
	int v[6];
	if (sscanf(s, "%4d%2d%2dT%2d%2d%2dZ", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -EINVAL;
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60) return -EINVAL;
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	time_t t = timegm(&tm);
	if (t == (time_t)-1) return -EINVAL;
	*ret = t;
	return 0;
}

/* signature = HMAC(kSigning, string_to_sign), kSigning derived from the secret through the scope. */
static int compute_signature(const char *secret, const char *date8, const char *region, const char *service,
			     const char *sts, char out[65]) {
	uint8_t k[32], sig[32];
	size_t sl = strlen(secret);
	char *ks = malloc(sl + 5);
	if (!ks) return -ENOMEM;
	memcpy(ks, "AWS4", 4);
	memcpy(ks + 4, secret, sl + 1);
	int r = hmac((uint8_t *)ks, sl + 4, date8, k);
	free_secret(ks, sl + 5);
	if (r >= 0) r = hmac(k, 32, region, k);
	if (r >= 0) r = hmac(k, 32, service, k);
	if (r >= 0) r = hmac(k, 32, TERMINATOR, k);
	if (r >= 0) r = hmac(k, 32, sts, sig);
	wipe(k, sizeof k);
	if (r >= 0) hex_encode(sig, 32, out);
	return r;
}

/* Everything after the query: the canonical request, the string to sign and the signature. */
static int finish(const char *method, const char *uri, const char *query, const char *headers,
		  const char *signed_names, const char *payload_hash, const char *amz_date, const char *region,
		  const char *service, const char *secret, struct sigv4_result *ret) {
	_cleanup_buf_ struct buf cr = {}, sts = {};
	char date8[9], crhash[65];
	memcpy(date8, amz_date, 8);
	date8[8] = 0;
	buf_adds(&cr, method);
	buf_addc(&cr, '\n');
	buf_adds(&cr, uri);
	buf_addc(&cr, '\n');
	buf_adds(&cr, query);
	buf_addc(&cr, '\n');
	buf_adds(&cr, headers);
	buf_addc(&cr, '\n');
	buf_adds(&cr, signed_names);
	buf_addc(&cr, '\n');
	buf_adds(&cr, payload_hash);
	if (cr.err) return cr.err;
	sha256_hex(cr.p, cr.len, crhash);
	buf_adds(&sts, ALGORITHM "\n");
	buf_adds(&sts, amz_date);
	buf_addc(&sts, '\n');
	buf_add_scope(&sts, amz_date, region, service);
	buf_addc(&sts, '\n');
	buf_adds(&sts, crhash);
	if (sts.err) return sts.err;
	int r = compute_signature(secret, date8, region, service, sts.p, ret->signature);
	if (r < 0) return r;
	ret->canonical_request = buf_steal(&cr);
	ret->string_to_sign = buf_steal(&sts);
	return 0;
}

static bool valid_scope_part(const char *s) {
	if (!s || !*s || strlen(s) > 64) return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_') return false;
	return true;
}

static int check_inputs(const struct sigv4_request *req, const struct sigv4_credentials *creds,
			const struct sigv4_params *params) {
	if (!req || !creds || !params || !req->method || !*req->method || !creds->access_key_id ||
	    !creds->secret_access_key || !valid_scope_part(params->region) || !valid_scope_part(params->service))
		return -EINVAL;
	if (req->n_headers > SIGV4_MAX_HEADERS) return -E2BIG;
	if (req->n_headers && !req->headers) return -EINVAL;
	return 0;
}

void sigv4_result_done(struct sigv4_result *r) {
	if (!r) return;
	free(r->canonical_request);
	free(r->string_to_sign);
	free(r->signed_headers);
	free(r->authorization);
	free(r->query);
	*r = (struct sigv4_result){};
}

int sigv4_sign(const struct sigv4_request *req, const struct sigv4_credentials *creds,
	       const struct sigv4_params *params, struct sigv4_result *ret) {
	int r = check_inputs(req, creds, params);
	if (r < 0) return r;
	struct sigv4_result res = {};
	_cleanup_buf_ struct buf uri = {}, query = {}, canon = {}, names = {}, auth = {};
	sigv4_format_amz_date(params->timestamp, res.amz_date);
	sha256_hex(req->body ? (const void *)req->body : "", req->body_len, res.payload_hash);

	/* The headers we add are signed like the caller's. */
	struct sigv4_header h[SIGV4_MAX_HEADERS + 3];
	size_t n = 0;
	for (size_t i = 0; i < req->n_headers; i++) h[n++] = req->headers[i];
	h[n++] = (struct sigv4_header){"x-amz-date", res.amz_date};
	if (creds->session_token && !params->omit_session_token)
		h[n++] = (struct sigv4_header){"x-amz-security-token", creds->session_token};
	if (params->sign_body) h[n++] = (struct sigv4_header){"x-amz-content-sha256", res.payload_hash};

	r = canonical_uri(req->path, params->normalize_path, &uri);
	if (r >= 0) r = canonical_query(req->query, NULL, 0, &query);
	if (r >= 0) r = canonical_headers(h, n, NULL, &canon, &names);
	if (r >= 0)
		r = finish(req->method, uri.p, query.p ? query.p : "", canon.p ? canon.p : "", names.p ? names.p : "",
			   res.payload_hash, res.amz_date, params->region, params->service,
			   creds->secret_access_key, &res);
	if (r < 0) goto fail;
	buf_adds(&auth, ALGORITHM " Credential=");
	buf_adds(&auth, creds->access_key_id);
	buf_addc(&auth, '/');
	buf_add_scope(&auth, res.amz_date, params->region, params->service);
	buf_adds(&auth, ", SignedHeaders=");
	buf_adds(&auth, names.p ? names.p : "");
	buf_adds(&auth, ", Signature=");
	buf_adds(&auth, res.signature);
	res.authorization = buf_steal(&auth);
	res.signed_headers = buf_steal(&names);
	if (!res.authorization || !res.signed_headers) {
		r = -ENOMEM;
		goto fail;
	}
	*ret = res;
	return 0;
fail:
	sigv4_result_done(&res);
	return r;
}

int sigv4_presign(const struct sigv4_request *req, const struct sigv4_credentials *creds,
		  const struct sigv4_params *params, struct sigv4_result *ret) {
	int r = check_inputs(req, creds, params);
	if (r < 0) return r;
	struct sigv4_result res = {};
	_cleanup_buf_ struct buf uri = {}, query = {}, canon = {}, names = {}, cred = {}, full = {};
	char expires[24];
	sigv4_format_amz_date(params->timestamp, res.amz_date);
	sha256_hex(req->body ? (const void *)req->body : "", req->body_len, res.payload_hash);
	snprintf(expires, sizeof expires, "%" PRIu64, params->expires);

	r = canonical_uri(req->path, params->normalize_path, &uri);
	if (r >= 0) r = canonical_headers(req->headers, req->n_headers, NULL, &canon, &names);
	if (r < 0) goto fail;
	buf_adds(&cred, creds->access_key_id);
	buf_addc(&cred, '/');
	buf_add_scope(&cred, res.amz_date, params->region, params->service);
	if ((r = cred.err ? cred.err : names.err) < 0) goto fail;
	const char *extra[12] = {"X-Amz-Algorithm", ALGORITHM, "X-Amz-Credential", cred.p, "X-Amz-Date",
				 res.amz_date, "X-Amz-Expires", expires, "X-Amz-SignedHeaders", names.p ? names.p : ""};
	size_t n_extra = 5;
	bool signed_token = creds->session_token && !params->omit_session_token;
	if (signed_token) {
		extra[10] = "X-Amz-Security-Token";
		extra[11] = creds->session_token;
		n_extra++;
	}
	r = canonical_query(req->query, extra, n_extra, &query);
	if (r >= 0)
		r = finish(req->method, uri.p, query.p, canon.p ? canon.p : "", names.p ? names.p : "",
			   res.payload_hash, res.amz_date, params->region, params->service,
			   creds->secret_access_key, &res);
	if (r < 0) goto fail;
	buf_adds(&full, query.p);
	if (creds->session_token && !signed_token) {
		buf_adds(&full, "&X-Amz-Security-Token=");
		uri_encode(&full, creds->session_token, strlen(creds->session_token), false);
	}
	buf_adds(&full, "&X-Amz-Signature=");
	buf_adds(&full, res.signature);
	res.query = buf_steal(&full);
	res.signed_headers = buf_steal(&names);
	if (!res.query || !res.signed_headers) {
		r = -ENOMEM;
		goto fail;
	}
	*ret = res;
	return 0;
fail:
	sigv4_result_done(&res);
	return r;
}

/* ---- verification ---- */

static const char *find_header(const struct sigv4_request *req, const char *name, size_t *ret_count) {
	const char *v = NULL;
	size_t c = 0;
	for (size_t i = 0; i < req->n_headers; i++)
		if (req->headers[i].name && strcasecmp(req->headers[i].name, name) == 0) {
			if (!v) v = req->headers[i].value;
			c++;
		}
	if (ret_count) *ret_count = c;
	return v;
}

struct auth_parts {
	char *akid, *date8, *region, *service, *terminator, *signed_headers, *signature;
};

static void auth_parts_done(struct auth_parts *a) {
	free(a->akid);
	free(a->date8);
	free(a->region);
	free(a->service);
	free(a->terminator);
	free(a->signed_headers);
	free(a->signature);
}

/* "AWS4-HMAC-SHA256 Credential=AK/D/R/S/aws4_request, SignedHeaders=a;b, Signature=hex" (any order of the
 * three, each exactly once). */
static int parse_authorization(const char *v, struct auth_parts *a) {
	if (strlen(v) > 4096) return -EBADMSG;
	size_t al = strcspn(v, " ");
	if (al != strlen(ALGORITHM) || strncmp(v, ALGORITHM, al) != 0) return v[al] ? -EPROTONOSUPPORT : -EBADMSG;
	const char *p = v + al;
	while (*p) {
		while (*p == ' ' || *p == ',') p++;
		if (!*p) break;
		size_t l = strcspn(p, ", ");
		const char *eq = memchr(p, '=', l);
		if (!eq) return -EBADMSG;
		size_t kl = (size_t)(eq - p);
		char *val = strndup(eq + 1, l - kl - 1);
		if (!val) return -ENOMEM;
		char **slot = NULL;
		if (kl == 10 && strncmp(p, "Credential", 10) == 0) {
			/* split AK/D/R/S/T */
			char *parts[5] = {};
			char *save = NULL, *tok = val;
			int i = 0;
			size_t slashes = 0;
			for (char *c = val; *c; c++) slashes += *c == '/';
			if (slashes != 4 || a->akid) {
				free(val);
				return -EBADMSG;
			}
			for (char *t = strtok_r(tok, "/", &save); t && i < 5; t = strtok_r(NULL, "/", &save))
				parts[i++] = t;
			if (i != 5) {
				free(val);
				return -EBADMSG;
			}
			a->akid = strdup(parts[0]);
			a->date8 = strdup(parts[1]);
			a->region = strdup(parts[2]);
			a->service = strdup(parts[3]);
			a->terminator = strdup(parts[4]);
			free(val);
			if (!a->akid || !a->date8 || !a->region || !a->service || !a->terminator) return -ENOMEM;
		} else if (kl == 13 && strncmp(p, "SignedHeaders", 13) == 0)
			slot = &a->signed_headers;
		else if (kl == 9 && strncmp(p, "Signature", 9) == 0)
			slot = &a->signature;
		else {
			free(val);
			return -EBADMSG;
		}
		if (slot) {
			if (*slot) {
				free(val);
				return -EBADMSG;
			}
			*slot = val;
		}
		p += l;
	}
	if (!a->akid || !a->signed_headers || !a->signature) return -EBADMSG;
	if (strlen(a->signature) != 64) return -EBADMSG;
	for (const char *c = a->signature; *c; c++)
		if (!isxdigit((unsigned char)*c) || isupper((unsigned char)*c)) return -EBADMSG;
	/* SignedHeaders: lower-case, sorted, no duplicates, no empty names. */
	const char *prev = NULL;
	size_t prevl = 0;
	for (const char *s = a->signed_headers;;) {
		size_t l = strcspn(s, ";");
		if (l == 0) return -EBADMSG;
		for (size_t i = 0; i < l; i++)
			if (isupper((unsigned char)s[i]) || isspace((unsigned char)s[i])) return -EBADMSG;
		if (prev) {
			int c = strncmp(prev, s, MIN(prevl, l));
			if (c > 0 || (c == 0 && prevl >= l)) return -EBADMSG;
		}
		prev = s;
		prevl = l;
		s += l;
		if (!*s) break;
		s++;
	}
	return 0;
}

int sigv4_verify(const struct sigv4_request *req, const struct sigv4_verify_params *params,
		 char **ret_access_key_id) {
	if (!req || !params || !params->lookup || !req->method) return -EINVAL;
	if (req->n_headers > SIGV4_MAX_HEADERS) return -E2BIG;
	size_t count;
	const char *auth = find_header(req, "authorization", &count);
	if (!auth || count != 1) return -EBADMSG;
	const char *date = find_header(req, "x-amz-date", &count);
	if (!date || count != 1) return -EBADMSG;

	_cleanup_(auth_parts_done) struct auth_parts a = {};
	int r = parse_authorization(auth, &a);
	if (r < 0) return r;
	time_t t;
	if (sigv4_parse_amz_date(date, &t) < 0) return -EBADMSG;
	if (!name_in_list("host", a.signed_headers) || !name_in_list("x-amz-date", a.signed_headers))
		return -EBADMSG;

	const char *secret = NULL, *token = NULL;
	r = params->lookup(params->userdata, a.akid, &secret, &token);
	if (r < 0 || !secret) return -ENOKEY;
	if (strncmp(a.date8, date, 8) != 0 || strlen(a.date8) != 8 || strcmp(a.region, params->region) != 0 ||
	    strcmp(a.service, params->service) != 0 || strcmp(a.terminator, TERMINATOR) != 0)
		return -EDOM;
	uint64_t skew = (uint64_t)(t > params->now ? t - params->now : params->now - t);
	if (skew > params->max_skew) return -ETIME;
	if (token) {
		const char *sent = find_header(req, "x-amz-security-token", &count);
		if (!sent || count != 1 || strcmp(sent, token) != 0 ||
		    !name_in_list("x-amz-security-token", a.signed_headers))
			return -EPERM;
	}

	_cleanup_buf_ struct buf uri = {}, query = {}, canon = {}, names = {};
	char payload_hash[65];
	sha256_hex(req->body ? (const void *)req->body : "", req->body_len, payload_hash);
	/* A signed x-amz-content-sha256 must be the real hash. */
	const char *ch = find_header(req, "x-amz-content-sha256", NULL);
	if (ch && name_in_list("x-amz-content-sha256", a.signed_headers) && strcmp(ch, payload_hash) != 0)
		return -EACCES;
	r = canonical_uri(req->path, true, &uri);
	if (r >= 0) r = canonical_query(req->query, NULL, 0, &query);
	if (r >= 0) r = canonical_headers(req->headers, req->n_headers, a.signed_headers, &canon, &names);
	if (r == -EINVAL) r = -EBADMSG;
	if (r < 0) return r;
	struct sigv4_result res = {};
	r = finish(req->method, uri.p, query.p ? query.p : "", canon.p ? canon.p : "", names.p ? names.p : "",
		   payload_hash, date, a.region, a.service, secret, &res);
	if (r < 0) return r;
	bool ok = mem_equal_ct(res.signature, a.signature, 64);
	sigv4_result_done(&res);
	if (!ok) return -EACCES;
	if (ret_access_key_id) {
		*ret_access_key_id = strdup(a.akid);
		if (!*ret_access_key_id) return -ENOMEM;
	}
	return 0;
}

const char *sigv4_strerror(int r) {
	switch (r) {
	case -EBADMSG: return "malformed Authorization, X-Amz-Date or SignedHeaders";
	case -EPROTONOSUPPORT: return "unsupported signature algorithm";
	case -ENOKEY: return "the security token included in the request is invalid";
	case -EDOM: return "credential scope does not match (date, region, service or terminator)";
	case -ETIME: return "signature expired: X-Amz-Date is outside the allowed window";
	case -EPERM: return "session token missing, unsigned or wrong";
	case -EACCES: return "the request signature we calculated does not match the signature you provided";
	case -E2BIG: return "request too large to canonicalise";
	default: return "signature verification failed";
	}
}
