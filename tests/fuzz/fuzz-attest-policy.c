/* Fuzz the interim JSON attestation policy parser: it either fails with a reason or yields a policy whose
 * allow-lists are consistent with its mask. */
#include <stdint.h>
#include <stdlib.h>

#include "attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	AttestPolicy *p = NULL;
	char reason[128] = "";
	int r = attest_policy_from_json((const char *)data, size, &p, reason, sizeof reason);
	if (r < 0) {
		if (p || (r == -EINVAL && !reason[0])) abort();
		return 0;
	}
	for (unsigned i = 0; i < ATTEST_PCR_COUNT; i++)
		if (!!(p->pcr_mask & (1u << i)) != (p->n_allowed[i] > 0)) abort();
	attest_policy_free(p);
	return 0;
}
