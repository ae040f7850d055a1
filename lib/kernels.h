/* kernels.h: the encoder's compute kernels, in a portable C version and an AVX2/FMA version chosen at run time
 * (kernels_select()). Owns the packed weight layout for matrix products: a weight W[N][K] (PyTorch Linear,
 * y = x Wᵀ + b) is stored as ceil(N/nr) panels of K rows of nr floats, zero-padded, so the inner loop streams
 * one contiguous panel while a few rows of activations stay in registers. Two panel widths: 16 (6 x 16
 * register tiles) and 24 (4 x 24 tiles, see KERNEL_NR_WIDE). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define KERNEL_NR 16  /* columns per packed panel */
#define KERNEL_MR 6   /* activation rows per register tile */
/* The wide panel, used for every weight: 4 x 24 tiles do the same 12 FMAs per k step as 6 x 16 with 7 loads
 * instead of 8 (3 panel vectors and 4 broadcasts). Equal when the core is alone (94-98 GFLOP/s hot), but on
 * a shared host, in the phases where products run 15-30% below their best while a register-only FMA loop
 * does not slow down, 4 x 24 kept 0.83-0.86 of its best against 0.75-0.78 for 6 x 16 (20-ms windows on both
 * vCPUs alternating, 60 s, about 40% of them slow). Whole passes, both layouts alternating in one process,
 * 2 threads: 2-6% faster in the quiet rounds and 5-11% in the slow ones, at every shape from 1x16 to 32x32. */
#define KERNEL_NR_WIDE 24
#define KERNEL_MR_WIDE 4
/* Longest K block. 512 rather than 256 (one panel block of 16 KiB, sized for L1): panel blocks stream
 * well from L2 with the prefetch, and fewer blocks mean fewer tile calls and fewer loads and stores of the
 * accumulators between blocks; a pass with 512 ran 2-6% faster at every shape (1 and 2 threads, two
 * configurations alternating pass by pass in one process, on a Zen 3 with a 32 KiB L1). */
#define KERNEL_KC 512
#define KERNEL_MC 96  /* row block: 96 x KC activations (up to 192 KiB) stay in L2 */

enum { ACT_NONE, ACT_GELU };

struct gemm_args {
	const float *a;      /* M x K, row stride lda */
	size_t lda;
	const float *packed; /* kernels_pack() layout */
	size_t nr;           /* its panel width: KERNEL_NR or KERNEL_NR_WIDE */
	const float *bias;   /* N, or NULL */
	const float *res;    /* M x N residual added after the bias, or NULL */
	size_t ldr;
	float *c;            /* M x N output, row stride ldc */
	size_t ldc;
	size_t m, n, k;
	int act;             /* applied last: c = act(a wᵀ + bias + res) */
};

struct kernels {
	const char *name;
	/* Rows [m0, m1) by panels [p0, p1) of the product: one task's share. */
	void (*gemm)(const struct gemm_args *g, size_t m0, size_t m1, size_t p0, size_t p1);
	/* One attention head of one sequence: out[i] = softmax(scale * q_i · K) V for L rows, head width d.
	 * q, k, v rows have stride ld; out stride ldo; scratch holds kernels_attention_scratch(L, d) floats
	 * and is 64-byte aligned. */
	void (*attention)(const float *q, const float *k, const float *v, size_t ld, size_t L, size_t d,
			  float scale, float *out, size_t ldo, float *scratch);
	/* Row-wise LayerNorm of src (rows x h, stride ld) into dst (same shape; may be src). */
	void (*layernorm)(const float *src, float *dst, size_t rows, size_t h, size_t ld, const float *gamma,
			  const float *beta, float eps);
};

/* Panels of width nr that hold n columns (the last one zero-padded). */
static inline size_t kernels_panels(size_t n, size_t nr) {
	return (n + nr - 1) / nr;
}

/* Length of the K blocks for a product with k rows: equal blocks of at most KERNEL_KC (600 is 300 + 300, not
 * 512 + 88), so no short last block has its tiles reload and store their outputs for a fraction of the
 * work. */
static inline size_t kernels_kc(size_t k) {
	size_t blocks = (k + KERNEL_KC - 1) / KERNEL_KC;
	return (k + blocks - 1) / blocks;
}

/* Floats of attention scratch for L tokens and head width d: key and value panels, the L x L scores, the
 * row sums; a multiple of 16, so per-thread slices stay 64-byte aligned. */
static inline size_t kernels_attention_scratch(size_t L, size_t d) {
	size_t Ln = kernels_panels(L, KERNEL_NR) * KERNEL_NR, dn = kernels_panels(d, KERNEL_NR) * KERNEL_NR;
	return d * Ln + L * dn + L * Ln + Ln;
}

/* Prefetch distance, in k steps (cache lines of a panel), for a panel no earlier tile has prefetched. */
#define KERNEL_PF_AHEAD 16

/* Kernel sets, slowest first. (AVX-512 sets were measured and dropped: on Zen 4, which runs 512-bit FMAs as
 * two 256-bit halves, 12 x 32 tiles were no faster at small shapes and 10% slower at 32x32; 8- to 24-row
 * tiles of one 16-wide panel with broadcasts folded into the FMAs ran 12-35% slower at 1024 rows and only
 * won at 16-32 rows with cold weights, where the AVX2 set already leads.) */
enum kernels_level { KERNELS_PORTABLE, KERNELS_AVX2 };

/* The fastest set this CPU runs, up to max. */
const struct kernels *kernels_select(enum kernels_level max);

/* Bytes of a packed N x K weight in panels of nr (KERNEL_NR or KERNEL_NR_WIDE); pack W (N x K, row-major)
 * into dst, column j of the product from row order[j] of W (row j when order is NULL). */
size_t kernels_packed_size(size_t n, size_t k, size_t nr);
void kernels_pack(const float *w, size_t n, size_t k, size_t nr, const size_t *order, float *dst);

/* The portable LayerNorm (also kernels_portable.layernorm). */
void kernels_layernorm(const float *src, float *dst, size_t rows, size_t h, size_t ld, const float *gamma,
		       const float *beta, float eps);

/* Implementations (kernels.c, kernels-avx2.c). */
extern const struct kernels kernels_portable;
extern const struct kernels kernels_avx2;
