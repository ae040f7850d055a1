/* Tests for sealed.c: manifest rules, seal -> unseal round trips (the model's real config.json and vocab.txt
 * from tests/vectors, hashed independently), and every kind of tampering: each single byte flipped,
 * truncation at every chunk boundary, reordered and spliced chunks, trailing bytes, wrong key, wrong signer,
 * hash mismatch under a valid signature. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "cbor.h"
#include "helper-vectors.h"
#include "sealed.h"
#include "util.h"

#define CHUNK 4096u

struct fixture {
	EVP_PKEY *signer, *other;
	CoseKey pub, other_pub;
	uint8_t key[32];
	uint8_t *data[4];
	size_t size[4];
	const char *names[4];
	size_t n;
};

static EVP_PKEY *ed25519_new(CoseKey *ret_pub) {
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(k);
	uint8_t pub[32];
	size_t len = 32;
	assert_int_equal(EVP_PKEY_get_raw_public_key(k, pub, &len), 1);
	assert_int_equal(cose_key_ed25519(pub, ret_pub), 0);
	return k;
}

static int setup(void **state) {
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->signer = ed25519_new(&f->pub);
	f->other = ed25519_new(&f->other_pub);
	assert_int_equal(RAND_bytes(f->key, 32), 1);
	/* Small files so that flipping every byte stays quick: an empty file, one of several chunks with a short
	 * last one, one of exactly two chunks, and the model's config.json. */
	static const char *const names[] = {"empty.bin", "three.bin", "two.bin", "config.json"};
	size_t sizes[] = {0, 2 * CHUNK + 100, 2 * CHUNK, 0};
	for (size_t i = 0; i < 3; i++) {
		f->data[i] = malloc(sizes[i] + 1);
		assert_non_null(f->data[i]);
		for (size_t j = 0; j < sizes[i]; j++) f->data[i][j] = (uint8_t)(j * 31 + i);
		f->size[i] = sizes[i];
	}
	assert_int_equal(tv_read("models/all-MiniLM-L6-v2/config.json", &f->data[3], &f->size[3]), 0);
	memcpy(f->names, names, sizeof names);
	f->n = 4;
	*state = f;
	return 0;
}

static int teardown(void **state) {
	struct fixture *f = *state;
	EVP_PKEY_free(f->signer);
	EVP_PKEY_free(f->other);
	for (size_t i = 0; i < f->n; i++) free(f->data[i]);
	free(f);
	return 0;
}

static uint8_t edk[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
static struct sealed_pair ctx_pairs[] = {{(char *)"model", (char *)"minilm"}};

static void manifest_init(struct fixture *f, struct sealed_manifest *m, struct sealed_file *files,
			  struct sealed_source *src) {
	for (size_t i = 0; i < f->n; i++) {
		files[i] = (struct sealed_file){.name = (char *)f->names[i], .size = f->size[i]};
		src[i] = (struct sealed_source){.data = f->data[i], .fd = -1, .size = f->size[i]};
		assert_int_equal(sealed_source_sha256(&src[i], files[i].sha256), 0);
	}
	*m = (struct sealed_manifest){.model_id = (char *)"minilm-l6", .version = (char *)"1",
				      .files = files, .n_files = f->n,
				      .kms_key_id = (char *)"arn:aws:kms:us-east-1:111122223333:key/test",
				      .encrypted_data_key = edk, .edk_len = sizeof edk,
				      .context = ctx_pairs, .n_context = 1, .chunk_size = CHUNK};
}

/* Seal into memory. */
static uint8_t *seal(struct fixture *f, const struct sealed_manifest *m, const struct sealed_source *src,
		     EVP_PKEY *signer, int expect, size_t *ret_len) {
	int fd = memfd_create("sealed", 0);
	assert_true(fd >= 0);
	assert_int_equal(sealed_write(fd, m, src, f->key, signer, NULL), expect);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*ret_len = (size_t)st.st_size;
	return buf;
}

static uint8_t *seal_default(struct fixture *f, size_t *ret_len) {
	struct sealed_manifest m;
	struct sealed_file files[4];
	struct sealed_source src[4];
	manifest_init(f, &m, files, src);
	return seal(f, &m, src, f->signer, 0, ret_len);
}

/* Feed buf in pieces of `step` bytes (0: all at once), honouring the stop at the manifest. Returns the first
 * error (feed, verify, set_key or finish) or 0, leaving the reader for inspection. */
static int unseal(struct fixture *f, const uint8_t *buf, size_t len, size_t step, const CoseKey *keys, size_t nk,
		  const uint8_t *key, struct sealed_reader **ret) {
	struct sealed_reader *r;
	assert_int_equal(sealed_reader_new(0, &r), 0);
	*ret = r;
	size_t off = 0;
	while (off < len) {
		size_t n = step ? MIN(step, len - off) : len - off;
		ssize_t k = sealed_reader_feed(r, buf + off, n);
		if (k < 0) return (int)k;
		off += (size_t)k;
		if (sealed_reader_state(r) == SEALED_NEED_KEY) {
			int v = sealed_reader_verify(r, keys, nk);
			if (v < 0) return v;
			int e = sealed_reader_set_key(r, key);
			if (e < 0) return e;
		} else
			assert_int_equal((size_t)k, n);
	}
	return sealed_reader_finish(r);
}

static void test_roundtrip(void **state) {
	struct fixture *f = *state;
	size_t len;
	_cleanup_free_ uint8_t *buf = seal_default(f, &len);
	assert_memory_equal(buf, SEALED_MAGIC, SEALED_MAGIC_LEN);
	static const size_t steps[] = {0, 1, 7, 16, 4096, 4112, 5000};
	for (size_t s = 0; s < ARRAY_SIZE(steps); s++) {
		_cleanup_sealed_reader_ struct sealed_reader *r = NULL;
		assert_int_equal(unseal(f, buf, len, steps[s], &f->pub, 1, f->key, &r), 0);
		assert_int_equal(sealed_reader_state(r), SEALED_DONE);
		const struct sealed_manifest *m = sealed_reader_manifest(r);
		assert_string_equal(m->model_id, "minilm-l6");
		assert_int_equal(m->n_files, 4);
		assert_int_equal(m->chunk_size, CHUNK);
		assert_int_equal(m->n_context, 1);
		assert_string_equal(m->context[0].value, "minilm");
		for (size_t i = 0; i < f->n; i++) {
			uint8_t *p;
			size_t n;
			assert_int_equal(sealed_reader_take_file(r, i, &p, &n), 0);
			assert_int_equal(n, f->size[i]);
			assert_memory_equal(p, f->data[i], n);
			sealed_file_free(p, n);
		}
		/* A buffer is handed over once. */
		uint8_t *p;
		size_t n;
		assert_int_equal(sealed_reader_take_file(r, 0, &p, &n), -EINVAL);
	}
}

/* The hash recorded for the vector file equals an independent SHA-256 of it. */
static void test_vector_hash(void **state) {
	struct fixture *f = *state;
	size_t len;
	_cleanup_free_ uint8_t *buf = seal_default(f, &len), *vocab = NULL;
	_cleanup_sealed_reader_ struct sealed_reader *r = NULL;
	assert_int_equal(unseal(f, buf, len, 0, &f->pub, 1, f->key, &r), 0);
	const struct sealed_manifest *m = sealed_reader_manifest(r);
	int i = sealed_manifest_find(m, "config.json");
	assert_int_equal(i, 3);
	uint8_t h[32];
	SHA256(f->data[3], f->size[3], h);
	assert_memory_equal(m->files[i].sha256, h, 32);
	assert_int_equal(sealed_manifest_find(m, "nope"), -ENOENT);

	/* A real-size file (vocab.txt, ~57 chunks of 4 KiB) through the fd source path. */
	size_t vl;
	assert_int_equal(tv_read("models/all-MiniLM-L6-v2/vocab.txt", &vocab, &vl), 0);
	int fd = memfd_create("vocab", 0);
	assert_int_equal(write_all(fd, vocab, vl), 0);
	struct sealed_file file = {.name = (char *)"vocab.txt", .size = vl};
	struct sealed_source src = {.fd = fd, .size = vl};
	assert_int_equal(sealed_source_sha256(&src, file.sha256), 0);
	SHA256(vocab, vl, h);
	assert_memory_equal(file.sha256, h, 32);
	struct sealed_manifest mm = {.model_id = (char *)"v", .version = (char *)"1", .files = &file, .n_files = 1,
				     .kms_key_id = (char *)"k", .encrypted_data_key = edk, .edk_len = 1,
				     .chunk_size = CHUNK};
	size_t slen;
	_cleanup_free_ uint8_t *sealed = seal(f, &mm, &src, f->signer, 0, &slen);
	close(fd);
	assert_int_equal(slen > vl + (vl / CHUNK) * SEALED_TAG_LEN, true);
	_cleanup_sealed_reader_ struct sealed_reader *r2 = NULL;
	assert_int_equal(unseal(f, sealed, slen, 1000, &f->pub, 1, f->key, &r2), 0);
	uint8_t *p;
	size_t n;
	assert_int_equal(sealed_reader_take_file(r2, 0, &p, &n), 0);
	assert_int_equal(n, vl);
	assert_memory_equal(p, vocab, vl);
	sealed_file_free(p, n);
}

static size_t header_len(const uint8_t *buf) {
	const uint8_t *l = buf + SEALED_MAGIC_LEN;
	return SEALED_MAGIC_LEN + 4 + ((size_t)l[0] << 24 | (size_t)l[1] << 16 | (size_t)l[2] << 8 | l[3]);
}

static void test_flip_every_byte(void **state) {
	struct fixture *f = *state;
	size_t len;
	_cleanup_free_ uint8_t *buf = seal_default(f, &len);
	for (size_t i = 0; i < len; i++) {
		{
			int bit = (int)(i % 8); /* a different bit at each position keeps this quick */
			buf[i] ^= (uint8_t)(1u << bit);
			_cleanup_sealed_reader_ struct sealed_reader *r = NULL;
			int e = unseal(f, buf, len, 0, &f->pub, 1, f->key, &r);
			if (e == 0) fail_msg("flipping bit %d of byte %zu went unnoticed", bit, i);
			/* Once the signed header is intact, a change can only be a failed tag. */
			if (i >= header_len(buf)) assert_int_equal(e, -EBADE);
			buf[i] ^= (uint8_t)(1u << bit);
		}
	}
}

static void test_truncation(void **state) {
	struct fixture *f = *state;
	size_t len;
	_cleanup_free_ uint8_t *buf = seal_default(f, &len);
	size_t h = header_len(buf);
	/* Every prefix up to the end of the header, then every chunk boundary and a few points inside chunks. */
	for (size_t cut = 0; cut < len; cut += cut < h + 2 ? 1 : 97) {
		_cleanup_sealed_reader_ struct sealed_reader *r = NULL;
		int e = unseal(f, buf, cut, 0, &f->pub, 1, f->key, &r);
		assert_int_not_equal(e, 0);
	}
	size_t off = h;
	for (size_t i = 0; i < f->n; i++) {
		uint64_t nc = sealed_chunk_count(f->size[i], CHUNK);
		for (uint64_t j = 0; j < nc; j++) {
			off += MIN((uint64_t)CHUNK, f->size[i] - j * CHUNK) + SEALED_TAG_LEN;
			if (off == len) continue;
			_cleanup_sealed_reader_ struct sealed_reader *r = NULL;
			assert_int_equal(unseal(f, buf, off, 0, &f->pub, 1, f->key, &r), -EPIPE);
		}
	}
	assert_int_equal(off, len);
	/* Trailing bytes. */
	_cleanup_free_ uint8_t *longer = malloc(len + 1);
	memcpy(longer, buf, len);
	longer[len] = 0;
	_cleanup_sealed_reader_ struct sealed_reader *r = NULL;
	assert_int_equal(unseal(f, longer, len + 1, 0, &f->pub, 1, f->key, &r), -EBADMSG);
}

static void swap(uint8_t *a, uint8_t *b, size_t n) {
	for (size_t i = 0; i < n; i++) {
		uint8_t t = a[i];
		a[i] = b[i];
		b[i] = t;
	}
}

static void test_reorder_splice(void **state) {
	struct fixture *f = *state;
	size_t len, len2;
	_cleanup_free_ uint8_t *buf = seal_default(f, &len);
	size_t h = header_len(buf), full = CHUNK + SEALED_TAG_LEN;
	/* Layout after the header: empty.bin (tag only), three.bin (full, full, 100+tag), two.bin (full, full). */
	uint8_t *three0 = buf + h + SEALED_TAG_LEN, *three1 = three0 + full;
	uint8_t *two0 = three1 + full + 100 + SEALED_TAG_LEN, *two1 = two0 + full;
	_cleanup_sealed_reader_ struct sealed_reader *r1 = NULL, *r2 = NULL, *r3 = NULL, *r4 = NULL, *r5 = NULL;

	swap(three0, three1, full); /* reorder within a file */
	assert_int_equal(unseal(f, buf, len, 0, &f->pub, 1, f->key, &r1), -EBADE);
	swap(three0, three1, full);
	swap(three1, two1, full); /* same position, other file; and a final chunk into a non-final slot */
	assert_int_equal(unseal(f, buf, len, 0, &f->pub, 1, f->key, &r2), -EBADE);
	swap(three1, two1, full);
	swap(three0, two0, full); /* same chunk index, other file */
	assert_int_equal(unseal(f, buf, len, 0, &f->pub, 1, f->key, &r3), -EBADE);
	swap(three0, two0, full);

	/* Splice from another sealing of the same files under the same data key but another manifest (version
	 * 2): same file and chunk indexes, still refused because the manifest hash is bound. */
	struct sealed_manifest m;
	struct sealed_file files[4];
	struct sealed_source src[4];
	manifest_init(f, &m, files, src);
	m.version = (char *)"2";
	_cleanup_free_ uint8_t *other = seal(f, &m, src, f->signer, 0, &len2);
	size_t h2 = header_len(other);
	assert_int_equal(len2 - h2, len - h);
	memcpy(two0, other + h2 + (size_t)(two0 - (buf + h)), full);
	assert_int_equal(unseal(f, buf, len, 0, &f->pub, 1, f->key, &r4), -EBADE);
	/* And the other sealing's header with our chunks. */
	_cleanup_free_ uint8_t *mixed = malloc(h2 + len - h);
	memcpy(mixed, other, h2);
	_cleanup_free_ uint8_t *orig = seal_default(f, &len);
	memcpy(mixed + h2, orig + h, len - h);
	assert_int_equal(unseal(f, mixed, h2 + len - h, 0, &f->pub, 1, f->key, &r5), -EBADE);
}

static void test_keys_and_signers(void **state) {
	struct fixture *f = *state;
	size_t len;
	_cleanup_free_ uint8_t *buf = seal_default(f, &len);
	uint8_t wrong[32];
	memcpy(wrong, f->key, 32);
	wrong[31] ^= 1;
	_cleanup_sealed_reader_ struct sealed_reader *r1 = NULL, *r2 = NULL, *r3 = NULL, *r4 = NULL;
	assert_int_equal(unseal(f, buf, len, 0, &f->pub, 1, wrong, &r1), -EBADE);
	assert_int_equal(sealed_reader_state(r1), SEALED_FAILED);
	assert_int_equal(unseal(f, buf, len, 0, &f->other_pub, 1, f->key, &r2), -EKEYREJECTED);
	/* The right key among several: its index is reported. */
	CoseKey keys[2] = {f->other_pub, f->pub};
	assert_int_equal(sealed_reader_new(0, &r3), 0);
	assert_int_equal(sealed_reader_feed(r3, buf, len), (ssize_t)header_len(buf));
	assert_int_equal(sealed_reader_state(r3), SEALED_NEED_KEY);
	assert_int_equal(sealed_reader_feed(r3, buf, 1), 0);
	assert_int_equal(sealed_reader_set_key(r3, f->key), -EINVAL); /* not verified yet */
	assert_int_equal(sealed_reader_verify(r3, keys, 2), 1);
	assert_int_equal(sealed_reader_set_key(r3, f->key), 0);
	/* Signed by someone else: refused even with the right data key. */
	_cleanup_free_ uint8_t *rogue = NULL;
	struct sealed_manifest m;
	struct sealed_file files[4];
	struct sealed_source src[4];
	manifest_init(f, &m, files, src);
	rogue = seal(f, &m, src, f->other, 0, &len);
	assert_int_equal(unseal(f, rogue, len, 0, &f->pub, 1, f->key, &r4), -EKEYREJECTED);
	/* A total above the reader's ceiling is refused at the header. */
	_cleanup_sealed_reader_ struct sealed_reader *small = NULL;
	assert_int_equal(sealed_reader_new(1000, &small), 0);
	assert_int_equal(sealed_reader_feed(small, buf, len), -E2BIG);
	assert_int_equal(sealed_reader_feed(small, buf, len), -E2BIG); /* sticky */
}

/* A signed manifest whose hash does not match the data: the writer says so, the reader too. */
static void test_hash_mismatch(void **state) {
	struct fixture *f = *state;
	struct sealed_manifest m;
	struct sealed_file files[4];
	struct sealed_source src[4];
	manifest_init(f, &m, files, src);
	files[3].sha256[0] ^= 1; /* last file: the writer writes it all, then notices */
	size_t len;
	_cleanup_free_ uint8_t *buf = seal(f, &m, src, f->signer, -EILSEQ, &len);
	_cleanup_sealed_reader_ struct sealed_reader *r = NULL;
	assert_int_equal(unseal(f, buf, len, 0, &f->pub, 1, f->key, &r), -EILSEQ);
	/* Sizes that disagree with the sources are refused before anything is written. */
	src[1].size--;
	int fd = memfd_create("x", 0);
	assert_int_equal(sealed_write(fd, &m, src, f->key, f->signer, NULL), -EINVAL);
	close(fd);
}

/* --- manifest rules -------------------------------------------------------------------------------------- */

static cbor_item_t *base_manifest(void) {
	cbor_item_t *m = ecbor_map(), *files = ecbor_array(), *file = ecbor_map();
	uint8_t h[32] = {0};
	assert_int_equal(ecbor_map_put(file, ecbor_tstr("name"), ecbor_tstr("model.safetensors")), 0);
	assert_int_equal(ecbor_map_put(file, ecbor_tstr("size"), ecbor_uint(10)), 0);
	assert_int_equal(ecbor_map_put(file, ecbor_tstr("sha256"), ecbor_bstr(h, 32)), 0);
	assert_int_equal(ecbor_array_push(files, file), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("v"), ecbor_uint(1)), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("model_id"), ecbor_tstr("m")), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("version"), ecbor_tstr("1")), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("files"), files), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("kms_key_id"), ecbor_tstr("alias/x")), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("encrypted_data_key"), ecbor_bstr(h, 8)), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("encryption_context"), ecbor_map()), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("chunk_size"), ecbor_uint(65536)), 0);
	assert_int_equal(ecbor_map_put(m, ecbor_tstr("cipher"), ecbor_tstr(SEALED_CIPHER)), 0);
	return m;
}

/* Replace (or drop, value NULL; or add) key in map, return the parse result of its encoding. */
static int parse_with(const char *key, cbor_item_t *value, bool in_file) {
	_cleanup_cbor_ cbor_item_t *src = base_manifest(), *dst = ecbor_map();
	struct cbor_pair *p = cbor_map_handle(src);
	bool replaced = false;
	for (size_t i = 0; i < cbor_map_size(src); i++) {
		cbor_item_t *v = cbor_incref(p[i].value);
		if (in_file && ecbor_tstr_equal(p[i].key, "files")) {
			cbor_decref(&v);
			cbor_item_t *file = ecbor_map(), *files = ecbor_array();
			cbor_item_t *old = cbor_array_handle(p[i].value)[0];
			struct cbor_pair *fp = cbor_map_handle(old);
			for (size_t j = 0; j < cbor_map_size(old); j++) {
				if (ecbor_tstr_equal(fp[j].key, key)) continue;
				assert_int_equal(ecbor_map_put(file, cbor_incref(fp[j].key), cbor_incref(fp[j].value)), 0);
			}
			if (value) assert_int_equal(ecbor_map_put(file, ecbor_tstr(key), cbor_incref(value)), 0);
			assert_int_equal(ecbor_array_push(files, file), 0);
			v = files;
		} else if (!in_file && ecbor_tstr_equal(p[i].key, key)) {
			cbor_decref(&v);
			replaced = true;
			if (!value) continue;
			v = cbor_incref(value);
		}
		assert_int_equal(ecbor_map_put(dst, cbor_incref(p[i].key), v), 0);
	}
	if (!in_file && !replaced && value) assert_int_equal(ecbor_map_put(dst, ecbor_tstr(key), cbor_incref(value)), 0);
	if (value) cbor_decref(&value);
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	assert_int_equal(ecbor_encode(dst, &buf, &len), 0);
	struct sealed_manifest *m = NULL;
	int r = sealed_manifest_parse(buf, len, &m);
	sealed_manifest_free(m);
	return r;
}

static void test_manifest_rules(void **state) {
	assert_int_equal(parse_with("v", ecbor_uint(1), false), 0); /* the base is valid */
	assert_int_equal(parse_with("v", ecbor_uint(2), false), -EBADMSG);
	assert_int_equal(parse_with("v", NULL, false), -EBADMSG);
	assert_int_equal(parse_with("extra", ecbor_uint(1), false), -EBADMSG);
	assert_int_equal(parse_with("cipher", ecbor_tstr("AES-128-GCM"), false), -EBADMSG);
	assert_int_equal(parse_with("chunk_size", ecbor_uint(SEALED_CHUNK_MIN - 1), false), -E2BIG);
	assert_int_equal(parse_with("chunk_size", ecbor_uint((uint64_t)SEALED_CHUNK_MAX + 1), false), -E2BIG);
	assert_int_equal(parse_with("chunk_size", ecbor_int(-1), false), -EBADMSG);
	assert_int_equal(parse_with("model_id", ecbor_tstr(""), false), -EBADMSG);
	assert_int_equal(parse_with("model_id", ecbor_tstr("a\nb"), false), -EBADMSG);
	assert_int_equal(parse_with("model_id", ecbor_bstr("m", 1), false), -EBADMSG);
	assert_int_equal(parse_with("files", ecbor_array(), false), -EBADMSG);
	assert_int_equal(parse_with("encrypted_data_key", ecbor_bstr("", 0), false), -E2BIG);
	assert_int_equal(parse_with("encryption_context", ecbor_array(), false), -EBADMSG);
	assert_int_equal(parse_with("name", ecbor_tstr("../etc/passwd"), true), -EBADMSG);
	assert_int_equal(parse_with("name", ecbor_tstr(".hidden"), true), -EBADMSG);
	assert_int_equal(parse_with("name", ecbor_tstr("a/b"), true), -EBADMSG);
	assert_int_equal(parse_with("name", ecbor_tstr("ok-name_1.bin"), true), 0);
	assert_int_equal(parse_with("sha256", ecbor_bstr("short", 5), true), -EBADMSG);
	assert_int_equal(parse_with("size", ecbor_uint(SEALED_FILE_MAX + 1), true), -E2BIG);
	assert_int_equal(parse_with("size", NULL, true), -EBADMSG);
	assert_int_equal(parse_with("color", ecbor_tstr("red"), true), -EBADMSG);
	/* Context pairs: text only, bounded. */
	cbor_item_t *ctx = ecbor_map();
	assert_int_equal(ecbor_map_put(ctx, ecbor_tstr("k"), ecbor_uint(1)), 0);
	assert_int_equal(parse_with("encryption_context", ctx, false), -EBADMSG);
	ctx = ecbor_map();
	for (int i = 0; i <= SEALED_CONTEXT_MAX_PAIRS; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%02d", i);
		assert_int_equal(ecbor_map_put(ctx, ecbor_tstr(k), ecbor_tstr("v")), 0);
	}
	assert_int_equal(parse_with("encryption_context", ctx, false), -E2BIG);
	/* Too many files, and duplicate names. */
	cbor_item_t *files = ecbor_array();
	for (int i = 0; i <= SEALED_MAX_FILES; i++) {
		cbor_item_t *file = ecbor_map();
		char name[16];
		uint8_t h[32] = {0};
		snprintf(name, sizeof name, "f%d", i);
		assert_int_equal(ecbor_map_put(file, ecbor_tstr("name"), ecbor_tstr(name)), 0);
		assert_int_equal(ecbor_map_put(file, ecbor_tstr("size"), ecbor_uint(1)), 0);
		assert_int_equal(ecbor_map_put(file, ecbor_tstr("sha256"), ecbor_bstr(h, 32)), 0);
		assert_int_equal(ecbor_array_push(files, file), 0);
	}
	assert_int_equal(parse_with("files", files, false), -E2BIG);
	files = ecbor_array();
	for (int i = 0; i < 2; i++) {
		cbor_item_t *file = ecbor_map();
		uint8_t h[32] = {0};
		assert_int_equal(ecbor_map_put(file, ecbor_tstr("name"), ecbor_tstr("same")), 0);
		assert_int_equal(ecbor_map_put(file, ecbor_tstr("size"), ecbor_uint(1)), 0);
		assert_int_equal(ecbor_map_put(file, ecbor_tstr("sha256"), ecbor_bstr(h, 32)), 0);
		assert_int_equal(ecbor_array_push(files, file), 0);
	}
	assert_int_equal(parse_with("files", files, false), -EBADMSG);

	/* Non-deterministic encoding of a valid manifest: a 2-byte head for v = 1. */
	_cleanup_cbor_ cbor_item_t *b = base_manifest();
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	assert_int_equal(ecbor_encode(b, &buf, &len), 0);
	uint8_t *v = memmem(buf, len, "\x61v\x01", 3);
	assert_non_null(v);
	_cleanup_free_ uint8_t *nd = malloc(len + 1);
	size_t pre = (size_t)(v - buf) + 2;
	memcpy(nd, buf, pre);
	nd[pre] = 0x18, nd[pre + 1] = 0x01;
	memcpy(nd + pre + 2, buf + pre + 1, len - pre - 1);
	struct sealed_manifest *m = NULL;
	assert_int_equal(sealed_manifest_parse(nd, len + 1, &m), -EBADMSG);
	assert_int_equal(sealed_manifest_parse(buf, len, &m), 0);
	sealed_manifest_free(m);
	assert_int_equal(sealed_manifest_parse(buf, len - 1, &m), -EBADMSG);
	assert_null(sealed_manifest_free(NULL));
}

static void test_encode_rules(void **state) {
	struct fixture *f = *state;
	struct sealed_manifest m;
	struct sealed_file files[4];
	struct sealed_source src[4];
	uint8_t *buf;
	size_t len;
	manifest_init(f, &m, files, src);
	assert_int_equal(sealed_manifest_encode(&m, &buf, &len), 0);
	/* Encoding is deterministic and parses back to the same thing. */
	struct sealed_manifest *back;
	assert_int_equal(sealed_manifest_parse(buf, len, &back), 0);
	uint8_t *again;
	size_t len2;
	assert_int_equal(sealed_manifest_encode(back, &again, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, again, len);
	free(again);
	free(buf);
	sealed_manifest_free(back);
	files[1].name = (char *)"a/b";
	assert_int_equal(sealed_manifest_encode(&m, &buf, &len), -EINVAL);
	files[1].name = (char *)f->names[2]; /* duplicate */
	assert_int_equal(sealed_manifest_encode(&m, &buf, &len), -EINVAL);
	files[1].name = (char *)f->names[1];
	m.chunk_size = 100;
	assert_int_equal(sealed_manifest_encode(&m, &buf, &len), -E2BIG);
	m.chunk_size = CHUNK;
	m.n_files = 0;
	assert_int_equal(sealed_manifest_encode(&m, &buf, &len), -E2BIG);
	assert_int_equal(sealed_chunk_count(0, CHUNK), 1);
	assert_int_equal(sealed_chunk_count(CHUNK, CHUNK), 1);
	assert_int_equal(sealed_chunk_count(CHUNK + 1, CHUNK), 2);
}

static void test_signers(void **state) {
	struct fixture *f = *state;
	char dir[] = "/tmp/test-sealed-XXXXXX", path[256];
	assert_non_null(mkdtemp(dir));
	CoseKey *keys;
	size_t n;
	assert_int_equal(sealed_load_signers(dir, &keys, &n), -ENOENT);
	snprintf(path, sizeof path, "%s/b-owner.pub", dir);
	FILE *fp = fopen(path, "w");
	assert_int_equal(PEM_write_PUBKEY(fp, f->signer), 1);
	fclose(fp);
	snprintf(path, sizeof path, "%s/a-other.pub", dir);
	fp = fopen(path, "w");
	assert_int_equal(PEM_write_PUBKEY(fp, f->other), 1);
	fclose(fp);
	snprintf(path, sizeof path, "%s/README", dir);
	fp = fopen(path, "w");
	fputs("not a key\n", fp);
	fclose(fp);
	assert_int_equal(sealed_load_signers(dir, &keys, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(keys[0].pub, f->other_pub.pub, 32); /* sorted by name */
	assert_memory_equal(keys[1].pub, f->pub.pub, 32);
	free(keys);
	/* A P-256 key in the directory is an error, not silently skipped. */
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	snprintf(path, sizeof path, "%s/c-ec.pub", dir);
	fp = fopen(path, "w");
	assert_int_equal(PEM_write_PUBKEY(fp, ec), 1);
	fclose(fp);
	EVP_PKEY_free(ec);
	assert_int_equal(sealed_load_signers(dir, &keys, &n), -EKEYREJECTED);
	unlink(path);
	snprintf(path, sizeof path, "%s/d-junk.pub", dir);
	fp = fopen(path, "w");
	fputs("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", fp);
	fclose(fp);
	assert_int_equal(sealed_load_signers(dir, &keys, &n), -EBADMSG);
	unlink(path);
	snprintf(path, sizeof path, "%s/a-other.pub", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/b-owner.pub", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/README", dir);
	unlink(path);
	rmdir(dir);
	assert_int_equal(sealed_load_signers(dir, &keys, &n), -ENOENT);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),       cmocka_unit_test(test_vector_hash),
		cmocka_unit_test(test_flip_every_byte), cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_reorder_splice),  cmocka_unit_test(test_keys_and_signers),
		cmocka_unit_test(test_hash_mismatch),   cmocka_unit_test(test_manifest_rules),
		cmocka_unit_test(test_encode_rules),    cmocka_unit_test(test_signers),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
