/* main.c: the `eml` dispatcher. Finds registered subcommands (command.h), matches the longest word path, and
 * prints help for groups. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "bert.h"
#include "command.h"
#include "macro.h"

extern const struct eml_command *const __start_eml_commands[];
extern const struct eml_command *const __stop_eml_commands[];

#define FOREACH_COMMAND(c)                                                                             \
	for (const struct eml_command *const *_p = __start_eml_commands, *c;                           \
	     _p < __stop_eml_commands && ((c = *_p), 1); _p++)

/* Number of leading argv words that spell path exactly, or 0. */
static int path_matches(const char *path, int argc, char **argv) {
	int words = 0;
	const char *p = path;
	while (*p) {
		size_t n = strcspn(p, " ");
		if (words >= argc || strlen(argv[words]) != n || strncmp(argv[words], p, n) != 0) return 0;
		words++;
		p += n;
		while (*p == ' ') p++;
	}
	return words;
}

static bool has_prefix_words(const char *path, int argc, char **argv) {
	const char *p = path;
	for (int i = 0; i < argc; i++) {
		size_t n = strcspn(p, " ");
		if (n == 0 || strlen(argv[i]) != n || strncmp(argv[i], p, n) != 0) return false;
		p += n;
		while (*p == ' ') p++;
	}
	return true;
}

static int cmp_path(const void *a, const void *b) {
	return strcmp((*(const struct eml_command *const *)a)->path, (*(const struct eml_command *const *)b)->path);
}

/* Commands whose path starts with the given words, sorted by path. */
static void list_commands(FILE *f, int argc, char **argv) {
	size_t n = (size_t)(__stop_eml_commands - __start_eml_commands), k = 0;
	const struct eml_command **sorted = calloc(n ? n : 1, sizeof *sorted);
	if (!sorted) return;
	FOREACH_COMMAND(c) {
		if (has_prefix_words(c->path, argc, argv)) sorted[k++] = c;
	}
	qsort(sorted, k, sizeof *sorted, cmp_path);
	for (size_t i = 0; i < k; i++) fprintf(f, "  eml %-22s %s\n", sorted[i]->path, sorted[i]->summary);
	free(sorted);
}

int command_kernels(const char *set, unsigned *ret_flags) {
	if (bert_kernels_flags(set, ret_flags) == 0)
		return 0;
	fprintf(stderr, "error: --kernels takes avx2 or portable, not \"%s\"\n", set);
	return -EINVAL;
}

int command_usage(const char *path) {
	FOREACH_COMMAND(c) {
		if (strcmp(c->path, path) == 0) {
			fprintf(stderr, "usage: eml %s %s\n", c->path, c->usage);
			return 2;
		}
	}
	return 2;
}

static void help(FILE *f) {
	fprintf(f, "usage: eml COMMAND [ARGS...]\n\n"
		   "EphemeralML client and operator tool: attestation, embeddings, receipts, sealed models, images.\n"
		   "Run `eml COMMAND --help` for a command's options; man eml(1).\n\ncommands:\n");
	list_commands(f, 0, NULL);
}

int main(int argc, char **argv) {
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		help(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("eml " EML_VERSION "\n");
		return 0;
	}
	const struct eml_command *best = NULL;
	int best_words = 0;
	FOREACH_COMMAND(c) {
		int w = path_matches(c->path, argc - 1, argv + 1);
		if (w > best_words) {
			best = c;
			best_words = w;
		}
	}
	if (!best) {
		int words = 0;
		while (words < argc - 1 && argv[1 + words][0] != '-') words++;
		bool any = false;
		for (int w = words; w > 0 && !any; w--) {
			FOREACH_COMMAND(c) {
				if (has_prefix_words(c->path, w, argv + 1)) any = true;
			}
			if (any) {
				FILE *f = stderr;
				fprintf(f, "eml: '%s' needs a subcommand:\n", argv[1]);
				list_commands(f, w, argv + 1);
				return 2;
			}
		}
		fprintf(stderr, "eml: unknown command '%s' (try `eml --help`)\n", argv[1]);
		return 2;
	}
	/* The command sees argv[0] = its path and its own arguments after it. */
	int sub_argc = argc - best_words;
	char **sub_argv = argv + best_words;
	sub_argv[0] = (char *)best->path;
	for (int i = 1; i < sub_argc; i++) {
		if (strcmp(sub_argv[i], "--help") == 0 || strcmp(sub_argv[i], "-h") == 0) {
			printf("usage: eml %s %s\n  %s\nSee eml(1).\n", best->path, best->usage, best->summary);
			return 0;
		}
		if (strcmp(sub_argv[i], "--") == 0) break;
	}
	optind = 1; /* commands use getopt_long on their own argv */
	return best->run(sub_argc, sub_argv);
}
