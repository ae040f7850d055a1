/* kms-http.c: SigV4-signed AWS KMS JSON 1.1 over libcurl (see kms-http.h). */
#include <curl/curl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <strings.h>
#include <time.h>

#include "kms-http.h"
#include "util.h"

struct kms_http {
	CURL *curl;
	char *endpoint;
	char *region;
	char host[300]; /* exactly the Host header curl sends, so the signature covers what the server sees */
	long timeout_ms;
};

struct sink {
	char *buf;
	size_t len;
	bool overflow;
	char error_type[128];
};

int kms_credentials_from_env(struct sigv4_credentials *ret) {
	if (!ret) return -EINVAL;
	const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY"),
		   *token = getenv("AWS_SESSION_TOKEN");
	if (!id || !*id || !secret || !*secret) return -ENOKEY;
	*ret = (struct sigv4_credentials){id, secret, token && *token ? token : NULL};
	return 0;
}

static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int kms_http_new(const char *endpoint, const char *region, long timeout_ms, struct kms_http **ret) {
	if (!ret) return -EINVAL;
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	/* curl_global_init is not thread-safe on older libcurl; do it once, the first time a client is made. */
	pthread_once(&once, curl_init_once);
	_cleanup_(kms_http_freep) struct kms_http *k = calloc(1, sizeof *k);
	if (!k) return -ENOMEM;
	if (!region) region = getenv("AWS_REGION");
	if (!region || !*region) region = "us-east-1";
	k->region = strdup(region);
	if (endpoint)
		k->endpoint = strdup(endpoint);
	else if (asprintf(&k->endpoint, "https://kms.%s.amazonaws.com/", region) < 0)
		k->endpoint = NULL;
	if (!k->region || !k->endpoint) return -ENOMEM;
	k->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;

	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *scheme = NULL;
	int r = u && curl_url_set(u, CURLUPART_URL, k->endpoint, 0) == CURLUE_OK &&
				curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
				curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
				(strcmp(scheme, "https") == 0 || strcmp(scheme, "http") == 0)
			? 0
			: -EINVAL;
	if (r == 0) {
		curl_url_get(u, CURLUPART_PORT, &port, 0); /* only when explicit */
		if ((size_t)snprintf(k->host, sizeof k->host, "%s%s%s", host, port ? ":" : "", port ? port : "") >=
		    sizeof k->host)
			r = -EINVAL;
	}
	curl_free(host);
	curl_free(port);
	curl_free(scheme);
	curl_url_cleanup(u);
	if (r < 0) return r;
	if (!(k->curl = curl_easy_init())) return -ENOMEM;
	*ret = TAKE_PTR(k);
	return 0;
}

struct kms_http *kms_http_free(struct kms_http *k) {
	if (!k) return NULL;
	if (k->curl) curl_easy_cleanup(k->curl);
	free(k->endpoint);
	free(k->region);
	free(k);
	return NULL;
}

const char *kms_http_region(const struct kms_http *k) { return k->region; }
const char *kms_http_endpoint(const struct kms_http *k) { return k->endpoint; }

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
	struct sink *s = ud;
	size_t add = size * n;
	if (add > KMS_HTTP_MAX_RESPONSE - s->len) {
		s->overflow = true;
		return 0;
	}
	memcpy(s->buf + s->len, data, add);
	s->len += add;
	return add;
}

/* AWS error type without its namespace or URL decoration. */
static void set_error_type(char *dst, size_t dsz, const char *v, size_t n) {
	const char *hash = memchr(v, '#', n);
	if (hash) {
		n -= (size_t)(hash + 1 - v);
		v = hash + 1;
	}
	const char *colon = memchr(v, ':', n);
	if (colon) n = (size_t)(colon - v);
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) n--;
	while (n && *v == ' ') v++, n--;
	snprintf(dst, dsz, "%.*s", (int)n, v);
	for (char *c = dst; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
}

static size_t on_header(char *data, size_t size, size_t n, void *ud) {
	struct sink *s = ud;
	size_t len = size * n;
	static const char name[] = "x-amzn-ErrorType:";
	if (len > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0)
		set_error_type(s->error_type, sizeof s->error_type, data + sizeof name - 1, len - (sizeof name - 1));
	return len;
}

static int map_curl(CURLcode cc) {
	switch (cc) {
	case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY: return -ENOMEM;
	default: return -EPROTO;
	}
}

static void parse_error_body(struct kms_response *ret) {
	json_object *j = json_tokener_parse(ret->body);
	json_object *v;
	if (!j) return;
	if (!ret->error_type[0] && json_object_object_get_ex(j, "__type", &v) && json_object_is_type(v, json_type_string))
		set_error_type(ret->error_type, sizeof ret->error_type, json_object_get_string(v),
			       (size_t)json_object_get_string_len(v));
	if ((json_object_object_get_ex(j, "message", &v) || json_object_object_get_ex(j, "Message", &v)) &&
	    json_object_is_type(v, json_type_string)) {
		snprintf(ret->error_message, sizeof ret->error_message, "%s", json_object_get_string(v));
		for (char *c = ret->error_message; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
	}
	json_object_put(j);
}

static int append_header(struct curl_slist **l, char *line, size_t size, const char *name, const char *value) {
	if ((size_t)snprintf(line, size, "%s: %s", name, value) >= size) return -E2BIG;
	struct curl_slist *t = curl_slist_append(*l, line);
	if (!t) return -ENOMEM;
	*l = t;
	return 0;
}

int kms_http_signed_headers(const struct sigv4_header *h, size_t n, const struct sigv4_result *res,
			    const char *session_token, struct curl_slist **ret) {
	struct curl_slist *l = NULL;
	char line[8192];
	int r = 0;
	if ((!h && n) || !res || !ret) return -EINVAL;
	for (size_t i = 0; i < n && r == 0; i++) r = append_header(&l, line, sizeof line, h[i].name, h[i].value);
	if (r == 0) r = append_header(&l, line, sizeof line, "X-Amz-Date", res->amz_date);
	if (r == 0 && session_token) r = append_header(&l, line, sizeof line, "X-Amz-Security-Token", session_token);
	if (r == 0) r = append_header(&l, line, sizeof line, "Authorization", res->authorization);
	if (r == 0 && !(l = curl_slist_append(l, "Expect:"))) r = -ENOMEM;
	wipe(line, sizeof line); /* held the session token */
	if (r < 0) {
		curl_slist_free_all(l);
		return r;
	}
	*ret = l;
	return 0;
}

int kms_http_call(struct kms_http *k, const struct sigv4_credentials *creds, const char *target, const char *body,
		  size_t body_len, struct kms_response *ret, char *err, size_t errsz) {
	if (!k || !creds || !target || !body || !ret) return -EINVAL;
	*ret = (struct kms_response){};
	if (body_len > KMS_HTTP_MAX_BODY) return -E2BIG;
	char tgt[128];
	if ((size_t)snprintf(tgt, sizeof tgt, "%s%s", strchr(target, '.') ? "" : "TrentService.", target) >= sizeof tgt)
		return -EINVAL;
	struct sigv4_header h[] = {{"Host", k->host},
				   {"Content-Type", "application/x-amz-json-1.1"},
				   {"X-Amz-Target", tgt}};
	struct sigv4_request req = {"POST", "/", NULL, h, ARRAY_SIZE(h), (const uint8_t *)body, body_len};
	struct sigv4_params p = {.region = k->region, .service = "kms", .timestamp = time(NULL), .normalize_path = true};
	struct sigv4_result res;
	int r = sigv4_sign(&req, creds, &p, &res);
	if (r < 0) return r;

	struct curl_slist *hl = NULL;
	r = kms_http_signed_headers(h + 1, ARRAY_SIZE(h) - 1, &res, creds->session_token, &hl); /* curl sends Host */
	sigv4_result_done(&res);
	if (r < 0) return r;
	struct sink s = {.buf = malloc(KMS_HTTP_MAX_RESPONSE + 1)};
	if (!s.buf) {
		curl_slist_free_all(hl);
		return -ENOMEM;
	}
	CURL *e = k->curl;
	curl_easy_reset(e); /* keeps the connection cache */
	curl_easy_setopt(e, CURLOPT_URL, k->endpoint);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)body_len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, &s);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, MIN(k->timeout_ms, 3000L));
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, k->timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	CURLcode cc = curl_easy_perform(e);
	curl_slist_free_all(hl);
	if (cc != CURLE_OK) {
		if (err) snprintf(err, errsz, "%s", s.overflow ? "response too large" : curl_easy_strerror(cc));
		free_secret(s.buf, KMS_HTTP_MAX_RESPONSE + 1);
		return s.overflow ? -EMSGSIZE : map_curl(cc);
	}
	s.buf[s.len] = 0;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &ret->status);
	ret->body = s.buf;
	ret->len = s.len;
	if (ret->status != 200) {
		snprintf(ret->error_type, sizeof ret->error_type, "%s", s.error_type);
		parse_error_body(ret);
		if (!ret->error_type[0]) snprintf(ret->error_type, sizeof ret->error_type, "HTTP %ld", ret->status);
	}
	return 0;
}

void kms_response_done(struct kms_response *r) {
	if (!r) return;
	if (r->body) free_secret(r->body, KMS_HTTP_MAX_RESPONSE + 1);
	*r = (struct kms_response){};
}
