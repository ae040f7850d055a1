/* cmd-attestation.c: `eml attestation verify` (ARCHITECTURE section 7) and `eml attestation request`. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "attest.h"
#include "command.h"
#include "nitro-root.h"
#include "nsm-transport.h"
#include "nsm.h"
#include "json-hex.h"
#include "util.h"

#define DEFAULT_MAX_AGE_MS (300u * 1000u) /* freshness when checking against the clock */

static void print_doc_json(const AttestDoc *d) {
	json_object *o = json_object_new_object();
	json_object_object_add(o, "module_id", json_object_new_string(d->module_id));
	json_object_object_add(o, "timestamp", json_object_new_uint64(d->timestamp_ms));
	json_object_object_add(o, "digest", json_object_new_string(d->digest));
	json_object_object_add(o, "pcrs", json_hex_rows(&d->pcrs[0][0], ATTEST_PCR_LEN, ATTEST_PCR_COUNT, d->pcr_mask));
	json_object_object_add(o, "public_key", json_hex_new(d->public_key, d->public_key_len));
	json_object_object_add(o, "user_data", json_hex_new(d->user_data, d->user_data_len));
	json_object_object_add(o, "nonce", json_hex_new(d->nonce, d->nonce_len));
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static int fail_line(bool json, const char *code, const char *reason) {
	fprintf(stderr, "error: %s: %s\n", code, reason);
	if (json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "error", json_object_new_string(code));
		json_object_object_add(o, "reason", json_object_new_string(reason));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
		json_object_put(o);
	}
	return 1;
}

static int verb_verify(int argc, char **argv) {
	static const struct option opts[] = {
		{"root", required_argument, NULL, 'r'},  {"at", required_argument, NULL, 'a'},
		{"nonce", required_argument, NULL, 'n'}, {"policy", required_argument, NULL, 'p'},
		{"json", no_argument, NULL, 'j'},        {},
	};
	const char *root_path = NULL, *policy_path = NULL, *nonce_hex = NULL;
	uint64_t at = 0;
	bool have_at = false, json = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		switch (c) {
		case 'r': root_path = optarg; break;
		case 'p': policy_path = optarg; break;
		case 'n': nonce_hex = optarg; break;
		case 'j': json = true; break;
		case 'a':
			if (parse_u64(optarg, UINT64_MAX / 2, &at) < 0) {
				fprintf(stderr, "error: --at wants milliseconds since the epoch\n");
				return 2;
			}
			have_at = true;
			break;
		default: return command_usage(argv[0]);
		}
	}
	if (optind != argc - 1) return command_usage(argv[0]);

	char reason[256] = "";
	_cleanup_x509_root_ X509Root *root = NULL;
	int r = root_path ? x509_root_load_pem(root_path, &root) : nitro_root_g1(&root);
	if (r < 0) {
		snprintf(reason, sizeof reason, "cannot load root %s: %s", root_path ? root_path : "(built-in)",
			 r == -EBADMSG ? "not a PEM certificate" : strerror(-r));
		return fail_line(json, "USAGE", reason);
	}
	_cleanup_attest_policy_ AttestPolicy *policy = NULL;
	if (policy_path) {
		r = attest_policy_load(policy_path, &policy, reason, sizeof reason);
		if (r < 0) return fail_line(json, "POLICY", reason);
	} else if ((r = attest_policy_new(&policy)) < 0)
		return fail_line(json, "INTERNAL", "out of memory");
	/* Against the clock, a document must be fresh; with --at (replaying a past document) only an explicit
	 * max_age_s applies. */
	if (!have_at && policy->max_age_ms == 0) policy->max_age_ms = DEFAULT_MAX_AGE_MS;

	_cleanup_free_ uint8_t *nonce = NULL;
	size_t nonce_len = 0;
	if (nonce_hex && (hex_decode_alloc(nonce_hex, &nonce, &nonce_len) < 0 || nonce_len > ATTEST_NONCE_MAX))
		return fail_line(json, "USAGE", "--nonce is not hex of at most 512 bytes");

	_cleanup_free_ uint8_t *doc = NULL;
	size_t len;
	r = read_file(argv[optind], ATTEST_DOC_MAX, &doc, &len);
	if (r == -EFBIG) return fail_line(json, "BAD_STRUCTURE", "document larger than 16384 bytes");
	if (r < 0) {
		snprintf(reason, sizeof reason, "cannot read %s: %s", argv[optind], strerror(-r));
		return fail_line(json, "USAGE", reason);
	}
	struct attest_verify_params p = {
		.root = root,
		.now_ms = have_at ? at : now_realtime_usec() / 1000,
		.nonce = nonce_hex ? (nonce ? nonce : (const uint8_t *)"") : NULL,
		.nonce_len = nonce_len,
		.policy = policy,
	};
	_cleanup_attest_doc_ AttestDoc *d = NULL;
	AttestError e = ATTEST_INTERNAL;
	r = attest_verify(doc, len, &p, &d, &e, reason, sizeof reason);
	if (r < 0) return fail_line(json, attest_error_name(e), reason);
	print_doc_json(d);
	return 0;
}
EML_COMMAND(attestation_verify, "attestation verify",
	    "DOC [--root PEM] [--at UNIX_MS] [--nonce HEX] [--policy FILE] [--json]",
	    "verify an NSM attestation document", verb_verify);

static int verb_request(int argc, char **argv) {
	static const struct option opts[] = {
		{"device", required_argument, NULL, 'd'},    {"nonce", required_argument, NULL, 'n'},
		{"user-data", required_argument, NULL, 'u'}, {"public-key", required_argument, NULL, 'k'},
		{"output", required_argument, NULL, 'o'},    {},
	};
	const char *device = NSM_DEVICE_DEFAULT, *output = NULL, *nonce_hex = NULL, *ud_hex = NULL, *pk_path = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) >= 0) {
		switch (c) {
		case 'd': device = optarg; break;
		case 'n': nonce_hex = optarg; break;
		case 'u': ud_hex = optarg; break;
		case 'k': pk_path = optarg; break;
		case 'o': output = optarg; break;
		default: return command_usage(argv[0]);
		}
	}
	if (optind != argc || !output) return command_usage(argv[0]);
	_cleanup_free_ uint8_t *nonce = NULL, *ud = NULL, *pk = NULL;
	size_t nonce_len = 0, ud_len = 0, pk_len = 0;
	/* Sizes are the device's to judge (InputTooLarge); only the request limit applies here. */
	if (nonce_hex && hex_decode_alloc(nonce_hex, &nonce, &nonce_len) < 0) {
		fprintf(stderr, "error: --nonce is not hex\n");
		return 2;
	}
	if (ud_hex && hex_decode_alloc(ud_hex, &ud, &ud_len) < 0) {
		fprintf(stderr, "error: --user-data is not hex\n");
		return 2;
	}
	if (pk_path && read_file(pk_path, NSM_REQUEST_MAX, &pk, &pk_len) < 0) {
		fprintf(stderr, "error: cannot read --public-key %s\n", pk_path);
		return 2;
	}
	_cleanup_nsm_ Nsm *nsm = NULL;
	int r = nsm_open(device, &nsm);
	if (r < 0) {
		fprintf(stderr, "error: cannot open %s: %s\n", device, strerror(-r));
		return 1;
	}
	_cleanup_free_ uint8_t *doc = NULL;
	size_t len;
	r = nsm_attestation(nsm, ud_hex ? (ud ? ud : (const uint8_t *)"") : NULL, ud_len,
			    nonce_hex ? (nonce ? nonce : (const uint8_t *)"") : NULL, nonce_len, pk, pk_len, &doc, &len);
	if (r < 0) {
		fprintf(stderr, "error: attestation request failed: %s\n", nsm_strerror(r));
		return 1;
	}
	r = strcmp(output, "-") == 0 ? write_all(STDOUT_FILENO, doc, len) : write_file(output, doc, len, 0644);
	if (r < 0) {
		fprintf(stderr, "error: writing %s: %s\n", output, strerror(-r));
		return 1;
	}
	return 0;
}
EML_COMMAND(attestation_request, "attestation request",
	    "-o FILE [--device /dev/nsm|unix:PATH] [--nonce HEX] [--user-data HEX] [--public-key DERFILE]",
	    "ask the NSM (or eml-nsm-sim) for an attestation document", verb_request);
