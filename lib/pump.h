/* pump.h: one direction of a proxied stream connection (src -> dst), moved without blocking.
 *
 * Raw mode moves bytes like systemd-socket-proxyd: splice(2) through a pipe, read/write where the kernel
 * refuses splice (EINVAL). Frames mode also parses every 12-byte frame header (frame.h) on the way: the
 * payload cap is enforced, frames of one chosen type can be taken out of the stream and handed to a callback
 * instead of being forwarded (AUDIT frames), and large payloads still go through splice: once a header is
 * seen, exactly its `length` payload bytes are spliced, so no header is ever missed and nothing is copied
 * through user space but headers and small frames.
 *
 * Backpressure: a pump reads from src only once everything it read before has been written to dst. It owns
 * neither fd; the caller polls them as pump_run() says (PUMP_WANT_READ on src, PUMP_WANT_WRITE on dst). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

enum pump_mode { PUMP_RAW, PUMP_FRAMES };

/* Which side an error came from. */
enum pump_fail { PUMP_FAIL_NONE, PUMP_FAIL_SRC, PUMP_FAIL_DST, PUMP_FAIL_PROTOCOL };

#define PUMP_WANT_READ 1
#define PUMP_WANT_WRITE 2
#define PUMP_DONE 4
#define PUMP_EOF 8 /* hold_eof: src ended on a frame boundary, everything written; dst not yet shut down */

/* Called with an extracted frame (payload is only valid during the call). A negative return fails the pump
 * with PUMP_FAIL_PROTOCOL. */
typedef int (*pump_extract_fn)(const struct frame_header *h, const uint8_t *payload, void *userdata);

struct pump_config {
	enum pump_mode mode;
	uint32_t max_payload;   /* frames: payload cap, 0 = FRAME_MAX_PAYLOAD */
	uint8_t extract_type;   /* frames: type taken out of the stream, 0 = none */
	uint32_t extract_max;   /* cap on an extracted frame's payload (it is buffered) */
	pump_extract_fn on_extract;
	void *userdata;
	size_t buffer_size;     /* user-space buffer, 0 = 16 KiB */
	size_t pipe_size;       /* splice pipe, 0 = 1 MiB (best effort) */
	bool hold_eof;          /* at end of src, return PUMP_EOF and let the caller choose: pump_stop() (then
				 * dst is shut down) or pump_finish_with_frame() (a last frame first) */
};

struct pump;

int pump_new(int src, int dst, const struct pump_config *c, struct pump **ret);
/* Closes the pipe; not src/dst. NULL ok. */
void pump_free(struct pump *p);

/* Move what can be moved now. Returns a mask of PUMP_WANT_READ / PUMP_WANT_WRITE (what to wait for), or
 * PUMP_DONE once src reached end of stream (on a frame boundary in frames mode), everything was written and
 * dst was shut down for writing (half-close), or a negative errno: a FRAME_E_* code or an I/O error; see
 * pump_failure() for the side. A failed pump stays failed. */
int pump_run(struct pump *p);
enum pump_fail pump_failure(const struct pump *p);

/* Frames mode: true between frames (nothing of a frame half-read), so a frame can be inserted. */
bool pump_at_boundary(const struct pump *p);
/* Stop reading src; queue one frame of our own after what is already queued; pump_run() then flushes and
 * shuts dst down. -EBUSY when not at a boundary, -ENOBUFS when payload does not fit the buffer. */
int pump_finish_with_frame(struct pump *p, uint8_t type, uint32_t seq, const void *payload, size_t len);
/* Stop reading src; pump_run() flushes what is queued and shuts dst down. */
void pump_stop(struct pump *p);

/* Bytes written to dst so far. */
uint64_t pump_bytes(const struct pump *p);
/* Frames mode: seq and type of the last frame header seen from src (0 before any). */
uint32_t pump_last_seq(const struct pump *p);
uint8_t pump_last_type(const struct pump *p);
