/* Tests for session.c: client and server machines wired back to back. Property tests: random requests of
 * random sizes round-trip under random stream splits, pipelining and answer order; flipping any bit of any
 * frame of a session ends it with an error on some side; replays and reorderings are refused; deadlines and
 * limits. The attestation is a stand-in (HMAC over nonce, public key and user_data) so that the tests exercise
 * the session layer, not the NSM verifier; a corrupted document fails its MAC like a real one fails ES384. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/hmac.h>
#include <openssl/evp.h>

#include "audit.h"
#include "cbor.h"
#include "frame.h"
#include "hpke.h"
#include "macro.h"
#include "session.h"
#include "util.h"

static const uint8_t mac_key[32] = "session test attestation key!!!";

/* doc = nonce (32) | public_key (32) | user_data_len (2, BE) | user_data | HMAC-SHA256 of the rest */
static int fake_make(void *userdata, const uint8_t *nonce, size_t nonce_len, const uint8_t *pk, size_t pk_len,
		     const uint8_t *ud, size_t ud_len, uint8_t **ret, size_t *ret_len) {
	int *calls = userdata;
	if (calls)
		(*calls)++;
	if (nonce_len != 32 || pk_len != 32 || ud_len > 512)
		return -EINVAL;
	size_t n = 66 + ud_len;
	uint8_t *d = malloc(n + 32);
	if (!d)
		return -ENOMEM;
	memcpy(d, nonce, 32);
	memcpy(d + 32, pk, 32);
	d[64] = (uint8_t)(ud_len >> 8), d[65] = (uint8_t)ud_len;
	memcpy(d + 66, ud, ud_len);
	unsigned ml = 32;
	HMAC(EVP_sha256(), mac_key, sizeof mac_key, d, n, d + n, &ml);
	*ret = d;
	*ret_len = n + 32;
	return 0;
}

static int fake_verify(void *userdata, const uint8_t *doc, size_t len, const uint8_t *nonce, size_t nonce_len,
		       SessionAttested *ret) {
	uint8_t mac[32];
	unsigned ml = 32;
	if (len < 98)
		return -EBADMSG;
	size_t ud_len = (size_t)doc[64] << 8 | doc[65];
	if (len != 98 + ud_len || ud_len > sizeof ret->user_data)
		return -EBADMSG;
	HMAC(EVP_sha256(), mac_key, sizeof mac_key, doc, len - 32, mac, &ml);
	if (!mem_equal_ct(mac, doc + len - 32, 32)) {
		snprintf(ret->reason, sizeof ret->reason, "bad MAC");
		return -EKEYREJECTED;
	}
	if (nonce_len != 32 || memcmp(nonce, doc, 32) != 0) {
		snprintf(ret->reason, sizeof ret->reason, "nonce mismatch");
		return -EPERM;
	}
	memcpy(ret->public_key, doc + 32, 32);
	ret->public_key_len = 32;
	memcpy(ret->user_data, doc + 66, ud_len);
	ret->user_data_len = ud_len;
	return 0;
}

static int refuse_verify(void *userdata, const uint8_t *doc, size_t len, const uint8_t *nonce, size_t nonce_len,
			 SessionAttested *ret) {
	snprintf(ret->reason, sizeof ret->reason, "PCR0 not allowed");
	return -EPERM;
}

static SessionServerConfig server_cfg(void) {
	SessionServerConfig c = {.make_attestation = fake_make};
	memset(c.user_data.receipt_key, 0x42, 32);
	c.user_data.has_model = true;
	memset(c.user_data.model_hash, 0x17, 32);
	return c;
}

static SessionClientConfig client_cfg(void) { return (SessionClientConfig){.verify_attestation = fake_verify}; }

/* Move everything pending from one side to the other in pieces of random size (1..max_piece). */
static void c2s(SessionClient *c, SessionServer *s, uint64_t now, size_t max_piece) {
	size_t n;
	const uint8_t *p = session_client_pending_output(c, &n);
	while (n > 0) {
		size_t piece = max_piece ? (size_t)(rand() % max_piece) + 1 : n, k = MIN(n, piece);
		(void)session_server_feed(s, p, k, now);
		session_client_output_advance(c, k);
		p = session_client_pending_output(c, &n);
	}
}

static void s2c(SessionServer *s, SessionClient *c, uint64_t now, size_t max_piece) {
	size_t n;
	const uint8_t *p = session_server_pending_output(s, &n);
	while (n > 0) {
		size_t piece = max_piece ? (size_t)(rand() % max_piece) + 1 : n, k = MIN(n, piece);
		(void)session_client_feed(c, p, k, now);
		session_server_output_advance(s, k);
		p = session_server_pending_output(s, &n);
	}
}

static void handshake(SessionClient **ret_c, SessionServer **ret_s, const SessionClientConfig *cc,
		      const SessionServerConfig *sc) {
	assert_int_equal(session_client_new(cc, 1000, ret_c), 0);
	assert_int_equal(session_server_new(sc, 1000, ret_s), 0);
	assert_int_equal(session_server_status(*ret_s)->state, SESSION_HANDSHAKE);
	c2s(*ret_c, *ret_s, 1000, 0);
	assert_int_equal(session_server_status(*ret_s)->state, SESSION_OPEN);
	s2c(*ret_s, *ret_c, 1000, 0);
	assert_int_equal(session_client_status(*ret_c)->state, SESSION_OPEN);
}

static void test_handshake(void **state) {
	SessionServerConfig sc = server_cfg();
	int calls = 0;
	sc.userdata = &calls;
	SessionClientConfig cc = client_cfg();
	_cleanup_session_client_ SessionClient *c = NULL;
	_cleanup_session_server_ SessionServer *s = NULL;
	handshake(&c, &s, &cc, &sc);
	assert_int_equal(calls, 1);
	const SessionUserData *u = session_client_peer(c);
	assert_non_null(u);
	assert_memory_equal(u->receipt_key, sc.user_data.receipt_key, 32);
	assert_true(u->has_model);
	assert_memory_equal(u->model_hash, sc.user_data.model_hash, 32);
	assert_memory_equal(session_client_doc_sha256(c), session_server_doc_sha256(s), 32);
	size_t dl;
	const uint8_t *doc = session_client_doc(c, &dl);
	assert_int_equal(dl, 98 + 1 + 2 + 1 + 6 + 2 + 32 + 12 + 2 + 32); /* user_data map: v, model, receipt_key */
	assert_memory_equal(doc, session_client_nonce(c), 32);           /* the server attested our nonce */
	/* Nothing owed: no deadline on the client; the server waits for the next frame at most idle_timeout. */
	assert_true(session_client_next_deadline(c) == UINT64_MAX);
	assert_true(session_server_next_deadline(s) == 1000 + SESSION_LIMITS_DEFAULT.idle_timeout_usec);
}

/* One round trip of random size under random splits; answers in random order. */
static void roundtrips(uint16_t aead, unsigned iterations) {
	SessionServerConfig sc = server_cfg();
	SessionClientConfig cc = client_cfg();
	cc.aead = aead;
	cc.limits.max_pending = sc.limits.max_pending = 8;
	_cleanup_session_client_ SessionClient *c = NULL;
	_cleanup_session_server_ SessionServer *s = NULL;
	handshake(&c, &s, &cc, &sc);

	uint8_t *sent[8] = {0};
	size_t sent_len[8] = {0};
	uint32_t next = 0;
	for (unsigned it = 0; it < iterations; it++) {
		unsigned batch = (unsigned)rand() % 8 + 1;
		uint32_t seqs[8];
		for (unsigned b = 0; b < batch; b++) {
			size_t len = (rand() % 4 == 0) ? (size_t)(rand() % 70000) : (size_t)(rand() % 300);
			uint8_t *p = malloc(len + 1);
			assert_non_null(p);
			for (size_t i = 0; i < len; i++) p[i] = (uint8_t)rand();
			assert_int_equal(session_client_request(c, p, len, 2000, &seqs[b]), 0);
			assert_int_equal(seqs[b], next++);
			sent[b] = p, sent_len[b] = len;
		}
		c2s(c, s, 2000, (size_t)(rand() % 3000) + 1);
		assert_int_equal(session_server_status(s)->state, SESSION_OPEN);
		/* The server sees them in order and answers in a shuffled order with a transformed body. */
		uint32_t got[8];
		uint8_t *req[8];
		size_t req_len[8];
		for (unsigned b = 0; b < batch; b++) {
			assert_int_equal(session_server_next_request(s, &got[b], &req[b], &req_len[b]), 1);
			assert_int_equal(got[b], seqs[b]);
			assert_int_equal(req_len[b], sent_len[b]);
			if (req_len[b]) assert_memory_equal(req[b], sent[b], req_len[b]);
		}
		uint32_t dummy;
		uint8_t *dp;
		size_t dl;
		assert_int_equal(session_server_next_request(s, &dummy, &dp, &dl), 0);
		for (unsigned b = batch; b > 1; b--) {
			unsigned j = (unsigned)rand() % b;
			uint32_t t = got[b - 1]; got[b - 1] = got[j]; got[j] = t;
			uint8_t *tp = req[b - 1]; req[b - 1] = req[j]; req[j] = tp;
			size_t tl = req_len[b - 1]; req_len[b - 1] = req_len[j]; req_len[j] = tl;
		}
		for (unsigned b = 0; b < batch; b++) {
			for (size_t i = 0; i < req_len[b]; i++) req[b][i] ^= 0x5a;
			assert_int_equal(session_server_respond(s, got[b], req[b], req_len[b], 2000), 0);
			assert_int_equal(session_server_respond(s, got[b], req[b], req_len[b], 2000), -ESRCH);
			free_secret(req[b], req_len[b]);
		}
		s2c(s, c, 2000, (size_t)(rand() % 3000) + 1);
		if (session_client_status(c)->state != SESSION_OPEN)
			fail_msg("client: %s %s", session_error_name(session_client_status(c)->error),
				 session_client_status(c)->message);
		for (unsigned b = 0; b < batch; b++) {
			uint32_t seq;
			uint8_t *r;
			size_t rl;
			assert_int_equal(session_client_next_response(c, &seq, &r, &rl), 1);
			assert_int_equal(seq, got[b]);
			unsigned idx = seq - seqs[0];
			assert_true(idx < batch);
			assert_int_equal(rl, sent_len[idx]);
			for (size_t i = 0; i < rl; i++) assert_int_equal(r[i], sent[idx][i] ^ 0x5a);
			free_secret(r, rl);
		}
		for (unsigned b = 0; b < batch; b++) free(sent[b]);
	}
	assert_int_equal(session_client_close(c), 0);
	c2s(c, s, 3000, 0);
	assert_int_equal(session_server_status(s)->state, SESSION_CLOSED);
	assert_int_equal(session_server_eof(s), 0);
	assert_int_equal(session_client_eof(c), 0);
}

static void test_roundtrip_chacha(void **state) { roundtrips(HPKE_AEAD_CHACHA20_POLY1305, 60); }
static void test_roundtrip_aes(void **state) { roundtrips(HPKE_AEAD_AES_256_GCM, 30); }

static void test_empty_and_default_aead(void **state) {
	SessionServerConfig sc = server_cfg();
	sc.user_data.has_model = false;
	SessionClientConfig cc = client_cfg();
	_cleanup_session_client_ SessionClient *c = NULL;
	_cleanup_session_server_ SessionServer *s = NULL;
	handshake(&c, &s, &cc, &sc);
	assert_false(session_client_peer(c)->has_model);
	assert_int_equal(session_client_request(c, NULL, 0, 5, NULL), 0);
	c2s(c, s, 5, 0);
	uint32_t seq;
	uint8_t *p;
	size_t n;
	assert_int_equal(session_server_next_request(s, &seq, &p, &n), 1);
	assert_int_equal(n, 0);
	free(p);
	assert_int_equal(session_server_respond(s, 0, NULL, 0, 5), 0);
	/* The server answers and closes at once: the client still gets the answer. */
	assert_int_equal(session_server_close(s), 0);
	s2c(s, c, 5, 0);
	assert_int_equal(session_client_status(c)->state, SESSION_CLOSED);
	assert_int_equal(session_client_next_response(c, &seq, &p, &n), 1);
	assert_int_equal(n, 0);
	free(p);
	assert_int_equal(session_client_request(c, "x", 1, 5, NULL), -EPIPE);
}

/* ---- bit flips ------------------------------------------------------------------------------------- */

enum { F_HELLO, F_ATTEST, F_REQ0, F_RESP0, F_REQ1, F_RESP1, F_CLOSE, N_FRAMES };

/* Move pending output of one side to the other as one frame, flipping bit `bit` if this frame is `target`. */
static void xfer(const uint8_t *p, size_t n, int idx, int target, size_t bit, uint8_t *copy,
		 size_t *ret_len) {
	assert_true(n <= 4096);
	if (n) memcpy(copy, p, n);
	if (idx == target && bit / 8 < n) copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	*ret_len = n;
}

/* A whole scripted session; returns true when it completed cleanly with every payload intact. Frame sizes of
 * the unmodified run are written to sizes. */
static bool scripted(int target, size_t bit, size_t sizes[N_FRAMES]) {
	SessionServerConfig sc = server_cfg();
	SessionClientConfig cc = client_cfg();
	_cleanup_session_client_ SessionClient *c = NULL;
	_cleanup_session_server_ SessionServer *s = NULL;
	uint8_t buf[4096];
	size_t n, len;
	const uint8_t *p;
	uint64_t now = 10;
	bool ok = true;
	int idx = 0;

	assert_int_equal(session_client_new(&cc, now, &c), 0);
	assert_int_equal(session_server_new(&sc, now, &s), 0);
#define C2S()                                                                                               \
	do {                                                                                                \
		p = session_client_pending_output(c, &n);                                                   \
		xfer(p, n, idx, target, bit, buf, &len);                                                    \
		if (sizes) sizes[idx] = n;                                                                  \
		session_client_output_advance(c, n);                                                        \
		(void)session_server_feed(s, buf, len, now);                                                \
		idx++;                                                                                      \
	} while (0)
#define S2C()                                                                                               \
	do {                                                                                                \
		p = session_server_pending_output(s, &n);                                                   \
		xfer(p, n, idx, target, bit, buf, &len);                                                    \
		if (sizes) sizes[idx] = n;                                                                  \
		session_server_output_advance(s, n);                                                        \
		(void)session_client_feed(c, buf, len, now);                                                \
		idx++;                                                                                      \
	} while (0)
	C2S(); /* HELLO */
	S2C(); /* ATTEST */
	for (int i = 0; i < 2; i++) {
		char msg[32];
		snprintf(msg, sizeof msg, "request number %d", i);
		if (session_client_request(c, msg, strlen(msg), now, NULL) < 0) ok = false;
		C2S();
		uint32_t seq;
		uint8_t *rq;
		size_t rl;
		if (session_server_next_request(s, &seq, &rq, &rl) == 1) {
			if (seq != (uint32_t)i || rl != strlen(msg) || memcmp(rq, msg, rl) != 0) ok = false;
			rq[0] = 'R';
			(void)session_server_respond(s, seq, rq, rl, now);
			free_secret(rq, rl);
		} else
			ok = false;
		S2C();
		if (session_client_next_response(c, &seq, &rq, &rl) == 1) {
			msg[0] = 'R';
			if (seq != (uint32_t)i || rl != strlen(msg) || memcmp(rq, msg, rl) != 0) ok = false;
			free_secret(rq, rl);
		} else
			ok = false;
	}
	(void)session_client_close(c);
	C2S(); /* CLOSE */
	/* Whatever either side still has to say (an ERROR), then both streams end. */
	p = session_server_pending_output(s, &n);
	(void)session_client_feed(c, p, n, now);
	session_server_output_advance(s, n);
	(void)session_server_eof(s);
	(void)session_client_eof(c);
#undef C2S
#undef S2C
	if (session_client_status(c)->state != SESSION_CLOSED || session_server_status(s)->state != SESSION_CLOSED)
		ok = false;
	/* Neither side may be left waiting without a deadline: both are over. */
	assert_true(session_client_next_deadline(c) == UINT64_MAX);
	assert_true(session_server_next_deadline(s) == UINT64_MAX);
	return ok;
}

static void test_bit_flips(void **state) {
	size_t sizes[N_FRAMES];
	assert_true(scripted(-1, 0, sizes));
	size_t runs = 0;
	for (int f = 0; f < N_FRAMES; f++) {
		assert_true(sizes[f] >= FRAME_HEADER_SIZE);
		for (size_t b = 0; b < sizes[f] * 8; b++) {
			if (scripted(f, b, NULL)) fail_msg("flipping bit %zu of frame %d went unnoticed", b, f);
			runs++;
		}
	}
	print_message("%zu single-bit corruptions, every one ended the session with an error\n", runs);
}

/* An ERROR frame corrupted in transit still ends the session, and the intact one carries its code. */
static void test_error_frame_flips(void **state) {
	SessionServerConfig sc = server_cfg();
	SessionClientConfig cc = client_cfg();
	size_t n;
	uint8_t buf[1024];
	for (size_t bit = 0;; bit++) {
		_cleanup_session_client_ SessionClient *c = NULL;
		_cleanup_session_server_ SessionServer *s = NULL;
		handshake(&c, &s, &cc, &sc);
		assert_int_equal(session_server_fail(s, SESSION_NO_MODEL, "no model loaded"), 0);
		assert_int_equal(session_server_status(s)->state, SESSION_FAILED);
		const uint8_t *p = session_server_pending_output(s, &n);
		assert_true(n < sizeof buf);
		if (bit >= n * 8) break;
		memcpy(buf, p, n);
		if (bit == 0) {
			assert_int_equal(session_client_feed(c, buf, n, 1), -ECONNRESET);
			assert_int_equal(session_client_status(c)->error, SESSION_REMOTE);
			assert_string_equal(session_client_status(c)->remote_code, "NO_MODEL");
			assert_string_equal(session_client_status(c)->message, "no model loaded");
			continue;
		}
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		(void)session_client_feed(c, buf, n, 1);
		(void)session_client_eof(c);
		assert_int_equal(session_client_status(c)->state, SESSION_FAILED);
	}
}

/* ---- replay, reorder, splicing ---------------------------------------------------------------------- */

static uint8_t *take_output_client(SessionClient *c, size_t *ret_len) {
	const uint8_t *p = session_client_pending_output(c, ret_len);
	uint8_t *d = malloc(*ret_len);
	assert_non_null(d);
	memcpy(d, p, *ret_len);
	session_client_output_advance(c, *ret_len);
	return d;
}

static void test_replay_reorder(void **state) {
	SessionServerConfig sc = server_cfg();
	SessionClientConfig cc = client_cfg();
	size_t l0, l1, l2;
	for (int scenario = 0; scenario < 4; scenario++) {
		_cleanup_session_client_ SessionClient *c = NULL;
		_cleanup_session_server_ SessionServer *s = NULL;
		handshake(&c, &s, &cc, &sc);
		assert_int_equal(session_client_request(c, "zero", 4, 1, NULL), 0);
		_cleanup_free_ uint8_t *r0 = take_output_client(c, &l0);
		assert_int_equal(session_client_request(c, "one", 3, 1, NULL), 0);
		_cleanup_free_ uint8_t *r1 = take_output_client(c, &l1);
		assert_int_equal(session_client_request(c, "two", 3, 1, NULL), 0);
		_cleanup_free_ uint8_t *r2 = take_output_client(c, &l2);
		switch (scenario) {
		case 0: /* replay of REQUEST 0 */
			assert_int_equal(session_server_feed(s, r0, l0, 1), 0);
			assert_int_equal(session_server_feed(s, r0, l0, 1), -EPROTO);
			assert_int_equal(session_server_status(s)->error, SESSION_SEQ);
			break;
		case 1: /* reorder */
			assert_int_equal(session_server_feed(s, r0, l0, 1), 0);
			assert_int_equal(session_server_feed(s, r2, l2, 1), -EPROTO);
			assert_int_equal(session_server_status(s)->error, SESSION_SEQ);
			break;
		case 2: /* REQUEST 2's body under REQUEST 1's header: the header is the AAD, the seq the nonce */
			assert_int_equal(session_server_feed(s, r0, l0, 1), 0);
			r2[7] = 1;
			assert_int_equal(session_server_feed(s, r2, l2, 1), -EBADMSG);
			assert_int_equal(session_server_status(s)->error, SESSION_DECRYPT_FAILED);
			break;
		case 3: /* a later request replayed as the first one (seq rewritten to 0, enc prepended) */ {
			uint8_t forged[256];
			memcpy(forged, r0, FRAME_HEADER_SIZE + 32);
			memcpy(forged + FRAME_HEADER_SIZE + 32, r1 + FRAME_HEADER_SIZE, l1 - FRAME_HEADER_SIZE);
			size_t fl = FRAME_HEADER_SIZE + 32 + l1 - FRAME_HEADER_SIZE;
			forged[11] = (uint8_t)(fl - FRAME_HEADER_SIZE);
			assert_int_equal(session_server_feed(s, forged, fl, 1), -EBADMSG);
			assert_int_equal(session_server_status(s)->error, SESSION_DECRYPT_FAILED);
			break;
		}
		}
		/* The failing side told the client why. */
		s2c(s, c, 1, 0);
		assert_int_equal(session_client_status(c)->error, SESSION_REMOTE);
		/* Nothing is left to use: every later call refuses. */
		assert_int_equal(session_server_feed(s, r0, l0, 1), -EPIPE);
		assert_int_equal(session_server_respond(s, 0, "x", 1, 1), -EPIPE);
	}
}

static void test_response_replay(void **state) {
	SessionServerConfig sc = server_cfg();
	SessionClientConfig cc = client_cfg();
	for (int scenario = 0; scenario < 2; scenario++) {
		_cleanup_session_client_ SessionClient *c = NULL;
		_cleanup_session_server_ SessionServer *s = NULL;
		handshake(&c, &s, &cc, &sc);
		assert_int_equal(session_client_request(c, "a", 1, 1, NULL), 0);
		assert_int_equal(session_client_request(c, "b", 1, 1, NULL), 0);
		c2s(c, s, 1, 0);
		uint32_t seq;
		uint8_t *p;
		size_t n;
		for (int i = 0; i < 2; i++) {
			assert_int_equal(session_server_next_request(s, &seq, &p, &n), 1);
			assert_int_equal(session_server_respond(s, seq, p, n, 1), 0);
			free(p);
		}
		const uint8_t *o = session_server_pending_output(s, &n);
		uint8_t out[256];
		memcpy(out, o, n);
		size_t half = n / 2;
		if (scenario == 0) { /* RESPONSE 0 twice */
			assert_int_equal(session_client_feed(c, out, half, 1), 0);
			assert_int_equal(session_client_feed(c, out, half, 1), -EPROTO);
			assert_int_equal(session_client_status(c)->error, SESSION_SEQ);
		} else { /* RESPONSE 0's body labelled as RESPONSE 1 */
			out[7] = 1;
			assert_int_equal(session_client_feed(c, out, half, 1), -EBADMSG);
			assert_int_equal(session_client_status(c)->error, SESSION_DECRYPT_FAILED);
		}
	}
}

/* ---- handshake failures -------------------------------------------------------------------------- */

static void feed_hello(cbor_item_t *m, SessionError expect) {
	SessionServerConfig sc = server_cfg();
	_cleanup_session_server_ SessionServer *s = NULL;
	_cleanup_free_ uint8_t *p = NULL, *f = NULL;
	size_t n, fl;
	assert_int_equal(ecbor_encode(m, &p, &n), 0);
	cbor_decref(&m);
	assert_int_equal(frame_encode(FRAME_HELLO, 0, p, n, &f, &fl), 0);
	assert_int_equal(session_server_new(&sc, 0, &s), 0);
	int r = session_server_feed(s, f, fl, 0);
	if (expect == SESSION_OK) {
		assert_int_equal(r, 0);
		assert_int_equal(session_server_status(s)->state, SESSION_OPEN);
		return;
	}
	assert_true(r < 0);
	assert_int_equal(session_server_status(s)->error, expect);
	/* The reply is an ERROR frame naming the code. */
	const uint8_t *o = session_server_pending_output(s, &n);
	struct frame_header h;
	assert_true(n > FRAME_HEADER_SIZE);
	assert_int_equal(frame_header_decode(o, 0, &h), 0);
	assert_int_equal(h.type, FRAME_ERROR);
	_cleanup_cbor_ cbor_item_t *e = NULL;
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	lim.deterministic = true;
	assert_int_equal(ecbor_decode(o + FRAME_HEADER_SIZE, h.length, &lim, &e), 0);
	assert_true(ecbor_tstr_equal(ecbor_map_get_text(e, "code"), session_error_name(expect)));
}

static cbor_item_t *hello(int v, size_t nonce_len, int64_t aead, const char *extra) {
	uint8_t nonce[64] = {1, 2, 3};
	cbor_item_t *m = ecbor_map();
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("v"), ecbor_uint((uint64_t)v)), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("nonce"), ecbor_bstr(nonce, nonce_len)), 0);
	if (aead >= 0) assert_int_equal(ecbor_map_put(m, ecbor_tstr("aead"), ecbor_uint((uint64_t)aead)), 0);
	if (extra) assert_int_equal(ecbor_map_put(m, ecbor_tstr(extra), ecbor_uint(0)), 0);
	return m;
}

static void test_bad_hello(void **state) {
	feed_hello(hello(1, 32, -1, NULL), SESSION_OK); /* aead defaults to ChaCha20-Poly1305 */
	feed_hello(hello(1, 32, 2, NULL), SESSION_OK);
	feed_hello(hello(1, 32, 3, NULL), SESSION_OK);
	feed_hello(hello(1, 32, 1, NULL), SESSION_BAD_HELLO); /* AES-128-GCM is not offered */
	feed_hello(hello(1, 32, 0xffff, NULL), SESSION_BAD_HELLO);
	feed_hello(hello(2, 32, -1, NULL), SESSION_BAD_HELLO);
	feed_hello(hello(1, 31, -1, NULL), SESSION_BAD_HELLO);
	feed_hello(hello(1, 33, -1, NULL), SESSION_BAD_HELLO);
	feed_hello(hello(1, 32, 3, "x"), SESSION_BAD_HELLO);
	feed_hello(ecbor_array(), SESSION_BAD_HELLO);

	/* Not deterministic: a non-preferred head for v. */
	SessionServerConfig sc = server_cfg();
	_cleanup_session_server_ SessionServer *s = NULL;
	assert_int_equal(session_server_new(&sc, 0, &s), 0);
	uint8_t frame[FRAME_HEADER_SIZE + 64];
	uint8_t pl[] = {0xa2, 0x61, 'v', 0x18, 0x01, 0x65, 'n', 'o', 'n', 'c', 'e', 0x58, 0x20};
	size_t n = sizeof pl + 32;
	frame_header_encode(&(struct frame_header){.type = FRAME_HELLO, .length = (uint32_t)n}, frame);
	memcpy(frame + FRAME_HEADER_SIZE, pl, sizeof pl);
	memset(frame + FRAME_HEADER_SIZE + sizeof pl, 7, 32);
	assert_true(session_server_feed(s, frame, FRAME_HEADER_SIZE + n, 0) < 0);
	assert_int_equal(session_server_status(s)->error, SESSION_BAD_HELLO);

	/* A frame other than HELLO first. */
	_cleanup_session_server_ SessionServer *s2 = NULL;
	assert_int_equal(session_server_new(&sc, 0, &s2), 0);
	frame_header_encode(&(struct frame_header){.type = FRAME_REQUEST, .length = 0}, frame);
	assert_true(session_server_feed(s2, frame, FRAME_HEADER_SIZE, 0) < 0);
	assert_int_equal(session_server_status(s2)->error, SESSION_BAD_FRAME);
	/* An oversized HELLO is refused on its header, before its payload arrives. */
	_cleanup_session_server_ SessionServer *s3 = NULL;
	assert_int_equal(session_server_new(&sc, 0, &s3), 0);
	frame_header_encode(&(struct frame_header){.type = FRAME_HELLO, .length = 1u << 20}, frame);
	assert_int_equal(session_server_feed(s3, frame, FRAME_HEADER_SIZE, 0), -EMSGSIZE);
	assert_int_equal(session_server_status(s3)->error, SESSION_LIMIT);
}

static void test_attestation_refused(void **state) {
	SessionServerConfig sc = server_cfg();
	SessionClientConfig cc = client_cfg();
	cc.verify_attestation = refuse_verify;
	_cleanup_session_client_ SessionClient *c = NULL;
	_cleanup_session_server_ SessionServer *s = NULL;
	assert_int_equal(session_client_new(&cc, 0, &c), 0);
	assert_int_equal(session_server_new(&sc, 0, &s), 0);
	c2s(c, s, 0, 0);
	size_t n;
	const uint8_t *p = session_server_pending_output(s, &n);
	assert_int_equal(session_client_feed(c, p, n, 0), -EPROTO);
	session_server_output_advance(s, n);
	assert_int_equal(session_client_status(c)->error, SESSION_ATTEST_FAILED);
	assert_non_null(strstr(session_client_status(c)->message, "PCR0 not allowed"));
	assert_null(session_client_peer(c));
	assert_int_equal(session_client_request(c, "x", 1, 0, NULL), -EPIPE);
	c2s(c, s, 0, 0); /* the client's ERROR reaches the server */
	assert_int_equal(session_server_status(s)->error, SESSION_REMOTE);
	assert_string_equal(session_server_status(s)->remote_code, "ATTEST_FAILED");

	/* A server whose attestation source fails says so. */
	sc.make_attestation = NULL;
	assert_int_equal(session_server_new(&sc, 0, &s), -EINVAL);
}

static int bad_user_data_make(void *userdata, const uint8_t *nonce, size_t nonce_len, const uint8_t *pk,
			      size_t pk_len, const uint8_t *ud, size_t ud_len, uint8_t **ret, size_t *ret_len) {
	static const uint8_t junk[] = {0xa1, 0x61, 'v', 0x01};
	return fake_make(userdata, nonce, nonce_len, pk, pk_len, junk, sizeof junk, ret, ret_len);
}

static void test_bad_user_data(void **state) {
	SessionServerConfig sc = server_cfg();
	sc.make_attestation = bad_user_data_make;
	SessionClientConfig cc = client_cfg();
	_cleanup_session_client_ SessionClient *c = NULL;
	_cleanup_session_server_ SessionServer *s = NULL;
	assert_int_equal(session_client_new(&cc, 0, &c), 0);
	assert_int_equal(session_server_new(&sc, 0, &s), 0);
	c2s(c, s, 0, 0);
	s2c(s, c, 0, 0);
	assert_int_equal(session_client_status(c)->error, SESSION_ATTEST_FAILED);
}

static void test_user_data_codec(void **state) {
	SessionUserData u = {.has_model = true}, v;
	memset(u.receipt_key, 9, 32);
	memset(u.model_hash, 8, 32);
	_cleanup_free_ uint8_t *p = NULL;
	size_t n;
	assert_int_equal(session_user_data_encode(&u, &p, &n), 0);
	assert_int_equal(session_user_data_decode(p, n, &v), 0);
	assert_memory_equal(&u, &v, sizeof u);
	/* Every truncation and every single-byte change that keeps it decodable must keep it exact. */
	for (size_t i = 0; i < n; i++) assert_int_equal(session_user_data_decode(p, i, &v), -EBADMSG);
	cbor_item_t *m = ecbor_map();
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("v"), ecbor_uint(2)), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("receipt_key"), ecbor_bstr(u.receipt_key, 32)), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("model"), ecbor_null()), 0);
	_cleanup_free_ uint8_t *q = NULL;
	assert_int_equal(ecbor_encode(m, &q, &n), 0);
	cbor_decref(&m);
	assert_int_equal(session_user_data_decode(q, n, &v), -EBADMSG); /* v must be 1 */
}

/* ---- deadlines ---------------------------------------------------------------------------------------- */

static void test_deadlines(void **state) {
	SessionServerConfig sc = server_cfg();
	SessionClientConfig cc = client_cfg();
	sc.limits.handshake_timeout_usec = cc.limits.handshake_timeout_usec = 1000;
	sc.limits.idle_timeout_usec = cc.limits.idle_timeout_usec = 5000;

	/* Server: no HELLO within the handshake timeout. */
	_cleanup_session_server_ SessionServer *s = NULL;
	assert_int_equal(session_server_new(&sc, 100, &s), 0);
	assert_true(session_server_next_deadline(s) == 1100);
	assert_int_equal(session_server_tick(s, 1099), 0);
	assert_int_equal(session_server_tick(s, 1100), -ETIMEDOUT);
	assert_int_equal(session_server_status(s)->error, SESSION_TIMEOUT);
	assert_true(session_server_next_deadline(s) == UINT64_MAX);
	size_t n;
	assert_non_null(session_server_pending_output(s, &n));

	/* Client: no ATTEST within the handshake timeout; a late feed finds the deadline passed first. */
	_cleanup_session_client_ SessionClient *c = NULL;
	assert_int_equal(session_client_new(&cc, 100, &c), 0);
	assert_true(session_client_next_deadline(c) == 1100);
	assert_int_equal(session_client_feed(c, "E", 1, 1100), -ETIMEDOUT);
	assert_int_equal(session_client_status(c)->error, SESSION_TIMEOUT);

	/* Open session: idle server times out; owed requests stop its clock and start the client's. */
	_cleanup_session_client_ SessionClient *c2 = NULL;
	_cleanup_session_server_ SessionServer *s2 = NULL;
	assert_int_equal(session_client_new(&cc, 0, &c2), 0);
	assert_int_equal(session_server_new(&sc, 0, &s2), 0);
	c2s(c2, s2, 10, 0);
	s2c(s2, c2, 20, 0);
	assert_true(session_server_next_deadline(s2) == 10 + 5000);
	assert_int_equal(session_client_request(c2, "q", 1, 100, NULL), 0);
	assert_true(session_client_next_deadline(c2) == 100 + 5000);
	c2s(c2, s2, 200, 0);
	assert_true(session_server_next_deadline(s2) == UINT64_MAX);
	assert_int_equal(session_server_tick(s2, 1000000), 0);
	uint32_t seq;
	uint8_t *p;
	assert_int_equal(session_server_next_request(s2, &seq, &p, &n), 1);
	free_secret(p, n);
	assert_int_equal(session_client_tick(c2, 5099), 0);
	assert_int_equal(session_client_tick(c2, 5100), -ETIMEDOUT);
	assert_int_equal(session_server_respond(s2, seq, "a", 1, 300), 0);
	assert_true(session_server_next_deadline(s2) == 300 + 5000);
	assert_int_equal(session_server_tick(s2, 5300), -ETIMEDOUT);
	assert_int_equal(session_client_status(c2)->error, SESSION_TIMEOUT);
}

/* ---- limits ----------------------------------------------------------------------------------------- */

static void test_limits(void **state) {
	SessionServerConfig sc = server_cfg();
	SessionClientConfig cc = client_cfg();
	cc.limits.max_request = 1000;
	cc.limits.max_pending = 2;
	cc.limits.max_requests = 3;
	_cleanup_session_client_ SessionClient *c = NULL;
	_cleanup_session_server_ SessionServer *s = NULL;
	static uint8_t big[2000];
	/* Before the handshake there is nothing to seal with. */
	assert_int_equal(session_client_new(&cc, 0, &c), 0);
	assert_int_equal(session_client_request(c, "x", 1, 0, NULL), -EAGAIN);
	c = session_client_free(c);
	handshake(&c, &s, &cc, &sc);
	assert_int_equal(session_client_request(c, big, 1001, 0, NULL), -EMSGSIZE);
	assert_int_equal(session_client_request(c, big, 1000, 0, NULL), 0);
	assert_int_equal(session_client_request(c, big, 10, 0, NULL), 0);
	assert_int_equal(session_client_request(c, big, 10, 0, NULL), -EBUSY);
	c2s(c, s, 0, 0);
	for (int i = 0; i < 2; i++) {
		uint32_t seq;
		uint8_t *p;
		size_t n;
		assert_int_equal(session_server_next_request(s, &seq, &p, &n), 1);
		assert_int_equal(session_server_respond(s, seq, p, n, 0), 0);
		assert_int_equal(session_server_respond(s, seq + 7, p, n, 0), -ESRCH);
		free(p);
	}
	s2c(s, c, 0, 0);
	assert_int_equal(session_client_request(c, big, 10, 0, NULL), 0);
	assert_int_equal(session_client_request(c, big, 10, 0, NULL), -ERANGE); /* max_requests = 3 */
	uint32_t seq;
	uint8_t *p;
	size_t n;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(session_client_next_response(c, &seq, &p, &n), 1);
		assert_int_equal(seq, (uint32_t)i);
		free(p);
	}

	/* Server-side limits against a client that allows more. */
	struct { SessionLimits srv; int sends; size_t size; } cases[] = {
		{{.max_request = 100}, 1, 101},
		{{.max_requests = 2}, 3, 1},
		{{.max_pending = 2}, 3, 1},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		SessionServerConfig sc2 = server_cfg();
		sc2.limits = cases[i].srv;
		SessionClientConfig cc2 = client_cfg();
		_cleanup_session_client_ SessionClient *c2 = NULL;
		_cleanup_session_server_ SessionServer *s2 = NULL;
		handshake(&c2, &s2, &cc2, &sc2);
		for (int k = 0; k < cases[i].sends; k++) {
			assert_int_equal(session_client_request(c2, big, cases[i].size, 0, NULL), 0);
			c2s(c2, s2, 0, 0);
			if (i == 1 && k < 2) { /* answer, so that only the count limit can trip */
				assert_int_equal(session_server_next_request(s2, &seq, &p, &n), 1);
				assert_int_equal(session_server_respond(s2, seq, p, n, 0), 0);
				free(p);
			}
		}
		assert_int_equal(session_server_status(s2)->state, SESSION_FAILED);
		assert_int_equal(session_server_status(s2)->error, SESSION_LIMIT);
	}
}

/* ---- misc protocol rules --------------------------------------------------------------------------- */

static void test_unexpected_frames(void **state) {
	SessionServerConfig sc = server_cfg();
	SessionClientConfig cc = client_cfg();
	const uint8_t types[] = {FRAME_HELLO, FRAME_ATTEST, FRAME_RESPONSE, FRAME_AUDIT, FRAME_CTL};
	for (size_t i = 0; i < sizeof types; i++) { /* to an open server */
		_cleanup_session_client_ SessionClient *c = NULL;
		_cleanup_session_server_ SessionServer *s = NULL;
		handshake(&c, &s, &cc, &sc);
		uint8_t f[FRAME_HEADER_SIZE];
		frame_header_encode(&(struct frame_header){.type = types[i]}, f);
		assert_true(session_server_feed(s, f, sizeof f, 0) < 0);
		assert_int_equal(session_server_status(s)->error, SESSION_BAD_FRAME);
	}
	const uint8_t ctypes[] = {FRAME_HELLO, FRAME_ATTEST, FRAME_REQUEST, FRAME_CTL};
	for (size_t i = 0; i < sizeof ctypes; i++) { /* to an open client */
		_cleanup_session_client_ SessionClient *c = NULL;
		_cleanup_session_server_ SessionServer *s = NULL;
		handshake(&c, &s, &cc, &sc);
		uint8_t f[FRAME_HEADER_SIZE];
		frame_header_encode(&(struct frame_header){.type = ctypes[i]}, f);
		assert_true(session_client_feed(c, f, sizeof f, 0) < 0);
		assert_int_equal(session_client_status(c)->error, SESSION_BAD_FRAME);
	}
}

/* AUDIT frames go toward the relay; a client reached directly checks and ignores them. */
static void test_audit_passthrough(void **state) {
	SessionServerConfig sc = server_cfg();
	SessionClientConfig cc = client_cfg();
	_cleanup_session_client_ SessionClient *c = NULL;
	_cleanup_session_server_ SessionServer *s = NULL;
	handshake(&c, &s, &cc, &sc);
	struct audit_record a = {.inputs = 2, .tokens = 17, .duration_us = 1234};
	strcpy(a.model_id, "minilm");
	strcpy(a.status, "ok");
	_cleanup_free_ uint8_t *p = NULL;
	size_t n;
	assert_int_equal(audit_encode(&a, &p, &n), 0);
	assert_int_equal(session_server_audit(s, 0, "junk", 4), -EINVAL);
	assert_int_equal(session_server_audit(s, 0, p, n), 0);
	s2c(s, c, 0, 0);
	assert_int_equal(session_client_status(c)->state, SESSION_OPEN);
	uint8_t f[FRAME_HEADER_SIZE + 4] = {0};
	frame_header_encode(&(struct frame_header){.type = FRAME_AUDIT, .length = 4}, f);
	assert_true(session_client_feed(c, f, sizeof f, 0) < 0);
	assert_int_equal(session_client_status(c)->error, SESSION_BAD_FRAME);
}

static void test_eof(void **state) {
	SessionServerConfig sc = server_cfg();
	SessionClientConfig cc = client_cfg();
	_cleanup_session_client_ SessionClient *c = NULL;
	_cleanup_session_server_ SessionServer *s = NULL;
	handshake(&c, &s, &cc, &sc);
	assert_int_equal(session_client_request(c, "abc", 3, 0, NULL), 0);
	size_t n;
	const uint8_t *p = session_client_pending_output(c, &n);
	assert_int_equal(session_server_feed(s, p, n - 1, 0), 0);
	assert_int_equal(session_server_eof(s), -EPROTO);
	assert_int_equal(session_server_status(s)->error, SESSION_BAD_FRAME);
	assert_non_null(strstr(session_server_status(s)->message, "inside a frame"));
	assert_int_equal(session_client_eof(c), -EPROTO);
	assert_non_null(strstr(session_client_status(c)->message, "without CLOSE"));
}

/* A client that sends a request and closes at once wants no answer: the server drops (wipes) the request. */
static void test_close_drops_requests(void **state) {
	SessionServerConfig sc = server_cfg();
	SessionClientConfig cc = client_cfg();
	_cleanup_session_client_ SessionClient *c = NULL;
	_cleanup_session_server_ SessionServer *s = NULL;
	handshake(&c, &s, &cc, &sc);
	assert_int_equal(session_client_request(c, "late", 4, 0, NULL), 0);
	assert_int_equal(session_client_close(c), 0);
	assert_int_equal(session_client_request(c, "x", 1, 0, NULL), -EPIPE);
	c2s(c, s, 0, 0);
	assert_int_equal(session_server_status(s)->state, SESSION_CLOSED);
	uint32_t seq;
	uint8_t *p;
	size_t n;
	assert_int_equal(session_server_next_request(s, &seq, &p, &n), 0);
	assert_int_equal(session_server_respond(s, 0, "x", 1, 0), -EPIPE);
	assert_int_equal(session_server_eof(s), 0);
}

int main(void) {
	srand(12345);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake),
		cmocka_unit_test(test_roundtrip_chacha),
		cmocka_unit_test(test_roundtrip_aes),
		cmocka_unit_test(test_empty_and_default_aead),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_error_frame_flips),
		cmocka_unit_test(test_replay_reorder),
		cmocka_unit_test(test_response_replay),
		cmocka_unit_test(test_bad_hello),
		cmocka_unit_test(test_attestation_refused),
		cmocka_unit_test(test_bad_user_data),
		cmocka_unit_test(test_user_data_codec),
		cmocka_unit_test(test_deadlines),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_unexpected_frames),
		cmocka_unit_test(test_audit_passthrough),
		cmocka_unit_test(test_eof),
		cmocka_unit_test(test_close_drops_requests),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
