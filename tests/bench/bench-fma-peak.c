/* bench-fma-peak: the machine's AVX2/FMA single-precision peak, measured (not from a data sheet): 12
 * independent vfmadd231ps chains per thread, enough to cover FMA latency x throughput on current x86 cores.
 * Prints GFLOP/s for 1 and 2 threads (best of several runs), the yardstick for the encoder's efficiency. */
#include <pthread.h>
#include <stdio.h>

#include "macro.h"
#include "util.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define ITERS 1000000ull

__attribute__((target("avx2,fma"))) static void *spin(void *arg) {
	__m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
	__m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3),
	       a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7),
	       a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
	for (unsigned long long n = 0; n < ITERS; n++) {
#define F(x) x = _mm256_fmadd_ps(x, m, c)
		F(a0); F(a1); F(a2); F(a3); F(a4); F(a5); F(a6); F(a7); F(a8); F(a9); F(a10); F(a11);
#undef F
	}
	__m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
				 _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
	s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
	float out[8];
	_mm256_storeu_ps(out, s);
	*(float *)arg = out[0];
	return NULL;
}

static double run(int threads) {
	pthread_t t[8];
	float sink[8];
	uint64_t t0 = now_monotonic_usec();
	for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, spin, &sink[i]);
	for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
	double s = (double)(now_monotonic_usec() - t0) / 1e6;
	return threads * ITERS * 12.0 * 8 * 2 / s / 1e9;
}

int main(void) {
	if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
		puts("fma-peak: no AVX2/FMA on this CPU");
		return 0;
	}
	for (int threads = 1; threads <= 2; threads++) {
		double best = 0;
		for (int r = 0; r < 200; r++) best = MAX(best, run(threads));
		printf("fma-peak threads=%d gflops=%.1f (best of 200 runs of 2 ms)\n", threads, best);
	}
	return 0;
}
#else
int main(void) {
	puts("fma-peak: x86-64 only");
	return 0;
}
#endif
