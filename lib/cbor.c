/* cbor.c: strict validation walk, libcbor decoding, deterministic encoder and tree helpers (see cbor.h). */
#include "cbor.h"

#include <math.h>
#include <string.h>

#include "macro.h"

const char *ecbor_strerror(int r) {
	switch (r) {
	case 0: return "ok";
	case -EMSGSIZE: return "input too large";
	case -EBADMSG: return "malformed CBOR";
	case -ELOOP: return "nesting too deep";
	case -ENOBUFS: return "too many items";
	case -E2BIG: return "string too long";
	case -ENOTSUP: return "indefinite length not allowed";
	case -ENOTUNIQ: return "duplicate map key";
	case -EDOM: return "not deterministically encoded";
	case -EILSEQ: return "invalid UTF-8 in text string";
	case -ENOTEMPTY: return "trailing bytes after item";
	case -EPROTOTYPE: return "unsupported key type or simple value";
	case -ENOMEM: return "out of memory";
	case -ENOENT: return "key missing";
	case -EMEDIUMTYPE: return "wrong type";
	case -ERANGE: return "value out of range";
	default: return "error";
	}
}

/* ---------------------------------------------------------------------------------------------------- */
/* Validation walk                                                                                        */

#define AI_INDEF 31

struct walk {
	const uint8_t *p, *end;
	const struct ecbor_limits *lim;
	size_t items;
};

/* A map key reduced to its preferred encoding: head + content. Two keys are equal iff these are. */
struct key {
	uint8_t head[9];
	uint8_t hlen;
	const uint8_t *content;
	size_t clen;
};

static int key_cmp(const struct key *a, const struct key *b) {
	/* Bytewise order of the whole encoding. Equal first bytes mean equal major type and head length. */
	if (a->head[0] != b->head[0])
		return a->head[0] < b->head[0] ? -1 : 1;
	int c = memcmp(a->head, b->head, a->hlen);
	if (c != 0)
		return c;
	/* Same head: same major type and same length for strings, no content for integers. */
	return a->clen ? memcmp(a->content, b->content, a->clen) : 0;
}

static int key_qsort_cmp(const void *a, const void *b) { return key_cmp(a, b); }

static bool utf8_valid(const uint8_t *s, size_t n) {
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t need;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			need = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3, cp = c & 0x07, min = 0x10000;
		} else
			return false;
		if (n - i <= need)
			return false;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

/* Half-precision bits for f if f is exactly representable as a binary16, else -1. */
static int32_t float_to_half_exact(float f) {
	uint32_t b;
	memcpy(&b, &f, sizeof b);
	uint32_t sign = (b >> 16) & 0x8000, e = (b >> 23) & 0xff, m = b & 0x7fffff;
	if (e == 0xff) /* inf (NaN handled by callers) */
		return m ? -1 : (int32_t)(sign | 0x7c00);
	if (e == 0)
		return m ? -1 : (int32_t)sign;
	int ue = (int)e - 127;
	if (ue >= -14 && ue <= 15) {
		if (m & 0x1fff)
			return -1;
		return (int32_t)(sign | (uint32_t)(ue + 15) << 10 | m >> 13);
	}
	if (ue >= -24 && ue < -14) {
		uint32_t full = m | 0x800000;
		unsigned shift = (unsigned)(-ue - 1);
		if (full & ((1u << shift) - 1))
			return -1;
		return (int32_t)(sign | full >> shift);
	}
	return -1;
}

static bool double_fits_float(double d) {
	float f = (float)d;
	return (double)f == d;
}

/* Read one head. ret_ai is the raw additional info; indefinite gives ai 31 and val 0. */
static int read_head(struct walk *w, unsigned *ret_major, unsigned *ret_ai, uint64_t *ret_val) {
	if (w->p >= w->end)
		return -EBADMSG;
	uint8_t ib = *w->p++;
	unsigned major = ib >> 5, ai = ib & 0x1f;
	uint64_t val = 0;
	if (ai < 24)
		val = ai;
	else if (ai <= 27) {
		size_t n = (size_t)1 << (ai - 24);
		if ((size_t)(w->end - w->p) < n)
			return -EBADMSG;
		for (size_t i = 0; i < n; i++)
			val = val << 8 | w->p[i];
		w->p += n;
		/* Preferred serialisation of integer arguments (major 7 uses these for simple values / floats). */
		if (major != 7 && w->lim->deterministic &&
		    ((ai == 24 && val < 24) || (ai == 25 && val <= 0xff) || (ai == 26 && val <= 0xffff) ||
		     (ai == 27 && val <= 0xffffffffu)))
			return -EDOM;
	} else if (ai == AI_INDEF) {
		if (major == 0 || major == 1 || major == 6)
			return -EBADMSG;
	} else
		return -EBADMSG; /* 28..30 reserved */
	*ret_major = major, *ret_ai = ai, *ret_val = val;
	return 0;
}

static int count_item(struct walk *w) {
	if (++w->items > w->lim->max_items)
		return -ENOBUFS;
	return 0;
}

static int walk_item(struct walk *w, unsigned depth, struct key *ret_key, bool *ret_break);

static int check_indefinite(struct walk *w) {
	if (w->lim->deterministic)
		return -EDOM;
	if (!w->lim->allow_indefinite)
		return -ENOTSUP;
	return 0;
}

static int walk_string(struct walk *w, unsigned major, unsigned ai, uint64_t val, struct key *ret_key) {
	int r;
	if (ai != AI_INDEF) {
		if (val > w->lim->max_string)
			return -E2BIG;
		if (val > (uint64_t)(w->end - w->p))
			return -EBADMSG;
		if (major == 3 && !utf8_valid(w->p, val))
			return -EILSEQ;
		if (ret_key) {
			ret_key->hlen = (uint8_t)ecbor_write_head(ret_key->head, major, val);
			ret_key->content = w->p, ret_key->clen = val;
		}
		w->p += val;
		return 0;
	}
	r = check_indefinite(w);
	if (r < 0)
		return r;
	if (ret_key)
		return -EPROTOTYPE; /* indefinite strings as keys would need joining to compare */
	uint64_t total = 0;
	for (;;) {
		unsigned cmaj, cai;
		uint64_t clen;
		if (w->p < w->end && *w->p == 0xff) {
			w->p++;
			return 0;
		}
		r = read_head(w, &cmaj, &cai, &clen);
		if (r < 0)
			return r;
		if (cmaj != major || cai == AI_INDEF) /* chunks: definite strings of the same type */
			return -EBADMSG;
		r = count_item(w);
		if (r < 0)
			return r;
		if (clen > w->lim->max_string || total + clen > w->lim->max_string)
			return -E2BIG;
		if (clen > (uint64_t)(w->end - w->p))
			return -EBADMSG;
		if (major == 3 && !utf8_valid(w->p, clen))
			return -EILSEQ;
		total += clen;
		w->p += clen;
	}
}

static int walk_map(struct walk *w, unsigned depth, bool indef, uint64_t count) {
	_cleanup_free_ struct key *keys = NULL;
	size_t n = 0, cap = 0;
	struct key prev = {0};
	bool have_prev = false;
	int r;

	/* Each pair needs at least two bytes: refuse counts the input cannot hold before looping on them. */
	if (!indef && count > (uint64_t)(w->end - w->p) / 2)
		return -EBADMSG;
	for (uint64_t i = 0; indef || i < count; i++) {
		struct key k = {0};
		bool brk = false;
		r = walk_item(w, depth + 1, &k, indef ? &brk : NULL);
		if (r < 0)
			return r;
		if (brk)
			break;
		if (w->lim->deterministic) {
			/* Strictly increasing order also rules out duplicates; no need to keep every key. */
			if (have_prev) {
				int c = key_cmp(&prev, &k);
				if (c == 0)
					return -ENOTUNIQ;
				if (c > 0)
					return -EDOM;
			}
			prev = k, have_prev = true;
		} else {
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				struct key *nk = reallocarray(keys, ncap, sizeof *keys);
				if (!nk)
					return -ENOMEM;
				keys = nk, cap = ncap;
			}
			keys[n++] = k;
		}
		r = walk_item(w, depth + 1, NULL, NULL);
		if (r < 0)
			return r;
	}
	if (n > 1) {
		qsort(keys, n, sizeof *keys, key_qsort_cmp);
		for (size_t i = 1; i < n; i++)
			if (key_cmp(&keys[i - 1], &keys[i]) == 0)
				return -ENOTUNIQ;
	}
	return 0;
}

/* Walk one item at w->p. ret_key non-NULL: the item is a map key, restricted to int/tstr/bstr and reduced to
 * its preferred encoding. ret_break non-NULL: a break byte is allowed here and reported instead of an item. */
static int walk_item(struct walk *w, unsigned depth, struct key *ret_key, bool *ret_break) {
	unsigned major, ai;
	uint64_t val;
	int r;

	if (depth > w->lim->max_depth || depth > ECBOR_MAX_DEPTH)
		return -ELOOP;
	if (ret_break && w->p < w->end && *w->p == 0xff) {
		w->p++;
		*ret_break = true;
		return 0;
	}
	r = read_head(w, &major, &ai, &val);
	if (r < 0)
		return r;
	r = count_item(w);
	if (r < 0)
		return r;
	if (ret_key && major > 3)
		return -EPROTOTYPE;

	switch (major) {
	case 0:
	case 1:
		if (ret_key)
			ret_key->hlen = (uint8_t)ecbor_write_head(ret_key->head, major, val);
		return 0;
	case 2:
	case 3:
		return walk_string(w, major, ai, val, ret_key);
	case 4:
		if (ai == AI_INDEF) {
			r = check_indefinite(w);
			if (r < 0)
				return r;
			for (;;) {
				bool brk = false;
				r = walk_item(w, depth + 1, NULL, &brk);
				if (r < 0 || brk)
					return r;
			}
		}
		if (val > (uint64_t)(w->end - w->p))
			return -EBADMSG;
		for (uint64_t i = 0; i < val; i++) {
			r = walk_item(w, depth + 1, NULL, NULL);
			if (r < 0)
				return r;
		}
		return 0;
	case 5:
		if (ai == AI_INDEF) {
			r = check_indefinite(w);
			if (r < 0)
				return r;
		}
		return walk_map(w, depth, ai == AI_INDEF, val);
	case 6:
		return walk_item(w, depth + 1, NULL, NULL);
	default: /* 7 */
		if (ai >= 20 && ai <= 23)
			return 0; /* false, true, null, undefined */
		if (ai == 25) /* half is always shortest; the one deterministic NaN is f97e00 */
			return w->lim->deterministic && (val & 0x7c00) == 0x7c00 && (val & 0x3ff) && val != 0x7e00
				       ? -EDOM
				       : 0;
		if (ai == 26) {
			uint32_t b = (uint32_t)val;
			float f;
			memcpy(&f, &b, sizeof f);
			if (w->lim->deterministic && (isnan(f) || float_to_half_exact(f) >= 0))
				return -EDOM;
			return 0;
		}
		if (ai == 27) {
			double d;
			memcpy(&d, &val, sizeof d);
			if (w->lim->deterministic && (isnan(d) || double_fits_float(d)))
				return -EDOM;
			return 0;
		}
		if (ai == AI_INDEF)
			return -EBADMSG; /* break outside an indefinite item */
		return -EPROTOTYPE;       /* unassigned simple values (0..19, 24) */
	}
}

int ecbor_validate(const uint8_t *buf, size_t len, const struct ecbor_limits *lim) {
	if (!buf && len)
		return -EINVAL;
	if (len > lim->max_size)
		return -EMSGSIZE;
	if (!buf)
		buf = (const uint8_t *)""; /* NULL + 0 is undefined behaviour; an empty input is still truncated */
	struct walk w = {.p = buf, .end = buf + len, .lim = lim};
	int r = walk_item(&w, 0, NULL, NULL);
	if (r < 0)
		return r;
	if (w.p != w.end)
		return -ENOTEMPTY;
	return 0;
}

/* Second pass over validated bytes: build the tree with libcbor's constructors. libcbor 0.8's own cbor_load
 * cannot be used: it rejects tags 17..20 in their one-byte form, and COSE_Sign1 is tag 18. Every count and
 * length was checked against the input by the first pass, so allocations are bounded by the input size. */
static double half_to_double(uint16_t h) {
	int e = (h >> 10) & 0x1f, m = h & 0x3ff;
	double v;
	if (e == 0)
		v = ldexp(m, -24);
	else if (e == 31)
		v = m ? NAN : INFINITY;
	else
		v = ldexp(m + 1024, e - 25);
	return (h & 0x8000) ? -v : v;
}

static uint64_t build_head(const uint8_t **pp, unsigned *ret_major, unsigned *ret_ai) {
	const uint8_t *p = *pp;
	uint8_t ib = *p++;
	unsigned ai = ib & 0x1f;
	uint64_t val = ai < 24 ? ai : 0;
	if (ai >= 24 && ai <= 27) {
		size_t n = (size_t)1 << (ai - 24);
		for (size_t i = 0; i < n; i++)
			val = val << 8 | p[i];
		p += n;
	}
	*pp = p;
	*ret_major = ib >> 5, *ret_ai = ai;
	return val;
}

static cbor_item_t *build_item(const uint8_t **pp);

static cbor_item_t *build_string(const uint8_t **pp, unsigned major, unsigned ai, uint64_t val) {
	if (ai != AI_INDEF) {
		cbor_item_t *it = major == 2 ? ecbor_bstr(*pp, val) : ecbor_tstrn((const char *)*pp, val);
		*pp += val;
		return it;
	}
	_cleanup_cbor_ cbor_item_t *it = major == 2 ? cbor_new_indefinite_bytestring() : cbor_new_indefinite_string();
	if (!it)
		return NULL;
	while (**pp != 0xff) {
		unsigned cmaj, cai;
		uint64_t clen = build_head(pp, &cmaj, &cai);
		_cleanup_cbor_ cbor_item_t *chunk = build_string(pp, major, cai, clen);
		if (!chunk)
			return NULL;
		if (!(major == 2 ? cbor_bytestring_add_chunk(it, chunk) : cbor_string_add_chunk(it, chunk)))
			return NULL;
	}
	(*pp)++;
	return TAKE_PTR(it);
}

static cbor_item_t *build_item(const uint8_t **pp) {
	unsigned major, ai;
	uint64_t val = build_head(pp, &major, &ai);
	bool indef = ai == AI_INDEF;

	switch (major) {
	case 0:
		return cbor_build_uint64(val);
	case 1:
		return cbor_build_negint64(val);
	case 2:
	case 3:
		return build_string(pp, major, ai, val);
	case 4: {
		_cleanup_cbor_ cbor_item_t *a = indef ? cbor_new_indefinite_array() : cbor_new_definite_array(val);
		if (!a)
			return NULL;
		for (uint64_t i = 0; indef ? **pp != 0xff : i < val; i++) {
			_cleanup_cbor_ cbor_item_t *e = build_item(pp);
			if (!e || !cbor_array_push(a, e))
				return NULL;
		}
		if (indef)
			(*pp)++;
		return TAKE_PTR(a);
	}
	case 5: {
		_cleanup_cbor_ cbor_item_t *m = indef ? cbor_new_indefinite_map() : cbor_new_definite_map(val);
		if (!m)
			return NULL;
		for (uint64_t i = 0; indef ? **pp != 0xff : i < val; i++) {
			_cleanup_cbor_ cbor_item_t *k = build_item(pp);
			if (!k)
				return NULL;
			_cleanup_cbor_ cbor_item_t *v = build_item(pp);
			if (!v || !cbor_map_add(m, (struct cbor_pair){.key = k, .value = v}))
				return NULL;
		}
		if (indef)
			(*pp)++;
		return TAKE_PTR(m);
	}
	case 6: {
		_cleanup_cbor_ cbor_item_t *t = cbor_new_tag(val);
		if (!t)
			return NULL;
		_cleanup_cbor_ cbor_item_t *inner = build_item(pp);
		if (!inner)
			return NULL;
		cbor_tag_set_item(t, inner);
		return TAKE_PTR(t);
	}
	default:
		switch (ai) {
		case 20: return cbor_build_bool(false);
		case 21: return cbor_build_bool(true);
		case 22: return cbor_new_null();
		case 23: return cbor_new_undef();
		case 25: return cbor_build_float2((float)half_to_double((uint16_t)val));
		case 26: {
			uint32_t b = (uint32_t)val;
			float f;
			memcpy(&f, &b, sizeof f);
			return cbor_build_float4(f);
		}
		default: {
			double d;
			memcpy(&d, &val, sizeof d);
			return cbor_build_float8(d);
		}
		}
	}
}

int ecbor_decode(const uint8_t *buf, size_t len, const struct ecbor_limits *lim, cbor_item_t **ret) {
	int r = ecbor_validate(buf, len, lim);
	if (r < 0)
		return r;
	const uint8_t *p = buf;
	cbor_item_t *item = build_item(&p);
	if (!item)
		return -ENOMEM;
	*ret = item;
	return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Deterministic encoder                                                                                  */

struct obuf {
	uint8_t *data;
	size_t len, cap;
};

static int obuf_reserve(struct obuf *b, size_t n) {
	if (n > SIZE_MAX - b->len)
		return -ENOMEM;
	if (b->len + n <= b->cap)
		return 0;
	size_t ncap = b->cap ? b->cap : 64;
	while (ncap < b->len + n) {
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	uint8_t *d = realloc(b->data, ncap);
	if (!d)
		return -ENOMEM;
	b->data = d, b->cap = ncap;
	return 0;
}

static int obuf_put(struct obuf *b, const void *p, size_t n) {
	int r = obuf_reserve(b, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static int obuf_head(struct obuf *b, unsigned major, uint64_t val) {
	uint8_t h[9];
	return obuf_put(b, h, ecbor_write_head(h, major, val));
}

size_t ecbor_write_head(uint8_t out[static 9], unsigned major, uint64_t val) {
	uint8_t mt = (uint8_t)(major << 5);
	if (val < 24) {
		out[0] = mt | (uint8_t)val;
		return 1;
	}
	unsigned n = val <= 0xff ? 1 : val <= 0xffff ? 2 : val <= 0xffffffffu ? 4 : 8;
	out[0] = mt | (uint8_t)(n == 1 ? 24 : n == 2 ? 25 : n == 4 ? 26 : 27);
	for (unsigned i = 0; i < n; i++)
		out[1 + i] = (uint8_t)(val >> (8 * (n - 1 - i)));
	return 1 + n;
}

static int enc_float(struct obuf *b, double d) {
	if (isnan(d))
		return obuf_put(b, "\xf9\x7e\x00", 3);
	if (double_fits_float(d)) {
		float f = (float)d;
		int32_t h = float_to_half_exact(f);
		if (h >= 0) {
			uint8_t o[3] = {0xf9, (uint8_t)(h >> 8), (uint8_t)h};
			return obuf_put(b, o, 3);
		}
		uint32_t v;
		memcpy(&v, &f, sizeof v);
		uint8_t o[5] = {0xfa, (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
		return obuf_put(b, o, 5);
	}
	uint64_t v;
	memcpy(&v, &d, sizeof v);
	uint8_t o[9] = {0xfb};
	for (int i = 0; i < 8; i++)
		o[1 + i] = (uint8_t)(v >> (8 * (7 - i)));
	return obuf_put(b, o, 9);
}

static int enc_string(struct obuf *b, const cbor_item_t *it, unsigned major) {
	bool definite = major == 2 ? cbor_bytestring_is_definite(it) : cbor_string_is_definite(it);
	if (definite) {
		size_t n = major == 2 ? cbor_bytestring_length(it) : cbor_string_length(it);
		const uint8_t *p = major == 2 ? cbor_bytestring_handle(it) : cbor_string_handle(it);
		int r = obuf_head(b, major, n);
		return r < 0 ? r : obuf_put(b, p, n);
	}
	size_t nchunks = major == 2 ? cbor_bytestring_chunk_count(it) : cbor_string_chunk_count(it);
	cbor_item_t **chunks = major == 2 ? cbor_bytestring_chunks_handle(it) : cbor_string_chunks_handle(it);
	uint64_t total = 0;
	for (size_t i = 0; i < nchunks; i++)
		total += major == 2 ? cbor_bytestring_length(chunks[i]) : cbor_string_length(chunks[i]);
	int r = obuf_head(b, major, total);
	for (size_t i = 0; r >= 0 && i < nchunks; i++) {
		if (major == 2)
			r = obuf_put(b, cbor_bytestring_handle(chunks[i]), cbor_bytestring_length(chunks[i]));
		else
			r = obuf_put(b, cbor_string_handle(chunks[i]), cbor_string_length(chunks[i]));
	}
	return r;
}

struct span {
	size_t off, len;
	const cbor_item_t *value;
	const uint8_t *base; /* set just before sorting */
};

static int span_cmp(const void *a, const void *b) {
	const struct span *x = a, *y = b;
	int c = memcmp(x->base + x->off, y->base + y->off, MIN(x->len, y->len));
	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static int enc_item(struct obuf *b, const cbor_item_t *it, unsigned depth);

static int enc_map(struct obuf *b, const cbor_item_t *it, unsigned depth) {
	size_t n = cbor_map_size(it);
	struct cbor_pair *pairs = cbor_map_handle(it);
	_cleanup_free_ struct span *spans = NULL;
	struct obuf keys = {0};
	int r;

	if (n) {
		spans = calloc(n, sizeof *spans);
		if (!spans)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		spans[i].off = keys.len;
		r = enc_item(&keys, pairs[i].key, depth + 1);
		if (r < 0)
			goto out;
		spans[i].len = keys.len - spans[i].off;
		spans[i].value = pairs[i].value;
	}
	for (size_t i = 0; i < n; i++)
		spans[i].base = keys.data;
	if (n > 1)
		qsort(spans, n, sizeof *spans, span_cmp);
	r = obuf_head(b, 5, n);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		if (i > 0 && span_cmp(&spans[i - 1], &spans[i]) == 0) {
			r = -ENOTUNIQ;
			break;
		}
		r = obuf_put(b, keys.data + spans[i].off, spans[i].len);
		if (r >= 0)
			r = enc_item(b, spans[i].value, depth + 1);
	}
out:
	free(keys.data);
	return r;
}

static int enc_item(struct obuf *b, const cbor_item_t *it, unsigned depth) {
	int r;
	if (!it)
		return -EINVAL;
	if (depth > ECBOR_MAX_DEPTH)
		return -ELOOP;
	switch (cbor_typeof(it)) {
	case CBOR_TYPE_UINT:
		return obuf_head(b, 0, cbor_get_int(it));
	case CBOR_TYPE_NEGINT:
		return obuf_head(b, 1, cbor_get_int(it));
	case CBOR_TYPE_BYTESTRING:
		return enc_string(b, it, 2);
	case CBOR_TYPE_STRING:
		return enc_string(b, it, 3);
	case CBOR_TYPE_ARRAY: {
		size_t n = cbor_array_size(it);
		cbor_item_t **items = cbor_array_handle(it);
		r = obuf_head(b, 4, n);
		for (size_t i = 0; r >= 0 && i < n; i++)
			r = enc_item(b, items[i], depth + 1);
		return r;
	}
	case CBOR_TYPE_MAP:
		return enc_map(b, it, depth);
	case CBOR_TYPE_TAG: {
		r = obuf_head(b, 6, cbor_tag_value(it));
		if (r < 0)
			return r;
		_cleanup_cbor_ cbor_item_t *inner = cbor_tag_item(it); /* libcbor hands out a new reference */
		return enc_item(b, inner, depth + 1);
	}
	case CBOR_TYPE_FLOAT_CTRL:
		if (cbor_float_ctrl_is_ctrl(it)) {
			uint8_t v = cbor_ctrl_value(it);
			if (v < 20 || v > 23)
				return -EINVAL;
			uint8_t o = 0xe0 | v;
			return obuf_put(b, &o, 1);
		}
		return enc_float(b, cbor_float_get_float(it));
	}
	return -EINVAL;
}

int ecbor_encode(const cbor_item_t *item, uint8_t **ret, size_t *ret_len) {
	struct obuf b = {0};
	int r = enc_item(&b, item, 0);
	if (r < 0) {
		free(b.data);
		return r;
	}
	*ret = b.data;
	*ret_len = b.len;
	return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Builders                                                                                               */

cbor_item_t *ecbor_int(int64_t v) {
	if (v >= 0)
		return cbor_build_uint64((uint64_t)v);
	return cbor_build_negint64((uint64_t)(-(v + 1)));
}

cbor_item_t *ecbor_uint(uint64_t v) { return cbor_build_uint64(v); }

cbor_item_t *ecbor_bstr(const void *p, size_t n) {
	/* libcbor copies; it wants a non-NULL source even for empty strings. */
	static const uint8_t empty = 0;
	return cbor_build_bytestring(n ? p : &empty, n);
}

cbor_item_t *ecbor_tstrn(const char *s, size_t n) {
	static const char empty = 0;
	return cbor_build_stringn(n ? s : &empty, n);
}

cbor_item_t *ecbor_tstr(const char *s) { return s ? ecbor_tstrn(s, strlen(s)) : NULL; }
cbor_item_t *ecbor_bool(bool b) { return cbor_build_bool(b); }
cbor_item_t *ecbor_null(void) { return cbor_new_null(); }
cbor_item_t *ecbor_map(void) { return cbor_new_indefinite_map(); }
cbor_item_t *ecbor_array(void) { return cbor_new_indefinite_array(); }

cbor_item_t *ecbor_tag(uint64_t tag, cbor_item_t *item) {
	if (!item)
		return NULL;
	cbor_item_t *t = cbor_build_tag(tag, item); /* takes its own reference */
	cbor_decref(&item);
	return t;
}

int ecbor_map_put(cbor_item_t *map, cbor_item_t *key, cbor_item_t *value) {
	int r = -ENOMEM;
	if (map && key && value && cbor_isa_map(map))
		r = cbor_map_add(map, (struct cbor_pair){.key = key, .value = value}) ? 0 : -ENOMEM;
	else if (map && key && value)
		r = -EINVAL;
	ecbor_unrefp(&key);
	ecbor_unrefp(&value);
	return r;
}

int ecbor_array_push(cbor_item_t *array, cbor_item_t *item) {
	int r = -ENOMEM;
	if (array && item && cbor_isa_array(array))
		r = cbor_array_push(array, item) ? 0 : -ENOMEM;
	else if (array && item)
		r = -EINVAL;
	ecbor_unrefp(&item);
	return r;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Readers                                                                                                */

cbor_item_t *ecbor_map_get_int(const cbor_item_t *map, int64_t key) {
	if (!map || !cbor_isa_map(map))
		return NULL;
	size_t n = cbor_map_size(map);
	struct cbor_pair *pairs = cbor_map_handle(map);
	for (size_t i = 0; i < n; i++) {
		int64_t k;
		if (ecbor_get_int(pairs[i].key, &k) == 0 && k == key)
			return pairs[i].value;
	}
	return NULL;
}

cbor_item_t *ecbor_map_get_text(const cbor_item_t *map, const char *key) {
	if (!map || !cbor_isa_map(map))
		return NULL;
	size_t n = cbor_map_size(map);
	struct cbor_pair *pairs = cbor_map_handle(map);
	for (size_t i = 0; i < n; i++)
		if (ecbor_tstr_equal(pairs[i].key, key))
			return pairs[i].value;
	return NULL;
}

int ecbor_get_uint(const cbor_item_t *item, uint64_t *ret) {
	if (!item || !cbor_isa_uint(item))
		return -EMEDIUMTYPE;
	*ret = cbor_get_int(item);
	return 0;
}

int ecbor_get_int(const cbor_item_t *item, int64_t *ret) {
	if (!item || !(cbor_isa_uint(item) || cbor_isa_negint(item)))
		return -EMEDIUMTYPE;
	uint64_t v = cbor_get_int(item);
	if (v > INT64_MAX)
		return -ERANGE;
	*ret = cbor_isa_uint(item) ? (int64_t)v : -(int64_t)v - 1;
	return 0;
}

/* libcbor's cbor_is_bool/cbor_is_null assert (abort) when given a float: only ask them about simple values. */
static bool is_ctrl(const cbor_item_t *item) {
	return item && cbor_isa_float_ctrl(item) && cbor_float_get_width(item) == CBOR_FLOAT_0;
}

int ecbor_get_bool(const cbor_item_t *item, bool *ret) {
	if (!is_ctrl(item) || !cbor_is_bool(item))
		return -EMEDIUMTYPE;
	*ret = cbor_get_bool(item);
	return 0;
}

int ecbor_get_bstr(const cbor_item_t *item, const uint8_t **ret, size_t *ret_len) {
	if (!item || !cbor_isa_bytestring(item) || !cbor_bytestring_is_definite(item))
		return -EMEDIUMTYPE;
	*ret = cbor_bytestring_handle(item);
	*ret_len = cbor_bytestring_length(item);
	return 0;
}

int ecbor_get_bstr_len(const cbor_item_t *item, size_t len, const uint8_t **ret) {
	const uint8_t *p;
	size_t n;
	int r = ecbor_get_bstr(item, &p, &n);
	if (r < 0)
		return r;
	if (n != len)
		return -ERANGE;
	*ret = p;
	return 0;
}

int ecbor_get_tstr(const cbor_item_t *item, const char **ret, size_t *ret_len) {
	if (!item || !cbor_isa_string(item) || !cbor_string_is_definite(item))
		return -EMEDIUMTYPE;
	*ret = (const char *)cbor_string_handle(item);
	*ret_len = cbor_string_length(item);
	return 0;
}

int ecbor_get_tstr_dup(const cbor_item_t *item, char **ret) {
	const char *s;
	size_t n;
	int r = ecbor_get_tstr(item, &s, &n);
	if (r < 0)
		return r;
	if (n && memchr(s, 0, n))
		return -EILSEQ;
	char *d = strndup(n ? s : "", n);
	if (!d)
		return -ENOMEM;
	*ret = d;
	return 0;
}

bool ecbor_is_null(const cbor_item_t *item) { return is_ctrl(item) && cbor_is_null(item); }

bool ecbor_tstr_equal(const cbor_item_t *item, const char *s) {
	const char *t;
	size_t n;
	if (!s || ecbor_get_tstr(item, &t, &n) < 0)
		return false;
	return strlen(s) == n && (n == 0 || memcmp(s, t, n) == 0);
}

int ecbor_map_int_bstr(const cbor_item_t *map, int64_t key, const uint8_t **ret, size_t *ret_len) {
	cbor_item_t *v = ecbor_map_get_int(map, key);
	return v ? ecbor_get_bstr(v, ret, ret_len) : -ENOENT;
}
int ecbor_map_int_tstr(const cbor_item_t *map, int64_t key, const char **ret, size_t *ret_len) {
	cbor_item_t *v = ecbor_map_get_int(map, key);
	return v ? ecbor_get_tstr(v, ret, ret_len) : -ENOENT;
}
int ecbor_map_int_uint(const cbor_item_t *map, int64_t key, uint64_t *ret) {
	cbor_item_t *v = ecbor_map_get_int(map, key);
	return v ? ecbor_get_uint(v, ret) : -ENOENT;
}
int ecbor_map_text_bstr(const cbor_item_t *map, const char *key, const uint8_t **ret, size_t *ret_len) {
	cbor_item_t *v = ecbor_map_get_text(map, key);
	return v ? ecbor_get_bstr(v, ret, ret_len) : -ENOENT;
}
int ecbor_map_text_tstr(const cbor_item_t *map, const char *key, const char **ret, size_t *ret_len) {
	cbor_item_t *v = ecbor_map_get_text(map, key);
	return v ? ecbor_get_tstr(v, ret, ret_len) : -ENOENT;
}
int ecbor_map_text_uint(const cbor_item_t *map, const char *key, uint64_t *ret) {
	cbor_item_t *v = ecbor_map_get_text(map, key);
	return v ? ecbor_get_uint(v, ret) : -ENOENT;
}
