/* sealed.h: sealed models (.emodel, man/eml-sealed-model.5): the signed manifest, the chunked AES-256-GCM
 * stream after it, a writer, and a streaming reader that decrypts chunk by chunk into per-file buffers.
 *
 * File layout:
 *   "EMLSEAL1" (8) | u32 BE n | COSE_Sign1 (n bytes, tagged, EdDSA, payload = manifest) | chunks
 * The manifest is deterministic CBOR (RFC 8949 4.2) with text keys:
 *   {"v":1, "model_id", "version", "files":[{"name","size","sha256"}...], "kms_key_id",
 *    "encrypted_data_key", "encryption_context":{tstr:tstr}, "chunk_size", "cipher":"AES-256-GCM"}
 * Every file is cut into ceil(size / chunk_size) chunks (one empty chunk for an empty file), in manifest
 * order; each chunk is ciphertext || 16-byte tag, so its length is implied by the manifest and nothing in the
 * stream is a length the sender chooses.
 *   manifest_hash = SHA-256(manifest CBOR)    (the "model" hash of the attested session's user_data)
 *   chunk key     = HKDF-SHA256(ikm = data key, salt = manifest_hash, info = "eml/1 sealed model chunks")
 *   nonce         = u32 BE file index || u64 BE chunk index
 *   AAD           = "EMLSEAL1" || manifest_hash || u32 BE file index || u64 BE chunk index || u8 final
 * Deterministic nonces are unique because (file, chunk) never repeats within one manifest, and the chunk key
 * is bound to the manifest hash, so even a data key reused across two manifests never meets the same nonce
 * under the same key; no RNG is needed at seal time. The AAD makes truncation, reordering, splicing across
 * files or models, and any byte change fail the tag; sizes and SHA-256 are checked on top.
 *
 * Errors (negative errno): -EBADMSG malformed (magic, CBOR, fields, trailing bytes); -E2BIG a limit;
 * -EKEYREJECTED signature not by a trusted signer; -EBADE a chunk fails authentication; -EILSEQ a file's
 * SHA-256 differs; -EPIPE stream ended early (truncated); -EINVAL API misuse; -ENOMEM. */
#pragma once

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cose.h"
#include "macro.h"

#define SEALED_MAGIC "EMLSEAL1"
#define SEALED_MAGIC_LEN 8
#define SEALED_CIPHER "AES-256-GCM"
#define SEALED_TAG_LEN 16
#define SEALED_KEY_LEN 32

/* Limits (every field of hostile input is bounded). */
#define SEALED_MANIFEST_MAX COSE_SIGN1_MAX       /* signed manifest, bytes */
#define SEALED_MAX_FILES 16
#define SEALED_NAME_MAX 128                     /* file name, model id */
#define SEALED_VERSION_MAX 64
#define SEALED_KEY_ID_MAX 2048                  /* KMS KeyId (ARN or alias) */
#define SEALED_EDK_MAX 6144                     /* KMS CiphertextBlob */
#define SEALED_CONTEXT_MAX_PAIRS 16
#define SEALED_CONTEXT_STR_MAX 1024
#define SEALED_CHUNK_MIN 4096u
#define SEALED_CHUNK_MAX (16u << 20)
#define SEALED_CHUNK_DEFAULT (1u << 20)
#define SEALED_FILE_MAX (8ull << 30)            /* any one file */
#define SEALED_TOTAL_MAX (16ull << 30)          /* sum of files (a reader may set a lower bound) */

struct sealed_file {
	char *name;
	uint64_t size;
	uint8_t sha256[32];
};

struct sealed_pair {
	char *key, *value;
};

struct sealed_manifest {
	char *model_id;
	char *version;
	struct sealed_file *files;
	size_t n_files;
	char *kms_key_id;
	uint8_t *encrypted_data_key;
	size_t edk_len;
	struct sealed_pair *context; /* sorted by key */
	size_t n_context;
	uint32_t chunk_size;
};

/* Deterministic CBOR of m (checked against the limits). -EINVAL when a field breaks a rule. */
int sealed_manifest_encode(const struct sealed_manifest *m, uint8_t **ret, size_t *ret_len);
/* Strict parse (deterministic encoding required, unknown keys refused, every limit). */
int sealed_manifest_parse(const uint8_t *buf, size_t len, struct sealed_manifest **ret);
struct sealed_manifest *sealed_manifest_free(struct sealed_manifest *m);
static inline void sealed_manifest_freep(struct sealed_manifest **m) { sealed_manifest_free(*m); }
#define _cleanup_sealed_manifest_ _cleanup_(sealed_manifest_freep)
/* Number of chunks of a file of this size (at least 1). */
uint64_t sealed_chunk_count(uint64_t size, uint32_t chunk_size);

/* --- writer ---------------------------------------------------------------------------------------------- */

/* Where a file's plaintext comes from: data (when non-NULL) or fd read with pread. */
struct sealed_source {
	const uint8_t *data;
	int fd;
	uint64_t size;
};

/* SHA-256 of a source, streamed. */
int sealed_source_sha256(const struct sealed_source *s, uint8_t ret[32]);

/* Encode m (file sizes and hashes must match src), sign it with signer (Ed25519), write header, signed
 * manifest and every chunk to out_fd. data_key is only read. Optional ret_manifest_hash. */
int sealed_write(int out_fd, const struct sealed_manifest *m, const struct sealed_source *src,
		 const uint8_t data_key[SEALED_KEY_LEN], EVP_PKEY *signer, uint8_t ret_manifest_hash[32]);

/* --- reader ---------------------------------------------------------------------------------------------- */

enum sealed_state {
	SEALED_READ_HEADER,  /* wants magic, length and the signed manifest */
	SEALED_NEED_KEY,     /* manifest parsed; call sealed_reader_verify() then sealed_reader_set_key() */
	SEALED_READ_CHUNKS,  /* decrypting */
	SEALED_DONE,         /* every file complete and hashed */
	SEALED_FAILED,       /* sticky: buffers wiped */
};

struct sealed_reader;

/* max_total: ceiling on the sum of file sizes (0 = SEALED_TOTAL_MAX). */
int sealed_reader_new(uint64_t max_total, struct sealed_reader **ret);
/* Wipes and frees every buffer not taken. NULL ok. */
struct sealed_reader *sealed_reader_free(struct sealed_reader *r);
static inline void sealed_reader_freep(struct sealed_reader **r) { sealed_reader_free(*r); }
#define _cleanup_sealed_reader_ _cleanup_(sealed_reader_freep)

/* Feed bytes as they arrive. Returns the number consumed (>= 0), which is less than n only when the reader
 * stops at the end of the signed manifest (state SEALED_NEED_KEY: feed the rest after set_key), or a
 * negative error, after which the reader is SEALED_FAILED. Bytes after the last chunk -> -EBADMSG. */
ssize_t sealed_reader_feed(struct sealed_reader *r, const void *p, size_t n);
enum sealed_state sealed_reader_state(const struct sealed_reader *r);
/* After the header: the parsed manifest (borrowed), its hash, and the signed bytes. */
const struct sealed_manifest *sealed_reader_manifest(const struct sealed_reader *r);
const uint8_t *sealed_reader_manifest_hash(const struct sealed_reader *r);
/* Check the manifest signature against trusted keys; returns the index of the key that verified, or
 * -EKEYREJECTED. Required before set_key. */
int sealed_reader_verify(struct sealed_reader *r, const CoseKey *keys, size_t n_keys);
/* Hand over the data key (copied, wiped on free); derives the chunk key and allocates the file buffers. */
int sealed_reader_set_key(struct sealed_reader *r, const uint8_t data_key[SEALED_KEY_LEN]);
/* SEALED_DONE ? 0 : -EPIPE (truncated) or the sticky error. Call when the stream ends. */
int sealed_reader_finish(struct sealed_reader *r);
/* After DONE: take ownership of file i's plaintext buffer, a private anonymous mapping (page-aligned; pages
 * may be dropped with madvise as they are consumed, e.g. embedder_load_mem's EMBEDDER_LOAD_DISCARD). Release
 * it with sealed_file_free. */
int sealed_reader_take_file(struct sealed_reader *r, size_t i, uint8_t **ret, size_t *ret_len);
/* Release a buffer from sealed_reader_take_file: its pages go back to the kernel (which zero-fills pages before
 * reuse), then it is unmapped. NULL ok. */
void sealed_file_free(uint8_t *p, size_t len);
/* Index of the named file, or -ENOENT. */
int sealed_manifest_find(const struct sealed_manifest *m, const char *name);

/* Trusted signers: every NAME.pub in dir (PEM SubjectPublicKeyInfo, Ed25519); other files are ignored.
 * -ENOENT when the directory holds none. */
int sealed_load_signers(const char *dir, CoseKey **ret, size_t *ret_n);
/* One PEM Ed25519 public key file. */
int sealed_load_signer(const char *path, CoseKey *ret);

/* Short description of one of the errors above. */
const char *sealed_strerror(int r);
