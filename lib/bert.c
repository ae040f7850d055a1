/* bert.c: see bert.h. Sequences of a batch are packed back to back (no padding): every per-token step
 * (projections, feed-forward, LayerNorm) runs over all tokens at once, and attention runs per sequence and
 * head over that sequence's own tokens, which is exactly what an attention mask over padding computes. */
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>

#include "bert.h"
#include "kernels.h"
#include "macro.h"
#include "threadpool.h"
#include "util.h"

struct linear {
	float *packed; /* kernels_pack() layout, in the model's arena */
	float *bias;
	size_t n, k, nr;
};

struct layer {
	/* qkv fuses query, key, value into one product of width 3 * hidden, its columns ordered by head: head h's
	 * query, key and value columns are 3 d contiguous columns from 3 d h (d the head width), so that one
	 * head's share of the product is one run of whole panels (run_qkv_attention). */
	struct linear qkv, out, up, down;
	float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
};

struct bert_model {
	struct bert_config cfg;
	const struct kernels *k;
	float *word, *pos, *type, *emb_g, *emb_b;
	float *arena; /* every layer's packed weights, one allocation */
	struct layer *layer;
	size_t bytes;
};

struct bert_ctx {
	const struct bert_model *m;
	struct threadpool *pool;
	size_t cap_tokens, cap_len;
	float *x, *qkv, *att, *mid, *scratch; /* scratch: per thread attention workspace */
	size_t scratch_per_thread;
};

static int get_uint(struct json_object *root, const char *key, unsigned lo, unsigned hi, bool required,
		    unsigned *ret, char *err, size_t errsz) {
	struct json_object *o;
	if (!json_object_object_get_ex(root, key, &o)) {
		if (!required) return 0;
		return errorf(-EBADMSG, err, errsz, "config: missing %s", key);
	}
	if (!json_object_is_type(o, json_type_int))
		return errorf(-EBADMSG, err, errsz, "config: %s is not an integer", key);
	int64_t v = json_object_get_int64(o);
	if (v < lo || v > hi) return errorf(-EBADMSG, err, errsz, "config: %s=%lld outside %u..%u", key, (long long)v, lo, hi);
	*ret = (unsigned)v;
	return 0;
}

int bert_config_parse(const char *json, size_t len, struct bert_config *ret, char *err, size_t errsz) {
	if (len > (1u << 20)) return errorf(-EFBIG, err, errsz, "config: larger than 1 MiB");
	struct json_tokener *tok = json_tokener_new_ex(16);
	if (!tok) return -ENOMEM;
	struct json_object *root = json_tokener_parse_ex(tok, json, (int)len);
	bool ok = root && json_tokener_get_error(tok) == json_tokener_success;
	json_tokener_free(tok);
	int r;
	struct bert_config c = {.type_vocab = 2, .ln_eps = 1e-12f};
	if (!ok || !json_object_is_type(root, json_type_object)) {
		r = errorf(-EBADMSG, err, errsz, "config: not a JSON object");
		goto out;
	}
	if ((r = get_uint(root, "vocab_size", 1, BERT_MAX_VOCAB, true, &c.vocab_size, err, errsz)) < 0 ||
	    (r = get_uint(root, "hidden_size", 1, BERT_MAX_HIDDEN, true, &c.hidden, err, errsz)) < 0 ||
	    (r = get_uint(root, "num_hidden_layers", 1, BERT_MAX_LAYERS, true, &c.layers, err, errsz)) < 0 ||
	    (r = get_uint(root, "num_attention_heads", 1, BERT_MAX_HIDDEN, true, &c.heads, err, errsz)) < 0 ||
	    (r = get_uint(root, "intermediate_size", 1, 4 * BERT_MAX_HIDDEN, true, &c.intermediate, err, errsz)) < 0 ||
	    (r = get_uint(root, "max_position_embeddings", 2, BERT_MAX_POSITIONS, true, &c.max_positions, err,
			  errsz)) < 0 ||
	    (r = get_uint(root, "type_vocab_size", 1, 1024, false, &c.type_vocab, err, errsz)) < 0)
		goto out;
	if (c.hidden % c.heads) {
		r = errorf(-EBADMSG, err, errsz, "config: hidden_size %u not a multiple of num_attention_heads %u",
			 c.hidden, c.heads);
		goto out;
	}
	struct json_object *o;
	if (json_object_object_get_ex(root, "layer_norm_eps", &o)) {
		double e = json_object_get_double(o);
		if (!(json_object_is_type(o, json_type_double) || json_object_is_type(o, json_type_int)) ||
		    !(e >= 1e-30 && e < 1)) { /* below 1e-30 it would round to 0 (or a denormal) as a float */
			r = errorf(-EBADMSG, err, errsz, "config: layer_norm_eps must be in [1e-30, 1)");
			goto out;
		}
		c.ln_eps = (float)e;
	}
	/* "gelu" in transformers is the exact erf form; the tanh approximation is a different function. */
	if (json_object_object_get_ex(root, "hidden_act", &o) &&
	    (!json_object_is_type(o, json_type_string) || strcmp(json_object_get_string(o), "gelu") != 0)) {
		r = errorf(-EOPNOTSUPP, err, errsz, "config: hidden_act must be \"gelu\"");
		goto out;
	}
	if (json_object_object_get_ex(root, "position_embedding_type", &o) &&
	    (!json_object_is_type(o, json_type_string) || strcmp(json_object_get_string(o), "absolute") != 0)) {
		r = errorf(-EOPNOTSUPP, err, errsz, "config: only absolute position embeddings are supported");
		goto out;
	}
	*ret = c;
	r = 0;
out:
	json_object_put(root);
	return r;
}

static void linear_free(struct linear *l) {
	free(l->bias);
}

void bert_model_free(struct bert_model *m) {
	if (!m) return;
	free(m->word);
	free(m->pos);
	free(m->type);
	free(m->emb_g);
	free(m->emb_b);
	if (m->layer)
		for (unsigned i = 0; i < m->cfg.layers; i++) {
			struct layer *l = &m->layer[i];
			linear_free(&l->qkv);
			linear_free(&l->out);
			linear_free(&l->up);
			linear_free(&l->down);
			free(l->ln1_g);
			free(l->ln1_b);
			free(l->ln2_g);
			free(l->ln2_b);
		}
	free(m->layer);
	free(m->arena);
	free(m);
}

const struct bert_config *bert_model_config(const struct bert_model *m) {
	return &m->cfg;
}

size_t bert_model_weight_bytes(const struct bert_model *m) {
	return m->bytes;
}

const char *bert_model_kernels(const struct bert_model *m) {
	return m->k->name;
}

/* Read tensor `name` of shape [d0] or [d0, d1] (d1 == 0 for 1-D) as float into dst. */
static int read_tensor(const struct safetensors *st, const char *name, size_t d0, size_t d1, float *dst,
		       char *err, size_t errsz) {
	const struct safetensors_tensor *t = safetensors_find(st, name);
	if (!t) return errorf(-ENOENT, err, errsz, "model: tensor %s missing", name);
	bool ok = d1 ? t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1 : t->ndim == 1 && t->shape[0] == d0;
	if (!ok) return errorf(-EBADMSG, err, errsz, "model: tensor %s has the wrong shape (want [%zu%s%.0zu])", name, d0,
			     d1 ? ", " : "", d1);
	int r = safetensors_read_f32(st, t, dst, d1 ? d0 * d1 : d0);
	if (r == -EMEDIUMTYPE)
		return errorf(r, err, errsz, "model: tensor %s has dtype %s (F32, F16 or BF16 needed)", name,
			    safetensors_dtype_name(t->dtype));
	if (r < 0) return errorf(r, err, errsz, "model: tensor %s: %s", name, strerror(-r));
	safetensors_release(st, t);
	return 0;
}

static int alloc_read(const struct safetensors *st, const char *name, size_t d0, size_t d1, float **ret,
		      size_t *bytes, char *err, size_t errsz) {
	size_t n = d1 ? d0 * d1 : d0;
	float *p = malloc(n * sizeof(float));
	if (!p) return -ENOMEM;
	int r = read_tensor(st, name, d0, d1, p, err, errsz);
	if (r < 0) {
		free(p);
		return r;
	}
	*bytes += n * sizeof(float);
	*ret = p;
	return 0;
}

/* Load `parts` Linear layers (prefix.NAME.weight [n_i, k], .bias [n_i]) stacked along N into one product
 * packed in panels of nr at *arena, which then moves past it; with heads, its columns interleaved by head
 * (each head's n / heads columns of part 0, then of part 1, ...). tmp holds sum(n_i) * k floats. */
static int load_linear(const struct safetensors *st, const char *prefix, const char *const *names, size_t parts,
		       size_t n, size_t k, size_t nr, size_t heads, float *tmp, float **arena, struct linear *l,
		       size_t *bytes, char *err, size_t errsz) {
	size_t total = n * parts;
	_cleanup_free_ float *bias = malloc(total * sizeof(float));
	_cleanup_free_ size_t *order = heads ? malloc(total * sizeof(size_t)) : NULL;
	l->n = total;
	l->k = k;
	l->nr = nr;
	l->bias = malloc(total * sizeof(float));
	l->packed = *arena;
	*arena += kernels_packed_size(total, k, nr) / sizeof(float);
	if (!l->bias || !bias || (heads && !order)) return -ENOMEM;
	for (size_t i = 0; i < parts; i++) {
		char name[256];
		int r;
		snprintf(name, sizeof name, "%s%s.weight", prefix, names[i]);
		if ((r = read_tensor(st, name, n, k, tmp + i * n * k, err, errsz)) < 0) return r;
		snprintf(name, sizeof name, "%s%s.bias", prefix, names[i]);
		if ((r = read_tensor(st, name, n, 0, bias + i * n, err, errsz)) < 0) return r;
	}
	if (order) {
		size_t d = n / heads, col = 0;
		for (size_t h = 0; h < heads; h++)
			for (size_t i = 0; i < parts; i++)
				for (size_t t = 0; t < d; t++) order[col++] = i * n + h * d + t;
	}
	for (size_t col = 0; col < total; col++) l->bias[col] = bias[order ? order[col] : col];
	kernels_pack(tmp, total, k, nr, order, l->packed);
	*bytes += kernels_packed_size(total, k, nr) + total * sizeof(float);
	return 0;
}

int bert_kernels_flags(const char *name, unsigned *ret_flags) {
	if (strcmp(name, "portable") == 0) *ret_flags = BERT_LOAD_PORTABLE;
	else if (strcmp(name, "avx2") == 0) *ret_flags = 0;
	else return -EINVAL;
	return 0;
}

int bert_model_load(const struct bert_config *cfg, const struct safetensors *st, unsigned flags,
		    struct bert_model **ret, char *err, size_t errsz) {
	struct bert_model *m = calloc(1, sizeof *m);
	if (!m) return -ENOMEM;
	m->cfg = *cfg;
	m->k = kernels_select(flags & BERT_LOAD_PORTABLE ? KERNELS_PORTABLE : KERNELS_AVX2);
	size_t H = cfg->hidden, I = cfg->intermediate, W = KERNEL_NR_WIDE;
	size_t per_layer = kernels_packed_size(3 * H, H, W) + kernels_packed_size(H, H, W) +
			   kernels_packed_size(I, H, W) + kernels_packed_size(H, I, W);
	float *tmp = malloc(MAX(3 * H * H, I * H) * sizeof(float)), *arena;
	int r = -ENOMEM;
	if (!tmp || !(m->layer = calloc(cfg->layers, sizeof *m->layer)) ||
	    !(arena = m->arena = aligned_alloc(64, per_layer * cfg->layers)))
		goto fail;
	if ((r = alloc_read(st, "embeddings.word_embeddings.weight", cfg->vocab_size, H, &m->word, &m->bytes, err,
			    errsz)) < 0 ||
	    (r = alloc_read(st, "embeddings.position_embeddings.weight", cfg->max_positions, H, &m->pos, &m->bytes,
			    err, errsz)) < 0 ||
	    (r = alloc_read(st, "embeddings.token_type_embeddings.weight", cfg->type_vocab, H, &m->type, &m->bytes,
			    err, errsz)) < 0 ||
	    (r = alloc_read(st, "embeddings.LayerNorm.weight", H, 0, &m->emb_g, &m->bytes, err, errsz)) < 0 ||
	    (r = alloc_read(st, "embeddings.LayerNorm.bias", H, 0, &m->emb_b, &m->bytes, err, errsz)) < 0)
		goto fail;
	for (unsigned i = 0; i < cfg->layers; i++) {
		struct layer *l = &m->layer[i];
		char p[64], n[128];
		safetensors_release_all(st); /* file pages mapped so far, so the peak stays near one copy */
		static const char *const qkv[] = {"attention.self.query", "attention.self.key", "attention.self.value"};
		static const char *const out[] = {"attention.output.dense"};
		static const char *const up[] = {"intermediate.dense"};
		static const char *const down[] = {"output.dense"};
		snprintf(p, sizeof p, "encoder.layer.%u.", i);
		if ((r = load_linear(st, p, qkv, 3, H, H, W, cfg->heads, tmp, &arena, &l->qkv, &m->bytes, err,
				     errsz)) < 0 ||
		    (r = load_linear(st, p, out, 1, H, H, W, 0, tmp, &arena, &l->out, &m->bytes, err, errsz)) < 0 ||
		    (r = load_linear(st, p, up, 1, I, H, W, 0, tmp, &arena, &l->up, &m->bytes, err, errsz)) < 0 ||
		    (r = load_linear(st, p, down, 1, H, I, W, 0, tmp, &arena, &l->down, &m->bytes, err, errsz)) < 0)
			goto fail;
#define LN(field, suffix)                                                                               \
	snprintf(n, sizeof n, "%s%s", p, suffix);                                                       \
	if ((r = alloc_read(st, n, H, 0, &l->field, &m->bytes, err, errsz)) < 0) goto fail
		LN(ln1_g, "attention.output.LayerNorm.weight");
		LN(ln1_b, "attention.output.LayerNorm.bias");
		LN(ln2_g, "output.LayerNorm.weight");
		LN(ln2_b, "output.LayerNorm.bias");
#undef LN
	}
	free(tmp);
	*ret = m;
	return 0;
fail:
	free(tmp);
	bert_model_free(m);
	return r;
}

/* Activations are derived from the caller's text: wipe scratch before it goes back to the allocator. */
static void free_scratch(struct bert_ctx *c) {
	const struct bert_config *cfg = &c->m->cfg;
	size_t t = c->cap_tokens * sizeof(float);
	free_secret(c->x, c->x ? t * cfg->hidden : 0);
	free_secret(c->qkv, c->qkv ? t * cfg->hidden * 3 : 0);
	free_secret(c->att, c->att ? t * cfg->hidden : 0);
	free_secret(c->mid, c->mid ? t * cfg->intermediate : 0);
	c->x = c->qkv = c->att = c->mid = NULL;
	c->cap_tokens = 0;
}

void bert_ctx_free(struct bert_ctx *c) {
	if (!c) return;
	free_secret(c->scratch, c->scratch ? c->scratch_per_thread * threadpool_size(c->pool) * sizeof(float) : 0);
	threadpool_free(c->pool);
	free_scratch(c);
	free(c);
}

int bert_ctx_new(const struct bert_model *m, unsigned threads, struct bert_ctx **ret) {
	if (threads == 0) return -EINVAL;
	struct bert_ctx *c = calloc(1, sizeof *c);
	if (!c) return -ENOMEM;
	c->m = m;
	int r = threadpool_new(threads, &c->pool);
	if (r < 0) {
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

/* n floats on a cache-line boundary, so that with the usual widths (384, 768, 1536, ... floats: multiples of
 * 16) every row starts on one and no 32-byte load or store of a tile straddles two lines. With malloc's
 * 16-byte alignment every other one did, and the pass was 4-8% slower at 32x32. */
static float *alloc_activations(size_t n) {
	return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
}

static int ensure(struct bert_ctx *c, size_t tokens, size_t maxlen) {
	const struct bert_config *cfg = &c->m->cfg;
	if (tokens > c->cap_tokens) {
		free_scratch(c);
		c->x = alloc_activations(tokens * cfg->hidden);
		c->qkv = alloc_activations(tokens * cfg->hidden * 3);
		c->att = alloc_activations(tokens * cfg->hidden);
		c->mid = alloc_activations(tokens * cfg->intermediate);
		c->cap_tokens = tokens;
		if (!c->x || !c->qkv || !c->att || !c->mid) {
			c->cap_tokens = 0;
			return -ENOMEM;
		}
	}
	if (maxlen > c->cap_len) {
		size_t d = cfg->hidden / cfg->heads;
		free_secret(c->scratch, c->scratch ? c->scratch_per_thread * threadpool_size(c->pool) * sizeof(float) : 0);
		c->scratch_per_thread = kernels_attention_scratch(maxlen, d);
		c->scratch = aligned_alloc(64, c->scratch_per_thread * threadpool_size(c->pool) * sizeof(float));
		c->cap_len = maxlen;
		if (!c->scratch) {
			c->cap_len = 0;
			return -ENOMEM;
		}
	}
	return 0;
}

struct job {
	struct bert_ctx *c;
	const struct layer *l;
	struct gemm_args g;
	const int32_t *const *ids;
	const size_t *lens, *starts;
	size_t batch, tokens;
	const float *ln_g, *ln_b, *ln_src;
	size_t row_tasks;   /* run_gemm_ln tasks (rows split evenly, see row_bound) */
	size_t task_panels; /* panels per run_gemm task */
};

/* Product tasks: blocks of GEMM_MC rows (so a block of activations stays in L2 while panels stream past)
 * by j->task_panels panels (see gemm()). */
#define GEMM_MC KERNEL_MC

static void run_gemm(void *arg, unsigned long task, unsigned tid) {
	struct job *j = arg;
	size_t panels = kernels_panels(j->g.n, j->g.nr), tp = j->task_panels;
	size_t pt = (panels + tp - 1) / tp, mb = task / pt, pb = task % pt;
	size_t m0 = mb * GEMM_MC, p0 = pb * tp;
	j->c->m->k->gemm(&j->g, m0, MIN(m0 + GEMM_MC, j->g.m), p0, MIN(p0 + tp, panels));
}

/* Rows per LayerNorm task; a multiple of KERNEL_MR so row tasks use full register tiles. */
#define LN_ROWS (KERNEL_MR * 2)

static void run_layernorm(void *arg, unsigned long task, unsigned tid) {
	struct job *j = arg;
	size_t H = j->c->m->cfg.hidden, r0 = task * LN_ROWS, r1 = MIN(r0 + LN_ROWS, j->tokens);
	j->c->m->k->layernorm(j->ln_src + r0 * H, j->c->x + r0 * H, r1 - r0, H, H, j->ln_g, j->ln_b, j->c->m->cfg.ln_eps);
}

static void run_embed(void *arg, unsigned long s, unsigned tid) {
	struct job *j = arg;
	const struct bert_model *m = j->c->m;
	size_t H = m->cfg.hidden;
	for (size_t t = 0; t < j->lens[s]; t++) {
		float *x = j->c->x + (j->starts[s] + t) * H;
		const float *w = m->word + (size_t)j->ids[s][t] * H, *p = m->pos + t * H;
		for (size_t h = 0; h < H; h++) x[h] = w[h] + p[h] + m->type[h];
		m->k->layernorm(x, x, 1, H, H, m->emb_g, m->emb_b, m->cfg.ln_eps);
	}
}

/* Tokens per group of whole sequences in the fused QKV + attention pass. */
#define QKV_GROUP_TOKENS 128

/* Groups of whole sequences of about QKV_GROUP_TOKENS tokens (one when the batch is a single sequence). */
static size_t qkv_groups(const struct job *j) {
	return MAX((size_t)1, MIN(j->batch, j->tokens / QKV_GROUP_TOKENS));
}

/* One (head, group of sequences) per task: that head's query, key and value columns of the fused product
 * for the group's tokens, then its attention for each sequence of the group, while those columns are still
 * in cache (one pass instead of two). Groups rather than whole batches per task: at 32 x 32 tokens the
 * columns of a head for the whole batch (400 KB) had left L2 before attention read them, and 12 tasks
 * left one thread a whole task behind; groups of 128 tokens made the pass 3-5% faster at 1 and 2 threads. */
static void run_qkv_attention(void *arg, unsigned long task, unsigned tid) {
	struct job *j = arg;
	const struct bert_config *cfg = &j->c->m->cfg;
	size_t H = cfg->hidden, d = H / cfg->heads, pp = 3 * d / j->g.nr;
	size_t groups = qkv_groups(j), h = task / groups, group = task % groups;
	size_t s0 = j->batch * group / groups, s1 = j->batch * (group + 1) / groups;
	size_t r0 = j->starts[s0], r1 = s1 < j->batch ? j->starts[s1] : j->tokens;
	float *scratch = j->c->scratch + tid * j->c->scratch_per_thread;
	j->c->m->k->gemm(&j->g, r0, r1, h * pp, (h + 1) * pp);
	for (size_t s = s0; s < s1; s++) {
		const float *q = j->c->qkv + j->starts[s] * 3 * H + h * 3 * d;
		j->c->m->k->attention(q, q + d, q + 2 * d, 3 * H, j->lens[s], d, 1.0f / sqrtf((float)d),
				      j->c->att + j->starts[s] * H + h * d, H, scratch);
	}
}

/* One (sequence, head) pair per task. */
static void run_attention(void *arg, unsigned long task, unsigned tid) {
	struct job *j = arg;
	const struct bert_config *cfg = &j->c->m->cfg;
	size_t H = cfg->hidden, d = H / cfg->heads;
	float *scratch = j->c->scratch + tid * j->c->scratch_per_thread;
	size_t s = task / cfg->heads, h = task % cfg->heads;
	const float *q = j->c->qkv + j->starts[s] * 3 * H + h * 3 * d;
	j->c->m->k->attention(q, q + d, q + 2 * d, 3 * H, j->lens[s], d, 1.0f / sqrtf((float)d),
			      j->c->att + j->starts[s] * H + h * d, H, scratch);
}

static void gemm(struct job *j, const float *a, size_t lda, const struct linear *l, const float *res, float *out,
		 int act) {
	j->g = (struct gemm_args){
		.a = a, .lda = lda, .packed = l->packed, .nr = l->nr, .bias = l->bias, .res = res, .ldr = l->n,
		.c = out, .ldc = l->n, .m = j->tokens, .n = l->n, .k = l->k, .act = act,
	};
	/* At least eight tasks per thread, so that claiming evens the threads out to within a small share
	 * (11 whole row blocks of 1024 rows left one thread 6 of them and the other 5), each as many panels
	 * wide as that allows: a task's kernel prefetches each panel while it works on the one before, so
	 * only its first panel comes cold from memory. */
	size_t panels = kernels_panels(l->n, l->nr), mblocks = (j->tokens + GEMM_MC - 1) / GEMM_MC;
	size_t want = 8 * threadpool_size(j->c->pool), splits = MIN(panels, (want + mblocks - 1) / mblocks);
	j->task_panels = (panels + splits - 1) / splits;
	threadpool_run(j->c->pool, run_gemm, j, mblocks * ((panels + j->task_panels - 1) / j->task_panels));
}

/* First row of task t of n over the batch's tokens: t/n of them, rounded down to an even row. Tasks differ by
 * at most two rows, so a thread count that divides n gets equal shares (a fixed block size left one thread
 * a whole block more, e.g. 6 blocks against 5 for 1024 rows; whole register tiles left 60 rows against 68
 * for 128). The kernel takes any row count at full speed but 1 or 2 left over (see gemm_avx2). */
static size_t row_bound(const struct job *j, size_t t) {
	if (t >= j->row_tasks) return j->tokens;
	return j->tokens * t / j->row_tasks & ~(size_t)1;
}

/* Whole rows per task: the product for a block of rows, then their residual LayerNorm into x, in one pass. */
static void run_gemm_ln(void *arg, unsigned long task, unsigned tid) {
	struct job *j = arg;
	size_t H = j->c->m->cfg.hidden, r0 = row_bound(j, task), r1 = row_bound(j, task + 1);
	if (r0 == r1) return;
	j->c->m->k->gemm(&j->g, r0, r1, 0, kernels_panels(j->g.n, j->g.nr));
	j->c->m->k->layernorm(j->g.c + r0 * H, j->c->x + r0 * H, r1 - r0, H, H, j->ln_g, j->ln_b, j->c->m->cfg.ln_eps);
}

/* x = LayerNorm(a lᵀ + bias + x). The product goes to a scratch buffer (it accumulates in its output across
 * K blocks, so it cannot overwrite its own residual). With enough rows for every thread, each task owns
 * whole rows and normalises them right away (one pass, no extra synchronisation); with few rows the
 * product is split by columns instead and LayerNorm follows as its own pass. */
static void gemm_residual_ln(struct job *j, const float *a, size_t lda, const struct linear *l, float *tmp,
			     const float *gamma, const float *beta) {
	struct bert_ctx *c = j->c;
	size_t nt = threadpool_size(c->pool), tasks = (j->tokens + LN_ROWS - 1) / LN_ROWS;
	j->ln_g = gamma, j->ln_b = beta, j->ln_src = tmp;
	if (j->tokens >= nt * KERNEL_MC / 2) {
		/* A multiple of the thread count, of at most about KERNEL_MC rows: every task streams the whole
		 * weight matrix past its rows, so fewer, taller tasks read the weights fewer times. */
		size_t per = (j->tokens + nt * KERNEL_MC - 1) / (nt * KERNEL_MC);
		j->row_tasks = nt * per;
		j->g = (struct gemm_args){
			.a = a, .lda = lda, .packed = l->packed, .nr = l->nr, .bias = l->bias, .res = c->x, .ldr = l->n,
			.c = tmp, .ldc = l->n, .m = j->tokens, .n = l->n, .k = l->k, .act = ACT_NONE,
		};
		threadpool_run(c->pool, run_gemm_ln, j, j->row_tasks);
		return;
	}
	gemm(j, a, lda, l, c->x, tmp, ACT_NONE);
	/* So few rows normalise in microseconds: cheaper on this thread than another synchronisation. */
	for (size_t t = 0; t < tasks; t++) run_layernorm(j, t, 0);
}

int bert_encode(struct bert_ctx *c, const int32_t *const *ids, const size_t *lens, size_t batch, float *ret) {
	const struct bert_model *m = c->m;
	const struct bert_config *cfg = &m->cfg;
	size_t H = cfg->hidden, I = cfg->intermediate, tokens = 0, maxlen = 0;
	if (batch == 0) return 0;
	for (size_t s = 0; s < batch; s++) {
		if (lens[s] == 0 || lens[s] > cfg->max_positions) return -EINVAL;
		for (size_t t = 0; t < lens[s]; t++)
			if (ids[s][t] < 0 || (unsigned)ids[s][t] >= cfg->vocab_size) return -EINVAL;
		tokens += lens[s];
		maxlen = MAX(maxlen, lens[s]);
		if (tokens > BERT_MAX_BATCH_TOKENS) return -E2BIG;
	}
	int r = ensure(c, tokens, maxlen);
	if (r < 0) return r;
	_cleanup_free_ size_t *starts = malloc(batch * sizeof *starts);
	if (!starts) return -ENOMEM;
	for (size_t s = 0, at = 0; s < batch; at += lens[s], s++) starts[s] = at;

	struct job j = {.c = c, .ids = ids, .lens = lens, .starts = starts, .batch = batch, .tokens = tokens};
	threadpool_run(c->pool, run_embed, &j, batch);
	for (unsigned li = 0; li < cfg->layers; li++) {
		const struct layer *l = &m->layer[li];
		if (3 * H / cfg->heads % l->qkv.nr == 0 && cfg->heads >= 2 * threadpool_size(c->pool)) {
			j.g = (struct gemm_args){
				.a = c->x, .lda = H, .packed = l->qkv.packed, .nr = l->qkv.nr, .bias = l->qkv.bias,
				.c = c->qkv, .ldc = 3 * H, .m = tokens, .n = 3 * H, .k = H, .act = ACT_NONE,
			};
			threadpool_run(c->pool, run_qkv_attention, &j, cfg->heads * qkv_groups(&j));
		} else {
			gemm(&j, c->x, H, &l->qkv, NULL, c->qkv, ACT_NONE);
			threadpool_run(c->pool, run_attention, &j, batch * cfg->heads);
		}
		/* The qkv buffer is free after attention: it takes the projections before their LayerNorm. */
		gemm_residual_ln(&j, c->att, H, &l->out, c->qkv, l->ln1_g, l->ln1_b);
		gemm(&j, c->x, H, &l->up, NULL, c->mid, ACT_GELU);
		gemm_residual_ln(&j, c->mid, I, &l->down, c->qkv, l->ln2_g, l->ln2_b);
	}
	/* Mean pooling over each sequence's tokens, then L2 normalisation (in double: it is cheap here). */
	for (size_t s = 0; s < batch; s++) {
		float *o = ret + s * H;
		double norm = 0;
		for (size_t h = 0; h < H; h++) {
			double sum = 0;
			for (size_t t = 0; t < lens[s]; t++) sum += c->x[(starts[s] + t) * H + h];
			o[h] = (float)(sum / (double)lens[s]);
			norm += (double)o[h] * o[h];
		}
		double inv = 1.0 / fmax(sqrt(norm), 1e-12);
		for (size_t h = 0; h < H; h++) o[h] = (float)(o[h] * inv);
	}
	return 0;
}
