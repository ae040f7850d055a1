/* addr.c: parse and format vsock:/tcp:/unix: addresses (see addr.h). */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/vm_sockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "util.h"

static int parse_port(const char *s, uint64_t max, uint32_t *ret) {
	uint64_t v;
	if (!*s) return -EINVAL;
	int r = parse_u64(s, max, &v);
	if (r < 0) return r;
	*ret = (uint32_t)v;
	return 0;
}

static bool host_chars_ok(const char *h) {
	for (const char *p = h; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '.' || c == '_'))
			return false;
	}
	return true;
}

static int parse_vsock(const char *s, struct eml_addr *a) {
	const char *colon = strchr(s, ':');
	if (!colon) return -EINVAL;
	size_t cid_len = (size_t)(colon - s);
	if (cid_len == 0 || (cid_len == 3 && strncmp(s, "any", 3) == 0))
		a->cid = ADDR_VSOCK_CID_ANY;
	else {
		char cid[16];
		if (cid_len >= sizeof cid) return -ERANGE;
		memcpy(cid, s, cid_len);
		cid[cid_len] = 0;
		uint32_t v;
		/* VMADDR_CID_ANY (2^32-1) is spelt "any" or left empty. */
		int r = parse_port(cid, UINT32_MAX - 1, &v);
		if (r < 0) return r;
		a->cid = v;
	}
	/* VMADDR_PORT_ANY (2^32-1) is not a port one can name. */
	return parse_port(colon + 1, UINT32_MAX - 1, &a->port);
}

static int parse_tcp(const char *s, struct eml_addr *a) {
	const char *port;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':') return -EINVAL;
		size_t n = (size_t)(end - s - 1);
		if (n == 0 || n >= INET6_ADDRSTRLEN) return -EINVAL;
		memcpy(a->host, s + 1, n);
		a->host[n] = 0;
		struct in6_addr in6;
		if (inet_pton(AF_INET6, a->host, &in6) != 1) return -EINVAL;
		port = end + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon) return -EINVAL;
		size_t n = (size_t)(colon - s);
		if (memchr(s, ':', n)) return -EINVAL; /* bare IPv6 must be bracketed */
		if (n > ADDR_HOST_MAX) return -ENAMETOOLONG;
		memcpy(a->host, s, n);
		a->host[n] = 0;
		if (strcmp(a->host, "*") == 0)
			a->host[0] = 0;
		else if (n == 0 || !host_chars_ok(a->host) || a->host[0] == '-' || a->host[0] == '.')
			return -EINVAL;
		port = colon + 1;
	}
	return parse_port(port, 65535, &a->port);
}

static int parse_unix(const char *s, struct eml_addr *a) {
	size_t n = strlen(s);
	if (n == 0 || (s[0] == '@' && n == 1)) return -EINVAL;
	if (n >= sizeof a->path) return -ENAMETOOLONG;
	memcpy(a->path, s, n + 1);
	return 0;
}

int addr_parse(const char *s, struct eml_addr *ret) {
	struct eml_addr a = {0};
	int r;
	if (!s) return -EINVAL;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p == 0x7f) return -EINVAL;
	if (strncmp(s, "vsock:", 6) == 0) {
		a.kind = ADDR_VSOCK;
		r = parse_vsock(s + 6, &a);
	} else if (strncmp(s, "tcp:", 4) == 0) {
		a.kind = ADDR_TCP;
		r = parse_tcp(s + 4, &a);
	} else if (strncmp(s, "unix:", 5) == 0) {
		a.kind = ADDR_UNIX;
		r = parse_unix(s + 5, &a);
	} else
		r = -EINVAL;
	if (r < 0) return r;
	*ret = a;
	return 0;
}

const char *addr_strerror(int r) {
	switch (r) {
	case -EINVAL: return "malformed address (expected vsock:CID:PORT, tcp:HOST:PORT or unix:PATH)";
	case -ERANGE: return "port or CID out of range";
	case -ENAMETOOLONG: return "host name or socket path too long";
	default: return strerror(-r);
	}
}

int addr_format(const struct eml_addr *a, char *buf, size_t len) {
	int n;
	switch (a->kind) {
	case ADDR_VSOCK:
		if (a->cid == ADDR_VSOCK_CID_ANY)
			n = snprintf(buf, len, "vsock::%u", a->port);
		else
			n = snprintf(buf, len, "vsock:%u:%u", a->cid, a->port);
		break;
	case ADDR_TCP:
		if (strchr(a->host, ':'))
			n = snprintf(buf, len, "tcp:[%s]:%u", a->host, a->port);
		else
			n = snprintf(buf, len, "tcp:%s:%u", a->host[0] ? a->host : "*", a->port);
		break;
	case ADDR_UNIX:
		n = snprintf(buf, len, "unix:%s", a->path);
		break;
	default:
		return -EINVAL;
	}
	if (n < 0 || (size_t)n >= len) return -ENOBUFS;
	return 0;
}

int addr_to_sockaddr(const struct eml_addr *a, struct sockaddr_storage *ret, socklen_t *ret_len) {
	memset(ret, 0, sizeof *ret);
	switch (a->kind) {
	case ADDR_VSOCK: {
		struct sockaddr_vm *vm = (struct sockaddr_vm *)ret;
		vm->svm_family = AF_VSOCK;
		vm->svm_cid = a->cid;
		vm->svm_port = a->port;
		*ret_len = sizeof *vm;
		return 0;
	}
	case ADDR_UNIX: {
		struct sockaddr_un *un = (struct sockaddr_un *)ret;
		un->sun_family = AF_UNIX;
		size_t n = strlen(a->path);
		memcpy(un->sun_path, a->path, n);
		if (a->path[0] == '@') {
			un->sun_path[0] = 0; /* abstract: length counts exactly the name */
			*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		} else
			*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		return 0;
	}
	case ADDR_TCP: {
		struct sockaddr_in *in4 = (struct sockaddr_in *)ret;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ret;
		if (a->host[0] == 0) {
			in6->sin6_family = AF_INET6;
			in6->sin6_addr = in6addr_any;
			in6->sin6_port = htons((uint16_t)a->port);
			*ret_len = sizeof *in6;
			return 0;
		}
		if (inet_pton(AF_INET, a->host, &in4->sin_addr) == 1) {
			in4->sin_family = AF_INET;
			in4->sin_port = htons((uint16_t)a->port);
			*ret_len = sizeof *in4;
			return 0;
		}
		if (inet_pton(AF_INET6, a->host, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)a->port);
			*ret_len = sizeof *in6;
			return 0;
		}
		return -EADDRNOTAVAIL;
	}
	}
	return -EINVAL;
}

int addr_resolve(const struct eml_addr *a, struct sockaddr_storage *ret, socklen_t *ret_lens, int max) {
	if (a->kind != ADDR_TCP) {
		if (max < 1) return -ENOBUFS;
		int r = addr_to_sockaddr(a, ret, ret_lens);
		return r < 0 ? r : 1;
	}
	if (addr_to_sockaddr(a, ret, ret_lens) == 0) return 1;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC, .ai_flags = AI_ADDRCONFIG};
	struct addrinfo *res = NULL;
	char port[8];
	snprintf(port, sizeof port, "%u", a->port);
	if (getaddrinfo(a->host, port, &hints, &res) != 0 || !res) return -EHOSTUNREACH;
	int n = 0;
	for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof *ret) continue;
		memset(&ret[n], 0, sizeof ret[n]);
		memcpy(&ret[n], ai->ai_addr, ai->ai_addrlen);
		ret_lens[n] = ai->ai_addrlen;
		n++;
	}
	freeaddrinfo(res);
	return n > 0 ? n : -EHOSTUNREACH;
}

int addr_format_sockaddr(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen) {
	struct eml_addr a = {0};
	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
		a.kind = ADDR_TCP;
		inet_ntop(AF_INET, &in4->sin_addr, a.host, sizeof a.host);
		a.port = ntohs(in4->sin_port);
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		a.kind = ADDR_TCP;
		inet_ntop(AF_INET6, &in6->sin6_addr, a.host, sizeof a.host);
		a.port = ntohs(in6->sin6_port);
		break;
	}
	case AF_VSOCK: {
		const struct sockaddr_vm *vm = (const struct sockaddr_vm *)sa;
		a.kind = ADDR_VSOCK;
		a.cid = vm->svm_cid;
		a.port = vm->svm_port;
		break;
	}
	case AF_UNIX: {
		const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
		a.kind = ADDR_UNIX;
		size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
		if (n == 0) {
			snprintf(buf, buflen, "unix:(unnamed)");
			return 0;
		}
		if (n >= sizeof a.path) n = sizeof a.path - 1;
		memcpy(a.path, un->sun_path, n);
		if (a.path[0] == 0) a.path[0] = '@';
		a.path[n] = 0;
		break;
	}
	default:
		return -EAFNOSUPPORT;
	}
	return addr_format(&a, buf, buflen);
}
