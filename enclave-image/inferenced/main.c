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

struct control_job {
	struct daemon *d;
	int fd;
};

static void *control_thread(void *arg) {
	struct control_job *j = arg;
	struct daemon *d = j->d;
	control_serve(d, j->fd);
	free(j);
	atomic_fetch_sub(&d->control_conns, 1);
	return NULL;
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
	struct control_job *j = malloc(sizeof *j);
	pthread_attr_t attr;
	pthread_t t;
	if (j) *j = (struct control_job){d, cfd};
	if (!j || pthread_attr_init(&attr) != 0) {
		free(j);
		close(cfd);
		atomic_fetch_sub(&d->control_conns, 1);
		return 0;
	}
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, control_thread, j) != 0) {
		free(j);
		close(cfd);
		atomic_fetch_sub(&d->control_conns, 1);
	}
	pthread_attr_destroy(&attr);
	return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
	notify_stopping();
	log_struct(LOG_INFO, EML_MSG_STOPPING, "MESSAGE=stopping on signal %u", si->ssi_signo, NULL);
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void usage(void) {
	fprintf(stderr,
		"usage: eml-inferenced [--listen-control ADDR]... [--nsm DEVICE] [--signers DIR]\n"
		"                      [--kms-relay ADDR | --kms-endpoint URL [--kms-region R]]\n"
		"                      [--max-model-bytes N] [--idle-timeout S]\n");
}

int main(int argc, char **argv) {
	static const struct option opts[] = {
		{"listen-control", required_argument, NULL, 'c'},
		{"nsm", required_argument, NULL, 'n'},
		{"signers", required_argument, NULL, 's'},
		{"kms-relay", required_argument, NULL, 'k'},
		{"kms-endpoint", required_argument, NULL, 'e'},
		{"kms-region", required_argument, NULL, 'r'},
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
			.max_control = 4},
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.load_lock = PTHREAD_MUTEX_INITIALIZER,
		.key_lock = PTHREAD_MUTEX_INITIALIZER,
		.key_ready = PTHREAD_COND_INITIALIZER,
	};
	char *control_addrs[MAX_LISTEN];
	size_t n_control = 0;
	uint64_t v;
	int c;
	log_setup("eml-inferenced");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) switch (c) {
		case 'c':
			if (n_control == MAX_LISTEN) fatal("at most %d --listen-control", MAX_LISTEN);
			control_addrs[n_control++] = optarg;
			break;
		case 'n': d.cfg.nsm_device = optarg; break;
		case 's': d.cfg.signers_dir = optarg; break;
		case 'k': d.cfg.kms_relay = optarg; break;
		case 'e': d.cfg.kms_endpoint = optarg; break;
		case 'r': d.cfg.kms_region = optarg; break;
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
	d.production = strcmp(d.cfg.nsm_device, "/dev/nsm") == 0;
	if (d.cfg.kms_endpoint)
		log_warn("development mode: KMS requests go straight to %s (not through eml-kms-relay)", d.cfg.kms_endpoint);

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
	int r = listeners_get("control", 1, control_addrs, n_control, &fds, &n_fds, &activated);
	if (r < 0) {
		log_struct(LOG_ERR, EML_MSG_CONFIG_ERROR, "MESSAGE=cannot listen on the control port: %s", strerror(-r),
			   NULL);
		return 1;
	}
	sd_event *e = NULL;
	if ((r = sd_event_default(&e)) < 0) fatal("sd_event: %s", strerror(-r));
	for (size_t i = 0; i < n_fds; i++) {
		fd_set_nonblock(fds[i], 1);
		if ((r = sd_event_add_io(e, NULL, fds[i], EPOLLIN, on_control, &d)) < 0) fatal("sd_event: %s", strerror(-r));
	}
	sd_event_add_signal(e, NULL, SIGTERM, on_signal, NULL);
	sd_event_add_signal(e, NULL, SIGINT, on_signal, NULL);
	notify_watchdog_attach(e);
	char where[128] = "";
	socket_local_address(fds[0], where, sizeof where);
	log_struct(LOG_INFO, EML_MSG_STARTED, "MESSAGE=ready: control on %s%s, %s mode", where,
		   activated ? " (socket-activated)" : "", d.production ? "production" : "evaluation",
		   "EML_CONTROL=%s", where, NULL);
	notify_ready_status("control on %s", where);
	recipient_key_prepare(&d);
	r = sd_event_loop(e);
	sd_event_unref(e);
	for (size_t i = 0; i < n_fds; i++) close(fds[i]);
	/* Control connections still open get a moment to finish (their threads are detached). */
	for (int i = 0; i < 100 && atomic_load(&d.control_conns) > 0; i++) usleep(10000);
	/* A load in flight holds load_lock: wait for it so its buffers are wiped before we go. */
	pthread_mutex_lock(&d.load_lock);
	pthread_mutex_lock(&d.lock);
	struct live_model *m = TAKE_PTR(d.live);
	pthread_mutex_unlock(&d.lock);
	model_unref(m);
	pthread_mutex_unlock(&d.load_lock);
	recipient_key_drain(&d);
	return r < 0 ? 1 : 0;
}
