/* sealed.c: sealed model manifest, writer and streaming reader (see sealed.h). */
#include <dirent.h>
#include <sys/mman.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "cbor.h"
#include "sealed.h"
#include "util.h"

#define HKDF_INFO "eml/1 sealed model chunks"
#define AAD_LEN (SEALED_MAGIC_LEN + 32 + 4 + 8 + 1)
#define NONCE_LEN 12
#define MAX_SIGNERS 64

static void put_be32(uint8_t *p, uint32_t v) {
	for (int i = 3; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}
static void put_be64(uint8_t *p, uint64_t v) {
	for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

const char *sealed_strerror(int r) {
	switch (r) {
	case 0: return "ok";
	case -EBADMSG: return "malformed sealed model";
	case -E2BIG: return "sealed model exceeds a limit";
	case -EKEYREJECTED: return "manifest not signed by a trusted model owner";
	case -EBADE: return "chunk failed authentication (tampered, reordered or spliced)";
	case -EILSEQ: return "file SHA-256 does not match the manifest";
	case -EPIPE: return "sealed model truncated";
	case -EINVAL: return "invalid argument";
	case -ENOMEM: return "out of memory";
	default: return strerror(r < 0 ? -r : r);
	}
}

uint64_t sealed_chunk_count(uint64_t size, uint32_t chunk_size) {
	if (chunk_size == 0) return 0;
	return size == 0 ? 1 : (size + chunk_size - 1) / chunk_size;
}

/* --- manifest -------------------------------------------------------------------------------------------- */

/* File names become paths for nobody, but keep them boring anyway: no separators, no leading dot. */
static bool valid_name(const char *s) {
	size_t n = strlen(s);
	if (n == 0 || n > SEALED_NAME_MAX || s[0] == '.') return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Free text fields: bounded, no control characters (they end up in logs and status output). */
static bool valid_text(const char *s, size_t max, bool allow_empty) {
	size_t n = strlen(s);
	if ((n == 0 && !allow_empty) || n > max) return false;
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)s[i] < 0x20 || s[i] == 0x7f) return false;
	return true;
}

static int check_manifest(const struct sealed_manifest *m) {
	if (!m || !m->model_id || !m->version || !m->kms_key_id || !m->files) return -EINVAL;
	if (!valid_text(m->model_id, SEALED_NAME_MAX, false) || !valid_text(m->version, SEALED_VERSION_MAX, false) ||
	    !valid_text(m->kms_key_id, SEALED_KEY_ID_MAX, false))
		return -EINVAL;
	if (m->n_files == 0 || m->n_files > SEALED_MAX_FILES) return -E2BIG;
	if (m->edk_len == 0 || m->edk_len > SEALED_EDK_MAX || !m->encrypted_data_key) return -E2BIG;
	if (m->n_context > SEALED_CONTEXT_MAX_PAIRS || (m->n_context && !m->context)) return -E2BIG;
	if (m->chunk_size < SEALED_CHUNK_MIN || m->chunk_size > SEALED_CHUNK_MAX) return -E2BIG;
	uint64_t total = 0;
	for (size_t i = 0; i < m->n_files; i++) {
		const struct sealed_file *f = &m->files[i];
		if (!f->name || !valid_name(f->name)) return -EINVAL;
		if (f->size > SEALED_FILE_MAX) return -E2BIG;
		total += f->size;
		for (size_t j = 0; j < i; j++)
			if (strcmp(m->files[j].name, f->name) == 0) return -EINVAL;
	}
	if (total > SEALED_TOTAL_MAX) return -E2BIG;
	for (size_t i = 0; i < m->n_context; i++) {
		const struct sealed_pair *p = &m->context[i];
		if (!p->key || !p->value || !valid_text(p->key, SEALED_CONTEXT_STR_MAX, false) ||
		    !valid_text(p->value, SEALED_CONTEXT_STR_MAX, true))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(m->context[j].key, p->key) == 0) return -EINVAL;
	}
	return 0;
}

int sealed_manifest_encode(const struct sealed_manifest *m, uint8_t **ret, size_t *ret_len) {
	int r = check_manifest(m);
	if (r < 0) return r;
	_cleanup_cbor_ cbor_item_t *root = ecbor_map(), *files = ecbor_array(), *ctx = ecbor_map();
	if (!root || !files || !ctx) return -ENOMEM;
	for (size_t i = 0; i < m->n_files; i++) {
		cbor_item_t *f = ecbor_map();
		r = ecbor_map_put(f, ecbor_tstr("name"), ecbor_tstr(m->files[i].name));
		if (r >= 0) r = ecbor_map_put(f, ecbor_tstr("size"), ecbor_uint(m->files[i].size));
		if (r >= 0) r = ecbor_map_put(f, ecbor_tstr("sha256"), ecbor_bstr(m->files[i].sha256, 32));
		if (r < 0) {
			if (f) cbor_decref(&f);
			return r;
		}
		if ((r = ecbor_array_push(files, f)) < 0) return r;
	}
	for (size_t i = 0; i < m->n_context; i++)
		if ((r = ecbor_map_put(ctx, ecbor_tstr(m->context[i].key), ecbor_tstr(m->context[i].value))) < 0)
			return r;
	r = ecbor_map_put(root, ecbor_tstr("v"), ecbor_uint(1));
	if (r >= 0) r = ecbor_map_put(root, ecbor_tstr("model_id"), ecbor_tstr(m->model_id));
	if (r >= 0) r = ecbor_map_put(root, ecbor_tstr("version"), ecbor_tstr(m->version));
	if (r >= 0) r = ecbor_map_put(root, ecbor_tstr("files"), cbor_incref(files));
	if (r >= 0) r = ecbor_map_put(root, ecbor_tstr("kms_key_id"), ecbor_tstr(m->kms_key_id));
	if (r >= 0)
		r = ecbor_map_put(root, ecbor_tstr("encrypted_data_key"),
				  ecbor_bstr(m->encrypted_data_key, m->edk_len));
	if (r >= 0) r = ecbor_map_put(root, ecbor_tstr("encryption_context"), cbor_incref(ctx));
	if (r >= 0) r = ecbor_map_put(root, ecbor_tstr("chunk_size"), ecbor_uint(m->chunk_size));
	if (r >= 0) r = ecbor_map_put(root, ecbor_tstr("cipher"), ecbor_tstr(SEALED_CIPHER));
	if (r < 0) return r;
	return ecbor_encode(root, ret, ret_len);
}

struct sealed_manifest *sealed_manifest_free(struct sealed_manifest *m) {
	if (!m) return NULL;
	free(m->model_id);
	free(m->version);
	for (size_t i = 0; i < m->n_files; i++) free(m->files[i].name);
	free(m->files);
	free(m->kms_key_id);
	free(m->encrypted_data_key);
	for (size_t i = 0; i < m->n_context; i++) {
		free(m->context[i].key);
		free(m->context[i].value);
	}
	free(m->context);
	free(m);
	return NULL;
}

/* Exactly the keys we know, no more: an unknown key may mean a format we would misread. */
static bool keys_exactly(const cbor_item_t *map, const char *const *keys, size_t n) {
	if (!cbor_isa_map(map) || cbor_map_size(map) != n) return false;
	for (size_t i = 0; i < n; i++)
		if (!ecbor_map_get_text(map, keys[i])) return false;
	return true;
}

static int get_text(const cbor_item_t *map, const char *key, char **ret) {
	cbor_item_t *v = ecbor_map_get_text(map, key);
	int r = ecbor_get_tstr_dup(v, ret);
	return r < 0 ? -EBADMSG : 0;
}

int sealed_manifest_parse(const uint8_t *buf, size_t len, struct sealed_manifest **ret) {
	static const char *const top[] = {"v",          "model_id",           "version",    "files",
					  "kms_key_id", "encrypted_data_key", "encryption_context",
					  "chunk_size", "cipher"};
	static const char *const fkeys[] = {"name", "size", "sha256"};
	struct ecbor_limits lim = {.max_size = SEALED_MANIFEST_MAX,
				   .max_depth = 4,
				   .max_items = 512,
				   .max_string = SEALED_EDK_MAX,
				   .deterministic = true};
	if (!buf || !ret) return -EINVAL;
	_cleanup_cbor_ cbor_item_t *root = NULL;
	int r = ecbor_decode(buf, len, &lim, &root);
	if (r == -EMSGSIZE || r == -E2BIG || r == -ENOBUFS || r == -ELOOP) return -E2BIG;
	if (r == -ENOMEM) return r;
	if (r < 0) return -EBADMSG;
	if (!keys_exactly(root, top, ARRAY_SIZE(top))) return -EBADMSG;
	uint64_t v, cs;
	if (ecbor_map_text_uint(root, "v", &v) < 0 || v != 1) return -EBADMSG;
	if (!ecbor_tstr_equal(ecbor_map_get_text(root, "cipher"), SEALED_CIPHER)) return -EBADMSG;
	if (ecbor_map_text_uint(root, "chunk_size", &cs) < 0) return -EBADMSG;
	if (cs < SEALED_CHUNK_MIN || cs > SEALED_CHUNK_MAX) return -E2BIG;
	cbor_item_t *files = ecbor_map_get_text(root, "files"), *ctx = ecbor_map_get_text(root, "encryption_context");
	if (!cbor_isa_array(files) || !cbor_isa_map(ctx)) return -EBADMSG;
	if (cbor_array_size(files) == 0) return -EBADMSG;
	if (cbor_array_size(files) > SEALED_MAX_FILES || cbor_map_size(ctx) > SEALED_CONTEXT_MAX_PAIRS) return -E2BIG;

	_cleanup_(sealed_manifest_freep) struct sealed_manifest *m = calloc(1, sizeof *m);
	if (!m) return -ENOMEM;
	m->chunk_size = (uint32_t)cs;
	if ((r = get_text(root, "model_id", &m->model_id)) < 0 || (r = get_text(root, "version", &m->version)) < 0 ||
	    (r = get_text(root, "kms_key_id", &m->kms_key_id)) < 0)
		return r;
	const uint8_t *edk;
	if (ecbor_map_text_bstr(root, "encrypted_data_key", &edk, &m->edk_len) < 0) return -EBADMSG;
	if (m->edk_len == 0 || m->edk_len > SEALED_EDK_MAX) return -E2BIG;
	if (!(m->encrypted_data_key = malloc(m->edk_len))) return -ENOMEM;
	memcpy(m->encrypted_data_key, edk, m->edk_len);

	size_t nf = cbor_array_size(files);
	if (!(m->files = calloc(nf, sizeof *m->files))) return -ENOMEM;
	for (size_t i = 0; i < nf; i++) {
		cbor_item_t *f = cbor_array_handle(files)[i];
		const uint8_t *h;
		if (!keys_exactly(f, fkeys, ARRAY_SIZE(fkeys))) return -EBADMSG;
		m->n_files = i + 1;
		if ((r = get_text(f, "name", &m->files[i].name)) < 0) return r;
		if (ecbor_map_text_uint(f, "size", &m->files[i].size) < 0) return -EBADMSG;
		if (ecbor_get_bstr_len(ecbor_map_get_text(f, "sha256"), 32, &h) < 0) return -EBADMSG;
		memcpy(m->files[i].sha256, h, 32);
	}
	size_t nc = cbor_map_size(ctx);
	if (nc && !(m->context = calloc(nc, sizeof *m->context))) return -ENOMEM;
	struct cbor_pair *pairs = cbor_map_handle(ctx);
	for (size_t i = 0; i < nc; i++) {
		m->n_context = i + 1;
		if (ecbor_get_tstr_dup(pairs[i].key, &m->context[i].key) < 0 ||
		    ecbor_get_tstr_dup(pairs[i].value, &m->context[i].value) < 0)
			return -EBADMSG;
	}
	r = check_manifest(m);
	if (r < 0) return r == -EINVAL ? -EBADMSG : r;
	*ret = TAKE_PTR(m);
	return 0;
}

int sealed_manifest_find(const struct sealed_manifest *m, const char *name) {
	if (!m || !name) return -EINVAL;
	for (size_t i = 0; i < m->n_files; i++)
		if (strcmp(m->files[i].name, name) == 0) return (int)i;
	return -ENOENT;
}

/* --- chunk crypto ---------------------------------------------------------------------------------------- */

static int derive_chunk_key(const uint8_t data_key[SEALED_KEY_LEN], const uint8_t manifest_hash[32],
			    uint8_t out[SEALED_KEY_LEN]) {
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	size_t outlen = SEALED_KEY_LEN;
	int r = pc && EVP_PKEY_derive_init(pc) == 1 && EVP_PKEY_CTX_set_hkdf_md(pc, EVP_sha256()) == 1 &&
			EVP_PKEY_CTX_set1_hkdf_salt(pc, manifest_hash, 32) == 1 &&
			EVP_PKEY_CTX_set1_hkdf_key(pc, data_key, SEALED_KEY_LEN) == 1 &&
			EVP_PKEY_CTX_add1_hkdf_info(pc, (const unsigned char *)HKDF_INFO, strlen(HKDF_INFO)) == 1 &&
			EVP_PKEY_derive(pc, out, &outlen) == 1 && outlen == SEALED_KEY_LEN
		? 0
		: -EIO;
	EVP_PKEY_CTX_free(pc);
	return r;
}

static void chunk_params(const uint8_t manifest_hash[32], uint32_t file, uint64_t chunk, bool final,
			 uint8_t nonce[NONCE_LEN], uint8_t aad[AAD_LEN]) {
	put_be32(nonce, file);
	put_be64(nonce + 4, chunk);
	memcpy(aad, SEALED_MAGIC, SEALED_MAGIC_LEN);
	memcpy(aad + SEALED_MAGIC_LEN, manifest_hash, 32);
	memcpy(aad + SEALED_MAGIC_LEN + 32, nonce, NONCE_LEN);
	aad[AAD_LEN - 1] = final ? 1 : 0;
}

/* In place: buf holds len bytes of plaintext (encrypt) or ciphertext (decrypt). */
static int chunk_crypt(EVP_CIPHER_CTX *c, bool enc, const uint8_t manifest_hash[32], uint32_t file, uint64_t chunk,
		       bool final, uint8_t *buf, size_t len, uint8_t tag[SEALED_TAG_LEN]) {
	uint8_t nonce[NONCE_LEN], aad[AAD_LEN];
	int outl;
	chunk_params(manifest_hash, file, chunk, final, nonce, aad);
	if (EVP_CipherInit_ex(c, NULL, NULL, NULL, nonce, enc) != 1 ||
	    EVP_CipherUpdate(c, NULL, &outl, aad, AAD_LEN) != 1)
		return -EIO;
	if (len && EVP_CipherUpdate(c, buf, &outl, buf, (int)len) != 1) return -EIO;
	if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SEALED_TAG_LEN, tag) != 1) return -EIO;
	if (EVP_CipherFinal_ex(c, buf + len, &outl) != 1) return enc ? -EIO : -EBADE;
	if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SEALED_TAG_LEN, tag) != 1) return -EIO;
	return 0;
}

static int cipher_new(bool enc, const uint8_t data_key[SEALED_KEY_LEN], const uint8_t manifest_hash[32],
		      EVP_CIPHER_CTX **ret) {
	uint8_t k[SEALED_KEY_LEN];
	int r = derive_chunk_key(data_key, manifest_hash, k);
	if (r < 0) return r;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	/* The key schedule is set once; each chunk only changes the IV. */
	if (!c || EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, k, NULL, enc) != 1) {
		EVP_CIPHER_CTX_free(c);
		wipe(k, sizeof k);
		return -EIO;
	}
	wipe(k, sizeof k);
	*ret = c;
	return 0;
}

/* --- writer ---------------------------------------------------------------------------------------------- */

static int source_read(const struct sealed_source *s, uint64_t off, uint8_t *buf, size_t n) {
	if (off + n > s->size) return -EINVAL;
	if (s->data) {
		memcpy(buf, s->data + off, n);
		return 0;
	}
	while (n) {
		ssize_t k = pread(s->fd, buf, n, (off_t)off);
		if (k < 0 && errno == EINTR) continue;
		if (k < 0) return negerrno();
		if (k == 0) return -EPIPE; /* the file shrank under us */
		buf += k, off += (uint64_t)k, n -= (size_t)k;
	}
	return 0;
}

int sealed_source_sha256(const struct sealed_source *s, uint8_t ret[32]) {
	if (!s || !ret) return -EINVAL;
	if (s->data) {
		SHA256(s->data, s->size, ret);
		return 0;
	}
	_cleanup_free_ uint8_t *buf = malloc(1u << 20);
	if (!buf) return -ENOMEM;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int r = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
	for (uint64_t off = 0; r == 0 && off < s->size;) {
		size_t n = (size_t)MIN((uint64_t)(1u << 20), s->size - off);
		r = source_read(s, off, buf, n);
		if (r == 0 && EVP_DigestUpdate(c, buf, n) != 1) r = -EIO;
		off += n;
	}
	if (r == 0 && EVP_DigestFinal_ex(c, ret, NULL) != 1) r = -EIO;
	EVP_MD_CTX_free(c);
	return r;
}

int sealed_write(int out_fd, const struct sealed_manifest *m, const struct sealed_source *src,
		 const uint8_t data_key[SEALED_KEY_LEN], EVP_PKEY *signer, uint8_t ret_manifest_hash[32]) {
	if (out_fd < 0 || !src || !data_key || !signer) return -EINVAL;
	_cleanup_free_ uint8_t *man = NULL, *signed_man = NULL;
	size_t man_len, signed_len;
	int r = sealed_manifest_encode(m, &man, &man_len);
	if (r < 0) return r;
	for (size_t i = 0; i < m->n_files; i++)
		if (src[i].size != m->files[i].size) return -EINVAL;
	r = cose_sign1_sign(COSE_ALG_EDDSA, signer, man, man_len, NULL, 0, true, &signed_man, &signed_len);
	if (r < 0) return r;
	if (signed_len > SEALED_MANIFEST_MAX) return -E2BIG;
	uint8_t hash[32], hdr[SEALED_MAGIC_LEN + 4];
	SHA256(man, man_len, hash);
	memcpy(hdr, SEALED_MAGIC, SEALED_MAGIC_LEN);
	put_be32(hdr + SEALED_MAGIC_LEN, (uint32_t)signed_len);
	if ((r = write_all(out_fd, hdr, sizeof hdr)) < 0 || (r = write_all(out_fd, signed_man, signed_len)) < 0)
		return r;

	EVP_CIPHER_CTX *c = NULL;
	if ((r = cipher_new(true, data_key, hash, &c)) < 0) return r;
	uint8_t *buf = malloc((size_t)m->chunk_size + SEALED_TAG_LEN);
	EVP_MD_CTX *sc = EVP_MD_CTX_new();
	if (!buf || !sc) {
		r = -ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < m->n_files && r >= 0; i++) {
		const struct sealed_file *f = &m->files[i];
		uint64_t n = sealed_chunk_count(f->size, m->chunk_size);
		if (EVP_DigestInit_ex(sc, EVP_sha256(), NULL) != 1) {
			r = -EIO;
			goto done;
		}
		for (uint64_t j = 0; j < n; j++) {
			uint64_t off = j * m->chunk_size;
			size_t len = (size_t)MIN((uint64_t)m->chunk_size, f->size - off);
			if ((r = source_read(&src[i], off, buf, len)) < 0) goto done;
			if (EVP_DigestUpdate(sc, buf, len) != 1) {
				r = -EIO;
				goto done;
			}
			if ((r = chunk_crypt(c, true, hash, (uint32_t)i, j, j + 1 == n, buf, len, buf + len)) < 0 ||
			    (r = write_all(out_fd, buf, len + SEALED_TAG_LEN)) < 0)
				goto done;
		}
		/* The data may have changed since it was hashed for the manifest: never write a lie. */
		uint8_t h[32];
		if (EVP_DigestFinal_ex(sc, h, NULL) != 1) r = -EIO;
		else if (memcmp(h, f->sha256, 32) != 0) r = -EILSEQ;
	}
	if (r >= 0 && ret_manifest_hash) memcpy(ret_manifest_hash, hash, 32);
done:
	if (buf) free_secret(buf, (size_t)m->chunk_size + SEALED_TAG_LEN);
	EVP_CIPHER_CTX_free(c);
	EVP_MD_CTX_free(sc);
	return r < 0 ? r : 0;
}

/* --- reader ---------------------------------------------------------------------------------------------- */

struct sealed_reader {
	enum sealed_state state;
	int error;
	uint64_t max_total;
	/* header */
	uint8_t hdr[SEALED_MAGIC_LEN + 4];
	size_t hdr_got;
	uint8_t *signed_man;
	size_t signed_len, signed_got;
	CoseSign1 *cose;
	struct sealed_manifest *m;
	uint8_t hash[32];
	bool verified;
	/* chunks */
	EVP_CIPHER_CTX *cipher;
	uint8_t **bufs;
	size_t file;
	uint64_t chunk, n_chunks;
	size_t chunk_len, chunk_got; /* plaintext length of the current chunk, bytes of it (and tag) received */
	uint8_t tag[SEALED_TAG_LEN];
	EVP_MD_CTX *sha;
};

int sealed_reader_new(uint64_t max_total, struct sealed_reader **ret) {
	if (!ret) return -EINVAL;
	struct sealed_reader *r = calloc(1, sizeof *r);
	if (!r) return -ENOMEM;
	r->max_total = max_total && max_total < SEALED_TOTAL_MAX ? max_total : SEALED_TOTAL_MAX;
	*ret = r;
	return 0;
}

void sealed_file_free(uint8_t *p, size_t len) {
	if (!p) return;
	size_t n = MAX(len, (size_t)1);
	/* Dropping the pages is the wipe: the kernel zero-fills every page before it hands it out again, and
	 * overwriting first would fault back in every page a consumer already dropped. */
	madvise(p, n, MADV_DONTNEED);
	munmap(p, n);
}

/* Plaintext goes into private anonymous mappings: page-aligned, so a consumer can drop pages it has copied
 * (embedder_load_mem with EMBEDDER_LOAD_DISCARD) and the model is never resident twice. */
static uint8_t *file_alloc(uint64_t size) {
	void *p = mmap(NULL, (size_t)MAX(size, (uint64_t)1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) return NULL;
	madvise(p, (size_t)MAX(size, (uint64_t)1), MADV_DONTDUMP); /* never in a core dump */
	return p;
}

static void wipe_buffers(struct sealed_reader *r) {
	if (!r->bufs || !r->m) return;
	for (size_t i = 0; i < r->m->n_files; i++)
		if (r->bufs[i]) sealed_file_free(r->bufs[i], r->m->files[i].size);
	free(r->bufs);
	r->bufs = NULL;
}

struct sealed_reader *sealed_reader_free(struct sealed_reader *r) {
	if (!r) return NULL;
	wipe_buffers(r);
	EVP_CIPHER_CTX_free(r->cipher);
	EVP_MD_CTX_free(r->sha);
	free(r->signed_man);
	cose_sign1_free(r->cose);
	sealed_manifest_free(r->m);
	free(r);
	return NULL;
}

static int fail(struct sealed_reader *r, int err) {
	wipe_buffers(r);
	EVP_CIPHER_CTX_free(r->cipher);
	r->cipher = NULL;
	r->state = SEALED_FAILED;
	r->error = err;
	return err;
}

enum sealed_state sealed_reader_state(const struct sealed_reader *r) { return r->state; }
const struct sealed_manifest *sealed_reader_manifest(const struct sealed_reader *r) { return r->m; }
const uint8_t *sealed_reader_manifest_hash(const struct sealed_reader *r) { return r->m ? r->hash : NULL; }

static int header_done(struct sealed_reader *r) {
	int e = cose_sign1_decode(r->signed_man, r->signed_len, &r->cose);
	if (e == -ENOMEM) return e;
	if (e < 0 || !r->cose->tagged || r->cose->alg != COSE_ALG_EDDSA || !r->cose->payload) return -EBADMSG;
	e = sealed_manifest_parse(r->cose->payload, r->cose->payload_len, &r->m);
	if (e < 0) return e;
	uint64_t total = 0;
	for (size_t i = 0; i < r->m->n_files; i++) total += r->m->files[i].size;
	if (total > r->max_total) return -E2BIG;
	SHA256(r->cose->payload, r->cose->payload_len, r->hash);
	r->state = SEALED_NEED_KEY;
	return 0;
}

static size_t feed_header(struct sealed_reader *r, const uint8_t *p, size_t n, int *err) {
	size_t used = 0;
	if (r->hdr_got < sizeof r->hdr) {
		size_t k = MIN(n, sizeof r->hdr - r->hdr_got);
		memcpy(r->hdr + r->hdr_got, p, k);
		r->hdr_got += k, used += k;
		if (r->hdr_got < sizeof r->hdr) return used;
		if (memcmp(r->hdr, SEALED_MAGIC, SEALED_MAGIC_LEN) != 0) {
			*err = -EBADMSG;
			return used;
		}
		const uint8_t *l = r->hdr + SEALED_MAGIC_LEN;
		r->signed_len = (size_t)l[0] << 24 | (size_t)l[1] << 16 | (size_t)l[2] << 8 | l[3];
		if (r->signed_len == 0) {
			*err = -EBADMSG;
			return used;
		}
		if (r->signed_len > SEALED_MANIFEST_MAX) {
			*err = -E2BIG;
			return used;
		}
		if (!(r->signed_man = malloc(r->signed_len))) {
			*err = -ENOMEM;
			return used;
		}
	}
	size_t k = MIN(n - used, r->signed_len - r->signed_got);
	memcpy(r->signed_man + r->signed_got, p + used, k);
	r->signed_got += k, used += k;
	if (r->signed_got == r->signed_len) *err = header_done(r);
	return used;
}

static void start_chunk(struct sealed_reader *r) {
	uint64_t size = r->m->files[r->file].size, off = r->chunk * r->m->chunk_size;
	r->chunk_len = (size_t)MIN((uint64_t)r->m->chunk_size, size - off);
	r->chunk_got = 0;
}

static int start_file(struct sealed_reader *r) {
	r->chunk = 0;
	r->n_chunks = sealed_chunk_count(r->m->files[r->file].size, r->m->chunk_size);
	if (EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1) return -EIO;
	start_chunk(r);
	return 0;
}

/* A whole chunk (ciphertext in place, tag aside) has arrived. */
static int chunk_done(struct sealed_reader *r) {
	uint8_t *dst = r->bufs[r->file] + r->chunk * r->m->chunk_size;
	bool final = r->chunk + 1 == r->n_chunks;
	int e = chunk_crypt(r->cipher, false, r->hash, (uint32_t)r->file, r->chunk, final, dst, r->chunk_len, r->tag);
	if (e < 0) return e;
	if (EVP_DigestUpdate(r->sha, dst, r->chunk_len) != 1) return -EIO;
	if (!final) {
		r->chunk++;
		start_chunk(r);
		return 0;
	}
	uint8_t h[32];
	if (EVP_DigestFinal_ex(r->sha, h, NULL) != 1) return -EIO;
	if (memcmp(h, r->m->files[r->file].sha256, 32) != 0) return -EILSEQ;
	if (++r->file == r->m->n_files) {
		r->state = SEALED_DONE;
		return 0;
	}
	return start_file(r);
}

static size_t feed_chunks(struct sealed_reader *r, const uint8_t *p, size_t n, int *err) {
	size_t used = 0;
	while (used < n && r->state == SEALED_READ_CHUNKS) {
		if (r->chunk_got < r->chunk_len) {
			/* Ciphertext goes straight to its final place and is decrypted there: no staging copy. */
			uint8_t *dst = r->bufs[r->file] + r->chunk * r->m->chunk_size + r->chunk_got;
			size_t k = MIN(n - used, r->chunk_len - r->chunk_got);
			memcpy(dst, p + used, k);
			r->chunk_got += k, used += k;
		}
		size_t tag_got = r->chunk_got - r->chunk_len;
		if (r->chunk_got >= r->chunk_len && used < n) {
			size_t k = MIN(n - used, SEALED_TAG_LEN - tag_got);
			memcpy(r->tag + tag_got, p + used, k);
			r->chunk_got += k, used += k;
		}
		if (r->chunk_got == r->chunk_len + SEALED_TAG_LEN && (*err = chunk_done(r)) < 0) return used;
	}
	return used;
}

ssize_t sealed_reader_feed(struct sealed_reader *r, const void *p, size_t n) {
	if (!r || (!p && n)) return -EINVAL;
	if (r->state == SEALED_FAILED) return r->error;
	const uint8_t *b = p;
	size_t used = 0;
	int err = 0;
	if (r->state == SEALED_READ_HEADER && n) used += feed_header(r, b, n, &err);
	if (err == 0 && r->state == SEALED_READ_CHUNKS && used < n) used += feed_chunks(r, b + used, n - used, &err);
	if (err == 0 && r->state == SEALED_DONE && used < n) err = -EBADMSG; /* trailing bytes */
	if (err < 0) return fail(r, err);
	return (ssize_t)used;
}

int sealed_reader_verify(struct sealed_reader *r, const CoseKey *keys, size_t n_keys) {
	if (!r || (!keys && n_keys)) return -EINVAL;
	if (r->state != SEALED_NEED_KEY) return -EINVAL;
	for (size_t i = 0; i < n_keys; i++)
		if (keys[i].alg == COSE_ALG_EDDSA && cose_sign1_verify(r->cose, &keys[i], NULL, 0, NULL, 0) == 0) {
			r->verified = true;
			return (int)i;
		}
	return -EKEYREJECTED;
}

int sealed_reader_set_key(struct sealed_reader *r, const uint8_t data_key[SEALED_KEY_LEN]) {
	if (!r || !data_key || r->state != SEALED_NEED_KEY || !r->verified) return -EINVAL;
	int e = cipher_new(false, data_key, r->hash, &r->cipher);
	if (e < 0) return fail(r, e);
	if (!(r->bufs = calloc(r->m->n_files, sizeof *r->bufs))) return fail(r, -ENOMEM);
	for (size_t i = 0; i < r->m->n_files; i++)
		if (!(r->bufs[i] = file_alloc(r->m->files[i].size))) return fail(r, -ENOMEM);
	if (!(r->sha = EVP_MD_CTX_new())) return fail(r, -ENOMEM);
	r->file = 0;
	r->state = SEALED_READ_CHUNKS;
	if ((e = start_file(r)) < 0) return fail(r, e);
	return 0;
}

int sealed_reader_finish(struct sealed_reader *r) {
	if (!r) return -EINVAL;
	if (r->state == SEALED_FAILED) return r->error;
	if (r->state != SEALED_DONE) return fail(r, -EPIPE);
	return 0;
}

int sealed_reader_take_file(struct sealed_reader *r, size_t i, uint8_t **ret, size_t *ret_len) {
	if (!r || !ret || !ret_len || r->state != SEALED_DONE || i >= r->m->n_files || !r->bufs[i]) return -EINVAL;
	*ret = TAKE_PTR(r->bufs[i]);
	*ret_len = r->m->files[i].size;
	return 0;
}

/* --- trusted signers ------------------------------------------------------------------------------------- */

int sealed_load_signer(const char *path, CoseKey *ret) {
	if (!path || !ret) return -EINVAL;
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f) return negerrno();
	EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	if (!k) return -EBADMSG;
	uint8_t pub[32];
	size_t len = sizeof pub;
	int r = EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519 && EVP_PKEY_get_raw_public_key(k, pub, &len) == 1 &&
			len == 32
		? cose_key_ed25519(pub, ret)
		: -EKEYREJECTED;
	EVP_PKEY_free(k);
	return r;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int sealed_load_signers(const char *dir, CoseKey **ret, size_t *ret_n) {
	if (!dir || !ret || !ret_n) return -EINVAL;
	DIR *d = opendir(dir);
	if (!d) return negerrno();
	char *names[MAX_SIGNERS];
	size_t n = 0;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 5 || strcmp(de->d_name + l - 4, ".pub") != 0) continue;
		if (n == MAX_SIGNERS) {
			r = -E2BIG;
			break;
		}
		if (asprintf(&names[n], "%s/%s", dir, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	CoseKey *keys = NULL;
	if (r == 0 && n == 0) r = -ENOENT;
	if (r == 0 && !(keys = calloc(n, sizeof *keys))) r = -ENOMEM;
	qsort(names, n, sizeof *names, cmp_str); /* a stable order, so "signed by key #i" means something */
	for (size_t i = 0; i < n && r == 0; i++) r = sealed_load_signer(names[i], &keys[i]);
	for (size_t i = 0; i < n; i++) free(names[i]);
	if (r < 0) {
		free(keys);
		return r;
	}
	*ret = keys;
	*ret_n = n;
	return 0;
}
