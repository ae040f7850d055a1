/* pump.c: one direction of a proxied connection; see pump.h. */
#include "pump.h"

#include <fcntl.h>
#include <sys/socket.h>

#include "macro.h"
#include "util.h"

#define PUMP_BUFFER_DEFAULT (16u * 1024)
/* 1 MiB, the default /proc/sys/fs/pipe-max-size: a large frame crosses in fewer, larger splices than with
 * socket-proxyd's 256 KiB. Pipes are made only for connections that carry large frames, and where the
 * per-user pipe budget is spent F_SETPIPE_SZ fails and the pipe keeps the size it has. */
#define PUMP_PIPE_DEFAULT (1024u * 1024)
/* Below this, a payload goes through the buffer with its header: two syscalls per frame either way, and
 * copying a few KiB is cheaper than splice's page bookkeeping. */
#define PUMP_SPLICE_MIN (64u * 1024)

struct pump {
	int src, dst;
	struct pump_config c;
	uint8_t *buf; /* FRAME_HEADER_SIZE headroom + buffer_size; see pump_read_buffer */
	size_t out_off, out_len;
	int pipe[2];
	size_t pipe_fill, pipe_cap;
	bool no_splice, src_eof, stopped, dst_shut;
	bool drained; /* the last read returned less than asked: src is very likely empty now */
	bool big; /* the last frame was large enough to splice: read the next header alone */
	/* frames mode */
	uint8_t hdr[FRAME_HEADER_SIZE];
	size_t hdr_have;
	uint64_t frame_left;
	uint32_t last_seq;
	uint8_t last_type;
	bool in_extract;
	struct frame_header ext_h;
	uint8_t *ext;
	size_t ext_have;

	uint64_t bytes;
	int error;
	enum pump_fail fail;
};

int pump_new(int src, int dst, const struct pump_config *c, struct pump **ret) {
	struct pump *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->src = src;
	p->dst = dst;
	p->c = *c;
	if (!p->c.buffer_size)
		p->c.buffer_size = PUMP_BUFFER_DEFAULT;
	if (!p->c.pipe_size)
		p->c.pipe_size = PUMP_PIPE_DEFAULT;
	if (!p->c.max_payload)
		p->c.max_payload = FRAME_MAX_PAYLOAD;
	p->pipe[0] = p->pipe[1] = -1;
	p->buf = malloc(FRAME_HEADER_SIZE + p->c.buffer_size);
	if (!p->buf) {
		free(p);
		return -ENOMEM;
	}
	*ret = p;
	return 0;
}

void pump_free(struct pump *p) {
	if (!p)
		return;
	if (p->pipe[0] >= 0)
		close(p->pipe[0]);
	if (p->pipe[1] >= 0)
		close(p->pipe[1]);
	free(p->ext);
	free(p->buf);
	free(p);
}

static int fail(struct pump *p, enum pump_fail side, int r) {
	p->fail = side;
	p->error = r < 0 ? r : -EIO;
	return p->error;
}

enum pump_fail pump_failure(const struct pump *p) { return p->fail; }
uint64_t pump_bytes(const struct pump *p) { return p->bytes; }
uint32_t pump_last_seq(const struct pump *p) { return p->last_seq; }
uint8_t pump_last_type(const struct pump *p) { return p->last_type; }

bool pump_at_boundary(const struct pump *p) {
	return p->c.mode == PUMP_FRAMES && p->hdr_have == 0 && p->frame_left == 0 && !p->in_extract;
}

void pump_stop(struct pump *p) { p->stopped = true; }

int pump_finish_with_frame(struct pump *p, uint8_t type, uint32_t seq, const void *payload, size_t len) {
	if (!pump_at_boundary(p))
		return -EBUSY;
	if (p->out_off > 0) {
		memmove(p->buf, p->buf + p->out_off, p->out_len - p->out_off);
		p->out_len -= p->out_off;
		p->out_off = 0;
	}
	if (p->out_len + FRAME_HEADER_SIZE + len > FRAME_HEADER_SIZE + p->c.buffer_size)
		return -ENOBUFS;
	struct frame_header h = {.type = type, .seq = seq, .length = (uint32_t)len};
	frame_header_encode(&h, p->buf + p->out_len);
	if (len)
		memcpy(p->buf + p->out_len + FRAME_HEADER_SIZE, payload, len);
	p->out_len += FRAME_HEADER_SIZE + len;
	p->stopped = true;
	return 0;
}

/* Frames mode: the rest of the current frame's payload goes through the pipe (a large frame is spliced to
 * its last byte, see pump_run), so TCP may hold what is queued for a full segment. */
static bool splicing_payload(const struct pump *p) {
	return p->c.mode == PUMP_FRAMES && !p->no_splice && !p->in_extract && p->big && p->frame_left > 0;
}

/* Write out what is queued: the pipe first, then the buffer (the order they were filled in).
 * 1 = all written, 0 = dst is full. */
static int flush(struct pump *p) {
	while (p->pipe_fill > 0) {
		/* More of this frame still to come: let TCP fill whole segments rather than push a short one at
		 * the end of each splice (fewer, fuller segments for the kernel and the receiver to handle). The
		 * frame's last bytes go without the flag, so nothing waits for a next frame. */
		unsigned more = splicing_payload(p) ? SPLICE_F_MORE : 0;
		ssize_t n = splice(p->pipe[0], NULL, p->dst, NULL, p->pipe_fill, SPLICE_F_MOVE | SPLICE_F_NONBLOCK | more);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return fail(p, PUMP_FAIL_DST, negerrno());
		}
		p->pipe_fill -= (size_t)n;
		p->bytes += (uint64_t)n;
	}
	/* A large frame's header (and first bytes) go out with MSG_MORE: its payload is spliced right after, and
	 * the two leave as full segments instead of a lone 12-byte one. */
	int more = splicing_payload(p) ? MSG_MORE : 0;
	while (p->out_off < p->out_len) {
		ssize_t n = send(p->dst, p->buf + p->out_off, p->out_len - p->out_off, MSG_NOSIGNAL | MSG_DONTWAIT | more);
		if (n < 0 && errno == ENOTSOCK)
			n = write(p->dst, p->buf + p->out_off, p->out_len - p->out_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return fail(p, PUMP_FAIL_DST, negerrno());
		}
		p->out_off += (size_t)n;
		p->bytes += (uint64_t)n;
	}
	p->out_off = p->out_len = 0;
	return 1;
}

static int open_pipe(struct pump *p) {
	if (p->pipe[0] >= 0)
		return 0;
	if (pipe2(p->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		p->pipe[0] = p->pipe[1] = -1;
		return negerrno();
	}
	int sz = fcntl(p->pipe[1], F_SETPIPE_SZ, (int)p->c.pipe_size);
	if (sz < 0)
		sz = fcntl(p->pipe[1], F_GETPIPE_SZ);
	p->pipe_cap = sz > 0 ? (size_t)sz : 65536;
	return 0;
}

/* In a stream of large frames, look at the next header without taking it (MSG_PEEK): if its frame is large
 * too, header and payload go into the pipe behind what is there, checked before any of their bytes enter it.
 * The pipe then carries the stream as a plain proxy's does, across frame boundaries, instead of a 12-byte recv
 * and send around each payload and a short splice at each frame's end (together ~10% of throughput on
 * loopback). AUDIT frames and small frames are read through the buffer.
 * 1 = the whole next frame goes through the pipe, 0 = not (read it through the buffer), negative = the header
 * is bad (the caller fails the pump once what precedes it has been delivered). */
static int peek_header(struct pump *p) {
	uint8_t raw[FRAME_HEADER_SIZE];
	ssize_t n = recv(p->src, raw, sizeof(raw), MSG_PEEK | MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(raw))
		return 0; /* a partial header, EOF or an error: read_buffer sees to it */
	struct frame_header h;
	int r = frame_header_decode(raw, p->c.max_payload, &h);
	if (r < 0)
		return r;
	if ((p->c.extract_type && h.type == p->c.extract_type) || h.length < PUMP_SPLICE_MIN)
		return 0;
	p->last_seq = h.seq;
	p->last_type = h.type;
	p->frame_left = FRAME_HEADER_SIZE + (uint64_t)h.length;
	return 1;
}

/* 1 = moved something, 0 = src has nothing now, negative = failed. */
static int read_splice(struct pump *p) {
	bool moved = false;
	for (;;) {
		size_t want = p->pipe_cap - p->pipe_fill;
		if (p->c.mode == PUMP_FRAMES && p->frame_left < want)
			want = (size_t)p->frame_left;
		ssize_t n = splice(p->src, NULL, p->pipe[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0) {
			if (errno == EINTR)
				return 1;
			if (errno == EAGAIN)
				return moved;
			if (errno == EINVAL) { /* this socket type cannot splice: copy instead from now on */
				p->no_splice = true;
				return 1;
			}
			return fail(p, PUMP_FAIL_SRC, negerrno());
		}
		if (n == 0) {
			p->src_eof = true;
			return 1;
		}
		moved = true;
		p->pipe_fill += (size_t)n;
		/* No `drained` shortcut here, unlike read_buffer: in a stream of large frames more has usually
		 * arrived by the time the pipe is flushed, and going back to the event loop after every short
		 * splice cost a sleep and a wake-up each (7 times proxyd's epoll_waits, ~6% of throughput). */
		if (p->c.mode == PUMP_RAW)
			return 1;
		p->frame_left -= (uint64_t)n;
		if (p->frame_left > 0 || p->pipe_fill >= p->pipe_cap)
			return 1;
		if (peek_header(p) <= 0) /* a bad header fails the pump at the boundary, after this frame */
			return 1;
	}
}

static int header_complete(struct pump *p, size_t *o) {
	struct frame_header h;
	int r = frame_header_decode(p->hdr, p->c.max_payload, &h);
	if (r < 0)
		return fail(p, PUMP_FAIL_PROTOCOL, r);
	p->hdr_have = 0;
	p->last_seq = h.seq;
	p->last_type = h.type;
	if (p->c.extract_type && h.type == p->c.extract_type) {
		if (h.length > p->c.extract_max)
			return fail(p, PUMP_FAIL_PROTOCOL, FRAME_E_OVERSIZE);
		p->ext_h = h;
		p->ext_have = 0;
		p->ext = malloc(h.length ? h.length : 1);
		if (!p->ext)
			return fail(p, PUMP_FAIL_PROTOCOL, -ENOMEM);
		p->in_extract = true;
		return 0;
	}
	memcpy(p->buf + *o, p->hdr, FRAME_HEADER_SIZE);
	*o += FRAME_HEADER_SIZE;
	p->frame_left = h.length;
	p->big = h.length >= PUMP_SPLICE_MIN;
	return 0;
}

static int extract_done(struct pump *p) {
	int r = p->c.on_extract ? p->c.on_extract(&p->ext_h, p->ext, p->c.userdata) : 0;
	free(p->ext);
	p->ext = NULL;
	p->in_extract = false;
	return r < 0 ? fail(p, PUMP_FAIL_PROTOCOL, r) : 0;
}

/* Read into the buffer after a FRAME_HEADER_SIZE headroom and compact what is to be forwarded to its start.
 * Forwarded bytes never overtake unread input: a header completed from bytes of an earlier read emits 12
 * bytes for fewer than 12 consumed here, and the headroom absorbs exactly that. */
static int read_buffer(struct pump *p) {
	uint8_t *in = p->buf + FRAME_HEADER_SIZE;
	size_t want = p->c.buffer_size;
	/* In a stream of large frames, take just the next header, so that its whole payload can be spliced
	 * rather than its first buffer-full copied. Small frames keep being read many at a time. */
	if (p->c.mode == PUMP_FRAMES && p->big && p->frame_left == 0 && !p->in_extract)
		want = FRAME_HEADER_SIZE - p->hdr_have;
	ssize_t n = recv(p->src, in, want, MSG_DONTWAIT);
	if (n < 0 && errno == ENOTSOCK)
		n = read(p->src, in, want);
	if (n < 0) {
		if (errno == EINTR)
			return 1;
		if (errno == EAGAIN)
			return 0;
		return fail(p, PUMP_FAIL_SRC, negerrno());
	}
	if (n == 0) {
		p->src_eof = true;
		return 1;
	}
	p->drained = (size_t)n < want;
	if (p->c.mode == PUMP_RAW) {
		p->out_off = FRAME_HEADER_SIZE;
		p->out_len = FRAME_HEADER_SIZE + (size_t)n;
		return 1;
	}
	size_t i = 0, o = 0, len = (size_t)n;
	while (i < len) {
		size_t k;
		if (p->in_extract) {
			k = MIN(p->ext_h.length - p->ext_have, len - i);
			memcpy(p->ext + p->ext_have, in + i, k);
			p->ext_have += k;
			i += k;
			if (p->ext_have == p->ext_h.length && extract_done(p) < 0)
				return p->error;
		} else if (p->frame_left > 0) {
			k = (size_t)MIN(p->frame_left, (uint64_t)(len - i));
			memmove(p->buf + o, in + i, k);
			o += k;
			i += k;
			p->frame_left -= k;
		} else {
			k = MIN(FRAME_HEADER_SIZE - p->hdr_have, len - i);
			memcpy(p->hdr + p->hdr_have, in + i, k);
			p->hdr_have += k;
			i += k;
			if (p->hdr_have == FRAME_HEADER_SIZE) {
				if (header_complete(p, &o) < 0)
					return p->error;
				if (p->in_extract && p->ext_h.length == 0 && extract_done(p) < 0)
					return p->error;
			}
		}
	}
	p->out_off = 0;
	p->out_len = o;
	return 1;
}

/* dst is full and what waits for it is in the pipe: more of src may go into the pipe's free room meanwhile
 * (as systemd-socket-proxyd does), so the sender is not held up and a full pipe is ready when dst drains. */
static bool can_top_up(const struct pump *p) {
	return !p->no_splice && p->pipe[0] >= 0 && p->pipe_fill > 0 && p->pipe_fill < p->pipe_cap &&
	       p->out_off == p->out_len && !p->src_eof && !p->stopped &&
	       (p->c.mode == PUMP_RAW || (!p->in_extract && p->frame_left > 0));
}

int pump_run(struct pump *p) {
	if (p->error)
		return p->error;
	/* A bounded number of reads per call, so one busy connection cannot starve the others of the loop;
	 * level-triggered polling brings us back. */
	for (unsigned budget = 16;;) {
		int r = flush(p);
		if (r < 0)
			return r;
		if (r == 0) {
			if (can_top_up(p) && read_splice(p) < 0)
				return p->error;
			return PUMP_WANT_WRITE | (can_top_up(p) ? PUMP_WANT_READ : 0);
		}
		if (p->src_eof || p->stopped) {
			if (p->src_eof && !p->stopped && p->c.mode == PUMP_FRAMES && !pump_at_boundary(p))
				return fail(p, PUMP_FAIL_SRC, FRAME_E_TRUNCATED);
			if (!p->stopped && p->c.hold_eof)
				return PUMP_EOF;
			if (!p->dst_shut) {
				(void)shutdown(p->dst, SHUT_WR);
				p->dst_shut = true;
			}
			return PUMP_DONE;
		}
		/* After a short read, skip the read that would only say EAGAIN: level-triggered polling reports
		 * anything that arrived since. Saves a system call per message on request/response traffic. */
		if (p->drained) {
			p->drained = false;
			return PUMP_WANT_READ;
		}
		if (budget-- == 0)
			return PUMP_WANT_READ;
		if (p->c.mode == PUMP_FRAMES && p->big && !p->no_splice && pump_at_boundary(p)) {
			r = peek_header(p);
			if (r < 0)
				return fail(p, PUMP_FAIL_PROTOCOL, r);
		}
		/* A large frame's payload is spliced to its last byte: switching to the buffer for the final
		 * < 64 KiB of each frame cost a few more copies and system calls per frame. */
		bool use_splice = (p->c.mode == PUMP_RAW && !p->no_splice) || splicing_payload(p);
		if (use_splice && open_pipe(p) < 0) {
			p->no_splice = true; /* out of fds or pipe memory: copying still works */
			use_splice = false;
		}
		r = use_splice ? read_splice(p) : read_buffer(p);
		if (r < 0)
			return r;
		if (r == 0)
			return PUMP_WANT_READ;
	}
}
