/* eif.c: EIF writer, parser and PCR computation (see eif.h). */
#include "eif.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "macro.h"
#include "util.h"

static const uint8_t eif_magic[4] = {'.', 'e', 'i', 'f'};

/* The byte-at-a-time table of the reflected polynomial 0xEDB88320, computed by the compiler: constant data, no
 * initialisation step, no mutable global. */
#define CRC_BIT(c) (((c) >> 1) ^ (((c) & 1u) ? 0xEDB88320u : 0u))
#define CRC_BYTE(c) CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT((uint32_t)(c)))))))))
#define CRC_2(n) CRC_BYTE(n), CRC_BYTE((n) + 1)
#define CRC_4(n) CRC_2(n), CRC_2((n) + 2)
#define CRC_8(n) CRC_4(n), CRC_4((n) + 4)
#define CRC_16(n) CRC_8(n), CRC_8((n) + 8)
#define CRC_32(n) CRC_16(n), CRC_16((n) + 16)
#define CRC_64(n) CRC_32(n), CRC_32((n) + 32)
#define CRC_128(n) CRC_64(n), CRC_64((n) + 64)
static const uint32_t crc_table[256] = {CRC_128(0), CRC_128(128)};

uint32_t eif_crc32(uint32_t crc, const void *data, size_t len) {
	const uint8_t *p = data;
	crc = ~crc;
	for (size_t i = 0; i < len; i++) crc = (crc >> 8) ^ crc_table[(crc ^ p[i]) & 0xFF];
	return ~crc;
}

static void put_be16(uint8_t *p, uint16_t v) {
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static void put_be32(uint8_t *p, uint32_t v) {
	for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static void put_be64(uint8_t *p, uint64_t v) {
	for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get_be32(const uint8_t *p) {
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t get_be64(const uint8_t *p) {
	uint64_t v = 0;
	for (int i = 0; i < 8; i++) v = v << 8 | p[i];
	return v;
}

/* Header field offsets. */
#define H_VERSION 4
#define H_FLAGS 6
#define H_MEM 8
#define H_CPUS 16
#define H_RESERVED 24
#define H_NUM 26
#define H_OFFSETS 28
#define H_SIZES (H_OFFSETS + 8 * EIF_MAX_SECTIONS)
#define H_UNUSED (H_SIZES + 8 * EIF_MAX_SECTIONS)
#define H_CRC (H_UNUSED + 4)

_Static_assert(H_CRC + 4 == EIF_HEADER_SIZE, "EIF header layout");

/* --- measurement --- */

struct measure {
	EVP_MD_CTX *pcr0, *pcr1, *pcr2;
};

static void measure_done(struct measure *m) {
	EVP_MD_CTX_free(m->pcr0);
	EVP_MD_CTX_free(m->pcr1);
	EVP_MD_CTX_free(m->pcr2);
}

static int measure_init(struct measure *m) {
	*m = (struct measure){EVP_MD_CTX_new(), EVP_MD_CTX_new(), EVP_MD_CTX_new()};
	if (!m->pcr0 || !m->pcr1 || !m->pcr2) return -ENOMEM;
	if (!EVP_DigestInit_ex(m->pcr0, EVP_sha384(), NULL) || !EVP_DigestInit_ex(m->pcr1, EVP_sha384(), NULL) ||
	    !EVP_DigestInit_ex(m->pcr2, EVP_sha384(), NULL))
		return -EIO;
	return 0;
}

/* ramdisk_index: -1 for kernel/cmdline. PCR1's data is a prefix of PCR0's (kernel, cmdline, first ramdisk), so
 * it is not hashed twice: PCR1 is a snapshot of PCR0's state taken after the first ramdisk. */
static int measure_section(struct measure *m, int ramdisk_index, const uint8_t *data, size_t len) {
	if (!EVP_DigestUpdate(m->pcr0, data, len)) return -EIO;
	if (ramdisk_index == 0 && !EVP_MD_CTX_copy_ex(m->pcr1, m->pcr0)) return -EIO;
	if (ramdisk_index > 0 && !EVP_DigestUpdate(m->pcr2, data, len)) return -EIO;
	return 0;
}

/* PCR = SHA-384(zeros || SHA-384(measured data)): a TPM-style extend of one value into a zeroed register. */
static int extend_final(EVP_MD_CTX *ctx, uint8_t out[EIF_PCR_SIZE]) {
	uint8_t reg[2 * EIF_PCR_SIZE] = {0};
	unsigned n = 0;
	if (!EVP_DigestFinal_ex(ctx, reg + EIF_PCR_SIZE, &n) || n != EIF_PCR_SIZE) return -EIO;
	if (!EVP_Digest(reg, sizeof reg, out, &n, EVP_sha384(), NULL) || n != EIF_PCR_SIZE) return -EIO;
	return 0;
}

static int measure_finish(struct measure *m, struct eif_pcrs *ret) {
	int r = extend_final(m->pcr0, ret->pcr[0]);
	if (r == 0) r = extend_final(m->pcr1, ret->pcr[1]);
	if (r == 0) r = extend_final(m->pcr2, ret->pcr[2]);
	return r;
}

/* --- building --- */

struct mapped {
	uint8_t *data;
	size_t len;
};

static void unmap(struct mapped *m) {
	if (m->data && m->len) munmap(m->data, m->len);
	*m = (struct mapped){0};
}

static int map_file(const char *path, struct mapped *ret) {
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return negerrno();
	struct stat st;
	if (fstat(fd, &st) < 0) return negerrno();
	if (!S_ISREG(st.st_mode)) return -EINVAL;
	if ((uint64_t)st.st_size > EIF_MAX_IMAGE_SIZE) return -EFBIG;
	*ret = (struct mapped){0};
	if (st.st_size == 0) return 0;
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) return negerrno();
	*ret = (struct mapped){p, (size_t)st.st_size};
	return 0;
}

struct section {
	uint16_t type;
	const uint8_t *data;
	size_t len;
};

static void section_header(uint8_t out[EIF_SECTION_HEADER_SIZE], const struct section *s) {
	put_be16(out, s->type);
	put_be16(out + 2, 0);
	put_be64(out + 4, s->len);
}

static int write_image(const struct eif_build_input *in, const struct section *secs, size_t n, int out_fd,
		       struct eif_pcrs *ret_pcrs) {
	uint8_t hdr[EIF_HEADER_SIZE] = {0};
	memcpy(hdr, eif_magic, 4);
	put_be16(hdr + H_VERSION, EIF_VERSION);
	put_be16(hdr + H_FLAGS, 0); /* x86_64 */
	put_be64(hdr + H_MEM, in->default_mem ? in->default_mem : EIF_DEFAULT_MEM);
	put_be64(hdr + H_CPUS, in->default_cpus ? in->default_cpus : EIF_DEFAULT_CPUS);
	put_be16(hdr + H_NUM, (uint16_t)n);
	uint64_t off = EIF_HEADER_SIZE;
	for (size_t i = 0; i < n; i++) {
		put_be64(hdr + H_OFFSETS + 8 * i, off);
		put_be64(hdr + H_SIZES + 8 * i, secs[i].len);
		off += EIF_SECTION_HEADER_SIZE + secs[i].len;
		if (off > EIF_MAX_IMAGE_SIZE) return -EFBIG;
	}

	struct measure m;
	int r = measure_init(&m);
	if (r < 0) goto done;
	uint32_t crc = eif_crc32(0, hdr, H_CRC);
	int ramdisk = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t sh[EIF_SECTION_HEADER_SIZE];
		section_header(sh, &secs[i]);
		crc = eif_crc32(crc, sh, sizeof sh);
		crc = eif_crc32(crc, secs[i].data, secs[i].len);
		if (secs[i].type == EIF_SECTION_METADATA) continue;
		r = measure_section(&m, secs[i].type == EIF_SECTION_RAMDISK ? ramdisk++ : -1, secs[i].data, secs[i].len);
		if (r < 0) goto done;
	}
	put_be32(hdr + H_CRC, crc);
	r = measure_finish(&m, ret_pcrs);
	if (r < 0) goto done;

	r = write_all(out_fd, hdr, sizeof hdr);
	for (size_t i = 0; i < n && r == 0; i++) {
		uint8_t sh[EIF_SECTION_HEADER_SIZE];
		section_header(sh, &secs[i]);
		r = write_all(out_fd, sh, sizeof sh);
		if (r == 0 && secs[i].len) r = write_all(out_fd, secs[i].data, secs[i].len);
	}
done:
	measure_done(&m);
	return r;
}

int eif_build(const struct eif_build_input *in, int out_fd, struct eif_pcrs *ret_pcrs) {
	if (!in || !in->kernel_path || !in->cmdline || !ret_pcrs || out_fd < 0) return -EINVAL;
	if (in->n_ramdisks < 1 || in->n_ramdisks > EIF_MAX_SECTIONS - 3 || !in->ramdisk_paths) return -EINVAL;
	if (!in->metadata || in->metadata_len == 0) return -EINVAL;
	if (in->metadata_len > EIF_MAX_METADATA) return -EFBIG;
	size_t cmdline_len = strlen(in->cmdline);
	if (cmdline_len > EIF_MAX_CMDLINE) return -EFBIG;

	struct mapped maps[EIF_MAX_SECTIONS] = {0};
	struct section secs[EIF_MAX_SECTIONS];
	size_t n = 0, nmaps = 0;
	int r = map_file(in->kernel_path, &maps[nmaps]);
	if (r < 0) goto done;
	if (maps[nmaps].len == 0) {
		r = -EINVAL;
		goto done;
	}
	secs[n++] = (struct section){EIF_SECTION_KERNEL, maps[nmaps].data, maps[nmaps].len};
	nmaps++;
	secs[n++] = (struct section){EIF_SECTION_CMDLINE, (const uint8_t *)in->cmdline, cmdline_len};
	secs[n++] = (struct section){EIF_SECTION_METADATA, in->metadata, in->metadata_len};
	for (size_t i = 0; i < in->n_ramdisks; i++) {
		if (!in->ramdisk_paths[i]) {
			r = -EINVAL;
			goto done;
		}
		r = map_file(in->ramdisk_paths[i], &maps[nmaps]);
		if (r < 0) goto done;
		secs[n++] = (struct section){EIF_SECTION_RAMDISK, maps[nmaps].data, maps[nmaps].len};
		nmaps++;
	}
	r = write_image(in, secs, n, out_fd, ret_pcrs);
done:
	for (size_t i = 0; i < nmaps; i++) unmap(&maps[i]);
	return r;
}

/* --- parsing --- */

#define FAIL(code, why)                                                                                \
	do {                                                                                           \
		if (ret_error) *ret_error = (why);                                                     \
		r = (code);                                                                            \
		goto done;                                                                             \
	} while (0)

int eif_parse(const uint8_t *data, size_t len, struct eif_info *ret, const char **ret_error) {
	if (!data || !ret) return -EINVAL;
	struct eif_info info = {0};
	struct measure m;
	int r = measure_init(&m);
	if (r < 0) goto done;
	if ((uint64_t)len > EIF_MAX_IMAGE_SIZE) FAIL(-EFBIG, "image larger than the limit");
	if (len < EIF_HEADER_SIZE) FAIL(-EBADMSG, "shorter than an EIF header");
	if (memcmp(data, eif_magic, 4) != 0) FAIL(-EBADMSG, "bad magic (not an EIF)");
	info.version = get_be16(data + H_VERSION);
	if (info.version < 2 || info.version > EIF_VERSION) FAIL(-EBADMSG, "unsupported EIF version");
	info.flags = get_be16(data + H_FLAGS);
	info.default_mem = get_be64(data + H_MEM);
	info.default_cpus = get_be64(data + H_CPUS);
	info.num_sections = get_be16(data + H_NUM);
	info.crc32 = get_be32(data + H_CRC);
	if (info.num_sections < 3 || info.num_sections > EIF_MAX_SECTIONS) FAIL(-EBADMSG, "bad section count");
	for (size_t i = info.num_sections; i < EIF_MAX_SECTIONS; i++)
		if (get_be64(data + H_OFFSETS + 8 * i) || get_be64(data + H_SIZES + 8 * i))
			FAIL(-EBADMSG, "offset or size given for an absent section");

	uint32_t crc = eif_crc32(0, data, H_CRC);
	size_t pos = EIF_HEADER_SIZE;
	int ramdisks = 0;
	for (size_t i = 0; i < info.num_sections; i++) {
		if (len - pos < EIF_SECTION_HEADER_SIZE) FAIL(-EBADMSG, "truncated section header");
		if (get_be64(data + H_OFFSETS + 8 * i) != pos) FAIL(-EBADMSG, "section offset does not match");
		const uint8_t *sh = data + pos;
		uint16_t type = get_be16(sh);
		uint64_t size = get_be64(sh + 4);
		if (size != get_be64(data + H_SIZES + 8 * i)) FAIL(-EBADMSG, "section size does not match the header");
		pos += EIF_SECTION_HEADER_SIZE;
		if (size > len - pos) FAIL(-EBADMSG, "section runs past the end of the image");
		const uint8_t *body = data + pos;
		info.section_types[i] = type;
		info.section_sizes[i] = size;
		crc = eif_crc32(crc, sh, EIF_SECTION_HEADER_SIZE);
		crc = eif_crc32(crc, body, (size_t)size);
		pos += (size_t)size;

		if ((i == 0) != (type == EIF_SECTION_KERNEL)) FAIL(-EBADMSG, "the kernel must be the first section");
		if ((i == 1) != (type == EIF_SECTION_CMDLINE)) FAIL(-EBADMSG, "the cmdline must be the second section");
		switch (type) {
		case EIF_SECTION_KERNEL:
			if (size == 0) FAIL(-EBADMSG, "empty kernel section");
			r = measure_section(&m, -1, body, (size_t)size);
			break;
		case EIF_SECTION_CMDLINE:
			if (size > EIF_MAX_CMDLINE) FAIL(-EFBIG, "cmdline longer than the limit");
			info.cmdline = body;
			info.cmdline_len = (size_t)size;
			r = measure_section(&m, -1, body, (size_t)size);
			break;
		case EIF_SECTION_RAMDISK:
			r = measure_section(&m, ramdisks++, body, (size_t)size);
			break;
		case EIF_SECTION_METADATA:
			if (info.metadata) FAIL(-EBADMSG, "more than one metadata section");
			if (ramdisks) FAIL(-EBADMSG, "metadata after a ramdisk");
			if (size > EIF_MAX_METADATA) FAIL(-EFBIG, "metadata larger than the limit");
			info.metadata = body;
			info.metadata_len = (size_t)size;
			break;
		case EIF_SECTION_SIGNATURE:
			if (info.has_signature) FAIL(-EBADMSG, "more than one signature section");
			if (i + 1 != info.num_sections) FAIL(-EBADMSG, "the signature must be the last section");
			info.has_signature = true;
			break;
		default:
			FAIL(-EBADMSG, "unknown section type");
		}
		if (r < 0) goto done;
	}
	if (pos != len) FAIL(-EBADMSG, "trailing bytes after the last section");
	if (ramdisks == 0) FAIL(-EBADMSG, "no ramdisk section");
	if (crc != info.crc32) FAIL(-EBADMSG, "CRC32 mismatch");
	info.n_ramdisks = (size_t)ramdisks;
	r = measure_finish(&m, &info.pcrs);
	if (r < 0) goto done;
	*ret = info;
done:
	measure_done(&m);
	return r;
}

static char *dup_bytes(const uint8_t *p, size_t len) {
	char *s = malloc(len + 1);
	if (!s) return NULL;
	if (len) memcpy(s, p, len);
	s[len] = 0;
	return s;
}

int eif_describe_file(const char *path, struct eif_info *ret, char **ret_cmdline, char **ret_metadata,
		      const char **ret_error) {
	if (!path || !ret) return -EINVAL;
	struct mapped map;
	int r = map_file(path, &map);
	if (r < 0) {
		if (ret_error) *ret_error = r == -EFBIG ? "image larger than the limit" : "cannot read the image";
		return r;
	}
	static const uint8_t empty[1];
	r = eif_parse(map.data ? map.data : empty, map.len, ret, ret_error);
	char *cmdline = NULL, *metadata = NULL;
	if (r == 0 && ret_cmdline && ret->cmdline && !(cmdline = dup_bytes(ret->cmdline, ret->cmdline_len))) r = -ENOMEM;
	if (r == 0 && ret_metadata && ret->metadata && !(metadata = dup_bytes(ret->metadata, ret->metadata_len)))
		r = -ENOMEM;
	unmap(&map);
	if (r < 0) {
		free(cmdline);
		free(metadata);
		return r;
	}
	ret->cmdline = ret->metadata = NULL;
	ret->cmdline_len = ret->metadata_len = 0;
	if (ret_cmdline) *ret_cmdline = cmdline;
	if (ret_metadata) *ret_metadata = metadata;
	return 0;
}

int eif_measure_file(const char *path, struct eif_info *ret, const char **ret_error) {
	return eif_describe_file(path, ret, NULL, NULL, ret_error);
}

const char *eif_section_type_to_string(uint16_t type) {
	static const char *const names[] = {
		[EIF_SECTION_KERNEL] = "kernel",       [EIF_SECTION_CMDLINE] = "cmdline",
		[EIF_SECTION_RAMDISK] = "ramdisk",     [EIF_SECTION_SIGNATURE] = "signature",
		[EIF_SECTION_METADATA] = "metadata",
	};
	return type < ARRAY_SIZE(names) ? names[type] : NULL;
}

int eif_pcrs_json(const struct eif_pcrs *pcrs, char **ret) {
	if (!pcrs || !ret) return -EINVAL;
	char hex[3][2 * EIF_PCR_SIZE + 1];
	for (int i = 0; i < 3; i++) hex_encode(pcrs->pcr[i], EIF_PCR_SIZE, hex[i]);
	char *s = NULL;
	if (asprintf(&s,
		     "{\n  \"Measurements\": {\n    \"HashAlgorithm\": \"Sha384 { ... }\",\n"
		     "    \"PCR0\": \"%s\",\n    \"PCR1\": \"%s\",\n    \"PCR2\": \"%s\"\n  }\n}\n",
		     hex[0], hex[1], hex[2]) < 0)
		return -ENOMEM;
	*ret = s;
	return 0;
}
