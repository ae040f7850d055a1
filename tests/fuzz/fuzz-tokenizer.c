/* libFuzzer target: the tokenizer on arbitrary bytes (invalid UTF-8 included). The first byte picks the id
 * limit; a tiny built-in vocabulary keeps the target self-contained and makes WordPiece paths reachable. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "tokenizer.h"

static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\nb\nab\n##a\n##b\n##ab\n.\n\xc3\xa9\n\xe4\xb8\xad\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct tokenizer *t;
	if (size < 1 || tokenizer_new(vocab, sizeof vocab - 1, &t, NULL, 0) < 0) return 0;
	size_t max = 2 + data[0] % 64;
	int32_t *ids;
	size_t n;
	if (tokenizer_encode(t, (const char *)data + 1, size - 1, max, &ids, &n) == 0) {
		if (n < 2 || n > max || ids[0] != 2 || ids[n - 1] != 3) __builtin_trap();
		for (size_t i = 0; i < n; i++)
			if (ids[i] < 0 || (size_t)ids[i] >= tokenizer_vocab_size(t)) __builtin_trap();
		free(ids);
	}
	tokenizer_free(t);
	return 0;
}
