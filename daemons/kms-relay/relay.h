/* relay.h: eml-kms-relay's pieces: creds.c (host credentials and region: $CREDENTIALS_DIRECTORY, AWS_*
 * environment, IMDSv2 with refresh), two engines that sign requests with SigV4 and call KMS with timeouts and
 * bounded, jittered retries: multi.c (libcurl multi inside the event loop, the default) and upstream.c (a
 * bounded pool of worker threads, each with a kept-alive handle), and main.c (the sd-event loop: listeners,
 * frames, admission, journal, sd_notify). */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

/* ---- creds.c ---- */
struct creds {
	char *access_key_id, *secret_access_key, *session_token; /* token may be NULL */
	uint64_t expires_usec;                                    /* realtime; 0 = never */
};
void creds_done(struct creds *c); /* wipes */

struct cred_provider {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t refresher;    /* IMDS only: refreshes in the background so no request waits on IMDS */
	bool have_refresher, stopping;
	struct creds cur;
	char *dir;          /* $CREDENTIALS_DIRECTORY, or NULL */
	bool from_env;
	char *imds;         /* IMDS base URL when credentials come from the instance role, else NULL */
	char *source;       /* "credentials-directory", "environment", "imds" (for logs) */
};

/* Pick the source: $CREDENTIALS_DIRECTORY (files aws_access_key_id, aws_secret_access_key, optional
 * aws_session_token), else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN], else IMDSv2 at imds_url
 * (the instance role). Loads once; -ENOKEY when nothing provides credentials. */
int cred_provider_init(struct cred_provider *p, const char *imds_url);
/* Start the background refresh (instance-role credentials only). */
int cred_provider_start(struct cred_provider *p);
void cred_provider_done(struct cred_provider *p);
/* Copies of the current credentials (never blocks on the network: instance-role credentials are refreshed by a
 * background thread once they expire within 5 minutes). Thread-safe. */
int cred_provider_get(struct cred_provider *p, struct creds *ret);
/* Region from IMDS (placement/region). */
int imds_region(const char *imds_url, char **ret);

/* ---- upstream.c ---- */
struct job {
	/* request */
	uint64_t conn_id;
	uint32_t seq;
	const char *target;
	char *body;
	char *key_id;     /* for logs; may be NULL */
	uint64_t start_usec;
	/* result: status > 0 with resp (KMS answered), or error/message (the relay answers) */
	int status;
	char *resp;
	size_t resp_len;
	const char *error;
	char message[256];
	unsigned attempts;
	struct job *next;
};
void job_free(struct job *j);

struct upstream_config {
	const char *endpoint;   /* https://kms.REGION.amazonaws.com/ */
	const char *region;
	unsigned workers;
	unsigned queue_max;
	uint64_t connect_timeout_ms, total_timeout_ms;
	unsigned retries;
	struct cred_provider *creds;
};

/* One worker thread. Idle workers form a stack: the most recently busy one (whose connection to KMS is the
 * warmest) takes the next job, so a light load keeps reusing one or two hot connections. */
struct worker {
	struct upstream *u;
	pthread_t thread;
	pthread_cond_t cond;
	struct job *job;        /* handed over by upstream_submit */
	struct worker *next_idle;
};

struct upstream {
	struct upstream_config cfg;
	char host_header[300];
	struct worker *workers;
	unsigned n_threads;
	struct worker *idle;    /* stack */
	pthread_mutex_t lock;
	struct job *queue_head, *queue_tail;
	unsigned queued;
	struct job *done_head, *done_tail;
	int done_fd;            /* eventfd: readable when done_head is not empty */
	bool stopping;
};

int upstream_start(struct upstream *u, const struct upstream_config *cfg);
/* Queue a job; -EBUSY when the queue is full (the caller answers Busy). Takes the job on success. */
int upstream_submit(struct upstream *u, struct job *j);
/* Take all finished jobs (a list linked by next). Clears done_fd. */
struct job *upstream_take_done(struct upstream *u);
void upstream_stop(struct upstream *u);

/* ---- multi.c ---- */
typedef void (*multi_done_fn)(struct job *j, void *userdata);
struct multi;
/* Calls run inside loop; done(job) is called from the loop for every submitted job (answer or error).
 * cfg->workers bounds the kept-alive connections, cfg->queue_max the calls in flight. */
int multi_start(struct multi **ret, sd_event *loop, const struct upstream_config *cfg, multi_done_fn done, void *ud);
/* -EBUSY when queue_max calls are in flight. Takes the job on success. */
int multi_submit(struct multi *m, struct job *j);
void multi_stop(struct multi *m);
