/* nsm-transport.c: the two ways to reach an NSM (driver ioctl, simulator socket). */
#include <fcntl.h>
#include <linux/ioctl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "nsm-transport.h"
#include "util.h"

/* Layout of the driver's NSM_IOCTL_RAW argument (include/uapi/linux/nsm.h). */
struct nsm_iovec {
	uint64_t addr;
	uint64_t len;
};
struct nsm_raw {
	struct nsm_iovec request;
	struct nsm_iovec response;
};
#define NSM_MAGIC 0x0A
#define NSM_IOCTL_RAW _IOWR(NSM_MAGIC, 0x0, struct nsm_raw)

struct NsmTransport {
	int fd;
	int is_unix;
};

static int unix_connect(const char *path) {
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof sa.sun_path) return -EINVAL;
	memcpy(sa.sun_path, path, n);
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));
	if (path[0] == '@') sa.sun_path[0] = 0;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) return negerrno();
	if (connect(fd, (struct sockaddr *)&sa, salen) < 0) return negerrno();
	return TAKE_FD(fd);
}

int nsm_transport_open(const char *device, NsmTransport **ret) {
	if (!device || !*device || !ret) return -EINVAL;
	int fd, is_unix = 0;
	if (strncmp(device, "unix:", 5) == 0) {
		fd = unix_connect(device + 5);
		is_unix = 1;
	} else if (device[0] == '/') {
		fd = open(device, O_RDWR | O_CLOEXEC);
		if (fd < 0) fd = negerrno();
	} else
		return -EINVAL;
	if (fd < 0) return fd;
	NsmTransport *t = malloc(sizeof *t);
	if (!t) {
		close(fd);
		return -ENOMEM;
	}
	*t = (NsmTransport){.fd = fd, .is_unix = is_unix};
	*ret = t;
	return 0;
}

NsmTransport *nsm_transport_free(NsmTransport *t) {
	if (!t) return NULL;
	if (t->fd >= 0) close(t->fd);
	free(t);
	return NULL;
}

/* send() with MSG_NOSIGNAL: a peer that went away must be an error, not a SIGPIPE. */
static int send_all(int fd, const uint8_t *p, size_t len) {
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK) return write_all(fd, p, len);
		if (n < 0) {
			if (errno == EINTR) continue;
			return negerrno();
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int nsm_frame_write(int fd, const uint8_t *buf, size_t len) {
	if (len == 0 || len > UINT32_MAX) return -EMSGSIZE;
	uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
	int r = send_all(fd, hdr, sizeof hdr);
	if (r < 0) return r;
	return send_all(fd, buf, len);
}

int nsm_frame_read(int fd, uint8_t *buf, size_t max, size_t *ret_len) {
	uint8_t hdr[4];
	ssize_t n;
	/* Distinguish a peer that closed between messages (normal) from a truncated header. */
	do n = read(fd, hdr, 1);
	while (n < 0 && errno == EINTR);
	if (n < 0) return negerrno();
	if (n == 0) return -ENODATA;
	int r = read_all(fd, hdr + 1, 3);
	if (r < 0) return r;
	uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (len == 0) return -EBADMSG;
	if (len > max) return -EMSGSIZE;
	r = read_all(fd, buf, len);
	if (r < 0) return r;
	*ret_len = len;
	return 0;
}

int nsm_transport_call(NsmTransport *t, const uint8_t *req, size_t req_len, uint8_t *resp, size_t resp_max,
		       size_t *ret_len) {
	if (!t || !req || !resp || !ret_len) return -EINVAL;
	if (req_len == 0 || req_len > NSM_REQUEST_MAX) return -EMSGSIZE;
	if (resp_max < NSM_RESPONSE_MAX) return -ENOBUFS;
	if (t->is_unix) {
		int r = nsm_frame_write(t->fd, req, req_len);
		if (r < 0) return r;
		r = nsm_frame_read(t->fd, resp, NSM_RESPONSE_MAX, ret_len);
		return r == -ENODATA ? -ECONNRESET : r;
	}
	struct nsm_raw raw = {
		.request = {.addr = (uint64_t)(uintptr_t)req, .len = req_len},
		.response = {.addr = (uint64_t)(uintptr_t)resp, .len = NSM_RESPONSE_MAX},
	};
	if (ioctl(t->fd, NSM_IOCTL_RAW, &raw) < 0) return negerrno();
	/* The driver writes the real length back; never trust it beyond our buffer. */
	if (raw.response.len == 0 || raw.response.len > NSM_RESPONSE_MAX) return -EBADMSG;
	*ret_len = (size_t)raw.response.len;
	return 0;
}
