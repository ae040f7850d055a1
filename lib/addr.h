/* addr.h: the one address syntax of the project: vsock:CID:PORT, tcp:HOST:PORT, unix:PATH.
 *
 *   vsock:3:8001   vsock::5000 (any CID, for listeners)   vsock:any:5000
 *   tcp:127.0.0.1:5000   tcp:[::1]:5000   tcp:kms.eu-west-1.amazonaws.com:443   tcp:*:5000 (any address)
 *   unix:/run/eml/nsm.sock   unix:@abstract-name
 *
 * Parsing is strict: no junk, ports in range (tcp 0-65535, vsock 0-4294967294), paths shorter than sun_path. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

enum addr_kind { ADDR_VSOCK = 1, ADDR_TCP, ADDR_UNIX };

#define ADDR_HOST_MAX 253 /* longest DNS name */
#define ADDR_STRING_MAX (6 + 2 + ADDR_HOST_MAX + 7 + 1)
#define ADDR_VSOCK_CID_ANY UINT32_MAX

struct eml_addr {
	enum addr_kind kind;
	uint32_t cid;                    /* vsock; ADDR_VSOCK_CID_ANY for any */
	uint32_t port;                   /* vsock or tcp */
	char host[ADDR_HOST_MAX + 1];    /* tcp: name or literal without brackets; "" for any */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* unix; leading '@' = abstract */
};

/* Parse s. Errors: -EINVAL junk or unknown scheme, -ERANGE port/CID out of range, -ENAMETOOLONG host/path. */
int addr_parse(const char *s, struct eml_addr *ret);
/* Canonical string form (IPv6 in brackets). buf must hold ADDR_STRING_MAX. */
int addr_format(const struct eml_addr *a, char *buf, size_t len);
/* Text for an error code of addr_parse. */
const char *addr_strerror(int r);

/* Fill a sockaddr for unix and vsock addresses, and for tcp addresses that are numeric literals (or "" = any
 * IPv6+IPv4 wildcard). Names need addr_resolve(). Returns -EADDRNOTAVAIL for a tcp name. */
int addr_to_sockaddr(const struct eml_addr *a, struct sockaddr_storage *ret, socklen_t *ret_len);

/* Resolve a tcp name (getaddrinfo, blocking) into up to max sockaddrs. Returns the count or -EHOSTUNREACH. */
int addr_resolve(const struct eml_addr *a, struct sockaddr_storage *ret, socklen_t *ret_lens, int max);

/* Format a peer sockaddr (from accept) as an address string. */
int addr_format_sockaddr(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen);
