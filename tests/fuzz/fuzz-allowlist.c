/* Fuzz the allow-list YAML parser: no crash or leak, every accepted entry within limits, and an error message
 * always set. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "allowlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct allowlist a;
	char err[256];
	if (allowlist_parse((const char *)data, size, &a, err, sizeof(err)) < 0) {
		if (!err[0] || strlen(err) >= sizeof(err))
			abort();
		return 0;
	}
	if (a.n > ALLOWLIST_MAX_ENTRIES)
		abort();
	for (size_t i = 0; i < a.n; i++)
		if (a.entries[i].port == 0 || !a.entries[i].address[0] || strlen(a.entries[i].address) > ALLOWLIST_HOST_MAX)
			abort();
	allowlist_free(&a);
	return 0;
}
