/* cmd-version.c: `eml version`. */
#include <stdio.h>

#include "command.h"

static int verb_version(int argc, char **argv) {
	printf("eml %s\n", EML_VERSION);
	return 0;
}
EML_COMMAND(version, "version", "", "print the version", verb_version);
