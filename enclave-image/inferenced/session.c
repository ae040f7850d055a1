/* session.c: the session port (vsock 5000): one attested session per connection (lib/session), on its own
 * thread, so a slow or failing session never holds up another. HELLO -> a fresh NSM attestation document
 * (client nonce, the session's X25519 key, user_data with the receipt key and the live model's manifest hash)
 * -> requests {op: "embed", inputs: [text...]} -> embeddings with an AIR v1 receipt each, and one AUDIT frame
 * each for the relay. The session holds a reference to the model that was live when it began, so a reload
 * never changes the model under it. */
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "air.h"
#include "audit.h"
#include "cbor.h"
#include "eml_client.h"
#include "inferenced.h"
#include "log.h"
#include "messages.h"
#include "session-io.h"
#include "session.h"
#include "util.h"

struct session {
	struct daemon *d;
	struct live_model *model; /* NULL: none was live when the session began */
	struct bert_ctx *ctx;
	Nsm *nsm;
	SessionServer *s;
	uint64_t requests;
};

int receipts_init(struct daemon *d) {
	_cleanup_nsm_ Nsm *nsm = NULL;
	int r = nsm_open(d->cfg.nsm_device, &nsm);
	if (r < 0) return r;
	/* The measurements receipts carry, read once from the NSM (DescribePCR): they do not change while we run. */
	for (size_t i = 0; i < AIR_PCR_SLOTS; i++) {
		uint8_t v[64];
		size_t len = 0;
		bool locked;
		if (nsm_describe_pcr(nsm, (uint16_t)air_pcr_index[i], &locked, v, &len) == 0 && len == 48) {
			d->has_pcr[i] = true;
			memcpy(d->pcr[i], v, 48);
		}
	}
	if (!d->has_pcr[0] || !d->has_pcr[1] || !d->has_pcr[2]) return -ENODATA;
	uint8_t seed[32];
	if (RAND_priv_bytes(seed, sizeof seed) != 1) return -EIO;
	r = air_signer_new(seed, &d->receipt_signer);
	wipe(seed, sizeof seed);
	return r;
}

static int make_doc(void *userdata, const uint8_t *nonce, size_t nonce_len, const uint8_t *pk, size_t pk_len,
		    const uint8_t *ud, size_t ud_len, uint8_t **ret, size_t *ret_len) {
	struct session *x = userdata;
	return nsm_attestation(x->nsm, ud, ud_len, nonce, nonce_len, pk, pk_len, ret, ret_len);
}

static uint64_t memory_peak_mb(void) {
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss / 1024 : 0;
}

static void audit(struct session *x, uint32_t seq, const uint8_t *receipt, size_t rl, size_t inputs, size_t tokens,
		  uint64_t us, const char *status) {
	struct audit_record a = {.inputs = inputs, .tokens = tokens, .duration_us = us};
	if (receipt) SHA256(receipt, rl, a.receipt_sha256);
	snprintf(a.model_id, sizeof a.model_id, "%s", x->model ? x->model->model_id : "");
	snprintf(a.status, sizeof a.status, "%s", status);
	_cleanup_free_ uint8_t *p = NULL;
	size_t pl;
	if (audit_encode(&a, &p, &pl) == 0) (void)session_server_audit(x->s, seq, p, pl);
}

static int refuse(struct session *x, uint32_t seq, SessionError code, const char *msg, int err) {
	audit(x, seq, NULL, 0, 0, 0, 0, session_error_name(code));
	session_server_fail(x->s, code, msg);
	return err;
}

static int handle(void *userdata, uint32_t seq, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) {
	struct session *x = userdata;
	struct daemon *d = x->d;
	uint64_t t0 = now_monotonic_usec();
	if (!x->model) return refuse(x, seq, SESSION_NO_MODEL, "no model is loaded", -ENOENT);
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	lim.max_items = 2 * d->cfg.max_inputs + 8;
	lim.max_string = d->cfg.max_input_bytes;
	_cleanup_cbor_ cbor_item_t *m = NULL;
	int r = ecbor_decode(req, len, &lim, &m);
	if (r == -ENOBUFS || r == -E2BIG)
		return refuse(x, seq, SESSION_LIMIT, "too many inputs or an input too long", -E2BIG);
	cbor_item_t *in = r == 0 ? ecbor_map_get_text(m, "inputs") : NULL;
	if (r < 0 || !cbor_isa_map(m) || cbor_map_size(m) != 2 || !ecbor_tstr_equal(ecbor_map_get_text(m, "op"), "embed") ||
	    !in || !cbor_isa_array(in) || cbor_array_size(in) == 0)
		return refuse(x, seq, SESSION_BAD_FRAME, "expected {op: \"embed\", inputs: [text...]}", -EBADMSG);
	size_t n = cbor_array_size(in);
	if (n > d->cfg.max_inputs) return refuse(x, seq, SESSION_LIMIT, "too many inputs", -E2BIG);
	struct embedder *emb = x->model->emb;
	_cleanup_free_ char **texts = calloc(n, sizeof *texts);
	_cleanup_free_ float *vec = malloc(n * emb->dim * sizeof(float));
	r = texts && vec ? 0 : -ENOMEM;
	for (size_t i = 0; i < n && r == 0; i++)
		if ((r = ecbor_get_tstr_dup(cbor_array_handle(in)[i], &texts[i])) < 0)
			r = r == -ENOMEM ? r : -EBADMSG;
	size_t tokens = 0;
	if (r == 0) r = embedder_embed(emb, x->ctx, (const char *const *)texts, n, vec, &tokens);
	for (size_t i = 0; i < n && texts; i++) free_secret(texts[i], texts[i] ? strlen(texts[i]) : 0);
	if (r == -EBADMSG) return refuse(x, seq, SESSION_BAD_FRAME, "inputs must be text", r);
	if (r < 0) return refuse(x, seq, SESSION_INTERNAL, "inference failed", r);

	struct air_claims c = {
		.iss = "eml-inferenced",
		.iat = now_realtime_usec() / 1000000,
		.model_id = x->model->model_id,
		.model_version = x->model->version,
		.measurement_type = AIR_PLATFORM_NITRO,
		.policy_version = "1",
		.sequence_number = seq,
		.execution_time_ms = (now_monotonic_usec() - t0) / 1000,
		.memory_peak_mb = memory_peak_mb(),
		.security_mode = d->production ? "production" : "evaluation",
		.model_hash_scheme = "sha256-manifest",
	};
	RAND_bytes(c.cti, sizeof c.cti);
	memcpy(c.model_hash, x->model->manifest_sha256, 32);
	SHA256(req, len, c.request_hash);
	SHA256((const uint8_t *)vec, n * emb->dim * sizeof(float), c.response_hash);
	memcpy(c.attestation_doc_hash, session_server_doc_sha256(x->s), 32);
	memcpy(c.has_pcr, d->has_pcr, sizeof c.has_pcr);
	memcpy(c.pcr, d->pcr, sizeof c.pcr);
	_cleanup_free_ uint8_t *receipt = NULL;
	size_t rl;
	if ((r = air_signer_sign(d->receipt_signer, &c, &receipt, &rl)) < 0)
		return refuse(x, seq, SESSION_INTERNAL, "receipt failed", r);
	r = eml_embed_response_encode(vec, n, emb->dim, receipt, rl, ret, ret_len);
	if (r < 0) return refuse(x, seq, SESSION_INTERNAL, "response failed", r);
	audit(x, seq, receipt, rl, n, tokens, now_monotonic_usec() - t0, "ok");
	x->requests++;
	return 0;
}

/* BUSY without a race: let the client's HELLO arrive (it would get EPIPE writing to a closed socket), answer,
 * stop writing, and read until the client hangs up (at most 2 s) so the answer is not lost to a reset. */
static void answer_busy(SessionServer *s, int fd) {
	uint8_t buf[4096];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 2000) > 0) (void)!read(fd, buf, sizeof buf);
	session_server_fail(s, SESSION_BUSY, "this enclave serves no more sessions now");
	size_t n;
	const uint8_t *out = session_server_pending_output(s, &n);
	if (out && n && write_all(fd, out, n) == 0) session_server_output_advance(s, n);
	shutdown(fd, SHUT_WR);
	uint64_t end = now_monotonic_usec() + 2000000;
	for (uint64_t now; (now = now_monotonic_usec()) < end;) {
		if (poll(&p, 1, (int)((end - now) / 1000)) <= 0 || read(fd, buf, sizeof buf) <= 0) break;
	}
}

void session_serve(struct daemon *d, int fd, bool refuse_busy) {
	struct session x = {.d = d};
	SessionServerConfig cfg = {.make_attestation = make_doc, .userdata = &x};
	cfg.limits.idle_timeout_usec = d->cfg.session_idle_usec;
	cfg.limits.max_request = (uint32_t)MIN((uint64_t)UINT32_MAX, (uint64_t)d->cfg.max_inputs * (d->cfg.max_input_bytes + 9) + 64);
	memcpy(cfg.user_data.receipt_key, air_signer_public_key(d->receipt_signer), 32);
	int r = 0;
	if (!refuse_busy) {
		x.model = daemon_model_ref(d);
		if (x.model) {
			cfg.user_data.has_model = true;
			memcpy(cfg.user_data.model_hash, x.model->manifest_sha256, 32);
			r = embedder_ctx_new(x.model->emb, 1, &x.ctx);
		}
		if (r == 0) r = nsm_open(d->cfg.nsm_device, &x.nsm);
	}
	if (r == 0) r = session_server_new(&cfg, now_monotonic_usec(), &x.s);
	if (r == 0 && refuse_busy) {
		answer_busy(x.s, fd);
		log_struct(LOG_NOTICE, EML_MSG_SESSION, "MESSAGE=session refused: BUSY (%u sessions)", d->cfg.max_sessions,
			   NULL);
	} else if (r == 0) {
		r = session_server_serve_fd(x.s, fd, handle, &x);
		const SessionStatus *st = session_server_status(x.s);
		log_struct(st->state == SESSION_FAILED ? LOG_NOTICE : LOG_INFO, EML_MSG_SESSION,
			   "MESSAGE=session %s%s%s after %" PRIu64 " requests", session_state_name(st->state),
			   st->state == SESSION_FAILED ? ": " : "",
			   st->state == SESSION_FAILED
				   ? (st->error == SESSION_REMOTE ? st->remote_code : session_error_name(st->error))
				   : "",
			   x.requests, "EML_REQUESTS=%" PRIu64, x.requests, NULL);
	} else
		log_warn("session setup failed: %s", strerror(-r));
	session_server_free(x.s);
	nsm_close(x.nsm);
	bert_ctx_free(x.ctx);
	model_unref(x.model);
	close(fd);
}
