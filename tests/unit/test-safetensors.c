/* Tests for safetensors.c: the published MiniLM header, hostile headers, dtype conversion, writer round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "macro.h"
#include "safetensors.h"
#include "util.h"

static void test_real_header(void **state) {
	const char *src = getenv("EML_SRCDIR");
	_cleanup_free_ char *p = NULL;
	assert_true(asprintf(&p, "%s/tests/vectors/models/all-MiniLM-L6-v2/model.safetensors.header",
			     src ? src : ".") > 0);
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	assert_int_equal(read_file(p, 1 << 20, &buf, &len), 0);
	struct safetensors *st = NULL;
	char err[256] = "";
	/* Without its data the file must be refused, saying so. */
	assert_int_equal(safetensors_parse(buf, len, 0, &st, err, sizeof err), -ENODATA);
	assert_non_null(strstr(err, "90856960"));
	assert_int_equal(safetensors_parse(buf, len, SAFETENSORS_HEADER_ONLY, &st, err, sizeof err), 0);
	assert_int_equal(st->n_tensors, 104);
	assert_null(st->data);
	assert_true(st->data_len == 90856960);
	const struct safetensors_tensor *t = safetensors_find(st, "embeddings.word_embeddings.weight");
	assert_non_null(t);
	assert_int_equal(t->dtype, ST_F32);
	assert_int_equal(t->ndim, 2);
	assert_true(t->shape[0] == 30522 && t->shape[1] == 384);
	/* The same tensor under the BertModel-with-head prefix. */
	assert_ptr_equal(safetensors_find(st, "bert.embeddings.word_embeddings.weight"), t);
	t = safetensors_find(st, "encoder.layer.5.intermediate.dense.weight");
	assert_non_null(t);
	assert_true(t->shape[0] == 1536 && t->shape[1] == 384);
	assert_int_equal(safetensors_find(st, "embeddings.position_ids")->dtype, ST_I64);
	assert_null(safetensors_find(st, "encoder.layer.6.output.dense.weight"));
	float f;
	assert_int_equal(safetensors_read_f32(st, safetensors_find(st, "pooler.dense.bias"), &f, 1), -ENODATA);
	safetensors_free(st);
}

/* Build "len + json + data" in a fresh buffer. */
static uint8_t *mk(const char *json, size_t data, size_t *ret_len) {
	size_t jl = strlen(json);
	uint8_t *b = calloc(1, 8 + jl + data);
	assert_non_null(b);
	for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)jl >> (8 * i));
	memcpy(b + 8, json, jl);
	*ret_len = 8 + jl + data;
	return b;
}

static int try(const char *json, size_t data) {
	size_t len;
	_cleanup_free_ uint8_t *b = mk(json, data, &len);
	struct safetensors *st = NULL;
	char err[256];
	int r = safetensors_parse(b, len, 0, &st, err, sizeof err);
	safetensors_free(st);
	return r;
}

static void test_hostile(void **state) {
	assert_int_equal(try("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8), 0);
	assert_int_equal(try("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ", 8), 0);
	/* data missing, wrong size for shape, unknown dtype, negative, reversed, overlap */
	assert_int_equal(try("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 7), -ENODATA);
	assert_int_equal(try("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 16), -EBADMSG);
	assert_int_equal(try("{\"a\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8), -EBADMSG);
	assert_int_equal(try("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8), -EBADMSG);
	assert_int_equal(try("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8), -EBADMSG);
	assert_int_equal(try("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
			     16),
			 -EBADMSG);
	/* shape product overflow, too many dims, extra keys, trailing garbage, duplicate via prefix */
	assert_int_equal(try("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0),
			 -EBADMSG);
	assert_int_equal(try("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1),
			 -EBADMSG);
	assert_int_equal(try("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":1}}", 1), -EBADMSG);
	assert_int_equal(try("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}x", 1), -EBADMSG);
	assert_int_equal(try("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
			     "\"bert.a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
			     2),
			 -EBADMSG);
	assert_int_equal(try("[1]", 0), -EBADMSG);
	assert_int_equal(try("{\"__metadata__\":{\"k\":1}}", 0), -EBADMSG);
	/* header length beyond the buffer and absurd */
	uint8_t b[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
	struct safetensors *st;
	assert_int_equal(safetensors_parse(b, sizeof b, 0, &st, NULL, 0), -EBADMSG);
	b[0] = 100, memset(b + 1, 0, 7);
	assert_int_equal(safetensors_parse(b, sizeof b, 0, &st, NULL, 0), -EBADMSG);
	assert_int_equal(safetensors_parse(b, 4, 0, &st, NULL, 0), -EBADMSG);
}

static void test_convert(void **state) {
	/* IEEE half: 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff, smallest subnormal 2^-24 = 0x0001. */
	assert_true(safetensors_f16_to_f32(0x3c00) == 1.0f);
	assert_true(safetensors_f16_to_f32(0xc000) == -2.0f);
	assert_true(safetensors_f16_to_f32(0x7bff) == 65504.0f);
	assert_true(safetensors_f16_to_f32(0x0001) == 0x1p-24f);
	assert_true(safetensors_f16_to_f32(0x0200) == 0x1p-15f);
	assert_true(safetensors_bf16_to_f32(0x3f80) == 1.0f);
	assert_true(safetensors_bf16_to_f32(0xc0a0) == -5.0f);

	size_t len;
	_cleanup_free_ uint8_t *buf = mk("{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
					 "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[4,8]},"
					 "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]}}",
					 16, &len);
	uint8_t *d = buf + len - 16;
	memcpy(d, "\x00\x3c\x00\xc0\x80\x3f\xa0\xc0", 8);
	struct safetensors *st;
	assert_int_equal(safetensors_parse(buf, len, 0, &st, NULL, 0), 0);
	float f[2];
	assert_int_equal(safetensors_read_f32(st, safetensors_find(st, "h"), f, 2), 0);
	assert_true(f[0] == 1.0f && f[1] == -2.0f);
	assert_int_equal(safetensors_read_f32(st, safetensors_find(st, "b"), f, 2), 0);
	assert_true(f[0] == 1.0f && f[1] == -5.0f);
	assert_int_equal(safetensors_read_f32(st, safetensors_find(st, "b"), f, 1), -EBADMSG);
	assert_int_equal(safetensors_read_f32(st, safetensors_find(st, "i"), f, 1), -EMEDIUMTYPE);
	safetensors_free(st);
	safetensors_free(NULL);
}

static void test_write_roundtrip(void **state) {
	char path[] = "/tmp/eml-st-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	float a[6] = {1, 2, 3, 4, 5, 6};
	int64_t ids[3] = {0, 1, 2};
	struct safetensors_out t[] = {
		{"x.weight", ST_F32, 2, {2, 3}, a},
		{"pos", ST_I64, 1, {3}, ids},
	};
	assert_int_equal(safetensors_write(path, t, 2), 0);
	struct safetensors *st;
	char err[256];
	assert_int_equal(safetensors_open(path, &st, err, sizeof err), 0);
	assert_int_equal(st->n_tensors, 2);
	const struct safetensors_tensor *x = safetensors_find(st, "bert.x.weight");
	assert_non_null(x);
	float b[6];
	assert_int_equal(safetensors_read_f32(st, x, b, 6), 0);
	assert_memory_equal(a, b, sizeof a);
	safetensors_release(st, x);
	assert_int_equal(safetensors_read_f32(st, x, b, 6), 0); /* pages come back after release */
	assert_memory_equal(a, b, sizeof a);
	safetensors_free(st);
	unlink(path);
	assert_int_equal(safetensors_open(path, &st, err, sizeof err), -ENOENT);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_header),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_convert),
		cmocka_unit_test(test_write_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
