/* Tests for json-hex.c: lower-case hex out, NULL for no bytes; strict in (exact length, string, hex digits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "json-hex.h"

static void test_new(void **state) {
	static const uint8_t b[] = {0x00, 0xab, 0xff};
	json_object *o = json_hex_new(b, sizeof b);
	assert_non_null(o);
	assert_string_equal(json_object_get_string(o), "00abff");
	json_object_put(o);
	assert_null(json_hex_new(NULL, 3));
}

static void test_rows(void **state) {
	static const uint8_t rows[3][2] = {{0x01, 0x02}, {0xaa, 0xbb}, {0xfe, 0xff}};
	json_object *o = json_hex_rows(&rows[0][0], 2, 3, (1u << 0) | (1u << 2) | (1u << 5)); /* 5: past count */
	assert_non_null(o);
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "{\"0\":\"0102\",\"2\":\"feff\"}");
	json_object_put(o);
}

static void test_get(void **state) {
	uint8_t out[3];
	json_object *o = json_object_new_string("00ABff");
	assert_true(json_hex_get(o, out, sizeof out));
	assert_memory_equal(out, ((uint8_t[]){0x00, 0xab, 0xff}), 3);
	assert_false(json_hex_get(o, out, 2)); /* longer than asked */
	assert_false(json_hex_get(o, out, 4)); /* shorter */
	json_object_put(o);
	o = json_object_new_string("00abfg");
	assert_false(json_hex_get(o, out, sizeof out));
	json_object_put(o);
	o = json_object_new_int(12);
	assert_false(json_hex_get(o, out, 1));
	json_object_put(o);
	assert_false(json_hex_get(NULL, out, 1));
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new),
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_get),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
