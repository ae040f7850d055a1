/* kms.c: the data key of a sealed model, through lib/kmsclient: KMS Decrypt via eml-kms-relay with a
 * Recipient (a fresh RSA-2048 key, and an NSM attestation document whose public_key is its
 * SubjectPublicKeyInfo), answered with CiphertextForRecipient that only this enclave can open.
 *
 * Each client (so each RSA key) serves exactly one load. Making the key takes 50 to 500 ms, most of a cold
 * load, so the next client is made ahead on a background thread while nothing else runs. */
#include <inttypes.h>
#include <json-c/json.h>

#include "inferenced.h"
#include "kmsclient.h"
#include "log.h"
#include "sealed.h"
#include "util.h"

struct prepared {
	KmsClient *client;
	Nsm *nsm; /* the client's attestation source, open for its lifetime */
};

static void prepared_free(struct prepared *p) {
	if (!p) return;
	kms_client_free(p->client);
	nsm_close(p->nsm);
	free(p);
}

static struct prepared *prepare(struct daemon *d) {
	struct prepared *p = calloc(1, sizeof *p);
	if (!p) return NULL;
	struct kms_client_config cfg = {.relay = d->cfg.kms_relay, .attest = kms_attest_nsm};
	if (nsm_open(d->cfg.nsm_device, &p->nsm) < 0) {
		free(p);
		return NULL;
	}
	cfg.attest_userdata = p->nsm;
	if (kms_client_new(&cfg, &p->client) < 0) {
		prepared_free(p);
		return NULL;
	}
	return p;
}

static void *keygen_thread(void *arg) {
	struct daemon *d = arg;
	struct prepared *p = prepare(d);
	pthread_mutex_lock(&d->key_lock);
	d->next_kms = p;
	d->keygen_running = false;
	pthread_cond_broadcast(&d->key_ready);
	pthread_mutex_unlock(&d->key_lock);
	return NULL;
}

/* Start preparing the next client unless one is ready or on its way. Called with key_lock held. The thread is
 * joined (not detached) so that OpenSSL's per-thread state is gone before we start another or exit. */
static void keygen_kick_locked(struct daemon *d) {
	if (d->next_kms || d->keygen_running) return;
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
	prepared_free(TAKE_PTR(d->next_kms));
	pthread_mutex_unlock(&d->key_lock);
}

static struct prepared *take(struct daemon *d) {
	pthread_mutex_lock(&d->key_lock);
	keygen_kick_locked(d);
	while (!d->next_kms && d->keygen_running) pthread_cond_wait(&d->key_ready, &d->key_lock);
	struct prepared *p = TAKE_PTR(d->next_kms);
	pthread_mutex_unlock(&d->key_lock); /* the next one is made after this load (recipient_key_prepare) */
	return p ? p : prepare(d);
}

int kms_get_data_key(struct daemon *d, const struct sealed_manifest *m, uint8_t key[32], const char **code,
		     char *msg, size_t msgsz) {
	*code = CTL_E_KMS;
	uint64_t t0 = now_monotonic_usec();
	struct prepared *p = take(d);
	if (!p) {
		*code = CTL_E_INTERNAL;
		snprintf(msg, msgsz, "cannot make the KMS recipient key or open the NSM %s", d->cfg.nsm_device);
		return -EIO;
	}
	log_debug("KMS recipient ready in %" PRIu64 " ms", (now_monotonic_usec() - t0) / 1000);
	json_object *ctx = json_object_new_object();
	for (size_t i = 0; i < m->n_context; i++)
		json_object_object_add(ctx, m->context[i].key, json_object_new_string(m->context[i].value));
	uint8_t *plain = NULL;
	size_t pl = 0;
	struct kms_error err = {};
	int r = kms_client_decrypt(p->client, m->kms_key_id, m->encrypted_data_key, m->edk_len,
				   json_object_to_json_string_ext(ctx, JSON_C_TO_STRING_PLAIN), &plain, &pl, &err);
	json_object_put(ctx);
	prepared_free(p); /* single use: the RSA key goes now */
	if (r == -EACCES) *code = CTL_E_ACCESS_DENIED;
	if (r < 0) {
		if (err.type[0])
			snprintf(msg, msgsz, "%s: %s", err.type, err.message);
		else
			snprintf(msg, msgsz, "KMS through %s: %s", d->cfg.kms_relay, strerror(-r));
		for (char *c = msg; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
	} else if (pl != SEALED_KEY_LEN) {
		snprintf(msg, msgsz, "KMS returned a %zu-byte data key", pl);
		r = -EBADMSG;
	} else
		memcpy(key, plain, SEALED_KEY_LEN);
	if (plain) free_secret(plain, pl);
	return r;
}
