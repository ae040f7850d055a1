/* acceptor.c: listeners, connection cap, pause/resume and drain-on-stop for relay daemons (see acceptor.h). */
#include "acceptor.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Accepts per wake-up: other sources get their turn under a connection storm. */
#define ACCEPT_BATCH 64

struct Acceptor {
	sd_event *event;
	sd_event_source **listeners;
	size_t n_listeners;
	sd_event_source *resume_timer, *shutdown_timer;
	AcceptorConfig cfg;
	uint64_t n_conns;
	bool paused, stopping;
};

static void set_listening(Acceptor *a, bool on) {
	for (size_t i = 0; i < a->n_listeners; i++)
		sd_event_source_set_enabled(a->listeners[i], on ? SD_EVENT_ON : SD_EVENT_OFF);
	a->paused = !on;
}

static void pause_accepting(Acceptor *a, const char *why, bool retry) {
	if (!a->paused)
		log_struct(LOG_WARNING, EML_MSG_ACCEPT_PAUSED, "MESSAGE=accepting paused: %s", why, "EML_REASON=%s", why,
			   "EML_CONNECTIONS=%" PRIu64, a->n_conns, NULL);
	set_listening(a, false);
	if (retry) {
		sd_event_source_set_time(a->resume_timer, now_monotonic_usec() + a->cfg.retry_usec);
		sd_event_source_set_enabled(a->resume_timer, SD_EVENT_ONESHOT);
	}
}

static int on_resume(sd_event_source *src, uint64_t usec, void *userdata) {
	Acceptor *a = userdata;
	if (a->stopping || a->n_conns >= a->cfg.max_connections)
		return 0; /* acceptor_conn_closed resumes */
	set_listening(a, true);
	return 0;
}

static int on_listener(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
	Acceptor *a = userdata;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		if (a->n_conns >= a->cfg.max_connections) {
			pause_accepting(a, "connection cap reached", false);
			return 0;
		}
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Never spin on a full fd table: stop listening for a moment. */
				pause_accepting(a, strerror(errno), true);
				return 0;
			}
			continue; /* ECONNABORTED and friends concern that one peer */
		}
		a->cfg.on_accept(a, cfd, a->cfg.userdata);
		if (a->stopping)
			return 0; /* the handler stopped us: the listeners are gone */
	}
	return 0;
}

Acceptor *acceptor_free(Acceptor *a) {
	if (!a)
		return NULL;
	for (size_t i = 0; i < a->n_listeners; i++)
		sd_event_source_disable_unref(a->listeners[i]);
	free(a->listeners);
	sd_event_source_disable_unref(a->resume_timer);
	sd_event_source_disable_unref(a->shutdown_timer);
	sd_event_unref(a->event);
	free(a);
	return NULL;
}

int acceptor_new(sd_event *event, const int *fds, size_t n_fds, const AcceptorConfig *cfg, Acceptor **ret) {
	int r = -EINVAL;
	size_t i = 0;
	Acceptor *a = NULL;
	if (!event || (!fds && n_fds) || !cfg || !cfg->on_accept || !cfg->noun || !ret)
		goto fail;
	r = -ENOMEM;
	a = calloc(1, sizeof(*a));
	if (!a || (n_fds && !(a->listeners = calloc(n_fds, sizeof(*a->listeners)))))
		goto fail;
	a->event = sd_event_ref(event);
	a->cfg = *cfg;
	for (; i < n_fds; i++) {
		r = sd_event_add_io(event, &a->listeners[i], fds[i], EPOLLIN, on_listener, a);
		if (r < 0)
			goto fail;
		a->n_listeners++;
		sd_event_source_set_io_fd_own(a->listeners[i], 1);
	}
	r = sd_event_add_time(event, &a->resume_timer, CLOCK_MONOTONIC, 0, 0, on_resume, a);
	if (r < 0)
		goto fail;
	sd_event_source_set_enabled(a->resume_timer, SD_EVENT_OFF);
	*ret = a;
	return 0;
fail:
	for (; i < n_fds; i++) /* those no source owns yet */
		if (fds && fds[i] >= 0)
			close(fds[i]);
	acceptor_free(a);
	return r;
}

void acceptor_conn_opened(Acceptor *a) {
	a->n_conns++;
}

void acceptor_conn_closed(Acceptor *a) {
	if (a->n_conns > 0)
		a->n_conns--;
	if (a->stopping) {
		if (a->n_conns == 0)
			sd_event_exit(a->event, 0);
	} else if (a->paused && a->n_conns < a->cfg.max_connections)
		set_listening(a, true);
}

uint64_t acceptor_connections(const Acceptor *a) {
	return a->n_conns;
}

bool acceptor_paused(const Acceptor *a) {
	return a->paused;
}

bool acceptor_stopping(const Acceptor *a) {
	return a->stopping;
}

static int on_shutdown_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
	Acceptor *a = userdata;
	log_struct(LOG_NOTICE, EML_MSG_STOPPING, "MESSAGE=shutdown deadline reached, closing %" PRIu64 " %s",
		   a->n_conns, a->cfg.noun, "EML_CONNECTIONS=%" PRIu64, a->n_conns, NULL);
	sd_event_exit(a->event, 0);
	return 0;
}

int acceptor_stop(Acceptor *a, uint64_t timeout_usec) {
	if (a->stopping)
		return 0;
	a->stopping = true;
	for (size_t i = 0; i < a->n_listeners; i++)
		a->listeners[i] = sd_event_source_disable_unref(a->listeners[i]);
	a->n_listeners = 0;
	sd_event_source_set_enabled(a->resume_timer, SD_EVENT_OFF);
	if (a->n_conns == 0)
		return sd_event_exit(a->event, 0);
	return sd_event_add_time_relative(a->event, &a->shutdown_timer, CLOCK_MONOTONIC, timeout_usec, 0,
					  on_shutdown_timeout, a);
}
