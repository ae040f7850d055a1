/* helper-vectors.h: read outside test vectors from $EML_SRCDIR/tests/vectors (files, JSON, hex fields). */
#pragma once

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

/* Whole file under tests/vectors/ (relative path). 0 or negative errno. */
int tv_read(const char *rel, uint8_t **ret, size_t *ret_len);
/* Parsed JSON file under tests/vectors/. */
int tv_read_json(const char *rel, json_object **ret);
/* Decode the hex string field key of obj into a new buffer (empty field -> non-NULL empty buffer). */
int tv_hex(json_object *obj, const char *key, uint8_t **ret, size_t *ret_len);
/* The string field key of obj, or NULL. */
const char *tv_str(json_object *obj, const char *key);
