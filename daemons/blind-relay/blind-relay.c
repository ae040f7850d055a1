/* eml-blind-relay: client TCP -> enclave (vsock:CID:5000), ciphertext only.
 *
 * One sd-event loop. Per connection: a non-blocking connect to the next healthy enclave (round robin) within
 * --connect-timeout, then two frame-aware pumps (lib/pump.h) that splice payloads, enforce the 16 MiB frame
 * cap both ways and take AUDIT frames coming from the enclave out of the stream into the journal. Any error
 * stays within its connection: at a frame boundary the client gets an ERROR frame (eml-protocol(7): seq 0,
 * CBOR {"code", "message"}; the relay's codes are in eml-blind-relay(8)), then the connection is closed. */
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "acceptor.h"
#include "addr.h"
#include "audit.h"
#include "frame.h"
#include "log.h"
#include "notify.h"
#include "pump.h"
#include "socket.h"
#include "util.h"

#define USEC_PER_SEC 1000000ULL
#define MAX_LISTEN 16
#define MAX_ENCLAVES 16
/* An enclave that refused or timed out is skipped this long, unless every enclave is down. */
#define ENCLAVE_RETRY_USEC (2 * USEC_PER_SEC)
/* After an ERROR frame, how long the client gets to read it and close. */
#define LINGER_USEC (1 * USEC_PER_SEC)
#define ACCEPT_RETRY_USEC (250 * 1000ULL)

static char *arg_listen[MAX_LISTEN];
static size_t arg_n_listen;
static char *arg_enclave_str[MAX_ENCLAVES];
static size_t arg_n_enclaves;
static uint64_t arg_max_connections = 4096;
static uint64_t arg_idle_timeout_usec = 300 * USEC_PER_SEC;
static uint64_t arg_connect_timeout_usec = 5 * USEC_PER_SEC;
static uint64_t arg_shutdown_timeout_usec = 30 * USEC_PER_SEC;
static uint64_t arg_max_frame = FRAME_MAX_PAYLOAD;

struct enclave {
	char name[ADDR_STRING_MAX];
	struct sockaddr_storage sa;
	socklen_t sa_len;
	uint64_t down_until;
};

struct conn;

struct server {
	sd_event *event;
	Acceptor *acceptor;
	struct enclave enclaves[MAX_ENCLAVES];
	size_t n_enclaves, rr;
	struct conn *conns;
};

enum conn_state { CONN_CONNECTING, CONN_RELAYING, CONN_LINGER };

struct conn {
	struct server *s;
	struct conn *prev, *next;
	enum conn_state state;
	int cfd, efd;
	sd_event_source *csrc, *esrc, *timer;
	uint32_t cev, eev;
	char peer[ADDR_STRING_MAX];
	size_t enclave, attempts;
	uint64_t start, connect_deadline, last_activity, last_bytes;
	struct pump *c2e, *e2c;
	bool c2e_done, e2c_done;
	int r_c2e, r_e2c; /* last result of each pump: what it waits for */
	uint64_t audits;
};

static void conn_free(struct conn *c) {
	if (!c)
		return;
	struct server *s = c->s;
	sd_event_source_disable_unref(c->csrc);
	sd_event_source_disable_unref(c->esrc);
	sd_event_source_disable_unref(c->timer);
	pump_free(c->c2e);
	pump_free(c->e2c);
	if (c->cfd >= 0)
		close(c->cfd);
	if (c->efd >= 0)
		close(c->efd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	acceptor_conn_closed(s->acceptor);
}

/* The relay must not add Nagle delays of its own: headers and payloads may leave in separate writes. */
static void nodelay(int fd) {
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* ENOTSUP on unix/vsock: fine */
}

static void conn_arm(struct conn *c, uint64_t usec) {
	sd_event_source_set_time(c->timer, usec);
	sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
}

static void set_events(sd_event_source *src, uint32_t *cur, uint32_t ev) {
	if (src && *cur != ev) {
		sd_event_source_set_io_events(src, ev);
		*cur = ev;
	}
}

static void log_close(struct conn *c) {
	uint64_t in = c->c2e ? pump_bytes(c->c2e) : 0, out = c->e2c ? pump_bytes(c->e2c) : 0;
	log_struct(LOG_INFO, EML_MSG_CONN_CLOSE, "MESSAGE=connection from %s closed", c->peer, "EML_PEER=%s", c->peer,
		   "EML_UPSTREAM=%s", c->s->enclaves[c->enclave].name, "EML_BYTES_IN=%" PRIu64, in,
		   "EML_BYTES_OUT=%" PRIu64, out, "EML_AUDITS=%" PRIu64, c->audits, "EML_DURATION_MS=%" PRIu64,
		   (now_monotonic_usec() - c->start) / 1000, NULL);
}

/* CBOR text string with the shortest head (RFC 8949 4.2.1: deterministic), s at most 255 bytes. */
static size_t put_tstr(uint8_t *buf, const char *s) {
	size_t l = strlen(s), n = 0;
	if (l < 24)
		buf[n++] = (uint8_t)(0x60 | l);
	else {
		buf[n++] = 0x78;
		buf[n++] = (uint8_t)l;
	}
	memcpy(buf + n, s, l);
	return n + l;
}

/* ERROR frame payload (eml-protocol(7)): CBOR {"code": CODE, "message": TEXT}, deterministic ("code" sorts
 * first: its encoding is shorter). Both texts are short ASCII of ours. */
static size_t error_payload(const char *code, const char *message, uint8_t *buf, size_t max) {
	size_t n = 0;
	if (strlen(code) > 32 || strlen(message) > 255 || 1 + 5 + 2 + strlen(code) + 8 + 2 + strlen(message) > max)
		return 0;
	buf[n++] = 0xa2;
	n += put_tstr(buf + n, "code");
	n += put_tstr(buf + n, code);
	n += put_tstr(buf + n, "message");
	n += put_tstr(buf + n, message);
	return n;
}

static int on_client_io(sd_event_source *src, int fd, uint32_t revents, void *userdata);
static void conn_process(struct conn *c, bool run_c2e, bool run_e2c);

/* End this connection because of an error: an ERROR frame to the client when the client's stream is between
 * frames, then half-close and linger briefly so the client can read it; a hard close otherwise. */
static void conn_fail(struct conn *c, int prio, const char *code, const char *reason) {
	log_struct(prio, EML_MSG_CONN_ERROR, "MESSAGE=connection from %s: %s: %s", c->peer, code, reason,
		   "EML_PEER=%s", c->peer, "EML_ERROR=%s", code, "EML_REASON=%s", reason, NULL);
	if (c->e2c_done || c->state == CONN_LINGER) {
		conn_free(c);
		return;
	}
	if (!c->e2c) {
		struct pump_config pc = {.mode = PUMP_FRAMES, .buffer_size = 1024};
		if (pump_new(-1, c->cfd, &pc, &c->e2c) < 0) {
			conn_free(c);
			return;
		}
	}
	uint8_t payload[600];
	size_t n = error_payload(code, reason, payload, sizeof(payload));
	if (pump_finish_with_frame(c->e2c, FRAME_ERROR, 0, payload, n) < 0) { /* ERROR is always seq 0 */
		conn_free(c);
		return;
	}
	c->state = CONN_LINGER;
	pump_stop(c->e2c);
	pump_free(c->c2e);
	c->c2e = NULL;
	sd_event_source_disable_unref(c->esrc);
	c->esrc = NULL;
	if (c->efd >= 0)
		close(c->efd);
	c->efd = -1;
	if (!c->csrc && sd_event_add_io(c->s->event, &c->csrc, c->cfd, 0, on_client_io, c) < 0) {
		conn_free(c);
		return;
	}
	c->cev = (uint32_t)-1;
	conn_arm(c, now_monotonic_usec() + LINGER_USEC);
	conn_process(c, true, true);
}

static void conn_linger(struct conn *c) {
	int r = pump_run(c->e2c);
	if (r < 0) {
		conn_free(c);
		return;
	}
	if (r & PUMP_WANT_WRITE) {
		set_events(c->csrc, &c->cev, EPOLLOUT);
		return;
	}
	/* Written and shut down: wait for the client to close (discarding what it still sends). */
	char junk[4096];
	for (;;) {
		ssize_t n = recv(c->cfd, junk, sizeof(junk), MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			set_events(c->csrc, &c->cev, EPOLLIN);
			return;
		}
		conn_free(c);
		return;
	}
}

/* Run the pumps an event concerns (both when unsure): a pump whose src is not readable and whose dst is not
 * writable has nothing to do, and asking would cost a system call. */
static void conn_process(struct conn *c, bool run_c2e, bool run_e2c) {
	if (c->state == CONN_LINGER) {
		conn_linger(c);
		return;
	}
	int r1 = c->c2e_done ? PUMP_DONE : run_c2e ? pump_run(c->c2e) : c->r_c2e;
	if (r1 < 0) {
		switch (pump_failure(c->c2e)) {
		case PUMP_FAIL_PROTOCOL:
			conn_fail(c, LOG_WARNING, r1 == FRAME_E_OVERSIZE ? "LIMIT" : "BAD_FRAME", frame_strerror(r1));
			return;
		case PUMP_FAIL_DST:
			conn_fail(c, LOG_WARNING, "UPSTREAM_FAILED", strerror(-r1));
			return;
		default: /* the client vanished, maybe mid-frame: nobody to tell */
			log_struct(LOG_INFO, EML_MSG_CONN_ERROR, "MESSAGE=client %s went away: %s", c->peer,
				   r1 == FRAME_E_TRUNCATED ? frame_strerror(r1) : strerror(-r1), "EML_PEER=%s", c->peer,
				   "EML_ERROR=client-gone", NULL);
			conn_free(c);
			return;
		}
	}
	c->c2e_done = r1 == PUMP_DONE;
	c->r_c2e = r1;
	int r2 = c->e2c_done ? PUMP_DONE : run_e2c ? pump_run(c->e2c) : c->r_e2c;
	if (r2 < 0) {
		switch (pump_failure(c->e2c)) {
		case PUMP_FAIL_PROTOCOL:
			conn_fail(c, LOG_ERR, "UPSTREAM_FAILED", "malformed frame from the enclave");
			return;
		case PUMP_FAIL_SRC:
			conn_fail(c, LOG_WARNING, "UPSTREAM_FAILED",
				  r2 == FRAME_E_TRUNCATED ? frame_strerror(r2) : strerror(-r2));
			return;
		default:
			log_struct(LOG_INFO, EML_MSG_CONN_ERROR, "MESSAGE=client %s went away: %s", c->peer,
				   strerror(-r2), "EML_PEER=%s", c->peer, "EML_ERROR=client-gone", NULL);
			conn_free(c);
			return;
		}
	}
	if (r2 == PUMP_EOF) {
		/* The enclave ended its stream. After a CLOSE frame, or once the client has finished too, that is
		 * the normal end; otherwise the session died under the client: tell it. */
		if (pump_last_type(c->e2c) != FRAME_CLOSE && !c->c2e_done) {
			conn_fail(c, LOG_WARNING, "UPSTREAM_CLOSED", "the enclave ended the session");
			return;
		}
		pump_stop(c->e2c);
		r2 = pump_run(c->e2c);
		if (r2 < 0) {
			conn_free(c);
			return;
		}
	}
	c->e2c_done = r2 == PUMP_DONE;
	c->r_e2c = r2;
	if (c->c2e_done && c->e2c_done) {
		log_close(c);
		conn_free(c);
		return;
	}
	uint64_t b = pump_bytes(c->c2e) + pump_bytes(c->e2c);
	if (b != c->last_bytes) {
		c->last_bytes = b;
		c->last_activity = now_monotonic_usec();
	}
	set_events(c->csrc, &c->cev,
		   (r1 > 0 && (r1 & PUMP_WANT_READ) ? EPOLLIN : 0) | (r2 > 0 && (r2 & PUMP_WANT_WRITE) ? EPOLLOUT : 0));
	set_events(c->esrc, &c->eev,
		   (r2 > 0 && (r2 & PUMP_WANT_READ) ? EPOLLIN : 0) | (r1 > 0 && (r1 & PUMP_WANT_WRITE) ? EPOLLOUT : 0));
}

static int on_client_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
	bool all = revents & (EPOLLERR | EPOLLHUP);
	conn_process(userdata, all || (revents & EPOLLIN), all || (revents & EPOLLOUT));
	return 0;
}

static int on_audit(const struct frame_header *h, const uint8_t *payload, void *userdata) {
	struct conn *c = userdata;
	struct audit_record a;
	char hex[65];
	int r = audit_decode(payload, h->length, &a);
	if (r < 0) {
		/* The enclave's bug, not the client's: drop the record, keep the session. */
		log_struct(LOG_WARNING, EML_MSG_CONN_ERROR, "MESSAGE=malformed AUDIT frame from enclave dropped",
			   "EML_PEER=%s", c->peer, "EML_UPSTREAM=%s", c->s->enclaves[c->enclave].name,
			   "EML_ERROR=bad-audit", NULL);
		return 0;
	}
	c->audits++;
	hex_encode(a.receipt_sha256, sizeof(a.receipt_sha256), hex);
	log_struct(LOG_INFO, EML_MSG_AUDIT, "MESSAGE=audit: receipt %s model %s: %s", hex,
		   a.model_id[0] ? a.model_id : "-", a.status, "EML_RECEIPT_SHA256=%s", hex, "EML_MODEL_ID=%s",
		   a.model_id, "EML_INPUTS=%" PRIu64, a.inputs, "EML_TOKENS=%" PRIu64, a.tokens,
		   "EML_DURATION_US=%" PRIu64, a.duration_us, "EML_STATUS=%s", a.status, "EML_PEER=%s", c->peer,
		   "EML_UPSTREAM=%s", c->s->enclaves[c->enclave].name, NULL);
	return 0;
}

static void conn_try_connect(struct conn *c);

static int conn_relay(struct conn *c) {
	struct pump_config up = {.mode = PUMP_FRAMES, .max_payload = (uint32_t)arg_max_frame};
	struct pump_config down = up;
	down.extract_type = FRAME_AUDIT;
	down.extract_max = AUDIT_MAX_SIZE;
	down.on_extract = on_audit;
	down.userdata = c;
	down.hold_eof = true;
	nodelay(c->cfd);
	nodelay(c->efd);
	int r = pump_new(c->cfd, c->efd, &up, &c->c2e);
	if (r >= 0)
		r = pump_new(c->efd, c->cfd, &down, &c->e2c);
	if (r >= 0 && !c->csrc)
		r = sd_event_add_io(c->s->event, &c->csrc, c->cfd, EPOLLIN, on_client_io, c);
	if (r < 0)
		return r;
	c->cev = c->eev = (uint32_t)-1;
	c->state = CONN_RELAYING;
	c->last_activity = now_monotonic_usec();
	conn_arm(c, c->last_activity + arg_idle_timeout_usec);
	log_struct(LOG_INFO, EML_MSG_CONN_OPEN, "MESSAGE=connection from %s relayed to %s", c->peer,
		   c->s->enclaves[c->enclave].name, "EML_PEER=%s", c->peer, "EML_UPSTREAM=%s",
		   c->s->enclaves[c->enclave].name, NULL);
	conn_process(c, true, true);
	return 0;
}

static void conn_connect_failed(struct conn *c, int err) {
	struct enclave *e = &c->s->enclaves[c->enclave];
	uint64_t now = now_monotonic_usec();
	e->down_until = now + ENCLAVE_RETRY_USEC;
	log_struct(LOG_WARNING, EML_MSG_UPSTREAM_DOWN, "MESSAGE=enclave %s unreachable: %s", e->name, strerror(-err),
		   "EML_UPSTREAM=%s", e->name, "EML_PEER=%s", c->peer, "EML_ERROR=%s", strerror(-err), NULL);
	sd_event_source_disable_unref(c->esrc);
	c->esrc = NULL;
	if (c->efd >= 0)
		close(c->efd);
	c->efd = -1;
	if (c->attempts < c->s->n_enclaves && now < c->connect_deadline) {
		conn_try_connect(c);
		return;
	}
	conn_fail(c, LOG_WARNING, "UNAVAILABLE", "no enclave reachable");
}

static int on_enclave_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
	struct conn *c = userdata;
	if (c->state == CONN_CONNECTING) {
		int r = socket_connect_finish(fd);
		if (r < 0) {
			conn_connect_failed(c, r);
			return 0;
		}
		c->s->enclaves[c->enclave].down_until = 0;
		c->eev = EPOLLOUT;
		if (conn_relay(c) < 0)
			conn_fail(c, LOG_ERR, "INTERNAL", "out of memory");
		return 0;
	}
	bool all = revents & (EPOLLERR | EPOLLHUP);
	conn_process(c, all || (revents & EPOLLOUT), all || (revents & EPOLLIN));
	return 0;
}

/* Next enclave in round robin order, preferring those not recently found down. */
static size_t pick_enclave(struct server *s) {
	uint64_t now = now_monotonic_usec();
	for (size_t i = 0; i < s->n_enclaves; i++) {
		size_t k = (s->rr + i) % s->n_enclaves;
		if (s->enclaves[k].down_until <= now) {
			s->rr = k + 1;
			return k;
		}
	}
	return s->rr++ % s->n_enclaves;
}

static void conn_try_connect(struct conn *c) {
	for (;;) {
		c->enclave = pick_enclave(c->s);
		c->attempts++;
		struct enclave *e = &c->s->enclaves[c->enclave];
		int r = socket_connect_start((struct sockaddr *)&e->sa, e->sa_len, &c->efd);
		if (r == 0 || r == -EINPROGRESS) {
			if (sd_event_add_io(c->s->event, &c->esrc, c->efd, EPOLLOUT, on_enclave_io, c) < 0) {
				conn_fail(c, LOG_ERR, "INTERNAL", "out of memory");
				return;
			}
			c->eev = EPOLLOUT;
			return; /* even an immediate success is finished in on_enclave_io */
		}
		c->efd = -1;
		conn_connect_failed(c, r);
		return;
	}
}

static int on_conn_timer(sd_event_source *src, uint64_t usec, void *userdata) {
	struct conn *c = userdata;
	uint64_t now = now_monotonic_usec();
	switch (c->state) {
	case CONN_CONNECTING:
		conn_connect_failed(c, -ETIMEDOUT);
		break;
	case CONN_RELAYING:
		if (now >= c->last_activity + arg_idle_timeout_usec) {
			conn_fail(c, LOG_INFO, "TIMEOUT", "no traffic within the idle timeout");
			break;
		}
		conn_arm(c, c->last_activity + arg_idle_timeout_usec);
		break;
	case CONN_LINGER:
		conn_free(c);
		break;
	}
	return 0;
}

static void on_accept(Acceptor *a, int cfd, void *userdata) {
	struct server *s = userdata;
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		return;
	}
	c->s = s;
	c->cfd = cfd;
	c->efd = -1;
	c->start = now_monotonic_usec();
	c->connect_deadline = c->start + arg_connect_timeout_usec;
	if (socket_peer_address(cfd, c->peer, sizeof(c->peer)) < 0)
		snprintf(c->peer, sizeof(c->peer), "unknown");
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	acceptor_conn_opened(a);
	if (sd_event_add_time(s->event, &c->timer, CLOCK_MONOTONIC, c->connect_deadline, 0, on_conn_timer, c) < 0) {
		conn_free(c);
		return;
	}
	sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
	c->state = CONN_CONNECTING;
	conn_try_connect(c);
}

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
	struct server *s = userdata;
	uint64_t n = acceptor_connections(s->acceptor);
	if (acceptor_stopping(s->acceptor))
		return 0;
	notify_stopping();
	log_struct(LOG_NOTICE, EML_MSG_STOPPING, "MESSAGE=stopping on %s, %" PRIu64 " session(s) open",
		   strsignal((int)si->ssi_signo), n, "EML_CONNECTIONS=%" PRIu64, n, NULL);
	notify_status("Stopping, %" PRIu64 " session(s) open", n);
	return acceptor_stop(s->acceptor, arg_shutdown_timeout_usec);
}

static void help(void) {
	printf("Usage: eml-blind-relay [OPTIONS] --enclave ADDR [--enclave ADDR...]\n\n"
	       "Relay client connections to the enclave without decrypting them; log its AUDIT frames.\n\n"
	       "  -l --listen ADDR            listen here when not socket-activated (repeatable)\n"
	       "  -e --enclave ADDR           upstream enclave, e.g. vsock:16:5000 (repeatable: round robin)\n"
	       "     --max-connections N      concurrent connections before accepting pauses (4096)\n"
	       "     --idle-timeout SEC       close a connection idle this long (300)\n"
	       "     --connect-timeout SEC    deadline to reach an enclave (5)\n"
	       "     --shutdown-timeout SEC   on SIGTERM, how long open sessions may finish (30)\n"
	       "     --max-frame BYTES        frame payload cap, at most 16777216 (16777216)\n"
	       "  -h --help                   this help\n"
	       "     --version                version\n");
}

static int parse_seconds(const char *s, uint64_t *ret) {
	uint64_t v;
	int r = parse_u64(s, 86400 * 365, &v);
	if (r < 0 || v == 0)
		return -EINVAL;
	*ret = v * USEC_PER_SEC;
	return 0;
}

static void parse_argv(int argc, char **argv) {
	enum { ARG_MAX_CONN = 0x100, ARG_IDLE, ARG_CONNECT, ARG_SHUTDOWN, ARG_MAX_FRAME, ARG_VERSION };
	static const struct option options[] = {
		{"listen", required_argument, NULL, 'l'},
		{"enclave", required_argument, NULL, 'e'},
		{"max-connections", required_argument, NULL, ARG_MAX_CONN},
		{"idle-timeout", required_argument, NULL, ARG_IDLE},
		{"connect-timeout", required_argument, NULL, ARG_CONNECT},
		{"shutdown-timeout", required_argument, NULL, ARG_SHUTDOWN},
		{"max-frame", required_argument, NULL, ARG_MAX_FRAME},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, ARG_VERSION},
		{},
	};
	int c;
	while ((c = getopt_long(argc, argv, "l:e:h", options, NULL)) >= 0) {
		switch (c) {
		case 'l':
			if (arg_n_listen >= MAX_LISTEN)
				fatal("at most %d --listen addresses", MAX_LISTEN);
			arg_listen[arg_n_listen++] = optarg;
			break;
		case 'e':
			if (arg_n_enclaves >= MAX_ENCLAVES)
				fatal("at most %d --enclave addresses", MAX_ENCLAVES);
			arg_enclave_str[arg_n_enclaves++] = optarg;
			break;
		case ARG_MAX_CONN:
			if (parse_u64(optarg, 1000000, &arg_max_connections) < 0 || arg_max_connections == 0)
				fatal("--max-connections: expected 1..1000000, got '%s'", optarg);
			break;
		case ARG_IDLE:
			if (parse_seconds(optarg, &arg_idle_timeout_usec) < 0)
				fatal("--idle-timeout: expected seconds > 0, got '%s'", optarg);
			break;
		case ARG_CONNECT:
			if (parse_seconds(optarg, &arg_connect_timeout_usec) < 0)
				fatal("--connect-timeout: expected seconds > 0, got '%s'", optarg);
			break;
		case ARG_SHUTDOWN:
			if (parse_seconds(optarg, &arg_shutdown_timeout_usec) < 0)
				fatal("--shutdown-timeout: expected seconds > 0, got '%s'", optarg);
			break;
		case ARG_MAX_FRAME:
			if (parse_u64(optarg, FRAME_MAX_PAYLOAD, &arg_max_frame) < 0 || arg_max_frame < AUDIT_MAX_SIZE)
				fatal("--max-frame: expected %d..%u, got '%s'", AUDIT_MAX_SIZE, FRAME_MAX_PAYLOAD, optarg);
			break;
		case 'h':
			help();
			exit(0);
		case ARG_VERSION:
			printf("eml-blind-relay " EML_VERSION "\n");
			exit(0);
		default:
			exit(2);
		}
	}
	if (optind < argc)
		fatal("unexpected argument '%s'", argv[optind]);
	if (arg_n_enclaves == 0)
		fatal("no --enclave given");
}

/* systemd's default soft limit (1024) is far below what --max-connections needs; the hard limit is ours. */
static void bump_nofile(void) {
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv) {
	struct server s = {0};
	_cleanup_free_ int *fds = NULL;
	size_t n_fds = 0;
	int activated = 0, r;

	log_setup("eml-blind-relay");
	parse_argv(argc, argv);
	bump_nofile();
	signal(SIGPIPE, SIG_IGN);

	for (size_t i = 0; i < arg_n_enclaves; i++) {
		struct eml_addr a;
		struct enclave *e = &s.enclaves[s.n_enclaves++];
		r = addr_parse(arg_enclave_str[i], &a);
		if (r < 0) {
			log_struct(LOG_ERR, EML_MSG_CONFIG_ERROR, "MESSAGE=--enclave %s: %s", arg_enclave_str[i],
				   addr_strerror(r), "EML_SETTING=enclave", NULL);
			return 1;
		}
		addr_format(&a, e->name, sizeof(e->name));
		r = addr_to_sockaddr(&a, &e->sa, &e->sa_len);
		if (r == -EADDRNOTAVAIL) { /* a tcp name: resolved once, here (enclaves are vsock in production) */
			r = addr_resolve(&a, &e->sa, &e->sa_len, 1);
			r = r > 0 ? 0 : r;
		}
		if (r < 0) {
			log_struct(LOG_ERR, EML_MSG_CONFIG_ERROR, "MESSAGE=--enclave %s: %s", arg_enclave_str[i],
				   strerror(-r), "EML_SETTING=enclave", NULL);
			return 1;
		}
	}

	r = listeners_get("client", 1, arg_listen, arg_n_listen, &fds, &n_fds, &activated);
	if (r < 0) {
		log_struct(LOG_ERR, EML_MSG_CONFIG_ERROR, "MESSAGE=no listening socket: %s",
			   r == -ENOENT ? "neither socket activation nor --listen" : strerror(-r), "EML_SETTING=listen",
			   NULL);
		return 1;
	}
	if (n_fds > MAX_LISTEN * 4)
		fatal("too many listening sockets (%zu)", n_fds);

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	r = sd_event_default(&s.event);
	if (r < 0)
		fatal("sd_event: %s", strerror(-r));
	AcceptorConfig ac = {.max_connections = arg_max_connections, .retry_usec = ACCEPT_RETRY_USEC,
			     .noun = "session(s)", .on_accept = on_accept, .userdata = &s};
	r = acceptor_new(s.event, fds, n_fds, &ac, &s.acceptor);
	if (r < 0)
		fatal("listeners: %s", strerror(-r));
	if (sd_event_add_signal(s.event, NULL, SIGTERM, on_signal, &s) < 0 ||
	    sd_event_add_signal(s.event, NULL, SIGINT, on_signal, &s) < 0)
		fatal("sd_event: cannot add sources");
	r = notify_watchdog_attach(s.event);
	if (r < 0)
		fatal("watchdog: %s", strerror(-r));

	char first[ADDR_STRING_MAX] = "?";
	socket_local_address(fds[0], first, sizeof(first));
	log_struct(LOG_INFO, EML_MSG_STARTED, "MESSAGE=relaying %s (%zu listener(s)%s) to %zu enclave(s)", first, n_fds,
		   activated ? ", socket-activated" : "", s.n_enclaves, "EML_LISTEN=%s", first, "EML_UPSTREAM=%s",
		   s.enclaves[0].name, NULL);
	notify_ready_status("Relaying %s to %s%s", first, s.enclaves[0].name, s.n_enclaves > 1 ? " and others" : "");

	r = sd_event_loop(s.event);

	while (s.conns)
		conn_free(s.conns);
	s.acceptor = acceptor_free(s.acceptor);
	sd_event_unref(s.event);
	log_struct(LOG_INFO, EML_MSG_STOPPING, "MESSAGE=stopped", NULL);
	return r < 0 ? 1 : 0;
}
