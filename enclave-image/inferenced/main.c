/* eml-inferenced: the enclave daemon (man/eml-inferenced.8). An sd-event loop accepts connections; each control
 * connection is served on its own thread (a load blocks on KMS and on decryption, never the loop). */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "inferenced.h"
#include "log.h"
#include "messages.h"
#include "notify.h"
#include "sealed.h"
#include "socket.h"
#include "util.h"

#define MAX_LISTEN 8

struct job {
	struct daemon *d;
	int fd;
	bool busy;
};

static void *control_thread(void *arg) {
	struct job *j = arg;
	struct daemon *d = j->d;
	control_serve(d, j->fd);
	free(j);
	atomic_fetch_sub(&d->control_conns, 1);
	return NULL;
}

static void *session_thread(void *arg) {
	struct job *j = arg;
	struct daemon *d = j->d;
	session_serve(d, j->fd, j->busy);
	free(j);
	atomic_fetch_sub(&d->sessions, 1);
	return NULL;
}

static int spawn(void *(*fn)(void *), struct job *j) {
	pthread_attr_t attr;
	pthread_t t;
	if (pthread_attr_init(&attr) != 0) return -ENOMEM;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int r = -pthread_create(&t, &attr, fn, j);
	pthread_attr_destroy(&attr);
	return r;
}

static int on_session(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	struct daemon *d = userdata;
	int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (cfd < 0) {
		if (errno != EAGAIN && errno != EINTR) log_warn("accept on the session port: %m");
		return 0;
	}
	/* Above the cap a session is still answered, with BUSY, on a thread of its own (up to twice the cap):
	 * beyond that the connection is simply closed. */
	unsigned n = atomic_fetch_add(&d->sessions, 1);
	struct job *j = n < 2 * d->cfg.max_sessions ? malloc(sizeof *j) : NULL;
	if (j) *j = (struct job){d, cfd, n >= d->cfg.max_sessions};
	if (!j || spawn(session_thread, j) < 0) {
		free(j);
		close(cfd);
		atomic_fetch_sub(&d->sessions, 1);
	}
	return 0;
}

static int on_control(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	struct daemon *d = userdata;
	int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (cfd < 0) {
		if (errno != EAGAIN && errno != EINTR) log_warn("accept on the control port: %m");
		return 0;
	}
	if (atomic_fetch_add(&d->control_conns, 1) >= d->cfg.max_control) {
		atomic_fetch_sub(&d->control_conns, 1);
		log_warn("control connection refused: %u already open", d->cfg.max_control);
		close(cfd);
		return 0;
	}
	fd_set_nonblock(cfd, 0);
	struct job *j = malloc(sizeof *j);
	if (j) *j = (struct job){d, cfd, false};
	if (!j || spawn(control_thread, j) < 0) {
		free(j);
		close(cfd);
		atomic_fetch_sub(&d->control_conns, 1);
	}
	return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
	notify_stopping();
	log_struct(LOG_INFO, EML_MSG_STOPPING, "MESSAGE=stopping on signal %u", si->ssi_signo, NULL);
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void usage(void) {
	fprintf(stderr,
		"usage: eml-inferenced [--listen ADDR]... [--listen-control ADDR]... [--nsm DEVICE]\n"
		"                      [--signers DIR] [--max-sessions N] [--max-inputs N] [--max-input-bytes N]\n"
		"                      [--session-idle-timeout S]\n"
		"                      [--kms-relay ADDR]\n"
		"                      [--max-model-bytes N] [--idle-timeout S]\n");
}

int main(int argc, char **argv) {
	static const struct option opts[] = {
		{"listen-control", required_argument, NULL, 'c'},
		{"listen-session", required_argument, NULL, 'l'},
		{"listen", required_argument, NULL, 'l'}, /* the session port: the project's usual --listen */
		{"max-sessions", required_argument, NULL, 'S'},
		{"max-inputs", required_argument, NULL, 'I'},
		{"max-input-bytes", required_argument, NULL, 'B'},
		{"session-idle-timeout", required_argument, NULL, 'T'},
		{"nsm", required_argument, NULL, 'n'},
		{"signers", required_argument, NULL, 's'},
		{"kms-relay", required_argument, NULL, 'k'},
		{"max-model-bytes", required_argument, NULL, 'm'},
		{"idle-timeout", required_argument, NULL, 'i'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	static struct daemon d = {
		.cfg = {.nsm_device = "/dev/nsm",
			.signers_dir = "/etc/eml/model-signers",
			.kms_relay = "vsock:3:8001",
			.max_model_bytes = 4ull << 30,
			.idle_usec = 30 * 1000000ull,
			.max_control = 4,
			.max_sessions = 64,
			.max_inputs = 64,
			.max_input_bytes = 16384,
			.session_idle_usec = 60 * 1000000ull},
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.load_lock = PTHREAD_MUTEX_INITIALIZER,
		.key_lock = PTHREAD_MUTEX_INITIALIZER,
		.key_ready = PTHREAD_COND_INITIALIZER,
	};
	char *control_addrs[MAX_LISTEN], *session_addrs[MAX_LISTEN];
	size_t n_control = 0, n_session = 0;
	uint64_t v;
	int c;
	log_setup("eml-inferenced");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) switch (c) {
		case 'c':
			if (n_control == MAX_LISTEN) fatal("at most %d --listen-control", MAX_LISTEN);
			control_addrs[n_control++] = optarg;
			break;
		case 'l':
			if (n_session == MAX_LISTEN) fatal("at most %d --listen-session", MAX_LISTEN);
			session_addrs[n_session++] = optarg;
			break;
		case 'S':
			if (parse_u64(optarg, 4096, &v) < 0 || v == 0) fatal("bad --max-sessions %s", optarg);
			d.cfg.max_sessions = (unsigned)v;
			break;
		case 'I':
			if (parse_u64(optarg, 1024, &v) < 0 || v == 0) fatal("bad --max-inputs %s", optarg);
			d.cfg.max_inputs = (unsigned)v;
			break;
		case 'B':
			if (parse_u64(optarg, 1u << 20, &v) < 0 || v == 0) fatal("bad --max-input-bytes %s", optarg);
			d.cfg.max_input_bytes = (unsigned)v;
			break;
		case 'T':
			if (parse_u64(optarg, 3600, &v) < 0 || v == 0) fatal("bad --session-idle-timeout %s", optarg);
			d.cfg.session_idle_usec = v * 1000000;
			break;
		case 'n': d.cfg.nsm_device = optarg; break;
		case 's': d.cfg.signers_dir = optarg; break;
		case 'k': d.cfg.kms_relay = optarg; break;
		case 'm':
			if (parse_u64(optarg, SEALED_TOTAL_MAX, &v) < 0 || v == 0) fatal("bad --max-model-bytes %s", optarg);
			d.cfg.max_model_bytes = v;
			break;
		case 'i':
			if (parse_u64(optarg, 3600, &v) < 0 || v == 0) fatal("bad --idle-timeout %s", optarg);
			d.cfg.idle_usec = v * 1000000;
			break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	if (optind != argc) {
		usage();
		return 2;
	}
	if (n_control == 0) control_addrs[n_control++] = (char *)"vsock:4294967295:5001"; /* VMADDR_CID_ANY */
	if (n_session == 0) session_addrs[n_session++] = (char *)"vsock:4294967295:5000";
	d.production = strcmp(d.cfg.nsm_device, "/dev/nsm") == 0;

	/* Signals are taken by the loop; every thread inherits the blocked mask. */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);

	_cleanup_free_ int *fds = NULL;
	size_t n_fds = 0;
	int activated = 0;
	int r = listeners_get("control", 0, control_addrs, n_control, &fds, &n_fds, &activated);
	if (r < 0) {
		log_struct(LOG_ERR, EML_MSG_CONFIG_ERROR, "MESSAGE=cannot listen on the control port: %s", strerror(-r),
			   NULL);
		return 1;
	}
	_cleanup_free_ int *sfds = NULL;
	size_t n_sfds = 0;
	if ((r = listeners_get("session", 1, session_addrs, n_session, &sfds, &n_sfds, &activated)) < 0) {
		log_struct(LOG_ERR, EML_MSG_CONFIG_ERROR, "MESSAGE=cannot listen on the session port: %s", strerror(-r),
			   NULL);
		return 1;
	}
	if ((r = receipts_init(&d)) < 0) {
		log_struct(LOG_ERR, EML_MSG_CONFIG_ERROR, "MESSAGE=NSM %s: cannot read PCRs or make the receipt key: %s",
			   d.cfg.nsm_device, strerror(-r), NULL);
		return 1;
	}
	sd_event *e = NULL;
	if ((r = sd_event_default(&e)) < 0) fatal("sd_event: %s", strerror(-r));
	for (size_t i = 0; i < n_fds; i++) {
		fd_set_nonblock(fds[i], 1);
		if ((r = sd_event_add_io(e, NULL, fds[i], EPOLLIN, on_control, &d)) < 0) fatal("sd_event: %s", strerror(-r));
	}
	for (size_t i = 0; i < n_sfds; i++) {
		fd_set_nonblock(sfds[i], 1);
		if ((r = sd_event_add_io(e, NULL, sfds[i], EPOLLIN, on_session, &d)) < 0) fatal("sd_event: %s", strerror(-r));
	}
	sd_event_add_signal(e, NULL, SIGTERM, on_signal, NULL);
	sd_event_add_signal(e, NULL, SIGINT, on_signal, NULL);
	notify_watchdog_attach(e);
	char where[128] = "", swhere[128] = "";
	socket_local_address(fds[0], where, sizeof where);
	socket_local_address(sfds[0], swhere, sizeof swhere);
	log_struct(LOG_INFO, EML_MSG_STARTED, "MESSAGE=ready: sessions on %s, control on %s%s, %s mode", swhere, where,
		   activated ? " (socket-activated)" : "", d.production ? "production" : "evaluation",
		   "EML_CONTROL=%s", where, "EML_LISTEN=%s", swhere, NULL);
	notify_ready_status("control on %s", where);
	recipient_key_prepare(&d);
	r = sd_event_loop(e);
	sd_event_unref(e);
	for (size_t i = 0; i < n_fds; i++) close(fds[i]);
	for (size_t i = 0; i < n_sfds; i++) close(sfds[i]);
	/* Connections still open get a moment to finish (their threads are detached). */
	for (int i = 0; i < 100 && (atomic_load(&d.control_conns) > 0 || atomic_load(&d.sessions) > 0); i++)
		usleep(10000);
	/* A load in flight holds load_lock: wait for it so its buffers are wiped before we go. */
	pthread_mutex_lock(&d.load_lock);
	pthread_mutex_lock(&d.lock);
	struct live_model *m = TAKE_PTR(d.live);
	pthread_mutex_unlock(&d.lock);
	model_unref(m);
	pthread_mutex_unlock(&d.load_lock);
	recipient_key_drain(&d);
	if (atomic_load(&d.sessions) == 0) air_signer_free(d.receipt_signer); /* else a session still signs */
	return r < 0 ? 1 : 0;
}
