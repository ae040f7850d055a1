/* creds.c: the host's AWS credentials and region for eml-kms-relay (see relay.h). Secrets are wiped when
 * replaced and never logged. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "curl-body.h"
#include "log.h"
#include "macro.h"
#include "relay.h"
#include "util.h"

#define IMDS_TIMEOUT_MS 2000L
#define IMDS_MAX 16384
#define REFRESH_BEFORE_USEC (5ull * 60 * 1000000)

void creds_done(struct creds *c) {
	if (!c) return;
	if (c->access_key_id) free_secret(c->access_key_id, strlen(c->access_key_id));
	if (c->secret_access_key) free_secret(c->secret_access_key, strlen(c->secret_access_key));
	if (c->session_token) free_secret(c->session_token, strlen(c->session_token));
	*c = (struct creds){};
}

static int creds_copy(const struct creds *from, struct creds *to) {
	*to = (struct creds){.expires_usec = from->expires_usec};
	to->access_key_id = strdup(from->access_key_id);
	to->secret_access_key = strdup(from->secret_access_key);
	to->session_token = from->session_token ? strdup(from->session_token) : NULL;
	if (!to->access_key_id || !to->secret_access_key || (from->session_token && !to->session_token)) {
		creds_done(to);
		return -ENOMEM;
	}
	return 0;
}

/* A credential file: its content without trailing newlines. */
static int read_cred_file(const char *dir, const char *name, bool optional, char **ret) {
	char path[4096];
	uint8_t *d;
	size_t n;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int r = read_file(path, 8192, &d, &n);
	if (r == -ENOENT && optional) {
		*ret = NULL;
		return 0;
	}
	if (r < 0) return r;
	while (n && (d[n - 1] == '\n' || d[n - 1] == '\r' || d[n - 1] == ' ')) d[--n] = 0;
	if (n == 0 || memchr(d, '\n', n)) {
		free_secret(d, n);
		return -EINVAL;
	}
	*ret = (char *)d;
	return 0;
}

/* One IMDS request. token NULL: the PUT that obtains a session token. */
static int imds_call(const char *base, const char *path, const char *token, char **ret) {
	char url[1024], hdr[1200];
	struct curl_body g = {.max = IMDS_MAX};
	long status = 0;
	snprintf(url, sizeof url, "%s%s", base, path);
	CURL *e = curl_easy_init();
	if (!e) return -ENOMEM;
	struct curl_slist *h = NULL;
	if (token) {
		snprintf(hdr, sizeof hdr, "X-aws-ec2-metadata-token: %s", token);
		h = curl_slist_append(h, hdr);
	} else {
		h = curl_slist_append(h, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_body_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &g);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, IMDS_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
	CURLcode cc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	if (cc != CURLE_OK || status != 200 || !g.p) {
		curl_body_done(&g);
		return cc == CURLE_OK ? -ENOENT : -EHOSTUNREACH;
	}
	*ret = g.p;
	return 0;
}

int imds_region(const char *imds_url, char **ret) {
	_cleanup_free_ char *token = NULL;
	int r = imds_call(imds_url, "/latest/api/token", NULL, &token);
	if (r < 0) return r;
	return imds_call(imds_url, "/latest/meta-data/placement/region", token, ret);
}

static int parse_expiration(const char *s, uint64_t *ret) {
	struct tm tm = {};
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end || (*end != 'Z' && *end != 0)) return -EINVAL;
	time_t t = timegm(&tm);
	if (t == (time_t)-1) return -EINVAL;
	*ret = (uint64_t)t * 1000000;
	return 0;
}

/* IMDSv2: token, role name, then the role's credentials. */
static int imds_load(const char *base, struct creds *ret) {
	_cleanup_free_ char *token = NULL, *roles = NULL;
	char *doc = NULL;
	int r = imds_call(base, "/latest/api/token", NULL, &token);
	if (r < 0) return r;
	if ((r = imds_call(base, "/latest/meta-data/iam/security-credentials/", token, &roles)) < 0) return r;
	roles[strcspn(roles, "\r\n")] = 0;
	if (!*roles || strchr(roles, '/')) return -ENOKEY;
	char path[512];
	snprintf(path, sizeof path, "/latest/meta-data/iam/security-credentials/%s", roles);
	if ((r = imds_call(base, path, token, &doc)) < 0) return r;
	json_object *o = json_tokener_parse(doc), *a, *s, *t, *x;
	free_secret(doc, strlen(doc));
	r = -EBADMSG;
	if (o && json_object_object_get_ex(o, "AccessKeyId", &a) && json_object_object_get_ex(o, "SecretAccessKey", &s) &&
	    json_object_object_get_ex(o, "Token", &t) && json_object_object_get_ex(o, "Expiration", &x) &&
	    json_object_is_type(a, json_type_string) && json_object_is_type(s, json_type_string) &&
	    json_object_is_type(t, json_type_string) && json_object_is_type(x, json_type_string)) {
		struct creds c = {.access_key_id = strdup(json_object_get_string(a)),
				  .secret_access_key = strdup(json_object_get_string(s)),
				  .session_token = strdup(json_object_get_string(t))};
		if (!c.access_key_id || !c.secret_access_key || !c.session_token)
			r = -ENOMEM;
		else
			r = parse_expiration(json_object_get_string(x), &c.expires_usec);
		if (r < 0)
			creds_done(&c);
		else
			*ret = c;
		/* The parsed object held the secret and the token. */
		wipe((void *)json_object_get_string(s), (size_t)json_object_get_string_len(s));
		wipe((void *)json_object_get_string(t), (size_t)json_object_get_string_len(t));
	}
	json_object_put(o);
	return r;
}

int cred_provider_init(struct cred_provider *p, const char *imds_url) {
	*p = (struct cred_provider){};
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	int r;
	if (dir) {
		char probe[4096];
		snprintf(probe, sizeof probe, "%s/aws_access_key_id", dir);
		if (access(probe, R_OK) == 0) {
			if ((r = read_cred_file(dir, "aws_access_key_id", false, &p->cur.access_key_id)) < 0 ||
			    (r = read_cred_file(dir, "aws_secret_access_key", false, &p->cur.secret_access_key)) < 0 ||
			    (r = read_cred_file(dir, "aws_session_token", true, &p->cur.session_token)) < 0) {
				creds_done(&p->cur);
				return r;
			}
			p->source = "credentials-directory";
			return 0;
		}
	}
	const char *a = getenv("AWS_ACCESS_KEY_ID"), *s = getenv("AWS_SECRET_ACCESS_KEY"), *t = getenv("AWS_SESSION_TOKEN");
	if (a && *a && s && *s) {
		p->cur = (struct creds){.access_key_id = strdup(a), .secret_access_key = strdup(s),
					.session_token = t && *t ? strdup(t) : NULL};
		if (!p->cur.access_key_id || !p->cur.secret_access_key) {
			creds_done(&p->cur);
			return -ENOMEM;
		}
		p->source = "environment";
		return 0;
	}
	if (!imds_url) return -ENOKEY;
	if (!(p->imds = strdup(imds_url))) return -ENOMEM;
	p->source = "imds";
	if ((r = imds_load(p->imds, &p->cur)) < 0) {
		free(p->imds);
		p->imds = NULL;
		return r == -ENOMEM ? r : -ENOKEY;
	}
	return 0;
}

void cred_provider_done(struct cred_provider *p) {
	if (p->have_refresher) {
		pthread_mutex_lock(&p->lock);
		p->stopping = true;
		pthread_cond_broadcast(&p->wake);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->refresher, NULL);
		p->have_refresher = false;
	}
	pthread_cond_destroy(&p->wake);
	creds_done(&p->cur);
	free(p->imds);
	pthread_mutex_destroy(&p->lock);
}

int cred_provider_get(struct cred_provider *p, struct creds *ret) {
	pthread_mutex_lock(&p->lock);
	int r = creds_copy(&p->cur, ret);
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* Refresh instance-role credentials when they come within REFRESH_BEFORE_USEC of expiring; at most every
 * 2 s (short-lived credentials), 10 s after a failure (the old ones are kept while they last). */
static void *refresher_main(void *arg) {
	struct cred_provider *p = arg;
	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		uint64_t now = now_realtime_usec(), due = p->cur.expires_usec > REFRESH_BEFORE_USEC
								   ? p->cur.expires_usec - REFRESH_BEFORE_USEC
								   : 0;
		if (due > now) {
			struct timespec ts = {(time_t)(due / 1000000), (long)(due % 1000000) * 1000};
			pthread_cond_timedwait(&p->wake, &p->lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&p->lock);
		struct creds fresh;
		int r = imds_load(p->imds, &fresh);
		pthread_mutex_lock(&p->lock);
		if (r >= 0) {
			creds_done(&p->cur);
			p->cur = fresh;
			log_info("refreshed instance-role credentials from IMDS");
		} else
			log_warn("cannot refresh credentials from IMDS: %s", strerror(-r));
		uint64_t pause = now_realtime_usec() + (r >= 0 ? 2 : 10) * 1000000ull;
		struct timespec ts = {(time_t)(pause / 1000000), (long)(pause % 1000000) * 1000};
		while (!p->stopping && pthread_cond_timedwait(&p->wake, &p->lock, &ts) == 0) {}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int cred_provider_start(struct cred_provider *p) {
	if (!p->imds) return 0;
	int r = pthread_create(&p->refresher, NULL, refresher_main, p);
	if (r) return -r;
	p->have_refresher = true;
	return 0;
}
