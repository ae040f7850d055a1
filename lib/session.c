/* session.c: client and server machines of the attested session (see session.h and eml-protocol(7)). */
#include "session.h"

#include <errno.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "attest.h"
#include "audit.h"
#include "cbor.h"
#include "frame.h"
#include "hpke.h"
#include "util.h"

#define HELLO_MAX 128
#define ERROR_PAYLOAD_MAX 512
#define ATTEST_PAYLOAD_MAX (ATTEST_DOC_MAX + 16)
#define REQUEST_OVERHEAD (HPKE_KEY_LEN + HPKE_TAG_LEN)

static const char *const error_names[_SESSION_ERROR_MAX] = {
	[SESSION_OK] = "OK",
	[SESSION_BAD_FRAME] = "BAD_FRAME",
	[SESSION_BAD_HELLO] = "BAD_HELLO",
	[SESSION_ATTEST_FAILED] = "ATTEST_FAILED",
	[SESSION_DECRYPT_FAILED] = "DECRYPT_FAILED",
	[SESSION_SEQ] = "SEQ",
	[SESSION_LIMIT] = "LIMIT",
	[SESSION_TIMEOUT] = "TIMEOUT",
	[SESSION_INTERNAL] = "INTERNAL",
	[SESSION_BUSY] = "BUSY",
	[SESSION_NO_MODEL] = "NO_MODEL",
	[SESSION_REMOTE] = "REMOTE",
};

const char *session_error_name(SessionError e) {
	return (unsigned)e < _SESSION_ERROR_MAX ? error_names[e] : "INTERNAL";
}

const char *session_state_name(SessionState s) {
	switch (s) {
	case SESSION_HANDSHAKE: return "handshake";
	case SESSION_OPEN: return "open";
	case SESSION_CLOSED: return "closed";
	case SESSION_FAILED: return "failed";
	}
	return "?";
}

/* ---- pieces shared by both sides ------------------------------------------------------------------- */

struct msg {
	struct msg *next;
	uint32_t seq;
	uint8_t *data;
	size_t len;
};

struct owed {
	uint32_t seq;
	bool taken; /* server: handed to the application */
};

/* One side of a connection: framing in, bytes out, sequence bookkeeping, status and deadlines. */
struct core {
	SessionLimits lim;
	SessionStatus st;
	struct frame_decoder dec;
	uint8_t *out;
	size_t out_start, out_len, out_cap; /* pending bytes are out[out_start .. out_start + out_len) */
	struct msg *q_head, *q_tail;         /* opened plaintexts not yet taken */
	struct owed *owed;                   /* max_pending entries */
	size_t n_owed;
	uint64_t created, last_activity;
	bool close_seen;
	uint16_t aead;
	struct hpke_ctx *req;  /* requests: client seals, server opens */
	struct hpke_ctx *resp; /* responses: server seals, client opens */
	uint8_t doc_sha256[32];
};

static void limits_fill(SessionLimits *l, const SessionLimits *in) {
	SessionLimits d = SESSION_LIMITS_DEFAULT;
	*l = *in;
	if (!l->max_request) l->max_request = d.max_request;
	if (!l->max_response) l->max_response = d.max_response;
	if (!l->max_requests) l->max_requests = d.max_requests;
	if (!l->max_pending) l->max_pending = d.max_pending;
	if (!l->handshake_timeout_usec) l->handshake_timeout_usec = d.handshake_timeout_usec;
	if (!l->idle_timeout_usec) l->idle_timeout_usec = d.idle_timeout_usec;
	/* A frame must fit under the framing cap with its overhead. */
	l->max_request = MIN(l->max_request, FRAME_MAX_PAYLOAD - REQUEST_OVERHEAD);
	l->max_response = MIN(l->max_response, FRAME_MAX_PAYLOAD - HPKE_TAG_LEN);
	l->max_pending = MIN(l->max_pending, 1u << 16);
}

static int core_init(struct core *k, const SessionLimits *lim, uint32_t max_in, uint64_t now) {
	limits_fill(&k->lim, lim);
	k->owed = calloc(k->lim.max_pending, sizeof *k->owed);
	if (!k->owed)
		return -ENOMEM;
	frame_decoder_init(&k->dec, max_in);
	k->created = k->last_activity = now;
	k->st.state = SESSION_HANDSHAKE;
	return 0;
}

static void queue_clear(struct core *k) {
	while (k->q_head) {
		struct msg *m = k->q_head;
		k->q_head = m->next;
		free_secret(m->data, m->len);
		free(m);
	}
	k->q_tail = NULL;
}

/* Drop every secret: used when the session ends and on free. Plaintexts already opened survive a clean
 * close (a server may answer and close at once; the client still takes the answer), not a failure. */
static void core_forget(struct core *k, bool keep_queue) {
	hpke_ctx_free(k->req);
	hpke_ctx_free(k->resp);
	k->req = k->resp = NULL;
	if (!keep_queue)
		queue_clear(k);
	k->n_owed = 0;
	frame_decoder_free(&k->dec);
	frame_decoder_init(&k->dec, 1);
}

static void core_done(struct core *k) {
	core_forget(k, false);
	frame_decoder_free(&k->dec);
	free(k->owed);
	free(k->out);
}

static bool core_over(const struct core *k) {
	return k->st.state == SESSION_CLOSED || k->st.state == SESSION_FAILED;
}

/* Room for n more output bytes; returns where they go (appended by out_commit). */
static uint8_t *out_reserve(struct core *k, size_t n) {
	if (k->out_start > 0 && k->out_start + k->out_len + n > k->out_cap) {
		memmove(k->out, k->out + k->out_start, k->out_len);
		k->out_start = 0;
	}
	if (k->out_len + n > k->out_cap - k->out_start || !k->out) {
		size_t cap = MAX(k->out_cap * 2, k->out_len + n + 256);
		uint8_t *p = realloc(k->out, cap);
		if (!p)
			return NULL;
		k->out = p, k->out_cap = cap;
	}
	return k->out + k->out_start + k->out_len;
}

static void out_commit(struct core *k, size_t n) { k->out_len += n; }

static int out_frame(struct core *k, uint8_t type, uint32_t seq, const uint8_t *payload, size_t len) {
	uint8_t *p = out_reserve(k, FRAME_HEADER_SIZE + len);
	if (!p)
		return -ENOMEM;
	frame_header_encode(&(struct frame_header){.type = type, .seq = seq, .length = (uint32_t)len}, p);
	if (len)
		memcpy(p + FRAME_HEADER_SIZE, payload, len);
	out_commit(k, FRAME_HEADER_SIZE + len);
	return 0;
}

/* Keep only printable ASCII of what the peer or a callback wrote: it ends up in logs and terminals. */
static void copy_printable(char *dst, size_t dst_size, const char *src, size_t n) {
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < dst_size; i++)
		dst[o++] = (src[i] >= 0x20 && src[i] <= 0x7e) ? src[i] : '?';
	dst[o] = 0;
}

static int encode_error(const char *code, const char *message, uint8_t **ret, size_t *ret_len) {
	_cleanup_cbor_ cbor_item_t *m = ecbor_map();
	int r = ecbor_map_put(m, ecbor_tstr("code"), ecbor_tstr(code));
	r = r ?: ecbor_map_put(m, ecbor_tstr("message"), ecbor_tstr(message));
	return r ?: ecbor_encode(m, ret, ret_len);
}

/* End the session with code: status, an ERROR frame for the peer (not when answering the peer's ERROR),
 * secrets dropped. Returns the negative errno the failing call should report. */
_printf_(3, 4) static int core_fail(struct core *k, SessionError code, const char *fmt, ...) {
	if (core_over(k))
		return -EPIPE;
	char msg[SESSION_ERROR_MESSAGE_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	k->st.state = SESSION_FAILED;
	k->st.error = code;
	copy_printable(k->st.message, sizeof k->st.message, msg, strlen(msg));
	if (code != SESSION_REMOTE) {
		_cleanup_free_ uint8_t *p = NULL;
		size_t n;
		if (encode_error(session_error_name(code), k->st.message, &p, &n) == 0)
			(void)out_frame(k, FRAME_ERROR, 0, p, n);
	}
	core_forget(k, false);
	switch (code) {
	case SESSION_TIMEOUT: return -ETIMEDOUT;
	case SESSION_DECRYPT_FAILED: return -EBADMSG;
	case SESSION_LIMIT: return -EMSGSIZE;
	case SESSION_INTERNAL: return -ENOMEM;
	case SESSION_REMOTE: return -ECONNRESET;
	default: return -EPROTO;
	}
}

static int core_close(struct core *k) {
	if (core_over(k))
		return k->st.state == SESSION_CLOSED ? 0 : -EPIPE;
	int r = out_frame(k, FRAME_CLOSE, 0, NULL, 0);
	if (r < 0)
		return core_fail(k, SESSION_INTERNAL, "out of memory");
	k->st.state = SESSION_CLOSED;
	core_forget(k, true);
	return 0;
}

/* ERROR from the peer: {"code": tstr, "message": tstr}, deterministic. A malformed one is still the end. */
static int handle_error_frame(struct core *k, const struct frame_header *h, const uint8_t *p) {
	const struct ecbor_limits lim = {.max_size = ERROR_PAYLOAD_MAX, .max_depth = 1, .max_items = 5,
					 .max_string = SESSION_ERROR_MESSAGE_MAX, .deterministic = true};
	_cleanup_cbor_ cbor_item_t *m = NULL;
	const char *code, *msg;
	size_t code_len, msg_len;
	if (h->seq != 0 || ecbor_decode(p, h->length, &lim, &m) < 0 || !cbor_isa_map(m) || cbor_map_size(m) != 2 ||
	    ecbor_map_text_tstr(m, "code", &code, &code_len) < 0 || code_len == 0 ||
	    code_len > SESSION_ERROR_CODE_MAX || ecbor_map_text_tstr(m, "message", &msg, &msg_len) < 0)
		return core_fail(k, SESSION_BAD_FRAME, "malformed ERROR frame");
	copy_printable(k->st.remote_code, sizeof k->st.remote_code, code, code_len);
	char text[SESSION_ERROR_MESSAGE_MAX + 1];
	copy_printable(text, sizeof text, msg, msg_len);
	return core_fail(k, SESSION_REMOTE, "%s", text);
}

static int handle_close_frame(struct core *k, const struct frame_header *h) {
	if (h->seq != 0 || h->length != 0)
		return core_fail(k, SESSION_BAD_FRAME, "malformed CLOSE frame");
	k->st.state = SESSION_CLOSED;
	k->close_seen = true;
	core_forget(k, true);
	return 0;
}

static int queue_push(struct core *k, uint32_t seq, uint8_t *data, size_t len) {
	struct msg *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->seq = seq, m->data = data, m->len = len;
	if (k->q_tail)
		k->q_tail->next = m;
	else
		k->q_head = m;
	k->q_tail = m;
	return 0;
}

static int queue_pop(struct core *k, uint32_t *ret_seq, uint8_t **ret_data, size_t *ret_len) {
	struct msg *m = k->q_head;
	if (!m)
		return 0;
	k->q_head = m->next;
	if (!k->q_head)
		k->q_tail = NULL;
	*ret_seq = m->seq, *ret_data = m->data, *ret_len = m->len;
	free(m);
	return 1;
}

static ssize_t owed_find(const struct core *k, uint32_t seq) {
	for (size_t i = 0; i < k->n_owed; i++)
		if (k->owed[i].seq == seq)
			return (ssize_t)i;
	return -1;
}

static void owed_remove(struct core *k, size_t i) { k->owed[i] = k->owed[--k->n_owed]; }

/* The key and base nonce of the response channel, exported from the request context (as OHTTP does). */
static int make_response_ctx(struct core *k, bool sender) {
	int nk = hpke_aead_key_len(k->aead);
	uint8_t key[32], nonce[HPKE_NONCE_LEN];
	int r = hpke_export(k->req, (const uint8_t *)SESSION_LABEL_RESPONSE_KEY, strlen(SESSION_LABEL_RESPONSE_KEY),
			    key, (size_t)nk);
	if (r >= 0)
		r = hpke_export(k->req, (const uint8_t *)SESSION_LABEL_RESPONSE_NONCE,
				strlen(SESSION_LABEL_RESPONSE_NONCE), nonce, sizeof nonce);
	if (r >= 0)
		r = hpke_ctx_new_from_key(k->aead, sender, key, (size_t)nk, nonce, &k->resp);
	wipe(key, sizeof key);
	wipe(nonce, sizeof nonce);
	return r;
}

static void session_info(const uint8_t doc_sha256[32], uint8_t *info, size_t *ret_len) {
	size_t n = strlen(SESSION_INFO_PREFIX);
	memcpy(info, SESSION_INFO_PREFIX, n);
	memcpy(info + n, doc_sha256, 32);
	*ret_len = n + 32;
}

typedef int (*frame_handler_t)(void *side, const struct frame_header *h, uint8_t *payload);

/* Run the decoder over all of buf, dispatching each complete frame. */
static int core_feed(struct core *k, void *side, frame_handler_t handle, const uint8_t *buf, size_t len) {
	while (len > 0 && !core_over(k)) {
		size_t used = 0;
		int r = frame_decoder_feed(&k->dec, buf, len, &used);
		if (r == FRAME_E_OVERSIZE)
			return core_fail(k, SESSION_LIMIT, "frame larger than %u bytes", k->dec.max_payload);
		if (r < 0)
			return core_fail(k, SESSION_BAD_FRAME, "%s", frame_strerror(r));
		buf += used, len -= used;
		if (r == 1) {
			struct frame_header h;
			uint8_t *p = NULL;
			r = frame_decoder_take(&k->dec, &h, &p);
			if (r < 0)
				return core_fail(k, SESSION_INTERNAL, "frame decoder");
			r = handle(side, &h, p);
			/* Payloads can hold plaintext (a request being opened in place): wipe before freeing. */
			free_secret(p, h.length);
			if (r < 0)
				return r;
		}
	}
	if (k->st.state == SESSION_FAILED)
		return -EPIPE;
	return 0;
}

static int core_eof(struct core *k) {
	if (k->st.state == SESSION_CLOSED)
		return 0;
	if (k->st.state == SESSION_FAILED)
		return -EPIPE;
	if (frame_decoder_finish(&k->dec) < 0)
		return core_fail(k, SESSION_BAD_FRAME, "stream ended inside a frame");
	return core_fail(k, SESSION_BAD_FRAME, "stream ended without CLOSE");
}

static int core_tick(struct core *k, uint64_t deadline, uint64_t now) {
	if (core_over(k))
		return k->st.state == SESSION_FAILED ? -EPIPE : 0;
	if (now >= deadline)
		return core_fail(k, SESSION_TIMEOUT, k->st.state == SESSION_HANDSHAKE ? "handshake timed out"
										      : "peer idle too long");
	return 0;
}

static const uint8_t *core_pending(const struct core *k, size_t *ret_len) {
	*ret_len = k->out_len;
	return k->out_len ? k->out + k->out_start : NULL;
}

static void core_advance(struct core *k, size_t n) {
	n = MIN(n, k->out_len);
	k->out_start += n, k->out_len -= n;
	if (k->out_len == 0)
		k->out_start = 0;
}

/* ---- user_data ------------------------------------------------------------------------------------- */

int session_user_data_encode(const SessionUserData *u, uint8_t **ret, size_t *ret_len) {
	_cleanup_cbor_ cbor_item_t *m = ecbor_map();
	int r = ecbor_map_put(m, ecbor_tstr("v"), ecbor_uint(1));
	r = r ?: ecbor_map_put(m, ecbor_tstr("receipt_key"), ecbor_bstr(u->receipt_key, 32));
	r = r ?: ecbor_map_put(m, ecbor_tstr("model"), u->has_model ? ecbor_bstr(u->model_hash, 32) : ecbor_null());
	return r ?: ecbor_encode(m, ret, ret_len);
}

int session_user_data_decode(const uint8_t *buf, size_t len, SessionUserData *ret) {
	const struct ecbor_limits lim = {.max_size = ATTEST_USER_DATA_MAX, .max_depth = 1, .max_items = 7,
					 .max_string = 64, .deterministic = true};
	_cleanup_cbor_ cbor_item_t *m = NULL;
	SessionUserData u = {0};
	const uint8_t *p;
	uint64_t v;
	int r = ecbor_decode(buf, len, &lim, &m);
	if (r == -ENOMEM)
		return r;
	if (r < 0 || !cbor_isa_map(m) || cbor_map_size(m) != 3 || ecbor_map_text_uint(m, "v", &v) < 0 || v != 1 ||
	    ecbor_get_bstr_len(ecbor_map_get_text(m, "receipt_key"), 32, &p) < 0)
		return -EBADMSG;
	memcpy(u.receipt_key, p, 32);
	cbor_item_t *model = ecbor_map_get_text(m, "model");
	if (!model)
		return -EBADMSG;
	if (!ecbor_is_null(model)) {
		if (ecbor_get_bstr_len(model, 32, &p) < 0)
			return -EBADMSG;
		memcpy(u.model_hash, p, 32);
		u.has_model = true;
	}
	*ret = u;
	return 0;
}

/* ---- server ---------------------------------------------------------------------------------------- */

struct SessionServer {
	struct core k;
	SessionServerConfig cfg;
	struct hpke_key *key; /* the session's X25519 key until the first REQUEST */
	uint32_t next_seq;
};

int session_server_new(const SessionServerConfig *cfg, uint64_t now_usec, SessionServer **ret) {
	if (!cfg || !cfg->make_attestation || !ret)
		return -EINVAL;
	SessionServer *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	/* Before HELLO only a small frame is acceptable; the cap grows once the handshake is done. */
	int r = core_init(&s->k, &cfg->limits, MAX(HELLO_MAX, ERROR_PAYLOAD_MAX), now_usec);
	if (r < 0) {
		session_server_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

SessionServer *session_server_free(SessionServer *s) {
	if (!s)
		return NULL;
	core_done(&s->k);
	hpke_key_free(s->key);
	free(s);
	return NULL;
}

static void server_forget(SessionServer *s) {
	hpke_key_free(s->key);
	s->key = NULL;
}

static int parse_hello(const uint8_t *p, size_t len, uint8_t nonce[SESSION_NONCE_LEN], uint16_t *ret_aead,
		       const char **why) {
	const struct ecbor_limits lim = {.max_size = HELLO_MAX, .max_depth = 1, .max_items = 7, .max_string = 64,
					 .deterministic = true};
	_cleanup_cbor_ cbor_item_t *m = NULL;
	const uint8_t *n;
	uint64_t v, aead = HPKE_AEAD_CHACHA20_POLY1305;
	*why = "not deterministic CBOR";
	if (ecbor_decode(p, len, &lim, &m) < 0)
		return -EBADMSG;
	*why = "not a map of v, nonce and aead";
	if (!cbor_isa_map(m) || ecbor_map_text_uint(m, "v", &v) < 0)
		return -EBADMSG;
	size_t expect = 2;
	if (ecbor_map_get_text(m, "aead")) {
		expect = 3;
		if (ecbor_map_text_uint(m, "aead", &aead) < 0)
			return -EBADMSG;
	}
	if (cbor_map_size(m) != expect)
		return -EBADMSG;
	*why = "unsupported version";
	if (v != 1)
		return -EBADMSG;
	*why = "nonce is not 32 bytes";
	if (ecbor_get_bstr_len(ecbor_map_get_text(m, "nonce"), SESSION_NONCE_LEN, &n) < 0)
		return -EBADMSG;
	*why = "unsupported aead (2 or 3)";
	if (aead != HPKE_AEAD_CHACHA20_POLY1305 && aead != HPKE_AEAD_AES_256_GCM)
		return -EBADMSG;
	memcpy(nonce, n, SESSION_NONCE_LEN);
	*ret_aead = (uint16_t)aead;
	return 0;
}

static int server_hello(SessionServer *s, const struct frame_header *h, const uint8_t *p) {
	struct core *k = &s->k;
	uint8_t nonce[SESSION_NONCE_LEN];
	const char *why;
	if (k->st.state != SESSION_HANDSHAKE)
		return core_fail(k, SESSION_BAD_FRAME, "HELLO after the handshake");
	if (h->seq != 0)
		return core_fail(k, SESSION_BAD_FRAME, "HELLO with seq %u", h->seq);
	if (parse_hello(p, h->length, nonce, &k->aead, &why) < 0)
		return core_fail(k, SESSION_BAD_HELLO, "%s", why);

	if (hpke_key_generate(&s->key) < 0)
		return core_fail(k, SESSION_INTERNAL, "key generation failed");
	const uint8_t *pk = hpke_key_public(s->key);
	_cleanup_free_ uint8_t *ud = NULL, *doc = NULL, *payload = NULL;
	size_t ud_len, doc_len = 0, payload_len;
	if (session_user_data_encode(&s->cfg.user_data, &ud, &ud_len) < 0)
		return core_fail(k, SESSION_INTERNAL, "out of memory");
	int r = s->cfg.make_attestation(s->cfg.userdata, nonce, sizeof nonce, pk, HPKE_KEY_LEN, ud, ud_len, &doc,
					&doc_len);
	if (r < 0 || !doc || doc_len == 0 || doc_len > ATTEST_DOC_MAX)
		return core_fail(k, SESSION_ATTEST_FAILED, "could not produce an attestation document");
	SHA256(doc, doc_len, k->doc_sha256);
	_cleanup_cbor_ cbor_item_t *m = ecbor_map();
	r = ecbor_map_put(m, ecbor_tstr("doc"), ecbor_bstr(doc, doc_len));
	if (r < 0 || ecbor_encode(m, &payload, &payload_len) < 0 || out_frame(k, FRAME_ATTEST, 0, payload, payload_len) < 0)
		return core_fail(k, SESSION_INTERNAL, "out of memory");
	k->st.state = SESSION_OPEN;
	k->dec.max_payload = MAX(k->lim.max_request + REQUEST_OVERHEAD, ERROR_PAYLOAD_MAX);
	return 0;
}

static int server_request(SessionServer *s, const struct frame_header *h, uint8_t *p) {
	struct core *k = &s->k;
	if (k->st.state != SESSION_OPEN)
		return core_fail(k, SESSION_BAD_FRAME, "REQUEST before HELLO");
	if (h->seq != s->next_seq)
		return core_fail(k, SESSION_SEQ, "REQUEST seq %u, expected %u", h->seq, s->next_seq);
	if (h->seq >= k->lim.max_requests)
		return core_fail(k, SESSION_LIMIT, "more than %u requests", k->lim.max_requests);
	if (k->n_owed >= k->lim.max_pending)
		return core_fail(k, SESSION_LIMIT, "more than %u requests pending", k->lim.max_pending);

	uint8_t hdr[FRAME_HEADER_SIZE];
	frame_header_encode(h, hdr);
	uint8_t *ct = p;
	size_t ct_len = h->length;
	if (h->seq == 0) {
		if (ct_len < REQUEST_OVERHEAD)
			return core_fail(k, SESSION_DECRYPT_FAILED, "first REQUEST too short");
		struct hpke_params hp = {.mode = HPKE_MODE_BASE, .aead = k->aead};
		uint8_t info[64];
		session_info(k->doc_sha256, info, &hp.info_len);
		hp.info = info;
		int r = hpke_setup_r_key(&hp, p, s->key, &k->req);
		server_forget(s); /* one session, one use of the key: a failed setup ends it anyway */
		if (r == -ENOMEM)
			return core_fail(k, SESSION_INTERNAL, "out of memory");
		if (r < 0)
			return core_fail(k, SESSION_DECRYPT_FAILED, "bad encapsulated key");
		if ((r = make_response_ctx(k, true)) < 0)
			return core_fail(k, SESSION_INTERNAL, "export failed");
		ct += HPKE_KEY_LEN, ct_len -= HPKE_KEY_LEN;
	}
	if (ct_len < HPKE_TAG_LEN)
		return core_fail(k, SESSION_DECRYPT_FAILED, "REQUEST too short");
	size_t pt_len = ct_len - HPKE_TAG_LEN;
	if (pt_len > k->lim.max_request)
		return core_fail(k, SESSION_LIMIT, "request larger than %u bytes", k->lim.max_request);
	uint8_t *pt = malloc(pt_len ? pt_len : 1);
	if (!pt)
		return core_fail(k, SESSION_INTERNAL, "out of memory");
	int r = hpke_open(k->req, hdr, sizeof hdr, ct, ct_len, pt);
	if (r < 0) {
		free_secret(pt, pt_len);
		return core_fail(k, r == -ENOMEM ? SESSION_INTERNAL : SESSION_DECRYPT_FAILED, "REQUEST %u does not open",
				 h->seq);
	}
	if (queue_push(k, h->seq, pt, pt_len) < 0) {
		free_secret(pt, pt_len);
		return core_fail(k, SESSION_INTERNAL, "out of memory");
	}
	k->owed[k->n_owed++] = (struct owed){.seq = h->seq};
	s->next_seq++;
	return 0;
}

static int server_frame(void *side, const struct frame_header *h, uint8_t *p) {
	SessionServer *s = side;
	switch (h->type) {
	case FRAME_HELLO: return server_hello(s, h, p);
	case FRAME_REQUEST: return server_request(s, h, p);
	case FRAME_ERROR: return handle_error_frame(&s->k, h, p);
	case FRAME_CLOSE:
		/* The client wants no more answers: requests not yet taken are dropped (wiped). */
		queue_clear(&s->k);
		return handle_close_frame(&s->k, h);
	default: return core_fail(&s->k, SESSION_BAD_FRAME, "unexpected %s frame", frame_type_name(h->type));
	}
}

uint64_t session_server_next_deadline(const SessionServer *s) {
	const struct core *k = &s->k;
	if (core_over(k))
		return UINT64_MAX;
	if (k->st.state == SESSION_HANDSHAKE)
		return k->created + k->lim.handshake_timeout_usec;
	/* While the application owes responses, the wait is on us, not the client. */
	if (k->n_owed > 0)
		return UINT64_MAX;
	return k->last_activity + k->lim.idle_timeout_usec;
}

int session_server_tick(SessionServer *s, uint64_t now_usec) {
	int r = core_tick(&s->k, session_server_next_deadline(s), now_usec);
	if (core_over(&s->k))
		server_forget(s);
	return r;
}

int session_server_feed(SessionServer *s, const void *buf, size_t len, uint64_t now_usec) {
	int r = session_server_tick(s, now_usec);
	if (r < 0 || s->k.st.state == SESSION_CLOSED)
		return r;
	if (len)
		s->k.last_activity = now_usec;
	r = core_feed(&s->k, s, server_frame, buf, len);
	if (core_over(&s->k))
		server_forget(s);
	return r;
}

int session_server_eof(SessionServer *s) {
	int r = core_eof(&s->k);
	server_forget(s);
	return r;
}

int session_server_next_request(SessionServer *s, uint32_t *ret_seq, uint8_t **ret_plaintext, size_t *ret_len) {
	int r = queue_pop(&s->k, ret_seq, ret_plaintext, ret_len);
	if (r > 0) {
		ssize_t i = owed_find(&s->k, *ret_seq);
		if (i >= 0)
			s->k.owed[i].taken = true;
	}
	return r;
}

int session_server_respond(SessionServer *s, uint32_t seq, const void *plaintext, size_t len, uint64_t now_usec) {
	struct core *k = &s->k;
	if (core_over(k))
		return -EPIPE;
	ssize_t i = owed_find(k, seq);
	if (i < 0 || !k->owed[i].taken)
		return -ESRCH;
	if (len > k->lim.max_response)
		return -EMSGSIZE;
	uint8_t *p = out_reserve(k, FRAME_HEADER_SIZE + len + HPKE_TAG_LEN);
	if (!p)
		return core_fail(k, SESSION_INTERNAL, "out of memory");
	frame_header_encode(&(struct frame_header){.type = FRAME_RESPONSE, .seq = seq,
						   .length = (uint32_t)(len + HPKE_TAG_LEN)},
			    p);
	hpke_ctx_set_seq(k->resp, seq);
	int r = hpke_seal(k->resp, p, FRAME_HEADER_SIZE, plaintext, len, p + FRAME_HEADER_SIZE);
	if (r < 0)
		return core_fail(k, SESSION_INTERNAL, "seal failed");
	out_commit(k, FRAME_HEADER_SIZE + len + HPKE_TAG_LEN);
	owed_remove(k, (size_t)i);
	k->last_activity = now_usec;
	return 0;
}

int session_server_audit(SessionServer *s, uint32_t seq, const void *payload, size_t len) {
	if (core_over(&s->k))
		return -EPIPE;
	struct audit_record a;
	int r = audit_decode(payload, len, &a);
	if (r < 0)
		return r == -ENOMEM ? r : -EINVAL;
	r = out_frame(&s->k, FRAME_AUDIT, seq, payload, len);
	return r < 0 ? core_fail(&s->k, SESSION_INTERNAL, "out of memory") : 0;
}

int session_server_fail(SessionServer *s, SessionError code, const char *message) {
	if (code == SESSION_OK || code == SESSION_REMOTE || (unsigned)code >= _SESSION_ERROR_MAX)
		return -EINVAL;
	int r = core_fail(&s->k, code, "%s", message ? message : session_error_name(code));
	server_forget(s);
	return r == -EPIPE ? r : 0;
}

int session_server_close(SessionServer *s) {
	server_forget(s);
	queue_clear(&s->k);
	return core_close(&s->k);
}

const uint8_t *session_server_pending_output(const SessionServer *s, size_t *ret_len) {
	return core_pending(&s->k, ret_len);
}

void session_server_output_advance(SessionServer *s, size_t n) { core_advance(&s->k, n); }

const SessionStatus *session_server_status(const SessionServer *s) { return &s->k.st; }

const uint8_t *session_server_doc_sha256(const SessionServer *s) {
	return s->k.st.state == SESSION_HANDSHAKE ? NULL : s->k.doc_sha256;
}

/* ---- client ---------------------------------------------------------------------------------------- */

struct SessionClient {
	struct core k;
	SessionClientConfig cfg;
	uint8_t nonce[SESSION_NONCE_LEN];
	uint8_t enc[HPKE_KEY_LEN];
	SessionUserData peer;
	uint8_t *doc;
	size_t doc_len;
	uint32_t next_seq;
};

int session_client_new(const SessionClientConfig *cfg, uint64_t now_usec, SessionClient **ret) {
	if (!cfg || !cfg->verify_attestation || !ret)
		return -EINVAL;
	uint16_t aead = cfg->aead ? cfg->aead : HPKE_AEAD_CHACHA20_POLY1305;
	if (aead != HPKE_AEAD_CHACHA20_POLY1305 && aead != HPKE_AEAD_AES_256_GCM)
		return -EINVAL;
	_cleanup_(session_client_freep) SessionClient *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	c->k.aead = aead;
	int r = core_init(&c->k, &cfg->limits, ATTEST_PAYLOAD_MAX, now_usec);
	if (r < 0)
		return r;
	if (cfg->nonce)
		memcpy(c->nonce, cfg->nonce, sizeof c->nonce);
	else if (RAND_bytes(c->nonce, sizeof c->nonce) != 1)
		return -EIO;

	_cleanup_cbor_ cbor_item_t *m = ecbor_map();
	_cleanup_free_ uint8_t *p = NULL;
	size_t n;
	r = ecbor_map_put(m, ecbor_tstr("v"), ecbor_uint(1));
	r = r ?: ecbor_map_put(m, ecbor_tstr("nonce"), ecbor_bstr(c->nonce, sizeof c->nonce));
	r = r ?: ecbor_map_put(m, ecbor_tstr("aead"), ecbor_uint(aead));
	r = r ?: ecbor_encode(m, &p, &n);
	r = r ?: out_frame(&c->k, FRAME_HELLO, 0, p, n);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(c);
	return 0;
}

SessionClient *session_client_free(SessionClient *c) {
	if (!c)
		return NULL;
	core_done(&c->k);
	wipe(c->enc, sizeof c->enc);
	free(c->doc);
	free(c);
	return NULL;
}

static int client_attest(SessionClient *c, const struct frame_header *h, const uint8_t *p) {
	struct core *k = &c->k;
	const struct ecbor_limits lim = {.max_size = ATTEST_PAYLOAD_MAX, .max_depth = 1, .max_items = 3,
					 .max_string = ATTEST_DOC_MAX, .deterministic = true};
	_cleanup_cbor_ cbor_item_t *m = NULL;
	const uint8_t *doc;
	size_t doc_len;
	if (k->st.state != SESSION_HANDSHAKE || c->doc)
		return core_fail(k, SESSION_BAD_FRAME, "unexpected ATTEST");
	if (h->seq != 0)
		return core_fail(k, SESSION_BAD_FRAME, "ATTEST with seq %u", h->seq);
	if (ecbor_decode(p, h->length, &lim, &m) < 0 || !cbor_isa_map(m) || cbor_map_size(m) != 1 ||
	    ecbor_map_text_bstr(m, "doc", &doc, &doc_len) < 0 || doc_len == 0)
		return core_fail(k, SESSION_BAD_FRAME, "malformed ATTEST payload");

	_cleanup_free_ SessionAttested *a = calloc(1, sizeof *a);
	if (!a)
		return core_fail(k, SESSION_INTERNAL, "out of memory");
	int r = c->cfg.verify_attestation(c->cfg.userdata, doc, doc_len, c->nonce, sizeof c->nonce, a);
	if (r < 0) {
		a->reason[sizeof a->reason - 1] = 0;
		return core_fail(k, SESSION_ATTEST_FAILED, "attestation refused%s%s", a->reason[0] ? ": " : "",
				 a->reason);
	}
	if (a->public_key_len != HPKE_KEY_LEN)
		return core_fail(k, SESSION_ATTEST_FAILED, "public_key is not a 32-byte X25519 key");
	if (a->user_data_len > sizeof a->user_data || session_user_data_decode(a->user_data, a->user_data_len, &c->peer) < 0)
		return core_fail(k, SESSION_ATTEST_FAILED, "user_data is not {v, receipt_key, model}");

	SHA256(doc, doc_len, k->doc_sha256);
	struct hpke_params hp = {.mode = HPKE_MODE_BASE, .aead = k->aead};
	uint8_t info[64];
	session_info(k->doc_sha256, info, &hp.info_len);
	hp.info = info;
	r = hpke_setup_s(&hp, a->public_key, c->enc, &k->req);
	if (r == -EKEYREJECTED)
		return core_fail(k, SESSION_ATTEST_FAILED, "attested public key is unusable");
	if (r < 0 || make_response_ctx(k, false) < 0)
		return core_fail(k, SESSION_INTERNAL, "key setup failed");
	c->doc = malloc(doc_len);
	if (!c->doc)
		return core_fail(k, SESSION_INTERNAL, "out of memory");
	memcpy(c->doc, doc, doc_len);
	c->doc_len = doc_len;
	k->st.state = SESSION_OPEN;
	k->dec.max_payload = MAX(k->lim.max_response + HPKE_TAG_LEN, ERROR_PAYLOAD_MAX);
	return 0;
}

static int client_response(SessionClient *c, const struct frame_header *h, const uint8_t *p) {
	struct core *k = &c->k;
	if (k->st.state != SESSION_OPEN)
		return core_fail(k, SESSION_BAD_FRAME, "RESPONSE before ATTEST");
	ssize_t i = owed_find(k, h->seq);
	if (i < 0)
		return core_fail(k, SESSION_SEQ, "RESPONSE %u answers no outstanding request", h->seq);
	if (h->length < HPKE_TAG_LEN)
		return core_fail(k, SESSION_DECRYPT_FAILED, "RESPONSE too short");
	size_t pt_len = h->length - HPKE_TAG_LEN;
	if (pt_len > k->lim.max_response)
		return core_fail(k, SESSION_LIMIT, "response larger than %u bytes", k->lim.max_response);
	uint8_t hdr[FRAME_HEADER_SIZE];
	frame_header_encode(h, hdr);
	uint8_t *pt = malloc(pt_len ? pt_len : 1);
	if (!pt)
		return core_fail(k, SESSION_INTERNAL, "out of memory");
	hpke_ctx_set_seq(k->resp, h->seq);
	int r = hpke_open(k->resp, hdr, sizeof hdr, p, h->length, pt);
	if (r < 0) {
		free_secret(pt, pt_len);
		return core_fail(k, r == -ENOMEM ? SESSION_INTERNAL : SESSION_DECRYPT_FAILED,
				 "RESPONSE %u does not open", h->seq);
	}
	if (queue_push(k, h->seq, pt, pt_len) < 0) {
		free_secret(pt, pt_len);
		return core_fail(k, SESSION_INTERNAL, "out of memory");
	}
	owed_remove(k, (size_t)i);
	return 0;
}

static int client_frame(void *side, const struct frame_header *h, uint8_t *p) {
	SessionClient *c = side;
	struct audit_record a;
	switch (h->type) {
	case FRAME_ATTEST: return client_attest(c, h, p);
	case FRAME_RESPONSE: return client_response(c, h, p);
	case FRAME_ERROR: return handle_error_frame(&c->k, h, p);
	case FRAME_CLOSE: return handle_close_frame(&c->k, h);
	case FRAME_AUDIT:
		/* Meant for the relay, which strips it; a direct connection (dev mode) sees it. Checked, ignored. */
		if (audit_decode(p, h->length, &a) < 0)
			return core_fail(&c->k, SESSION_BAD_FRAME, "malformed AUDIT frame");
		return 0;
	default: return core_fail(&c->k, SESSION_BAD_FRAME, "unexpected %s frame", frame_type_name(h->type));
	}
}

uint64_t session_client_next_deadline(const SessionClient *c) {
	const struct core *k = &c->k;
	if (core_over(k))
		return UINT64_MAX;
	if (k->st.state == SESSION_HANDSHAKE)
		return k->created + k->lim.handshake_timeout_usec;
	if (k->n_owed == 0)
		return UINT64_MAX;
	return k->last_activity + k->lim.idle_timeout_usec;
}

int session_client_tick(SessionClient *c, uint64_t now_usec) {
	return core_tick(&c->k, session_client_next_deadline(c), now_usec);
}

int session_client_feed(SessionClient *c, const void *buf, size_t len, uint64_t now_usec) {
	int r = session_client_tick(c, now_usec);
	if (r < 0 || c->k.st.state == SESSION_CLOSED)
		return r;
	if (len)
		c->k.last_activity = now_usec;
	return core_feed(&c->k, c, client_frame, buf, len);
}

int session_client_eof(SessionClient *c) { return core_eof(&c->k); }

int session_client_request(SessionClient *c, const void *plaintext, size_t len, uint64_t now_usec,
			   uint32_t *ret_seq) {
	struct core *k = &c->k;
	if (core_over(k))
		return -EPIPE;
	if (k->st.state != SESSION_OPEN)
		return -EAGAIN;
	if (len > k->lim.max_request)
		return -EMSGSIZE;
	if (k->n_owed >= k->lim.max_pending)
		return -EBUSY;
	if (c->next_seq >= k->lim.max_requests)
		return -ERANGE;
	uint32_t seq = c->next_seq;
	size_t extra = seq == 0 ? HPKE_KEY_LEN : 0, plen = extra + len + HPKE_TAG_LEN;
	uint8_t *p = out_reserve(k, FRAME_HEADER_SIZE + plen);
	if (!p)
		return -ENOMEM;
	frame_header_encode(&(struct frame_header){.type = FRAME_REQUEST, .seq = seq, .length = (uint32_t)plen}, p);
	if (extra)
		memcpy(p + FRAME_HEADER_SIZE, c->enc, HPKE_KEY_LEN);
	int r = hpke_seal(k->req, p, FRAME_HEADER_SIZE, plaintext, len, p + FRAME_HEADER_SIZE + extra);
	if (r < 0)
		return core_fail(k, SESSION_INTERNAL, "seal failed");
	out_commit(k, FRAME_HEADER_SIZE + plen);
	k->owed[k->n_owed++] = (struct owed){.seq = seq};
	c->next_seq++;
	if (k->n_owed == 1)
		k->last_activity = now_usec; /* the response clock starts when something is owed */
	if (ret_seq)
		*ret_seq = seq;
	return 0;
}

int session_client_next_response(SessionClient *c, uint32_t *ret_seq, uint8_t **ret_plaintext, size_t *ret_len) {
	return queue_pop(&c->k, ret_seq, ret_plaintext, ret_len);
}

int session_client_close(SessionClient *c) { return core_close(&c->k); }

const uint8_t *session_client_pending_output(const SessionClient *c, size_t *ret_len) {
	return core_pending(&c->k, ret_len);
}

void session_client_output_advance(SessionClient *c, size_t n) { core_advance(&c->k, n); }

const SessionStatus *session_client_status(const SessionClient *c) { return &c->k.st; }

const SessionUserData *session_client_peer(const SessionClient *c) { return c->doc ? &c->peer : NULL; }

const uint8_t *session_client_doc_sha256(const SessionClient *c) { return c->doc ? c->k.doc_sha256 : NULL; }

const uint8_t *session_client_doc(const SessionClient *c, size_t *ret_len) {
	*ret_len = c->doc_len;
	return c->doc;
}

const uint8_t *session_client_nonce(const SessionClient *c) { return c->nonce; }
