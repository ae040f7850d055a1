/* eml-kms-relay: the host side of the enclave's KMS calls. Takes REQUEST frames on vsock 3:8001 (socket
 * activation, `ListenStream=vsock::8001`) or --listen, admits only Decrypt / GenerateDataKey / GenerateRandom
 * with a Recipient (so KMS answers with a key encrypted to the enclave, never a plaintext the host could read),
 * signs them with the host's credentials (SigV4) and forwards them to KMS over kept-alive HTTPS connections.
 * One journal entry per request; sd_notify READY, STATUS and WATCHDOG. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <systemd/sd-event.h>

#include "frame.h"
#include "kmsproto.h"
#include "log.h"
#include "macro.h"
#include "notify.h"
#include "relay.h"
#include "socket.h"
#include "util.h"

#define MAX_CONNS 256
#define MAX_PENDING_PER_CONN 64
#define MAX_OUTBUF (4u * 1024 * 1024)

struct conn {
	uint64_t id;
	int fd;
	sd_event_source *io;
	struct frame_decoder dec;
	uint8_t *out;
	size_t out_len, out_off;
	unsigned pending;
	char peer[ADDR_STRING_MAX];
	struct relay *relay;
	struct conn *prev, *next;
};

struct relay {
	sd_event *loop;
	bool use_pool;
	struct upstream up;
	struct multi *multi;
	struct cred_provider creds;
	struct conn *conns;
	unsigned n_conns;
	uint64_t next_id;
	uint64_t served, refused, failed;
	char last_error[320];
};

static void update_status(struct relay *r) {
	notify_status("%" PRIu64 " requests served, %" PRIu64 " refused, %" PRIu64 " failed; last error: %s", r->served,
		      r->refused, r->failed, r->last_error[0] ? r->last_error : "none");
}

static void conn_free(struct conn *c) {
	struct relay *r = c->relay;
	if (c->prev)
		c->prev->next = c->next;
	else
		r->conns = c->next;
	if (c->next) c->next->prev = c->prev;
	r->n_conns--;
	sd_event_source_disable_unref(c->io);
	if (c->fd >= 0) close(c->fd);
	frame_decoder_free(&c->dec);
	free(c->out);
	free(c);
}

static struct conn *conn_find(struct relay *r, uint64_t id) {
	for (struct conn *c = r->conns; c; c = c->next)
		if (c->id == id) return c;
	return NULL;
}

/* Flush what we can; watch for writability while something is left. -EPIPE/-errno when the peer is gone. */
static int conn_flush(struct conn *c) {
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) break;
			if (errno == EINTR) continue;
			return negerrno();
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
	return sd_event_source_set_io_events(c->io, EPOLLIN | (c->out_len ? EPOLLOUT : 0));
}

static int conn_send(struct conn *c, uint8_t type, uint32_t seq, const uint8_t *payload, size_t len) {
	if (c->out_len - c->out_off + FRAME_HEADER_SIZE + len > MAX_OUTBUF) return -ENOBUFS;
	if (c->out_off) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	uint8_t *o = realloc(c->out, c->out_len + FRAME_HEADER_SIZE + len);
	if (!o) return -ENOMEM;
	c->out = o;
	frame_header_encode(&(struct frame_header){type, seq, (uint32_t)len}, c->out + c->out_len);
	if (len) memcpy(c->out + c->out_len + FRAME_HEADER_SIZE, payload, len);
	c->out_len += FRAME_HEADER_SIZE + len;
	return conn_flush(c);
}

static int send_error(struct conn *c, uint32_t seq, const char *error, const char *message) {
	_cleanup_free_ uint8_t *p = NULL;
	size_t n;
	int r = kmsproto_error_encode(error, message, &p, &n);
	return r < 0 ? r : conn_send(c, FRAME_ERROR, seq, p, n);
}

static void log_request(struct relay *r, const char *peer, const char *target, const char *key_id, int status,
			const char *error, uint64_t start, unsigned attempts) {
	double ms = (double)(now_monotonic_usec() - start) / 1000.0;
	char st[16];
	snprintf(st, sizeof st, "%d", status);
	log_struct(error || status != 200 ? LOG_NOTICE : LOG_INFO, EML_MSG_KMS_REQUEST, "MESSAGE=%s %s: %s in %.1f ms",
		   target ? target : "-", key_id ? key_id : "-", error ? error : st, ms, "EML_PEER=%s", peer,
		   "EML_KMS_TARGET=%s", target ? target : "-", "EML_KMS_KEY_ID=%s", key_id ? key_id : "-",
		   "EML_STATUS=%s", error ? error : st, "EML_LATENCY_MS=%.3f", ms, "EML_ATTEMPTS=%u", attempts, NULL);
}

static void handle_request(struct conn *c, const struct frame_header *h, const uint8_t *payload) {
	struct relay *r = c->relay;
	uint64_t start = now_monotonic_usec();
	const char *target = NULL, *why = NULL;
	char *body = NULL, *key_id = NULL;
	int e = kmsproto_request_decode(payload, h->length, &target, &body, &key_id, &why);
	if (e < 0) {
		/* Refused without any call to KMS. */
		r->refused++;
		snprintf(r->last_error, sizeof r->last_error, "refused: %s", why);
		log_request(r, c->peer, target, NULL, 0, e == -EACCES || e == -EPERM ? "Refused" : "BadRequest", start, 0);
		send_error(c, h->seq, e == -EACCES || e == -EPERM ? "Refused" : "BadRequest", why);
		update_status(r);
		return;
	}
	if (c->pending >= MAX_PENDING_PER_CONN) {
		free(body);
		free(key_id);
		send_error(c, h->seq, "Busy", "too many requests in flight on this connection");
		return;
	}
	struct job *j = calloc(1, sizeof *j);
	if (!j) {
		free(body);
		free(key_id);
		send_error(c, h->seq, "Internal", "out of memory");
		return;
	}
	*j = (struct job){.conn_id = c->id, .seq = h->seq, .target = target, .body = body, .key_id = key_id,
			  .start_usec = start};
	c->pending++;
	if ((r->use_pool ? upstream_submit(&r->up, j) : multi_submit(r->multi, j)) < 0) {
		c->pending--;
		r->failed++;
		snprintf(r->last_error, sizeof r->last_error, "queue full");
		log_request(r, c->peer, target, key_id, 0, "Busy", start, 0);
		send_error(c, h->seq, "Busy", "the relay's queue is full; retry later");
		job_free(j);
		return;
	}
}

static int on_conn(sd_event_source *s, int fd, uint32_t events, void *ud) {
	struct conn *c = ud;
	if (events & EPOLLOUT) {
		if (conn_flush(c) < 0) goto close;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return 0;
	for (int i = 0; i < 64; i++) {
		int r = frame_decoder_read(&c->dec, fd);
		if (r == 0) return 0;
		if (r == -EPIPE) goto close;
		if (r < 0) {
			/* A broken stream: say why, then close (ARCHITECTURE section 3). */
			send_error(c, 0, "BadRequest", frame_strerror(r));
			goto close;
		}
		struct frame_header h;
		_cleanup_free_ uint8_t *payload = NULL;
		frame_decoder_take(&c->dec, &h, &payload);
		if (h.type == FRAME_CLOSE) goto close;
		if (h.type != FRAME_REQUEST) {
			send_error(c, h.seq, "BadRequest", "only REQUEST frames are accepted");
			continue;
		}
		handle_request(c, &h, payload);
	}
	return 0;
close:
	conn_free(c);
	return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t events, void *ud) {
	struct relay *r = ud;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0) return 0;
	if (r->n_conns >= MAX_CONNS) {
		log_struct(LOG_WARNING, EML_MSG_ACCEPT_PAUSED, "MESSAGE=connection limit %d reached", MAX_CONNS, NULL);
		close(cfd);
		return 0;
	}
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		close(cfd);
		return 0;
	}
	*c = (struct conn){.id = ++r->next_id, .fd = cfd, .relay = r, .next = r->conns};
	frame_decoder_init(&c->dec, KMSPROTO_MAX_PAYLOAD);
	if (socket_peer_address(cfd, c->peer, sizeof c->peer) < 0) snprintf(c->peer, sizeof c->peer, "?");
	if (sd_event_add_io(r->loop, &c->io, cfd, EPOLLIN, on_conn, c) < 0) {
		close(cfd);
		free(c);
		return 0;
	}
	if (r->conns) r->conns->prev = c;
	r->conns = c;
	r->n_conns++;
	return 0;
}

/* One finished call: answer the enclave (if its connection is still there), log, count. */
static void complete_job(struct job *j, void *ud) {
	struct relay *r = ud;
	struct conn *c = conn_find(r, j->conn_id);
	_cleanup_free_ uint8_t *p = NULL;
	size_t len = 0;
	if (j->error) {
		r->failed++;
		snprintf(r->last_error, sizeof r->last_error, "%s: %s", j->error, j->message);
		if (c) send_error(c, j->seq, j->error, j->message);
	} else {
		if (j->status == 200)
			r->served++;
		else {
			r->failed++;
			snprintf(r->last_error, sizeof r->last_error, "KMS answered HTTP %d", j->status);
		}
		if (c) {
			int e = kmsproto_response_encode(j->status, j->resp, j->resp_len, &p, &len);
			if (e < 0)
				send_error(c, j->seq, "Internal", "cannot encode the KMS answer");
			else if (conn_send(c, FRAME_RESPONSE, j->seq, p, len) < 0)
				/* Not freed here (we may be inside this connection's handler): the hang-up closes it. */
				shutdown(c->fd, SHUT_RDWR);
		}
	}
	if (c) c->pending--;
	log_request(r, c ? c->peer : "-", j->target, j->key_id, j->status, j->error, j->start_usec, j->attempts);
	/* The answer held a key encrypted to the enclave only; still, leave nothing behind. */
	if (j->resp) wipe(j->resp, j->resp_len);
	job_free(j);
	update_status(r);
}

static int on_done(sd_event_source *s, int fd, uint32_t events, void *ud) {
	struct relay *r = ud;
	for (struct job *j = upstream_take_done(&r->up), *n; j; j = n) {
		n = j->next;
		complete_job(j, r);
	}
	return 0;
}

static void usage(FILE *f) {
	fprintf(f, "usage: eml-kms-relay [--listen ADDR]... [--region R] [--endpoint URL] [--imds URL]\n"
		   "                     [--engine multi|pool] [--workers N] [--queue N] [--connect-timeout MS]\n"
		   "                     [--timeout MS] [--retries N]\n"
		   "Relays the enclave's KMS requests (with a Recipient) to AWS KMS, signed with the host's credentials.\n"
		   "See eml-kms-relay(8).\n");
}

int main(int argc, char **argv) {
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'},          {"region", required_argument, NULL, 'r'},
		{"endpoint", required_argument, NULL, 'e'},        {"imds", required_argument, NULL, 'i'},
		{"workers", required_argument, NULL, 'w'},         {"queue", required_argument, NULL, 'q'},
		{"connect-timeout", required_argument, NULL, 'C'}, {"timeout", required_argument, NULL, 'T'},
		{"retries", required_argument, NULL, 'R'},         {"engine", required_argument, NULL, 'E'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	char *listen[8];
	size_t n_listen = 0;
	const char *region = NULL, *endpoint = NULL, *imds = "http://169.254.169.254";
	uint64_t workers = 16, queue = 1024, connect_ms = 3000, total_ms = 10000, retries = 2;
	bool pool = false;
	int c;
	log_setup("eml-kms-relay");
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (n_listen >= ARRAY_SIZE(listen)) fatal("too many --listen");
			listen[n_listen++] = optarg;
			break;
		case 'r': region = optarg; break;
		case 'e': endpoint = optarg; break;
		case 'i': imds = optarg; break;
		case 'w':
			if (parse_u64(optarg, 256, &workers) < 0 || !workers) fatal("bad --workers %s", optarg);
			break;
		case 'q':
			if (parse_u64(optarg, 1 << 20, &queue) < 0 || !queue) fatal("bad --queue %s", optarg);
			break;
		case 'C':
			if (parse_u64(optarg, 600000, &connect_ms) < 0 || !connect_ms) fatal("bad --connect-timeout %s", optarg);
			break;
		case 'T':
			if (parse_u64(optarg, 600000, &total_ms) < 0 || !total_ms) fatal("bad --timeout %s", optarg);
			break;
		case 'R':
			if (parse_u64(optarg, 10, &retries) < 0) fatal("bad --retries %s", optarg);
			break;
		case 'E':
			if (strcmp(optarg, "pool") == 0)
				pool = true;
			else if (strcmp(optarg, "multi") == 0)
				pool = false;
			else
				fatal("bad --engine %s (multi or pool)", optarg);
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	/* Signals are handled by the loop; block them before any thread exists so none inherits them. */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) fatal("cannot initialise libcurl");

	struct relay rl = {.use_pool = pool};
	int r = cred_provider_init(&rl.creds, imds);
	if (r < 0) {
		log_struct(LOG_ERR, EML_MSG_CONFIG_ERROR, "MESSAGE=no AWS credentials ($CREDENTIALS_DIRECTORY, AWS_*, IMDS): %s",
			   strerror(-r), NULL);
		cred_provider_done(&rl.creds);
		curl_global_cleanup();
		return 1;
	}
	_cleanup_free_ char *imds_reg = NULL, *ep = NULL;
	if (!region) region = getenv("AWS_REGION");
	if (!region) region = getenv("AWS_DEFAULT_REGION");
	if (!region) {
		if (imds_region(imds, &imds_reg) < 0) {
			log_struct(LOG_ERR, EML_MSG_CONFIG_ERROR, "MESSAGE=no region (--region, AWS_REGION or IMDS)", NULL);
			cred_provider_done(&rl.creds);
			return 1;
		}
		imds_reg[strcspn(imds_reg, "\r\n")] = 0;
		region = imds_reg;
	}
	if (!endpoint) {
		if (asprintf(&ep, "https://kms.%s.amazonaws.com/", region) < 0) fatal("out of memory");
		endpoint = ep;
	}

	_cleanup_free_ int *fds = NULL;
	size_t n_fds = 0;
	int activated = 0;
	r = listeners_get("kms", 1, listen, n_listen, &fds, &n_fds, &activated);
	if (r < 0) {
		log_struct(LOG_ERR, EML_MSG_CONFIG_ERROR, "MESSAGE=nothing to listen on (--listen ADDR or socket activation): %s",
			   strerror(-r), NULL);
		cred_provider_done(&rl.creds);
		return 1;
	}
	struct upstream_config uc = {.endpoint = endpoint, .region = region, .workers = (unsigned)workers,
				     .queue_max = (unsigned)queue, .connect_timeout_ms = connect_ms,
				     .total_timeout_ms = total_ms, .retries = (unsigned)retries, .creds = &rl.creds};
	if ((r = cred_provider_start(&rl.creds)) < 0) fatal("cannot start the credential refresh: %s", strerror(-r));
	if (sd_event_default(&rl.loop) < 0) fatal("cannot create the event loop");
	sd_event_add_signal(rl.loop, NULL, SIGTERM, NULL, NULL);
	sd_event_add_signal(rl.loop, NULL, SIGINT, NULL, NULL);
	notify_watchdog_attach(rl.loop);
	if (pool) {
		if ((r = upstream_start(&rl.up, &uc)) < 0) fatal("cannot start the upstream workers: %s", strerror(-r));
		if (sd_event_add_io(rl.loop, NULL, rl.up.done_fd, EPOLLIN, on_done, &rl) < 0) fatal("cannot watch workers");
	} else if ((r = multi_start(&rl.multi, rl.loop, &uc, complete_job, &rl)) < 0)
		fatal("cannot start libcurl multi: %s", strerror(-r));
	char bound[ADDR_STRING_MAX * 2] = "";
	for (size_t i = 0; i < n_fds; i++) {
		char a[ADDR_STRING_MAX];
		if (sd_event_add_io(rl.loop, NULL, fds[i], EPOLLIN, on_accept, &rl) < 0) fatal("cannot watch listener");
		if (socket_local_address(fds[i], a, sizeof a) >= 0 && strlen(bound) + strlen(a) + 2 < sizeof bound) {
			if (*bound) strcat(bound, " ");
			strcat(bound, a);
		}
	}
	log_struct(LOG_INFO, EML_MSG_STARTED, "MESSAGE=eml-kms-relay listening on %s, KMS %s (region %s, credentials from %s, engine %s)",
		   bound, endpoint, region, rl.creds.source, pool ? "pool" : "multi", "EML_LISTEN=%s", bound, "EML_UPSTREAM=%s", endpoint, NULL);
	notify_ready_status("listening on %s, KMS %s", bound, endpoint);

	r = sd_event_loop(rl.loop);
	notify_stopping();
	log_struct(LOG_INFO, EML_MSG_STOPPING, "MESSAGE=eml-kms-relay stopping after %" PRIu64 " requests", rl.served, NULL);
	while (rl.conns) conn_free(rl.conns);
	if (pool)
		upstream_stop(&rl.up);
	else
		multi_stop(rl.multi);
	sd_event_unref(rl.loop);
	for (size_t i = 0; i < n_fds; i++) close(fds[i]);
	cred_provider_done(&rl.creds);
	curl_global_cleanup();
	return r < 0 ? 1 : 0;
}
