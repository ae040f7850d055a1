/* socket.h: listening and connecting sockets for eml_addr (all non-blocking and close-on-exec), connect with a
 * deadline, and listeners taken from systemd socket activation or from --listen addresses. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* Bind and listen. A stale unix socket file (nobody accepting) is replaced; a live one gives -EADDRINUSE. */
int socket_listen(const struct eml_addr *a, int backlog, int *ret_fd);

/* Start a non-blocking connect to a numeric/unix/vsock address. Returns 0 (connected) or -EINPROGRESS with
 * *ret_fd set (wait for POLLOUT, then socket_connect_finish), or a negative errno with no fd. */
int socket_connect_start(const struct sockaddr *sa, socklen_t len, int *ret_fd);
/* After POLLOUT: 0 if the connect succeeded, else the negative errno of the failure (SO_ERROR). */
int socket_connect_finish(int fd);

/* Resolve (names via getaddrinfo) and connect, trying each address, within timeout_usec in total.
 * Returns a connected non-blocking fd in *ret_fd, or -ETIMEDOUT / the last connect error. */
int socket_connect_deadline(const struct eml_addr *a, uint64_t timeout_usec, int *ret_fd);

/* The address a listening/connected socket is bound to (useful after binding port 0). */
int socket_local_address(int fd, char *buf, size_t len);
int socket_peer_address(int fd, char *buf, size_t len);

/* Listeners for one role of a daemon. When socket-activated (LISTEN_FDS), take the fds whose LISTEN_FDNAMES
 * entry equals name; if none carries that name and take_unnamed is set, take every passed fd (a unit without
 * FileDescriptorName=). Otherwise bind each of listen_addrs. Returns the count (>= 1), -ENOENT when there is
 * nothing to listen on, or the error of a failed bind. *ret_fds is malloc'ed. *ret_activated tells which path. */
int listeners_get(const char *name, int take_unnamed, char *const *listen_addrs, size_t n_addrs, int **ret_fds,
		  size_t *ret_n, int *ret_activated);

/* Set/clear O_NONBLOCK. */
int fd_set_nonblock(int fd, int on);
