/* Fuzz the session server. The first byte picks a mode:
 *   even: the rest is a raw byte stream (fed in pieces whose size comes from the second byte), as a hostile
 *         client or relay would send before or instead of a handshake;
 *   odd:  a genuine client completes the handshake, then the rest is a program of operations mixing sealed
 *         requests (optionally corrupted in transit), raw bytes, answers, audits, time passing and CLOSE, so
 *         that the paths after a successful open are reached too.
 * The attestation is a stand-in: the "document" is the public key and nonce side by side. Invariants checked:
 * no crash or leak, the server never emits anything but whole well-formed frames, and a failed server refuses
 * further input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "macro.h"
#include "session.h"
#include "util.h"

#include "../common/frame-check.h"
#include "../common/session-stub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every byte the server writes must parse as a sequence of complete frames. */
static void check_output(SessionServer *s) {
	size_t n;
	const uint8_t *p = session_server_pending_output(s, &n);
	abort_unless_whole_frames(p, n);
	session_server_output_advance(s, n);
}

static void answer_all(SessionServer *s, uint64_t now) {
	uint32_t seq;
	uint8_t *p;
	size_t n;
	while (session_server_next_request(s, &seq, &p, &n) == 1) {
		(void)session_server_respond(s, seq, p, n, now);
		free_secret(p, n);
	}
}

static void raw_mode(SessionServer *s, const uint8_t *data, size_t size) {
	if (size < 1) return;
	size_t step = (size_t)data[0] % 64 + 1;
	data++, size--;
	uint64_t now = 1;
	for (size_t pos = 0; pos < size; pos += step) {
		int r = session_server_feed(s, data + pos, MIN(step, size - pos), now++);
		check_output(s);
		if (r < 0 && session_server_feed(s, "x", 1, now) != -EPIPE) abort();
		answer_all(s, now);
	}
	(void)session_server_eof(s);
	check_output(s);
}

static void program_mode(SessionServer *s, const uint8_t *data, size_t size) {
	SessionClientConfig cc = {.verify_attestation = stub_verify_attestation, .limits.max_pending = 64};
	_cleanup_session_client_ SessionClient *c = NULL;
	uint64_t now = 1;
	size_t n;
	if (session_client_new(&cc, now, &c) < 0) return;
	const uint8_t *p = session_client_pending_output(c, &n);
	(void)session_server_feed(s, p, n, now);
	session_client_output_advance(c, n);
	p = session_server_pending_output(s, &n);
	(void)session_client_feed(c, p, n, now);
	session_server_output_advance(s, n);

	while (size >= 2) {
		uint8_t op = data[0];
		size_t len = MIN((size_t)data[1], size - 2);
		const uint8_t *arg = data + 2;
		data += 2 + len, size -= 2 + len;
		switch (op % 6) {
		case 0: /* a sealed request, possibly corrupted at one byte */
			if (session_client_request(c, arg, len, now, NULL) == 0) {
				uint8_t buf[FRAME_HEADER_SIZE + 32 + 255 + 16];
				p = session_client_pending_output(c, &n);
				if (n > sizeof buf) abort();
				memcpy(buf, p, n);
				session_client_output_advance(c, n);
				if (op & 0x80 && len > 0) buf[arg[0] % n] ^= (uint8_t)(op | 1);
				(void)session_server_feed(s, buf, n, now);
			}
			break;
		case 1: (void)session_server_feed(s, arg, len, now); break;
		case 2: answer_all(s, now); break;
		case 3: now += (uint64_t)len * 1000000; (void)session_server_tick(s, now); break;
		case 4: {
			static const uint8_t audit[] = {0xa6}; /* never a valid record: must be refused, not sent */
			if (session_server_audit(s, 0, audit, sizeof audit) == 0) abort();
			break;
		}
		case 5:
			if (op & 0x80) (void)session_server_close(s);
			else (void)session_server_fail(s, SESSION_NO_MODEL, "fuzz");
			break;
		}
		check_output(s);
		p = NULL;
	}
	(void)session_server_eof(s);
	check_output(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size < 1) return 0;
	SessionServerConfig cfg = {.make_attestation = stub_make_attestation, .limits.max_request = 4096, .limits.max_pending = 4};
	memset(cfg.user_data.receipt_key, 1, 32);
	_cleanup_session_server_ SessionServer *s = NULL;
	if (session_server_new(&cfg, 0, &s) < 0) return 0;
	if (data[0] & 1)
		program_mode(s, data + 1, size - 1);
	else
		raw_mode(s, data + 1, size - 1);
	return 0;
}
