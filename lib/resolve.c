/* resolve.c: host names to addresses with their TTL; see resolve.h. */
#include "resolve.h"
/* macro.h before <resolv.h>: its <sys/param.h> also defines MIN/MAX, silently as a system header. */
#include "macro.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <strings.h>

#include "macro.h"
#include "util.h"

#define DNS_TYPE_A 1
#define DNS_TYPE_AAAA 28
#define DNS_CLASS_IN 1

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static int add_addr(struct resolve_result *r, int family, const void *ip) {
	if (r->n >= RESOLVE_MAX_ADDRS)
		return 0;
	for (size_t i = 0; i < r->n; i++) { /* no duplicates */
		const struct sockaddr *s = (const struct sockaddr *)&r->addrs[i];
		if (s->sa_family == family &&
		    memcmp(family == AF_INET ? (const void *)&((const struct sockaddr_in *)s)->sin_addr
					     : (const void *)&((const struct sockaddr_in6 *)s)->sin6_addr,
			   ip, family == AF_INET ? 4 : 16) == 0)
			return 0;
	}
	struct sockaddr_storage *ss = &r->addrs[r->n];
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, ip, 4);
		r->lens[r->n] = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, ip, 16);
		r->lens[r->n] = sizeof(*s6);
	}
	r->n++;
	return 1;
}

/* Skip a (possibly compressed) domain name at *off. */
static int skip_name(const uint8_t *m, size_t len, size_t *off) {
	for (unsigned labels = 0; labels < 128; labels++) {
		if (*off >= len)
			return -EBADMSG;
		uint8_t l = m[*off];
		if ((l & 0xc0) == 0xc0) { /* a pointer ends the name */
			if (*off + 2 > len)
				return -EBADMSG;
			*off += 2;
			return 0;
		}
		if (l & 0xc0)
			return -EBADMSG; /* reserved label types */
		*off += 1 + (size_t)l;
		if (l == 0)
			return 0;
	}
	return -EBADMSG;
}

int resolve_parse_answer(const uint8_t *m, size_t len, struct resolve_result *r) {
	if (len < 12 || len > 65535)
		return -EBADMSG;
	uint16_t flags = rd16(m + 2), qd = rd16(m + 4), an = rd16(m + 6);
	if (!(flags & 0x8000) || (flags & 0x000f) != 0) /* must be a response, RCODE NOERROR */
		return -EBADMSG;
	size_t off = 12;
	for (unsigned i = 0; i < qd; i++) {
		if (skip_name(m, len, &off) < 0 || off + 4 > len)
			return -EBADMSG;
		off += 4;
	}
	for (unsigned i = 0; i < an; i++) {
		if (skip_name(m, len, &off) < 0 || off + 10 > len)
			return -EBADMSG;
		uint16_t type = rd16(m + off), class = rd16(m + off + 2), rdlen = rd16(m + off + 8);
		uint32_t ttl = rd32(m + off + 4);
		off += 10;
		if (off + rdlen > len)
			return -EBADMSG;
		if (ttl > 0x7fffffff) /* RFC 2181 8: treat as zero */
			ttl = 0;
		if (class == DNS_CLASS_IN && ((type == DNS_TYPE_A && rdlen == 4) || (type == DNS_TYPE_AAAA && rdlen == 16))) {
			add_addr(r, type == DNS_TYPE_A ? AF_INET : AF_INET6, m + off);
			r->ttl = MIN(r->ttl, ttl);
		} else if (class == DNS_CLASS_IN && type == 5 /* CNAME */)
			r->ttl = MIN(r->ttl, ttl);
		off += rdlen;
	}
	return 0;
}

int resolve_parse_hosts(const char *text, size_t len, const char *name, int family, struct resolve_result *r) {
	int added = 0;
	size_t pos = 0;
	while (pos < len) {
		size_t end = pos;
		while (end < len && text[end] != '\n')
			end++;
		char line[512];
		size_t ll = MIN(end - pos, sizeof(line) - 1);
		memcpy(line, text + pos, ll);
		line[ll] = 0;
		pos = end + 1;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char *save = NULL, *ip = strtok_r(line, " \t\r", &save);
		if (!ip)
			continue;
		uint8_t bin[16];
		int fam = inet_pton(AF_INET, ip, bin) == 1 ? AF_INET : inet_pton(AF_INET6, ip, bin) == 1 ? AF_INET6 : 0;
		if (!fam || (family != AF_UNSPEC && family != fam))
			continue;
		for (char *n = strtok_r(NULL, " \t\r", &save); n; n = strtok_r(NULL, " \t\r", &save))
			if (strcasecmp(n, name) == 0) {
				added += add_addr(r, fam, bin);
				break;
			}
	}
	return added;
}

int resolve_same_ip(const struct sockaddr *a, const struct sockaddr *b) {
	if (a->sa_family != b->sa_family)
		return 0;
	if (a->sa_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr, &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
	if (a->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
			      16) == 0;
	return 0;
}

static void query(struct __res_state *st, const char *name, int type, struct resolve_result *r) {
	uint8_t buf[4096];
	int n = res_nquery(st, name, DNS_CLASS_IN, type, buf, sizeof(buf));
	if (n > 0)
		(void)resolve_parse_answer(buf, (size_t)MIN((size_t)n, sizeof(buf)), r);
}

int resolve_name(const char *name, int family, const char *hosts_file, uint32_t default_ttl,
		 struct resolve_result *ret) {
	struct resolve_result r = {.ttl = RESOLVE_TTL_FOREVER};
	uint8_t bin[16];

	if (!name || !*name || strlen(name) > 253)
		return -EINVAL;
	if ((family != AF_INET6 && inet_pton(AF_INET, name, bin) == 1 && add_addr(&r, AF_INET, bin)) ||
	    (family != AF_INET && inet_pton(AF_INET6, name, bin) == 1 && add_addr(&r, AF_INET6, bin))) {
		*ret = r;
		return 0;
	}
	if (hosts_file) {
		_cleanup_free_ uint8_t *text = NULL;
		size_t len;
		int k = read_file(hosts_file, RESOLVE_HOSTS_MAX_SIZE, &text, &len);
		if (k < 0)
			return k;
		if (resolve_parse_hosts((const char *)text, len, name, family, &r) > 0) {
			r.ttl = default_ttl;
			*ret = r;
			return 0;
		}
	}
	struct __res_state st;
	memset(&st, 0, sizeof(st));
	if (res_ninit(&st) == 0) {
		if (family != AF_INET6)
			query(&st, name, DNS_TYPE_A, &r);
		if (family != AF_INET)
			query(&st, name, DNS_TYPE_AAAA, &r);
		res_nclose(&st);
	}
	if (r.n == 0) { /* /etc/hosts, NSS modules: no TTL known */
		struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM}, *ai = NULL;
		if (getaddrinfo(name, NULL, &hints, &ai) != 0)
			return -EHOSTUNREACH;
		for (struct addrinfo *p = ai; p; p = p->ai_next) {
			if (p->ai_family == AF_INET)
				add_addr(&r, AF_INET, &((struct sockaddr_in *)p->ai_addr)->sin_addr);
			else if (p->ai_family == AF_INET6)
				add_addr(&r, AF_INET6, &((struct sockaddr_in6 *)p->ai_addr)->sin6_addr);
		}
		freeaddrinfo(ai);
		r.ttl = default_ttl;
	}
	if (r.n == 0)
		return -EHOSTUNREACH;
	*ret = r;
	return 0;
}
