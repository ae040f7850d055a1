/* multi.c: the calls to KMS driven by libcurl's multi interface inside the sd-event loop (see relay.h). No
 * thread hand-offs: the loop that reads the enclave's frame signs the request, curl sends it on a kept-alive
 * connection from the multi handle's cache, and the same loop writes the answer back. Retries wait on loop
 * timers. The alternative to upstream.c's worker pool (--engine pool); both share the job and its outcome. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "curl-body.h"
#include "kms-http.h"
#include "kmsproto.h"
#include "macro.h"
#include "relay.h"
#include "sigv4.h"
#include "util.h"

struct multi {
	CURLM *m;
	sd_event *loop;
	sd_event_source *timer;
	struct upstream_config cfg;
	char host_header[300];
	multi_done_fn done;
	void *ud;
	unsigned in_flight;
	CURL *spare[16]; /* finished easy handles, reused */
	unsigned n_spare;
	struct xfer *xfers; /* in flight, for shutdown */
};

/* Per-request transfer state. */
struct xfer {
	struct multi *mu;
	struct job *job;
	CURL *e;
	struct curl_slist *headers;
	struct curl_body out;
	uint64_t deadline;
	sd_event_source *retry;
	struct xfer *prev, *next;
};

static void xfer_unlink(struct xfer *x) {
	if (x->prev)
		x->prev->next = x->next;
	else
		x->mu->xfers = x->next;
	if (x->next) x->next->prev = x->prev;
}

static bool retryable(int status, const char *body) {
	if (status >= 500) return true;
	if (status != 400 || !body) return false;
	return strstr(body, "\"ThrottlingException\"") || strstr(body, "\"KMSInternalException\"") ||
	       strstr(body, "\"LimitExceededException\"");
}

static void finish(struct xfer *x) {
	struct multi *mu = x->mu;
	if (x->e) {
		curl_multi_remove_handle(mu->m, x->e);
		curl_easy_setopt(x->e, CURLOPT_HTTPHEADER, NULL);
		if (mu->n_spare < ARRAY_SIZE(mu->spare))
			mu->spare[mu->n_spare++] = x->e;
		else
			curl_easy_cleanup(x->e);
	}
	curl_slist_free_all(x->headers);
	sd_event_source_disable_unref(x->retry);
	mu->in_flight--;
	xfer_unlink(x);
	struct job *j = x->job;
	curl_body_done(&x->out);
	free(x);
	mu->done(j, mu->ud);
}

static int start_attempt(struct xfer *x);

static int on_retry(sd_event_source *s, uint64_t usec, void *ud) {
	struct xfer *x = ud;
	x->retry = sd_event_source_disable_unref(x->retry);
	if (start_attempt(x) < 0) finish(x);
	return 0;
}

/* Sign and start one attempt. On failure the job's error is set and the caller finishes. */
static int start_attempt(struct xfer *x) {
	struct multi *mu = x->mu;
	struct job *j = x->job;
	struct creds c = {};
	j->attempts++;
	curl_body_done(&x->out);
	if (cred_provider_get(mu->cfg.creds, &c) < 0) {
		j->error = "Internal";
		snprintf(j->message, sizeof j->message, "the host has no usable credentials");
		return -ENOKEY;
	}
	struct sigv4_header h[] = {{"Host", mu->host_header},
				   {"Content-Type", "application/x-amz-json-1.1"},
				   {"X-Amz-Target", j->target}};
	struct sigv4_request req = {"POST", "/", NULL, h, ARRAY_SIZE(h), (const uint8_t *)j->body, strlen(j->body)};
	struct sigv4_credentials sc = {c.access_key_id, c.secret_access_key, c.session_token};
	struct sigv4_params p = {.region = mu->cfg.region, .service = "kms", .timestamp = time(NULL), .normalize_path = true};
	struct sigv4_result res;
	int r = sigv4_sign(&req, &sc, &p, &res);
	if (r < 0) {
		creds_done(&c);
		j->error = "Internal";
		snprintf(j->message, sizeof j->message, "signing failed");
		return r;
	}
	curl_slist_free_all(x->headers);
	x->headers = NULL;
	r = kms_http_signed_headers(h, ARRAY_SIZE(h), &res, c.session_token, &x->headers);
	sigv4_result_done(&res);
	creds_done(&c);
	if (r < 0) {
		j->error = "Internal";
		snprintf(j->message, sizeof j->message, "cannot build the request headers");
		return r;
	}

	if (!x->e) {
		x->e = mu->n_spare ? mu->spare[--mu->n_spare] : curl_easy_init();
		if (!x->e) {
			j->error = "Internal";
			snprintf(j->message, sizeof j->message, "out of memory");
			return -ENOMEM;
		}
	} else
		curl_multi_remove_handle(mu->m, x->e);
	uint64_t now = now_monotonic_usec();
	long left_ms = x->deadline > now ? (long)((x->deadline - now) / 1000) : 1;
	if (left_ms < 1) left_ms = 1;
	CURL *e = x->e;
	curl_easy_setopt(e, CURLOPT_URL, mu->cfg.endpoint);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(j->body));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_body_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &x->out);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)MIN((uint64_t)left_ms, mu->cfg.connect_timeout_ms));
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, left_ms);
	if (curl_multi_add_handle(mu->m, e) != CURLM_OK) {
		j->error = "Internal";
		snprintf(j->message, sizeof j->message, "cannot start the transfer");
		return -EIO;
	}
	return 0;
}

/* A transfer ended: answer, or wait and try again within the deadline. */
static void transfer_done(struct xfer *x, CURLcode cc) {
	struct multi *mu = x->mu;
	struct job *j = x->job;
	long status = 0;
	curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &status);
	bool last = j->attempts > mu->cfg.retries;
	if (cc == CURLE_OK && (!retryable((int)status, x->out.p) || last)) {
		j->status = (int)status;
		j->resp = TAKE_PTR(x->out.p);
		j->resp_len = x->out.len;
		finish(x);
		return;
	}
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		j->error = "Timeout";
		snprintf(j->message, sizeof j->message, "KMS did not answer within %" PRIu64 " ms", mu->cfg.total_timeout_ms);
		finish(x);
		return;
	}
	if (cc != CURLE_OK && last) {
		j->error = "Unavailable";
		snprintf(j->message, sizeof j->message, "KMS unreachable: %s",
			 x->out.overflow ? "answer too large" : curl_easy_strerror(cc));
		finish(x);
		return;
	}
	uint32_t rnd = 0;
	RAND_bytes((uint8_t *)&rnd, sizeof rnd);
	uint64_t cap = 100ull << MIN(j->attempts - 1, 5u), wait = cap / 2 + rnd % (cap / 2 + 1);
	if (now_monotonic_usec() + wait * 1000 >= x->deadline ||
	    sd_event_add_time_relative(mu->loop, &x->retry, CLOCK_MONOTONIC, wait * 1000, 1000, on_retry, x) < 0) {
		j->error = "Timeout";
		snprintf(j->message, sizeof j->message, "KMS kept failing until the %" PRIu64 " ms deadline",
			 mu->cfg.total_timeout_ms);
		finish(x);
	}
}

static void check_done(struct multi *mu) {
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(mu->m, &left))) {
		if (msg->msg != CURLMSG_DONE) continue;
		struct xfer *x = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		CURLcode cc = msg->data.result;
		if (x) transfer_done(x, cc);
	}
}

static int on_socket_event(sd_event_source *s, int fd, uint32_t revents, void *ud) {
	struct multi *mu = ud;
	int flags = 0, running;
	if (revents & EPOLLIN) flags |= CURL_CSELECT_IN;
	if (revents & EPOLLOUT) flags |= CURL_CSELECT_OUT;
	if (revents & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(mu->m, fd, flags, &running);
	check_done(mu);
	return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *ud) {
	struct multi *mu = ud;
	int running;
	curl_multi_socket_action(mu->m, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(mu);
	return 0;
}

/* curl tells us which sockets to watch for what. */
static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
	struct multi *mu = userp;
	sd_event_source *src = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (src) {
			sd_event_source_disable_unref(src);
			curl_multi_assign(mu->m, fd, NULL);
		}
		return 0;
	}
	uint32_t ev = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (src) return sd_event_source_set_io_events(src, ev) < 0 ? -1 : 0;
	if (sd_event_add_io(mu->loop, &src, fd, ev, on_socket_event, mu) < 0) return -1;
	curl_multi_assign(mu->m, fd, src);
	return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp) {
	struct multi *mu = userp;
	if (timeout_ms < 0) return sd_event_source_set_enabled(mu->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
	if (sd_event_source_set_time_relative(mu->timer, (uint64_t)timeout_ms * 1000) < 0) return -1;
	return sd_event_source_set_enabled(mu->timer, SD_EVENT_ONESHOT) < 0 ? -1 : 0;
}

int multi_start(struct multi **ret, sd_event *loop, const struct upstream_config *cfg, multi_done_fn done, void *ud) {
	struct multi *mu = calloc(1, sizeof *mu);
	if (!mu) return -ENOMEM;
	*mu = (struct multi){.loop = loop, .cfg = *cfg, .done = done, .ud = ud};
	CURLU *url = curl_url();
	char *host = NULL, *port = NULL;
	if (!url || curl_url_set(url, CURLUPART_URL, cfg->endpoint, 0) != CURLUE_OK ||
	    curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		curl_url_cleanup(url);
		free(mu);
		return -EINVAL;
	}
	curl_url_get(url, CURLUPART_PORT, &port, 0);
	snprintf(mu->host_header, sizeof mu->host_header, "%s%s%s", host, port ? ":" : "", port ? port : "");
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(url);
	mu->m = curl_multi_init();
	/* Accuracy 1 us: sd-event's default (250 ms) would delay every transfer curl wants to kick off at once. */
	if (!mu->m || sd_event_add_time_relative(loop, &mu->timer, CLOCK_MONOTONIC, 0, 1, on_timer, mu) < 0) {
		curl_multi_cleanup(mu->m);
		free(mu);
		return -ENOMEM;
	}
	sd_event_source_set_enabled(mu->timer, SD_EVENT_OFF);
	curl_multi_setopt(mu->m, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(mu->m, CURLMOPT_SOCKETDATA, mu);
	curl_multi_setopt(mu->m, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(mu->m, CURLMOPT_TIMERDATA, mu);
	/* Keep as many connections as calls may run at once. */
	curl_multi_setopt(mu->m, CURLMOPT_MAXCONNECTS, (long)cfg->workers);
	curl_multi_setopt(mu->m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->workers);
	*ret = mu;
	return 0;
}

int multi_submit(struct multi *mu, struct job *j) {
	if (mu->in_flight >= mu->cfg.queue_max) return -EBUSY;
	struct xfer *x = calloc(1, sizeof *x);
	if (!x) return -ENOMEM;
	*x = (struct xfer){.mu = mu, .job = j, .deadline = j->start_usec + mu->cfg.total_timeout_ms * 1000,
			   .out.max = KMSPROTO_MAX_RESPONSE - 64, .next = mu->xfers};
	if (mu->xfers) mu->xfers->prev = x;
	mu->xfers = x;
	mu->in_flight++;
	if (start_attempt(x) < 0) {
		/* Answered through the done callback, like any other outcome. */
		finish(x);
	}
	return 0;
}

void multi_stop(struct multi *mu) {
	if (!mu) return;
	/* In-flight transfers are abandoned at shutdown; their jobs are freed without an answer. */
	for (struct xfer *x = mu->xfers, *n; x; x = n) {
		n = x->next;
		if (x->e) {
			curl_multi_remove_handle(mu->m, x->e);
			curl_easy_cleanup(x->e);
		}
		curl_slist_free_all(x->headers);
		sd_event_source_disable_unref(x->retry);
		job_free(x->job);
		curl_body_done(&x->out);
		free(x);
	}
	curl_multi_cleanup(mu->m);
	for (unsigned i = 0; i < mu->n_spare; i++) curl_easy_cleanup(mu->spare[i]);
	sd_event_source_disable_unref(mu->timer);
	free(mu);
}
