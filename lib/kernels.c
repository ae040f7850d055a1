/* kernels.c: portable kernels, packing, LayerNorm and run-time selection. See kernels.h. */
#include <math.h>
#include <string.h>

#include "kernels.h"

size_t kernels_packed_size(size_t n, size_t k, size_t nr) {
	return kernels_panels(n, nr) * nr * k * sizeof(float);
}

void kernels_pack(const float *w, size_t n, size_t k, size_t nr, const size_t *order, float *dst) {
	size_t panels = kernels_panels(n, nr);
	for (size_t p = 0; p < panels; p++)
		for (size_t kk = 0; kk < k; kk++)
			for (size_t j = 0; j < nr; j++) {
				size_t col = p * nr + j, row = col < n && order ? order[col] : col;
				dst[(p * k + kk) * nr + j] = col < n ? w[row * k + kk] : 0.0f;
			}
}

static float gelu(float x) {
	return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
}

static void gemm_portable(const struct gemm_args *g, size_t m0, size_t m1, size_t p0, size_t p1) {
	for (size_t p = p0; p < p1; p++) {
		const float *panel = g->packed + p * g->k * g->nr;
		size_t n0 = p * g->nr, nr = g->n - n0 < g->nr ? g->n - n0 : g->nr;
		for (size_t i = m0; i < m1; i += KERNEL_MR) {
			size_t mr = m1 - i < KERNEL_MR ? m1 - i : KERNEL_MR;
			float acc[KERNEL_MR][KERNEL_NR_WIDE] = {{0}};
			for (size_t kk = 0; kk < g->k; kk++) {
				const float *b = panel + kk * g->nr;
				for (size_t r = 0; r < mr; r++) {
					float a = g->a[(i + r) * g->lda + kk];
					for (size_t j = 0; j < nr; j++) acc[r][j] += a * b[j];
				}
			}
			for (size_t r = 0; r < mr; r++)
				for (size_t j = 0; j < nr; j++) {
					float v = acc[r][j];
					if (g->bias) v += g->bias[n0 + j];
					if (g->res) v += g->res[(i + r) * g->ldr + n0 + j];
					if (g->act == ACT_GELU) v = gelu(v);
					g->c[(i + r) * g->ldc + n0 + j] = v;
				}
		}
	}
}

static void attention_portable(const float *q, const float *k, const float *v, size_t ld, size_t L, size_t d,
			       float scale, float *out, size_t ldo, float *scratch) {
	float *s = scratch;
	for (size_t i = 0; i < L; i++) {
		float mx = -INFINITY;
		for (size_t j = 0; j < L; j++) {
			float dot = 0;
			for (size_t t = 0; t < d; t++) dot += q[i * ld + t] * k[j * ld + t];
			s[j] = dot * scale;
			if (s[j] > mx) mx = s[j];
		}
		float sum = 0;
		for (size_t j = 0; j < L; j++) sum += s[j] = expf(s[j] - mx);
		float inv = 1.0f / sum;
		for (size_t t = 0; t < d; t++) out[i * ldo + t] = 0;
		for (size_t j = 0; j < L; j++) {
			float p = s[j] * inv;
			for (size_t t = 0; t < d; t++) out[i * ldo + t] += p * v[j * ld + t];
		}
	}
}


void kernels_layernorm(const float *src, float *dst, size_t rows, size_t h, size_t ld, const float *gamma,
		       const float *beta, float eps) {
	for (size_t r = 0; r < rows; r++) {
		const float *row = src + r * ld;
		float *out = dst + r * ld;
		/* Two passes (mean, then centred variance): one-pass E[x²]-E[x]² loses digits in float. */
		float mean = 0, var = 0;
		for (size_t j = 0; j < h; j++) mean += row[j];
		mean /= (float)h;
		for (size_t j = 0; j < h; j++) var += (row[j] - mean) * (row[j] - mean);
		float inv = 1.0f / sqrtf(var / (float)h + eps);
		for (size_t j = 0; j < h; j++) out[j] = (row[j] - mean) * inv * gamma[j] + beta[j];
	}
}

const struct kernels kernels_portable = {
	.name = "portable",
	.gemm = gemm_portable,
	.attention = attention_portable,
	.layernorm = kernels_layernorm,
};

const struct kernels *kernels_select(enum kernels_level max) {
#if defined(__x86_64__)
	if (max >= KERNELS_AVX2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return &kernels_avx2;
#endif
	return &kernels_portable;
}
