/* eml-init: the enclave's PID 1. It does only what must happen before the service runs and what PID 1 owes the
 * system: mount the API filesystems, load the NSM driver, seed the kernel RNG from the NSM, tell nitro-cli the
 * enclave booted (0xB7 heartbeat on vsock 3:9000), then start the configured command, reap every child,
 * forward SIGTERM, restart the command with backoff up to a limit and finally power off.
 *
 * Not PID 1 (the nitro-cli build-enclave path, where AWS's init runs us as the container command, and tests):
 * no mounts, no module, no heartbeat, no reboot; it becomes a child subreaper so orphans are still reaped, and
 * exits with the command's status instead of powering off.
 *
 * Links statically against libc (plus libeml's initconf, nsm-random, nsm-transport and util): no libsystemd, no
 * libcbor (Debian ships no static one), no dynamic loader. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/random.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "initconf.h"
#include "macro.h"
#include "nsm-random.h"
#include "nsm-transport.h"
#include "util.h"

#define DEFAULT_CONFIG "/etc/eml/init.conf"
#define NSM_MODULE "/nsm.ko"
#define MODULE_DIR "/lib/modules/eml"
#define HEARTBEAT_CID 3
#define HEARTBEAT_PORT 9000
#define HEARTBEAT_BYTE 0xB7
#define HEARTBEAT_TIMEOUT_SEC 30
#define FINAL_KILL_WAIT_MS 2000

_printf_(1, 2) static void say(const char *fmt, ...) {
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	/* One write per line so lines from init and the command never interleave mid-line on the console. */
	dprintf(STDERR_FILENO, "eml-init: %s\n", buf);
}

/* --- early boot (PID 1 only) --- */

/* When the kernel found no /dev/console in the initramfs, fds 0-2 are closed: attach them to the console. */
static void ensure_stdio(void) {
	if (fcntl(STDERR_FILENO, F_GETFD) >= 0) return;
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0) return;
	for (int i = 0; i < 3; i++)
		if (fd != i) dup2(fd, i);
	if (fd > 2) close(fd);
}

static bool is_mountpoint(const char *path) {
	struct stat st, parent;
	char up[64];
	snprintf(up, sizeof up, "%s/..", path);
	if (stat(path, &st) < 0 || stat(up, &parent) < 0) return false;
	return st.st_dev != parent.st_dev || st.st_ino == parent.st_ino;
}

static int mount_api_filesystems(void) {
	static const struct {
		const char *type, *target, *options;
		mode_t mode;
		unsigned long flags;
	} mounts[] = {
		{"proc", "/proc", NULL, 0555, MS_NOSUID | MS_NODEV | MS_NOEXEC},
		{"sysfs", "/sys", NULL, 0555, MS_NOSUID | MS_NODEV | MS_NOEXEC},
		{"devtmpfs", "/dev", "mode=0755", 0755, MS_NOSUID},
		{"tmpfs", "/run", "mode=0755", 0755, MS_NOSUID | MS_NODEV},
		{"tmpfs", "/tmp", "mode=1777", 01777, MS_NOSUID | MS_NODEV},
	};
	int ret = 0;
	for (size_t i = 0; i < ARRAY_SIZE(mounts); i++) {
		if (mkdir(mounts[i].target, mounts[i].mode) < 0 && errno != EEXIST) {
			say("mkdir %s: %s", mounts[i].target, strerror(errno));
			ret = -errno;
			continue;
		}
		if (is_mountpoint(mounts[i].target)) continue; /* already there: e.g. the kernel mounted devtmpfs */
		if (mount(mounts[i].type, mounts[i].target, mounts[i].type, mounts[i].flags, mounts[i].options) < 0) {
			say("mount %s on %s: %s", mounts[i].type, mounts[i].target, strerror(errno));
			ret = -errno;
		}
	}
	return ret;
}

static int load_module(int dirfd, const char *name, const char *shown) {
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) return -errno;
	/* Parameters come from the kernel command line (e.g. virtio_mmio.device=...), as for built-in drivers. */
	if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST) {
		int r = -errno;
		say("finit_module %s: %s", shown, strerror(errno));
		return r;
	}
	return 0;
}

static int ko_filter(const struct dirent *de) {
	size_t n = strlen(de->d_name);
	return n > 3 && strcmp(de->d_name + n - 3, ".ko") == 0;
}

/* A stock distribution kernel builds virtio, virtio-mmio and vsock as modules; the image carries the ones it
 * needs in /lib/modules/eml, named so that sorting gives a load order (enclave-image/kmods.sh). */
static int load_module_dir(void) {
	_cleanup_close_ int dfd = open(MODULE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) return errno == ENOENT ? 0 : -errno;
	struct dirent **names = NULL;
	int n = scandir(MODULE_DIR, &names, ko_filter, alphasort);
	if (n < 0) return -errno;
	int ret = 0, loaded = 0;
	for (int i = 0; i < n; i++) {
		char shown[300];
		snprintf(shown, sizeof shown, "%s/%s", MODULE_DIR, names[i]->d_name);
		int r = load_module(dfd, names[i]->d_name, shown);
		if (r < 0) ret = r;
		else loaded++;
		free(names[i]);
	}
	free(names);
	say("loaded %d of %d modules from %s", loaded, n, MODULE_DIR);
	return ret;
}

/* The NSM driver ships as /nsm.ko in the bootstrap ramdisk (AWS's convention); load it once and drop the file. */
static int load_nsm_module(void) {
	if (access(NSM_MODULE, F_OK) < 0) return errno == ENOENT ? 0 : -errno;
	int r = load_module(AT_FDCWD, NSM_MODULE, NSM_MODULE);
	if (r == 0) say("loaded %s", NSM_MODULE);
	if (unlink(NSM_MODULE) < 0) say("unlink %s: %s", NSM_MODULE, strerror(errno));
	return r;
}

/* Credit NSM randomness to the kernel pool: the enclave has no other entropy source worth the name at boot. */
static int seed_rng(void) {
	enum { WANT = 256 };
	size_t size = sizeof(struct rand_pool_info) + WANT;
	struct rand_pool_info *pool = calloc(1, size);
	if (!pool) return -ENOMEM;
	int n = nsm_random_fetch(NSM_DEVICE_DEFAULT, (uint8_t *)pool->buf, WANT);
	int r = 0;
	if (n == -ENOENT) {
		say("no %s: kernel RNG not seeded from the NSM", NSM_DEVICE_DEFAULT);
	} else if (n < 0) {
		say("NSM GetRandom: %s", strerror(-n));
		r = n;
	} else {
		pool->entropy_count = n * 8;
		pool->buf_size = n;
		_cleanup_close_ int fd = open("/dev/random", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || ioctl(fd, RNDADDENTROPY, pool) < 0) {
			r = -errno;
			say("RNDADDENTROPY: %s", strerror(errno));
		} else {
			say("seeded the kernel RNG with %d bytes from the NSM", n);
		}
	}
	free_secret(pool, size);
	return r;
}

/* nitro-cli waits for one 0xB7 on vsock 3:9000 and echoes it: the enclave is up. */
static int heartbeat(void) {
	_cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) return -errno;
	struct timeval tv = {.tv_sec = HEARTBEAT_TIMEOUT_SEC};
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = HEARTBEAT_CID, .svm_port = HEARTBEAT_PORT};
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return -errno;
	uint8_t b = HEARTBEAT_BYTE;
	int r = write_all(fd, &b, 1);
	if (r < 0) return r;
	r = read_all(fd, &b, 1);
	if (r < 0) return r;
	return b == HEARTBEAT_BYTE ? 0 : -EPROTO;
}

/* --- supervision --- */

struct supervisor {
	const struct init_conf *conf;
	pid_t main_pid;
	uint64_t restarts;
	uint64_t delay_ms;
	uint64_t restart_at;    /* monotonic usec; 0: no restart pending */
	uint64_t kill_at;       /* monotonic usec; 0: no stop in progress */
	bool stopping;
	int exit_code;
};

static pid_t start_command(const struct init_conf *conf, const sigset_t *blocked) {
	pid_t pid = fork();
	if (pid != 0) return pid;
	sigprocmask(SIG_UNBLOCK, blocked, NULL);
	setsid();
	char *const default_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	execve(conf->argv[0], conf->argv, conf->n_env ? conf->env : default_env);
	dprintf(STDERR_FILENO, "eml-init: exec %s: %s\n", conf->argv[0], strerror(errno));
	_exit(127);
}

static int status_to_code(int status) {
	if (WIFEXITED(status)) return WEXITSTATUS(status);
	if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
	return 1;
}

static void launch(struct supervisor *s, const sigset_t *blocked) {
	s->main_pid = start_command(s->conf, blocked);
	if (s->main_pid < 0) {
		say("fork: %s", strerror(errno));
		s->main_pid = 0;
		s->exit_code = 1;
		s->stopping = true;
		return;
	}
	say("started %s (pid %d)", s->conf->argv[0], (int)s->main_pid);
}

/* The main process ended: restart with backoff or finish. */
static void main_exited(struct supervisor *s, int status) {
	int code = status_to_code(status);
	s->main_pid = 0;
	s->kill_at = 0;
	if (s->stopping) {
		/* Death by the SIGTERM we forwarded is a clean stop. */
		s->exit_code = (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) ? 0 : code;
		say("%s stopped (status %d)", s->conf->argv[0], code);
		return;
	}
	bool failed = code != 0;
	bool restart = s->conf->restart == INIT_RESTART_ALWAYS || (s->conf->restart == INIT_RESTART_ON_FAILURE && failed);
	s->exit_code = code;
	if (!restart) {
		say("%s exited (status %d), restart=%s: done", s->conf->argv[0], code,
		    init_restart_to_string(s->conf->restart));
		s->stopping = true;
		return;
	}
	if (s->restarts >= s->conf->restart_limit) {
		say("%s exited (status %d): restart limit %llu reached, giving up", s->conf->argv[0], code,
		    (unsigned long long)s->conf->restart_limit);
		if (s->exit_code == 0) s->exit_code = 1;
		s->stopping = true;
		return;
	}
	s->restarts++;
	say("%s exited (status %d): restart %llu/%llu in %llu ms", s->conf->argv[0], code,
	    (unsigned long long)s->restarts, (unsigned long long)s->conf->restart_limit,
	    (unsigned long long)s->delay_ms);
	s->restart_at = now_monotonic_usec() + s->delay_ms * 1000;
	s->delay_ms = MIN(s->delay_ms * 2, s->conf->restart_delay_max_ms);
}

static void reap(struct supervisor *s) {
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0) return;
		if (pid == s->main_pid) main_exited(s, status);
	}
}

static void request_stop(struct supervisor *s, int sig) {
	if (s->stopping && s->kill_at) return; /* already forwarding */
	say("received %s: stopping", strsignal(sig));
	s->stopping = true;
	s->restart_at = 0;
	if (s->main_pid > 0) {
		kill(s->main_pid, SIGTERM);
		s->kill_at = now_monotonic_usec() + s->conf->stop_timeout_ms * 1000;
	}
}

static int supervise(struct supervisor *s, const sigset_t *blocked) {
	launch(s, blocked);
	while (s->main_pid > 0 || s->restart_at) {
		uint64_t now = now_monotonic_usec();
		uint64_t deadline = 0;
		if (s->restart_at) deadline = s->restart_at;
		if (s->kill_at && (!deadline || s->kill_at < deadline)) deadline = s->kill_at;
		if (deadline && deadline <= now) {
			if (s->kill_at && s->kill_at <= now) {
				say("%s outlived stop-timeout-ms: SIGKILL", s->conf->argv[0]);
				kill(-s->main_pid, SIGKILL);
				kill(s->main_pid, SIGKILL);
				s->kill_at = 0;
			}
			if (s->restart_at && s->restart_at <= now) {
				s->restart_at = 0;
				launch(s, blocked);
			}
			continue;
		}
		siginfo_t si;
		int sig;
		if (deadline) {
			uint64_t left = deadline - now;
			struct timespec ts = {.tv_sec = (time_t)(left / 1000000), .tv_nsec = (long)(left % 1000000) * 1000};
			sig = sigtimedwait(blocked, &si, &ts);
		} else {
			sig = sigwaitinfo(blocked, &si);
		}
		if (sig < 0) continue; /* EAGAIN (deadline) or EINTR */
		switch (sig) {
		case SIGCHLD:
			reap(s);
			break;
		case SIGTERM:
		case SIGINT:  /* Ctrl-Alt-Del once PID 1 disabled the kernel's own reboot */
		case SIGPWR:
		case SIGHUP:
			request_stop(s, sig);
			break;
		default:
			break;
		}
	}
	return s->exit_code;
}

/* PID 1's last duty: everything else gets SIGTERM then SIGKILL, filesystems are synced, power off. */
static _Noreturn void power_off(void) {
	say("powering off");
	kill(-1, SIGTERM);
	uint64_t until = now_monotonic_usec() + FINAL_KILL_WAIT_MS * 1000;
	while (now_monotonic_usec() < until) {
		pid_t p = waitpid(-1, NULL, WNOHANG);
		if (p < 0 && errno == ECHILD) break;
		if (p <= 0) usleep(10000);
	}
	kill(-1, SIGKILL);
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
	sync();
	reboot(RB_POWER_OFF);
	/* PID 1 may not exit (the kernel would panic); if power-off failed there is nothing better to do. */
	for (;;) pause();
}

static void usage(FILE *f) {
	fprintf(f, "usage: eml-init [--config FILE] [--no-heartbeat] [--version]\n"
		   "Minimal PID 1 for the enclave; see eml-init(8).\n");
}

int main(int argc, char **argv) {
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"no-heartbeat", no_argument, NULL, 'H'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	const char *config = DEFAULT_CONFIG;
	bool no_heartbeat = false;
	bool pid1 = getpid() == 1;
	int c;
	/* As PID 1 the kernel passes its unknown cmdline words as arguments: ignore what is not ours. */
	if (pid1) opterr = 0;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) >= 0) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'H': no_heartbeat = true; break;
		case 'V': printf("eml-init %s\n", EML_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default:
			if (!pid1) {
				usage(stderr);
				return 2;
			}
		}
	}

	/* Signals are only ever taken synchronously (sigtimedwait): no handlers, no races with reaping. */
	sigset_t blocked;
	sigemptyset(&blocked);
	static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGPWR, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT};
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) sigaddset(&blocked, sigs[i]);
	sigprocmask(SIG_BLOCK, &blocked, NULL);

	if (pid1) {
		ensure_stdio();
		umask(022);
		if (chdir("/") < 0) say("chdir /: %s", strerror(errno));
		(void)mount_api_filesystems();
		ensure_stdio();
		/* Ctrl-Alt-Del (or the VMM's equivalent) becomes SIGINT to us: a clean, supervised stop. */
		if (reboot(RB_DISABLE_CAD) < 0) say("disable Ctrl-Alt-Del: %s", strerror(errno));
		(void)load_module_dir();
		(void)load_nsm_module();
		(void)seed_rng();
	} else if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		say("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	}

	struct init_conf conf;
	char err[256];
	int r = init_conf_load(config, &conf, err, sizeof err);
	if (r < 0) {
		say("configuration %s: %s", config, err);
		if (pid1) power_off();
		return 2;
	}

	if (pid1 && conf.heartbeat && !no_heartbeat) {
		r = heartbeat();
		if (r < 0) {
			say("heartbeat to vsock %d:%d: %s", HEARTBEAT_CID, HEARTBEAT_PORT, strerror(-r));
			init_conf_done(&conf);
			power_off();
		}
		say("heartbeat acknowledged");
	}

	struct supervisor s = {
		.conf = &conf,
		.delay_ms = conf.restart_delay_ms,
	};
	int code = supervise(&s, &blocked);
	init_conf_done(&conf);
	if (pid1) power_off();
	return code;
}
