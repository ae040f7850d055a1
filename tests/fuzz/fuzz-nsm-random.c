/* fuzz-nsm-random: eml-init's GetRandom reply decoder (nsm_random_parse) on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "nsm-random.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	const uint8_t *out;
	size_t n;
	static const uint8_t empty[1];
	if (nsm_random_parse(size ? data : empty, size, &out, &n) == 0) {
		/* The bytes returned must lie inside the input. */
		if (out < data || out + n > data + size) __builtin_trap();
	}
	return 0;
}
