/* acceptor.h: the accepting side of a relay daemon on sd-event. Owns the listening sources, the count of open
 * connections against a cap, pausing and resuming the listeners (cap reached, or out of fds/memory: retried
 * after a short delay rather than spinning), and the drain on stop: listeners closed, the loop exits when the
 * last connection goes or a deadline passes. The connections themselves stay with the daemon, which reports
 * each one it keeps (acceptor_conn_opened) and each one it frees (acceptor_conn_closed). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

typedef struct Acceptor Acceptor;

/* Called with each accepted socket (non-blocking, close-on-exec); the callee owns fd from then on. */
typedef void (*acceptor_handler_t)(Acceptor *a, int fd, void *userdata);

typedef struct AcceptorConfig {
	uint64_t max_connections; /* accepting pauses while this many are open */
	uint64_t retry_usec;      /* pause after EMFILE/ENFILE/ENOBUFS/ENOMEM before accepting again */
	const char *noun;         /* what a connection is called in log messages, e.g. "connection(s)" */
	acceptor_handler_t on_accept;
	void *userdata;
} AcceptorConfig;

/* Watch fds (listening sockets; the acceptor owns and closes them, also on failure). cfg->noun must outlive it. */
int acceptor_new(sd_event *event, const int *fds, size_t n_fds, const AcceptorConfig *cfg, Acceptor **ret);
Acceptor *acceptor_free(Acceptor *a);

/* The daemon keeps a connection / has freed one. Closing one may resume accepting, or when stopping, end the
 * loop once none is left. */
void acceptor_conn_opened(Acceptor *a);
void acceptor_conn_closed(Acceptor *a);

uint64_t acceptor_connections(const Acceptor *a);
bool acceptor_paused(const Acceptor *a);
bool acceptor_stopping(const Acceptor *a);

/* Stop accepting for good (listeners closed) and drain: the event loop exits (code 0) as soon as no connection
 * is open, or after timeout_usec whatever is left. Repeated calls do nothing. */
int acceptor_stop(Acceptor *a, uint64_t timeout_usec);
