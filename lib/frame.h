/* frame.h: the stream framing of every connection (ARCHITECTURE section 3).
 *
 *   magic "EM" (2) | version 1 (1) | type (1) | seq (u32 BE) | length (u32 BE) | payload (length bytes)
 *
 * The header is authenticated as AEAD associated data by the session layer; here it is only parsed and
 * checked. The decoder is incremental (feed any split of the stream, e.g. what a non-blocking read returned)
 * and never allocates more than the declared, capped payload length. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_MAGIC0 'E'
#define FRAME_MAGIC1 'M'
#define FRAME_VERSION 1
#define FRAME_HEADER_SIZE 12
#define FRAME_MAX_PAYLOAD (16u * 1024 * 1024)

enum frame_type {
	FRAME_HELLO = 1,
	FRAME_ATTEST = 2,
	FRAME_REQUEST = 3,
	FRAME_RESPONSE = 4,
	FRAME_ERROR = 5,
	FRAME_AUDIT = 6,
	FRAME_CLOSE = 7,
	FRAME_CTL = 8,
};

/* Distinct decode errors (negative errno values). */
#define FRAME_E_MAGIC (-EBADMSG)           /* not "EM" */
#define FRAME_E_VERSION (-EPROTONOSUPPORT) /* version other than 1 */
#define FRAME_E_TYPE (-EPROTO)             /* type outside 1..8 */
#define FRAME_E_OVERSIZE (-EMSGSIZE)       /* length above the cap */
#define FRAME_E_TRUNCATED (-ENODATA)       /* stream ended inside a frame */

struct frame_header {
	uint8_t type;
	uint32_t seq;
	uint32_t length;
};

const char *frame_type_name(uint8_t type);
/* Text for a FRAME_E_* code. */
const char *frame_strerror(int r);

void frame_header_encode(const struct frame_header *h, uint8_t out[FRAME_HEADER_SIZE]);
/* Check and parse 12 header bytes against max_payload (0 = FRAME_MAX_PAYLOAD). */
int frame_header_decode(const uint8_t in[FRAME_HEADER_SIZE], uint32_t max_payload, struct frame_header *ret);

/* Encode header+payload into a new buffer of FRAME_HEADER_SIZE + len bytes. */
int frame_encode(uint8_t type, uint32_t seq, const void *payload, size_t len, uint8_t **ret, size_t *ret_len);

struct frame_decoder {
	uint32_t max_payload;
	uint8_t hdr[FRAME_HEADER_SIZE];
	size_t hdr_have;
	struct frame_header h;
	uint8_t *payload;
	size_t payload_have;
	bool have_frame;
	int error; /* sticky: once a stream is bad it stays bad */
};

void frame_decoder_init(struct frame_decoder *d, uint32_t max_payload);
/* Frees (and wipes) any buffered payload. NULL ok. */
void frame_decoder_free(struct frame_decoder *d);
/* Feed bytes. Consumes at most up to the end of one frame: returns 1 when a whole frame is ready (take it with
 * frame_decoder_take before feeding more), 0 when more bytes are needed, or a FRAME_E_* error. *ret_used says
 * how many bytes of buf were consumed; feed the rest afterwards. */
int frame_decoder_feed(struct frame_decoder *d, const uint8_t *buf, size_t len, size_t *ret_used);
/* Take the ready frame: the payload buffer becomes the caller's (free it; NULL when length is 0). */
int frame_decoder_take(struct frame_decoder *d, struct frame_header *ret_h, uint8_t **ret_payload);
/* At end of stream: 0 if it ended on a frame boundary, FRAME_E_TRUNCATED if inside a frame. */
int frame_decoder_finish(const struct frame_decoder *d);
/* Read once from a non-blocking fd into the decoder. Returns 1 frame ready, 0 need more (EAGAIN),
 * -EPIPE at a clean end of stream, FRAME_E_* errors, or a read error. */
int frame_decoder_read(struct frame_decoder *d, int fd);

/* Blocking helpers for simple clients and tests: write one frame / read one frame (payload malloc'ed). */
int frame_write(int fd, uint8_t type, uint32_t seq, const void *payload, size_t len);
int frame_read(int fd, uint32_t max_payload, struct frame_header *ret_h, uint8_t **ret_payload);
