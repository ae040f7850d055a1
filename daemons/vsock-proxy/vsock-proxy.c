/* eml-vsock-proxy: a drop-in for AWS's vsock-proxy. The enclave connects to vsock port LOCAL_PORT on the
 * parent; each connection is joined to REMOTE_ADDR:REMOTE_PORT, which the allow-list must permit. TLS stays end
 * to end: bytes are moved raw (lib/pump.h, splice).
 *
 * What differs from the original, on purpose: one event loop instead of a worker pool (no stall when many
 * connections are slow), a connect deadline, a failed connect confined to its connection, half-close passed
 * on, and DNS followed: the remote name is re-resolved in a background thread when its TTL expires, and each
 * new address is checked against the allow-list again before any connection uses it. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdarg.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "acceptor.h"
#include "addr.h"
#include "allowlist.h"
#include "log.h"
#include "notify.h"
#include "pump.h"
#include "resolve.h"
#include "socket.h"
#include "util.h"

#define USEC_PER_SEC 1000000ULL
#define MAX_LISTEN 16
#define ACCEPT_RETRY_USEC (250 * 1000ULL)
/* Lower bound on re-resolution, so a TTL of 0 does not turn into a query per connection. */
#define MIN_TTL_SEC 1
/* After a failed lookup, try again this soon (keeping the addresses we have). */
#define RETRY_TTL_SEC 5

static int arg_family = AF_UNSPEC;
static uint64_t arg_workers = 4;
static const char *arg_config = "/etc/nitro_enclaves/vsock-proxy.yaml";
static const char *arg_hosts;
static char *arg_listen[MAX_LISTEN];
static size_t arg_n_listen;
static uint64_t arg_local_port;
static const char *arg_remote;
static uint64_t arg_remote_port;
static uint64_t arg_dns_ttl = 60;
static uint64_t arg_max_connections = 1024;
static uint64_t arg_idle_timeout_usec = 600 * USEC_PER_SEC;
static uint64_t arg_connect_timeout_usec = 5 * USEC_PER_SEC;
static uint64_t arg_shutdown_timeout_usec = 30 * USEC_PER_SEC;

struct conn;

struct server {
	sd_event *event;
	Acceptor *acceptor;
	struct allowlist allow;
	bool name_allowed;
	struct resolve_result addrs; /* allowed addresses in use, port set */
	size_t rr;
	sd_event_source *refresh_timer, *result_src;
	int result_pipe[2];
	bool resolving;
	struct conn *conns;
};

struct conn {
	struct server *s;
	struct conn *prev, *next;
	bool connecting;
	int cfd, ufd;
	sd_event_source *csrc, *usrc, *timer;
	uint32_t cev, uev;
	char peer[ADDR_STRING_MAX], upstream[ADDR_STRING_MAX];
	size_t attempts;
	uint64_t start, deadline, last_activity, last_bytes;
	struct pump *up, *down;
	bool up_done, down_done;
	int r_up, r_down; /* last result of each pump */
};

static void format_ip(const struct sockaddr *sa, char *buf, size_t len) {
	char ip[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
	snprintf(buf, len, "%s", ip);
}

static void set_port(struct sockaddr_storage *ss, uint16_t port) {
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* The allow-list decision for one resolved address of the remote name (AWS's rule): an entry with the same
 * port whose address is the remote name itself, or resolves to (or is) this address. */
static bool address_allowed(const struct allowlist *al, bool name_allowed, const struct sockaddr *sa) {
	if (name_allowed)
		return true;
	for (size_t i = 0; i < al->n; i++) {
		struct resolve_result r;
		if (al->entries[i].port != arg_remote_port)
			continue;
		if (resolve_name(al->entries[i].address, arg_family, arg_hosts, (uint32_t)arg_dns_ttl, &r) < 0)
			continue;
		for (size_t k = 0; k < r.n; k++)
			if (resolve_same_ip((const struct sockaddr *)&r.addrs[k], sa))
				return true;
	}
	return false;
}

/* Resolve the remote name and keep the allowed addresses. Blocking: runs at start and in the worker. */
struct lookup {
	struct resolve_result all, allowed;
	int error;
};

static void lookup_run(const struct allowlist *al, bool name_allowed, struct lookup *l) {
	*l = (struct lookup){0};
	l->error = resolve_name(arg_remote, arg_family, arg_hosts, (uint32_t)arg_dns_ttl, &l->all);
	if (l->error < 0)
		return;
	l->allowed.ttl = l->all.ttl;
	for (size_t i = 0; i < l->all.n; i++)
		if (address_allowed(al, name_allowed, (const struct sockaddr *)&l->all.addrs[i])) {
			l->allowed.addrs[l->allowed.n] = l->all.addrs[i];
			l->allowed.lens[l->allowed.n++] = l->all.lens[i];
		}
}

static void log_denied(const struct lookup *l) {
	for (size_t i = 0; i < l->all.n; i++) {
		bool ok = false;
		for (size_t k = 0; k < l->allowed.n; k++)
			ok |= resolve_same_ip((const struct sockaddr *)&l->all.addrs[i], (const struct sockaddr *)&l->allowed.addrs[k]);
		if (ok)
			continue;
		char ip[INET6_ADDRSTRLEN];
		format_ip((const struct sockaddr *)&l->all.addrs[i], ip, sizeof(ip));
		log_struct(LOG_WARNING, EML_MSG_ALLOWLIST_DENIED, "MESSAGE=%s resolved to %s, which the allow-list does not permit",
			   arg_remote, ip, "EML_UPSTREAM=%s", arg_remote, "EML_ADDRESS=%s", ip, NULL);
	}
}

struct worker_job {
	struct server *s;
	struct lookup result;
};

static void *worker(void *arg) {
	struct worker_job *j = arg;
	lookup_run(&j->s->allow, j->s->name_allowed, &j->result);
	/* Hand the finished job to the loop; a pointer write on a pipe is atomic. */
	if (write(j->s->result_pipe[1], &j, sizeof(j)) != sizeof(j))
		free(j);
	return NULL;
}

static void arm_refresh(struct server *s, uint32_t ttl) {
	if (ttl == RESOLVE_TTL_FOREVER)
		return; /* a literal address */
	sd_event_source_set_time(s->refresh_timer, now_monotonic_usec() + MAX(ttl, MIN_TTL_SEC) * USEC_PER_SEC);
	sd_event_source_set_enabled(s->refresh_timer, SD_EVENT_ONESHOT);
}

static int on_refresh(sd_event_source *src, uint64_t usec, void *userdata) {
	struct server *s = userdata;
	if (s->resolving)
		return 0;
	struct worker_job *j = calloc(1, sizeof(*j));
	pthread_t t;
	pthread_attr_t at;
	if (!j)
		goto retry;
	j->s = s;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, worker, j) != 0) {
		pthread_attr_destroy(&at);
		free(j);
		goto retry;
	}
	pthread_attr_destroy(&at);
	s->resolving = true;
	return 0;
retry:
	arm_refresh(s, RETRY_TTL_SEC);
	return 0;
}

static void addresses_string(const struct resolve_result *r, char *buf, size_t len) {
	size_t o = 0;
	buf[0] = 0;
	for (size_t i = 0; i < r->n && o + INET6_ADDRSTRLEN + 2 < len; i++) {
		char ip[INET6_ADDRSTRLEN];
		format_ip((const struct sockaddr *)&r->addrs[i], ip, sizeof(ip));
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "", ip);
	}
}

static bool same_set(const struct resolve_result *a, const struct resolve_result *b) {
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		bool found = false;
		for (size_t k = 0; k < b->n && !found; k++)
			found = resolve_same_ip((const struct sockaddr *)&a->addrs[i], (const struct sockaddr *)&b->addrs[k]);
		if (!found)
			return false;
	}
	return true;
}

static int on_result(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
	struct server *s = userdata;
	struct worker_job *j;
	if (read(fd, &j, sizeof(j)) != sizeof(j))
		return 0;
	s->resolving = false;
	struct lookup *l = &j->result;
	if (l->error < 0) {
		log_struct(LOG_WARNING, EML_MSG_UPSTREAM_DOWN, "MESSAGE=cannot resolve %s: %s; keeping the previous addresses",
			   arg_remote, strerror(-l->error), "EML_UPSTREAM=%s", arg_remote, NULL);
		arm_refresh(s, RETRY_TTL_SEC);
		free(j);
		return 0;
	}
	log_denied(l);
	for (size_t i = 0; i < l->allowed.n; i++)
		set_port(&l->allowed.addrs[i], (uint16_t)arg_remote_port);
	if (!same_set(&l->allowed, &s->addrs)) {
		char list[RESOLVE_MAX_ADDRS * (INET6_ADDRSTRLEN + 1) + 1];
		addresses_string(&l->allowed, list, sizeof(list));
		log_struct(LOG_NOTICE, EML_MSG_DNS_UPDATE, "MESSAGE=%s now resolves to %s", arg_remote,
			   l->allowed.n ? list : "no allowed address", "EML_UPSTREAM=%s", arg_remote, "EML_ADDRESSES=%s", list,
			   "EML_TTL=%u", l->all.ttl, NULL);
	}
	s->addrs = l->allowed;
	s->rr = 0;
	arm_refresh(s, l->all.ttl);
	free(j);
	return 0;
}

static void conn_free(struct conn *c) {
	if (!c)
		return;
	struct server *s = c->s;
	sd_event_source_disable_unref(c->csrc);
	sd_event_source_disable_unref(c->usrc);
	sd_event_source_disable_unref(c->timer);
	pump_free(c->up);
	pump_free(c->down);
	if (c->cfd >= 0)
		close(c->cfd);
	if (c->ufd >= 0)
		close(c->ufd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	acceptor_conn_closed(s->acceptor);
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

static void conn_error(struct conn *c, const char *what, int err) {
	log_struct(LOG_INFO, EML_MSG_CONN_ERROR, "MESSAGE=connection from %s: %s: %s", c->peer, what, strerror(-err),
		   "EML_PEER=%s", c->peer, "EML_UPSTREAM=%s", c->upstream, "EML_ERROR=%s", what, NULL);
	conn_free(c);
}

/* Run the pumps an event concerns (both when unsure); see eml-blind-relay. */
static void conn_process(struct conn *c, bool run_up, bool run_down) {
	int r1 = c->up_done ? PUMP_DONE : run_up ? pump_run(c->up) : c->r_up;
	if (r1 < 0) {
		conn_error(c, pump_failure(c->up) == PUMP_FAIL_SRC ? "client-failed" : "upstream-failed", r1);
		return;
	}
	c->up_done = r1 == PUMP_DONE;
	c->r_up = r1;
	int r2 = c->down_done ? PUMP_DONE : run_down ? pump_run(c->down) : c->r_down;
	if (r2 < 0) {
		conn_error(c, pump_failure(c->down) == PUMP_FAIL_SRC ? "upstream-failed" : "client-failed", r2);
		return;
	}
	c->down_done = r2 == PUMP_DONE;
	c->r_down = r2;
	if (c->up_done && c->down_done) {
		log_struct(LOG_INFO, EML_MSG_CONN_CLOSE, "MESSAGE=connection from %s closed", c->peer, "EML_PEER=%s", c->peer,
			   "EML_UPSTREAM=%s", c->upstream, "EML_BYTES_IN=%" PRIu64, pump_bytes(c->up),
			   "EML_BYTES_OUT=%" PRIu64, pump_bytes(c->down), "EML_DURATION_MS=%" PRIu64,
			   (now_monotonic_usec() - c->start) / 1000, NULL);
		conn_free(c);
		return;
	}
	uint64_t b = pump_bytes(c->up) + pump_bytes(c->down);
	if (b != c->last_bytes) {
		c->last_bytes = b;
		c->last_activity = now_monotonic_usec();
	}
	set_events(c->csrc, &c->cev, (r1 & PUMP_WANT_READ ? EPOLLIN : 0) | (r2 & PUMP_WANT_WRITE ? EPOLLOUT : 0));
	set_events(c->usrc, &c->uev, (r2 & PUMP_WANT_READ ? EPOLLIN : 0) | (r1 & PUMP_WANT_WRITE ? EPOLLOUT : 0));
}

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata);

static int conn_start_relay(struct conn *c) {
	struct pump_config pc = {.mode = PUMP_RAW};
	int one = 1, r;
	(void)setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	r = pump_new(c->cfd, c->ufd, &pc, &c->up);
	if (r >= 0)
		r = pump_new(c->ufd, c->cfd, &pc, &c->down);
	if (r >= 0)
		r = sd_event_add_io(c->s->event, &c->csrc, c->cfd, EPOLLIN, on_io, c);
	if (r < 0)
		return r;
	c->cev = c->uev = (uint32_t)-1;
	c->connecting = false;
	c->last_activity = now_monotonic_usec();
	conn_arm(c, c->last_activity + arg_idle_timeout_usec);
	log_struct(LOG_INFO, EML_MSG_CONN_OPEN, "MESSAGE=connection from %s to %s", c->peer, c->upstream, "EML_PEER=%s",
		   c->peer, "EML_UPSTREAM=%s", c->upstream, NULL);
	conn_process(c, true, true);
	return 0;
}

static void conn_try_connect(struct conn *c);

static void conn_connect_failed(struct conn *c, int err) {
	log_struct(LOG_WARNING, EML_MSG_UPSTREAM_DOWN, "MESSAGE=cannot connect to %s for %s: %s", c->upstream, c->peer,
		   strerror(-err), "EML_UPSTREAM=%s", c->upstream, "EML_PEER=%s", c->peer, "EML_ERROR=%s",
		   strerror(-err), NULL);
	c->usrc = sd_event_source_disable_unref(c->usrc);
	if (c->ufd >= 0)
		close(c->ufd);
	c->ufd = -1;
	if (c->attempts < c->s->addrs.n && now_monotonic_usec() < c->deadline) {
		conn_try_connect(c);
		return;
	}
	conn_free(c); /* only this connection: the enclave sees it closed */
}

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
	struct conn *c = userdata;
	if (c->connecting) {
		int r = socket_connect_finish(fd);
		if (r < 0)
			conn_connect_failed(c, r);
		else if (conn_start_relay(c) < 0)
			conn_error(c, "internal", -ENOMEM);
		return 0;
	}
	bool all = revents & (EPOLLERR | EPOLLHUP), client = src == c->csrc;
	bool in = all || (revents & EPOLLIN), out = all || (revents & EPOLLOUT);
	conn_process(c, client ? in : out, client ? out : in);
	return 0;
}

static void conn_try_connect(struct conn *c) {
	struct server *s = c->s;
	if (s->addrs.n == 0) {
		log_struct(LOG_WARNING, EML_MSG_ALLOWLIST_DENIED, "MESSAGE=no allowed address for %s, closing connection from %s",
			   arg_remote, c->peer, "EML_UPSTREAM=%s", arg_remote, "EML_PEER=%s", c->peer, NULL);
		conn_free(c);
		return;
	}
	size_t i = s->rr++ % s->addrs.n;
	c->attempts++;
	char ip[INET6_ADDRSTRLEN];
	format_ip((const struct sockaddr *)&s->addrs.addrs[i], ip, sizeof(ip));
	snprintf(c->upstream, sizeof(c->upstream), s->addrs.addrs[i].ss_family == AF_INET6 ? "tcp:[%s]:%u" : "tcp:%s:%u", ip,
		 (unsigned)arg_remote_port);
	int r = socket_connect_start((const struct sockaddr *)&s->addrs.addrs[i], s->addrs.lens[i], &c->ufd);
	if (r < 0 && r != -EINPROGRESS) {
		c->ufd = -1;
		conn_connect_failed(c, r);
		return;
	}
	if (sd_event_add_io(s->event, &c->usrc, c->ufd, EPOLLOUT, on_io, c) < 0) {
		conn_free(c);
		return;
	}
	c->uev = EPOLLOUT;
}

static int on_conn_timer(sd_event_source *src, uint64_t usec, void *userdata) {
	struct conn *c = userdata;
	if (c->connecting) {
		conn_connect_failed(c, -ETIMEDOUT);
		return 0;
	}
	if (now_monotonic_usec() >= c->last_activity + arg_idle_timeout_usec) {
		conn_error(c, "idle-timeout", -ETIMEDOUT);
		return 0;
	}
	conn_arm(c, c->last_activity + arg_idle_timeout_usec);
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
	c->ufd = -1;
	c->connecting = true;
	c->start = now_monotonic_usec();
	c->deadline = c->start + arg_connect_timeout_usec;
	if (socket_peer_address(cfd, c->peer, sizeof(c->peer)) < 0)
		snprintf(c->peer, sizeof(c->peer), "unknown");
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	acceptor_conn_opened(a);
	if (sd_event_add_time(s->event, &c->timer, CLOCK_MONOTONIC, c->deadline, 0, on_conn_timer, c) < 0) {
		conn_free(c);
		return;
	}
	conn_try_connect(c);
}

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
	struct server *s = userdata;
	uint64_t n = acceptor_connections(s->acceptor);
	if (acceptor_stopping(s->acceptor))
		return 0;
	notify_stopping();
	log_struct(LOG_NOTICE, EML_MSG_STOPPING, "MESSAGE=stopping on %s, %" PRIu64 " connection(s) open",
		   strsignal((int)si->ssi_signo), n, "EML_CONNECTIONS=%" PRIu64, n, NULL);
	return acceptor_stop(s->acceptor, arg_shutdown_timeout_usec);
}

static void help(void) {
	printf("Usage: eml-vsock-proxy [OPTIONS] LOCAL_PORT REMOTE_ADDR REMOTE_PORT\n\n"
	       "Join vsock connections on LOCAL_PORT to an allow-listed REMOTE_ADDR:REMOTE_PORT (AWS vsock-proxy compatible).\n\n"
	       "  -4 --ipv4                   resolve REMOTE_ADDR to IPv4 only\n"
	       "  -6 --ipv6                   resolve REMOTE_ADDR to IPv6 only\n"
	       "  -w --num_workers N          accepted for compatibility; one event loop serves all connections\n"
	       "     --config FILE            allow-list (default /etc/nitro_enclaves/vsock-proxy.yaml)\n"
	       "  -l --listen ADDR            listen here instead of vsock::LOCAL_PORT (repeatable; ignored when\n"
	       "                              socket-activated)\n"
	       "     --hosts FILE             hosts-style file consulted before DNS (re-read at every lookup)\n"
	       "     --dns-ttl SEC            lifetime of answers without a DNS TTL (hosts file, NSS) (60)\n"
	       "     --max-connections N      concurrent connections before accepting pauses (1024)\n"
	       "     --idle-timeout SEC       close a connection idle this long (600)\n"
	       "     --connect-timeout SEC    deadline to connect to the remote (5)\n"
	       "     --shutdown-timeout SEC   on SIGTERM, how long open connections may finish (30)\n"
	       "  -h --help                   this help\n"
	       "  -V --version                version\n");
}

_printf_(2, 3) _Noreturn static void config_fatal(const char *setting, const char *fmt, ...) {
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_struct(LOG_ERR, EML_MSG_CONFIG_ERROR, "MESSAGE=%s", msg, "EML_SETTING=%s", setting, NULL);
	fprintf(stderr, "eml-vsock-proxy: %s\n", msg);
	exit(1);
}

static uint64_t parse_seconds(const char *opt, const char *s) {
	uint64_t v;
	if (parse_u64(s, 86400 * 365, &v) < 0 || v == 0)
		config_fatal(opt, "--%s: expected seconds > 0, got '%s'", opt, s);
	return v;
}

static void parse_argv(int argc, char **argv) {
	enum { ARG_CONFIG = 0x100, ARG_HOSTS, ARG_TTL, ARG_MAX_CONN, ARG_IDLE, ARG_CONNECT, ARG_SHUTDOWN };
	static const struct option options[] = {
		{"ipv4", no_argument, NULL, '4'},
		{"ipv6", no_argument, NULL, '6'},
		{"num_workers", required_argument, NULL, 'w'},
		{"workers", required_argument, NULL, 'w'},
		{"config", required_argument, NULL, ARG_CONFIG},
		{"listen", required_argument, NULL, 'l'},
		{"hosts", required_argument, NULL, ARG_HOSTS},
		{"dns-ttl", required_argument, NULL, ARG_TTL},
		{"max-connections", required_argument, NULL, ARG_MAX_CONN},
		{"idle-timeout", required_argument, NULL, ARG_IDLE},
		{"connect-timeout", required_argument, NULL, ARG_CONNECT},
		{"shutdown-timeout", required_argument, NULL, ARG_SHUTDOWN},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{},
	};
	int c;
	while ((c = getopt_long(argc, argv, "46w:l:hV", options, NULL)) >= 0) {
		switch (c) {
		case '4':
			arg_family = AF_INET;
			break;
		case '6':
			arg_family = AF_INET6;
			break;
		case 'w':
			if (parse_u64(optarg, 1024, &arg_workers) < 0 || arg_workers == 0)
				config_fatal("workers", "-w: expected 1..1024, got '%s'%s", optarg, "");
			break;
		case ARG_CONFIG:
			arg_config = optarg;
			break;
		case 'l':
			if (arg_n_listen >= MAX_LISTEN)
				config_fatal("listen", "too many --listen addresses");
			arg_listen[arg_n_listen++] = optarg;
			break;
		case ARG_HOSTS:
			arg_hosts = optarg;
			break;
		case ARG_TTL:
			arg_dns_ttl = parse_seconds("dns-ttl", optarg);
			break;
		case ARG_MAX_CONN:
			if (parse_u64(optarg, 1000000, &arg_max_connections) < 0 || arg_max_connections == 0)
				config_fatal("max-connections", "--max-connections: expected 1..1000000, got '%s'%s", optarg, "");
			break;
		case ARG_IDLE:
			arg_idle_timeout_usec = parse_seconds("idle-timeout", optarg) * USEC_PER_SEC;
			break;
		case ARG_CONNECT:
			arg_connect_timeout_usec = parse_seconds("connect-timeout", optarg) * USEC_PER_SEC;
			break;
		case ARG_SHUTDOWN:
			arg_shutdown_timeout_usec = parse_seconds("shutdown-timeout", optarg) * USEC_PER_SEC;
			break;
		case 'h':
			help();
			exit(0);
		case 'V':
			printf("eml-vsock-proxy " EML_VERSION "\n");
			exit(0);
		default:
			exit(2);
		}
	}
	if (argc - optind != 3)
		config_fatal("arguments", "expected LOCAL_PORT REMOTE_ADDR REMOTE_PORT (see --help)");
	if (parse_u64(argv[optind], UINT32_MAX - 1, &arg_local_port) < 0)
		config_fatal("local_port", "LOCAL_PORT: expected a vsock port, got '%s'%s", argv[optind], "");
	arg_remote = argv[optind + 1];
	if (!*arg_remote || strlen(arg_remote) > ALLOWLIST_HOST_MAX)
		config_fatal("remote_addr", "REMOTE_ADDR: bad host '%s'%s", arg_remote, "");
	if (parse_u64(argv[optind + 2], 65535, &arg_remote_port) < 0 || arg_remote_port == 0)
		config_fatal("remote_port", "REMOTE_PORT: expected 1..65535, got '%s'%s", argv[optind + 2], "");
}

static void bump_nofile(void) {
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv) {
	struct server s = {.result_pipe = {-1, -1}};
	_cleanup_free_ int *fds = NULL;
	size_t n_fds = 0;
	int activated = 0, r;
	char err[512], vsock_default[64];

	log_setup("eml-vsock-proxy");
	parse_argv(argc, argv);
	bump_nofile();
	signal(SIGPIPE, SIG_IGN);

	if (allowlist_load(arg_config, &s.allow, err, sizeof(err)) < 0)
		config_fatal("config", "allow-list %s: %s", arg_config, err);
	for (size_t i = 0; i < s.allow.n; i++)
		if (s.allow.entries[i].port == arg_remote_port && strcasecmp(s.allow.entries[i].address, arg_remote) == 0)
			s.name_allowed = true;

	struct lookup l;
	lookup_run(&s.allow, s.name_allowed, &l);
	if (l.error < 0)
		config_fatal("remote_addr", "cannot resolve %s: %s", arg_remote, strerror(-l.error));
	if (l.allowed.n == 0) {
		config_fatal("config", "%s:%u is not in the allow-list (no entry matches its name or an address it resolves to on that port)",
			     arg_remote, (unsigned)arg_remote_port);
	}
	log_denied(&l);
	for (size_t i = 0; i < l.allowed.n; i++)
		set_port(&l.allowed.addrs[i], (uint16_t)arg_remote_port);
	s.addrs = l.allowed;

	snprintf(vsock_default, sizeof(vsock_default), "vsock::%u", (unsigned)arg_local_port);
	if (arg_n_listen == 0)
		arg_listen[arg_n_listen++] = vsock_default;
	r = listeners_get("proxy", 1, arg_listen, arg_n_listen, &fds, &n_fds, &activated);
	if (r < 0)
		config_fatal("listen", "cannot listen on %s: %s", arg_listen[0], strerror(-r));
	if (n_fds > MAX_LISTEN * 4)
		fatal("too many listening sockets (%zu)", n_fds);

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL); /* before any thread starts, so workers inherit it */

	if (pipe2(s.result_pipe, O_CLOEXEC) < 0)
		fatal("pipe: %m");
	r = sd_event_default(&s.event);
	if (r < 0)
		fatal("sd_event: %s", strerror(-r));
	AcceptorConfig ac = {.max_connections = arg_max_connections, .retry_usec = ACCEPT_RETRY_USEC,
			     .noun = "connection(s)", .on_accept = on_accept, .userdata = &s};
	r = acceptor_new(s.event, fds, n_fds, &ac, &s.acceptor);
	if (r < 0)
		fatal("listeners: %s", strerror(-r));
	if (sd_event_add_signal(s.event, NULL, SIGTERM, on_signal, &s) < 0 ||
	    sd_event_add_signal(s.event, NULL, SIGINT, on_signal, &s) < 0 ||
	    sd_event_add_time(s.event, &s.refresh_timer, CLOCK_MONOTONIC, 0, 0, on_refresh, &s) < 0 ||
	    sd_event_add_io(s.event, &s.result_src, s.result_pipe[0], EPOLLIN, on_result, &s) < 0)
		fatal("sd_event: cannot add sources");
	sd_event_source_set_enabled(s.refresh_timer, SD_EVENT_OFF);
	arm_refresh(&s, l.all.ttl);
	r = notify_watchdog_attach(s.event);
	if (r < 0)
		fatal("watchdog: %s", strerror(-r));

	char first[ADDR_STRING_MAX] = "?", list[RESOLVE_MAX_ADDRS * (INET6_ADDRSTRLEN + 1) + 1];
	socket_local_address(fds[0], first, sizeof(first));
	addresses_string(&s.addrs, list, sizeof(list));
	log_struct(LOG_INFO, EML_MSG_STARTED, "MESSAGE=proxying %s to %s:%u (%s)%s", first, arg_remote,
		   (unsigned)arg_remote_port, list, activated ? ", socket-activated" : "", "EML_LISTEN=%s", first,
		   "EML_UPSTREAM=%s:%u", arg_remote, (unsigned)arg_remote_port, "EML_ADDRESSES=%s", list, NULL);
	notify_ready_status("Proxying %s to %s:%u", first, arg_remote, (unsigned)arg_remote_port);

	r = sd_event_loop(s.event);

	while (s.conns)
		conn_free(s.conns);
	s.acceptor = acceptor_free(s.acceptor);
	sd_event_source_disable_unref(s.refresh_timer);
	sd_event_source_disable_unref(s.result_src);
	/* A lookup still running: collect its result (briefly) so nothing is left behind. */
	if (s.resolving) {
		struct pollfd pfd = {.fd = s.result_pipe[0], .events = POLLIN};
		struct worker_job *j;
		if (poll(&pfd, 1, 2000) > 0 && read(s.result_pipe[0], &j, sizeof(j)) == sizeof(j))
			free(j);
	}
	sd_event_unref(s.event);
	allowlist_free(&s.allow);
	log_struct(LOG_INFO, EML_MSG_STOPPING, "MESSAGE=stopped", NULL);
	return r < 0 ? 1 : 0;
}
