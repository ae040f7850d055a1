/* session-io.c: blocking session drivers over a socket (see session-io.h). */
#include "session-io.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "macro.h"
#include "util.h"

/* What a pump needs of either machine. */
struct side {
	void *m;
	const uint8_t *(*pending)(void *m, size_t *ret_len);
	void (*advance)(void *m, size_t n);
	int (*feed)(void *m, const void *buf, size_t len, uint64_t now);
	int (*eof)(void *m);
	int (*tick)(void *m, uint64_t now);
	uint64_t (*deadline)(void *m);
};

static const uint8_t *c_pending(void *m, size_t *n) { return session_client_pending_output(m, n); }
static void c_advance(void *m, size_t n) { session_client_output_advance(m, n); }
static int c_feed(void *m, const void *b, size_t n, uint64_t t) { return session_client_feed(m, b, n, t); }
static int c_eof(void *m) { return session_client_eof(m); }
static int c_tick(void *m, uint64_t t) { return session_client_tick(m, t); }
static uint64_t c_deadline(void *m) { return session_client_next_deadline(m); }
static const uint8_t *s_pending(void *m, size_t *n) { return session_server_pending_output(m, n); }
static void s_advance(void *m, size_t n) { session_server_output_advance(m, n); }
static int s_feed(void *m, const void *b, size_t n, uint64_t t) { return session_server_feed(m, b, n, t); }
static int s_eof(void *m) { return session_server_eof(m); }
static int s_tick(void *m, uint64_t t) { return session_server_tick(m, t); }
static uint64_t s_deadline(void *m) { return session_server_next_deadline(m); }

static struct side client_side(SessionClient *c) {
	return (struct side){c, c_pending, c_advance, c_feed, c_eof, c_tick, c_deadline};
}
static struct side server_side(SessionServer *s) {
	return (struct side){s, s_pending, s_advance, s_feed, s_eof, s_tick, s_deadline};
}

/* Write all pending output (waiting for POLLOUT as needed). */
static int flush(struct side *x, int fd) {
	size_t n;
	const uint8_t *p;
	while ((p = x->pending(x->m, &n)) && n > 0) {
		ssize_t w = write(fd, p, n);
		if (w > 0) {
			x->advance(x->m, (size_t)w);
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			if (poll(&pfd, 1, 10000) <= 0)
				return -ETIMEDOUT;
			continue;
		}
		return w < 0 ? negerrno() : -EPIPE;
	}
	return 0;
}

/* Flush, then wait for input until the deadline and feed it: 0 progress, 1 end of stream, < 0 failure. */
static int step(struct side *x, int fd) {
	int r = flush(x, fd);
	if (r < 0)
		return r;
	uint64_t now = now_monotonic_usec(), dl = x->deadline(x->m);
	int timeout = -1;
	if (dl != UINT64_MAX)
		timeout = dl <= now ? 0 : (int)MIN((dl - now + 999) / 1000, (uint64_t)INT32_MAX);
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	r = poll(&pfd, 1, timeout);
	if (r < 0)
		return errno == EINTR ? 0 : negerrno();
	if (r == 0) {
		r = x->tick(x->m, now_monotonic_usec());
		(void)flush(x, fd); /* the ERROR for the peer */
		return r < 0 ? r : 0;
	}
	uint8_t buf[16384];
	ssize_t n = read(fd, buf, sizeof buf);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : negerrno();
	if (n == 0) {
		r = x->eof(x->m);
		return r < 0 ? r : 1;
	}
	r = x->feed(x->m, buf, (size_t)n, now_monotonic_usec());
	wipe(buf, (size_t)n);
	if (r < 0)
		(void)flush(x, fd);
	return r;
}

int session_client_handshake_fd(SessionClient *c, int fd) {
	struct side x = client_side(c);
	for (;;) {
		SessionState st = session_client_status(c)->state;
		if (st == SESSION_OPEN)
			return flush(&x, fd);
		if (st != SESSION_HANDSHAKE)
			return -EPIPE;
		int r = step(&x, fd);
		if (r < 0)
			return r;
		if (r == 1)
			return -EPIPE;
	}
}

int session_client_call_fd(SessionClient *c, int fd, const void *req, size_t len, uint8_t **ret, size_t *ret_len) {
	struct side x = client_side(c);
	uint32_t seq, got;
	int r = session_client_request(c, req, len, now_monotonic_usec(), &seq);
	if (r < 0)
		return r;
	for (;;) {
		uint8_t *p;
		size_t n;
		while (session_client_next_response(c, &got, &p, &n) == 1) {
			if (got == seq) {
				*ret = p, *ret_len = n;
				return 0;
			}
			free_secret(p, n); /* an answer to an earlier call nobody waited for */
		}
		if (session_client_status(c)->state != SESSION_OPEN)
			return -EPIPE;
		r = step(&x, fd);
		if (r < 0)
			return r;
		if (r == 1)
			return -EPIPE;
	}
}

int session_client_close_fd(SessionClient *c, int fd) {
	struct side x = client_side(c);
	(void)session_client_close(c);
	return flush(&x, fd);
}

int session_server_serve_fd(SessionServer *s, int fd, session_handler_t handler, void *userdata) {
	struct side x = server_side(s);
	for (;;) {
		uint32_t seq;
		uint8_t *req, *resp = NULL;
		size_t len, resp_len = 0;
		while (session_server_next_request(s, &seq, &req, &len) == 1) {
			int r = handler(userdata, seq, req, len, &resp, &resp_len);
			free_secret(req, len);
			if (r < 0) {
				session_server_fail(s, SESSION_INTERNAL, "the request could not be served");
				(void)flush(&x, fd);
				return r;
			}
			r = session_server_respond(s, seq, resp, resp_len, now_monotonic_usec());
			free_secret(resp, resp_len);
			if (r < 0) {
				(void)flush(&x, fd);
				return r;
			}
		}
		const SessionStatus *st = session_server_status(s);
		if (st->state == SESSION_CLOSED) {
			(void)flush(&x, fd);
			return 0;
		}
		if (st->state == SESSION_FAILED) {
			(void)flush(&x, fd);
			return -EPIPE;
		}
		int r = step(&x, fd);
		if (r < 0)
			return r;
		if (r == 1)
			return session_server_status(s)->state == SESSION_CLOSED ? 0 : -EPIPE;
	}
}
