/* safetensors.c: see safetensors.h. */
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "macro.h"
#include "safetensors.h"
#include "util.h"

static const struct {
	const char *name;
	size_t size;
} dtypes[_ST_DTYPE_MAX] = {
	[ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1},   [ST_I8] = {"I8", 1},     [ST_I16] = {"I16", 2},
	[ST_U16] = {"U16", 2},   [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2}, [ST_I32] = {"I32", 4},
	[ST_U32] = {"U32", 4},   [ST_F32] = {"F32", 4}, [ST_I64] = {"I64", 8},   [ST_U64] = {"U64", 8},
	[ST_F64] = {"F64", 8},
};

const char *safetensors_dtype_name(enum safetensors_dtype d) {
	return (unsigned)d < _ST_DTYPE_MAX ? dtypes[d].name : "?";
}

size_t safetensors_dtype_size(enum safetensors_dtype d) {
	return (unsigned)d < _ST_DTYPE_MAX ? dtypes[d].size : 0;
}

void safetensors_free(struct safetensors *st) {
	if (!st) return;
	for (size_t i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
	free(st->tensors);
	if (st->map) munmap(st->map, st->map_len);
	free(st);
}

static const char *strip_prefix(const char *name) {
	return strncmp(name, "bert.", 5) == 0 ? name + 5 : name;
}

/* A JSON value that must be a non-negative integer (json-c keeps integers as int64). */
static bool get_u64(struct json_object *o, uint64_t *ret) {
	if (!json_object_is_type(o, json_type_int)) return false;
	errno = 0;
	int64_t v = json_object_get_int64(o);
	if (v < 0 || errno == ERANGE) return false;
	/* json-c saturates at INT64_MAX; such sizes are far beyond any limit below anyway. */
	*ret = (uint64_t)v;
	return true;
}

static int parse_tensor(const char *name, struct json_object *o, struct safetensors_tensor *t, char *err,
			size_t errsz) {
	struct json_object *jd, *js, *jo;
	if (!json_object_is_type(o, json_type_object))
		return errorf(-EBADMSG, err, errsz, "tensor '%s': entry is not an object", name);
	if (json_object_object_length(o) != 3 || !json_object_object_get_ex(o, "dtype", &jd) ||
	    !json_object_object_get_ex(o, "shape", &js) || !json_object_object_get_ex(o, "data_offsets", &jo))
		return errorf(-EBADMSG, err, errsz, "tensor '%s': needs exactly dtype, shape, data_offsets", name);
	if (!json_object_is_type(jd, json_type_string))
		return errorf(-EBADMSG, err, errsz, "tensor '%s': dtype is not a string", name);
	const char *ds = json_object_get_string(jd);
	unsigned d;
	for (d = 0; d < _ST_DTYPE_MAX; d++)
		if (strcmp(ds, dtypes[d].name) == 0) break;
	if (d == _ST_DTYPE_MAX) return errorf(-EBADMSG, err, errsz, "tensor '%s': unknown dtype '%.16s'", name, ds);
	t->dtype = d;

	if (!json_object_is_type(js, json_type_array) || json_object_array_length(js) > SAFETENSORS_MAX_DIMS)
		return errorf(-EBADMSG, err, errsz, "tensor '%s': shape must be an array of at most %u sizes", name,
			    SAFETENSORS_MAX_DIMS);
	t->ndim = json_object_array_length(js);
	uint64_t count = 1;
	for (unsigned i = 0; i < t->ndim; i++) {
		if (!get_u64(json_object_array_get_idx(js, i), &t->shape[i]))
			return errorf(-EBADMSG, err, errsz, "tensor '%s': bad shape entry %u", name, i);
		if (t->shape[i] != 0 && count > UINT64_MAX / t->shape[i])
			return errorf(-EBADMSG, err, errsz, "tensor '%s': shape overflows", name);
		count *= t->shape[i];
	}
	t->count = count;
	if (!json_object_is_type(jo, json_type_array) || json_object_array_length(jo) != 2 ||
	    !get_u64(json_object_array_get_idx(jo, 0), &t->begin) ||
	    !get_u64(json_object_array_get_idx(jo, 1), &t->end) || t->end < t->begin)
		return errorf(-EBADMSG, err, errsz, "tensor '%s': data_offsets must be [begin, end] with begin <= end",
			    name);
	if (count > UINT64_MAX / dtypes[d].size || t->end - t->begin != count * dtypes[d].size)
		return errorf(-EBADMSG, err, errsz,
			    "tensor '%s': %" PRIu64 " bytes in data_offsets but shape and dtype need more or fewer",
			    name, t->end - t->begin);
	return 0;
}

static int cmp_begin(const void *a, const void *b) {
	const struct safetensors_tensor *x = *(const struct safetensors_tensor *const *)a;
	const struct safetensors_tensor *y = *(const struct safetensors_tensor *const *)b;
	return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static int cmp_name(const void *a, const void *b) {
	return strcmp(((const struct safetensors_tensor *)a)->name, ((const struct safetensors_tensor *)b)->name);
}

int safetensors_parse(const void *buf, size_t len, unsigned flags, struct safetensors **ret, char *err,
		      size_t errsz) {
	const uint8_t *p = buf;
	struct safetensors *st = NULL;
	struct json_tokener *tok = NULL;
	struct json_object *root = NULL;
	_cleanup_free_ const struct safetensors_tensor **order = NULL;
	int r;

	if (len < 8) return errorf(-EBADMSG, err, errsz, "file too short for a safetensors header (%zu bytes)", len);
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--) hlen = hlen << 8 | p[i];
	if (hlen < 2 || hlen > SAFETENSORS_MAX_HEADER)
		return errorf(-EBADMSG, err, errsz, "header length %" PRIu64 " outside 2..%u", hlen,
			    SAFETENSORS_MAX_HEADER);
	if (hlen > len - 8)
		return errorf(-EBADMSG, err, errsz, "header length %" PRIu64 " but only %zu bytes follow", hlen,
			    len - 8);
	const char *json = (const char *)p + 8;
	if (json[0] != '{') return errorf(-EBADMSG, err, errsz, "header does not start with '{'");
	if (memchr(json, 0, hlen)) return errorf(-EBADMSG, err, errsz, "header contains a NUL byte");

	tok = json_tokener_new_ex(8); /* the format nests 4 deep at most */
	if (!tok) return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, json, (int)hlen);
	if (!root || json_tokener_get_error(tok) != json_tokener_success) {
		r = errorf(-EBADMSG, err, errsz, "header is not valid JSON: %s",
			 json_tokener_error_desc(json_tokener_get_error(tok)));
		goto out;
	}
	/* Only trailing spaces (the format's alignment padding) may follow the object. */
	for (size_t i = json_tokener_get_parse_end(tok); i < hlen; i++)
		if (json[i] != ' ') {
			r = errorf(-EBADMSG, err, errsz, "trailing bytes after the header object");
			goto out;
		}
	if (!json_object_is_type(root, json_type_object)) {
		r = errorf(-EBADMSG, err, errsz, "header is not a JSON object");
		goto out;
	}
	size_t n = json_object_object_length(root);
	if (n > SAFETENSORS_MAX_TENSORS + 1) {
		r = errorf(-E2BIG, err, errsz, "too many tensors (%zu)", n);
		goto out;
	}
	st = calloc(1, sizeof *st);
	if (!st || !(st->tensors = calloc(n ? n : 1, sizeof *st->tensors))) {
		r = -ENOMEM;
		goto out;
	}
	json_object_object_foreach(root, key, val) {
		if (strcmp(key, "__metadata__") == 0) {
			/* Free-form string map; only its shape is checked. */
			if (!json_object_is_type(val, json_type_object)) {
				r = errorf(-EBADMSG, err, errsz, "__metadata__ is not an object");
				goto out;
			}
			json_object_object_foreach(val, mk, mv) {
				(void)mk;
				if (!json_object_is_type(mv, json_type_string)) {
					r = errorf(-EBADMSG, err, errsz, "__metadata__ values must be strings");
					goto out;
				}
			}
			continue;
		}
		size_t kl = strlen(key);
		if (kl == 0 || kl > SAFETENSORS_MAX_NAME) {
			r = errorf(-EBADMSG, err, errsz, "tensor name empty or longer than %u bytes",
				 SAFETENSORS_MAX_NAME);
			goto out;
		}
		struct safetensors_tensor *t = &st->tensors[st->n_tensors];
		r = parse_tensor(key, val, t, err, errsz);
		if (r < 0) goto out;
		if (!(t->name = strdup(strip_prefix(key)))) {
			r = -ENOMEM;
			goto out;
		}
		st->n_tensors++;
	}

	/* Sorted by name for lookup; a name present with and without the prefix is ambiguous. */
	qsort(st->tensors, st->n_tensors, sizeof *st->tensors, cmp_name);
	for (size_t i = 1; i < st->n_tensors; i++)
		if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0) {
			r = errorf(-EBADMSG, err, errsz, "tensor '%s' appears twice (with and without 'bert.')",
				 st->tensors[i].name);
			goto out;
		}

	/* Byte ranges: sorted by start, none may overlap the next; zero-length tensors take no room. */
	order = calloc(st->n_tensors ? st->n_tensors : 1, sizeof *order);
	if (!order) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < st->n_tensors; i++) order[i] = &st->tensors[i];
	qsort(order, st->n_tensors, sizeof *order, cmp_begin);
	uint64_t end = 0;
	for (size_t i = 0; i < st->n_tensors; i++) {
		if (order[i]->begin == order[i]->end) continue;
		if (order[i]->begin < end) {
			r = errorf(-EBADMSG, err, errsz, "tensor '%s' overlaps another tensor's data", order[i]->name);
			goto out;
		}
		end = order[i]->end;
	}
	st->data_len = end;
	uint64_t avail = len - 8 - hlen;
	if (!(flags & SAFETENSORS_HEADER_ONLY)) {
		if (end > avail) {
			r = errorf(-ENODATA, err, errsz,
				 "tensor data ends at byte %" PRIu64 " of the data section but the file holds only %" PRIu64
				 " (truncated, or a header without its data)",
				 end, avail);
			goto out;
		}
		st->data = p + 8 + hlen;
	} else if (end <= avail)
		st->data = p + 8 + hlen;
	st->discard = st->data && (flags & SAFETENSORS_DISCARD);

	*ret = TAKE_PTR(st);
	r = 0;
out:
	json_object_put(root);
	json_tokener_free(tok);
	safetensors_free(st);
	return r;
}

int safetensors_open(const char *path, struct safetensors **ret, char *err, size_t errsz) {
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return errorf(negerrno(), err, errsz, "%s: %s", path, strerror(errno));
	struct stat s;
	if (fstat(fd, &s) < 0) return errorf(negerrno(), err, errsz, "%s: %s", path, strerror(errno));
	if (!S_ISREG(s.st_mode) || s.st_size < 8)
		return errorf(-EBADMSG, err, errsz, "%s: not a safetensors file", path);
	size_t len = (size_t)s.st_size;
	void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) return errorf(negerrno(), err, errsz, "%s: mmap: %s", path, strerror(errno));
	struct safetensors *st;
	int r = safetensors_parse(map, len, 0, &st, err, errsz);
	if (r < 0) {
		munmap(map, len);
		return r;
	}
	st->map = map;
	st->map_len = len;
	*ret = st;
	return 0;
}

const struct safetensors_tensor *safetensors_find(const struct safetensors *st, const char *name) {
	struct safetensors_tensor key = {.name = (char *)strip_prefix(name)};
	return bsearch(&key, st->tensors, st->n_tensors, sizeof key, cmp_name);
}

float safetensors_f16_to_f32(uint16_t h) {
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
	if (e == 0x1f)
		bits = sign | 0x7f800000 | m << 13; /* inf / nan */
	else if (e != 0)
		bits = sign | (e + 112) << 23 | m << 13;
	else if (m == 0)
		bits = sign;
	else { /* subnormal: renormalise */
		e = 113;
		while (!(m & 0x400)) {
			m <<= 1;
			e--;
		}
		bits = sign | e << 23 | (m & 0x3ff) << 13;
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

float safetensors_bf16_to_f32(uint16_t h) {
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

#define READ_SLICE ((size_t)1 << 20)

/* Drop the whole pages inside [from, to) of our read-only private file mapping: they are simply read from the
 * file again if touched later (a neighbour tensor sharing an edge page keeps that page). */
static void drop_pages(const uint8_t *from, const uint8_t *to) {
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)from + pg - 1) & ~(pg - 1), b = (uintptr_t)to & ~(pg - 1);
	if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

int safetensors_read_f32(const struct safetensors *st, const struct safetensors_tensor *t, float *out,
			 size_t count) {
	if (!st->data) return -ENODATA;
	if (t->count != count) return -EBADMSG;
	const uint8_t *src = st->data + t->begin;
	switch (t->dtype) {
	case ST_F32:
		/* Little-endian host assumed (x86-64, aarch64): the file's byte order. From a mapped file, copy in
		 * slices and drop each slice's pages behind us, so a large tensor is never resident twice. */
		for (size_t off = 0, n = count * 4; off < n; off += READ_SLICE) {
			size_t len = MIN(READ_SLICE, n - off);
			memcpy((uint8_t *)out + off, src + off, len);
			if (st->map || st->discard) drop_pages(src + off, src + off + len);
		}
		return 0;
	case ST_F16:
	case ST_BF16:
		for (size_t i = 0; i < count; i++) {
			uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
			out[i] = t->dtype == ST_F16 ? safetensors_f16_to_f32(h) : safetensors_bf16_to_f32(h);
		}
		return 0;
	default:
		return -EMEDIUMTYPE;
	}
}

void safetensors_release(const struct safetensors *st, const struct safetensors_tensor *t) {
	if ((st->map || st->discard) && t->begin != t->end) drop_pages(st->data + t->begin, st->data + t->end);
}

void safetensors_release_all(const struct safetensors *st) {
	/* Read-only private mapping: nothing can be lost, pages are re-read from the file if touched. */
	if (st->map) madvise(st->map, st->map_len, MADV_DONTNEED);
}

int safetensors_write(const char *path, const struct safetensors_out *t, size_t n) {
	struct json_object *root = json_object_new_object();
	if (!root) return -ENOMEM;
	uint64_t off = 0;
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		uint64_t cnt = 1;
		struct json_object *o = json_object_new_object(), *sh = json_object_new_array(),
				   *of = json_object_new_array();
		for (unsigned d = 0; d < t[i].ndim; d++) {
			json_object_array_add(sh, json_object_new_int64((int64_t)t[i].shape[d]));
			cnt *= t[i].shape[d];
		}
		uint64_t bytes = cnt * safetensors_dtype_size(t[i].dtype);
		json_object_array_add(of, json_object_new_int64((int64_t)off));
		json_object_array_add(of, json_object_new_int64((int64_t)(off + bytes)));
		off += bytes;
		json_object_object_add(o, "dtype", json_object_new_string(safetensors_dtype_name(t[i].dtype)));
		json_object_object_add(o, "shape", sh);
		json_object_object_add(o, "data_offsets", of);
		r = json_object_object_add(root, t[i].name, o) < 0 ? -ENOMEM : 0;
	}
	struct json_object *meta = json_object_new_object();
	json_object_object_add(meta, "format", json_object_new_string("pt"));
	json_object_object_add(root, "__metadata__", meta);
	const char *js = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
	size_t jl = strlen(js), hl = (jl + 7) & ~(size_t)7; /* pad with spaces to 8-byte alignment */
	size_t total = 8 + hl + off;
	_cleanup_free_ uint8_t *buf = malloc(total);
	if (!buf) r = -ENOMEM;
	if (r == 0) {
		for (int b = 0; b < 8; b++) buf[b] = (uint8_t)((uint64_t)hl >> (8 * b));
		memcpy(buf + 8, js, jl);
		memset(buf + 8 + jl, ' ', hl - jl);
		uint8_t *d = buf + 8 + hl;
		for (size_t i = 0; i < n; i++) {
			uint64_t cnt = 1;
			for (unsigned k = 0; k < t[i].ndim; k++) cnt *= t[i].shape[k];
			size_t bytes = cnt * safetensors_dtype_size(t[i].dtype);
			memcpy(d, t[i].data, bytes);
			d += bytes;
		}
		r = write_file(path, buf, total, 0644);
	}
	json_object_put(root);
	return r;
}
