/* socket.c: listen/connect for eml_addr, connect deadlines, systemd socket activation (see socket.h). */
#include "socket.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "macro.h"
#include "util.h"

int fd_set_nonblock(int fd, int on) {
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0) return negerrno();
	int nfl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	if (nfl != fl && fcntl(fd, F_SETFL, nfl) < 0) return negerrno();
	return 0;
}

/* A unix socket file that nobody accepts on is left over from a dead process and may be replaced. */
static int unix_path_is_stale(const struct sockaddr *sa, socklen_t len) {
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) return 0;
	return connect(fd, sa, len) < 0 && errno == ECONNREFUSED;
}

/* Bind a filesystem unix socket so that its path appears only once it is listening: bind a temporary name,
 * listen, then rename into place. Whoever waits for the path to exist can then connect at once. A live socket
 * at the path is never replaced; a stale one (nobody accepting) is; anything else is left alone. */
static int listen_unix_path(int fd, const struct eml_addr *a, const struct sockaddr_un *un, socklen_t len,
			    int backlog) {
	struct stat st = {0};
	if (lstat(a->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode) || !unix_path_is_stale((const struct sockaddr *)un, len)) return -EADDRINUSE;
	}
	struct sockaddr_un tmp = {.sun_family = AF_UNIX};
	int n = snprintf(tmp.sun_path, sizeof tmp.sun_path, "%s.%d.tmp", a->path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof tmp.sun_path) {
		/* no room for a temporary name: bind in place (a short window before listen) */
		if (st.st_mode && S_ISSOCK(st.st_mode)) unlink(a->path);
		if (bind(fd, (const struct sockaddr *)un, len) < 0) return negerrno();
		return listen(fd, backlog) < 0 ? negerrno() : 0;
	}
	unlink(tmp.sun_path);
	if (bind(fd, (struct sockaddr *)&tmp, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1)) < 0)
		return negerrno();
	int r = 0;
	if (listen(fd, backlog) < 0 || rename(tmp.sun_path, a->path) < 0) r = negerrno();
	if (r < 0) unlink(tmp.sun_path);
	return r;
}

int socket_listen(const struct eml_addr *a, int backlog, int *ret_fd) {
	struct sockaddr_storage ss;
	socklen_t len;
	int r = addr_to_sockaddr(a, &ss, &len);
	if (r == -EADDRNOTAVAIL) { /* a tcp name: listen on its first address */
		r = addr_resolve(a, &ss, &len, 1);
		if (r < 0) return r;
	} else if (r < 0)
		return r;
	_cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) return negerrno();
	if (backlog <= 0) backlog = SOMAXCONN;
	if (ss.ss_family == AF_UNIX && a->path[0] != '@') {
		r = listen_unix_path(fd, a, (struct sockaddr_un *)&ss, len, backlog);
		if (r < 0) return r;
		*ret_fd = TAKE_FD(fd);
		return 0;
	}
	int one = 1, zero = 0;
	if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ss.ss_family == AF_INET6 && a->host[0] == 0) /* "tcp:*:PORT" means both families */
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) return negerrno();
	if (listen(fd, backlog) < 0) return negerrno();
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int socket_connect_start(const struct sockaddr *sa, socklen_t len, int *ret_fd) {
	_cleanup_close_ int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) return negerrno();
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	if (connect(fd, sa, len) < 0) {
		int r = negerrno();
		/* unix sockets say EAGAIN when the backlog is full: treat like a pending connect */
		if (r != -EINPROGRESS && r != -EAGAIN) return r;
		*ret_fd = TAKE_FD(fd);
		return -EINPROGRESS;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int socket_connect_finish(int fd) {
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return negerrno();
	return err ? -err : 0;
}

static int connect_one(const struct sockaddr *sa, socklen_t len, uint64_t deadline, int *ret_fd) {
	_cleanup_close_ int fd = -1;
	int r = socket_connect_start(sa, len, &fd);
	if (r == 0) {
		*ret_fd = TAKE_FD(fd);
		return 0;
	}
	if (r != -EINPROGRESS) return r;
	for (;;) {
		uint64_t now = now_monotonic_usec();
		if (now >= deadline) return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		uint64_t ms = (deadline - now + 999) / 1000;
		int n = poll(&p, 1, ms > INT32_MAX ? INT32_MAX : (int)ms);
		if (n < 0) {
			if (errno == EINTR) continue;
			return negerrno();
		}
		if (n == 0) return -ETIMEDOUT;
		break;
	}
	if (sa->sa_family == AF_UNIX) {
		/* A unix connect that said EAGAIN never completes by itself: try again now there is room. */
		if (connect(fd, sa, len) < 0 && errno != EISCONN) return negerrno();
	} else {
		r = socket_connect_finish(fd);
		if (r < 0) return r;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int socket_connect_deadline(const struct eml_addr *a, uint64_t timeout_usec, int *ret_fd) {
	uint64_t deadline = now_monotonic_usec() + timeout_usec;
	struct sockaddr_storage ss[8];
	socklen_t lens[8];
	int n = addr_resolve(a, ss, lens, (int)ARRAY_SIZE(ss));
	if (n < 0) return n;
	int r = -ECONNREFUSED;
	for (int i = 0; i < n; i++) {
		r = connect_one((struct sockaddr *)&ss[i], lens[i], deadline, ret_fd);
		if (r == 0 || r == -ETIMEDOUT) return r;
	}
	return r;
}

/* A unix listener was bound as PATH.PID.tmp and renamed to PATH (listen_unix_path); the kernel still reports
 * the bound name, so give back the name it is reachable by. */
static void strip_tmp_suffix(char *buf) {
	if (strncmp(buf, "unix:", 5) != 0) return;
	size_t n = strlen(buf);
	if (n < 6 || strcmp(buf + n - 4, ".tmp") != 0) return;
	char *p = buf + n - 4;
	char *digits_end = p;
	while (p > buf && p[-1] >= '0' && p[-1] <= '9') p--;
	if (p == digits_end || p <= buf || p[-1] != '.') return;
	p[-1] = 0;
}

static int format_name(int fd, int peer, char *buf, size_t len) {
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if ((peer ? getpeername(fd, (struct sockaddr *)&ss, &sl) : getsockname(fd, (struct sockaddr *)&ss, &sl)) < 0)
		return negerrno();
	int r = addr_format_sockaddr((struct sockaddr *)&ss, sl, buf, len);
	if (r == 0 && !peer) strip_tmp_suffix(buf);
	return r;
}

int socket_local_address(int fd, char *buf, size_t len) { return format_name(fd, 0, buf, len); }
int socket_peer_address(int fd, char *buf, size_t len) { return format_name(fd, 1, buf, len); }

int listeners_get(const char *name, int take_unnamed, char *const *listen_addrs, size_t n_addrs, int **ret_fds,
		  size_t *ret_n, int *ret_activated) {
	char **names = NULL;
	int n = sd_listen_fds_with_names(0, &names);
	if (n < 0) return n;
	_cleanup_free_ int *fds = calloc((size_t)(n > 0 ? n : 0) + n_addrs + 1, sizeof(int));
	if (!fds) {
		for (int i = 0; names && i < n; i++) free(names[i]);
		free(names);
		return -ENOMEM;
	}
	size_t count = 0;
	if (n > 0) {
		for (int i = 0; i < n; i++)
			if (names && names[i] && strcmp(names[i], name) == 0) fds[count++] = SD_LISTEN_FDS_START + i;
		if (count == 0 && take_unnamed)
			for (int i = 0; i < n; i++) fds[count++] = SD_LISTEN_FDS_START + i;
		for (int i = 0; names && i < n; i++) free(names[i]);
		free(names);
		for (size_t i = 0; i < count; i++) {
			(void)fd_set_nonblock(fds[i], 1);
			(void)fcntl(fds[i], F_SETFD, FD_CLOEXEC);
		}
		if (count > 0 || n_addrs == 0) {
			if (count == 0) return -ENOENT;
			*ret_fds = TAKE_PTR(fds);
			*ret_n = count;
			if (ret_activated) *ret_activated = 1;
			return (int)count;
		}
	}
	free(names);
	for (size_t i = 0; i < n_addrs; i++) {
		struct eml_addr a;
		int r = addr_parse(listen_addrs[i], &a);
		if (r >= 0) r = socket_listen(&a, SOMAXCONN, &fds[count]);
		if (r < 0) {
			for (size_t j = 0; j < count; j++) close(fds[j]);
			return r;
		}
		count++;
	}
	if (count == 0) return -ENOENT;
	*ret_fds = TAKE_PTR(fds);
	*ret_n = count;
	if (ret_activated) *ret_activated = 0;
	return (int)count;
}
