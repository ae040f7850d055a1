/* cmd-tokenize.c: `eml tokenize --vocab FILE TEXT...`: one JSON array of token ids per text. */
#include <getopt.h>
#include <stdio.h>

#include "command.h"
#include "macro.h"
#include "tokenizer.h"
#include "util.h"

static int verb_tokenize(int argc, char **argv) {
	static const struct option opts[] = {
		{"vocab", required_argument, NULL, 'v'},
		{"max-tokens", required_argument, NULL, 'm'},
		{},
	};
	const char *vocab = NULL;
	uint64_t max = 512;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) switch (c) {
		case 'v':
			vocab = optarg;
			break;
		case 'm':
			if (parse_u64(optarg, 1u << 20, &max) < 0 || max < 2) return command_usage("tokenize");
			break;
		default:
			return command_usage("tokenize");
		}
	if (!vocab || optind >= argc) return command_usage("tokenize");
	struct tokenizer *t;
	char err[256];
	if (tokenizer_load(vocab, &t, err, sizeof err) < 0) {
		fprintf(stderr, "error: %s\n", err);
		return 1;
	}
	int rc = 0;
	for (int i = optind; i < argc; i++) {
		_cleanup_free_ int32_t *ids = NULL;
		size_t n;
		int r = tokenizer_encode(t, argv[i], strlen(argv[i]), max, &ids, &n);
		if (r < 0) {
			fprintf(stderr, "error: text %d: %s\n", i - optind + 1, strerror(-r));
			rc = 1;
			break;
		}
		putchar('[');
		for (size_t k = 0; k < n; k++) printf("%s%d", k ? "," : "", ids[k]);
		puts("]");
	}
	tokenizer_free(t);
	return rc;
}
EML_COMMAND(tokenize, "tokenize", "--vocab FILE [--max-tokens N] TEXT...",
	    "BERT uncased WordPiece token ids, one JSON array per text", verb_tokenize);
