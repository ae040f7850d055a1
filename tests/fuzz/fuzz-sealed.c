/* libFuzzer target: sealed models. The first byte picks a mode:
 *   0..127   the whole input (minus that byte) is a sealed stream fed to the reader in pieces whose sizes
 *            come from the byte; a manifest that parses is run past signature check with the real key
 *            when the input happens to carry it (it never will: this exercises the header path);
 *   128..255 the rest is the chunk stream after a fixed, validly signed header (so the decrypting path is
 *            reached), fed in pieces; the manifest parser also gets the raw bytes. */
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include "sealed.h"
#include "util.h"

static uint8_t *header;
static size_t header_len;
static CoseKey pub;
static const uint8_t data_key[SEALED_KEY_LEN] = {7};

/* A small two-file model signed once per process. */
static void init(void) {
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	uint8_t raw[32];
	size_t rl = 32;
	if (!k || EVP_PKEY_get_raw_public_key(k, raw, &rl) != 1 || cose_key_ed25519(raw, &pub) < 0) __builtin_trap();
	static uint8_t a[5000], b[10];
	memset(a, 'a', sizeof a);
	struct sealed_file files[2] = {{.name = (char *)"a", .size = sizeof a}, {.name = (char *)"b", .size = sizeof b}};
	struct sealed_source src[2] = {{.data = a, .fd = -1, .size = sizeof a}, {.data = b, .fd = -1, .size = sizeof b}};
	for (int i = 0; i < 2; i++)
		if (sealed_source_sha256(&src[i], files[i].sha256) < 0) __builtin_trap();
	uint8_t edk[4] = {1, 2, 3, 4};
	struct sealed_manifest m = {.model_id = (char *)"m", .version = (char *)"1", .files = files, .n_files = 2,
				    .kms_key_id = (char *)"k", .encrypted_data_key = edk, .edk_len = sizeof edk,
				    .chunk_size = SEALED_CHUNK_MIN};
	int fd = memfd_create("seal", 0);
	if (fd < 0 || sealed_write(fd, &m, src, data_key, k, NULL) < 0) __builtin_trap();
	/* Keep only the header: magic, length and signed manifest. */
	uint8_t hdr[12];
	if (pread(fd, hdr, 12, 0) != 12) __builtin_trap();
	header_len = 12 + ((size_t)hdr[8] << 24 | (size_t)hdr[9] << 16 | (size_t)hdr[10] << 8 | hdr[11]);
	header = malloc(header_len);
	if (!header || pread(fd, header, header_len, 0) != (ssize_t)header_len) __builtin_trap();
	close(fd);
	EVP_PKEY_free(k);
}

static void feed(struct sealed_reader *r, const uint8_t *p, size_t n, size_t step) {
	size_t off = 0;
	while (off < n) {
		ssize_t k = sealed_reader_feed(r, p + off, MIN(step, n - off));
		if (k < 0) return;
		off += (size_t)k;
		if (sealed_reader_state(r) == SEALED_NEED_KEY) {
			if (sealed_reader_verify(r, &pub, 1) < 0 || sealed_reader_set_key(r, data_key) < 0) return;
		}
	}
	if (sealed_reader_finish(r) == 0) {
		const struct sealed_manifest *m = sealed_reader_manifest(r);
		for (size_t i = 0; i < m->n_files; i++) {
			uint8_t *buf;
			size_t len;
			if (sealed_reader_take_file(r, i, &buf, &len) < 0 || len != m->files[i].size) __builtin_trap();
			sealed_file_free(buf, len);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (!header) init();
	if (size < 1) return 0;
	uint8_t mode = data[0];
	data++, size--;
	size_t step = (mode & 0x7f) * 37 + 1;
	struct sealed_reader *r;
	if (sealed_reader_new(1u << 20, &r) < 0) return 0;
	if (mode < 128) {
		struct sealed_manifest *m = NULL;
		if (sealed_manifest_parse(data, size, &m) == 0) {
			uint8_t *enc;
			size_t len;
			/* What parses must re-encode to the same bytes (the parser demands determinism). */
			if (sealed_manifest_encode(m, &enc, &len) < 0 || len != size || memcmp(enc, data, len) != 0)
				__builtin_trap();
			free(enc);
		}
		sealed_manifest_free(m);
		feed(r, data, size, step);
	} else {
		if (sealed_reader_feed(r, header, header_len) != (ssize_t)header_len ||
		    sealed_reader_verify(r, &pub, 1) != 0 || sealed_reader_set_key(r, data_key) != 0)
			__builtin_trap();
		feed(r, data, size, step);
	}
	sealed_reader_free(r);
	return 0;
}
