/* allowlist.h: the allow-list file of eml-vsock-proxy, in the YAML format of AWS's vsock-proxy:
 *
 *   allowlist:
 *   - {address: kms.eu-west-1.amazonaws.com, port: 443}
 *   - address: 10.0.0.7
 *     port: 8443
 *
 * Parsing is strict (libyaml events): one mapping whose only key is "allowlist", a sequence of mappings with
 * exactly "address" (host name or IP literal) and "port" (1-65535). Errors name the line. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define ALLOWLIST_MAX_SIZE (64 * 1024)
#define ALLOWLIST_MAX_ENTRIES 256
#define ALLOWLIST_HOST_MAX 253

struct allowlist_entry {
	char address[ALLOWLIST_HOST_MAX + 1];
	uint16_t port;
};

struct allowlist {
	struct allowlist_entry *entries;
	size_t n;
};

/* -EINVAL with a message in err (always NUL-terminated) on any problem. */
int allowlist_parse(const char *text, size_t len, struct allowlist *ret, char *err, size_t errlen);
/* Read path (at most ALLOWLIST_MAX_SIZE) and parse it. */
int allowlist_load(const char *path, struct allowlist *ret, char *err, size_t errlen);
/* Frees the entries; NULL ok. */
void allowlist_free(struct allowlist *a);
