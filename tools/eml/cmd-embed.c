/* cmd-embed.c: `eml embed --model DIR TEXT...`: local inference (no enclave), JSON {dim, embeddings}. */
#include <getopt.h>
#include <stdio.h>

#include "command.h"
#include "embedder.h"
#include "macro.h"
#include "remote.h"
#include "util.h"

static int verb_embed(int argc, char **argv) {
	static const struct option opts[] = {
		{"model", required_argument, NULL, 'm'},
		{"batch", required_argument, NULL, 'b'},
		{"threads", required_argument, NULL, 't'},
		{"portable", no_argument, NULL, 'p'},
		{"kernels", required_argument, NULL, 'k'},
		{"endpoint", required_argument, NULL, 'e'},
		{"policy", required_argument, NULL, 'P'},
		{},
	};
	/* Remote embedding through an attested session has its own options: cmd-remote.c parses them. */
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--endpoint") == 0 || strncmp(argv[i], "--endpoint=", 11) == 0)
			return embed_remote(argc, argv);
	const char *dir = NULL;
	uint64_t batch = 32, threads = 1;
	unsigned flags = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) switch (c) {
		case 'm':
			dir = optarg;
			break;
		case 'b':
			if (parse_u64(optarg, 4096, &batch) < 0 || batch == 0) return command_usage("embed");
			break;
		case 't':
			if (parse_u64(optarg, 256, &threads) < 0 || threads == 0) return command_usage("embed");
			break;
		case 'p':
			flags = BERT_LOAD_PORTABLE;
			break;
		case 'k':
			if (command_kernels(optarg, &flags) < 0) return 2;
			break;
		case 'e':
		case 'P':
			fprintf(stderr, "error: --policy goes with --endpoint\n");
			return 2;
		default:
			return command_usage("embed");
		}
	if (!dir || optind >= argc) return command_usage("embed");
	struct embedder *e;
	struct bert_ctx *ctx;
	char err[512] = "";
	int r = embedder_load_dir(dir, flags, &e, err, sizeof err);
	if (r < 0) {
		fprintf(stderr, "error: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	if ((r = embedder_ctx_new(e, (unsigned)threads, &ctx)) < 0) {
		fprintf(stderr, "error: %s\n", strerror(-r));
		embedder_free(e);
		return 1;
	}
	size_t n = (size_t)(argc - optind);
	_cleanup_free_ float *out = malloc(MIN(n, batch) * e->dim * sizeof(float));
	int rc = 0;
	if (!out) rc = 1;
	printf("{\"dim\":%u,\"embeddings\":[", e->dim);
	for (size_t i = 0; rc == 0 && i < n; i += batch) {
		size_t m = MIN(batch, n - i);
		r = embedder_embed(e, ctx, (const char *const *)argv + optind + i, m, out, NULL);
		if (r < 0) {
			fprintf(stderr, "error: %s\n", strerror(-r));
			rc = 1;
			break;
		}
		for (size_t s = 0; s < m; s++) {
			printf("%s[", i + s ? "," : "");
			for (unsigned h = 0; h < e->dim; h++) printf("%s%.9g", h ? "," : "", out[s * e->dim + h]);
			putchar(']');
		}
	}
	puts("]}");
	bert_ctx_free(ctx);
	embedder_free(e);
	return rc;
}
EML_COMMAND(embed, "embed", "--model DIR [--batch N] [--threads N] [--kernels SET] TEXT...",
	    "sentence embeddings computed locally: JSON {dim, embeddings}", verb_embed);
