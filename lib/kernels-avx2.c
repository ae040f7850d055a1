/* kernels-avx2.c: AVX2/FMA versions of the kernels in kernels.h, compiled with target attributes so the rest
 * of the build keeps baseline flags; kernels_select() only hands them out on CPUs that have both features.
 * exp and erf are vectorised here (a per-element libm call would dominate the GELU of a forward pass). */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "macro.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* e^x for the softmax, where x <= 0 (valid up to 88): x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for
 * e^r, 2^n put into the exponent field. n is rounded by adding 1.5 * 2^23 + 127 (the exponent bias), which
 * leaves n + 127 in the low mantissa bits ready to shift into place, with no round or convert instruction;
 * r comes from one FMA with ln2 as a float (error |n| 2e-9: at most 3e-7 relative, at the clamp); the
 * polynomial goes in Estrin's order, three dependent steps instead of six. Max relative error 4.7e-7 over
 * [-86, 0] (2.3e-7 before, with a two-constant reduction and Horner); a head at 32 tokens 3% faster. */
AVX2_INLINE __m256 exp256_softmax(__m256 x) {
	/* Above -86.6, n + 127 >= 2 and the result stays a normal float (a denormal costs a microcode assist). */
	x = _mm256_max_ps(x, _mm256_set1_ps(-86.6f));
	const __m256 shift = _mm256_set1_ps(12582912.0f + 127.0f);
	__m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), shift);
	__m256 n = _mm256_sub_ps(t, shift);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693147180559945309f), x);
	__m256 r2 = _mm256_mul_ps(r, r), r4 = _mm256_mul_ps(r2, r2);
	__m256 p01 = _mm256_add_ps(r, _mm256_set1_ps(1.0f));
	__m256 p23 = _mm256_fmadd_ps(r, _mm256_set1_ps(1.0f / 6), _mm256_set1_ps(0.5f));
	__m256 p45 = _mm256_fmadd_ps(r, _mm256_set1_ps(1.0f / 120), _mm256_set1_ps(1.0f / 24));
	__m256 p0123 = _mm256_fmadd_ps(p23, r2, p01);
	__m256 p456 = _mm256_fmadd_ps(_mm256_set1_ps(1.0f / 720), r2, p45);
	__m256 p = _mm256_fmadd_ps(p456, r4, p0123);
	return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23)));
}

/* erf(x) as x P(x²) / Q(x²) on [-3.92, 3.92] (past 3.92, erf rounds to ±1 in float): a rational fit
 * (tests/bench/fit-erf.py regenerates it), max error 4e-8 in exact arithmetic and about 4e-7 in float. It
 * runs in the epilogue of every feed-forward tile: 11 FMAs and a division per vector, where the
 * Abramowitz & Stegun form with an exp() took about twice the operations and made the up projection 10%
 * slower than without GELU (now 5%). */
AVX2_INLINE __m256 erf256(__m256 x) {
	x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-3.92f)), _mm256_set1_ps(3.92f));
	__m256 t = _mm256_mul_ps(x, x);
	__m256 p = _mm256_set1_ps(1.99212035e-08f);
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.9943236e-06f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48993936e-04f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(3.97319197e-03f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(5.13982244e-02f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(2.06121243e-01f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.12837878f));
	__m256 q = _mm256_set1_ps(1.02419652e-03f);
	q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(1.48898254e-02f));
	q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(1.17567475e-01f));
	q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(5.15998960e-01f));
	q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(1.0f));
	/* The fit overshoots 1 by a few ulps near the clamp. */
	__m256 y = _mm256_div_ps(_mm256_mul_ps(x, p), q);
	return _mm256_min_ps(_mm256_max_ps(y, _mm256_set1_ps(-1.0f)), _mm256_set1_ps(1.0f));
}

/* 0.5 x (1 + erf(x / √2)), as h + h erf with h = x / 2. */
AVX2_INLINE __m256 gelu256(__m256 x) {
	__m256 h = _mm256_mul_ps(_mm256_set1_ps(0.5f), x);
	return _mm256_fmadd_ps(h, erf256(_mm256_mul_ps(x, _mm256_set1_ps((float)M_SQRT1_2))), h);
}

/* The MR x (8 NV) register tile: MR x NV accumulators, NV panel vectors and a broadcast within the 16 ymm
 * registers (6 x 16: 12 + 2 + 1; 4 x 24: 12 + 3 + 1). Adds a[0..MR) x b over kc into c (or starts from zero
 * when first), then, when last, adds bias and residual and applies the activation. MR and NV are constants in
 * each instantiation below, so the loops unroll and the accumulators stay in registers. Full panels only; a
 * partial last panel goes through tile_partial's padded copies.
 *
 * pf: lines of what comes next, pf.lines of them every pf.every k steps, pf.step floats apart (see
 * gemm_avx2): weights come from memory once per pass, and a tile that waits for them runs at a fraction of
 * its speed. Into L2, not L1: the next panel and the one in use (24-48 KiB each) do not fit in L1 together,
 * and fetching into L1 evicted lines the tiles still read; the L1 prefetcher takes them from L2 in time
 * (passes 0.97-1.00 of the time at every shape, 1 and 2 threads, in 9 of 9 alternating runs). */
struct prefetch {
	const float *p;
	size_t every, lines, step;
};

#define LINE_FLOATS 16 /* floats per 64-byte cache line */

AVX2_INLINE void kernel_tile(const size_t MR, const size_t NV, const float *a, size_t lda, const float *b,
			     size_t kc, float *c, size_t ldc, bool first, bool last, const float *bias,
			     const float *res, size_t ldr, int act, struct prefetch pf) {
	const size_t NR = 8 * NV;
	__m256 acc[KERNEL_MR][3];
#pragma GCC unroll 6
	for (size_t r = 0; r < MR; r++)
#pragma GCC unroll 3
		for (size_t v = 0; v < NV; v++)
			acc[r][v] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + r * ldc + 8 * v);
#define TILE_STEP(k)                                                                                           \
	do {                                                                                                   \
		__m256 bv[3];                                                                                  \
		_Pragma("GCC unroll 3") for (size_t v = 0; v < NV; v++) bv[v] =                               \
			_mm256_load_ps(b + (k) * NR + 8 * v);                                                  \
		_Pragma("GCC unroll 6") for (size_t r = 0; r < MR; r++) {                                      \
			__m256 av = _mm256_broadcast_ss(a + r * lda + (k));                                    \
			_Pragma("GCC unroll 3") for (size_t v = 0; v < NV; v++) acc[r][v] =                    \
				_mm256_fmadd_ps(av, bv[v], acc[r][v]);                                         \
		}                                                                                              \
	} while (0)
	if (pf.p && pf.every == 1)
		for (size_t k = 0; k < kc; k++) {
			/* Every line the row touches (a 24-wide row spans two lines every other step). */
#pragma GCC unroll 2
			for (size_t l = 0; l < (NV + 1) / 2; l++)
				_mm_prefetch((const char *)(pf.p + k * NR + l * LINE_FLOATS), _MM_HINT_T1);
			TILE_STEP(k);
		}
	else if (pf.p)
		/* The prefetches per chunk of pf.every steps, the chunk on the plain loop: a test for the
		 * prefetch step inside the k loop added two instructions per step to every tile and cost 2-4% at
		 * 32x32. */
		for (size_t k0 = 0; k0 < kc; k0 += pf.every) {
#pragma GCC unroll 3
			for (size_t l = 0; l < pf.lines; l++, pf.p += pf.step)
				_mm_prefetch((const char *)pf.p, _MM_HINT_T1);
			for (size_t k = k0, end = MIN(k0 + pf.every, kc); k < end; k++) TILE_STEP(k);
		}
	else
		for (size_t k = 0; k < kc; k++) TILE_STEP(k);
#undef TILE_STEP
	if (last) {
		__m256 bv[3];
#pragma GCC unroll 3
		for (size_t v = 0; v < NV; v++) bv[v] = bias ? _mm256_loadu_ps(bias + 8 * v) : _mm256_setzero_ps();
#pragma GCC unroll 6
		for (size_t r = 0; r < MR; r++)
#pragma GCC unroll 3
			for (size_t v = 0; v < NV; v++) {
				acc[r][v] = _mm256_add_ps(acc[r][v], bv[v]);
				if (res) acc[r][v] = _mm256_add_ps(acc[r][v], _mm256_loadu_ps(res + r * ldr + 8 * v));
				if (act == ACT_GELU) acc[r][v] = gelu256(acc[r][v]);
			}
	}
#pragma GCC unroll 6
	for (size_t r = 0; r < MR; r++)
#pragma GCC unroll 3
		for (size_t v = 0; v < NV; v++) _mm256_storeu_ps(c + r * ldc + 8 * v, acc[r][v]);
}

typedef void (*tile_fn)(const float *a, size_t lda, const float *b, size_t kc, float *c, size_t ldc, bool first,
			bool last, const float *bias, const float *res, size_t ldr, int act, struct prefetch pf);

#define TILE(M, N)                                                                                             \
	AVX2 static void kernel_##M##x##N(const float *a, size_t lda, const float *b, size_t kc, float *c,     \
					  size_t ldc, bool first, bool last, const float *bias, const float *res, \
					  size_t ldr, int act, struct prefetch pf) {                            \
		kernel_tile(M, N / 8, a, lda, b, kc, c, ldc, first, last, bias, res, ldr, act, pf);            \
	}
TILE(1, 16)
TILE(2, 16)
TILE(3, 16)
TILE(4, 16)
TILE(5, 16)
TILE(6, 16)
TILE(1, 24)
TILE(2, 24)
TILE(3, 24)
TILE(4, 24)
#undef TILE

struct tile_set {
	size_t nr, mr;
	tile_fn tiles[KERNEL_MR + 1]; /* by rows */
};
static const struct tile_set tiles16 = {KERNEL_NR, KERNEL_MR,
					{NULL, kernel_1x16, kernel_2x16, kernel_3x16, kernel_4x16, kernel_5x16,
					 kernel_6x16}};
static const struct tile_set tiles24 = {KERNEL_NR_WIDE, KERNEL_MR_WIDE,
					{NULL, kernel_1x24, kernel_2x24, kernel_3x24, kernel_4x24}};

/* A tile of a partial last panel (narrower than the panel): pad C, bias and residual into local copies. */
AVX2 static void tile_partial(const struct tile_set *ts, const struct gemm_args *g, size_t mr, size_t i, size_t p,
			      size_t k0, size_t kc, bool first, bool last) {
	enum { W = KERNEL_NR_WIDE };
	size_t n0 = p * ts->nr, nr = MIN(g->n - n0, ts->nr);
	float c[KERNEL_MR * W] = {0}, bias[W] = {0}, res[KERNEL_MR * W] = {0};
	for (size_t r = 0; r < mr; r++) {
		if (!first) memcpy(c + r * W, g->c + (i + r) * g->ldc + n0, nr * sizeof(float));
		if (last && g->res) memcpy(res + r * W, g->res + (i + r) * g->ldr + n0, nr * sizeof(float));
	}
	if (last && g->bias) memcpy(bias, g->bias + n0, nr * sizeof(float));
	ts->tiles[mr](g->a + i * g->lda + k0, g->lda, g->packed + (p * g->k + k0) * ts->nr, kc, c, W, first, last,
		      g->bias ? bias : NULL, g->res ? res : NULL, W, g->act, (struct prefetch){0});
	for (size_t r = 0; r < mr; r++) memcpy(g->c + (i + r) * g->ldc + n0, c + r * W, nr * sizeof(float));
}

/* Rows of the next tile with `left` rows to go: a 1- or 2-row tile has too few accumulators to cover the FMA
 * latency and runs at half speed or less, so 7 or 8 rows go as 4 + 3 or 4 + 4 in 6-row tiles, and 5 to 7 as
 * 3 + 2, 3 + 3, 4 + 3 in 4-row ones. */
static inline size_t tile_rows(const struct tile_set *ts, size_t left) {
	if (ts->mr == KERNEL_MR) return left == 7 || left == 8 ? 4 : MIN(left, (size_t)KERNEL_MR);
	return left > ts->mr && left < 2 * ts->mr ? (left + 1) / 2 : MIN(left, ts->mr);
}

AVX2 static void gemm_avx2(const struct gemm_args *g, size_t m_begin, size_t m_end, size_t p0, size_t p1) {
	const struct tile_set *ts = g->nr == KERNEL_NR_WIDE ? &tiles24 : &tiles16;
	size_t nr = ts->nr, kcb = kernels_kc(g->k), panel = g->k * nr; /* floats per packed panel */
	/* Row blocks of KERNEL_MC keep a block of activations in L2 while the panels stream past. */
	for (size_t m0 = m_begin; m0 < m_end; m0 += KERNEL_MC) {
	size_t m1 = MIN(m0 + KERNEL_MC, m_end), tiles_in_block = 0;
	for (size_t i = m0; i < m1; i += tile_rows(ts, m1 - i)) tiles_in_block++;
	for (size_t k0 = 0; k0 < g->k; k0 += kcb) {
		size_t kc = MIN(g->k - k0, kcb);
		bool first = k0 == 0, last = k0 + kc == g->k;
		for (size_t p = p0; p < p1; p++) {
			size_t n0 = p * nr;
			const float *b = g->packed + p * panel + k0 * nr;
			/* While the block's tiles work on this panel they fetch the one they need next: the next
			 * panel, else the first of the next K block, else the first again for the next row block.
			 * Tile t fetches lines t, t + T, t + 2T, ... of it (T tiles in the block), spreading the
			 * fetches over the whole panel: all of them from the first tile, one per k step, kept
			 * more misses in flight than the core tracks, and that tile stalled (a product whose
			 * weights come from memory ran 8-18% slower at 32 and 128 rows). A k step is nr / 16
			 * lines, so each tile fetches one line every T steps of a 16-wide panel and 3 lines every
			 * 2T steps of a 24-wide one. Nothing knowing what comes after the last panel, its first
			 * tile reads its own lines a little ahead. */
			const float *next = p + 1 < p1	     ? b + panel
					    : k0 + kc < g->k ? g->packed + p0 * panel + (k0 + kc) * nr
					    : m1 < m_end     ? g->packed + p0 * panel
							     : NULL;
			for (size_t i = m0, mr, t = 0; i < m1; i += mr, t++) {
				mr = tile_rows(ts, m1 - i);
				struct prefetch pf = {0};
				/* Chunks of `steps` T k steps, a whole number of lines per tile. */
				size_t T = tiles_in_block, steps = nr % LINE_FLOATS ? 2 : 1;
				if (next)
					pf = (struct prefetch){next + t * LINE_FLOATS, steps * T, steps * nr / LINE_FLOATS,
							       LINE_FLOATS * T};
				else if (t == 0)
					pf = (struct prefetch){b + KERNEL_PF_AHEAD * nr, 1, 1, 0};
				if (g->n - n0 < nr)
					tile_partial(ts, g, mr, i, p, k0, kc, first, last);
				else
					ts->tiles[mr](g->a + i * g->lda + k0, g->lda, b, kc, g->c + i * g->ldc + n0,
						      g->ldc, first, last, g->bias ? g->bias + n0 : NULL,
						      g->res ? g->res + i * g->ldr + n0 : NULL, g->ldr, g->act, pf);
			}
		}
	}
	}
}

AVX2_INLINE float hsum(__m256 v) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

AVX2_INLINE float hmax(__m256 v) {
	__m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_max_ps(s, _mm_movehl_ps(s, s));
	s = _mm_max_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* In place over s[0..Lp): e^(scale (s_j - max)) for j < L, 0 for the padding; returns 1 / their sum. The
 * scale goes in here rather than into the product, which has no epilogue for it. */
AVX2_INLINE float softmax_row(float *s, size_t L, size_t Lp, float scale) {
	for (size_t j = L; j < Lp; j++) s[j] = -INFINITY;
	__m256 vmax = _mm256_set1_ps(-INFINITY);
	for (size_t j = 0; j < Lp; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + j));
	/* scale > 0, so scale (s - max) <= 0 (up to the rounding of scale max, far inside the exponential's range) */
	__m256 sc = _mm256_set1_ps(scale), mxsc = _mm256_set1_ps(hmax(vmax) * scale), vsum = _mm256_setzero_ps();
	for (size_t j = 0; j < Lp; j += 8) {
		__m256 e = exp256_softmax(_mm256_fmsub_ps(_mm256_loadu_ps(s + j), sc, mxsc));
		if (j + 8 > L) /* the exponential clamps, so padding lanes are masked to exactly 0 */
			e = _mm256_and_ps(e, _mm256_cmp_ps(_mm256_add_ps(_mm256_set1_ps((float)j),
									 _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7)),
							   _mm256_set1_ps((float)L), _CMP_LT_OQ));
		_mm256_storeu_ps(s + j, e);
		vsum = _mm256_add_ps(vsum, e);
	}
	return 1.0f / hsum(vsum);
}

/* r[i][c] <-> r[c][i] for an 8 x 8 block in registers. */
AVX2_INLINE void transpose8x8(__m256 r[8]) {
	__m256 t[8], u[8];
	for (int i = 0; i < 8; i += 2) {
		t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
		t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
	}
	for (int i = 0; i < 8; i += 4) {
		u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
		u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
		u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
		u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
	}
	for (int i = 0; i < 4; i++) {
		r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
		r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
	}
}

/* Keys as the weight of S = Q Kᵀ: kp[(j / 16) d + t][j % 16] = k[j][t], zero for the padding keys L <= j < Ln.
 * Blocks of 8 x 8 are transposed in registers when d is a multiple of 8: the element-wise scatter was a third
 * of a head's time outside its two products (a head at 32 tokens went from 3.5 to 2.75 us with this and the
 * vector copy in pack_values, at 128 tokens from 38 to 35). */
AVX2 static void pack_keys(const float *k, size_t ld, size_t L, size_t d, float *kp) {
	size_t Ln = kernels_panels(L, KERNEL_NR) * KERNEL_NR;
	if (d % 8) {
		for (size_t j = 0; j < Ln; j++) {
			float *dst = kp + (j / KERNEL_NR * d) * KERNEL_NR + j % KERNEL_NR;
			for (size_t t = 0; t < d; t++) dst[t * KERNEL_NR] = j < L ? k[j * ld + t] : 0.0f;
		}
		return;
	}
	for (size_t j0 = 0; j0 < Ln; j0 += 8) {
		float *dst = kp + (j0 / KERNEL_NR * d) * KERNEL_NR + j0 % KERNEL_NR;
		for (size_t t0 = 0; t0 < d; t0 += 8) {
			__m256 r[8];
			for (size_t i = 0; i < 8; i++)
				r[i] = j0 + i < L ? _mm256_loadu_ps(k + (j0 + i) * ld + t0) : _mm256_setzero_ps();
			transpose8x8(r);
			for (size_t c = 0; c < 8; c++) _mm256_store_ps(dst + (t0 + c) * KERNEL_NR, r[c]);
		}
	}
}

/* Values as the weight of O = P V: vp[(p L + j)][c] = v[j][16 p + c], the last panel zero-padded. */
AVX2 static void pack_values(const float *v, size_t ld, size_t L, size_t d, float *vp) {
	for (size_t p = 0; p < kernels_panels(d, KERNEL_NR); p++) {
		size_t c0 = p * KERNEL_NR, w = MIN(d - c0, (size_t)KERNEL_NR);
		for (size_t j = 0; j < L; j++) {
			float *dst = vp + (p * L + j) * KERNEL_NR;
			const float *src = v + j * ld + c0;
			if (w == KERNEL_NR) {
				_mm256_store_ps(dst, _mm256_loadu_ps(src));
				_mm256_store_ps(dst + 8, _mm256_loadu_ps(src + 8));
				continue;
			}
			memcpy(dst, src, w * sizeof(float));
			memset(dst + w, 0, (KERNEL_NR - w) * sizeof(float));
		}
	}
}

/* One head as two small products on the GEMM kernel, which runs them near its peak where hand-written
 * dot-product loops ran at half of it: S = Q Kᵀ with the keys packed into panels (zero keys pad them to
 * a multiple of 16), a softmax on each row of S, then O = P V with the values packed into panels, each
 * row of O scaled by its 1 / sum. */
AVX2 static void attention_avx2(const float *q, const float *k, const float *v, size_t ld, size_t L, size_t d,
				float scale, float *out, size_t ldo, float *scratch) {
	size_t Ln = kernels_panels(L, KERNEL_NR) * KERNEL_NR, dn = kernels_panels(d, KERNEL_NR) * KERNEL_NR;
	float *kp = scratch, *vp = kp + d * Ln, *s = vp + L * dn, *inv = s + L * Ln;
	pack_keys(k, ld, L, d, kp);
	pack_values(v, ld, L, d, vp);
	struct gemm_args qk = {.a = q, .lda = ld, .packed = kp, .nr = KERNEL_NR, .c = s, .ldc = Ln, .m = L, .n = Ln,
			       .k = d};
	gemm_avx2(&qk, 0, L, 0, Ln / KERNEL_NR);
	for (size_t i = 0; i < L; i++) inv[i] = softmax_row(s + i * Ln, L, Ln, scale);
	struct gemm_args pv = {.a = s, .lda = Ln, .packed = vp, .nr = KERNEL_NR, .c = out, .ldc = ldo, .m = L, .n = d,
			       .k = L};
	gemm_avx2(&pv, 0, L, 0, dn / KERNEL_NR);
	for (size_t i = 0; i < L; i++) {
		float *o = out + i * ldo;
		__m256 f = _mm256_set1_ps(inv[i]);
		size_t t = 0;
		for (; t + 8 <= d; t += 8) _mm256_storeu_ps(o + t, _mm256_mul_ps(_mm256_loadu_ps(o + t), f));
		for (; t < d; t++) o[t] *= inv[i];
	}
}

/* Same two-pass arithmetic as the portable version (mean, then centred variance), eight lanes at a time. */
AVX2 static void layernorm_avx2(const float *src, float *dst, size_t rows, size_t h, size_t ld, const float *gamma,
				const float *beta, float eps) {
	if (h % 8) {
		kernels_layernorm(src, dst, rows, h, ld, gamma, beta, eps);
		return;
	}
	for (size_t r = 0; r < rows; r++) {
		const float *x = src + r * ld;
		float *y = dst + r * ld;
		__m256 s = _mm256_setzero_ps();
		for (size_t j = 0; j < h; j += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(x + j));
		__m256 mean = _mm256_set1_ps(hsum(s) / (float)h), v = _mm256_setzero_ps();
		for (size_t j = 0; j < h; j += 8) {
			__m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + j), mean);
			v = _mm256_fmadd_ps(d, d, v);
		}
		__m256 inv = _mm256_set1_ps(1.0f / sqrtf(hsum(v) / (float)h + eps));
		for (size_t j = 0; j < h; j += 8) {
			__m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), mean), inv);
			_mm256_storeu_ps(y + j, _mm256_fmadd_ps(d, _mm256_loadu_ps(gamma + j), _mm256_loadu_ps(beta + j)));
		}
	}
}

const struct kernels kernels_avx2 = {
	.name = "avx2-fma",
	.gemm = gemm_avx2,
	.attention = attention_avx2,
	.layernorm = layernorm_avx2,
};

#else
const struct kernels kernels_avx2 = {
	.name = "portable",
	.gemm = NULL,
	.attention = NULL,
	.layernorm = NULL,
};
#endif
