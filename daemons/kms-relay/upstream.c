/* upstream.c: the calls to KMS on a bounded pool of threads (--engine pool; multi.c is the default): each
 * worker owns one easy handle, so its TLS connection to KMS stays open between requests, and a slow KMS blocks
 * a worker, never the loop that serves the enclave. Finished jobs go back to the loop through an eventfd.
 * Measured against multi.c with bench-kms-relay: both add about 0.1-0.2 ms at best; the pool pays two more
 * thread wake-ups per request, which shows under CPU contention. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/rand.h>

#include "curl-body.h"
#include "kms-http.h"
#include "kmsproto.h"
#include "macro.h"
#include "relay.h"
#include "sigv4.h"
#include "util.h"

void job_free(struct job *j) {
	if (!j) return;
	free(j->body);
	free(j->key_id);
	free(j->resp);
	free(j);
}

/* Is this answer worth another try? 5xx, and AWS's throttling and internal errors. */
static bool retryable(int status, const char *body) {
	if (status >= 500) return true;
	if (status != 400 || !body) return false;
	return strstr(body, "\"ThrottlingException\"") || strstr(body, "\"KMSInternalException\"") ||
	       strstr(body, "\"LimitExceededException\"");
}

static void sleep_ms(uint64_t ms) {
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* One signed POST. Returns 0 with *status and the body, or a CURLcode mapped to a relay error. */
static CURLcode post_once(struct upstream *u, CURL *e, struct job *j, uint64_t deadline_usec, long *status,
			  struct curl_body *out) {
	struct creds c = {};
	if (cred_provider_get(u->cfg.creds, &c) < 0) return CURLE_LOGIN_DENIED;
	struct sigv4_header h[] = {{"Host", u->host_header},
				   {"Content-Type", "application/x-amz-json-1.1"},
				   {"X-Amz-Target", j->target}};
	struct sigv4_request req = {"POST", "/", NULL, h, ARRAY_SIZE(h), (const uint8_t *)j->body, strlen(j->body)};
	struct sigv4_credentials sc = {c.access_key_id, c.secret_access_key, c.session_token};
	struct sigv4_params p = {.region = u->cfg.region, .service = "kms", .timestamp = time(NULL), .normalize_path = true};
	struct sigv4_result res;
	int r = sigv4_sign(&req, &sc, &p, &res);
	if (r < 0) {
		creds_done(&c);
		return CURLE_LOGIN_DENIED;
	}
	struct curl_slist *hl = NULL;
	r = kms_http_signed_headers(h, ARRAY_SIZE(h), &res, c.session_token, &hl);
	sigv4_result_done(&res);
	creds_done(&c);
	if (r < 0) return CURLE_OUT_OF_MEMORY;

	uint64_t now = now_monotonic_usec();
	long left_ms = deadline_usec > now ? (long)((deadline_usec - now) / 1000) : 1;
	if (left_ms < 1) left_ms = 1;
	curl_easy_setopt(e, CURLOPT_URL, u->cfg.endpoint);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(j->body));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_body_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)MIN((uint64_t)left_ms, u->cfg.connect_timeout_ms));
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, left_ms);
	CURLcode cc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	return cc;
}

static void run_job(struct upstream *u, CURL *e, struct job *j) {
	uint64_t deadline = j->start_usec + u->cfg.total_timeout_ms * 1000;
	for (unsigned attempt = 0;; attempt++) {
		struct curl_body out = {.max = KMSPROTO_MAX_RESPONSE - 64};
		long status = 0;
		j->attempts = attempt + 1;
		CURLcode cc = post_once(u, e, j, deadline, &status, &out);
		bool last = attempt >= u->cfg.retries;
		if (cc == CURLE_OK) {
			if (!retryable((int)status, out.p) || last) {
				j->status = (int)status;
				j->resp = out.p;
				j->resp_len = out.len;
				return;
			}
			curl_body_done(&out);
		} else {
			curl_body_done(&out);
			if (cc == CURLE_OPERATION_TIMEDOUT) {
				j->error = "Timeout";
				snprintf(j->message, sizeof j->message, "KMS did not answer within %" PRIu64 " ms",
					 u->cfg.total_timeout_ms);
				return; /* the budget is spent */
			}
			if (cc == CURLE_LOGIN_DENIED) {
				j->error = "Internal";
				snprintf(j->message, sizeof j->message, "the host has no usable credentials");
				return;
			}
			if (last) {
				j->error = "Unavailable";
				snprintf(j->message, sizeof j->message, "KMS unreachable: %s", out.overflow ? "answer too large" : curl_easy_strerror(cc));
				return;
			}
		}
		/* Jittered exponential backoff (AWS's "full jitter" over 100 ms * 2^attempt), within the deadline. */
		uint32_t rnd = 0;
		RAND_bytes((uint8_t *)&rnd, sizeof rnd);
		uint64_t cap = 100ull << MIN(attempt, 5u), wait = cap / 2 + rnd % (cap / 2 + 1);
		if (now_monotonic_usec() + wait * 1000 >= deadline) {
			j->error = "Timeout";
			snprintf(j->message, sizeof j->message, "KMS kept failing until the %" PRIu64 " ms deadline",
				 u->cfg.total_timeout_ms);
			return;
		}
		sleep_ms(wait);
	}
}

static void *worker_main(void *arg) {
	struct worker *w = arg;
	struct upstream *u = w->u;
	CURL *e = curl_easy_init();
	if (e) {
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	}
	pthread_mutex_lock(&u->lock);
	for (;;) {
		struct job *j = NULL;
		if (u->queue_head) {
			j = u->queue_head;
			u->queue_head = j->next;
			if (!u->queue_head) u->queue_tail = NULL;
			u->queued--;
		} else {
			w->next_idle = u->idle;
			u->idle = w;
			while (!w->job && !u->stopping) pthread_cond_wait(&w->cond, &u->lock);
			j = TAKE_PTR(w->job);
			if (!j) break; /* stopping */
		}
		pthread_mutex_unlock(&u->lock);
		j->next = NULL;
		if (e)
			run_job(u, e, j);
		else {
			j->error = "Internal";
			snprintf(j->message, sizeof j->message, "no HTTP handle");
		}
		pthread_mutex_lock(&u->lock);
		if (u->done_tail)
			u->done_tail->next = j;
		else
			u->done_head = j;
		u->done_tail = j;
		uint64_t one = 1;
		(void)!write(u->done_fd, &one, sizeof one);
		if (u->stopping) break;
	}
	pthread_mutex_unlock(&u->lock);
	curl_easy_cleanup(e);
	return NULL;
}

int upstream_start(struct upstream *u, const struct upstream_config *cfg) {
	*u = (struct upstream){.cfg = *cfg, .done_fd = -1};
	CURLU *url = curl_url();
	char *host = NULL, *port = NULL;
	if (!url || curl_url_set(url, CURLUPART_URL, cfg->endpoint, 0) != CURLUE_OK ||
	    curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		curl_url_cleanup(url);
		return -EINVAL;
	}
	curl_url_get(url, CURLUPART_PORT, &port, 0);
	snprintf(u->host_header, sizeof u->host_header, "%s%s%s", host, port ? ":" : "", port ? port : "");
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(url);
	pthread_mutex_init(&u->lock, NULL);
	u->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (u->done_fd < 0) return negerrno();
	u->workers = calloc(cfg->workers, sizeof(struct worker));
	if (!u->workers) return -ENOMEM;
	for (unsigned i = 0; i < cfg->workers; i++) {
		struct worker *w = &u->workers[i];
		w->u = u;
		pthread_cond_init(&w->cond, NULL);
		int r = pthread_create(&w->thread, NULL, worker_main, w);
		if (r) return -r;
		u->n_threads++;
	}
	return 0;
}

int upstream_submit(struct upstream *u, struct job *j) {
	pthread_mutex_lock(&u->lock);
	j->next = NULL;
	struct worker *w = u->idle;
	if (w) {
		u->idle = w->next_idle;
		w->job = j;
		pthread_cond_signal(&w->cond);
	} else if (u->queued >= u->cfg.queue_max) {
		pthread_mutex_unlock(&u->lock);
		return -EBUSY;
	} else {
		if (u->queue_tail)
			u->queue_tail->next = j;
		else
			u->queue_head = j;
		u->queue_tail = j;
		u->queued++;
	}
	pthread_mutex_unlock(&u->lock);
	return 0;
}

struct job *upstream_take_done(struct upstream *u) {
	uint64_t v;
	(void)!read(u->done_fd, &v, sizeof v);
	pthread_mutex_lock(&u->lock);
	struct job *j = u->done_head;
	u->done_head = u->done_tail = NULL;
	pthread_mutex_unlock(&u->lock);
	return j;
}

void upstream_stop(struct upstream *u) {
	pthread_mutex_lock(&u->lock);
	u->stopping = true;
	for (unsigned i = 0; i < u->n_threads; i++) pthread_cond_signal(&u->workers[i].cond);
	pthread_mutex_unlock(&u->lock);
	for (unsigned i = 0; i < u->n_threads; i++) {
		pthread_join(u->workers[i].thread, NULL);
		pthread_cond_destroy(&u->workers[i].cond);
	}
	free(u->workers);
	for (struct job *j = u->queue_head, *n; j; j = n) {
		n = j->next;
		job_free(j);
	}
	for (struct job *j = u->done_head, *n; j; j = n) {
		n = j->next;
		job_free(j);
	}
	if (u->done_fd >= 0) close(u->done_fd);
	pthread_mutex_destroy(&u->lock);
}
