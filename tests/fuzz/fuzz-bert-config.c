/* libFuzzer target: config.json parsing for the encoder (arbitrary bytes). */
#include <stddef.h>
#include <stdint.h>

#include "bert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct bert_config c;
	char err[256];
	if (bert_config_parse((const char *)data, size, &c, err, sizeof err) == 0) {
		if (c.hidden == 0 || c.heads == 0 || c.hidden % c.heads || c.layers == 0 || c.hidden > BERT_MAX_HIDDEN ||
		    c.max_positions > BERT_MAX_POSITIONS || !(c.ln_eps > 0))
			__builtin_trap();
	}
	return 0;
}
