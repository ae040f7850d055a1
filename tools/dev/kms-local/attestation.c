/* attestation.c: the Recipient's attestation document, checked as KMS checks it before answering with
 * CiphertextForRecipient: the project's verifier (lib/attest: COSE_Sign1 ES384, chain from the pinned root,
 * which must be cabundle[0], valid at the document's time and now, freshness), then the PCRs the key policy
 * may name and the RSA public key the answer is encrypted to. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "attest.h"
#include "kms-local.h"
#include "macro.h"
#include "util.h"

int attestation_config_load(struct attestation_config *c, const char *root_pem, uint64_t max_age) {
	*c = (struct attestation_config){.max_age = max_age};
	if (!root_pem) return 0;
	int r = x509_root_load_pem(root_pem, &c->root);
	if (r < 0) return r;
	r = x509_path_cache_new(64, &c->cache);
	if (r < 0) {
		attestation_config_done(c);
		return r;
	}
	return 0;
}

void attestation_config_done(struct attestation_config *c) {
	c->root = x509_root_free(c->root);
	c->cache = x509_path_cache_free(c->cache);
}

void recipient_done(struct recipient *r) {
	if (!r) return;
	EVP_PKEY_free(r->public_key);
	r->public_key = NULL;
}

int attestation_verify_recipient(const struct attestation_config *c, const uint8_t *doc, size_t len, time_t now,
				 struct recipient *ret, const char **ret_reason) {
	/* Per-thread so the reason outlives the call without the caller managing a buffer. */
	static __thread char reason[256];
	struct recipient rec = {};
	*ret_reason = reason;
	if (!c->root) {
		snprintf(reason, sizeof reason, "no attestation root configured: Recipient refused");
		return -EPERM;
	}
	_cleanup_attest_policy_ AttestPolicy *policy = NULL;
	if (attest_policy_new(&policy) < 0) return snprintf(reason, sizeof reason, "out of memory"), -ENOMEM;
	policy->max_age_ms = c->max_age * 1000;
	struct attest_verify_params p = {.root = c->root, .cache = c->cache, .now_ms = (uint64_t)now * 1000,
					 .policy = policy};
	_cleanup_attest_doc_ AttestDoc *d = NULL;
	AttestError e = ATTEST_OK;
	char why[200] = "";
	int r = attest_verify(doc, len, &p, &d, &e, why, sizeof why);
	if (r < 0) {
		snprintf(reason, sizeof reason, "%s: %s", attest_error_name(e), why);
		return r == -ENOMEM ? r : -EACCES;
	}
	if (!d->public_key) {
		snprintf(reason, sizeof reason, "the document carries no public_key");
		return -EINVAL;
	}
	const uint8_t *k = d->public_key;
	rec.public_key = d2i_PUBKEY(NULL, &k, (long)d->public_key_len);
	if (!rec.public_key || k != d->public_key + d->public_key_len || EVP_PKEY_get_base_id(rec.public_key) != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(rec.public_key) < 2048 || EVP_PKEY_get_bits(rec.public_key) > 4096) {
		recipient_done(&rec);
		ERR_clear_error();
		snprintf(reason, sizeof reason, "public_key is not an RSA SubjectPublicKeyInfo of 2048 to 4096 bits");
		return -EINVAL;
	}
	for (unsigned i = 0; i < KMS_PCRS; i++)
		if (d->pcr_mask & (1u << i)) hex_encode(d->pcrs[i], ATTEST_PCR_LEN, rec.pcr[i]);
	snprintf(rec.module_id, sizeof rec.module_id, "%s", d->module_id ? d->module_id : "");
	*ret = rec;
	reason[0] = 0;
	return 0;
}
