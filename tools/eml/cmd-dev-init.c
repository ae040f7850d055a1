/* cmd-dev-init.c: `eml dev init DIR --pcrs FILE`: everything development mode needs, in one directory, made
 * with the same code and formats production uses:
 *
 *   DIR/ca/                 development attestation CA for eml-nsm-sim (as `eml dev ca init`)
 *   DIR/owner.pem           model owner's Ed25519 signing key (`eml model seal --signing-key`), 0600
 *   DIR/signers/owner.pub   its public half: the enclave's trusted model owners (`eml-inferenced --signers`)
 *   DIR/policy-key.pem      policy signer's Ed25519 key, 0600; DIR/policy-key.pub its public half
 *   DIR/policy.json         the client policy (0600): the PCRs of FILE, the dev root, 300 s freshness
 *   DIR/policy.cose         the same policy signed with policy-key.pem (`eml embed --policy ... --policy-key`)
 *
 * FILE holds PCRs as eml-nsm-sim takes them ({"0": hex, ...}) or as `eml eif pcr` / nitro-cli print them
 * ({"Measurements": {"PCR0": hex, ...}}). Nothing existing is replaced: DIR must not hold any of these. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "command.h"
#include "devca.h"
#include "keyfile.h"
#include "macro.h"
#include "policy.h"
#include "util.h"

#define PCRS_FILE_MAX (64 * 1024)

static int fail(const char *what, int r) {
	fprintf(stderr, "error: %s: %s\n", what, strerror(r < 0 ? -r : r));
	return 1;
}

/* {"0": hex, ...} from either PCR file shape; only PCRs 0..15 with 96 hex digits. */
static int pcrs_to_json(const char *path, json_object **ret) {
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int r = read_file(path, PCRS_FILE_MAX, &buf, &len);
	if (r < 0) return r;
	json_tokener *tok = json_tokener_new();
	if (!tok) return -ENOMEM;
	json_object *in = json_tokener_parse_ex(tok, (const char *)buf, (int)len);
	bool complete = json_tokener_get_error(tok) == json_tokener_success;
	json_tokener_free(tok);
	if (!in || !complete || !json_object_is_type(in, json_type_object)) {
		json_object_put(in);
		return -EBADMSG;
	}
	json_object *src = in, *m;
	bool nitro = json_object_object_get_ex(in, "Measurements", &m) && json_object_is_type(m, json_type_object);
	if (nitro) src = m;
	json_object *out = json_object_new_object();
	if (!out) {
		json_object_put(in);
		return -ENOMEM;
	}
	r = 0;
	json_object_object_foreach(src, key, val) {
		const char *idx = key;
		if (nitro) {
			if (strncmp(key, "PCR", 3) != 0) continue; /* HashAlgorithm */
			idx = key + 3;
		}
		uint64_t n;
		const char *hex = json_object_get_string(val);
		if (parse_u64(idx, 15, &n) < 0 || !json_object_is_type(val, json_type_string) || strlen(hex) != 96) {
			r = -EBADMSG;
			break;
		}
		json_object *list = json_object_new_array();
		char k[4];
		snprintf(k, sizeof(k), "%u", (unsigned)n);
		json_object_array_add(list, json_object_new_string(hex));
		json_object_object_add(out, k, list);
	}
	json_object_put(in);
	if (r == 0 && json_object_object_length(out) == 0) r = -EBADMSG;
	if (r < 0) {
		json_object_put(out);
		return r;
	}
	*ret = out;
	return 0;
}

static int verb_init(int argc, char **argv) {
	static const struct option opts[] = {{"pcrs", required_argument, NULL, 'p'}, {}};
	const char *pcrs_path = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		if (c == 'p')
			pcrs_path = optarg;
		else
			return command_usage(argv[0]);
	}
	if (optind != argc - 1 || !pcrs_path) return command_usage(argv[0]);
	const char *dir = argv[optind];
	char path[4096], path2[4096];
	int r;

	json_object *pcrs = NULL;
	if ((r = pcrs_to_json(pcrs_path, &pcrs)) < 0) {
		fprintf(stderr, "error: %s: not a PCR file ({\"0\": hex96, ...} or {\"Measurements\": {\"PCR0\": ...}}): %s\n",
			pcrs_path, strerror(-r));
		return 1;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		json_object_put(pcrs);
		return fail(dir, -errno);
	}
	snprintf(path, sizeof(path), "%s/ca", dir);
	if ((r = devca_init(path, 3, time(NULL))) < 0) {
		json_object_put(pcrs);
		return fail(r == -EEXIST ? "a CA exists there already" : "creating the CA", r);
	}
	snprintf(path, sizeof(path), "%s/signers", dir);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		json_object_put(pcrs);
		return fail(path, -errno);
	}
	uint8_t owner_pub[32], policy_pub[32];
	snprintf(path, sizeof(path), "%s/owner.pem", dir);
	snprintf(path2, sizeof(path2), "%s/signers/owner.pub", dir);
	if ((r = keyfile_generate(path, path2, owner_pub)) < 0) {
		json_object_put(pcrs);
		return fail("model-owner key", r);
	}
	snprintf(path, sizeof(path), "%s/policy-key.pem", dir);
	snprintf(path2, sizeof(path2), "%s/policy-key.pub", dir);
	if ((r = keyfile_generate(path, path2, policy_pub)) < 0) {
		json_object_put(pcrs);
		return fail("policy key", r);
	}

	/* The policy as a person would write it, then through the same loader and signer as `eml policy sign`. */
	json_object *pol = json_object_new_object(), *roots = json_object_new_array();
	json_object_object_add(pol, "name", json_object_new_string("dev"));
	json_object_object_add(pol, "pcrs", pcrs);
	json_object_array_add(roots, json_object_new_string("@ca/root.pem"));
	json_object_object_add(pol, "roots", roots);
	json_object_object_add(pol, "max_age_s", json_object_new_int(300));
	const char *text = json_object_to_json_string_ext(pol, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	snprintf(path, sizeof(path), "%s/policy.json", dir);
	_cleanup_free_ char *file = NULL;
	r = asprintf(&file, "%s\n", text) < 0 ? -ENOMEM : write_file(path, file, strlen(file), 0600);
	char reason[256] = "";
	_cleanup_policy_ Policy *p = NULL;
	if (r >= 0) r = policy_from_json(text, strlen(text), dir, (uint64_t)time(NULL), &p, reason, sizeof(reason));
	json_object_put(pol);
	if (r < 0) {
		fprintf(stderr, "error: policy: %s\n", reason[0] ? reason : strerror(-r));
		return 1;
	}
	EVP_PKEY *key = NULL;
	snprintf(path, sizeof(path), "%s/policy-key.pem", dir);
	if ((r = keyfile_load_private(path, &key)) < 0) return fail("policy key", r);
	_cleanup_free_ uint8_t *bundle = NULL;
	size_t blen;
	r = policy_sign(p, key, &bundle, &blen);
	EVP_PKEY_free(key);
	if (r < 0) return fail("signing the policy", r);
	snprintf(path, sizeof(path), "%s/policy.cose", dir);
	if ((r = write_file(path, bundle, blen, 0644)) < 0) return fail(path, r);

	char owner_hex[65], policy_hex[65];
	hex_encode(owner_pub, 32, owner_hex);
	hex_encode(policy_pub, 32, policy_hex);
	printf("{\"dir\":\"%s\",\"ca_root\":\"%s/ca/root.pem\",\"owner_public_key\":\"%s\",\"policy_public_key\":\"%s\"}\n",
	       dir, dir, owner_hex, policy_hex);
	return 0;
}
EML_COMMAND(dev_init, "dev init", "DIR --pcrs FILE",
	    "development CA, model-owner key, policy key and signed client policy in DIR", verb_init);
