/* cmd-eif.c: `eml eif build`, `eml eif pcr` and `eml eif ramdisk`: the enclave image file and its measurements,
 * and the deterministic initramfs archives that go into it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "command.h"
#include "cpio.h"
#include "eif.h"
#include "macro.h"
#include "util.h"

static void json_putp(json_object **o) { json_object_put(*o); }

/* The metadata section nitro-cli's describe-eif reads (EifIdentityInfo). Deterministic: the build time comes
 * from the caller or SOURCE_DATE_EPOCH, never the clock. */
static int metadata_json(const char *name, const char *version, const char *build_time, const char *kernel_version,
			 char **ret) {
	__attribute__((cleanup(json_putp))) json_object *root = json_object_new_object();
	json_object *build = json_object_new_object();
	if (!root || !build) {
		json_object_put(build);
		return -ENOMEM;
	}
	json_object_object_add(root, "ImageName", json_object_new_string(name));
	json_object_object_add(root, "ImageVersion", json_object_new_string(version));
	json_object_object_add(build, "BuildTime", json_object_new_string(build_time));
	json_object_object_add(build, "BuildTool", json_object_new_string("eml"));
	json_object_object_add(build, "BuildToolVersion", json_object_new_string(EML_VERSION));
	json_object_object_add(build, "OperatingSystem", json_object_new_string("Linux"));
	json_object_object_add(build, "KernelVersion", json_object_new_string(kernel_version));
	json_object_object_add(root, "BuildMetadata", build);
	json_object_object_add(root, "DockerInfo", NULL);
	json_object_object_add(root, "CustomMetadata", NULL);
	const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!s) return -ENOMEM;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static int default_build_time(char *buf, size_t size) {
	uint64_t epoch = 0;
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	if (sde && parse_u64(sde, INT64_MAX, &epoch) < 0) return -EINVAL;
	time_t t = (time_t)epoch;
	struct tm tm;
	if (!gmtime_r(&t, &tm)) return -EINVAL;
	return strftime(buf, size, "%Y-%m-%dT%H:%M:%S+00:00", &tm) ? 0 : -EINVAL;
}

/* Writes through a temporary file in the same directory and renames: never a half-written image at path. */
static int open_output(const char *path, char **ret_tmp) {
	char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0) return -ENOMEM;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		int r = negerrno();
		free(tmp);
		return r;
	}
	if (fchmod(fd, 0644) < 0) {
		int r = negerrno();
		close(fd);
		unlink(tmp);
		free(tmp);
		return r;
	}
	*ret_tmp = tmp;
	return fd;
}

static int close_output(int fd, char *tmp, const char *path, int r) {
	if (r == 0 && fsync(fd) < 0) r = negerrno();
	if (close(fd) < 0 && r == 0) r = negerrno();
	if (r == 0 && rename(tmp, path) < 0) r = negerrno();
	if (r < 0) unlink(tmp);
	free(tmp);
	return r;
}

static int verb_build(int argc, char **argv) {
	static const struct option opts[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"cmdline", required_argument, NULL, 'c'},
		{"ramdisk", required_argument, NULL, 'r'},
		{"output", required_argument, NULL, 'o'},
		{"name", required_argument, NULL, 'n'},
		{"image-version", required_argument, NULL, 'V'},
		{"build-time", required_argument, NULL, 't'},
		{"kernel-version", required_argument, NULL, 'K'},
		{"memory", required_argument, NULL, 'm'},
		{"cpus", required_argument, NULL, 'C'},
		{"pcrs", required_argument, NULL, 'p'},
		{},
	};
	const char *kernel = NULL, *cmdline = NULL, *out = NULL, *name = "enclave", *version = "1.0";
	const char *build_time = NULL, *kernel_version = "Unknown", *pcrs_out = NULL;
	const char *ramdisks[EIF_MAX_SECTIONS];
	size_t n_ramdisks = 0;
	uint64_t mem_mib = 0, cpus = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) >= 0) {
		switch (c) {
		case 'k': kernel = optarg; break;
		case 'c': cmdline = optarg; break;
		case 'r':
			if (n_ramdisks >= EIF_MAX_SECTIONS - 3) {
				fprintf(stderr, "error: too many ramdisks (at most %d)\n", EIF_MAX_SECTIONS - 3);
				return 2;
			}
			ramdisks[n_ramdisks++] = optarg;
			break;
		case 'o': out = optarg; break;
		case 'n': name = optarg; break;
		case 'V': version = optarg; break;
		case 't': build_time = optarg; break;
		case 'K': kernel_version = optarg; break;
		case 'p': pcrs_out = optarg; break;
		case 'm':
			if (parse_u64(optarg, UINT64_MAX >> 20, &mem_mib) < 0 || mem_mib == 0) return command_usage("eif build");
			break;
		case 'C':
			if (parse_u64(optarg, 1024, &cpus) < 0 || cpus == 0) return command_usage("eif build");
			break;
		default: return command_usage("eif build");
		}
	}
	if (!kernel || !cmdline || !out || n_ramdisks == 0 || optind != argc) return command_usage("eif build");

	char tbuf[64];
	if (!build_time) {
		if (default_build_time(tbuf, sizeof tbuf) < 0) {
			fprintf(stderr, "error: bad SOURCE_DATE_EPOCH\n");
			return 1;
		}
		build_time = tbuf;
	}
	_cleanup_free_ char *meta = NULL;
	int r = metadata_json(name, version, build_time, kernel_version, &meta);
	if (r < 0) {
		fprintf(stderr, "error: metadata: %s\n", strerror(-r));
		return 1;
	}
	struct eif_build_input in = {
		.kernel_path = kernel,
		.cmdline = cmdline,
		.ramdisk_paths = ramdisks,
		.n_ramdisks = n_ramdisks,
		.metadata = (const uint8_t *)meta,
		.metadata_len = strlen(meta),
		.default_mem = mem_mib << 20,
		.default_cpus = cpus,
	};
	char *tmp = NULL;
	int fd = open_output(out, &tmp);
	if (fd < 0) {
		fprintf(stderr, "error: %s: %s\n", out, strerror(-fd));
		return 1;
	}
	struct eif_pcrs pcrs;
	r = close_output(fd, tmp, out, eif_build(&in, fd, &pcrs));
	if (r < 0) {
		fprintf(stderr, "error: eif build: %s\n", strerror(-r));
		return 1;
	}
	_cleanup_free_ char *json = NULL;
	if (eif_pcrs_json(&pcrs, &json) < 0) return 1;
	if (pcrs_out && (r = write_file(pcrs_out, json, strlen(json), 0644)) < 0) {
		fprintf(stderr, "error: %s: %s\n", pcrs_out, strerror(-r));
		return 1;
	}
	fputs(json, stdout);
	return 0;
}
EML_COMMAND(eif_build, "eif build",
	    "--kernel BZIMAGE --cmdline CMDLINE --ramdisk CPIO [--ramdisk CPIO...] -o EIF [--name N] "
	    "[--image-version V] [--build-time RFC3339] [--kernel-version V] [--memory MIB] [--cpus N] [--pcrs FILE]",
	    "write an enclave image file and print its PCRs", verb_build);

static int verb_pcr(int argc, char **argv) {
	if (argc != 2 || argv[1][0] == '-') return command_usage("eif pcr");
	struct eif_info info;
	const char *why = NULL;
	int r = eif_measure_file(argv[1], &info, &why);
	if (r < 0) {
		fprintf(stderr, "error: %s: %s (%s)\n", argv[1], why ? why : "invalid image", strerror(-r));
		return 1;
	}
	_cleanup_free_ char *json = NULL;
	if (eif_pcrs_json(&info.pcrs, &json) < 0) return 1;
	fputs(json, stdout);
	return 0;
}
EML_COMMAND(eif_pcr, "eif pcr", "EIF", "check an enclave image file and print its PCR0/1/2 as nitro-cli does",
	    verb_pcr);

static int verb_describe(int argc, char **argv) {
	if (argc != 2 || argv[1][0] == '-') return command_usage("eif describe");
	struct eif_info info;
	const char *why = NULL;
	_cleanup_free_ char *cmdline = NULL, *metadata = NULL;
	int r = eif_describe_file(argv[1], &info, &cmdline, &metadata, &why);
	if (r < 0) {
		fprintf(stderr, "error: %s: %s (%s)\n", argv[1], why ? why : "invalid image", strerror(-r));
		return 1;
	}
	__attribute__((cleanup(json_putp))) json_object *root = json_object_new_object();
	json_object *sections = json_object_new_array(), *pcrs = json_object_new_object();
	if (!root || !sections || !pcrs) {
		json_object_put(sections);
		json_object_put(pcrs);
		return 1;
	}
	json_object_object_add(root, "version", json_object_new_int(info.version));
	json_object_object_add(root, "arch", json_object_new_string(info.flags & 1 ? "aarch64" : "x86_64"));
	json_object_object_add(root, "default_mem_mib", json_object_new_int64((int64_t)(info.default_mem >> 20)));
	json_object_object_add(root, "default_cpus", json_object_new_int64((int64_t)info.default_cpus));
	char crc[9];
	snprintf(crc, sizeof crc, "%08x", info.crc32);
	json_object_object_add(root, "crc32", json_object_new_string(crc));
	for (size_t i = 0; i < info.num_sections; i++) {
		json_object *sec = json_object_new_object();
		if (!sec) return 1;
		json_object_object_add(sec, "type", json_object_new_string(eif_section_type_to_string(info.section_types[i])));
		json_object_object_add(sec, "size", json_object_new_int64((int64_t)info.section_sizes[i]));
		json_object_array_add(sections, sec);
	}
	json_object_object_add(root, "sections", sections);
	json_object_object_add(root, "cmdline", cmdline ? json_object_new_string(cmdline) : NULL);
	/* The metadata is shown as parsed JSON when it is JSON, else as a string: it is not measured, so it is
	 * informative only and never trusted. */
	json_object *meta = metadata ? json_tokener_parse(metadata) : NULL;
	if (metadata && !meta) meta = json_object_new_string(metadata);
	json_object_object_add(root, "metadata", meta);
	json_object_object_add(root, "signed", json_object_new_boolean(info.has_signature));
	for (int i = 0; i < 3; i++) {
		char key[16], hex[2 * EIF_PCR_SIZE + 1];
		snprintf(key, sizeof key, "PCR%d", i);
		hex_encode(info.pcrs.pcr[i], EIF_PCR_SIZE, hex);
		json_object_object_add(pcrs, key, json_object_new_string(hex));
	}
	json_object_object_add(root, "pcrs", pcrs);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	return 0;
}
EML_COMMAND(eif_describe, "eif describe", "EIF", "check an enclave image file and print its header, sections and PCRs",
	    verb_describe);

static int verb_ramdisk(int argc, char **argv) {
	static const struct option opts[] = {{"output", required_argument, NULL, 'o'}, {}};
	const char *out = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) >= 0) {
		if (c != 'o') return command_usage("eif ramdisk");
		out = optarg;
	}
	if (!out || optind + 1 != argc) return command_usage("eif ramdisk");
	char *tmp = NULL;
	int fd = open_output(out, &tmp);
	if (fd < 0) {
		fprintf(stderr, "error: %s: %s\n", out, strerror(-fd));
		return 1;
	}
	int r = close_output(fd, tmp, out, cpio_write_tree(argv[optind], fd));
	if (r < 0) {
		fprintf(stderr, "error: eif ramdisk %s: %s\n", argv[optind], strerror(-r));
		return 1;
	}
	return 0;
}
EML_COMMAND(eif_ramdisk, "eif ramdisk", "-o CPIO DIR",
	    "archive a directory tree as a deterministic newc cpio (an initramfs)", verb_ramdisk);
