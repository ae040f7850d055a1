/* nsmrandom.c: NSM GetRandom over the ioctl, no CBOR library (see nsmrandom.h). */
#include "nsmrandom.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "macro.h"
#include "util.h"

const uint8_t nsm_get_random_request[10] = {0x69, 'G', 'e', 't', 'R', 'a', 'n', 'd', 'o', 'm'};

/* The driver's message: two {addr, len} buffers; it writes the response length back. */
struct nsm_iovec {
	uint64_t addr, len;
};
struct nsm_raw {
	struct nsm_iovec request, response;
};
#define NSM_IOCTL_RAW _IOWR(0x0A, 0, struct nsm_raw)

static bool expect(const uint8_t **p, const uint8_t *end, const void *want, size_t n) {
	if ((size_t)(end - *p) < n || memcmp(*p, want, n) != 0) return false;
	*p += n;
	return true;
}

int nsm_parse_get_random(const uint8_t *resp, size_t resp_len, const uint8_t **ret_data, size_t *ret_len) {
	if (!resp || !ret_data || !ret_len) return -EINVAL;
	const uint8_t *p = resp, *end = resp + resp_len;
	static const uint8_t error_prefix[] = {0xA1, 0x65, 'E', 'r', 'r', 'o', 'r'};
	if (resp_len >= sizeof error_prefix && memcmp(resp, error_prefix, sizeof error_prefix) == 0) return -EPROTO;
	static const uint8_t prefix[] = {0xA1, 0x69, 'G', 'e', 't', 'R', 'a', 'n', 'd', 'o', 'm',
					 0xA1, 0x66, 'r', 'a', 'n', 'd', 'o', 'm'};
	if (!expect(&p, end, prefix, sizeof prefix)) return -EBADMSG;
	if (p == end) return -EBADMSG;
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

int nsm_get_random(const char *path, uint8_t *buf, size_t max) {
	if (!path || !buf || !max) return -EINVAL;
	_cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) return negerrno();
	uint8_t *resp = calloc(1, NSM_RESPONSE_MAX);
	if (!resp) return -ENOMEM;
	struct nsm_raw msg = {
		.request = {(uint64_t)(uintptr_t)nsm_get_random_request, sizeof nsm_get_random_request},
		.response = {(uint64_t)(uintptr_t)resp, NSM_RESPONSE_MAX},
	};
	int r;
	if (ioctl(fd, NSM_IOCTL_RAW, &msg) < 0) {
		r = negerrno();
	} else if (msg.response.len > NSM_RESPONSE_MAX) {
		r = -EBADMSG;
	} else {
		const uint8_t *data;
		size_t n;
		r = nsm_parse_get_random(resp, (size_t)msg.response.len, &data, &n);
		if (r == 0) {
			n = MIN(n, max);
			memcpy(buf, data, n);
			r = (int)n;
		}
	}
	free_secret(resp, NSM_RESPONSE_MAX);
	return r;
}
