/* nsm-transport.h: moves one raw request/response pair to a Nitro Secure Module and back, either through the
 * Linux driver's ioctl on /dev/nsm or over the simulator's length-prefixed unix socket (u32 big-endian length,
 * then that many bytes, each way). It owns the file descriptor and the size limits, not the CBOR inside. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* The driver's limits (NSM_REQUEST_MAX_SIZE, NSM_RESPONSE_MAX_SIZE in linux/misc/nsm.c). */
#define NSM_REQUEST_MAX 4096u
#define NSM_RESPONSE_MAX 12288
#define NSM_DEVICE_DEFAULT "/dev/nsm"

typedef struct NsmTransport NsmTransport;

/* device: "/dev/nsm" (or any other character device path) or "unix:PATH" ("unix:@NAME" for the abstract
 * namespace). -EINVAL for a malformed string, else the open/connect errno. */
int nsm_transport_open(const char *device, NsmTransport **ret);
NsmTransport *nsm_transport_free(NsmTransport *t);
static inline void nsm_transport_freep(NsmTransport **t) { nsm_transport_free(*t); }
#define _cleanup_nsm_transport_ _cleanup_(nsm_transport_freep)

/* One exchange. req_len <= NSM_REQUEST_MAX (-EMSGSIZE otherwise); resp must hold NSM_RESPONSE_MAX bytes;
 * ret_len gets the real response length. -EBADMSG / -EMSGSIZE when the peer sends an empty / oversized frame. */
int nsm_transport_call(NsmTransport *t, const uint8_t *req, size_t req_len, uint8_t *resp, size_t resp_max,
		       size_t *ret_len);

/* The unix framing, shared with the simulator. read: -ENODATA on clean EOF before a header, -EBADMSG when the
 * announced length is 0, -EMSGSIZE when it is above max (the payload is left unread). */
int nsm_frame_read(int fd, uint8_t *buf, size_t max, size_t *ret_len);
int nsm_frame_write(int fd, const uint8_t *buf, size_t len);
