/* eml_client.c: the embedding client (see eml_client.h). */
#include "eml_client.h"

#include <errno.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "cbor.h"
#include "session-io.h"
#include "session-verify.h"
#include "socket.h"
#include "util.h"

struct EmlClient {
	int fd;
	SessionVerifier *verifier;
	SessionClient *session;
};

static int session_failure(const SessionClient *s, int r, char *reason, size_t size) {
	const SessionStatus *st = session_client_status(s);
	if (st->state == SESSION_FAILED) {
		errorf(-EPROTO, reason, size, "%s: %s", st->error == SESSION_REMOTE ? st->remote_code : session_error_name(st->error),
		     st->message);
		return r < 0 ? r : -EPROTO;
	}
	errorf(-EPROTO, reason, size, "CONNECTION: %s", r == -EPIPE ? "the enclave closed the session" : strerror(-r));
	return r < 0 ? r : -EPIPE;
}

EmlClient *eml_client_free(EmlClient *c) {
	if (!c)
		return NULL;
	if (c->session && c->fd >= 0)
		(void)session_client_close_fd(c->session, c->fd);
	session_client_free(c->session);
	session_verifier_free(c->verifier);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return NULL;
}

int eml_client_connect(const EmlClientOptions *o, EmlClient **ret, char *reason, size_t size) {
	if (!o || !o->endpoint || !o->policy || !ret)
		return -EINVAL;
	_cleanup_eml_client_ EmlClient *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	struct eml_addr a;
	int r = addr_parse(o->endpoint, &a);
	if (r < 0)
		return errorf(-EPROTO, reason, size, "USAGE: %s is not an address (tcp:HOST:PORT, unix:PATH, vsock:CID:PORT)",
			    o->endpoint), -EINVAL;
	uint64_t timeout = o->timeout_usec ? o->timeout_usec : 10000000;
	r = socket_connect_deadline(&a, timeout, &c->fd);
	if (r < 0)
		return errorf(-EPROTO, reason, size, "CONNECT: %s: %s", o->endpoint, strerror(-r)), r;
	if ((r = session_verifier_new(o->policy, &c->verifier)) < 0)
		return errorf(-EPROTO, reason, size, "INTERNAL: %s", strerror(-r)), r;
	session_verifier_set_time(c->verifier, o->now_ms);
	SessionClientConfig cc = {
		.verify_attestation = session_verify_nitro,
		.userdata = c->verifier,
		.aead = o->aead,
		.limits.handshake_timeout_usec = timeout,
	};
	if ((r = session_client_new(&cc, now_monotonic_usec(), &c->session)) < 0)
		return errorf(-EPROTO, reason, size, "INTERNAL: %s", strerror(-r)), r;
	r = session_client_handshake_fd(c->session, c->fd);
	if (r < 0)
		return session_failure(c->session, r, reason, size);
	*ret = TAKE_PTR(c);
	return 0;
}

const AttestDoc *eml_client_attestation(const EmlClient *c) { return session_verifier_doc(c->verifier); }
const SessionUserData *eml_client_peer(const EmlClient *c) { return session_client_peer(c->session); }
const uint8_t *eml_client_document(const EmlClient *c, size_t *ret_len) {
	return session_client_doc(c->session, ret_len);
}

int eml_embed_request_encode(const char *const *texts, size_t n, uint8_t **ret, size_t *ret_len) {
	if (n == 0 || n > EML_CLIENT_MAX_INPUTS)
		return -EINVAL;
	_cleanup_cbor_ cbor_item_t *m = ecbor_map();
	cbor_item_t *a = ecbor_array();
	int r = 0;
	for (size_t i = 0; i < n && a; i++)
		if (ecbor_array_push(a, ecbor_tstr(texts[i])) < 0)
			r = -ENOMEM;
	r = r ?: ecbor_map_put(m, ecbor_tstr("op"), ecbor_tstr("embed"));
	if (r < 0) {
		if (a)
			cbor_decref(&a);
		return r;
	}
	r = ecbor_map_put(m, ecbor_tstr("inputs"), a);
	return r ?: ecbor_encode(m, ret, ret_len);
}

int eml_embed_response_encode(const float *vectors, size_t n, size_t dim, const uint8_t *receipt,
			      size_t receipt_len, uint8_t **ret, size_t *ret_len) {
	_cleanup_cbor_ cbor_item_t *m = ecbor_map();
	cbor_item_t *a = ecbor_array();
	_cleanup_free_ uint8_t *le = malloc(dim * 4 + 1);
	int r = le ? 0 : -ENOMEM;
	for (size_t i = 0; i < n && a && r == 0; i++) {
		for (size_t k = 0; k < dim; k++) {
			uint32_t u;
			memcpy(&u, &vectors[i * dim + k], 4);
			le[4 * k] = (uint8_t)u, le[4 * k + 1] = (uint8_t)(u >> 8);
			le[4 * k + 2] = (uint8_t)(u >> 16), le[4 * k + 3] = (uint8_t)(u >> 24);
		}
		if (ecbor_array_push(a, ecbor_bstr(le, dim * 4)) < 0)
			r = -ENOMEM;
	}
	r = r ?: ecbor_map_put(m, ecbor_tstr("dim"), ecbor_uint(dim));
	r = r ?: ecbor_map_put(m, ecbor_tstr("receipt"), ecbor_bstr(receipt, receipt_len));
	if (r < 0) {
		if (a)
			cbor_decref(&a);
		return r;
	}
	r = ecbor_map_put(m, ecbor_tstr("embeddings"), a);
	return r ?: ecbor_encode(m, ret, ret_len);
}

void eml_embedding_free(EmlEmbedding *e) {
	if (!e)
		return;
	free_secret(e->vectors, e->n * e->dim * sizeof(float));
	free(e->receipt);
	air_claims_done(&e->claims);
	free(e);
}

static int parse_response(const uint8_t *p, size_t len, size_t n_expected, EmlEmbedding *e, char *reason,
			  size_t size) {
	const struct ecbor_limits lim = {.max_size = len, .max_depth = 2, .max_items = 2 * EML_CLIENT_MAX_INPUTS + 16,
					 .max_string = MAX((size_t)EML_CLIENT_MAX_DIM * 4, (size_t)AIR_RECEIPT_MAX),
					 .deterministic = true};
	_cleanup_cbor_ cbor_item_t *m = NULL;
	const uint8_t *b;
	size_t bl;
	uint64_t dim;
	if (ecbor_decode(p, len, &lim, &m) < 0 || !cbor_isa_map(m) || cbor_map_size(m) != 3)
		return errorf(-EPROTO, reason, size, "BAD_RESPONSE: not a map of embeddings, dim, receipt");
	if (ecbor_map_text_uint(m, "dim", &dim) < 0 || dim == 0 || dim > EML_CLIENT_MAX_DIM)
		return errorf(-EPROTO, reason, size, "BAD_RESPONSE: dim missing or out of range");
	cbor_item_t *a = ecbor_map_get_text(m, "embeddings");
	if (!a || !cbor_isa_array(a) || cbor_array_size(a) != n_expected)
		return errorf(-EPROTO, reason, size, "BAD_RESPONSE: expected %zu embeddings", n_expected);
	if (ecbor_map_text_bstr(m, "receipt", &b, &bl) < 0 || bl == 0 || bl > AIR_RECEIPT_MAX)
		return errorf(-EPROTO, reason, size, "BAD_RESPONSE: receipt missing");
	e->receipt = malloc(bl);
	e->vectors = malloc(n_expected * (size_t)dim * sizeof(float));
	if (!e->receipt || !e->vectors)
		return -ENOMEM;
	memcpy(e->receipt, b, bl);
	e->receipt_len = bl;
	e->n = n_expected, e->dim = (size_t)dim;
	for (size_t i = 0; i < n_expected; i++) {
		const uint8_t *v;
		if (ecbor_get_bstr_len(cbor_array_handle(a)[i], (size_t)dim * 4, &v) < 0)
			return errorf(-EPROTO, reason, size, "BAD_RESPONSE: embedding %zu is not %llu floats", i,
				    (unsigned long long)dim);
		for (size_t k = 0; k < dim; k++) {
			uint32_t u = (uint32_t)v[4 * k] | (uint32_t)v[4 * k + 1] << 8 | (uint32_t)v[4 * k + 2] << 16 |
				     (uint32_t)v[4 * k + 3] << 24;
			memcpy(&e->vectors[i * dim + k], &u, 4);
		}
	}
	return 0;
}

/* The receipt must be signed by the attested receipt key, name the attested model and carry the attested
 * PCRs: a receipt is only worth what binds it to the enclave that was checked. */
static int check_receipt(EmlClient *c, EmlEmbedding *e, char *reason, size_t size) {
	const SessionUserData *u = session_client_peer(c->session);
	const AttestDoc *d = session_verifier_doc(c->verifier);
	struct air_policy pol = {.platform = AIR_PLATFORM_NITRO, .model_hash = u->has_model ? u->model_hash : NULL};
	struct air_result res;
	int r = air_verify(e->receipt, e->receipt_len, u->receipt_key, &pol, &e->claims, &res);
	if (r < 0)
		return errorf(-EPROTO, reason, size, "RECEIPT: %s: %s", res.full, res.reason);
	for (size_t i = 0; i < AIR_PCR_SLOTS; i++) {
		unsigned idx = air_pcr_index[i];
		if (!e->claims.has_pcr[i])
			continue;
		if (!d || !(d->pcr_mask & (1u << idx)) || memcmp(d->pcrs[idx], e->claims.pcr[i], ATTEST_PCR_LEN) != 0)
			return errorf(-EPROTO, reason, size, "RECEIPT: PCR%u of the receipt is not the attested one", idx);
	}
	e->receipt_bound = memcmp(e->claims.attestation_doc_hash, session_client_doc_sha256(c->session), 32) == 0;
	return 0;
}

int eml_client_embed(EmlClient *c, const char *const *texts, size_t n, EmlEmbedding **ret, char *reason,
		     size_t size) {
	_cleanup_free_ uint8_t *req = NULL;
	size_t req_len;
	int r = eml_embed_request_encode(texts, n, &req, &req_len);
	if (r < 0)
		return errorf(-EPROTO, reason, size, "USAGE: 1..%d texts", EML_CLIENT_MAX_INPUTS), r;
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	r = session_client_call_fd(c->session, c->fd, req, req_len, &resp, &resp_len);
	wipe(req, req_len);
	if (r < 0)
		return session_failure(c->session, r, reason, size);
	EmlEmbedding *e = calloc(1, sizeof *e);
	if (!e) {
		free_secret(resp, resp_len);
		return -ENOMEM;
	}
	r = parse_response(resp, resp_len, n, e, reason, size);
	free_secret(resp, resp_len);
	if (r >= 0)
		r = check_receipt(c, e, reason, size);
	if (r < 0) {
		eml_embedding_free(e);
		return r;
	}
	*ret = e;
	return 0;
}
