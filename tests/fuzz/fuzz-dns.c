/* Fuzz the DNS answer and hosts-file parsers of lib/resolve: no crash, never more than RESOLVE_MAX_ADDRS
 * addresses, and only IPv4/IPv6 addresses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "resolve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct resolve_result *r) {
	if (r->n > RESOLVE_MAX_ADDRS)
		abort();
	for (size_t i = 0; i < r->n; i++)
		if (r->addrs[i].ss_family != AF_INET && r->addrs[i].ss_family != AF_INET6)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct resolve_result r = {.ttl = RESOLVE_TTL_FOREVER};
	(void)resolve_parse_answer(data, size, &r);
	check(&r);
	struct resolve_result h = {0};
	(void)resolve_parse_hosts((const char *)data, size, "backend.test", AF_UNSPEC, &h);
	check(&h);
	return 0;
}
