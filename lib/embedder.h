/* embedder.h: text in, sentence embeddings out. Ties a tokenizer (vocab.txt) and a BERT encoder
 * (config.json + model.safetensors) together and loads them from a Hugging Face model directory or from
 * three memory buffers (the enclave decrypts model files into memory and hands them over one by one).
 * A loaded struct embedder is read-only and shared by threads; each thread encodes with its own
 * struct bert_ctx from embedder_ctx_new(). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "bert.h"
#include "tokenizer.h"

#define EMBEDDER_MAX_MODEL_BYTES (8ull << 30)
/* embedder_load_mem flag: the safetensors buffer is private anonymous memory (mmap) the caller gives up; its
 * pages are dropped as weights are copied (SAFETENSORS_DISCARD), so the weights are never resident twice. The
 * buffer reads as zeros afterwards. Kept apart from the BERT_LOAD_* bits. */
#define EMBEDDER_LOAD_DISCARD (1u << 16)

struct embedder {
	struct tokenizer *tok;
	struct bert_model *bert;
	unsigned dim, max_tokens;
};

/* DIR/config.json, DIR/vocab.txt, DIR/model.safetensors (mapped; pages released as weights are copied). */
int embedder_load_dir(const char *dir, unsigned flags, struct embedder **ret, char *err, size_t errsz);
/* The same from buffers; nothing is kept pointing into them, so the caller may wipe and free them after. */
int embedder_load_mem(const char *config, size_t config_len, const char *vocab, size_t vocab_len,
		      const void *safetensors, size_t st_len, unsigned flags, struct embedder **ret, char *err,
		      size_t errsz);
void embedder_free(struct embedder *e);

/* Token ids for one text ([CLS] ... [SEP], truncated to the model's positions). */
int embedder_tokenize(const struct embedder *e, const char *text, size_t len, int32_t **ret_ids, size_t *ret_n);
/* n texts -> n x e->dim floats into ret. Optional ret_tokens: total tokens encoded. */
int embedder_embed(const struct embedder *e, struct bert_ctx *ctx, const char *const *texts, size_t n, float *ret,
		   size_t *ret_tokens);
int embedder_ctx_new(const struct embedder *e, unsigned threads, struct bert_ctx **ret);
