/* Fuzz the AUDIT payload decoder: no crash, and whatever it accepts re-encodes into a payload that decodes back
 * to the same record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct audit_record r, r2;
	if (audit_decode(data, size, &r) < 0)
		return 0;
	uint8_t *e;
	size_t el;
	if (audit_encode(&r, &e, &el) < 0)
		abort();
	if (audit_decode(e, el, &r2) < 0 || memcmp(r.receipt_sha256, r2.receipt_sha256, 32) != 0 ||
	    strcmp(r.model_id, r2.model_id) != 0 || strcmp(r.status, r2.status) != 0 || r.inputs != r2.inputs ||
	    r.tokens != r2.tokens || r.duration_us != r2.duration_us)
		abort();
	free(e);
	return 0;
}
