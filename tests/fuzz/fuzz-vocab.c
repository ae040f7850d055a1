/* libFuzzer target: vocabulary (vocab.txt) parsing from arbitrary bytes, then encoding a fixed text with it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct tokenizer *t;
	if (tokenizer_new((const char *)data, size, &t, NULL, 0) < 0) return 0;
	static const char text[] = "Hello, world! unaffable na\xc3\xafve \xe4\xb8\xad";
	int32_t *ids;
	size_t n;
	if (tokenizer_encode(t, text, sizeof text - 1, 32, &ids, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			if (ids[i] < 0 || (size_t)ids[i] >= tokenizer_vocab_size(t)) __builtin_trap();
		free(ids);
	}
	tokenizer_free(t);
	return 0;
}
