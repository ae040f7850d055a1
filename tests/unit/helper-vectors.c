/* helper-vectors.c: see helper-vectors.h. */
#include "helper-vectors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "util.h"

static int tv_path(const char *rel, char **ret) {
	const char *src = getenv("EML_SRCDIR");
	if (asprintf(ret, "%s/tests/vectors/%s", src ? src : ".", rel) < 0)
		return -ENOMEM;
	return 0;
}

int tv_read(const char *rel, uint8_t **ret, size_t *ret_len) {
	_cleanup_free_ char *p = NULL;
	int r = tv_path(rel, &p);
	if (r < 0)
		return r;
	return read_file(p, 64u << 20, ret, ret_len);
}

int tv_read_json(const char *rel, json_object **ret) {
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	int r = tv_read(rel, &data, &len);
	if (r < 0)
		return r;
	json_object *o = json_tokener_parse((const char *)data);
	if (!o)
		return -EBADMSG;
	*ret = o;
	return 0;
}

const char *tv_str(json_object *obj, const char *key) {
	json_object *v;
	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int tv_hex(json_object *obj, const char *key, uint8_t **ret, size_t *ret_len) {
	const char *s = tv_str(obj, key);
	if (!s)
		return -ENOENT;
	return hex_decode_alloc(s, ret, ret_len);
}
