/* cbor.h: strict CBOR decoding and deterministic encoding (RFC 8949) on top of libcbor.
 *
 * Owns three things every wire and file format of the project builds on:
 *
 *  1. Strict decoding. ecbor_decode() walks the raw bytes first (ecbor_validate) and only then lets libcbor
 *     build items, so a hostile length or count can never make libcbor allocate what the input merely claims:
 *     after validation every declared count and length is backed by real bytes. The walk enforces the
 *     caller's limits (total size, nesting depth, item count, string length, indefinite lengths allowed or
 *     not), well-formedness (truncation, reserved additional info, stray breaks, trailing bytes), valid UTF-8
 *     in text strings, map keys restricted to int / tstr / bstr and never duplicated, and only the simple
 *     values false/true/null/undefined. With .deterministic it also requires RFC 8949 section 4.2 encoding:
 *     preferred (shortest) heads and floats, no indefinite lengths, map keys in bytewise order of encoding.
 *
 *  2. Deterministic encoding. ecbor_encode() serialises any libcbor tree per RFC 8949 section 4.2.1
 *     whatever widths the tree's items carry (libcbor's own serialiser keeps widths as built): shortest
 *     heads, definite lengths (indefinite strings are joined), shortest exact float (NaN as f97e00), map
 *     keys sorted by their encoding; duplicate keys are an error.
 *
 *  3. Small helpers to build trees (consuming references, NULL-tolerant, so calls can be nested and checked
 *     once) and to read them with type checks.
 *
 * Errors (negative errno), distinct so callers can map them to their own codes:
 *   -EMSGSIZE   input larger than limits.max_size          -EBADMSG   malformed / truncated CBOR
 *   -ELOOP      nesting deeper than limits.max_depth        -ENOBUFS   more than limits.max_items items
 *   -E2BIG      a string longer than limits.max_string      -ENOTSUP   indefinite length not allowed
 *   -ENOTUNIQ   duplicate map key                           -EDOM      not deterministic (with .deterministic)
 *   -EILSEQ     invalid UTF-8 in a text string              -ENOTEMPTY bytes after the top-level item
 *   -EPROTOTYPE unsupported map key type or simple value    -ENOMEM
 * Readers: -ENOENT key missing, -EMEDIUMTYPE wrong type, -ERANGE value out of range or wrong size.
 *
 * Prefix is ecbor_ because libcbor owns cbor_. */
#pragma once

/* libcbor's umbrella <cbor.h> is shadowed by this file on the -Ilib path, so take its parts directly. */
#include <cbor/common.h>
#include <cbor/data.h>
#include <cbor/arrays.h>
#include <cbor/bytestrings.h>
#include <cbor/floats_ctrls.h>
#include <cbor/ints.h>
#include <cbor/maps.h>
#include <cbor/strings.h>
#include <cbor/tags.h>
#include <cbor/serialization.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ecbor_limits {
	size_t max_size;   /* whole input, bytes */
	unsigned max_depth; /* nesting of arrays, maps and tags; a scalar at top level is depth 0 */
	size_t max_items;  /* data items counted, keys and values and string chunks included */
	size_t max_string; /* bytes of any one bstr or tstr (chunks summed) */
	bool allow_indefinite;
	bool deterministic; /* require RFC 8949 4.2 encoding (implies no indefinite lengths) */
};

/* A reasonable default for messages of this project (a frame is at most 16 MiB). */
#define ECBOR_LIMITS_DEFAULT                                                                              \
	((struct ecbor_limits){.max_size = 16u << 20, .max_depth = 16, .max_items = 1u << 16,          \
			       .max_string = 16u << 20, .allow_indefinite = false, .deterministic = false})

/* Hard ceiling on depth whatever the caller asks: the walkers recurse. */
#define ECBOR_MAX_DEPTH 64

/* Short static description of one of the errors above. */
const char *ecbor_strerror(int r);

/* Check that buf holds exactly one well-formed item within the limits. 0 or a negative error above. */
int ecbor_validate(const uint8_t *buf, size_t len, const struct ecbor_limits *lim);

/* Validate, then decode with libcbor. *ret is a new reference (cbor_decref / _cleanup_cbor_). */
int ecbor_decode(const uint8_t *buf, size_t len, const struct ecbor_limits *lim, cbor_item_t **ret);

/* Deterministic encoding of a tree into a new malloc'ed buffer. -ENOTUNIQ on duplicate map keys, -EINVAL on
 * items with no CBOR meaning (unknown control values), -ELOOP beyond ECBOR_MAX_DEPTH, -ENOMEM. */
int ecbor_encode(const cbor_item_t *item, uint8_t **ret, size_t *ret_len);

/* Write the preferred (shortest) head of major type major (0..7) and argument val into out; returns its
 * length (1, 2, 3, 5 or 9). For callers that emit simple structures by hand (e.g. Sig_structure). */
size_t ecbor_write_head(uint8_t out[static 9], unsigned major, uint64_t val);

/* --- building trees ------------------------------------------------------------------------------------
 * Constructors return a new reference or NULL on allocation failure. ecbor_map_put and ecbor_array_push
 * consume the references they are given (also on failure) and return -ENOMEM if any argument is NULL, so
 *     r = ecbor_map_put(m, ecbor_int(1), ecbor_bstr(p, n));
 * needs a single check. Maps and arrays are built indefinite internally; ecbor_encode writes them definite. */
cbor_item_t *ecbor_int(int64_t v);
cbor_item_t *ecbor_uint(uint64_t v);
cbor_item_t *ecbor_bstr(const void *p, size_t n);
cbor_item_t *ecbor_tstr(const char *s);
cbor_item_t *ecbor_tstrn(const char *s, size_t n);
cbor_item_t *ecbor_bool(bool b);
cbor_item_t *ecbor_null(void);
cbor_item_t *ecbor_map(void);
cbor_item_t *ecbor_array(void);
/* Tag wrapping item (consumed). */
cbor_item_t *ecbor_tag(uint64_t tag, cbor_item_t *item);
int ecbor_map_put(cbor_item_t *map, cbor_item_t *key, cbor_item_t *value);
int ecbor_array_push(cbor_item_t *array, cbor_item_t *item);

static inline void ecbor_unrefp(cbor_item_t **p) {
	if (*p)
		cbor_decref(p);
}
#define _cleanup_cbor_ __attribute__((cleanup(ecbor_unrefp)))

/* --- reading trees --------------------------------------------------------------------------------------
 * Lookups return a borrowed pointer (valid while the tree lives) or NULL when map is not a map or the key is
 * absent. Integer keys match uint and negint items by value; text keys match definite text strings. */
cbor_item_t *ecbor_map_get_int(const cbor_item_t *map, int64_t key);
cbor_item_t *ecbor_map_get_text(const cbor_item_t *map, const char *key);

/* Typed reads: -EMEDIUMTYPE when item is NULL or of another type (indefinite strings included). */
int ecbor_get_uint(const cbor_item_t *item, uint64_t *ret);
int ecbor_get_int(const cbor_item_t *item, int64_t *ret); /* uint or negint fitting int64, else -ERANGE */
int ecbor_get_bool(const cbor_item_t *item, bool *ret);
int ecbor_get_bstr(const cbor_item_t *item, const uint8_t **ret, size_t *ret_len);
/* Exactly len bytes, else -ERANGE. */
int ecbor_get_bstr_len(const cbor_item_t *item, size_t len, const uint8_t **ret);
/* Text is not NUL-terminated; ecbor_get_tstr_dup gives a C string (-EILSEQ if it contains NUL). */
int ecbor_get_tstr(const cbor_item_t *item, const char **ret, size_t *ret_len);
int ecbor_get_tstr_dup(const cbor_item_t *item, char **ret);
bool ecbor_is_null(const cbor_item_t *item);
bool ecbor_tstr_equal(const cbor_item_t *item, const char *s);

/* Map lookup + typed read in one: -ENOENT when the key is absent. */
int ecbor_map_int_bstr(const cbor_item_t *map, int64_t key, const uint8_t **ret, size_t *ret_len);
int ecbor_map_int_tstr(const cbor_item_t *map, int64_t key, const char **ret, size_t *ret_len);
int ecbor_map_int_uint(const cbor_item_t *map, int64_t key, uint64_t *ret);
int ecbor_map_text_bstr(const cbor_item_t *map, const char *key, const uint8_t **ret, size_t *ret_len);
int ecbor_map_text_tstr(const cbor_item_t *map, const char *key, const char **ret, size_t *ret_len);
int ecbor_map_text_uint(const cbor_item_t *map, const char *key, uint64_t *ret);
