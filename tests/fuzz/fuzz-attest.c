/* Fuzz attestation parsing and verification (COSE_Sign1, the NSM payload schema, the certificate chain,
 * ES384) against the pinned AWS root at a real document's time. The first byte picks the verification time
 * and whether the bundle cache is used. A document the fuzzer makes must never verify (it cannot forge
 * AWS's signatures) unless it is byte-identical to a seed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "nitro-root.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static X509Root *root;
static X509PathCache *cache;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size < 1) return 0;
	if (!root && (nitro_root_g1(&root) < 0 || x509_path_cache_new(4, &cache) < 0)) abort();
	static const uint64_t times[] = {1616018515685ull, 1706120065635ull};
	uint8_t ctl = data[0];
	data++, size--;

	AttestDoc *d = NULL;
	AttestError e = _ATTEST_ERROR_MAX;
	char reason[128];
	int r = attest_parse(data, size, &d, &e, reason, sizeof reason);
	if ((r == 0) != (e == ATTEST_OK)) abort();
	if (r == 0) {
		/* parsed fields stay within the schema's limits */
		if (d->n_cabundle == 0 || d->n_cabundle > X509_CHAIN_MAX_BUNDLE || d->user_data_len > ATTEST_USER_DATA_MAX ||
		    d->nonce_len > ATTEST_NONCE_MAX || d->public_key_len > ATTEST_PUBLIC_KEY_MAX || !d->module_id)
			abort();
		attest_doc_free(d);
	}

	struct attest_verify_params p = {
		.root = root,
		.now_ms = times[ctl & 1],
		.cache = (ctl & 2) ? cache : NULL,
		.nonce = (ctl & 4) ? (const uint8_t *)"Nonce\n" : NULL,
		.nonce_len = (ctl & 4) ? 6 : 0,
	};
	e = _ATTEST_ERROR_MAX;
	r = attest_verify(data, size, &p, NULL, &e, reason, sizeof reason);
	if ((r == 0) != (e == ATTEST_OK) || e >= _ATTEST_ERROR_MAX || e == ATTEST_INTERNAL) abort();
	return 0;
}
