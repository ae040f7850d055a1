/* embedder_load_mem with EMBEDDER_LOAD_DISCARD (how eml-inferenced builds the engine from a sealed model's
 * decrypted buffers, dropping each page once copied) gives bit-identical embeddings to loading the same files
 * from a directory, and really drops the pages (they read back as zeros). The model is a small random BERT with
 * the real tokenizer (tests/vectors vocab.txt). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "embedder.h"
#include "helper-vectors.h"
#include "safetensors.h"
#include "util.h"

static const char config[] =
	"{\"architectures\": [\"BertModel\"], \"hidden_act\": \"gelu\", \"hidden_size\": 32, "
	"\"intermediate_size\": 64, \"layer_norm_eps\": 1e-12, \"max_position_embeddings\": 64, "
	"\"model_type\": \"bert\", \"num_attention_heads\": 2, \"num_hidden_layers\": 2, "
	"\"position_embedding_type\": \"absolute\", \"type_vocab_size\": 2, \"vocab_size\": 30522}";

struct t {
	char name[96];
	uint64_t d0, d1;
};

static void make_model(const char *dir) {
	struct t ts[64];
	size_t n = 0;
#define ADD(a, b, ...) (snprintf(ts[n].name, sizeof ts[n].name, __VA_ARGS__), ts[n].d0 = (a), ts[n++].d1 = (b))
	ADD(30522, 32, "embeddings.word_embeddings.weight");
	ADD(64, 32, "embeddings.position_embeddings.weight");
	ADD(2, 32, "embeddings.token_type_embeddings.weight");
	ADD(32, 0, "embeddings.LayerNorm.weight");
	ADD(32, 0, "embeddings.LayerNorm.bias");
	for (int l = 0; l < 2; l++) {
		static const char *const sq[] = {"attention.self.query", "attention.self.key", "attention.self.value",
						 "attention.output.dense"};
		for (int i = 0; i < 4; i++) {
			ADD(32, 32, "encoder.layer.%d.%s.weight", l, sq[i]);
			ADD(32, 0, "encoder.layer.%d.%s.bias", l, sq[i]);
		}
		ADD(64, 32, "encoder.layer.%d.intermediate.dense.weight", l);
		ADD(64, 0, "encoder.layer.%d.intermediate.dense.bias", l);
		ADD(32, 64, "encoder.layer.%d.output.dense.weight", l);
		ADD(32, 0, "encoder.layer.%d.output.dense.bias", l);
		ADD(32, 0, "encoder.layer.%d.attention.output.LayerNorm.weight", l);
		ADD(32, 0, "encoder.layer.%d.attention.output.LayerNorm.bias", l);
		ADD(32, 0, "encoder.layer.%d.output.LayerNorm.weight", l);
		ADD(32, 0, "encoder.layer.%d.output.LayerNorm.bias", l);
	}
#undef ADD
	struct safetensors_out out[64];
	float *bufs[64];
	uint32_t seed = 12345;
	for (size_t i = 0; i < n; i++) {
		uint64_t cnt = ts[i].d1 ? ts[i].d0 * ts[i].d1 : ts[i].d0;
		bufs[i] = malloc(cnt * sizeof(float));
		assert_non_null(bufs[i]);
		bool gain = strstr(ts[i].name, "LayerNorm.weight") != NULL;
		for (uint64_t j = 0; j < cnt; j++) {
			seed = seed * 1103515245u + 12345u;
			bufs[i][j] = (gain ? 1.0f : 0.0f) + ((float)(seed >> 9) / (float)(1u << 23) - 0.5f) * 0.2f;
		}
		out[i] = (struct safetensors_out){ts[i].name, ST_F32, ts[i].d1 ? 2 : 1, {ts[i].d0, ts[i].d1}, bufs[i]};
	}
	char path[512];
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	assert_int_equal(safetensors_write(path, out, n), 0);
	for (size_t i = 0; i < n; i++) free(bufs[i]);
	snprintf(path, sizeof path, "%s/config.json", dir);
	assert_int_equal(write_file(path, config, strlen(config), 0644), 0);
	uint8_t *vocab;
	size_t vl;
	assert_int_equal(tv_read("models/all-MiniLM-L6-v2/vocab.txt", &vocab, &vl), 0);
	snprintf(path, sizeof path, "%s/vocab.txt", dir);
	assert_int_equal(write_file(path, vocab, vl, 0644), 0);
	free(vocab);
}

static void embed(const struct embedder *e, float *out) {
	static const char *const texts[] = {"a sealed model loads into the enclave", "hello world"};
	struct bert_ctx *ctx;
	assert_int_equal(embedder_ctx_new(e, 1, &ctx), 0);
	assert_int_equal(embedder_embed(e, ctx, texts, 2, out, NULL), 0);
	bert_ctx_free(ctx);
}

static void test_discard_same_embeddings(void **state) {
	char dir[] = "/tmp/test-embedder-discard-XXXXXX", path[512], err[256];
	assert_non_null(mkdtemp(dir));
	make_model(dir);
	struct embedder *a, *b;
	assert_int_equal(embedder_load_dir(dir, 0, &a, err, sizeof err), 0);
	float ea[2 * 32], eb[2 * 32];
	embed(a, ea);

	uint8_t *st, *voc;
	size_t sl, vl;
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	assert_int_equal(read_file(path, 1u << 30, &st, &sl), 0);
	snprintf(path, sizeof path, "%s/vocab.txt", dir);
	assert_int_equal(read_file(path, 1u << 30, &voc, &vl), 0);
	uint8_t *anon = mmap(NULL, sl, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(anon != MAP_FAILED);
	memcpy(anon, st, sl);
	assert_int_equal(embedder_load_mem(config, strlen(config), (const char *)voc, vl, anon, sl,
					   EMBEDDER_LOAD_DISCARD, &b, err, sizeof err),
			 0);
	embed(b, eb);
	assert_memory_equal(ea, eb, sizeof ea);
	/* The word embeddings (3.9 MB, most of the file) were dropped: the middle of them reads as zeros now. */
	size_t mid = sl / 2;
	static const uint8_t zeros[4096];
	assert_memory_equal(anon + (mid & ~(size_t)4095), zeros, sizeof zeros);
	assert_memory_not_equal(st + (mid & ~(size_t)4095), zeros, sizeof zeros);
	munmap(anon, sl);
	free(st);
	free(voc);
	embedder_free(a);
	embedder_free(b);
	static const char *const names[] = {"model.safetensors", "vocab.txt", "config.json"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

int main(void) {
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_discard_same_embeddings)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
