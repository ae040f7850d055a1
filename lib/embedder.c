/* embedder.c: see embedder.h. */
#include <stdarg.h>

#include "embedder.h"
#include "macro.h"
#include "util.h"

static int load(const char *config, size_t config_len, struct tokenizer *tok, const struct safetensors *st,
		unsigned flags, struct embedder **ret, char *err, size_t errsz) {
	struct bert_config cfg;
	struct embedder *e = NULL;
	int r = bert_config_parse(config, config_len, &cfg, err, errsz);
	if (r < 0) goto fail;
	if (tokenizer_vocab_size(tok) > cfg.vocab_size) {
		snprintf(err, errsz, "vocabulary has %zu tokens but the model only %u", tokenizer_vocab_size(tok),
			 cfg.vocab_size);
		r = -EBADMSG;
		goto fail;
	}
	e = calloc(1, sizeof *e);
	if (!e) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = bert_model_load(&cfg, st, flags, &e->bert, err, errsz)) < 0) goto fail;
	e->tok = tok;
	e->dim = cfg.hidden;
	e->max_tokens = cfg.max_positions;
	*ret = e;
	return 0;
fail:
	free(e);
	tokenizer_free(tok);
	return r;
}

int embedder_load_mem(const char *config, size_t config_len, const char *vocab, size_t vocab_len,
		      const void *safetensors, size_t st_len, unsigned flags, struct embedder **ret, char *err,
		      size_t errsz) {
	struct tokenizer *tok;
	struct safetensors *st;
	int r = tokenizer_new(vocab, vocab_len, &tok, err, errsz);
	if (r < 0) return r;
	if ((r = safetensors_parse(safetensors, st_len, flags & EMBEDDER_LOAD_DISCARD ? SAFETENSORS_DISCARD : 0, &st,
				   err, errsz)) < 0) {
		tokenizer_free(tok);
		return r;
	}
	r = load(config, config_len, tok, st, flags & ~EMBEDDER_LOAD_DISCARD, ret, err, errsz);
	safetensors_free(st);
	return r;
}

int embedder_load_dir(const char *dir, unsigned flags, struct embedder **ret, char *err, size_t errsz) {
	_cleanup_free_ char *pc = NULL, *pv = NULL, *pm = NULL;
	_cleanup_free_ uint8_t *config = NULL;
	size_t config_len;
	if (asprintf(&pc, "%s/config.json", dir) < 0 || asprintf(&pv, "%s/vocab.txt", dir) < 0 ||
	    asprintf(&pm, "%s/model.safetensors", dir) < 0)
		return -ENOMEM;
	int r = read_file(pc, 1u << 20, &config, &config_len);
	if (r < 0) {
		snprintf(err, errsz, "%s: %s", pc, strerror(-r));
		return r;
	}
	struct tokenizer *tok;
	if ((r = tokenizer_load(pv, &tok, err, errsz)) < 0) return r;
	struct safetensors *st;
	if ((r = safetensors_open(pm, &st, err, errsz)) < 0) {
		tokenizer_free(tok);
		return r;
	}
	r = load((const char *)config, config_len, tok, st, flags, ret, err, errsz);
	safetensors_free(st);
	return r;
}

void embedder_free(struct embedder *e) {
	if (!e) return;
	tokenizer_free(e->tok);
	bert_model_free(e->bert);
	free(e);
}

int embedder_tokenize(const struct embedder *e, const char *text, size_t len, int32_t **ret_ids, size_t *ret_n) {
	return tokenizer_encode(e->tok, text, len, e->max_tokens, ret_ids, ret_n);
}

int embedder_ctx_new(const struct embedder *e, unsigned threads, struct bert_ctx **ret) {
	return bert_ctx_new(e->bert, threads, ret);
}

int embedder_embed(const struct embedder *e, struct bert_ctx *ctx, const char *const *texts, size_t n, float *ret,
		   size_t *ret_tokens) {
	_cleanup_free_ int32_t **ids = calloc(n ? n : 1, sizeof *ids);
	_cleanup_free_ size_t *lens = calloc(n ? n : 1, sizeof *lens);
	int r = 0;
	size_t total = 0;
	if (!ids || !lens) return -ENOMEM;
	for (size_t i = 0; i < n && r == 0; i++) {
		r = embedder_tokenize(e, texts[i], strlen(texts[i]), &ids[i], &lens[i]);
		total += lens[i];
	}
	if (r == 0) r = bert_encode(ctx, (const int32_t *const *)ids, lens, n, ret);
	/* Token ids spell the caller's text: wipe them like any other plaintext. */
	for (size_t i = 0; i < n; i++) free_secret(ids[i], lens[i] * sizeof(int32_t));
	if (r == 0 && ret_tokens) *ret_tokens = total;
	return r;
}
