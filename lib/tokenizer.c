/* tokenizer.c: see tokenizer.h. */
#include <stdarg.h>
#include <stdbool.h>
#include <utf8proc.h>

#include "macro.h"
#include "tokenizer.h"
#include "util.h"

struct tokenizer {
	char *strings;     /* the vocab file copy, lines NUL-terminated in place */
	uint32_t *offset;  /* token i starts at strings + offset[i] */
	uint32_t *length;
	size_t n;
	uint32_t *table;   /* open addressing: id + 1, 0 = empty */
	size_t mask;
	int32_t unk, cls, sep;
};

static uint64_t hash(const char *s, size_t len) {
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

void tokenizer_free(struct tokenizer *t) {
	if (!t) return;
	free(t->strings);
	free(t->offset);
	free(t->length);
	free(t->table);
	free(t);
}

size_t tokenizer_vocab_size(const struct tokenizer *t) {
	return t->n;
}

int tokenizer_lookup(const struct tokenizer *t, const char *token, size_t len) {
	for (size_t i = hash(token, len) & t->mask;; i = (i + 1) & t->mask) {
		uint32_t e = t->table[i];
		if (e == 0) return -ENOENT;
		e--;
		if (t->length[e] == len && memcmp(t->strings + t->offset[e], token, len) == 0) return (int)e;
	}
}

int tokenizer_new(const char *vocab, size_t len, struct tokenizer **ret, char *err, size_t errsz) {
	if (len > TOKENIZER_MAX_VOCAB_BYTES) return errorf(-EFBIG, err, errsz, "vocabulary larger than %u bytes",
							 TOKENIZER_MAX_VOCAB_BYTES);
	struct tokenizer *t = calloc(1, sizeof *t);
	int r;
	if (!t || !(t->strings = malloc(len + 1))) {
		r = -ENOMEM;
		goto fail;
	}
	memcpy(t->strings, vocab, len);
	t->strings[len] = 0;
	size_t lines = 0;
	for (size_t i = 0; i < len; i++) lines += vocab[i] == '\n';
	lines += len > 0 && vocab[len - 1] != '\n';
	if (lines == 0 || lines > TOKENIZER_MAX_VOCAB) {
		r = errorf(-EBADMSG, err, errsz, "vocabulary must have 1..%u lines", TOKENIZER_MAX_VOCAB);
		goto fail;
	}
	size_t cap = 1;
	while (cap < lines * 2) cap <<= 1;
	t->offset = calloc(lines, sizeof *t->offset);
	t->length = calloc(lines, sizeof *t->length);
	t->table = calloc(cap, sizeof *t->table);
	if (!t->offset || !t->length || !t->table) {
		r = -ENOMEM;
		goto fail;
	}
	t->mask = cap - 1;
	size_t pos = 0;
	for (size_t id = 0; id < lines; id++) {
		size_t e = pos;
		while (e < len && t->strings[e] != '\n') e++;
		size_t l = e - pos;
		if (l > 0 && t->strings[pos + l - 1] == '\r') l--; /* tolerate CRLF files */
		if (l == 0 || l > TOKENIZER_MAX_TOKEN_BYTES || memchr(t->strings + pos, 0, l)) {
			r = errorf(-EBADMSG, err, errsz, "vocabulary line %zu: empty, too long or has a NUL", id + 1);
			goto fail;
		}
		t->strings[pos + l] = 0;
		t->offset[id] = (uint32_t)pos;
		t->length[id] = (uint32_t)l;
		/* First occurrence wins on duplicates, as a Python dict built line by line would keep the last;
		 * BERT vocabularies have none, so reject them instead of guessing. */
		if (tokenizer_lookup(t, t->strings + pos, l) >= 0) {
			r = errorf(-EBADMSG, err, errsz, "vocabulary line %zu: duplicate token", id + 1);
			goto fail;
		}
		size_t i = hash(t->strings + pos, l) & t->mask;
		while (t->table[i]) i = (i + 1) & t->mask;
		t->table[i] = (uint32_t)id + 1;
		t->n = id + 1;
		pos = e + 1;
	}
	t->unk = tokenizer_lookup(t, "[UNK]", 5);
	t->cls = tokenizer_lookup(t, "[CLS]", 5);
	t->sep = tokenizer_lookup(t, "[SEP]", 5);
	if (t->unk < 0 || t->cls < 0 || t->sep < 0) {
		r = errorf(-EBADMSG, err, errsz, "vocabulary lacks [UNK], [CLS] or [SEP]");
		goto fail;
	}
	*ret = t;
	return 0;
fail:
	tokenizer_free(t);
	return r;
}

int tokenizer_load(const char *path, struct tokenizer **ret, char *err, size_t errsz) {
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int r = read_file(path, TOKENIZER_MAX_VOCAB_BYTES, &buf, &len);
	if (r < 0) return errorf(r, err, errsz, "%s: %s", path, strerror(-r));
	return tokenizer_new((const char *)buf, len, ret, err, errsz);
}

/* Character classes, as transformers' _is_whitespace / _is_control / _is_punctuation define them. */
static bool is_whitespace(int32_t c) {
	if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return true;
	return utf8proc_category(c) == UTF8PROC_CATEGORY_ZS;
}

static bool is_control(int32_t c) {
	if (c == '\t' || c == '\n' || c == '\r') return false;
	switch (utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_CC:
	case UTF8PROC_CATEGORY_CF:
	case UTF8PROC_CATEGORY_CN:
	case UTF8PROC_CATEGORY_CO:
	case UTF8PROC_CATEGORY_CS:
		return true;
	default:
		return false;
	}
}

static bool is_punctuation(int32_t c) {
	/* All non-alphanumeric ASCII counts, even "$" or "^" which Unicode files under symbols. */
	if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
		return true;
	utf8proc_category_t k = utf8proc_category(c);
	return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

static bool is_cjk(int32_t c) {
	return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
	       (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) ||
	       (c >= 0x2B820 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

struct ids {
	int32_t *v;
	size_t n, max;
};

static void push(struct ids *o, int32_t id) {
	if (o->n < o->max) o->v[o->n++] = id;
}

/* WordPiece for one piece (code points w[0..n)). Appends ids to o. */
static void wordpiece(const struct tokenizer *t, const int32_t *w, size_t n, struct ids *o) {
	if (n > TOKENIZER_MAX_WORD_CHARS) {
		push(o, t->unk);
		return;
	}
	/* UTF-8 of the piece and each code point's byte offset. */
	uint8_t buf[TOKENIZER_MAX_WORD_CHARS * 4], cand[2 + sizeof buf];
	size_t at[TOKENIZER_MAX_WORD_CHARS + 1], len = 0;
	for (size_t i = 0; i < n; i++) {
		at[i] = len;
		len += (size_t)utf8proc_encode_char(w[i], buf + len);
	}
	at[n] = len;
	cand[0] = cand[1] = '#';
	size_t start = 0, first = o->n;
	while (start < n) {
		size_t end = n;
		int id = -1;
		/* Continuations are looked up as "##" + remainder. */
		size_t pre = start > 0 ? 2 : 0;
		memcpy(cand + 2, buf + at[start], len - at[start]);
		for (; end > start; end--) {
			id = tokenizer_lookup(t, (const char *)cand + 2 - pre, at[end] - at[start] + pre);
			if (id >= 0) break;
		}
		if (id < 0) {
			o->n = first; /* any unmatched remainder makes the whole word [UNK] */
			push(o, t->unk);
			return;
		}
		push(o, id);
		start = end;
	}
}

/* A whitespace-delimited word: lower-case, strip accents, split on punctuation, WordPiece each piece. */
static void word(const struct tokenizer *t, const int32_t *w, size_t n, int32_t *tmp, struct ids *o) {
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		int32_t d[8];
		int32_t lc = utf8proc_tolower(w[i]);
		utf8proc_ssize_t k = utf8proc_decompose_char(lc, d, 8, UTF8PROC_DECOMPOSE, NULL);
		if (k < 0 || k > 8) {
			d[0] = lc;
			k = 1;
		}
		for (utf8proc_ssize_t j = 0; j < k; j++)
			if (utf8proc_category(d[j]) != UTF8PROC_CATEGORY_MN) tmp[m++] = d[j];
	}
	size_t s = 0;
	for (size_t i = 0; i < m; i++) {
		if (!is_punctuation(tmp[i])) continue;
		if (i > s) wordpiece(t, tmp + s, i - s, o);
		wordpiece(t, tmp + i, 1, o);
		s = i + 1;
	}
	if (m > s) wordpiece(t, tmp + s, m - s, o);
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, size_t max_tokens,
		     int32_t **ret_ids, size_t *ret_n) {
	if (len > TOKENIZER_MAX_TEXT) return -E2BIG;
	if (max_tokens < 2) return -EINVAL;
	/* Code points after clean-up; CJK characters become their own words. A canonical decomposition is at
	 * most a few code points (utf8proc's bound for one character is 4 for NFD of BMP, 18 worst case with
	 * compatibility; canonical only here), so 8 per input code point bounds the scratch. */
	_cleanup_free_ int32_t *cp = malloc((len * 3 + 1) * sizeof *cp);
	_cleanup_free_ int32_t *tmp = malloc((len * 8 + 8) * sizeof *tmp);
	struct ids o = {.max = max_tokens};
	o.v = malloc(max_tokens * sizeof *o.v);
	if (!cp || !tmp || !o.v) {
		free(o.v);
		return -ENOMEM;
	}
	size_t n = 0;
	for (size_t i = 0; i < len;) {
		int32_t c;
		utf8proc_ssize_t k = utf8proc_iterate((const uint8_t *)text + i, (utf8proc_ssize_t)(len - i), &c);
		if (k <= 0) {
			c = 0xFFFD;
			k = 1;
		}
		i += (size_t)k;
		if (c == 0 || c == 0xFFFD || is_control(c)) continue;
		if (is_whitespace(c))
			cp[n++] = ' ';
		else if (is_cjk(c)) {
			cp[n++] = ' ';
			cp[n++] = c;
			cp[n++] = ' ';
		} else
			cp[n++] = c;
	}
	push(&o, t->cls);
	o.max = max_tokens - 1; /* keep room for [SEP] */
	for (size_t i = 0; i < n && o.n < o.max;) {
		if (is_whitespace(cp[i])) {
			i++;
			continue;
		}
		size_t s = i;
		while (i < n && !is_whitespace(cp[i])) i++;
		word(t, cp + s, i - s, tmp, &o);
	}
	o.max = max_tokens;
	push(&o, t->sep);
	*ret_ids = o.v;
	*ret_n = o.n;
	return 0;
}
