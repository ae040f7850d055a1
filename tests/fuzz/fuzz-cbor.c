/* Fuzz the strict CBOR layer: validation under several limit profiles, decode, and the deterministic
 * re-encoding, which must itself validate as deterministic and decode back to the same encoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbor.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct ecbor_limits profiles[3] = {ECBOR_LIMITS_DEFAULT, ECBOR_LIMITS_DEFAULT, ECBOR_LIMITS_DEFAULT};
	profiles[1].allow_indefinite = true;
	profiles[1].max_items = 512;
	profiles[1].max_depth = 8;
	profiles[2].deterministic = true;

	for (size_t i = 0; i < ARRAY_SIZE(profiles); i++) {
		_cleanup_cbor_ cbor_item_t *item = NULL;
		if (ecbor_decode(data, size, &profiles[i], &item) < 0)
			continue;
		_cleanup_free_ uint8_t *enc = NULL;
		size_t len;
		int r = ecbor_encode(item, &enc, &len);
		if (r == -ENOTUNIQ) /* validation already refused duplicate keys */
			abort();
		if (r < 0)
			continue;
		struct ecbor_limits det = ECBOR_LIMITS_DEFAULT;
		det.deterministic = true;
		det.max_items = SIZE_MAX;
		det.max_depth = ECBOR_MAX_DEPTH;
		_cleanup_cbor_ cbor_item_t *again = NULL;
		if (ecbor_decode(enc, len, &det, &again) < 0)
			abort();
		_cleanup_free_ uint8_t *enc2 = NULL;
		size_t len2;
		if (ecbor_encode(again, &enc2, &len2) < 0 || len2 != len || memcmp(enc, enc2, len) != 0)
			abort();
		/* Deterministic input must be reproduced exactly. */
		if (i == 2 && (len != size || memcmp(enc, data, size) != 0))
			abort();
	}
	return 0;
}
