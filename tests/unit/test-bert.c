/* Tests for bert.c / kernels / embedder.c on a small random model: the AVX2 and portable kernels agree, a
 * mixed-length batch gives each sequence what it gets alone, thread counts do not change results, outputs are
 * unit vectors, and bad inputs and configs are refused. (Agreement with an independent implementation is
 * test-oracle.c.) */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "embedder.h"
#include "kernels.h"
#include "macro.h"
#include "safetensors.h"
#include "util.h"

/* hidden 96, 3 heads of 32 (the AVX2 attention path), 2 layers, a 620 wide (partial panels of 16 and 24)
 * feed-forward: 620 K elements in the down projection > KERNEL_KC (several K blocks). */
static const char config[] = "{\"vocab_size\":64,\"hidden_size\":96,\"num_hidden_layers\":2,"
			     "\"num_attention_heads\":3,\"intermediate_size\":620,\"max_position_embeddings\":40,"
			     "\"type_vocab_size\":2,\"layer_norm_eps\":1e-12,\"hidden_act\":\"gelu\"}";

struct blob {
	uint8_t *data;
	size_t len;
};

static uint64_t rng = 12345;
static float frand(void) {
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((rng >> 40) / (double)(1 << 24) - 0.5);
}

static struct blob make_model(void) {
	const size_t H = 96, I = 620, V = 64, P = 40;
	struct safetensors_out t[64];
	float *bufs[64];
	size_t n = 0;
	char names[64][96];
#define T(d0, d1, scale, ...)                                                                       \
	do {                                                                                        \
		snprintf(names[n], 96, __VA_ARGS__);                                                \
		size_t cnt = (d0) * ((d1) ? (d1) : 1);                                              \
		bufs[n] = malloc(cnt * sizeof(float));                                              \
		for (size_t q = 0; q < cnt; q++) bufs[n][q] = (scale) * frand() + (strstr(names[n], "LayerNorm.weight") ? 1 : 0); \
		t[n] = (struct safetensors_out){names[n], ST_F32, (d1) ? 2 : 1, {d0, d1}, bufs[n]}; \
		n++;                                                                                \
	} while (0)
	T(V, H, 1.0f, "bert.embeddings.word_embeddings.weight");
	T(P, H, 1.0f, "bert.embeddings.position_embeddings.weight");
	T(2, H, 1.0f, "bert.embeddings.token_type_embeddings.weight");
	T(H, 0, 0.2f, "bert.embeddings.LayerNorm.weight");
	T(H, 0, 0.2f, "bert.embeddings.LayerNorm.bias");
	for (int l = 0; l < 2; l++) {
		const char *lin[] = {"attention.self.query", "attention.self.key", "attention.self.value",
				     "attention.output.dense"};
		for (int i = 0; i < 4; i++) {
			T(H, H, 0.5f, "bert.encoder.layer.%d.%s.weight", l, lin[i]);
			T(H, 0, 0.1f, "bert.encoder.layer.%d.%s.bias", l, lin[i]);
		}
		T(I, H, 0.3f, "bert.encoder.layer.%d.intermediate.dense.weight", l);
		T(I, 0, 0.1f, "bert.encoder.layer.%d.intermediate.dense.bias", l);
		T(H, I, 0.1f, "bert.encoder.layer.%d.output.dense.weight", l);
		T(H, 0, 0.1f, "bert.encoder.layer.%d.output.dense.bias", l);
		T(H, 0, 0.2f, "bert.encoder.layer.%d.attention.output.LayerNorm.weight", l);
		T(H, 0, 0.2f, "bert.encoder.layer.%d.attention.output.LayerNorm.bias", l);
		T(H, 0, 0.2f, "bert.encoder.layer.%d.output.LayerNorm.weight", l);
		T(H, 0, 0.2f, "bert.encoder.layer.%d.output.LayerNorm.bias", l);
	}
#undef T
	char path[] = "/tmp/eml-bert-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(safetensors_write(path, t, n), 0);
	struct blob b;
	assert_int_equal(read_file(path, 1 << 26, &b.data, &b.len), 0);
	unlink(path);
	for (size_t i = 0; i < n; i++) free(bufs[i]);
	return b;
}

static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\nb\nc\nd\n";

static struct embedder *load(struct blob *b, unsigned flags) {
	struct embedder *e = NULL;
	char err[256] = "";
	int r = embedder_load_mem(config, sizeof config - 1, vocab, sizeof vocab - 1, b->data, b->len, flags, &e, err,
				  sizeof err);
	if (r < 0) fail_msg("load: %s", err);
	return e;
}

static void encode(struct embedder *e, unsigned threads, const int32_t *const *ids, const size_t *lens, size_t n,
		   float *out) {
	struct bert_ctx *c;
	assert_int_equal(embedder_ctx_new(e, threads, &c), 0);
	assert_int_equal(bert_encode(c, ids, lens, n, out), 0);
	bert_ctx_free(c);
}

static void test_consistency(void **state) {
	struct blob b = make_model();
	struct embedder *fast = load(&b, 0), *port = load(&b, BERT_LOAD_PORTABLE);
	enum { N = 5, D = 96 };
	int32_t seq[N][40];
	size_t lens[N] = {1, 7, 40, 13, 2};
	const int32_t *ids[N];
	for (int s = 0; s < N; s++) {
		for (int t = 0; t < 40; t++) seq[s][t] = (s * 17 + t * 5) % 64;
		ids[s] = seq[s];
	}
	float batch[N * D], alone[D], p[N * D], t3[N * D];
	encode(fast, 1, ids, lens, N, batch);
	encode(port, 1, ids, lens, N, p);
	encode(fast, 3, ids, lens, N, t3);
	for (int s = 0; s < N; s++) {
		encode(fast, 2, &ids[s], &lens[s], 1, alone);
		double norm = 0;
		for (int h = 0; h < D; h++) {
			norm += batch[s * D + h] * batch[s * D + h];
			if (fabsf(alone[h] - batch[s * D + h]) > 1e-5f) fail_msg("seq %d dim %d: batch differs", s, h);
			if (fabsf(p[s * D + h] - batch[s * D + h]) > 1e-5f) fail_msg("seq %d dim %d: portable differs", s, h);
			if (t3[s * D + h] != batch[s * D + h]) fail_msg("seq %d dim %d: threads change result", s, h);
		}
		assert_true(fabs(norm - 1.0) < 1e-5);
	}
	/* Different inputs give clearly different vectors (the model is not degenerate). */
	double diff = 0;
	for (int h = 0; h < D; h++) diff += fabsf(batch[h] - batch[D + h]);
	assert_true(diff > 0.1);

	/* Refusals: id out of range, empty and too long sequences. */
	struct bert_ctx *c;
	assert_int_equal(embedder_ctx_new(fast, 1, &c), 0);
	int32_t bad[2] = {2, 64};
	const int32_t *pb = bad;
	size_t l2 = 2, l0 = 0, l41 = 41;
	assert_int_equal(bert_encode(c, &pb, &l2, 1, batch), -EINVAL);
	assert_int_equal(bert_encode(c, ids, &l0, 1, batch), -EINVAL);
	int32_t longseq[41] = {0};
	pb = longseq;
	assert_int_equal(bert_encode(c, &pb, &l41, 1, batch), -EINVAL);
	/* Text path: truncated to 40 positions, so any length of text works. */
	const char *texts[] = {"a b c d", "abcd ab", ""};
	float out[3 * D];
	size_t tokens;
	assert_int_equal(embedder_embed(fast, c, texts, 3, out, &tokens), 0);
	assert_int_equal(tokens, 6 + 4 + 2);
	bert_ctx_free(c);
	embedder_free(fast);
	embedder_free(port);
	free(b.data);
}

static void test_refusals(void **state) {
	struct blob b = make_model();
	struct embedder *e;
	char err[256] = "";
	static const char gelu_tanh[] = "{\"vocab_size\":64,\"hidden_size\":96,\"num_hidden_layers\":2,"
					"\"num_attention_heads\":2,\"intermediate_size\":620,"
					"\"max_position_embeddings\":40,\"hidden_act\":\"gelu_new\"}";
	assert_int_equal(embedder_load_mem(gelu_tanh, sizeof gelu_tanh - 1, vocab, sizeof vocab - 1, b.data, b.len, 0,
					   &e, err, sizeof err),
			 -EOPNOTSUPP);
	/* A model with more layers than the file holds names the missing tensor. */
	static const char three[] = "{\"vocab_size\":64,\"hidden_size\":96,\"num_hidden_layers\":3,"
				    "\"num_attention_heads\":2,\"intermediate_size\":620,\"max_position_embeddings\":40}";
	assert_int_equal(embedder_load_mem(three, sizeof three - 1, vocab, sizeof vocab - 1, b.data, b.len, 0, &e, err,
					   sizeof err),
			 -ENOENT);
	assert_non_null(strstr(err, "encoder.layer.2."));
	static const char wide[] = "{\"vocab_size\":64,\"hidden_size\":48,\"num_hidden_layers\":2,"
				   "\"num_attention_heads\":2,\"intermediate_size\":620,\"max_position_embeddings\":40}";
	assert_int_equal(embedder_load_mem(wide, sizeof wide - 1, vocab, sizeof vocab - 1, b.data, b.len, 0, &e, err,
					   sizeof err),
			 -EBADMSG);
	assert_non_null(strstr(err, "wrong shape"));
	assert_int_equal(embedder_load_mem(config, sizeof config - 1, vocab, sizeof vocab - 1, b.data, b.len - 1, 0, &e,
					   err, sizeof err),
			 -ENODATA);
	free(b.data);
	embedder_free(NULL);
}

/* One loaded model shared read-only by several threads, each with its own context (as in a daemon). */
struct shared {
	struct embedder *e;
	const float *want;
	int ok;
};

static void *worker(void *arg) {
	struct shared *sh = arg;
	const char *texts[] = {"a b c d", "d c b a a", "b"};
	float out[3 * 96];
	struct bert_ctx *c;
	sh->ok = embedder_ctx_new(sh->e, 2, &c) == 0;
	for (int i = 0; sh->ok && i < 20; i++)
		sh->ok = embedder_embed(sh->e, c, texts, 3, out, NULL) == 0 && memcmp(out, sh->want, sizeof out) == 0;
	bert_ctx_free(c);
	return NULL;
}

static void test_shared_model(void **state) {
	struct blob b = make_model();
	struct embedder *e = load(&b, 0);
	free(b.data); /* nothing may point into the buffer after loading */
	const char *texts[] = {"a b c d", "d c b a a", "b"};
	float want[3 * 96];
	struct bert_ctx *c;
	assert_int_equal(embedder_ctx_new(e, 1, &c), 0);
	assert_int_equal(embedder_embed(e, c, texts, 3, want, NULL), 0);
	bert_ctx_free(c);
	pthread_t t[4];
	struct shared sh[4];
	for (int i = 0; i < 4; i++) {
		sh[i] = (struct shared){e, want, 0};
		assert_int_equal(pthread_create(&t[i], NULL, worker, &sh[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_true(sh[i].ok);
	}
	embedder_free(e);
}

/* The same weights read as 4 heads of 24: head widths that are not a multiple of the 16-column panel go
 * through the attention products' partial panels; still what the portable kernels compute, on sequences
 * of 7 and 8 rows (the 4+3 and 4+4 tail tiles) and 40. */
static void test_narrow_heads(void **state) {
	static const char heads4[] = "{\"vocab_size\":64,\"hidden_size\":96,\"num_hidden_layers\":2,"
				     "\"num_attention_heads\":4,\"intermediate_size\":620,"
				     "\"max_position_embeddings\":40,\"hidden_act\":\"gelu\"}";
	struct blob b = make_model();
	struct embedder *fast, *port;
	char err[256] = "";
	assert_int_equal(embedder_load_mem(heads4, sizeof heads4 - 1, vocab, sizeof vocab - 1, b.data, b.len, 0, &fast,
					   err, sizeof err), 0);
	assert_int_equal(embedder_load_mem(heads4, sizeof heads4 - 1, vocab, sizeof vocab - 1, b.data, b.len,
					   BERT_LOAD_PORTABLE, &port, err, sizeof err), 0);
	enum { N = 3, D = 96 };
	int32_t seq[N][40];
	size_t lens[N] = {7, 8, 40};
	const int32_t *ids[N];
	for (int s = 0; s < N; s++) {
		for (int t = 0; t < 40; t++) seq[s][t] = (s * 11 + t * 3) % 64;
		ids[s] = seq[s];
	}
	float f[N * D], p[N * D], f2[N * D];
	encode(fast, 1, ids, lens, N, f);
	encode(port, 1, ids, lens, N, p);
	encode(fast, 2, ids, lens, N, f2);
	for (int i = 0; i < N * D; i++) {
		if (fabsf(f[i] - p[i]) > 1e-5f) fail_msg("component %d: portable differs (%g vs %g)", i, f[i], p[i]);
		if (f[i] != f2[i]) fail_msg("component %d: threads change result", i);
	}
	embedder_free(fast);
	embedder_free(port);
	free(b.data);
}

/* A batch of 300 tokens runs the fused QKV + attention pass in groups of sequences (bert.c, about 128
 * tokens each): every sequence still gets what it gets alone, at one thread (the fused path) and three. */
static void test_sequence_groups(void **state) {
	struct blob b = make_model();
	struct embedder *fast = load(&b, 0);
	enum { N = 12, D = 96 };
	int32_t seq[N][40];
	size_t lens[N];
	const int32_t *ids[N];
	for (int s = 0; s < N; s++) {
		lens[s] = 40 - (size_t)(s * 7 % 30); /* 11 to 40 tokens, 318 in all */
		for (int t = 0; t < 40; t++) seq[s][t] = (s * 13 + t * 3) % 64;
		ids[s] = seq[s];
	}
	float batch[N * D], t3[N * D], alone[D];
	encode(fast, 1, ids, lens, N, batch);
	encode(fast, 3, ids, lens, N, t3);
	for (int s = 0; s < N; s++) {
		encode(fast, 1, &ids[s], &lens[s], 1, alone);
		for (int h = 0; h < D; h++) {
			if (fabsf(alone[h] - batch[s * D + h]) > 1e-5f) fail_msg("seq %d dim %d: batch differs", s, h);
			if (fabsf(t3[s * D + h] - batch[s * D + h]) > 1e-5f) fail_msg("seq %d dim %d: 3 threads differ", s, h);
		}
	}
	embedder_free(fast);
	free(b.data);
}

enum { GEMM_MMAX = 100, GEMM_NMAX = 50, GEMM_KMAX = 1100 };
static float gemm_a[GEMM_MMAX * GEMM_KMAX], gemm_w[GEMM_NMAX * GEMM_KMAX], gemm_bias[GEMM_NMAX],
	gemm_res[GEMM_MMAX * GEMM_NMAX];
static double gemm_dot[GEMM_MMAX * GEMM_NMAX], gemm_mag[GEMM_MMAX * GEMM_NMAX];

/* Rows 2.. (from 0 for up to 4 rows) by panels 1.. (0 for one panel) of the M x N product with gemm_w packed
 * in panels of nr, against gemm_dot; bias, residual and GELU as M, N, K select. */
static void check_product(const struct kernels *kern, size_t nr, const float *packed, size_t M, size_t N, size_t K) {
	static float c[GEMM_MMAX * GEMM_NMAX];
	size_t panels = kernels_panels(N, nr), m0 = M > 4 ? 2 : 0, p0 = panels > 1 ? 1 : 0;
	bool full = (M + N + K) % 2, act = (M + K) % 3 == 0;
	struct gemm_args g = {.a = gemm_a, .lda = K, .packed = packed, .nr = nr, .bias = full ? gemm_bias : NULL,
			      .res = full ? gemm_res : NULL, .ldr = N, .c = c, .ldc = N, .m = M, .n = N, .k = K,
			      .act = act ? ACT_GELU : ACT_NONE};
	memset(c, 0, sizeof c);
	kern->gemm(&g, m0, M, p0, panels);
	for (size_t i = 0; i < M; i++)
		for (size_t j = 0; j < N; j++) {
			double want = gemm_dot[i * N + j];
			if (full) want += gemm_bias[j] + gemm_res[i * N + j];
			if (act) want = 0.5 * want * (1.0 + erf(want / sqrt(2.0)));
			if (i < m0 || j < p0 * nr) want = 0; /* outside the range */
			if (fabs(c[i * N + j] - want) > 1e-6 * (gemm_mag[i * N + j] + 2))
				fail_msg("%s nr %zu M %zu N %zu K %zu: c[%zu][%zu] = %.8g, want %.8g", kern->name, nr, M,
					 N, K, i, j, c[i * N + j], want);
		}
}

/* The product against the same arithmetic in double, both kernel sets and both panel widths: row counts
 * around the register tiles (and their splits of 5 to 8 rows), partial last panels, several K blocks, a
 * range of rows and panels (one task's share), bias, residual and GELU. */
static void test_gemm_kernels(void **state) {
	static const size_t ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 97, 100};
	static const size_t ns[] = {1, 8, 15, 16, 17, 23, 24, 25, 40, 50};
	static const size_t ks[] = {1, 7, 64, 513, 1100};
	static const size_t nrs[] = {KERNEL_NR, KERNEL_NR_WIDE};
	float *packed = aligned_alloc(64, kernels_packed_size(GEMM_NMAX, GEMM_KMAX, KERNEL_NR_WIDE));
	assert_non_null(packed);
	for (size_t i = 0; i < ARRAY_SIZE(gemm_a); i++) gemm_a[i] = frand();
	for (size_t i = 0; i < ARRAY_SIZE(gemm_w); i++) gemm_w[i] = frand();
	for (size_t i = 0; i < GEMM_NMAX; i++) gemm_bias[i] = frand();
	for (size_t i = 0; i < ARRAY_SIZE(gemm_res); i++) gemm_res[i] = frand();
	for (size_t y = 0; y < ARRAY_SIZE(ks); y++)
		for (size_t z = 0; z < ARRAY_SIZE(ns); z++) {
			size_t K = ks[y], N = ns[z]; /* A is M x K, W is N x K: the first floats of gemm_a, gemm_w */
			for (size_t i = 0; i < GEMM_MMAX * N; i++) {
				gemm_dot[i] = gemm_mag[i] = 0;
				for (size_t t = 0; t < K; t++) {
					double x = (double)gemm_a[i / N * K + t] * gemm_w[i % N * K + t];
					gemm_dot[i] += x;
					gemm_mag[i] += fabs(x);
				}
			}
			for (size_t x = 0; x < ARRAY_SIZE(nrs); x++) {
				kernels_pack(gemm_w, N, K, nrs[x], NULL, packed);
				for (int level = KERNELS_PORTABLE; level <= KERNELS_AVX2; level++)
					for (size_t q = 0; q < ARRAY_SIZE(ms); q++)
						check_product(kernels_select(level), nrs[x], packed, ms[q], N, K);
			}
		}
	free(packed);
}

/* The product's GELU epilogue against erf in double, from -12 to 12: the AVX2 set evaluates erf by a
 * rational approximation of its own (kernels-avx2.c), so check it here rather than only through whole
 * embeddings. */
static void test_gelu_epilogue(void **state) {
	enum { M = 4801, K = 2, N = 16 };
	static float a[M * K], c[M * N], w[N * K];
	float *packed = aligned_alloc(64, kernels_packed_size(N, K, KERNEL_NR));
	assert_non_null(packed);
	for (int j = 0; j < N; j++) w[j * K] = 1.0f; /* every column is a[i][0] */
	kernels_pack(w, N, K, KERNEL_NR, NULL, packed);
	for (int i = 0; i < M; i++) a[i * K] = -12.0f + 24.0f * (float)i / (M - 1);
	for (int level = KERNELS_PORTABLE; level <= KERNELS_AVX2; level++) {
		const struct kernels *k = kernels_select(level);
		struct gemm_args g = {.a = a, .lda = K, .packed = packed, .nr = KERNEL_NR, .c = c, .ldc = N, .m = M,
				      .n = N, .k = K, .act = ACT_GELU};
		k->gemm(&g, 0, M, 0, 1);
		for (int i = 0; i < M; i++) {
			double x = a[i * K], want = 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
			/* 2 ulps of the result where it is large, 1e-6 near zero */
			double tol = fmax(1e-6, 2.5e-7 * fabs(want));
			for (int j = 0; j < N; j += 5)
				if (fabs(c[i * N + j] - want) > tol)
					fail_msg("%s: gelu(%g) = %.9g, want %.9g", k->name, x, c[i * N + j], want);
		}
	}
	free(packed);
}

/* One attention head, both kernel sets, against the same arithmetic in double: sequence lengths around the
 * 8- and 16-wide blocks (key padding, the 8 x 8 key transposes), head widths that are and are not multiples
 * of 8 and 16, rows with a stride. */
static void test_attention_kernels(void **state) {
	enum { LD = 200, LMAX = 130, DMAX = 64 };
	static const size_t lens[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 100, 128, 130};
	static const size_t widths[] = {8, 16, 24, 32, 40, 64, 12};
	static float qkv[LMAX * LD], out[LMAX * DMAX];
	static double ref[LMAX * DMAX], sc[LMAX];
	unsigned seed = 1;
	for (size_t i = 0; i < LMAX * LD; i++) {
		seed = seed * 1103515245u + 12345u;
		qkv[i] = (float)((seed >> 8) % 20001) / 10000.0f - 1.0f;
	}
	float *scratch = aligned_alloc(64, kernels_attention_scratch(LMAX, DMAX) * sizeof(float));
	assert_non_null(scratch);
	for (size_t li = 0; li < ARRAY_SIZE(lens); li++)
		for (size_t wi = 0; wi < ARRAY_SIZE(widths); wi++) {
			size_t L = lens[li], d = widths[wi];
			const float *q = qkv, *k = qkv + DMAX, *v = qkv + 2 * DMAX;
			/* Scores of up to about +-16: the exponentials span 1e-14 to 1. */
			float scale = 16.0f / (float)d;
			for (size_t i = 0; i < L; i++) {
				double mx = -INFINITY, sum = 0;
				for (size_t j = 0; j < L; j++) {
					double dot = 0;
					for (size_t t = 0; t < d; t++) dot += (double)q[i * LD + t] * k[j * LD + t];
					sc[j] = dot * scale;
					mx = fmax(mx, sc[j]);
				}
				for (size_t j = 0; j < L; j++) sum += sc[j] = exp(sc[j] - mx);
				for (size_t t = 0; t < d; t++) {
					double o = 0;
					for (size_t j = 0; j < L; j++) o += sc[j] / sum * v[j * LD + t];
					ref[i * d + t] = o;
				}
			}
			for (int level = KERNELS_PORTABLE; level <= KERNELS_AVX2; level++) {
				const struct kernels *kr = kernels_select(level);
				kr->attention(q, k, v, LD, L, d, scale, out, d, scratch);
				for (size_t i = 0; i < L * d; i++)
					if (fabs(out[i] - ref[i]) > 2e-6)
						fail_msg("%s L=%zu d=%zu: out[%zu][%zu] = %.9g, want %.9g", kr->name, L, d,
							 i / d, i % d, out[i], ref[i]);
			}
		}
	free(scratch);
}

/* Two keys whose scores differ by x: the outputs are the two softmax weights, e^x / (1 + e^x) and
 * 1 / (1 + e^x), so the exponential is checked to a relative error over the whole range it is used in. */
static void test_softmax_range(void **state) {
	enum { D = 8 };
	static float q[2 * D], out[2 * D];
	float k[2 * D] = {1.0f}, v[2 * D] = {1.0f}; /* key 0 = value 0 = e0; key 1 = 0, value 1 = e1 */
	v[D + 1] = 1.0f;
	float *scratch = aligned_alloc(64, kernels_attention_scratch(2, D) * sizeof(float));
	assert_non_null(scratch);
	for (double x = -85; x <= 85; x += 0.37) {
		q[0] = (float)x;
		double w0 = 1.0 / (1.0 + exp(-(double)q[0])), w1 = 1.0 / (1.0 + exp((double)q[0]));
		for (int level = KERNELS_PORTABLE; level <= KERNELS_AVX2; level++) {
			const struct kernels *kr = kernels_select(level);
			kr->attention(q, k, v, D, 2, D, 1.0f, out, D, scratch);
			if (fabs(out[0] - w0) > 1e-6 * w0 || fabs(out[1] - w1) > 1e-6 * w1)
				fail_msg("%s: scores 0 and %g give weights %.9g %.9g, want %.9g %.9g", kr->name, x, out[0],
					 out[1], w0, w1);
		}
	}
	free(scratch);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_attention_kernels),
		cmocka_unit_test(test_softmax_range),
		cmocka_unit_test(test_consistency),
		cmocka_unit_test(test_narrow_heads),
		cmocka_unit_test(test_sequence_groups),
		cmocka_unit_test(test_gemm_kernels),
		cmocka_unit_test(test_gelu_epilogue),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_shared_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
