/* cmd-nsm.c: `eml nsm describe|pcr|random`: talk to /dev/nsm or eml-nsm-sim directly, for operators
 * debugging an enclave (and for the simulator's tests). Output is JSON. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "command.h"
#include "nsm-transport.h"
#include "nsm.h"
#include "util.h"


static int open_device(const char *device, Nsm **ret) {
	int r = nsm_open(device, ret);
	if (r < 0) fprintf(stderr, "error: cannot open %s: %s\n", device, strerror(-r));
	return r;
}

/* Verbs whose only option is --device: parse it and open the device. 0, or the exit status to return. */
static int open_from_args(int argc, char **argv, Nsm **ret) {
	static const struct option opts[] = {{"device", required_argument, NULL, 'd'}, {}};
	const char *device = NSM_DEVICE_DEFAULT;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		if (c != 'd') return command_usage(argv[0]);
		device = optarg;
	}
	if (optind != argc) return command_usage(argv[0]);
	return open_device(device, ret) < 0 ? 1 : 0;
}

static int nsm_fail(const char *what, int r) {
	fprintf(stderr, "error: %s: %s\n", what, nsm_strerror(r));
	return 1;
}

static int verb_describe(int argc, char **argv) {
	_cleanup_nsm_ Nsm *nsm = NULL;
	int status = open_from_args(argc, argv, &nsm);
	if (status != 0) return status;
	struct nsm_description d;
	int r = nsm_describe(nsm, &d);
	if (r < 0) return nsm_fail("DescribeNSM", r);
	printf("{\"version\":\"%u.%u.%u\",\"module_id\":\"%s\",\"max_pcrs\":%u,\"digest\":\"%s\",\"locked_pcrs\":[",
	       d.version_major, d.version_minor, d.version_patch, d.module_id, d.max_pcrs, d.digest);
	bool first = true;
	for (unsigned i = 0; i < 32; i++)
		if (d.locked_mask & (1u << i)) {
			printf("%s%u", first ? "" : ",", i);
			first = false;
		}
	printf("]}\n");
	return 0;
}
EML_COMMAND(nsm_describe, "nsm describe", "[--device /dev/nsm|unix:PATH]", "DescribeNSM, as JSON", verb_describe);

static int verb_pcr(int argc, char **argv) {
	static const struct option opts[] = {{"device", required_argument, NULL, 'd'},
					     {"extend", required_argument, NULL, 'e'},
					     {"lock", no_argument, NULL, 'l'},
					     {"lock-range", no_argument, NULL, 'L'},
					     {}};
	const char *device = NSM_DEVICE_DEFAULT, *extend_hex = NULL;
	bool lock = false, lock_range = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		switch (c) {
		case 'd': device = optarg; break;
		case 'e': extend_hex = optarg; break;
		case 'l': lock = true; break;
		case 'L': lock_range = true; break;
		default: return command_usage(argv[0]);
		}
	}
	uint64_t index;
	if (optind != argc - 1 || parse_u64(argv[optind], UINT16_MAX, &index) < 0) return command_usage(argv[0]);
	_cleanup_nsm_ Nsm *nsm = NULL;
	if (open_device(device, &nsm) < 0) return 1;
	int r;
	if (extend_hex) {
		_cleanup_free_ uint8_t *data = NULL;
		size_t len;
		uint8_t v[64];
		size_t vl;
		if (hex_decode_alloc(extend_hex, &data, &len) < 0) return command_usage(argv[0]);
		r = nsm_extend_pcr(nsm, (uint16_t)index, data, len, v, &vl);
		if (r < 0) return nsm_fail("ExtendPCR", r);
	}
	if (lock && (r = nsm_lock_pcr(nsm, (uint16_t)index)) < 0) return nsm_fail("LockPCR", r);
	if (lock_range && (r = nsm_lock_pcrs(nsm, (uint16_t)index)) < 0) return nsm_fail("LockPCRs", r);
	if (lock_range) return 0;
	bool locked;
	uint8_t v[64];
	size_t vl;
	r = nsm_describe_pcr(nsm, (uint16_t)index, &locked, v, &vl);
	if (r < 0) return nsm_fail("DescribePCR", r);
	char hex[129];
	hex_encode(v, vl, hex);
	printf("{\"index\":%u,\"lock\":%s,\"data\":\"%s\"}\n", (unsigned)index, locked ? "true" : "false", hex);
	return 0;
}
EML_COMMAND(nsm_pcr, "nsm pcr", "INDEX [--extend HEX] [--lock] [--lock-range] [--device /dev/nsm|unix:PATH]",
	    "describe a PCR (after extending or locking it); --lock-range locks PCRs [0, INDEX)", verb_pcr);

static int verb_random(int argc, char **argv) {
	_cleanup_nsm_ Nsm *nsm = NULL;
	int status = open_from_args(argc, argv, &nsm);
	if (status != 0) return status;
	uint8_t buf[NSM_RANDOM_MAX];
	size_t n;
	int r = nsm_get_random(nsm, buf, sizeof buf, &n);
	if (r < 0) return nsm_fail("GetRandom", r);
	char hex[2 * NSM_RANDOM_MAX + 1];
	hex_encode(buf, n, hex);
	puts(hex);
	wipe(buf, sizeof buf);
	return 0;
}
EML_COMMAND(nsm_random, "nsm random", "[--device /dev/nsm|unix:PATH]", "GetRandom, as hex", verb_random);
