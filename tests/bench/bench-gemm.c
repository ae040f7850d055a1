/* bench-gemm: GFLOP/s of the encoder's matrix product (kernels.h) on MiniLM's shapes, one thread, AVX2/FMA
 * and portable kernels; compare with bench-fma-peak's figure from the same run. */
#include <stdio.h>

#include "kernels.h"
#include "macro.h"
#include "util.h"

static double bench(const struct kernels *k, size_t nr, size_t m, size_t n, size_t kk, int act) {
	float *a = malloc(m * kk * sizeof(float)), *w = malloc(n * kk * sizeof(float)),
	      *c = malloc(m * n * sizeof(float)), *bias = calloc(n, sizeof(float));
	float *packed = aligned_alloc(64, kernels_packed_size(n, kk, nr));
	for (size_t i = 0; i < m * kk; i++) a[i] = (float)(i % 7) * 0.1f;
	for (size_t i = 0; i < n * kk; i++) w[i] = (float)(i % 5) * 0.01f;
	kernels_pack(w, n, kk, nr, NULL, packed);
	struct gemm_args g = {.a = a, .lda = kk, .packed = packed, .nr = nr, .bias = bias, .c = c, .ldc = n, .m = m,
			      .n = n, .k = kk, .act = act};
	size_t panels = kernels_panels(n, nr);
	double best = 1e30;
	for (int r = 0; r < 30; r++) {
		uint64_t t0 = now_monotonic_usec();
		k->gemm(&g, 0, m, 0, panels);
		best = MIN(best, (double)(now_monotonic_usec() - t0 + 1));
	}
	free(a), free(w), free(c), free(bias), free(packed);
	return 2.0 * m * n * kk / best / 1e3;
}

int main(void) {
	static const size_t shapes[][3] = {{128, 1152, 384}, {128, 384, 384}, {128, 1536, 384}, {128, 384, 1536},
					   {16, 1536, 384}, {1024, 1536, 384}};
	static const size_t widths[] = {KERNEL_NR, KERNEL_NR_WIDE};
	for (int level = KERNELS_AVX2; level >= KERNELS_PORTABLE; level--) {
		const struct kernels *k = kernels_select(level);
		if (level > KERNELS_PORTABLE && k == kernels_select(level - 1)) continue; /* not on this CPU */
		for (size_t x = 0; x < ARRAY_SIZE(widths); x++) {
			size_t nr = widths[x];
			for (size_t i = 0; i < ARRAY_SIZE(shapes); i++) {
				const size_t *sh = shapes[i];
				printf("gemm kernels=%s nr=%zu m=%zu n=%zu k=%zu gflops=%.1f (best of 30, 1 thread)\n",
				       k->name, nr, sh[0], sh[1], sh[2], bench(k, nr, sh[0], sh[1], sh[2], ACT_NONE));
			}
			printf("gemm kernels=%s nr=%zu m=128 n=1536 k=384 +gelu gflops=%.1f\n", k->name, nr,
			       bench(k, nr, 128, 1536, 384, ACT_GELU));
		}
	}
	return 0;
}
