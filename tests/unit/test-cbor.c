/* Tests for cbor.c: strict validation (limits, malformed input, determinism), deterministic encoding, readers,
 * and interop with outside vectors (AIR payloads must round-trip byte for byte; Nitro documents decode). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "cbor.h"
#include "helper-vectors.h"
#include "macro.h"
#include "util.h"

static int validate_hex(const char *hex, const struct ecbor_limits *lim) {
	uint8_t buf[256];
	int n = hex_decode(hex, buf, sizeof buf);
	assert_true(n >= 0);
	return ecbor_validate(buf, (size_t)n, lim);
}

static void assert_encodes(cbor_item_t *item, const char *hex) {
	_cleanup_free_ uint8_t *out = NULL;
	size_t len;
	assert_non_null(item);
	assert_int_equal(ecbor_encode(item, &out, &len), 0);
	char s[2 * len + 1];
	hex_encode(out, len, s);
	assert_string_equal(s, hex);
	cbor_decref(&item);
}

static void test_malformed(void **state) {
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	assert_int_equal(validate_hex("", &lim), -EBADMSG);
	assert_int_equal(validate_hex("18", &lim), -EBADMSG);       /* truncated argument */
	assert_int_equal(validate_hex("1c", &lim), -EBADMSG);       /* reserved additional info 28 */
	assert_int_equal(validate_hex("1f", &lim), -EBADMSG);       /* indefinite uint */
	assert_int_equal(validate_hex("ff", &lim), -EBADMSG);       /* stray break */
	assert_int_equal(validate_hex("4301", &lim), -EBADMSG);     /* bstr shorter than declared */
	assert_int_equal(validate_hex("830102", &lim), -EBADMSG);   /* array shorter than declared */
	assert_int_equal(validate_hex("a1", &lim), -EBADMSG);
	assert_int_equal(validate_hex("0000", &lim), -ENOTEMPTY);
	assert_int_equal(validate_hex("62c328", &lim), -EILSEQ);    /* bad continuation byte */
	assert_int_equal(validate_hex("63eda080", &lim), -EILSEQ);  /* UTF-16 surrogate */
	assert_int_equal(validate_hex("62c0af", &lim), -EILSEQ);    /* overlong */
	assert_int_equal(validate_hex("f0", &lim), -EPROTOTYPE);    /* unassigned simple value */
	assert_int_equal(validate_hex("f818", &lim), -EPROTOTYPE);  /* 1-byte simple, non-well-formed below 32 */
	assert_int_equal(validate_hex("a1820102", &lim), -EPROTOTYPE); /* array as map key */
	assert_int_equal(validate_hex("a1f600", &lim), -EPROTOTYPE);   /* null as map key */
	assert_int_equal(validate_hex("6461c3a9", &lim), -EBADMSG);
	assert_int_equal(validate_hex("6261c3", &lim), -EILSEQ); /* truncated sequence */
	assert_int_equal(validate_hex("63e282ac", &lim), 0); /* euro sign */
}

/* Huge declared sizes on tiny inputs fail before anything is allocated or looped over. */
static void test_hostile_lengths(void **state) {
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	assert_int_equal(validate_hex("9bffffffffffffffff", &lim), -EBADMSG);
	assert_int_equal(validate_hex("bbffffffffffffffff", &lim), -EBADMSG);
	assert_int_equal(validate_hex("5bffffffffffffffff", &lim), -E2BIG);
	assert_int_equal(validate_hex("5a00100000", &lim), -EBADMSG); /* 1 MiB claimed, 0 present */
	lim.max_string = 3;
	assert_int_equal(validate_hex("4400000000", &lim), -E2BIG);
	assert_int_equal(validate_hex("43000000", &lim), 0);
	lim.allow_indefinite = true;
	assert_int_equal(validate_hex("5f42000042000000ff", &lim), -E2BIG); /* chunks summed */
	cbor_item_t *it = NULL;
	assert_int_equal(ecbor_decode((const uint8_t *)"\x9b\xff\xff\xff\xff\xff\xff\xff\xff", 9, &lim, &it),
			 -EBADMSG);
	assert_null(it);
}

static void test_limits(void **state) {
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	lim.max_depth = 2;
	assert_int_equal(validate_hex("818100", &lim), 0);
	assert_int_equal(validate_hex("81818100", &lim), -ELOOP);
	assert_int_equal(validate_hex("c1c1c100", &lim), -ELOOP); /* tags nest too */
	lim = ECBOR_LIMITS_DEFAULT;
	lim.max_items = 3;
	assert_int_equal(validate_hex("820102", &lim), 0);
	assert_int_equal(validate_hex("83010203", &lim), -ENOBUFS);
	lim = ECBOR_LIMITS_DEFAULT;
	lim.max_size = 2;
	assert_int_equal(validate_hex("1818", &lim), 0);
	assert_int_equal(validate_hex("190100", &lim), -EMSGSIZE);
	lim = ECBOR_LIMITS_DEFAULT;
	assert_int_equal(validate_hex("9f01ff", &lim), -ENOTSUP);
	assert_int_equal(validate_hex("5f4100ff", &lim), -ENOTSUP);
	lim.allow_indefinite = true;
	assert_int_equal(validate_hex("9f01ff", &lim), 0);
	assert_int_equal(validate_hex("bf0102ff", &lim), 0);
	assert_int_equal(validate_hex("5f4100ff", &lim), 0);
	assert_int_equal(validate_hex("5f6100ff", &lim), -EBADMSG); /* text chunk in a byte string */
	assert_int_equal(validate_hex("9f01", &lim), -EBADMSG);     /* missing break */
	/* A huge ceiling from the caller is still capped. */
	lim = ECBOR_LIMITS_DEFAULT;
	lim.max_depth = 1000;
	uint8_t deep[200];
	memset(deep, 0x81, sizeof deep);
	deep[sizeof deep - 1] = 0;
	assert_int_equal(ecbor_validate(deep, sizeof deep, &lim), -ELOOP);
}

static void test_duplicates_and_order(void **state) {
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	assert_int_equal(validate_hex("a201020304", &lim), 0);
	assert_int_equal(validate_hex("a201020302", &lim), 0); /* values may repeat */
	assert_int_equal(validate_hex("a201020103", &lim), -ENOTUNIQ);
	/* The same key with a non-preferred head is still the same key. */
	assert_int_equal(validate_hex("a20102180103", &lim), -ENOTUNIQ);
	assert_int_equal(validate_hex("a261610178016102", &lim), -ENOTUNIQ);
	assert_int_equal(validate_hex("a202010103", &lim), 0); /* unsorted is fine without .deterministic */
	lim.deterministic = true;
	assert_int_equal(validate_hex("a202010103", &lim), -EDOM);
	assert_int_equal(validate_hex("a201020103", &lim), -ENOTUNIQ);
	assert_int_equal(validate_hex("a201020304", &lim), 0);
	/* Bytewise order of encodings: 10 < 100 < -1 < "a" < "b" < "aa". */
	assert_int_equal(validate_hex("a60a011864022003616104616205626161" "06", &lim), 0);
	assert_int_equal(validate_hex("a6186402" "0a01" "2003616104616205626161" "06", &lim), -EDOM);
}

static void test_deterministic_heads(void **state) {
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	lim.deterministic = true;
	assert_int_equal(validate_hex("1817", &lim), -EDOM);
	assert_int_equal(validate_hex("1818", &lim), 0);
	assert_int_equal(validate_hex("1900ff", &lim), -EDOM);
	assert_int_equal(validate_hex("1a0000ffff", &lim), -EDOM);
	assert_int_equal(validate_hex("1b00000000ffffffff", &lim), -EDOM);
	assert_int_equal(validate_hex("1b0000000100000000", &lim), 0);
	assert_int_equal(validate_hex("5801ff", &lim), -EDOM);
	assert_int_equal(validate_hex("9f01ff", &lim), -EDOM);
	assert_int_equal(validate_hex("fa3fc00000", &lim), -EDOM);         /* 1.5 fits in half */
	assert_int_equal(validate_hex("fb3ff8000000000000", &lim), -EDOM); /* 1.5 fits in float */
	assert_int_equal(validate_hex("fb3ff199999999999a", &lim), 0);     /* 1.1 needs double */
	assert_int_equal(validate_hex("fa47c35000", &lim), 0);             /* 100000.0 needs float */
	assert_int_equal(validate_hex("f93e00", &lim), 0);
	assert_int_equal(validate_hex("fb7ff8000000000000", &lim), -EDOM); /* NaN must be f97e00 */
	assert_int_equal(validate_hex("c11a514b67b0", &lim), 0);
	assert_int_equal(validate_hex("d8011a514b67b0", &lim), -EDOM); /* tag 1 with a 1-byte head */
}

static void test_encode(void **state) {
	assert_encodes(ecbor_int(0), "00");
	assert_encodes(ecbor_int(23), "17");
	assert_encodes(ecbor_int(24), "1818");
	assert_encodes(ecbor_int(1000), "1903e8");
	assert_encodes(ecbor_int(1000000000000), "1b000000e8d4a51000");
	assert_encodes(ecbor_uint(UINT64_MAX), "1bffffffffffffffff");
	assert_encodes(ecbor_int(-1), "20");
	assert_encodes(ecbor_int(-1000), "3903e7");
	assert_encodes(ecbor_int(INT64_MIN), "3b7fffffffffffffff");
	assert_encodes(cbor_build_uint32(5), "05"); /* wide item, short head */
	assert_encodes(cbor_build_float8(1.5), "f93e00");
	assert_encodes(cbor_build_float8(100000.0), "fa47c35000");
	assert_encodes(cbor_build_float8(1.1), "fb3ff199999999999a");
	assert_encodes(cbor_build_float8(5.960464477539063e-8), "f90001");
	assert_encodes(cbor_build_float8(-4.0), "f9c400");
	assert_encodes(cbor_build_float8(INFINITY), "f97c00");
	assert_encodes(cbor_build_float8(NAN), "f97e00");
	assert_encodes(cbor_build_float4(65504.0f), "f97bff");
	assert_encodes(ecbor_bool(true), "f5");
	assert_encodes(ecbor_null(), "f6");
	assert_encodes(ecbor_bstr(NULL, 0), "40");
	assert_encodes(ecbor_tstr("IETF"), "6449455446");
	assert_encodes(ecbor_tag(18, ecbor_array()), "d280");

	cbor_item_t *m = ecbor_map();
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("b"), ecbor_int(1)), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_int(10), ecbor_int(2)), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_int(-1), ecbor_int(3)), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("a"), ecbor_int(4)), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_int(100), ecbor_int(5)), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("aa"), ecbor_int(6)), 0);
	assert_int_equal(ecbor_map_put(m, NULL, ecbor_int(6)), -ENOMEM); /* NULL consumed safely */
	assert_encodes(m, "a60a021864052003616104616201626161" "06");

	/* Indefinite strings are joined. */
	cbor_item_t *s = cbor_new_indefinite_bytestring();
	assert_true(cbor_bytestring_add_chunk(s, cbor_move(cbor_build_bytestring((const uint8_t *)"\x01", 1))));
	assert_true(cbor_bytestring_add_chunk(s, cbor_move(cbor_build_bytestring((const uint8_t *)"\x02\x03", 2))));
	assert_encodes(s, "43010203");

	cbor_item_t *dup = ecbor_map();
	assert_int_equal(ecbor_map_put(dup, ecbor_int(1), ecbor_int(1)), 0);
	assert_int_equal(ecbor_map_put(dup, cbor_build_uint16(1), ecbor_int(2)), 0);
	_cleanup_free_ uint8_t *out = NULL;
	size_t len;
	assert_int_equal(ecbor_encode(dup, &out, &len), -ENOTUNIQ);
	cbor_decref(&dup);
}

/* Floats where a bool or null is expected: a type mismatch, never a libcbor assertion. */
static void test_float_not_simple(void **state) {
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	static const char *const floats[] = {"f93e00", "fa3fc00000", "fb3ff8000000000000", "f97e00"};
	for (size_t i = 0; i < ARRAY_SIZE(floats); i++) {
		uint8_t buf[9];
		int n = hex_decode(floats[i], buf, sizeof buf);
		assert_true(n > 0);
		_cleanup_cbor_ cbor_item_t *it = NULL;
		assert_int_equal(ecbor_decode(buf, (size_t)n, &lim, &it), 0);
		bool b;
		assert_int_equal(ecbor_get_bool(it, &b), -EMEDIUMTYPE);
		assert_false(ecbor_is_null(it));
	}
}

static void test_readers(void **state) {
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	uint8_t buf[64];
	/* {1: h'0102', "k": "v", -7: 5, "n": null, 2: -3} */
	int n = hex_decode("a501420102616b6176260561" "6ef60222", buf, sizeof buf);
	assert_true(n > 0);
	_cleanup_cbor_ cbor_item_t *m = NULL;
	assert_int_equal(ecbor_decode(buf, (size_t)n, &lim, &m), 0);
	const uint8_t *b;
	size_t bl;
	const char *t;
	size_t tl;
	uint64_t u;
	int64_t i;
	assert_int_equal(ecbor_map_int_bstr(m, 1, &b, &bl), 0);
	assert_int_equal(bl, 2);
	assert_int_equal(b[1], 2);
	assert_int_equal(ecbor_get_bstr_len(ecbor_map_get_int(m, 1), 3, &b), -ERANGE);
	assert_int_equal(ecbor_map_text_tstr(m, "k", &t, &tl), 0);
	assert_int_equal(tl, 1);
	assert_int_equal(t[0], 'v');
	assert_int_equal(ecbor_map_int_uint(m, -7, &u), 0);
	assert_int_equal(u, 5);
	assert_int_equal(ecbor_map_int_uint(m, 2, &u), -EMEDIUMTYPE);
	assert_int_equal(ecbor_get_int(ecbor_map_get_int(m, 2), &i), 0);
	assert_int_equal(i, -3);
	assert_true(ecbor_is_null(ecbor_map_get_text(m, "n")));
	assert_int_equal(ecbor_map_text_uint(m, "missing", &u), -ENOENT);
	assert_int_equal(ecbor_map_int_bstr(m, 3, &b, &bl), -ENOENT);
	assert_int_equal(ecbor_map_text_bstr(m, "k", &b, &bl), -EMEDIUMTYPE);
	assert_null(ecbor_map_get_int(NULL, 1));
	_cleanup_free_ char *dup = NULL;
	assert_int_equal(ecbor_get_tstr_dup(ecbor_map_get_text(m, "k"), &dup), 0);
	assert_string_equal(dup, "v");
}

/* Outside vectors: AIR v1 payloads are deterministic CBOR; strict decode + re-encode gives the same bytes,
 * and so does the whole receipt. */
static void roundtrip_air(const char *rel) {
	json_object *j = NULL;
	assert_int_equal(tv_read_json(rel, &j), 0);
	const char *fields[] = {"payload_hex", "receipt_hex"};
	for (size_t k = 0; k < ARRAY_SIZE(fields); k++) {
		_cleanup_free_ uint8_t *in = NULL, *out = NULL;
		size_t in_len, out_len;
		assert_int_equal(tv_hex(j, fields[k], &in, &in_len), 0);
		struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
		lim.deterministic = true;
		_cleanup_cbor_ cbor_item_t *item = NULL;
		assert_int_equal(ecbor_decode(in, in_len, &lim, &item), 0);
		assert_int_equal(ecbor_encode(item, &out, &out_len), 0);
		assert_int_equal(out_len, in_len);
		assert_memory_equal(out, in, in_len);
		/* Every truncation is rejected. */
		for (size_t cut = 0; cut < in_len; cut++)
			assert_int_equal(ecbor_validate(in, cut, &lim), -EBADMSG);
	}
	json_object_put(j);
}

static void test_air_vectors(void **state) {
	roundtrip_air("air/valid/v1-nitro-no-nonce.json");
	roundtrip_air("air/valid/v1-tdx-with-nonce.json");
}

/* Nitro attestation documents: untagged COSE_Sign1 whose payload map keeps AWS's (unsorted) key order. */
static void test_nitro_documents(void **state) {
	const char *docs[] = {"nitro/nitro-prod-2021.cose", "nitro/nitro-debug-full-2024.cose"};
	for (size_t k = 0; k < ARRAY_SIZE(docs); k++) {
		_cleanup_free_ uint8_t *doc = NULL;
		size_t len;
		assert_int_equal(tv_read(docs[k], &doc, &len), 0);
		struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
		_cleanup_cbor_ cbor_item_t *top = NULL;
		assert_int_equal(ecbor_decode(doc, len, &lim, &top), 0);
		assert_true(cbor_isa_array(top));
		assert_int_equal(cbor_array_size(top), 4);
		const uint8_t *payload;
		size_t plen;
		assert_int_equal(ecbor_get_bstr(cbor_array_handle(top)[2], &payload, &plen), 0);
		_cleanup_cbor_ cbor_item_t *p = NULL;
		assert_int_equal(ecbor_decode(payload, plen, &lim, &p), 0);
		const char *digest;
		size_t dl;
		assert_int_equal(ecbor_map_text_tstr(p, "digest", &digest, &dl), 0);
		assert_int_equal(dl, 6);
		assert_memory_equal(digest, "SHA384", 6);
		uint64_t ts;
		assert_int_equal(ecbor_map_text_uint(p, "timestamp", &ts), 0);
		assert_true(ts > 1500000000000ull);
		lim.deterministic = true;
		assert_int_equal(ecbor_validate(payload, plen, &lim), -EDOM);
		lim = ECBOR_LIMITS_DEFAULT;
		lim.max_string = 512;
		assert_int_equal(ecbor_validate(doc, len, &lim), -E2BIG);
	}
}

/* Property: any tree the builders make encodes to deterministic CBOR that strict decoding accepts and that
 * re-encodes to the same bytes; every strict prefix of it is rejected. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
	rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
	return rng_state;
}

static cbor_item_t *random_item(unsigned depth) {
	char text[16];
	uint8_t bytes[16];
	unsigned kind = depth == 0 ? 7 + (unsigned)(rnd() % 3) : (unsigned)(rnd() % (depth < 4 ? 10 : 7));
	switch (kind) {
	case 0: return ecbor_uint(rnd() >> (rnd() % 64));
	case 1: return ecbor_int(-(int64_t)(rnd() >> (1 + rnd() % 63)) - 1);
	case 2: {
		size_t n = rnd() % sizeof bytes;
		for (size_t i = 0; i < n; i++)
			bytes[i] = (uint8_t)rnd();
		return ecbor_bstr(bytes, n);
	}
	case 3: {
		size_t n = rnd() % (sizeof text - 1);
		for (size_t i = 0; i < n; i++)
			text[i] = (char)('a' + rnd() % 26);
		text[n] = 0;
		return ecbor_tstr(text);
	}
	case 4: {
		static const double f[] = {0.0, -0.0, 1.5, 100000.0, 1.1, 65504.0, 5.960464477539063e-8, 1e300, -4.0};
		return cbor_build_float8(f[rnd() % ARRAY_SIZE(f)]);
	}
	case 5: return rnd() % 2 ? ecbor_bool(rnd() % 2) : ecbor_null();
	case 6: return ecbor_tag(rnd() % 300, ecbor_uint(rnd() % 1000));
	case 7: {
		cbor_item_t *a = ecbor_array();
		for (unsigned i = 0, n = (unsigned)(rnd() % 5); i < n; i++)
			assert_int_equal(ecbor_array_push(a, random_item(depth + 1)), 0);
		return a;
	}
	default: {
		/* Unique keys: distinct small ints and distinct short texts. */
		cbor_item_t *m = ecbor_map();
		unsigned n = (unsigned)(rnd() % 6);
		for (unsigned i = 0; i < n; i++) {
			cbor_item_t *k;
			if (rnd() % 2)
				k = ecbor_int((int64_t)i * (rnd() % 2 ? 1 : -1) * 1000 - (int64_t)(i % 2));
			else {
				snprintf(text, sizeof text, "k%u", i);
				k = ecbor_tstr(text);
			}
			assert_int_equal(ecbor_map_put(m, k, random_item(depth + 1)), 0);
		}
		return m;
	}
	}
}

static void test_roundtrip_property(void **state) {
	struct ecbor_limits det = ECBOR_LIMITS_DEFAULT;
	det.deterministic = true;
	size_t done = 0, bytes = 0;
	for (int iter = 0; iter < 2000; iter++) {
		_cleanup_cbor_ cbor_item_t *t = random_item(0), *back = NULL;
		_cleanup_free_ uint8_t *a = NULL, *b = NULL;
		size_t an, bn;
		int r = ecbor_encode(t, &a, &an);
		assert_int_equal(r, 0);
		assert_int_equal(ecbor_decode(a, an, &det, &back), 0);
		assert_int_equal(ecbor_encode(back, &b, &bn), 0);
		assert_int_equal(an, bn);
		assert_memory_equal(a, b, an);
		for (size_t cut = 0; cut < an; cut++)
			assert_int_not_equal(ecbor_validate(a, cut, &det), 0);
		done++, bytes += an;
	}
	print_message("%zu trees, %zu bytes\n", done, bytes);
	assert_int_equal(done, 2000);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_malformed),          cmocka_unit_test(test_hostile_lengths),
		cmocka_unit_test(test_limits),             cmocka_unit_test(test_duplicates_and_order),
		cmocka_unit_test(test_deterministic_heads), cmocka_unit_test(test_encode),
		cmocka_unit_test(test_readers),            cmocka_unit_test(test_air_vectors),
		cmocka_unit_test(test_nitro_documents),    cmocka_unit_test(test_roundtrip_property),
		cmocka_unit_test(test_float_not_simple),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
