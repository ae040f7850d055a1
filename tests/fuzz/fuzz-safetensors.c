/* libFuzzer target: safetensors header parsing and conversion of whatever tensors parse. */
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct safetensors *st;
	char err[256];
	if (safetensors_parse(data, size, 0, &st, err, sizeof err) < 0) return 0;
	float buf[64];
	for (size_t i = 0; i < st->n_tensors; i++) {
		const struct safetensors_tensor *t = &st->tensors[i];
		if (t->count <= 64) (void)safetensors_read_f32(st, t, buf, t->count);
		if (safetensors_find(st, t->name) != t) __builtin_trap();
	}
	safetensors_free(st);
	return 0;
}
