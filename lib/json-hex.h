/* json-hex.h: byte strings carried as lower-case hex in JSON documents (policies, attestation and receipt
 * output): one way out, one strict way in. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* A new JSON string holding the hex of n bytes; NULL (a JSON null when added to an object) when p is NULL or
 * memory runs out. */
json_object *json_hex_new(const uint8_t *p, size_t n);

/* An object {"i": hex of row i} for each bit i (< 32) set in mask, over count rows of row_len bytes each (e.g. an
 * attestation document's PCRs). NULL when memory runs out. */
json_object *json_hex_rows(const uint8_t *rows, size_t row_len, size_t count, uint32_t mask);

/* v is a string of exactly 2*len hex digits (either case): decoded into out. */
bool json_hex_get(json_object *v, uint8_t *out, size_t len);
