/* session-verify.c: Nitro attestation checks for a session client (see session-verify.h). */
#include "session-verify.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

struct SessionVerifier {
	const Policy *policy;
	AttestPolicy *attest_policy;
	X509Root *roots[POLICY_MAX_ROOTS];
	size_t n_roots;
	X509PathCache *cache;
	uint64_t now_ms;
	AttestDoc *last;
};

SessionVerifier *session_verifier_free(SessionVerifier *v) {
	if (!v)
		return NULL;
	attest_policy_free(v->attest_policy);
	for (size_t i = 0; i < v->n_roots; i++)
		x509_root_free(v->roots[i]);
	x509_path_cache_free(v->cache);
	attest_doc_free(v->last);
	free(v);
	return NULL;
}

int session_verifier_new(const Policy *policy, SessionVerifier **ret) {
	if (!policy || !ret || policy->n_roots == 0)
		return -EINVAL;
	_cleanup_session_verifier_ SessionVerifier *v = calloc(1, sizeof *v);
	if (!v)
		return -ENOMEM;
	v->policy = policy;
	int r = policy_attest_policy(policy, &v->attest_policy);
	if (r < 0)
		return r;
	for (size_t i = 0; i < policy->n_roots; i++) {
		if ((r = policy_root(policy, i, &v->roots[i])) < 0)
			return r;
		v->n_roots++;
	}
	if ((r = x509_path_cache_new(8, &v->cache)) < 0)
		return r;
	*ret = TAKE_PTR(v);
	return 0;
}

void session_verifier_set_time(SessionVerifier *v, uint64_t now_ms) { v->now_ms = now_ms; }

const AttestDoc *session_verifier_doc(const SessionVerifier *v) { return v->last; }

int session_verify_nitro(void *userdata, const uint8_t *doc, size_t len, const uint8_t *nonce, size_t nonce_len,
			 SessionAttested *ret) {
	SessionVerifier *v = userdata;
	char reason[sizeof ret->reason - 24] = "";
	AttestError e = ATTEST_UNKNOWN_ROOT;
	AttestDoc *d = NULL;
	int r = -EPERM;
	/* Try each trusted root: a document chains to exactly one, and only UNKNOWN_ROOT says "not this one". */
	for (size_t i = 0; i < v->n_roots && e == ATTEST_UNKNOWN_ROOT; i++) {
		struct attest_verify_params p = {
			.root = v->roots[i],
			.cache = v->cache,
			.now_ms = v->now_ms ? v->now_ms : now_realtime_usec() / 1000,
			.nonce = nonce,
			.nonce_len = nonce_len,
			.policy = v->attest_policy,
		};
		r = attest_verify(doc, len, &p, &d, &e, reason, sizeof reason);
		if (r == 0)
			break;
	}
	if (r < 0) {
		snprintf(ret->reason, sizeof ret->reason, "%s: %s", attest_error_name(e), reason);
		return r == -ENOMEM ? r : -EPERM;
	}
	if (!d->public_key || d->public_key_len > sizeof ret->public_key || !d->user_data ||
	    d->user_data_len > sizeof ret->user_data) {
		snprintf(ret->reason, sizeof ret->reason, "BAD_USER_DATA: public_key or user_data missing");
		attest_doc_free(d);
		return -EPERM;
	}
	SessionUserData u;
	if (session_user_data_decode(d->user_data, d->user_data_len, &u) < 0) {
		snprintf(ret->reason, sizeof ret->reason, "BAD_USER_DATA: user_data is not {v, receipt_key, model}");
		attest_doc_free(d);
		return -EPERM;
	}
	if (v->policy->models && (!u.has_model || !policy_model_allowed(v->policy, u.model_hash))) {
		snprintf(ret->reason, sizeof ret->reason, "MODEL_NOT_ALLOWED: %s",
			 u.has_model ? "the enclave's model is not in the policy" : "the enclave has no model loaded");
		attest_doc_free(d);
		return -EPERM;
	}
	memcpy(ret->public_key, d->public_key, d->public_key_len);
	ret->public_key_len = d->public_key_len;
	memcpy(ret->user_data, d->user_data, d->user_data_len);
	ret->user_data_len = d->user_data_len;
	attest_doc_free(v->last);
	v->last = d;
	return 0;
}
