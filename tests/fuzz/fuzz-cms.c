/* libFuzzer target: the CMS EnvelopedData parser on arbitrary bytes (seeds: the KMS samples). */
#include <stddef.h>
#include <stdint.h>

#include "cms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct cms_enveloped e;
	const char *why = NULL;
	if (cms_parse_enveloped(data, size, &e, &why) == 0) {
		/* What parsed must be self-consistent. */
		if (e.content_len == 0 || e.content_len % 16 || e.encrypted_key_len == 0) __builtin_trap();
		cms_enveloped_done(&e);
	} else if (!why)
		__builtin_trap();
	return 0;
}
