/* json-hex.c: hex byte strings in JSON (see json-hex.h). */
#include "json-hex.h"

#include <stdio.h>
#include <stdlib.h>

#include "util.h"

json_object *json_hex_new(const uint8_t *p, size_t n) {
	if (!p)
		return NULL;
	char *h = malloc(2 * n + 1);
	if (!h)
		return NULL;
	hex_encode(p, n, h);
	json_object *o = json_object_new_string(h);
	free(h);
	return o;
}

json_object *json_hex_rows(const uint8_t *rows, size_t row_len, size_t count, uint32_t mask) {
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	for (unsigned i = 0; i < count && i < 32; i++)
		if (mask & (1u << i)) {
			char k[4];
			snprintf(k, sizeof k, "%u", i);
			json_object_object_add(o, k, json_hex_new(rows + (size_t)i * row_len, row_len));
		}
	return o;
}

bool json_hex_get(json_object *v, uint8_t *out, size_t len) {
	return json_object_is_type(v, json_type_string) && (size_t)json_object_get_string_len(v) == 2 * len &&
	       hex_decode(json_object_get_string(v), out, len) == (int)len;
}
