/* resolve.h: turning a host name into addresses together with how long they may be used (the DNS TTL), for
 * daemons that must follow DNS changes (eml-vsock-proxy). getaddrinfo() hides the TTL, so names are asked
 * with res_nquery() and the answer is parsed here (strictly, with limits: it comes from the network). Numeric
 * literals never expire; names found in an optional hosts-style override file, or resolved by getaddrinfo()
 * when DNS gives no answer (e.g. /etc/hosts entries), live for the caller's default TTL.
 *
 * Blocking: call from a worker thread, not from an event loop. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RESOLVE_MAX_ADDRS 16
#define RESOLVE_TTL_FOREVER UINT32_MAX
#define RESOLVE_HOSTS_MAX_SIZE (64 * 1024)

struct resolve_result {
	struct sockaddr_storage addrs[RESOLVE_MAX_ADDRS]; /* port 0 */
	socklen_t lens[RESOLVE_MAX_ADDRS];
	size_t n;
	uint32_t ttl; /* seconds */
};

/* family: AF_UNSPEC, AF_INET or AF_INET6. hosts_file may be NULL. Returns 0 (n >= 1), -EHOSTUNREACH when
 * the name has no address, -EINVAL for a bad name, or the error of reading hosts_file. */
int resolve_name(const char *name, int family, const char *hosts_file, uint32_t default_ttl,
		 struct resolve_result *ret);

/* Parse a DNS response (RFC 1035) and add its A/AAAA answers of class IN to r (up to RESOLVE_MAX_ADDRS),
 * lowering r->ttl to the smallest TTL of the answer records. -EBADMSG when malformed or not a successful
 * response. */
int resolve_parse_answer(const uint8_t *msg, size_t len, struct resolve_result *r);

/* Parse hosts-file text ("ADDRESS NAME [NAME...]" lines, '#' comments) and add the addresses of name to r.
 * Returns the number added. */
int resolve_parse_hosts(const char *text, size_t len, const char *name, int family, struct resolve_result *r);

/* Whether two sockaddrs carry the same IP address (ports ignored). */
int resolve_same_ip(const struct sockaddr *a, const struct sockaddr *b);
