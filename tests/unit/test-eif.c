/* Tests for eif.c and cpio.c: CRC-32 check value, EIF layout and PCRs against a direct SHA-384 computation of
 * the documented definition, strict parsing of damaged images, and the newc byte layout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "cpio.h"
#include "eif.h"
#include "macro.h"
#include "util.h"

static void test_crc32(void **state) {
	/* The published check value of CRC-32/ISO-HDLC over "123456789". */
	assert_int_equal(eif_crc32(0, "123456789", 9), 0xCBF43926u);
	/* Incremental use gives the same result. */
	assert_int_equal(eif_crc32(eif_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
	assert_int_equal(eif_crc32(0, "", 0), 0);
}

static char tmpdir[64];

static char *make_file(const char *name, const void *data, size_t len) {
	char *path = NULL;
	assert_true(asprintf(&path, "%s/%s", tmpdir, name) > 0);
	assert_int_equal(write_file(path, data, len, 0644), 0);
	return path;
}

/* PCR = SHA-384(48 zero bytes || SHA-384(parts...)), computed here directly from the definition. */
static void expected_pcr(uint8_t out[48], const void *const *parts, const size_t *lens, size_t n) {
	uint8_t reg[96] = {0};
	unsigned len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	assert_non_null(ctx);
	assert_true(EVP_DigestInit_ex(ctx, EVP_sha384(), NULL));
	for (size_t i = 0; i < n; i++) assert_true(EVP_DigestUpdate(ctx, parts[i], lens[i]));
	assert_true(EVP_DigestFinal_ex(ctx, reg + 48, &len));
	EVP_MD_CTX_free(ctx);
	assert_true(EVP_Digest(reg, sizeof reg, out, &len, EVP_sha384(), NULL));
}

static uint8_t *build(const char *kernel, const char *const *rds, size_t n, size_t *ret_len, struct eif_pcrs *pcrs) {
	static const char meta[] = "{\"ImageName\":\"t\"}";
	struct eif_build_input in = {
		.kernel_path = kernel,
		.cmdline = "console=ttyS0 quiet",
		.ramdisk_paths = rds,
		.n_ramdisks = n,
		.metadata = (const uint8_t *)meta,
		.metadata_len = strlen(meta),
	};
	int fd = memfd_create("eif", 0);
	assert_true(fd >= 0);
	assert_int_equal(eif_build(&in, fd, pcrs), 0);
	off_t len = lseek(fd, 0, SEEK_END);
	uint8_t *buf = malloc((size_t)len);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
	close(fd);
	*ret_len = (size_t)len;
	return buf;
}

static uint64_t be64(const uint8_t *p) {
	uint64_t v = 0;
	for (int i = 0; i < 8; i++) v = v << 8 | p[i];
	return v;
}

static void test_eif_build_parse(void **state) {
	static const char kernel[] = "not really a bzImage but bytes to measure";
	static const char rd0[] = "bootstrap ramdisk", rd1[] = "application ramdisk!";
	static const char cmdline[] = "console=ttyS0 quiet";
	_cleanup_free_ char *kp = make_file("kernel", kernel, sizeof kernel - 1);
	_cleanup_free_ char *r0 = make_file("rd0", rd0, sizeof rd0 - 1);
	_cleanup_free_ char *r1 = make_file("rd1", rd1, sizeof rd1 - 1);
	const char *rds[] = {r0, r1};
	struct eif_pcrs built;
	size_t len;
	_cleanup_free_ uint8_t *img = build(kp, rds, 2, &len, &built);

	/* Layout: header, kernel section header at 548, sizes as the crate writes them. */
	assert_memory_equal(img, ".eif", 4);
	assert_int_equal(img[4] << 8 | img[5], 4);           /* version */
	assert_int_equal(be64(img + 8), UINT64_C(1) << 30);  /* default memory */
	assert_int_equal(be64(img + 16), 2);                 /* default cpus */
	assert_int_equal(img[26] << 8 | img[27], 5);         /* kernel, cmdline, metadata, 2 ramdisks */
	assert_int_equal(be64(img + 28), 548);               /* offset of the kernel section header */
	assert_int_equal(be64(img + 28 + 256), sizeof kernel - 1);
	assert_int_equal(img[548] << 8 | img[549], 1);       /* kernel type */
	assert_memory_equal(img + 548 + 12, kernel, sizeof kernel - 1);
	size_t cmd_off = 548 + 12 + sizeof kernel - 1;
	assert_int_equal(be64(img + 36), cmd_off);
	assert_int_equal(img[cmd_off + 1], 2);
	assert_memory_equal(img + cmd_off + 12, cmdline, sizeof cmdline - 1); /* no NUL */
	assert_int_equal(be64(img + 28 + 256 + 8), sizeof cmdline - 1);
	/* The CRC covers everything but its own field. */
	uint32_t crc = eif_crc32(eif_crc32(0, img, 544), img + 548, len - 548);
	assert_int_equal(crc, (uint32_t)img[544] << 24 | img[545] << 16 | img[546] << 8 | img[547]);

	uint8_t pcr[48];
	const void *p0[] = {kernel, cmdline, rd0, rd1};
	const size_t l0[] = {sizeof kernel - 1, sizeof cmdline - 1, sizeof rd0 - 1, sizeof rd1 - 1};
	expected_pcr(pcr, p0, l0, 4);
	assert_memory_equal(built.pcr[0], pcr, 48);
	expected_pcr(pcr, p0, l0, 3);
	assert_memory_equal(built.pcr[1], pcr, 48);
	expected_pcr(pcr, p0 + 3, l0 + 3, 1);
	assert_memory_equal(built.pcr[2], pcr, 48);

	struct eif_info info;
	const char *why = NULL;
	assert_int_equal(eif_parse(img, len, &info, &why), 0);
	assert_memory_equal(&info.pcrs, &built, sizeof built);
	assert_int_equal(info.n_ramdisks, 2);
	assert_int_equal(info.cmdline_len, sizeof cmdline - 1);
	assert_false(info.has_signature);

	/* One flipped byte anywhere: CRC mismatch (or a structural error in the header). */
	img[len - 1] ^= 1;
	assert_int_equal(eif_parse(img, len, &info, &why), -EBADMSG);
	assert_string_equal(why, "CRC32 mismatch");
	img[len - 1] ^= 1;
	/* Truncation and trailing bytes. */
	assert_int_equal(eif_parse(img, len - 1, &info, &why), -EBADMSG);
	assert_int_equal(eif_parse(img, 100, &info, &why), -EBADMSG);
	_cleanup_free_ uint8_t *longer = malloc(len + 1);
	memcpy(longer, img, len);
	longer[len] = 0;
	assert_int_equal(eif_parse(longer, len + 1, &info, &why), -EBADMSG);
	assert_string_equal(why, "trailing bytes after the last section");
	/* A section size in the header that disagrees with the section header. */
	img[28 + 256 + 7] ^= 1;
	assert_int_equal(eif_parse(img, len, &info, &why), -EBADMSG);
	img[28 + 256 + 7] ^= 1;
	img[0] = 'x';
	assert_int_equal(eif_parse(img, len, &info, &why), -EBADMSG);

	unlink(kp);
	unlink(r0);
	unlink(r1);
}

static void test_eif_one_ramdisk(void **state) {
	_cleanup_free_ char *kp = make_file("k1", "K", 1);
	_cleanup_free_ char *r0 = make_file("r1", "R", 1);
	const char *rds[] = {r0};
	struct eif_pcrs built;
	size_t len;
	_cleanup_free_ uint8_t *img = build(kp, rds, 1, &len, &built);
	assert_true(len > EIF_HEADER_SIZE && img[0] == '.');
	/* Nothing measured into PCR2: the extend of SHA-384 of the empty string. */
	uint8_t pcr[48];
	expected_pcr(pcr, NULL, NULL, 0);
	assert_memory_equal(built.pcr[2], pcr, 48);
	/* ... which is the PCR2 real single-ramdisk enclaves publish (tests/vectors/eif), where PCR0 == PCR1 too. */
	const char *srcdir = getenv("EML_SRCDIR");
	_cleanup_free_ char *vec_path = NULL;
	assert_true(asprintf(&vec_path, "%s/tests/vectors/eif/single-ramdisk-pcrs.txt", srcdir ? srcdir : ".") > 0);
	_cleanup_free_ uint8_t *vec = NULL;
	size_t vec_len;
	assert_int_equal(read_file(vec_path, 4096, &vec, &vec_len), 0);
	char published[3][97];
	assert_int_equal(sscanf((const char *)vec, "PCR0 %96s PCR1 %96s PCR2 %96s", published[0], published[1], published[2]), 3);
	uint8_t pub2[48];
	assert_int_equal(hex_decode(published[2], pub2, sizeof pub2), 48);
	assert_memory_equal(built.pcr[2], pub2, 48);
	assert_string_equal(published[0], published[1]);
	assert_memory_not_equal(built.pcr[0], pcr, 48);
	/* PCR0 == PCR1 when the only ramdisk is the bootstrap one. */
	assert_memory_equal(built.pcr[0], built.pcr[1], 48);
	_cleanup_free_ char *json = NULL;
	assert_int_equal(eif_pcrs_json(&built, &json), 0);
	char hex[97];
	hex_encode(built.pcr[0], 48, hex);
	assert_non_null(strstr(json, hex));
	assert_non_null(strstr(json, "\"HashAlgorithm\": \"Sha384 { ... }\""));
	unlink(kp);
	unlink(r0);
}

static void test_cpio_layout(void **state) {
	int fd = memfd_create("cpio", 0);
	assert_true(fd >= 0);
	cpio_writer *w = NULL;
	assert_int_equal(cpio_writer_new(fd, &w), 0);
	assert_int_equal(cpio_add_dir(w, "etc", 0755), 0);
	assert_int_equal(cpio_add_file(w, "etc/a", 0644, "hello", 5), 0);
	assert_int_equal(cpio_add_symlink(w, "init", "bin/x"), 0);
	assert_int_equal(cpio_add_node(w, "console", S_IFCHR | 0600, 5, 1), 0);
	/* Invalid paths are refused. */
	assert_int_equal(cpio_add_dir(w, "/abs", 0755), -EINVAL);
	assert_int_equal(cpio_add_dir(w, "a/../b", 0755), -EINVAL);
	assert_int_equal(cpio_add_dir(w, "a//b", 0755), -EINVAL);
	assert_int_equal(cpio_add_dir(w, "", 0755), -EINVAL);
	int64_t total = cpio_finish(w);
	assert_true(total > 0);
	assert_int_equal(total % 4, 0);
	assert_int_equal(cpio_add_dir(w, "late", 0755), -EBADF);
	cpio_writer_free(w);

	char buf[1024] = {0};
	assert_int_equal(pread(fd, buf, sizeof buf, 0), total);
	close(fd);
	/* First header: magic, ino 1, dir 0755, uid 0, gid 0, nlink 2, mtime 0, size 0, namesize 4. */
	assert_memory_equal(buf, "070701" "00000001" "000041ED" "00000000" "00000000" "00000002" "00000000"
				 "00000000" "00000000" "00000000" "00000000" "00000000" "00000004" "00000000", 110);
	assert_memory_equal(buf + 110, "etc\0", 4);
	/* Second header starts 4-aligned right after: 110 + 4 = 114 -> 116. */
	assert_memory_equal(buf + 116, "070701" "00000002" "000081A4", 22);
	assert_memory_equal(buf + 116 + 110, "etc/a\0", 6);
	/* 116 + 110 + 6 = 232 (aligned); data "hello" then pad to 240. */
	assert_memory_equal(buf + 232, "hello\0\0\0", 8);
	assert_memory_equal(buf + 240, "070701" "00000003" "0000A1FF", 22);
	/* The device node carries rdev 5:1. */
	const char *node = memmem(buf, (size_t)total, "000021800000000000000000000000010000000000000000000000000000000000000005" "00000001", 80);
	assert_non_null(node);
	assert_non_null(memmem(buf, (size_t)total, "TRAILER!!!", 10));
}

int main(void) {
	snprintf(tmpdir, sizeof tmpdir, "/tmp/eml-test-eif-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32),
		cmocka_unit_test(test_eif_build_parse),
		cmocka_unit_test(test_eif_one_ramdisk),
		cmocka_unit_test(test_cpio_layout),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(tmpdir);
	return r;
}
