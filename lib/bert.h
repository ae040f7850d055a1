/* bert.h: a BERT-family sentence encoder (BertModel as in Hugging Face transformers: word + position +
 * token-type embeddings, post-LayerNorm transformer layers with exact-erf GELU) followed by mean pooling over
 * the tokens and L2 normalisation, as sentence-transformers' all-MiniLM-L6-v2 does. Owns the config.json
 * subset it needs, the model weights (copied out of a safetensors file into packed form, so the file or
 * buffer can be released after loading) and per-caller contexts.
 *
 * Threads: a loaded struct bert_model is read-only and may be shared by any number of threads. Each thread
 * that encodes uses its own struct bert_ctx (scratch memory and, optionally, helper threads). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

#define BERT_MAX_HIDDEN 8192u
#define BERT_MAX_LAYERS 128u
#define BERT_MAX_POSITIONS 8192u
#define BERT_MAX_VOCAB 1000000u
#define BERT_MAX_BATCH_TOKENS (1u << 20)

struct bert_config {
	unsigned vocab_size, hidden, layers, heads, intermediate, max_positions, type_vocab;
	float ln_eps;
};

/* Parse config.json. Refuses what this encoder does not implement (other activations, relative positions). */
int bert_config_parse(const char *json, size_t len, struct bert_config *ret, char *err, size_t errsz);

struct bert_model;

enum {
	BERT_LOAD_PORTABLE = 1u << 0, /* never use the AVX2/FMA kernels (testing, comparison) */
};

/* BERT_LOAD_* bits for a kernel set named on a command line: "portable" or "avx2" (used when the CPU has
 * AVX2 and FMA). -EINVAL for another name. */
int bert_kernels_flags(const char *name, unsigned *ret_flags);

/* Copy the weights for cfg out of st (names with or without "bert."; F32/F16/BF16). Missing tensors and
 * wrong shapes are errors naming the tensor. */
int bert_model_load(const struct bert_config *cfg, const struct safetensors *st, unsigned flags,
		    struct bert_model **ret, char *err, size_t errsz);
void bert_model_free(struct bert_model *m);
const struct bert_config *bert_model_config(const struct bert_model *m);
/* Bytes of weights held, and the kernel set in use ("avx2-fma" or "portable"). */
size_t bert_model_weight_bytes(const struct bert_model *m);
const char *bert_model_kernels(const struct bert_model *m);

struct bert_ctx;
/* threads: total compute threads for each call (>= 1; the calling thread is one of them). */
int bert_ctx_new(const struct bert_model *m, unsigned threads, struct bert_ctx **ret);
void bert_ctx_free(struct bert_ctx *c);

/* Encode batch sequences of token ids (each 1..max_positions long, ids < vocab_size, token type 0) into
 * batch x hidden floats: mean-pooled, L2-normalised. Sequences of different lengths are handled exactly (no
 * padding: each attends only to its own tokens). -EINVAL on bad ids or lengths, -ENOMEM. */
int bert_encode(struct bert_ctx *c, const int32_t *const *ids, const size_t *lens, size_t batch, float *ret);
