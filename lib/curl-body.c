/* curl-body.c: bounded curl response sink (see curl-body.h). */
#include "curl-body.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

size_t curl_body_write(char *data, size_t size, size_t n, void *userdata) {
	struct curl_body *b = userdata;
	size_t add = size * n;
	if (add > b->max || b->len > b->max - add) {
		b->overflow = true;
		return 0;
	}
	/* Not realloc: the old block would be freed unwiped. */
	char *p = malloc(b->len + add + 1);
	if (!p)
		return 0;
	if (b->p)
		memcpy(p, b->p, b->len);
	memcpy(p + b->len, data, add);
	free_secret(b->p, b->len + 1);
	b->p = p;
	b->len += add;
	b->p[b->len] = 0;
	return add;
}

void curl_body_done(struct curl_body *b) {
	if (!b)
		return;
	free_secret(b->p, b->p ? b->len + 1 : 0);
	b->p = NULL;
	b->len = 0;
	b->overflow = false;
}
