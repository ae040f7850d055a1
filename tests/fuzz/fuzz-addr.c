/* Fuzz the address parser: any accepted address formats and re-parses to the same value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	char s[512];
	if (size >= sizeof s) return 0;
	memcpy(s, data, size);
	s[size] = 0;
	struct eml_addr a, b;
	if (addr_parse(s, &a) < 0) return 0;
	char buf[ADDR_STRING_MAX];
	if (addr_format(&a, buf, sizeof buf) < 0) abort();
	if (addr_parse(buf, &b) < 0) abort();
	if (memcmp(&a, &b, sizeof a) != 0) abort();
	struct sockaddr_storage ss;
	socklen_t len;
	(void)addr_to_sockaddr(&a, &ss, &len);
	return 0;
}
