/* nsm-random.c: NSM GetRandom with a hand decoder, over nsm-transport (see nsm-random.h). */
#include "nsm-random.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "nsm-transport.h"
#include "util.h"

const uint8_t nsm_random_request[10] = {0x69, 'G', 'e', 't', 'R', 'a', 'n', 'd', 'o', 'm'};

int nsm_random_parse(const uint8_t *resp, size_t resp_len, const uint8_t **ret_data, size_t *ret_len) {
	if (!resp || !ret_data || !ret_len) return -EINVAL;
	static const uint8_t error_prefix[] = {0xA1, 0x65, 'E', 'r', 'r', 'o', 'r'};
	if (resp_len >= sizeof error_prefix && memcmp(resp, error_prefix, sizeof error_prefix) == 0) return -EPROTO;
	/* {"GetRandom": {"random": ...}}: map(1), text(9), map(1), text(6). */
	static const uint8_t prefix[] = {0xA1, 0x69, 'G', 'e', 't', 'R', 'a', 'n', 'd', 'o', 'm',
					 0xA1, 0x66, 'r', 'a', 'n', 'd', 'o', 'm'};
	if (resp_len < sizeof prefix + 1 || memcmp(resp, prefix, sizeof prefix) != 0) return -EBADMSG;
	const uint8_t *p = resp + sizeof prefix, *end = resp + resp_len;
	uint8_t ib = *p++;
	size_t n;
	if (ib >= 0x40 && ib <= 0x57) {
		n = ib - 0x40u;
	} else if (ib == 0x58) {
		if (end - p < 1) return -EBADMSG;
		n = p[0];
		p += 1;
	} else if (ib == 0x59) {
		if (end - p < 2) return -EBADMSG;
		n = (size_t)p[0] << 8 | p[1];
		p += 2;
	} else {
		return -EBADMSG; /* longer or indefinite lengths cannot fit the device's response buffer */
	}
	if (n == 0 || (size_t)(end - p) != n) return -EBADMSG;
	*ret_data = p;
	*ret_len = n;
	return 0;
}

int nsm_random_fetch(const char *device, uint8_t *buf, size_t max) {
	if (!device || !buf || !max) return -EINVAL;
	_cleanup_nsm_transport_ NsmTransport *t = NULL;
	int r = nsm_transport_open(device, &t);
	if (r < 0) return r;
	uint8_t *resp = malloc(NSM_RESPONSE_MAX);
	if (!resp) return -ENOMEM;
	size_t len = 0;
	r = nsm_transport_call(t, nsm_random_request, sizeof nsm_random_request, resp, NSM_RESPONSE_MAX, &len);
	if (r == 0) {
		const uint8_t *data;
		size_t n;
		r = nsm_random_parse(resp, len, &data, &n);
		if (r == 0) {
			n = MIN(n, max);
			memcpy(buf, data, n);
			r = (int)n;
		}
	}
	free_secret(resp, NSM_RESPONSE_MAX);
	return r;
}
