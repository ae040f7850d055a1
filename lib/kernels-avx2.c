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

/* e^x for x in float range: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial for e^r, 2^n via the exponent. */
AVX2_INLINE __m256 exp256(__m256 x) {
	x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
	__m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
				   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.0f / 720);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	__m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* erf(x) by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7, below float resolution near 1). */
AVX2_INLINE __m256 erf256(__m256 x) {
	__m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
	__m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
	__m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(ax, _mm256_set1_ps(0.3275911f),
								       _mm256_set1_ps(1.0f)));
	__m256 p = _mm256_set1_ps(1.061405429f);
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
	p = _mm256_mul_ps(p, t);
	__m256 e = exp256(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), ax), ax));
	__m256 y = _mm256_fnmadd_ps(p, e, _mm256_set1_ps(1.0f));
	return _mm256_or_ps(y, sign);
}

AVX2_INLINE __m256 gelu256(__m256 x) {
	__m256 e = erf256(_mm256_mul_ps(x, _mm256_set1_ps((float)M_SQRT1_2)));
	return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* The 6 x 16 register tile: 12 accumulators, 2 panel vectors and a broadcast fill 15 of the 16 ymm
 * registers. Adds a[0..6) x b over kc into c (or starts from zero when first), then, when last, adds bias
 * and residual and applies the activation. Rows of a, c and res are always 6 full rows of 16 here; partial
 * tiles go through padded copies (tile_partial). */
AVX2 static void kernel_6x16(const float *a, size_t lda, const float *b, size_t kc, float *c, size_t ldc,
			     bool first, bool last, const float *bias, const float *res, size_t ldr, int act) {
	__m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
	if (first) {
		c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
	} else {
#define LD(r) c##r##0 = _mm256_loadu_ps(c + r * ldc), c##r##1 = _mm256_loadu_ps(c + r * ldc + 8)
		LD(0); LD(1); LD(2); LD(3); LD(4); LD(5);
#undef LD
	}
	const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda,
		    *a5 = a + 5 * lda;
	for (size_t k = 0; k < kc; k++) {
		__m256 b0 = _mm256_load_ps(b + k * KERNEL_NR), b1 = _mm256_load_ps(b + k * KERNEL_NR + 8), av;
#define FMA(r)                                                      \
	av = _mm256_broadcast_ss(a##r + k);                         \
	c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0);                 \
	c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1)
		FMA(0); FMA(1); FMA(2); FMA(3); FMA(4); FMA(5);
#undef FMA
	}
	if (last) {
		__m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
		if (bias) bias0 = _mm256_loadu_ps(bias), bias1 = _mm256_loadu_ps(bias + 8);
#define EPI(r)                                                                                      \
	c##r##0 = _mm256_add_ps(c##r##0, bias0), c##r##1 = _mm256_add_ps(c##r##1, bias1);          \
	if (res)                                                                                    \
		c##r##0 = _mm256_add_ps(c##r##0, _mm256_loadu_ps(res + r * ldr)),                   \
		c##r##1 = _mm256_add_ps(c##r##1, _mm256_loadu_ps(res + r * ldr + 8));               \
	if (act == ACT_GELU) c##r##0 = gelu256(c##r##0), c##r##1 = gelu256(c##r##1)
		EPI(0); EPI(1); EPI(2); EPI(3); EPI(4); EPI(5);
#undef EPI
	}
#define ST(r) _mm256_storeu_ps(c + r * ldc, c##r##0), _mm256_storeu_ps(c + r * ldc + 8, c##r##1)
	ST(0); ST(1); ST(2); ST(3); ST(4); ST(5);
#undef ST
}

/* A tile with fewer than 6 rows or 16 columns: pad everything into local 6 x 16 copies. */
AVX2 static void tile_partial(const struct gemm_args *g, size_t mr, size_t i, size_t p, size_t k0, size_t kc,
			      bool first, bool last, float *apad) {
	size_t n0 = p * KERNEL_NR, nr = MIN(g->n - n0, (size_t)KERNEL_NR);
	float c[KERNEL_MR * KERNEL_NR] = {0}, bias[KERNEL_NR] = {0}, res[KERNEL_MR * KERNEL_NR] = {0};
	for (size_t r = 0; r < KERNEL_MR; r++) {
		if (r < mr)
			memcpy(apad + r * kc, g->a + (i + r) * g->lda + k0, kc * sizeof(float));
		else
			memset(apad + r * kc, 0, kc * sizeof(float));
		if (r < mr && !first) memcpy(c + r * KERNEL_NR, g->c + (i + r) * g->ldc + n0, nr * sizeof(float));
		if (r < mr && last && g->res)
			memcpy(res + r * KERNEL_NR, g->res + (i + r) * g->ldr + n0, nr * sizeof(float));
	}
	if (last && g->bias) memcpy(bias, g->bias + n0, nr * sizeof(float));
	kernel_6x16(apad, kc, g->packed + (p * g->k + k0) * KERNEL_NR, kc, c, KERNEL_NR, first, last,
		    g->bias ? bias : NULL, g->res ? res : NULL, KERNEL_NR, g->act);
	for (size_t r = 0; r < mr; r++) memcpy(g->c + (i + r) * g->ldc + n0, c + r * KERNEL_NR, nr * sizeof(float));
}

AVX2 static void gemm_avx2(const struct gemm_args *g, size_t p0, size_t p1) {
	float apad[KERNEL_MR * KERNEL_KC];
	for (size_t k0 = 0; k0 < g->k; k0 += KERNEL_KC) {
		size_t kc = MIN(g->k - k0, (size_t)KERNEL_KC);
		bool first = k0 == 0, last = k0 + kc == g->k;
		for (size_t p = p0; p < p1; p++) {
			size_t n0 = p * KERNEL_NR, i = 0;
			bool full = g->n - n0 >= KERNEL_NR;
			const float *b = g->packed + (p * g->k + k0) * KERNEL_NR;
			for (; full && i + KERNEL_MR <= g->m; i += KERNEL_MR)
				kernel_6x16(g->a + i * g->lda + k0, g->lda, b, kc, g->c + i * g->ldc + n0, g->ldc, first,
					    last, g->bias ? g->bias + n0 : NULL, g->res ? g->res + i * g->ldr + n0 : NULL,
					    g->ldr, g->act);
			for (; i < g->m; i += KERNEL_MR)
				tile_partial(g, MIN(g->m - i, (size_t)KERNEL_MR), i, p, k0, kc, first, last, apad);
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

/* Scores use Kᵀ (d x L, built once per head) so each query row is broadcast-FMAs without horizontal sums. */
AVX2 static void attention_avx2(const float *q, const float *k, const float *v, size_t ld, size_t L, size_t d,
				float scale, float *out, size_t ldo, float *scratch) {
	if (d % 8) {
		kernels_portable.attention(q, k, v, ld, L, d, scale, out, ldo, scratch);
		return;
	}
	size_t Lp = (L + 7) & ~(size_t)7;
	float *kt = scratch, *s = scratch + d * Lp;
	for (size_t j = 0; j < Lp; j++)
		for (size_t t = 0; t < d; t++) kt[t * Lp + j] = j < L ? k[j * ld + t] : 0.0f;
	for (size_t i = 0; i < L; i++) {
		const float *qi = q + i * ld;
		__m256 vmax = _mm256_set1_ps(-INFINITY);
		for (size_t j = 0; j < Lp; j += 8) {
			__m256 acc = _mm256_setzero_ps();
			for (size_t t = 0; t < d; t++)
				acc = _mm256_fmadd_ps(_mm256_set1_ps(qi[t]), _mm256_loadu_ps(kt + t * Lp + j), acc);
			acc = _mm256_mul_ps(acc, _mm256_set1_ps(scale));
			_mm256_storeu_ps(s + j, acc);
		}
		for (size_t j = L; j < Lp; j++) s[j] = -INFINITY; /* padding columns get no weight */
		for (size_t j = 0; j < Lp; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + j));
		__m256 mx = _mm256_set1_ps(hmax(vmax)), vsum = _mm256_setzero_ps();
		for (size_t j = 0; j < Lp; j += 8) {
			__m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), mx));
			if (j + 8 > L) /* exp256 clamps, so mask the padding explicitly */
				e = _mm256_and_ps(e, _mm256_cmp_ps(_mm256_add_ps(_mm256_set1_ps((float)j),
										 _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7)),
								   _mm256_set1_ps((float)L), _CMP_LT_OQ));
			_mm256_storeu_ps(s + j, e);
			vsum = _mm256_add_ps(vsum, e);
		}
		__m256 inv = _mm256_set1_ps(1.0f / hsum(vsum));
		float *oi = out + i * ldo;
		for (size_t t = 0; t < d; t += 8) {
			__m256 acc = _mm256_setzero_ps();
			for (size_t j = 0; j < L; j++)
				acc = _mm256_fmadd_ps(_mm256_set1_ps(s[j]), _mm256_loadu_ps(v + j * ld + t), acc);
			_mm256_storeu_ps(oi + t, _mm256_mul_ps(acc, inv));
		}
	}
}

const struct kernels kernels_avx2 = {
	.name = "avx2-fma",
	.gemm = gemm_avx2,
	.attention = attention_avx2,
};

#else
const struct kernels kernels_avx2 = {
	.name = "portable",
	.gemm = NULL,
	.attention = NULL,
};
#endif
