/* libFuzzer target: the SigV4 verifier on a hostile request. Input: lines "name:value" (headers, the first
 * line is the query string, the rest after an empty line is the body). */
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int lookup(void *ud, const char *akid, const char **ret_secret, const char **ret_token) {
	*ret_secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	*ret_token = NULL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size > 16384) return 0;
	char *buf = malloc(size + 1);
	if (!buf) return 0;
	memcpy(buf, data, size);
	buf[size] = 0;
	struct sigv4_header h[SIGV4_MAX_HEADERS];
	size_t n = 0;
	char *save = NULL, *body = strstr(buf, "\n\n");
	if (body) {
		*body = 0;
		body += 2;
	}
	char *query = strtok_r(buf, "\n", &save);
	for (char *line; n < SIGV4_MAX_HEADERS && (line = strtok_r(NULL, "\n", &save));) {
		char *colon = strchr(line, ':');
		if (!colon) continue;
		*colon = 0;
		h[n++] = (struct sigv4_header){line, colon + 1};
	}
	struct sigv4_request req = {"POST", "/", query, h, n, (const uint8_t *)body, body ? strlen(body) : 0};
	struct sigv4_verify_params p = {"us-east-1", "kms", 1440938160, 900, lookup, NULL};
	char *akid = NULL;
	if (sigv4_verify(&req, &p, &akid) == 0) free(akid);
	free(buf);
	return 0;
}
