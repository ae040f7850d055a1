/* kmsclient.c: the enclave's KMS client over eml-kms-relay (see kmsclient.h). */
#include "kmsclient.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "addr.h"
#include "base64.h"
#include "cms.h"
#include "frame.h"
#include "kmsproto.h"
#include "nsm.h"
#include "socket.h"
#include "util.h"

#define DEFAULT_TIMEOUT_USEC (15ull * 1000000)
#define DEFAULT_RETRIES 3

struct KmsClient {
	struct eml_addr relay;
	kms_attest_fn attest;
	void *attest_userdata;
	uint64_t timeout_usec;
	unsigned retries;
	EVP_PKEY *key;
	uint8_t *spki;
	size_t spki_len;
	int fd;
	uint32_t seq;
};

static void set_error(struct kms_error *e, const char *type, const char *prefix, const char *message) {
	if (!e) return;
	snprintf(e->type, sizeof e->type, "%s", type);
	snprintf(e->message, sizeof e->message, "%s%s", prefix, message ? message : "");
}

int kms_client_new(const struct kms_client_config *cfg, KmsClient **ret) {
	if (!cfg || !cfg->relay || !cfg->attest || !ret) return -EINVAL;
	KmsClient *c = calloc(1, sizeof *c);
	if (!c) return -ENOMEM;
	c->fd = -1;
	int r = addr_parse(cfg->relay, &c->relay);
	if (r < 0) goto fail;
	c->attest = cfg->attest;
	c->attest_userdata = cfg->attest_userdata;
	c->timeout_usec = cfg->timeout_usec ? cfg->timeout_usec : DEFAULT_TIMEOUT_USEC;
	c->retries = cfg->retries_set ? cfg->retries : DEFAULT_RETRIES;
	RAND_bytes((uint8_t *)&c->seq, sizeof c->seq);
	c->seq &= 0x7fffffff;
	r = -EIO;
	/* One RSA-2048 key per client, as AWS's SDK for enclaves does. */
	if (!(c->key = EVP_RSA_gen(2048))) goto fail;
	int n = i2d_PUBKEY(c->key, &c->spki);
	if (n <= 0) goto fail;
	c->spki_len = (size_t)n;
	*ret = c;
	return 0;
fail:
	ERR_clear_error();
	kms_client_free(c);
	return r;
}

KmsClient *kms_client_free(KmsClient *c) {
	if (!c) return NULL;
	if (c->fd >= 0) close(c->fd);
	EVP_PKEY_free(c->key); /* OpenSSL clears private key material on free */
	OPENSSL_free(c->spki);
	free(c);
	return NULL;
}

int kms_error_from_type(const char *t) {
	static const struct {
		const char *type;
		int err;
	} map[] = {
		{"AccessDeniedException", -EACCES},        {"InvalidCiphertextException", -EBADMSG},
		{"NotFoundException", -ENOENT},            {"IncorrectKeyException", -EKEYREJECTED},
		{"DisabledException", -EKEYREVOKED},       {"KMSInvalidStateException", -EKEYEXPIRED},
		{"ValidationException", -EINVAL},          {"SerializationException", -EINVAL},
		{"InvalidKeyUsageException", -EINVAL},     {"InvalidSignatureException", -EPERM},
		{"IncompleteSignatureException", -EPERM},  {"UnrecognizedClientException", -EPERM},
		{"ExpiredTokenException", -EPERM},         {"ThrottlingException", -EBUSY},
		{"LimitExceededException", -EBUSY},       {"KMSInternalException", -EREMOTEIO},
		{"DependencyTimeoutException", -EREMOTEIO},
	};
	if (!t) return -EREMOTEIO;
	/* Some services prefix the type with a namespace ("com.amazonaws.kms#..."). */
	const char *h = strrchr(t, '#');
	if (h) t = h + 1;
	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (strcmp(t, map[i].type) == 0) return map[i].err;
	return -EREMOTEIO;
}

static int relay_error(const char *e) {
	if (strcmp(e, "Refused") == 0) return -ECONNREFUSED;
	if (strcmp(e, "BadRequest") == 0) return -EPROTO;
	if (strcmp(e, "Unavailable") == 0) return -EHOSTUNREACH;
	if (strcmp(e, "Timeout") == 0) return -ETIMEDOUT;
	if (strcmp(e, "Busy") == 0) return -EBUSY;
	return -EREMOTEIO;
}

static void disconnect(KmsClient *c) {
	if (c->fd >= 0) close(c->fd);
	c->fd = -1;
}

static int wait_fd(int fd, short events, uint64_t deadline) {
	for (;;) {
		uint64_t now = now_monotonic_usec();
		if (now >= deadline) return -ETIMEDOUT;
		struct pollfd p = {fd, events, 0};
		int n = poll(&p, 1, (int)MIN((deadline - now + 999) / 1000, (uint64_t)INT32_MAX));
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) return negerrno();
		if (n > 0) return 0;
	}
}

/* One REQUEST -> RESPONSE/ERROR exchange on the (re)used connection. */
static int exchange(KmsClient *c, const uint8_t *payload, size_t len, struct frame_header *ret_h, uint8_t **ret_payload) {
	uint64_t deadline = now_monotonic_usec() + c->timeout_usec;
	int r;
	if (c->fd < 0 && (r = socket_connect_deadline(&c->relay, c->timeout_usec, &c->fd)) < 0) {
		c->fd = -1;
		return r;
	}
	uint32_t seq = c->seq++ & 0x7fffffff;
	_cleanup_free_ uint8_t *frame = NULL;
	size_t flen;
	if ((r = frame_encode(FRAME_REQUEST, seq, payload, len, &frame, &flen)) < 0) return r;
	for (size_t off = 0; off < flen;) {
		ssize_t n = send(c->fd, frame + off, flen - off, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((r = wait_fd(c->fd, POLLOUT, deadline)) < 0) goto fail;
			continue;
		}
		if (n < 0) {
			r = negerrno();
			goto fail;
		}
		off += (size_t)n;
	}
	struct frame_decoder d;
	frame_decoder_init(&d, KMSPROTO_MAX_RESPONSE);
	for (;;) {
		r = frame_decoder_read(&d, c->fd);
		if (r == 1) break;
		if (r == 0) {
			if ((r = wait_fd(c->fd, POLLIN, deadline)) < 0) break;
			continue;
		}
		if (r == -EPIPE) r = -ECONNRESET;
		break;
	}
	if (r == 1) r = frame_decoder_take(&d, ret_h, ret_payload);
	frame_decoder_free(&d);
	if (r < 0) goto fail;
	if (ret_h->seq != seq || (ret_h->type != FRAME_RESPONSE && ret_h->type != FRAME_ERROR)) {
		free(*ret_payload);
		*ret_payload = NULL;
		r = -EPROTO;
		goto fail;
	}
	return 0;
fail:
	/* After any failure the stream may be out of step: start afresh next time. */
	disconnect(c);
	return r;
}

static void backoff(unsigned attempt) {
	uint32_t rnd = 0;
	RAND_bytes((uint8_t *)&rnd, sizeof rnd);
	uint64_t cap = 100ull << MIN(attempt, 5u), ms = cap / 2 + rnd % (cap / 2 + 1);
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* Worth another try: throttling, KMS 5xx / internal errors, KMS unreachable from the relay. Not timeouts: the
 * time budget is spent. */
static bool transient(int r) { return r == -EBUSY || r == -EHOSTUNREACH || r == -EREMOTEIO; }

/* Send target/body; on success *ret_body is the KMS answer (status 200). */
static int call(KmsClient *c, const char *target, json_object *body, json_object **ret_body, struct kms_error *err) {
	uint8_t *doc = NULL;
	size_t doc_len = 0;
	char *doc_b64 = NULL;
	int r = c->attest(c->attest_userdata, c->spki, c->spki_len, &doc, &doc_len);
	if (r < 0) {
		set_error(err, "Attestation", "cannot get an attestation document: ", strerror(-r));
		return r;
	}
	r = base64_encode(doc, doc_len, &doc_b64);
	free(doc);
	if (r < 0) return r;
	json_object *rec = json_object_new_object();
	json_object_object_add(rec, "KeyEncryptionAlgorithm", json_object_new_string("RSAES_OAEP_SHA_256"));
	json_object_object_add(rec, "AttestationDocument", json_object_new_string(doc_b64));
	free(doc_b64);
	json_object_object_add(body, "Recipient", rec);
	_cleanup_free_ uint8_t *payload = NULL;
	size_t plen;
	r = kmsproto_request_encode(target, json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN), &payload, &plen);
	if (r < 0) return r;

	for (unsigned attempt = 0;; attempt++) {
		struct frame_header h;
		_cleanup_free_ uint8_t *answer = NULL;
		r = exchange(c, payload, plen, &h, &answer);
		if (r < 0) {
			set_error(err, "Transport", "relay: ", strerror(-r));
			/* A dropped kept-alive connection is worth one more try. */
			if ((r == -ECONNRESET || r == -EPIPE) && attempt < c->retries) continue;
			return r;
		}
		if (h.type == FRAME_ERROR) {
			_cleanup_free_ char *e = NULL, *m = NULL;
			if (kmsproto_error_decode(answer, h.length, &e, &m) < 0) return -EPROTO;
			set_error(err, e, "", m);
			r = relay_error(e);
		} else {
			int status;
			_cleanup_free_ char *text = NULL;
			if (kmsproto_response_decode(answer, h.length, &status, &text) < 0) return -EPROTO;
			json_object *o = json_tokener_parse(text), *t, *m;
			if (!o) return -EPROTO;
			if (status == 200) {
				*ret_body = o;
				return 0;
			}
			const char *type = json_object_object_get_ex(o, "__type", &t) ? json_object_get_string(t) : NULL;
			const char *msg = json_object_object_get_ex(o, "message", &m) ? json_object_get_string(m) : "";
			set_error(err, type ? type : "HTTP", "", msg);
			r = type ? kms_error_from_type(type) : -EREMOTEIO;
			if (status >= 500) r = -EREMOTEIO;
			json_object_put(o);
		}
		if (!transient(r) || attempt >= c->retries) return r;
		backoff(attempt);
	}
}

/* CiphertextForRecipient -> plaintext; a Plaintext field means the key was exposed to the host: refuse. */
static int open_for_recipient(KmsClient *c, json_object *o, uint8_t **ret, size_t *ret_len, struct kms_error *err) {
	json_object *v;
	if (json_object_object_get_ex(o, "Plaintext", &v) && !json_object_is_type(v, json_type_null)) {
		set_error(err, "Protocol", "the answer carries a Plaintext", NULL);
		return -EPROTO;
	}
	if (!json_object_object_get_ex(o, "CiphertextForRecipient", &v) || !json_object_is_type(v, json_type_string)) {
		set_error(err, "Protocol", "the answer has no CiphertextForRecipient", NULL);
		return -EPROTO;
	}
	_cleanup_free_ uint8_t *ber = NULL;
	size_t bl;
	if (base64_decode(json_object_get_string(v), CMS_MAX_INPUT, &ber, &bl) < 0) return -EPROTO;
	const char *why = NULL;
	int r = cms_decrypt(ber, bl, c->key, ret, ret_len, &why);
	if (r < 0) set_error(err, "CMS", "", why);
	return r;
}

static int add_context(json_object *body, const char *context_json) {
	if (!context_json) return 0;
	json_object *ctx = json_tokener_parse(context_json);
	if (!ctx || !json_object_is_type(ctx, json_type_object)) {
		json_object_put(ctx);
		return -EINVAL;
	}
	json_object_object_add(body, "EncryptionContext", ctx);
	return 0;
}

int kms_client_decrypt(KmsClient *c, const char *key_id, const uint8_t *blob, size_t blob_len,
		       const char *context_json, uint8_t **ret_plain, size_t *ret_len, struct kms_error *err) {
	if (!c || !blob || !blob_len || !ret_plain || !ret_len) return -EINVAL;
	char *b64;
	int r = base64_encode(blob, blob_len, &b64);
	if (r < 0) return r;
	json_object *body = json_object_new_object(), *answer = NULL;
	json_object_object_add(body, "CiphertextBlob", json_object_new_string(b64));
	free(b64);
	if (key_id) json_object_object_add(body, "KeyId", json_object_new_string(key_id));
	json_object_object_add(body, "EncryptionAlgorithm", json_object_new_string("SYMMETRIC_DEFAULT"));
	r = add_context(body, context_json);
	if (r >= 0) r = call(c, "TrentService.Decrypt", body, &answer, err);
	if (r >= 0) r = open_for_recipient(c, answer, ret_plain, ret_len, err);
	json_object_put(answer);
	json_object_put(body);
	return r;
}

int kms_client_generate_data_key(KmsClient *c, const char *key_id, size_t nbytes, const char *context_json,
				 uint8_t **ret_plain, size_t *ret_plain_len, uint8_t **ret_blob, size_t *ret_blob_len,
				 struct kms_error *err) {
	if (!c || !key_id || nbytes < 1 || nbytes > 1024 || !ret_plain || !ret_plain_len || !ret_blob || !ret_blob_len)
		return -EINVAL;
	json_object *body = json_object_new_object(), *answer = NULL, *v;
	json_object_object_add(body, "KeyId", json_object_new_string(key_id));
	json_object_object_add(body, "NumberOfBytes", json_object_new_int((int)nbytes));
	int r = add_context(body, context_json);
	if (r >= 0) r = call(c, "TrentService.GenerateDataKey", body, &answer, err);
	uint8_t *blob = NULL;
	size_t bl = 0;
	if (r >= 0) {
		if (!json_object_object_get_ex(answer, "CiphertextBlob", &v) || !json_object_is_type(v, json_type_string) ||
		    base64_decode(json_object_get_string(v), 8192, &blob, &bl) < 0)
			r = -EPROTO;
	}
	if (r >= 0) r = open_for_recipient(c, answer, ret_plain, ret_plain_len, err);
	if (r >= 0) {
		*ret_blob = blob;
		*ret_blob_len = bl;
	} else
		free(blob);
	json_object_put(answer);
	json_object_put(body);
	return r;
}

int kms_client_generate_random(KmsClient *c, size_t nbytes, uint8_t **ret, size_t *ret_len, struct kms_error *err) {
	if (!c || nbytes < 1 || nbytes > 1024 || !ret || !ret_len) return -EINVAL;
	json_object *body = json_object_new_object(), *answer = NULL;
	json_object_object_add(body, "NumberOfBytes", json_object_new_int((int)nbytes));
	int r = call(c, "TrentService.GenerateRandom", body, &answer, err);
	if (r >= 0) r = open_for_recipient(c, answer, ret, ret_len, err);
	json_object_put(answer);
	json_object_put(body);
	return r;
}

int kms_attest_nsm(void *userdata, const uint8_t *spki, size_t spki_len, uint8_t **ret_doc, size_t *ret_len) {
	return nsm_attestation(userdata, NULL, 0, NULL, 0, spki, spki_len, ret_doc, ret_len);
}
