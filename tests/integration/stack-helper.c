/* stack-helper: two small tools of the whole-system tests (tests/integration/lib/stack.sh).
 *
 *   stack-helper spy LISTEN TARGET DIR
 *       a recording proxy: every connection accepted on LISTEN is forwarded to TARGET, and every byte crossing
 *       it is appended to DIR/N.up (towards TARGET) and DIR/N.down (back), N counting connections from 1.
 *       The tests search these recordings for what must never cross a relay (text, vectors, keys).
 *   stack-helper hold LISTEN PIDFILE FDNAME -- PROGRAM ARGS...
 *       a service manager's socket unit in miniature: binds LISTEN once, runs PROGRAM with the listener
 *       passed as in socket activation (LISTEN_FDS=1, LISTEN_PID, LISTEN_FDNAMES=FDNAME), writes the
 *       service's pid to PIDFILE, and starts it again whenever it exits (Restart=always), until SIGTERM.
 *       The listener stays open across restarts, so clients queue in its backlog instead of being refused.
 *       (systemd-socket-activate cannot do this: it execs into the service, which then owns the listener.)
 *
 * Both print "ready" on stdout once listening. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr.h"
#include "macro.h"
#include "socket.h"

#define SPY_BUF (64 * 1024)

static void __attribute__((noreturn)) die(const char *what, int r) {
	fprintf(stderr, "stack-helper: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(1);
}

static int listen_on(const char *s) {
	struct eml_addr a;
	int fd, r;
	if ((r = addr_parse(s, &a)) < 0) die(s, r);
	if ((r = socket_listen(&a, 512, &fd)) < 0) die("listen", r);
	return fd;
}

/* ---- spy ---- */

struct spy_conn {
	int client, upstream;
	FILE *up, *down;
};

/* Copy what is readable on from to to, recording it; 0 on EOF, 1 on data, negative errno on failure. */
static int spy_copy(int from, int to, FILE *rec, uint8_t *buf) {
	ssize_t n = read(from, buf, SPY_BUF);
	if (n < 0) return errno == EAGAIN || errno == EINTR ? 1 : -errno;
	if (n == 0) return 0;
	if (fwrite(buf, 1, (size_t)n, rec) != (size_t)n || fflush(rec) != 0) return -EIO;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				struct pollfd p = {.fd = to, .events = POLLOUT};
				(void)poll(&p, 1, 1000);
				continue;
			}
			return -errno;
		}
		off += w;
	}
	return 1;
}

static void *spy_thread(void *arg) {
	struct spy_conn *c = arg;
	uint8_t *buf = malloc(SPY_BUF);
	bool open_up = true, open_down = true;
	while (buf && (open_up || open_down)) {
		struct pollfd p[2] = {{.fd = open_up ? c->client : -1, .events = POLLIN},
				      {.fd = open_down ? c->upstream : -1, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR) continue;
			break;
		}
		if (p[0].revents) {
			int r = spy_copy(c->client, c->upstream, c->up, buf);
			if (r < 0) break;
			if (r == 0) {
				open_up = false;
				shutdown(c->upstream, SHUT_WR);
			}
		}
		if (p[1].revents) {
			int r = spy_copy(c->upstream, c->client, c->down, buf);
			if (r < 0) break;
			if (r == 0) {
				open_down = false;
				shutdown(c->client, SHUT_WR);
			}
		}
	}
	free(buf);
	close(c->client);
	close(c->upstream);
	fclose(c->up);
	fclose(c->down);
	free(c);
	return NULL;
}

static void __attribute__((noreturn)) cmd_spy(const char *listen_s, const char *target_s, const char *dir) {
	struct eml_addr target;
	int r;
	if ((r = addr_parse(target_s, &target)) < 0) die(target_s, r);
	int lfd = listen_on(listen_s);
	fd_set_nonblock(lfd, 0);
	printf("ready\n");
	fflush(stdout);
	for (unsigned n = 1;; n++) {
		int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) continue;
			die("accept", -errno);
		}
		int ufd;
		if ((r = socket_connect_deadline(&target, 5 * 1000000ULL, &ufd)) < 0) {
			/* The target is down: the client sees the same EOF it would see without us. */
			close(cfd);
			continue;
		}
		char path[4096];
		struct spy_conn *c = calloc(1, sizeof(*c));
		if (!c) die("calloc", -ENOMEM);
		c->client = cfd;
		c->upstream = ufd;
		snprintf(path, sizeof(path), "%s/%u.up", dir, n);
		c->up = fopen(path, "we");
		snprintf(path, sizeof(path), "%s/%u.down", dir, n);
		c->down = fopen(path, "we");
		if (!c->up || !c->down) die("record file", -errno);
		fd_set_nonblock(cfd, 1);
		fd_set_nonblock(ufd, 1);
		pthread_t t;
		if ((r = pthread_create(&t, NULL, spy_thread, c)) != 0) die("pthread_create", -r);
		pthread_detach(t);
	}
}

/* ---- hold ---- */

static volatile sig_atomic_t stopping;
static void on_term(int sig) { stopping = 1; }

static int cmd_hold(const char *listen_s, const char *pidfile, const char *fdname, char **argv) {
	int lfd = listen_on(listen_s);
	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("ready\n");
	fflush(stdout);
	while (!stopping) {
		pid_t pid = fork();
		if (pid < 0) die("fork", -errno);
		if (pid == 0) {
			char buf[32];
			/* dup2 clears close-on-exec, except when lfd already is 3 */
			if (lfd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(lfd, 3) < 0) _exit(127);
			if (lfd != 3) close(lfd);
			snprintf(buf, sizeof(buf), "%d", (int)getpid());
			setenv("LISTEN_PID", buf, 1);
			setenv("LISTEN_FDS", "1", 1);
			setenv("LISTEN_FDNAMES", fdname, 1);
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			execv(argv[0], argv);
			_exit(127);
		}
		FILE *f = fopen(pidfile, "we");
		if (f) {
			fprintf(f, "%d\n", (int)pid);
			fclose(f);
		}
		int status;
		while (waitpid(pid, &status, 0) < 0) {
			if (errno != EINTR) die("waitpid", -errno);
			if (stopping) kill(pid, SIGTERM);
		}
		if (!stopping) usleep(50 * 1000); /* RestartSec= in miniature */
	}
	return 0;
}

int main(int argc, char **argv) {
	signal(SIGPIPE, SIG_IGN);
	if (argc == 5 && strcmp(argv[1], "spy") == 0) cmd_spy(argv[2], argv[3], argv[4]);
	if (argc >= 7 && strcmp(argv[1], "hold") == 0 && strcmp(argv[5], "--") == 0)
		return cmd_hold(argv[2], argv[3], argv[4], argv + 6);
	fprintf(stderr, "usage: stack-helper spy LISTEN TARGET DIR\n"
			"       stack-helper hold LISTEN PIDFILE FDNAME -- PROGRAM ARGS...\n");
	return 2;
}
