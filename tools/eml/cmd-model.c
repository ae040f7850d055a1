/* cmd-model.c: `eml model random`: a deterministic random-weight BERT model with Hugging Face tensor names
 * and shapes (what tests and benchmarks use, since real weights cannot be shipped). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>

#include "bert.h"
#include "command.h"
#include "macro.h"
#include "safetensors.h"
#include "util.h"

/* splitmix64: tiny, well-mixed, and reproducible everywhere. */
static uint64_t next(uint64_t *s) {
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double uniform(uint64_t *s) {
	return ((next(s) >> 11) + 0.5) * 0x1p-53; /* (0, 1) */
}

/* Each tensor's stream depends only on (seed, name), so adding or reordering tensors changes nothing else. */
static void fill(float *p, size_t n, uint64_t seed, const char *name, double mean, double std) {
	uint64_t s = seed;
	for (const char *c = name; *c; c++) s = (s ^ (uint8_t)*c) * 0x100000001b3ull;
	for (size_t i = 0; i < n; i += 2) { /* Box-Muller, both outputs */
		double u = uniform(&s), v = uniform(&s), r = sqrt(-2 * log(u));
		p[i] = (float)(mean + std * r * cos(2 * M_PI * v));
		if (i + 1 < n) p[i + 1] = (float)(mean + std * r * sin(2 * M_PI * v));
	}
}

struct spec {
	char name[96];
	size_t d0, d1;
};

static int verb_random(int argc, char **argv) {
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"seed", required_argument, NULL, 's'},
		{"output", required_argument, NULL, 'o'},
		{},
	};
	const char *config = NULL, *out = NULL;
	uint64_t seed = 0;
	int c;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) >= 0) switch (c) {
		case 'c':
			config = optarg;
			break;
		case 's':
			if (parse_u64(optarg, UINT64_MAX, &seed) < 0) return command_usage("model random");
			break;
		case 'o':
			out = optarg;
			break;
		default:
			return command_usage("model random");
		}
	if (!config || !out || optind != argc) return command_usage("model random");
	_cleanup_free_ uint8_t *js = NULL;
	size_t jl;
	char err[256];
	struct bert_config cfg;
	int r = read_file(config, 1u << 20, &js, &jl);
	if (r < 0) {
		fprintf(stderr, "error: %s: %s\n", config, strerror(-r));
		return 1;
	}
	if (bert_config_parse((const char *)js, jl, &cfg, err, sizeof err) < 0) {
		fprintf(stderr, "error: %s\n", err);
		return 1;
	}
	size_t H = cfg.hidden, I = cfg.intermediate;
	size_t n = 5 + 16 * cfg.layers + 2, k = 0;
	_cleanup_free_ struct spec *sp = calloc(n, sizeof *sp);
	if (!sp) return 1;
#define ADD(d0_, d1_, ...) (snprintf(sp[k].name, sizeof sp[k].name, __VA_ARGS__), sp[k].d0 = (d0_), sp[k++].d1 = (d1_))
	ADD(cfg.vocab_size, H, "embeddings.word_embeddings.weight");
	ADD(cfg.max_positions, H, "embeddings.position_embeddings.weight");
	ADD(cfg.type_vocab, H, "embeddings.token_type_embeddings.weight");
	ADD(H, 0, "embeddings.LayerNorm.weight");
	ADD(H, 0, "embeddings.LayerNorm.bias");
	for (unsigned l = 0; l < cfg.layers; l++) {
		static const char *const sq[] = {"attention.self.query", "attention.self.key", "attention.self.value",
						 "attention.output.dense"};
		for (int i = 0; i < 4; i++) {
			ADD(H, H, "encoder.layer.%u.%s.weight", l, sq[i]);
			ADD(H, 0, "encoder.layer.%u.%s.bias", l, sq[i]);
		}
		ADD(I, H, "encoder.layer.%u.intermediate.dense.weight", l);
		ADD(I, 0, "encoder.layer.%u.intermediate.dense.bias", l);
		ADD(H, I, "encoder.layer.%u.output.dense.weight", l);
		ADD(H, 0, "encoder.layer.%u.output.dense.bias", l);
		ADD(H, 0, "encoder.layer.%u.attention.output.LayerNorm.weight", l);
		ADD(H, 0, "encoder.layer.%u.attention.output.LayerNorm.bias", l);
		ADD(H, 0, "encoder.layer.%u.output.LayerNorm.weight", l);
		ADD(H, 0, "encoder.layer.%u.output.LayerNorm.bias", l);
	}
	ADD(H, H, "pooler.dense.weight");
	ADD(H, 0, "pooler.dense.bias");
#undef ADD
	/* The writer keeps our order: position_ids (I64) first, then names sorted, as the published file. */
	qsort(sp, k, sizeof *sp, (int (*)(const void *, const void *))strcmp);
	_cleanup_free_ struct safetensors_out *o = calloc(k + 1, sizeof *o);
	_cleanup_free_ int64_t *pos = malloc(cfg.max_positions * sizeof *pos);
	float **bufs = calloc(k, sizeof *bufs);
	if (!o || !pos || !bufs) return 1;
	for (unsigned i = 0; i < cfg.max_positions; i++) pos[i] = i;
	o[0] = (struct safetensors_out){"embeddings.position_ids", ST_I64, 2, {1, cfg.max_positions}, pos};
	int rc = 0;
	for (size_t i = 0; i < k; i++) {
		size_t cnt = sp[i].d1 ? sp[i].d0 * sp[i].d1 : sp[i].d0;
		bufs[i] = malloc(cnt * sizeof(float));
		if (!bufs[i]) {
			rc = 1;
			break;
		}
		/* Scales chosen so attention is far from uniform and every layer matters (std 0.05 on 384 inputs
		 * gives unit-scale query/key products); LayerNorm gains near 1. */
		const char *nm = sp[i].name;
		size_t L = strlen(nm);
		bool ln = strstr(nm, "LayerNorm") != NULL, bias = L > 5 && strcmp(nm + L - 5, ".bias") == 0;
		if (ln && !bias)
			fill(bufs[i], cnt, seed, nm, 1.0, 0.1);
		else if (bias)
			fill(bufs[i], cnt, seed, nm, 0.0, 0.05);
		else if (strncmp(nm, "embeddings.", 11) == 0)
			fill(bufs[i], cnt, seed, nm, 0.0, 0.5);
		else
			fill(bufs[i], cnt, seed, nm, 0.0, 0.05);
		o[i + 1] = (struct safetensors_out){.name = nm, .dtype = ST_F32, .ndim = sp[i].d1 ? 2 : 1,
						    .shape = {sp[i].d0, sp[i].d1}, .data = bufs[i]};
	}
	if (rc == 0 && (r = safetensors_write(out, o, k + 1)) < 0) {
		fprintf(stderr, "error: %s: %s\n", out, strerror(-r));
		rc = 1;
	}
	for (size_t i = 0; i < k; i++) free(bufs[i]);
	free(bufs);
	return rc;
}
EML_COMMAND(model_random, "model random", "--config config.json --seed N -o model.safetensors",
	    "write deterministic random BERT weights (Hugging Face names and shapes)", verb_random);
