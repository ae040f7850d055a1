/* fuzz-initconf: eml-init's configuration parser on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "initconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct init_conf c;
	char err[256];
	if (init_conf_parse((const char *)data, size, &c, err, sizeof err) == 0) {
		if (!c.argv || !c.argv[0] || c.argv[0][0] != '/' || c.argv[c.argc]) __builtin_trap();
		init_conf_done(&c);
	}
	return 0;
}
