/* libFuzzer target: the relay's admission check and the response/error decoders on arbitrary payloads. */
#include <stdlib.h>

#include "kmsproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	const char *target, *why;
	char *body = NULL, *key_id = NULL, *a = NULL, *b = NULL;
	int status;
	if (kmsproto_request_decode(data, size, &target, &body, &key_id, &why) == 0) {
		free(body);
		free(key_id);
	}
	if (kmsproto_response_decode(data, size, &status, &body) == 0) free(body);
	if (kmsproto_error_decode(data, size, &a, &b) == 0) {
		free(a);
		free(b);
	}
	return 0;
}
