/* bench-eif: throughput of the EIF pieces on a 64 MiB image: CRC-32 alone, eif_build (write + measure) and
 * eif_parse (check + measure, what `eml eif pcr` does). Best and median of 7 runs, MB/s (10^6 bytes). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "eif.h"
#include "macro.h"
#include "util.h"

#define RUNS 7
#define KERNEL_SIZE (16u << 20)
#define RAMDISK_SIZE (24u << 20)

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, double *secs, size_t bytes) {
	qsort(secs, RUNS, sizeof *secs, cmp_double);
	printf("%-28s best %7.1f MB/s  median %7.1f MB/s  (%zu bytes)\n", what, bytes / secs[0] / 1e6,
	       bytes / secs[RUNS / 2] / 1e6, bytes);
}

static char *temp_with(const uint8_t *data, size_t len) {
	char *path = strdup("/tmp/eml-bench-eif-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0 || write_all(fd, data, len) < 0) {
		perror("temp file");
		exit(1);
	}
	close(fd);
	return path;
}

int main(void) {
	size_t total = KERNEL_SIZE + 2 * RAMDISK_SIZE;
	uint8_t *buf = malloc(total);
	if (!buf) return 1;
	uint64_t x = 0x9E3779B97F4A7C15u;
	for (size_t i = 0; i < total; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
	double secs[RUNS];
	volatile uint32_t sink = 0;
	for (int r = 0; r < RUNS; r++) {
		uint64_t t = now_monotonic_usec();
		sink ^= eif_crc32(0, buf, total);
		secs[r] = (now_monotonic_usec() - t) / 1e6;
	}
	report("crc32", secs, total);

	char *k = temp_with(buf, KERNEL_SIZE);
	char *r0 = temp_with(buf + KERNEL_SIZE, RAMDISK_SIZE);
	char *r1 = temp_with(buf + KERNEL_SIZE + RAMDISK_SIZE, RAMDISK_SIZE);
	const char *rds[] = {r0, r1};
	static const char meta[] = "{}";
	struct eif_build_input in = {
		.kernel_path = k, .cmdline = "console=ttyS0", .ramdisk_paths = rds, .n_ramdisks = 2,
		.metadata = (const uint8_t *)meta, .metadata_len = 2,
	};
	int fd = -1;
	for (int r = 0; r < RUNS; r++) {
		if (fd >= 0) close(fd);
		fd = memfd_create("eif", 0);
		struct eif_pcrs pcrs;
		uint64_t t = now_monotonic_usec();
		if (eif_build(&in, fd, &pcrs) < 0) return 1;
		secs[r] = (now_monotonic_usec() - t) / 1e6;
	}
	report("eif_build (write+measure)", secs, total);

	off_t len = lseek(fd, 0, SEEK_END);
	uint8_t *img = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (img == MAP_FAILED) return 1;
	for (int r = 0; r < RUNS; r++) {
		struct eif_info info;
		uint64_t t = now_monotonic_usec();
		if (eif_parse(img, (size_t)len, &info, NULL) < 0) return 1;
		secs[r] = (now_monotonic_usec() - t) / 1e6;
	}
	report("eif_parse (check+measure)", secs, (size_t)len);
	munmap(img, (size_t)len);
	close(fd);
	unlink(k), unlink(r0), unlink(r1);
	free(k), free(r0), free(r1), free(buf);
	return sink == 0xFFFFFFFF; /* keeps the CRC loop from being optimised away */
}
