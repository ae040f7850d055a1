/* kms.c: the enclave's side of key release: a fresh RSA-2048 key, an attestation document whose public_key is
 * its SubjectPublicKeyInfo (DER), KMS Decrypt with that Recipient, and the CMS unwrap of
 * CiphertextForRecipient. The data key never crosses the host in the clear: KMS encrypts it to our RSA key.
 *
 * Transport: through eml-kms-relay (the production path) is not wired yet (its codec, lib/kmsproto, is still
 * on the kms branch); --kms-endpoint talks to a KMS over HTTP directly, for development with eml-kms-local. */
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "base64.h"
#include "cms.h"
#include "inferenced.h"
#include "kms-http.h"
#include "log.h"
#include "sealed.h"
#include "util.h"

static int recipient_document(struct daemon *d, EVP_PKEY **ret_key, char **ret_doc_b64) {
	EVP_PKEY *k = EVP_RSA_gen(2048);
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

/* One KMS call over the configured transport: HTTP status and body (malloc'ed). */
static int kms_call(struct daemon *d, const char *target, const char *body, long *ret_status, char **ret_body,
		    char *err_type, size_t etsz, char *msg, size_t msgsz) {
	if (!d->cfg.kms_endpoint) {
		snprintf(msg, msgsz, "the eml-kms-relay transport (%s) is not available in this build; use --kms-endpoint",
			 d->cfg.kms_relay);
		return -EOPNOTSUPP;
	}
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
	int r = recipient_document(d, &rsa, &doc);
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
