/* fuzz-eif: the EIF parser on arbitrary bytes (eif_parse). */
#include <stddef.h>
#include <stdint.h>

#include "eif.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct eif_info info;
	const char *why = NULL;
	static const uint8_t empty[1];
	(void)eif_parse(size ? data : empty, size, &info, &why);
	return 0;
}
