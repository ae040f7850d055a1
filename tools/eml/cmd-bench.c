/* cmd-bench.c: `eml bench --model DIR --shape BxT`: latency of one forward pass of B sequences of T tokens. */
#include <getopt.h>
#include <stdio.h>
#include <sys/resource.h>

#include "command.h"
#include "embedder.h"
#include "macro.h"
#include "util.h"

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* One line of standard input; -1 at its end. */
static int wait_for_line(void) {
	for (int ch; (ch = getchar()) != '\n';)
		if (ch == EOF) return -1;
	return 0;
}

static int verb_bench(int argc, char **argv) {
	static const struct option opts[] = {
		{"model", required_argument, NULL, 'm'},
		{"shape", required_argument, NULL, 's'},
		{"threads", required_argument, NULL, 't'},
		{"iterations", required_argument, NULL, 'n'},
		{"portable", no_argument, NULL, 'p'},
		{"kernels", required_argument, NULL, 'k'},
		{"lockstep", no_argument, NULL, 'l'},
		{},
	};
	const char *dir = NULL;
	uint64_t threads = 1, iters = 0;
	unsigned B = 0, T = 0, flags = 0;
	bool lockstep = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) switch (c) {
		case 'm':
			dir = optarg;
			break;
		case 's':
			if (sscanf(optarg, "%ux%u", &B, &T) != 2 || B == 0 || B > 4096 || T < 2 || T > 8192)
				return command_usage("bench");
			break;
		case 't':
			if (parse_u64(optarg, 256, &threads) < 0 || threads == 0) return command_usage("bench");
			break;
		case 'n':
			if (parse_u64(optarg, 1000000, &iters) < 0 || iters == 0) return command_usage("bench");
			break;
		case 'p':
			flags = BERT_LOAD_PORTABLE;
			break;
		case 'k':
			if (command_kernels(optarg, &flags) < 0) return 2;
			break;
		case 'l':
			lockstep = true;
			break;
		default:
			return command_usage("bench");
		}
	if (!dir || !B || optind != argc) return command_usage("bench");
	struct embedder *e;
	struct bert_ctx *ctx;
	char err[512] = "";
	int r = embedder_load_dir(dir, flags, &e, err, sizeof err);
	if (r < 0) {
		fprintf(stderr, "error: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	if (T > e->max_tokens || (r = embedder_ctx_new(e, (unsigned)threads, &ctx)) < 0) {
		fprintf(stderr, "error: %s\n", T > e->max_tokens ? "sequence longer than the model's positions"
								 : strerror(-r));
		embedder_free(e);
		return 1;
	}
	/* [CLS] w... [SEP] with ordinary word-piece ids spread over the vocabulary. */
	_cleanup_free_ int32_t *flat = malloc((size_t)B * T * sizeof *flat);
	_cleanup_free_ const int32_t **ids = malloc(B * sizeof *ids);
	_cleanup_free_ size_t *lens = malloc(B * sizeof *lens);
	_cleanup_free_ float *out = malloc((size_t)B * e->dim * sizeof(float));
	if (!flat || !ids || !lens || !out) return 1;
	unsigned vs = bert_model_config(e->bert)->vocab_size;
	for (unsigned s = 0; s < B; s++) {
		int32_t *p = flat + (size_t)s * T;
		for (unsigned t = 0; t < T; t++) p[t] = (int32_t)(vs > 3000 ? 1000 + (s * 131 + t * 7919) % (vs - 2000)
									  : (s + t) % vs);
		if (vs > 102) p[0] = 101, p[T - 1] = 102;
		ids[s] = p;
		lens[s] = T;
	}
	if (lockstep && iters == 0) iters = 1000000; /* until the end of input */
	else if (iters == 0) { /* about two seconds, at least 10 runs */
		uint64_t t0 = now_monotonic_usec();
		bert_encode(ctx, ids, lens, B, out);
		uint64_t dt = now_monotonic_usec() - t0 + 1;
		iters = MAX(10, MIN(1000, 2000000 / dt));
	}
	for (int w = 0; w < 3; w++) bert_encode(ctx, ids, lens, B, out);
	_cleanup_free_ double *ms = malloc(iters * sizeof *ms);
	if (!ms) return 1;
	if (lockstep) setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t i = 0;
	for (; i < iters; i++) {
		/* Lockstep: another engine runs its passes between ours, so that both see the same machine. */
		if (lockstep && wait_for_line() < 0) break;
		uint64_t t0 = now_monotonic_usec();
		if ((r = bert_encode(ctx, ids, lens, B, out)) < 0) {
			fprintf(stderr, "error: %s\n", strerror(-r));
			return 1;
		}
		ms[i] = (double)(now_monotonic_usec() - t0) / 1000.0;
		if (lockstep) printf("pass_ms=%.3f\n", ms[i]);
	}
	if (i == 0) {
		fprintf(stderr, "error: no passes\n");
		return 1;
	}
	iters = i;
	qsort(ms, iters, sizeof *ms, cmp_double);
	double med = ms[iters / 2], p90 = ms[MIN(iters - 1, iters * 9 / 10)];
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("shape=%ux%u threads=%u median_ms=%.3f p90_ms=%.3f sentences_per_s=%.1f peak_rss_mb=%.1f\n", B, T,
	       (unsigned)threads, med, p90, B / (med / 1000.0), ru.ru_maxrss / 1024.0);
	fprintf(stderr, "kernels=%s min_ms=%.3f iterations=%llu\n", bert_model_kernels(e->bert), ms[0],
		(unsigned long long)iters);
	bert_ctx_free(ctx);
	embedder_free(e);
	return 0;
}
EML_COMMAND(bench, "bench", "--model DIR --shape BxT [--threads N] [--iterations N] [--kernels SET] [--lockstep]",
	    "time the local encoder on B sequences of T tokens", verb_bench);
