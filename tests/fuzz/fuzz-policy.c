/* Fuzz the policy bundle decoder: COSE_Sign1 parsing and the strict canonical payload decoder (policy_peek),
 * then signature checking against a fixed key (policy_verify). A bundle that decodes must re-encode to exactly
 * its payload bytes (canonical form), and nothing may be accepted as signed by a key that never signed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cose.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	Policy *p = NULL;
	char reason[256];
	if (policy_peek(data, size, &p, reason, sizeof reason) == 0) {
		CoseSign1 *m = NULL;
		uint8_t *enc = NULL;
		size_t n;
		if (cose_sign1_decode(data, size, &m) < 0) abort();
		if (policy_encode(p, &enc, &n) < 0) abort();
		if (n != m->payload_len || memcmp(enc, m->payload, n) != 0) abort();
		free(enc);
		cose_sign1_free(m);
		policy_free(p);
	}
	static const uint8_t key[1][32] = {{1, 2, 3}};
	PolicyError e;
	p = NULL;
	if (policy_verify(data, size, key, 1, 1, &p, &e, reason, sizeof reason) == 0) abort();
	policy_free(p);
	return 0;
}
