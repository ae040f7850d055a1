/* kms.c: the enclave's side of key release: a fresh RSA-2048 key, an attestation document whose public_key is
 * its SubjectPublicKeyInfo (DER), KMS Decrypt with that Recipient, and the CMS unwrap of
 * CiphertextForRecipient. The data key never crosses the host in the clear: KMS encrypts it to our RSA key.
 *
 * Transport: REQUEST/RESPONSE frames to eml-kms-relay (lib/kmsproto; vsock 3:8001 in production), which signs
 * with the host's credentials; or, for development only, --kms-endpoint: straight to a KMS over HTTP with
 * credentials from the environment. */
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "base64.h"
#include "cms.h"
#include "frame.h"
#include "kmsproto.h"
#include "socket.h"
#include "inferenced.h"
#include "kms-http.h"
#include "log.h"
#include "sealed.h"
#include "util.h"

/* RSA-2048 generation takes 50 to 500 ms, most of a cold load: each key is made ahead, on a background
 * thread, and used for exactly one load (then freed; the next one is already being made). */
static void *keygen_thread(void *arg) {
	struct daemon *d = arg;
	EVP_PKEY *k = EVP_RSA_gen(2048);
	pthread_mutex_lock(&d->key_lock);
	d->next_key = k;
	d->keygen_running = false;
	pthread_cond_broadcast(&d->key_ready);
	pthread_mutex_unlock(&d->key_lock);
	return NULL;
}

/* Start making the next key unless one is ready or on its way. Called with key_lock held. The thread is
 * joined (not detached) so that OpenSSL's per-thread state is gone before we start another or exit. */
static void keygen_kick_locked(struct daemon *d) {
	if (d->next_key || d->keygen_running) return;
	if (d->keygen_joinable) {
		pthread_join(d->keygen_tid, NULL); /* finished: it cleared keygen_running on its way out */
		d->keygen_joinable = false;
	}
	if (pthread_create(&d->keygen_tid, NULL, keygen_thread, d) == 0) d->keygen_running = d->keygen_joinable = true;
}

void recipient_key_prepare(struct daemon *d) {
	pthread_mutex_lock(&d->key_lock);
	keygen_kick_locked(d);
	pthread_mutex_unlock(&d->key_lock);
}

void recipient_key_drain(struct daemon *d) {
	pthread_mutex_lock(&d->key_lock);
	while (d->keygen_running) pthread_cond_wait(&d->key_ready, &d->key_lock);
	if (d->keygen_joinable) pthread_join(d->keygen_tid, NULL);
	d->keygen_joinable = false;
	EVP_PKEY_free(TAKE_PTR(d->next_key));
	pthread_mutex_unlock(&d->key_lock);
}

static EVP_PKEY *recipient_key_take(struct daemon *d) {
	pthread_mutex_lock(&d->key_lock);
	keygen_kick_locked(d);
	while (!d->next_key && d->keygen_running) pthread_cond_wait(&d->key_ready, &d->key_lock);
	EVP_PKEY *k = TAKE_PTR(d->next_key);
	pthread_mutex_unlock(&d->key_lock); /* the next one is made after this load (recipient_key_prepare) */
	return k ? k : EVP_RSA_gen(2048);
}

static int recipient_document(struct daemon *d, EVP_PKEY **ret_key, char **ret_doc_b64) {
	EVP_PKEY *k = recipient_key_take(d);
	if (!k) return -EIO;
	uint8_t *spki = NULL;
	int spki_len = i2d_PUBKEY(k, &spki);
	if (spki_len <= 0) {
		EVP_PKEY_free(k);
		return -EIO;
	}
	_cleanup_nsm_ Nsm *nsm = NULL;
	uint8_t *doc = NULL;
	size_t doc_len = 0;
	int r = nsm_open(d->cfg.nsm_device, &nsm);
	if (r == 0) r = nsm_attestation(nsm, NULL, 0, NULL, 0, spki, (size_t)spki_len, &doc, &doc_len);
	OPENSSL_free(spki);
	if (r == 0) r = base64_encode(doc, doc_len, ret_doc_b64);
	free(doc);
	if (r < 0) {
		EVP_PKEY_free(k);
		return r;
	}
	*ret_key = k;
	return 0;
}

static char *decrypt_body(const struct sealed_manifest *m, const char *doc_b64) {
	_cleanup_free_ char *blob = NULL;
	if (base64_encode(m->encrypted_data_key, m->edk_len, &blob) < 0) return NULL;
	json_object *j = json_object_new_object(), *ctx = json_object_new_object(), *rcp = json_object_new_object();
	json_object_object_add(j, "CiphertextBlob", json_object_new_string(blob));
	json_object_object_add(j, "EncryptionAlgorithm", json_object_new_string("SYMMETRIC_DEFAULT"));
	for (size_t i = 0; i < m->n_context; i++)
		json_object_object_add(ctx, m->context[i].key, json_object_new_string(m->context[i].value));
	json_object_object_add(j, "EncryptionContext", ctx);
	json_object_object_add(j, "KeyId", json_object_new_string(m->kms_key_id));
	json_object_object_add(rcp, "KeyEncryptionAlgorithm", json_object_new_string("RSAES_OAEP_SHA_256"));
	json_object_object_add(rcp, "AttestationDocument", json_object_new_string(doc_b64));
	json_object_object_add(j, "Recipient", rcp);
	char *s = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	json_object_put(j);
	return s;
}

/* The AWS error type of an error body ({"__type": "...#AccessDeniedException", "message": ...}). */
static void error_of(const char *body, char *err_type, size_t etsz, char *msg, size_t msgsz) {
	json_object *j = json_tokener_parse(body), *v;
	const char *t = "", *m = "";
	if (j && json_object_object_get_ex(j, "__type", &v) && json_object_is_type(v, json_type_string))
		t = json_object_get_string(v);
	if (j && (json_object_object_get_ex(j, "message", &v) || json_object_object_get_ex(j, "Message", &v)) &&
	    json_object_is_type(v, json_type_string))
		m = json_object_get_string(v);
	const char *hash = strrchr(t, '#');
	snprintf(err_type, etsz, "%s", hash ? hash + 1 : t);
	snprintf(msg, msgsz, "%s: %s", err_type, m);
	for (char *c = msg; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
	json_object_put(j);
}

static int relay_call(struct daemon *d, const char *target, const char *body, long *ret_status, char **ret_body,
		      char *err_type, size_t etsz, char *msg, size_t msgsz) {
	struct eml_addr a;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *req = NULL, *frame = NULL;
	size_t rl, fl;
	int r = addr_parse(d->cfg.kms_relay, &a);
	if (r < 0) {
		snprintf(msg, msgsz, "bad KMS relay address %s", d->cfg.kms_relay);
		return r;
	}
	if ((r = kmsproto_request_encode(target, body, &req, &rl)) < 0 ||
	    (r = frame_encode(FRAME_REQUEST, 0, req, rl, &frame, &fl)) < 0) {
		snprintf(msg, msgsz, "cannot encode the KMS request");
		return r;
	}
	if ((r = socket_connect_deadline(&a, 5000000, &fd)) < 0) {
		snprintf(msg, msgsz, "KMS relay %s unreachable: %s", d->cfg.kms_relay, strerror(-r));
		return r;
	}
	fd_set_nonblock(fd, 0);
	struct timeval tv = {.tv_sec = 15};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv); /* the relay retries KMS within its own timeout */
	if ((r = write_all(fd, frame, fl)) < 0) {
		snprintf(msg, msgsz, "KMS relay: %s", strerror(-r));
		return r;
	}
	uint8_t hdr[FRAME_HEADER_SIZE];
	struct frame_header h;
	_cleanup_free_ uint8_t *payload = NULL;
	if ((r = read_all(fd, hdr, sizeof hdr)) < 0 || (r = frame_header_decode(hdr, KMSPROTO_MAX_RESPONSE, &h)) < 0) {
		snprintf(msg, msgsz, "KMS relay: no answer: %s", r == -EAGAIN ? "timed out" : strerror(-r));
		return r < 0 ? r : -EBADMSG;
	}
	if (!(payload = malloc(h.length + 1))) return -ENOMEM;
	if ((r = read_all(fd, payload, h.length)) < 0) {
		snprintf(msg, msgsz, "KMS relay: answer cut short");
		return r;
	}
	if (h.seq != 0 || (h.type != FRAME_RESPONSE && h.type != FRAME_ERROR)) {
		snprintf(msg, msgsz, "KMS relay: unexpected %s frame", frame_type_name(h.type));
		return -EBADMSG;
	}
	if (h.type == FRAME_ERROR) {
		_cleanup_free_ char *e = NULL, *m = NULL;
		if (kmsproto_error_decode(payload, h.length, &e, &m) < 0) return -EBADMSG;
		snprintf(msg, msgsz, "KMS relay refused: %s: %s", e, m);
		for (char *c = msg; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
		return -ECONNABORTED;
	}
	int status;
	if ((r = kmsproto_response_decode(payload, h.length, &status, ret_body)) < 0) {
		snprintf(msg, msgsz, "KMS relay: malformed answer");
		return r;
	}
	*ret_status = status;
	if (status != 200) error_of(*ret_body, err_type, etsz, msg, msgsz);
	return 0;
}

/* One KMS call over the configured transport: HTTP status and body (malloc'ed). */
static int kms_call(struct daemon *d, const char *target, const char *body, long *ret_status, char **ret_body,
		    char *err_type, size_t etsz, char *msg, size_t msgsz) {
	if (!d->cfg.kms_endpoint) return relay_call(d, target, body, ret_status, ret_body, err_type, etsz, msg, msgsz);
	struct sigv4_credentials creds;
	if (kms_credentials_from_env(&creds) < 0) {
		snprintf(msg, msgsz, "no credentials for the development KMS endpoint");
		return -ENOKEY;
	}
	_cleanup_kms_http_ struct kms_http *k = NULL;
	int r = kms_http_new(d->cfg.kms_endpoint, d->cfg.kms_region, 10000, &k);
	if (r < 0) {
		snprintf(msg, msgsz, "bad KMS endpoint");
		return r;
	}
	struct kms_response resp;
	char cerr[256] = "";
	r = kms_http_call(k, &creds, target, body, strlen(body), &resp, cerr, sizeof cerr);
	if (r < 0) {
		snprintf(msg, msgsz, "KMS unreachable: %s", cerr[0] ? cerr : strerror(-r));
		return r;
	}
	*ret_status = resp.status;
	snprintf(err_type, etsz, "%s", resp.error_type);
	if (resp.status != 200) snprintf(msg, msgsz, "%s: %s", resp.error_type, resp.error_message);
	*ret_body = strdup(resp.body ? resp.body : "");
	kms_response_done(&resp);
	return *ret_body ? 0 : -ENOMEM;
}

int kms_get_data_key(struct daemon *d, const struct sealed_manifest *m, uint8_t key[32], const char **code,
		     char *msg, size_t msgsz) {
	EVP_PKEY *rsa = NULL;
	_cleanup_free_ char *doc = NULL, *body = NULL, *answer = NULL;
	*code = CTL_E_KMS;
	uint64_t t0 = now_monotonic_usec();
	int r = recipient_document(d, &rsa, &doc);
	log_debug("recipient key and attestation in %" PRIu64 " ms", (now_monotonic_usec() - t0) / 1000);
	if (r < 0) {
		*code = CTL_E_INTERNAL;
		snprintf(msg, msgsz, "attestation for the KMS recipient failed: %s", strerror(-r));
		return r;
	}
	if (!(body = decrypt_body(m, doc))) {
		EVP_PKEY_free(rsa);
		*code = CTL_E_INTERNAL;
		return -ENOMEM;
	}
	long status = 0;
	char etype[128] = "";
	r = kms_call(d, "TrentService.Decrypt", body, &status, &answer, etype, sizeof etype, msg, msgsz);
	if (r == 0 && status != 200) {
		if (strcmp(etype, "AccessDeniedException") == 0) *code = CTL_E_ACCESS_DENIED;
		r = -EACCES;
	}
	json_object *j = NULL, *cfr;
	uint8_t *ber = NULL, *plain = NULL;
	size_t ber_len = 0, pl = 0;
	if (r == 0) {
		j = json_tokener_parse(answer);
		const char *why = "";
		if (!j || !json_object_object_get_ex(j, "CiphertextForRecipient", &cfr) ||
		    !json_object_is_type(cfr, json_type_string) ||
		    base64_decode(json_object_get_string(cfr), CMS_MAX_INPUT, &ber, &ber_len) < 0) {
			snprintf(msg, msgsz, "KMS answer without a CiphertextForRecipient");
			r = -EBADMSG;
		} else if ((r = cms_decrypt(ber, ber_len, rsa, &plain, &pl, &why)) < 0) {
			snprintf(msg, msgsz, "CiphertextForRecipient: %s: %s", cms_strerror(r), why ? why : "");
		} else if (pl != 32) {
			snprintf(msg, msgsz, "KMS returned a %zu-byte data key", pl);
			r = -EBADMSG;
		} else
			memcpy(key, plain, 32);
	}
	if (plain) free_secret(plain, pl);
	free(ber);
	json_object_put(j);
	EVP_PKEY_free(rsa); /* OpenSSL clears RSA private key material on free */
	return r;
}
