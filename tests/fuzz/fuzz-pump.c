/* Fuzz the frame-aware pump (the blind relay's view of an enclave stream): the input goes through a
 * socketpair, is pumped in frames mode with AUDIT extraction, and what comes out must be exactly the input's
 * non-AUDIT frames (a prefix of them, maybe with part of a truncated frame, when the stream turns bad), never
 * an AUDIT frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "pump.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP 4096

static int on_extract(const struct frame_header *h, const uint8_t *p, void *u) {
	if (h->type != FRAME_AUDIT || h->length > 512)
		abort();
	(*(int *)u)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	int in[2], out[2], audits = 0;
	if (size > 32768 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, in) < 0)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, out) < 0)
		abort();
	int sz = 1 << 20;
	setsockopt(in[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(out[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (size && write(in[0], data, size) != (ssize_t)size)
		abort();
	shutdown(in[0], SHUT_WR);
	struct pump_config c = {.mode = PUMP_FRAMES, .max_payload = CAP, .extract_type = FRAME_AUDIT,
				.extract_max = 512, .on_extract = on_extract, .userdata = &audits, .buffer_size = 97};
	struct pump *p;
	if (pump_new(in[1], out[0], &c, &p) < 0)
		abort();
	int r;
	do
		r = pump_run(p);
	while (r > 0 && r != PUMP_DONE);
	uint8_t *o = malloc(size + 1);
	ssize_t n = read(out[1], o, size + 1);
	size_t olen = n > 0 ? (size_t)n : 0;
	if (olen > size)
		abort();
	/* Re-walk the input: the expected output is its non-AUDIT frames up to the first bad one. On success the
	 * output is exactly that; after an error (the connection is dropped) at most a prefix of it. */
	uint8_t *exp = malloc(size + 1);
	size_t ip = 0, elen = 0, plen = 0;
	while (ip + FRAME_HEADER_SIZE <= size) {
		struct frame_header h;
		if (frame_header_decode(data + ip, CAP, &h) < 0)
			break;
		if (ip + FRAME_HEADER_SIZE + h.length > size) {
			if (h.type != FRAME_AUDIT) /* a truncated frame: payload is streamed, so part of it may pass */
				memcpy(exp + elen, data + ip, size - ip), plen = elen + size - ip;
			break;
		}
		size_t fl = FRAME_HEADER_SIZE + h.length;
		if (h.type == FRAME_AUDIT && h.length > 512)
			break;
		if (h.type != FRAME_AUDIT) {
			memcpy(exp + elen, data + ip, fl);
			elen += fl;
		}
		ip += fl;
	}
	if (plen < elen)
		plen = elen;
	if (olen > plen || memcmp(o, exp, olen) != 0)
		abort();
	if (r == PUMP_DONE && (ip != size || olen != elen))
		abort();
	if (r != PUMP_DONE && (r >= 0 || ip == size))
		abort();
	free(exp);
	free(o);
	pump_free(p);
	close(in[0]), close(in[1]), close(out[0]), close(out[1]);
	return 0;
}
