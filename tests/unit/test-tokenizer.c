/* Tests for tokenizer.c: every case of the published MiniLM WordPiece vectors, plus limits and hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "macro.h"
#include "tokenizer.h"
#include "util.h"

static char *vec_path(const char *rel) {
	const char *src = getenv("EML_SRCDIR");
	char *p;
	assert_true(asprintf(&p, "%s/tests/vectors/%s", src ? src : ".", rel) > 0);
	return p;
}

static struct tokenizer *load_minilm(void) {
	_cleanup_free_ char *p = vec_path("models/all-MiniLM-L6-v2/vocab.txt");
	struct tokenizer *t = NULL;
	char err[256];
	assert_int_equal(tokenizer_load(p, &t, err, sizeof err), 0);
	assert_int_equal(tokenizer_vocab_size(t), 30522);
	return t;
}

static void test_vectors(void **state) {
	struct tokenizer *t = load_minilm();
	_cleanup_free_ char *p = vec_path("tokenizer/minilm-wordpiece.json");
	struct json_object *root = json_object_from_file(p);
	assert_non_null(root);
	size_t n = json_object_array_length(root);
	assert_true(n >= 16);
	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(root, i), *jt, *ji;
		assert_true(json_object_object_get_ex(c, "text", &jt));
		assert_true(json_object_object_get_ex(c, "ids", &ji));
		const char *text = json_object_get_string(jt);
		_cleanup_free_ int32_t *ids = NULL;
		size_t m;
		assert_int_equal(tokenizer_encode(t, text, strlen(text), 512, &ids, &m), 0);
		size_t want = json_object_array_length(ji);
		if (m != want) fail_msg("case %zu '%s': %zu ids, want %zu", i, text, m, want);
		for (size_t k = 0; k < m; k++)
			if (ids[k] != json_object_get_int(json_object_array_get_idx(ji, k)))
				fail_msg("case %zu '%s': id %zu is %d", i, text, k, ids[k]);
	}
	json_object_put(root);
	tokenizer_free(t);
}

static size_t enc(struct tokenizer *t, const char *s, size_t len, size_t max, int32_t **ids) {
	size_t n;
	assert_int_equal(tokenizer_encode(t, s, len, max, ids, &n), 0);
	return n;
}

static void test_truncation_and_unk(void **state) {
	struct tokenizer *t = load_minilm();
	int32_t *ids;
	/* 5 words of "hello" -> 7 ids; truncated to 4 keeps [CLS] two words [SEP]. */
	size_t n = enc(t, "hello hello hello hello hello", 29, 4, &ids);
	assert_int_equal(n, 4);
	assert_int_equal(ids[0], 101);
	assert_int_equal(ids[1], 7592);
	assert_int_equal(ids[2], 7592);
	assert_int_equal(ids[3], 102);
	free(ids);
	/* A 101-letter word is [UNK] (100); 100 letters is WordPiece'd. */
	char w[102];
	memset(w, 'a', 101);
	w[101] = 0;
	n = enc(t, w, 101, 512, &ids);
	assert_int_equal(n, 3);
	assert_int_equal(ids[1], 100);
	free(ids);
	n = enc(t, w, 100, 512, &ids);
	assert_true(n > 3);
	for (size_t i = 1; i + 1 < n; i++) assert_int_not_equal(ids[i], 100);
	free(ids);
	/* CJK ideographs are split into single characters, each in the vocabulary. */
	n = enc(t, "\xe4\xb8\xad\xe6\x96\x87", 6, 512, &ids); /* 中文 */
	assert_int_equal(n, 4);
	assert_int_equal(ids[1], tokenizer_lookup(t, "\xe4\xb8\xad", 3));
	assert_int_equal(ids[2], tokenizer_lookup(t, "\xe6\x96\x87", 3));
	free(ids);
	assert_int_equal(tokenizer_encode(t, "x", 1, 1, &ids, &n), -EINVAL);
	tokenizer_free(t);
}

static void test_hostile(void **state) {
	struct tokenizer *t = load_minilm();
	int32_t *ids;
	/* Invalid UTF-8, NULs and control characters vanish; what remains tokenizes normally. */
	static const char bad[] = "\xff\xfe" "hello\x00\x01\xc3" " world\xed\xa0\x80";
	size_t n = enc(t, bad, sizeof bad - 1, 512, &ids);
	assert_int_equal(n, 4);
	assert_int_equal(ids[1], 7592);
	assert_int_equal(ids[2], 2088);
	free(ids);
	char *big = malloc(TOKENIZER_MAX_TEXT + 1);
	assert_non_null(big);
	memset(big, 'a', TOKENIZER_MAX_TEXT + 1);
	assert_int_equal(tokenizer_encode(t, big, TOKENIZER_MAX_TEXT + 1, 512, &ids, &n), -E2BIG);
	free(big);
	tokenizer_free(t);

	char err[256];
	assert_int_equal(tokenizer_new("[UNK]\n[CLS]\n", 12, &t, err, sizeof err), -EBADMSG);
	assert_int_equal(tokenizer_new("[UNK]\n[CLS]\n[SEP]\n[SEP]\n", 24, &t, err, sizeof err), -EBADMSG);
	assert_int_equal(tokenizer_new("[UNK]\n\n[CLS]\n[SEP]\n", 19, &t, err, sizeof err), -EBADMSG);
	assert_int_equal(tokenizer_new("[UNK]\r\n[CLS]\r\n[SEP]", 19, &t, err, sizeof err), 0);
	assert_int_equal(tokenizer_lookup(t, "[SEP]", 5), 2);
	tokenizer_free(t);
	tokenizer_free(NULL);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_truncation_and_unk),
		cmocka_unit_test(test_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
