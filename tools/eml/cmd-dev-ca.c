/* cmd-dev-ca.c: `eml dev ca init DIR`: the development attestation CA used by eml-nsm-sim. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "command.h"
#include "devca.h"
#include "util.h"

static int verb_ca_init(int argc, char **argv) {
	static const struct option opts[] = {{"intermediates", required_argument, NULL, 'n'}, {}};
	uint64_t n = 3;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		switch (c) {
		case 'n':
			if (parse_u64(optarg, DEVCA_MAX_INTERMEDIATES, &n) < 0 || n == 0) {
				fprintf(stderr, "error: --intermediates must be 1..%d\n", DEVCA_MAX_INTERMEDIATES);
				return 2;
			}
			break;
		default:
			return command_usage(argv[0]);
		}
	}
	if (optind != argc - 1) return command_usage(argv[0]);
	const char *dir = argv[optind];
	int r = devca_init(dir, (unsigned)n, time(NULL));
	if (r == -EEXIST) {
		fprintf(stderr, "error: %s/root.pem exists; refusing to replace a CA\n", dir);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "error: creating the CA in %s: %s\n", dir, strerror(-r));
		return 1;
	}
	printf("%s/root.pem\n", dir);
	return 0;
}
EML_COMMAND(dev_ca_init, "dev ca init", "DIR [--intermediates N]",
	    "create a development attestation CA (P-384 root -> intermediates) for eml-nsm-sim", verb_ca_init);
