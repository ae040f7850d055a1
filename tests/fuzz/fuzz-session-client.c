/* Fuzz the session client: after its HELLO it is fed what a hostile relay or enclave could send. The first
 * byte picks a mode:
 *   even: the rest is a raw byte stream in pieces (ATTEST, RESPONSE, ERROR, AUDIT, CLOSE parsing, framing);
 *   odd:  a genuine server completes the handshake, then the rest is a program mixing requests, genuine
 *         answers (optionally corrupted in transit), raw bytes and time passing.
 * The attestation check is a stand-in that accepts a "document" made of public key || nonce || user_data
 * (user_data then goes through the strict decoder). Checks: no crash or leak, only whole frames come out,
 * and a response is only ever delivered for a request that was sent. */
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

static void check_output(SessionClient *c) {
	size_t n;
	const uint8_t *p = session_client_pending_output(c, &n);
	abort_unless_whole_frames(p, n);
	session_client_output_advance(c, n);
}

static void drain(SessionClient *c, uint32_t sent) {
	uint32_t seq;
	uint8_t *p;
	size_t n;
	while (session_client_next_response(c, &seq, &p, &n) == 1) {
		if (seq >= sent) abort(); /* an answer to something never asked */
		free_secret(p, n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size < 2) return 0;
	SessionClientConfig cc = {.verify_attestation = stub_verify_attestation, .limits.max_response = 4096, .limits.max_pending = 8};
	_cleanup_session_client_ SessionClient *c = NULL;
	if (session_client_new(&cc, 1, &c) < 0) return 0;
	uint32_t sent = 0;
	uint64_t now = 1;
	size_t n;
	const uint8_t *p;
	if (!(data[0] & 1)) {
		size_t step = (size_t)data[1] % 64 + 1;
		check_output(c);
		for (size_t pos = 2; pos < size; pos += step) {
			(void)session_client_feed(c, data + pos, MIN(step, size - pos), now++);
			check_output(c);
			drain(c, sent);
		}
		(void)session_client_eof(c);
		check_output(c);
		return 0;
	}
	SessionServerConfig sc = {.make_attestation = stub_make_attestation};
	memset(sc.user_data.receipt_key, 2, 32);
	_cleanup_session_server_ SessionServer *s = NULL;
	if (session_server_new(&sc, 1, &s) < 0) return 0;
	p = session_client_pending_output(c, &n);
	(void)session_server_feed(s, p, n, now);
	session_client_output_advance(c, n);
	p = session_server_pending_output(s, &n);
	(void)session_client_feed(c, p, n, now);
	session_server_output_advance(s, n);
	data++, size--;
	while (size >= 2) {
		uint8_t op = data[0];
		size_t len = MIN((size_t)data[1], size - 2);
		const uint8_t *arg = data + 2;
		data += 2 + len, size -= 2 + len;
		switch (op % 4) {
		case 0: /* a request, carried to the server intact */
			if (session_client_request(c, arg, len, now, NULL) == 0) sent++;
			p = session_client_pending_output(c, &n);
			(void)session_server_feed(s, p, n, now);
			session_client_output_advance(c, n);
			break;
		case 1: { /* the server answers what it has; the answer may be corrupted on the way */
			uint32_t seq;
			uint8_t *rq;
			size_t rl;
			while (session_server_next_request(s, &seq, &rq, &rl) == 1) {
				(void)session_server_respond(s, seq, rq, rl, now);
				free_secret(rq, rl);
			}
			p = session_server_pending_output(s, &n);
			uint8_t *copy = n ? malloc(n) : NULL;
			if (n && !copy) return 0;
			if (n) memcpy(copy, p, n);
			session_server_output_advance(s, n);
			if (n && (op & 0x80) && len > 0) copy[arg[0] % n] ^= (uint8_t)(op | 1);
			(void)session_client_feed(c, copy, n, now);
			free(copy);
			break;
		}
		case 2: (void)session_client_feed(c, arg, len, now); break;
		case 3: now += (uint64_t)len * 1000000; (void)session_client_tick(c, now); break;
		}
		check_output(c);
		drain(c, sent);
	}
	(void)session_client_eof(c);
	check_output(c);
	return 0;
}
