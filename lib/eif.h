/* eif.h: the AWS Nitro Enclaves image format (EIF), as the aws-nitro-enclaves-image-format crate defines it:
 * writing an image, parsing and checking one (structure, CRC32), and computing its PCRs.
 *
 * Layout (all integers big-endian): a 548-byte header (magic ".eif", version, flags, default memory and cpus,
 * section count, 32 section offsets and 32 section sizes, unused u32, CRC32), then each section as a 12-byte
 * section header (type u16, flags u16, size u64) followed by its data. Sections in file order: kernel,
 * cmdline, metadata (JSON, version 4), ramdisks, optional signature. Offsets point at section headers. The CRC
 * (IEEE, as zlib) covers the header without its CRC field, then every section header and its data.
 *
 * Measurements (SHA-384, each PCR = SHA-384(48 zero bytes || SHA-384(data))): PCR0 over kernel || cmdline ||
 * every ramdisk, PCR1 over kernel || cmdline || first ramdisk, PCR2 over the remaining ramdisks (the hash of
 * nothing when there is one ramdisk). Metadata is not measured. PCR8 (signing certificate) is not computed:
 * signed images are parsed and flagged, not verified. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EIF_VERSION 4
#define EIF_HEADER_SIZE 548
#define EIF_SECTION_HEADER_SIZE 12
#define EIF_MAX_SECTIONS 32
#define EIF_PCR_SIZE 48
/* Parser limits: whole image and cmdline. */
#define EIF_MAX_IMAGE_SIZE (UINT64_C(4) << 30)
#define EIF_MAX_CMDLINE 4096
#define EIF_MAX_METADATA (1u << 20)
#define EIF_DEFAULT_MEM (UINT64_C(1) << 30)
#define EIF_DEFAULT_CPUS 2

enum eif_section_type {
	EIF_SECTION_INVALID = 0,
	EIF_SECTION_KERNEL = 1,
	EIF_SECTION_CMDLINE = 2,
	EIF_SECTION_RAMDISK = 3,
	EIF_SECTION_SIGNATURE = 4,
	EIF_SECTION_METADATA = 5,
};

struct eif_pcrs {
	uint8_t pcr[3][EIF_PCR_SIZE]; /* PCR0, PCR1, PCR2 */
};

struct eif_build_input {
	const char *kernel_path;
	const char *cmdline;          /* stored without a terminating NUL, as the crate does */
	const char *const *ramdisk_paths;
	size_t n_ramdisks;            /* 1 .. EIF_MAX_SECTIONS - 3 */
	const uint8_t *metadata;      /* JSON bytes of the metadata section (required: version 4 has one) */
	size_t metadata_len;
	uint64_t default_mem;         /* 0: EIF_DEFAULT_MEM */
	uint64_t default_cpus;        /* 0: EIF_DEFAULT_CPUS */
};

struct eif_info {
	uint16_t version, flags;
	uint64_t default_mem, default_cpus;
	uint16_t num_sections;
	size_t n_ramdisks;
	uint32_t crc32;
	bool has_signature;
	uint16_t section_types[EIF_MAX_SECTIONS]; /* enum eif_section_type, file order */
	uint64_t section_sizes[EIF_MAX_SECTIONS];
	const uint8_t *cmdline, *metadata; /* point into the parsed buffer (NULL/0 when absent) */
	size_t cmdline_len, metadata_len;
	struct eif_pcrs pcrs;
};

/* CRC-32/ISO-HDLC (zlib's crc32): start with 0, feed data, the running value is the result. */
uint32_t eif_crc32(uint32_t crc, const void *data, size_t len);

/* Writes a version 4 EIF to out_fd (streamed, never seeks) and returns its PCRs. Deterministic: the bytes
 * depend only on the inputs. -EINVAL on bad input, -EFBIG over the size limits, -errno on I/O. */
int eif_build(const struct eif_build_input *in, int out_fd, struct eif_pcrs *ret_pcrs);

/* Parses an image in memory: header, every section, CRC; computes the PCRs. Strict: versions 2..4, the
 * header's offsets and sizes must match the sections, no trailing bytes, known section types, kernel then
 * cmdline first, at most one metadata and one signature, at least one ramdisk. -EBADMSG when malformed, -EFBIG
 * over the limits; *ret_error (when given) gets a static one-line reason. */
int eif_parse(const uint8_t *data, size_t len, struct eif_info *ret, const char **ret_error);
/* Same on a file (mapped read-only). ret->cmdline and ->metadata are NULL after return (the map is gone). */
int eif_measure_file(const char *path, struct eif_info *ret, const char **ret_error);
/* Same, keeping copies of the cmdline and metadata (NUL-terminated, malloc'ed, NULL when absent; caller frees
 * both). */
int eif_describe_file(const char *path, struct eif_info *ret, char **ret_cmdline, char **ret_metadata,
		      const char **ret_error);

/* "kernel", "cmdline", "ramdisk", "signature", "metadata" or NULL. */
const char *eif_section_type_to_string(uint16_t type);

/* nitro-cli's shape: {"Measurements":{"HashAlgorithm":"Sha384 { ... }","PCR0":hex,"PCR1":hex,"PCR2":hex}}
 * pretty-printed with a final newline. Caller frees. */
int eif_pcrs_json(const struct eif_pcrs *pcrs, char **ret);
