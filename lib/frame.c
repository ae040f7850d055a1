/* frame.c: the 12-byte-header frame codec and its incremental decoder (see frame.h). */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "util.h"

static const char *const type_names[] = {
	[FRAME_HELLO] = "HELLO", [FRAME_ATTEST] = "ATTEST", [FRAME_REQUEST] = "REQUEST",
	[FRAME_RESPONSE] = "RESPONSE", [FRAME_ERROR] = "ERROR", [FRAME_AUDIT] = "AUDIT",
	[FRAME_CLOSE] = "CLOSE", [FRAME_CTL] = "CTL",
};

const char *frame_type_name(uint8_t type) {
	return type < ARRAY_SIZE(type_names) && type_names[type] ? type_names[type] : "UNKNOWN";
}

const char *frame_strerror(int r) {
	switch (r) {
	case FRAME_E_MAGIC: return "bad frame magic";
	case FRAME_E_VERSION: return "unsupported frame version";
	case FRAME_E_TYPE: return "unknown frame type";
	case FRAME_E_OVERSIZE: return "frame exceeds the size limit";
	case FRAME_E_TRUNCATED: return "stream ended inside a frame";
	default: return strerror(-r);
	}
}

static void put_be32(uint8_t *p, uint32_t v) {
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void frame_header_encode(const struct frame_header *h, uint8_t out[FRAME_HEADER_SIZE]) {
	out[0] = FRAME_MAGIC0;
	out[1] = FRAME_MAGIC1;
	out[2] = FRAME_VERSION;
	out[3] = h->type;
	put_be32(out + 4, h->seq);
	put_be32(out + 8, h->length);
}

int frame_header_decode(const uint8_t in[FRAME_HEADER_SIZE], uint32_t max_payload, struct frame_header *ret) {
	if (!max_payload || max_payload > FRAME_MAX_PAYLOAD) max_payload = FRAME_MAX_PAYLOAD;
	if (in[0] != FRAME_MAGIC0 || in[1] != FRAME_MAGIC1) return FRAME_E_MAGIC;
	if (in[2] != FRAME_VERSION) return FRAME_E_VERSION;
	if (in[3] < FRAME_HELLO || in[3] > FRAME_CTL) return FRAME_E_TYPE;
	uint32_t len = get_be32(in + 8);
	if (len > max_payload) return FRAME_E_OVERSIZE;
	ret->type = in[3];
	ret->seq = get_be32(in + 4);
	ret->length = len;
	return 0;
}

int frame_encode(uint8_t type, uint32_t seq, const void *payload, size_t len, uint8_t **ret, size_t *ret_len) {
	if (len > FRAME_MAX_PAYLOAD) return FRAME_E_OVERSIZE;
	uint8_t *buf = malloc(FRAME_HEADER_SIZE + len);
	if (!buf) return -ENOMEM;
	frame_header_encode(&(struct frame_header){.type = type, .seq = seq, .length = (uint32_t)len}, buf);
	if (len) memcpy(buf + FRAME_HEADER_SIZE, payload, len);
	*ret = buf;
	*ret_len = FRAME_HEADER_SIZE + len;
	return 0;
}

void frame_decoder_init(struct frame_decoder *d, uint32_t max_payload) {
	memset(d, 0, sizeof *d);
	d->max_payload = max_payload && max_payload <= FRAME_MAX_PAYLOAD ? max_payload : FRAME_MAX_PAYLOAD;
}

void frame_decoder_free(struct frame_decoder *d) {
	if (!d) return;
	if (d->payload) free_secret(d->payload, d->h.length);
	d->payload = NULL;
	d->payload_have = 0;
	d->hdr_have = 0;
	d->have_frame = false;
}

int frame_decoder_feed(struct frame_decoder *d, const uint8_t *buf, size_t len, size_t *ret_used) {
	size_t used = 0;
	*ret_used = 0;
	if (d->error) return d->error;
	if (d->have_frame) return 1;
	if (d->hdr_have < FRAME_HEADER_SIZE) {
		size_t n = MIN(len, FRAME_HEADER_SIZE - d->hdr_have);
		memcpy(d->hdr + d->hdr_have, buf, n);
		d->hdr_have += n;
		used += n;
		/* Reject a bad magic or version as soon as those bytes arrive, not only after 12 bytes. */
		if (d->hdr_have >= 1 && d->hdr[0] != FRAME_MAGIC0) d->error = FRAME_E_MAGIC;
		else if (d->hdr_have >= 2 && d->hdr[1] != FRAME_MAGIC1) d->error = FRAME_E_MAGIC;
		else if (d->hdr_have >= 3 && d->hdr[2] != FRAME_VERSION) d->error = FRAME_E_VERSION;
		if (d->error) {
			*ret_used = used;
			return d->error;
		}
		if (d->hdr_have < FRAME_HEADER_SIZE) {
			*ret_used = used;
			return 0;
		}
		int r = frame_header_decode(d->hdr, d->max_payload, &d->h);
		if (r < 0) {
			*ret_used = used;
			return d->error = r;
		}
		d->payload_have = 0;
		if (d->h.length > 0) {
			d->payload = malloc(d->h.length);
			if (!d->payload) {
				*ret_used = used;
				return d->error = -ENOMEM;
			}
		}
	}
	size_t n = MIN(len - used, d->h.length - d->payload_have);
	if (n) memcpy(d->payload + d->payload_have, buf + used, n);
	d->payload_have += n;
	used += n;
	*ret_used = used;
	if (d->payload_have == d->h.length) {
		d->have_frame = true;
		return 1;
	}
	return 0;
}

int frame_decoder_take(struct frame_decoder *d, struct frame_header *ret_h, uint8_t **ret_payload) {
	if (!d->have_frame) return -EAGAIN;
	*ret_h = d->h;
	*ret_payload = TAKE_PTR(d->payload);
	d->have_frame = false;
	d->hdr_have = 0;
	d->payload_have = 0;
	return 0;
}

int frame_decoder_finish(const struct frame_decoder *d) {
	if (d->error) return d->error;
	return d->hdr_have == 0 && !d->have_frame ? 0 : FRAME_E_TRUNCATED;
}

int frame_decoder_read(struct frame_decoder *d, int fd) {
	if (d->error) return d->error;
	if (d->have_frame) return 1;
	if (d->hdr_have < FRAME_HEADER_SIZE) {
		/* Never read past this header: the bytes after it may belong to someone else (splice, AUDIT). */
		uint8_t tmp[FRAME_HEADER_SIZE];
		ssize_t n = read(fd, tmp, FRAME_HEADER_SIZE - d->hdr_have);
		if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : negerrno();
		if (n == 0) return frame_decoder_finish(d) < 0 ? FRAME_E_TRUNCATED : -EPIPE;
		size_t used;
		return frame_decoder_feed(d, tmp, (size_t)n, &used);
	}
	/* Payload: read straight into its buffer, and never past this frame. */
	ssize_t n = read(fd, d->payload + d->payload_have, d->h.length - d->payload_have);
	if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : negerrno();
	if (n == 0) return FRAME_E_TRUNCATED;
	d->payload_have += (size_t)n;
	if (d->payload_have == d->h.length) {
		d->have_frame = true;
		return 1;
	}
	return 0;
}

int frame_write(int fd, uint8_t type, uint32_t seq, const void *payload, size_t len) {
	if (len > FRAME_MAX_PAYLOAD) return FRAME_E_OVERSIZE;
	uint8_t hdr[FRAME_HEADER_SIZE];
	frame_header_encode(&(struct frame_header){.type = type, .seq = seq, .length = (uint32_t)len}, hdr);
	int r = write_all(fd, hdr, sizeof hdr);
	if (r < 0) return r;
	return len ? write_all(fd, payload, len) : 0;
}

int frame_read(int fd, uint32_t max_payload, struct frame_header *ret_h, uint8_t **ret_payload) {
	uint8_t hdr[FRAME_HEADER_SIZE];
	int r = read_all(fd, hdr, sizeof hdr);
	if (r < 0) return r;
	r = frame_header_decode(hdr, max_payload, ret_h);
	if (r < 0) return r;
	_cleanup_free_ uint8_t *p = NULL;
	if (ret_h->length) {
		p = malloc(ret_h->length);
		if (!p) return -ENOMEM;
		r = read_all(fd, p, ret_h->length);
		if (r == -EPIPE) return FRAME_E_TRUNCATED;
		if (r < 0) return r;
	}
	*ret_payload = TAKE_PTR(p);
	return 0;
}
