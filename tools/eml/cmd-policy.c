/* cmd-policy.c: `eml policy keygen|sign|verify|show`: the signed policy bundle (lib/policy) from the command
 * line. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "command.h"
#include "keyfile.h"
#include "macro.h"
#include "policy.h"
#include "util.h"

#define MAX_KEYS 16

static void print_json(json_object *o) {
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int fail(const char *code, const char *reason) {
	fprintf(stderr, "error: %s: %s\n", code, reason);
	return 1;
}

static int parse_now(const char *s, uint64_t *ret) {
	if (parse_u64(s, UINT64_MAX / 2, ret) < 0 || *ret == 0) {
		fprintf(stderr, "error: USAGE: --now takes unix seconds\n");
		return -EINVAL;
	}
	return 0;
}

static int verb_keygen(int argc, char **argv) {
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'}, {"pub", required_argument, NULL, 'p'}, {},
	};
	const char *out = NULL, *pub = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) >= 0) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'p': pub = optarg; break;
		default: return command_usage(argv[0]);
		}
	}
	if (!out || optind != argc)
		return command_usage(argv[0]);
	uint8_t pk[32], id[POLICY_KEY_ID_LEN];
	int r = keyfile_generate(out, pub, pk);
	if (r < 0) {
		char reason[300];
		snprintf(reason, sizeof reason, "cannot write %s%s%s: %s", out, pub ? " / " : "", pub ? pub : "",
			 r == -EEXIST ? "file exists" : strerror(-r));
		return fail("INPUT", reason);
	}
	char hex[65], idhex[2 * POLICY_KEY_ID_LEN + 1];
	hex_encode(pk, 32, hex);
	policy_key_id(pk, id);
	hex_encode(id, sizeof id, idhex);
	printf("{\"public_key\": \"%s\", \"key_id\": \"%s\"}\n", hex, idhex);
	return 0;
}
EML_COMMAND(policy_keygen, "policy keygen", "-o KEY [--pub PUB]",
	    "generate an Ed25519 policy signing key (PKCS#8 PEM, 0600) and its public key", verb_keygen);

static int verb_sign(int argc, char **argv) {
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},    {"in", required_argument, NULL, 'i'},
		{"output", required_argument, NULL, 'o'}, {"now", required_argument, NULL, 't'},
		{},
	};
	const char *key_path = NULL, *in = NULL, *out = NULL;
	uint64_t now = 0;
	int c;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) >= 0) {
		switch (c) {
		case 'k': key_path = optarg; break;
		case 'i': in = optarg; break;
		case 'o': out = optarg; break;
		case 't':
			if (parse_now(optarg, &now) < 0) return 2;
			break;
		default: return command_usage(argv[0]);
		}
	}
	if (!key_path || !in || !out || optind != argc)
		return command_usage(argv[0]);

	char reason[300];
	EVP_PKEY *key = NULL;
	int r = keyfile_load_private(key_path, &key);
	if (r < 0) {
		snprintf(reason, sizeof reason, "%s: %s", key_path,
			 r == -EBADMSG ? "not an Ed25519 private key (PKCS#8 PEM)" : strerror(-r));
		return fail("KEY", reason);
	}
	_cleanup_free_ uint8_t *text = NULL, *bundle = NULL;
	size_t len, blen;
	_cleanup_policy_ Policy *p = NULL;
	r = read_file(in, POLICY_BUNDLE_MAX, &text, &len);
	if (r < 0) {
		snprintf(reason, sizeof reason, "cannot read %s: %s", in, r == -EFBIG ? "too large" : strerror(-r));
		EVP_PKEY_free(key);
		return fail("INPUT", reason);
	}
	_cleanup_free_ char *dir = strdup(in);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash) *slash = 0;
	r = policy_from_json((const char *)text, len, slash ? dir : NULL, now, &p, reason, sizeof reason);
	if (r < 0) {
		EVP_PKEY_free(key);
		return fail("BAD_FORMAT", r == -ENOMEM ? "out of memory" : reason);
	}
	r = policy_sign(p, key, &bundle, &blen);
	EVP_PKEY_free(key);
	if (r < 0)
		return fail("INTERNAL", "signing failed");
	r = strcmp(out, "-") == 0 ? write_all(STDOUT_FILENO, bundle, blen) : write_file(out, bundle, blen, 0644);
	if (r < 0) {
		snprintf(reason, sizeof reason, "cannot write %s: %s", out, strerror(-r));
		return fail("INPUT", reason);
	}
	return 0;
}
EML_COMMAND(policy_sign, "policy sign", "--key KEY --in policy.json -o policy.cose [--now UNIX]",
	    "turn a JSON policy into a signed policy bundle", verb_sign);

static int verb_verify(int argc, char **argv) {
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'}, {"now", required_argument, NULL, 't'}, {},
	};
	uint8_t keys[MAX_KEYS][32];
	size_t n_keys = 0;
	uint64_t now = 0;
	int c, r;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		switch (c) {
		case 'k':
			if (n_keys >= MAX_KEYS) {
				fprintf(stderr, "error: USAGE: at most %d --key\n", MAX_KEYS);
				return 2;
			}
			if ((r = keyfile_load_public(optarg, keys[n_keys])) < 0) {
				fprintf(stderr, "error: KEY: %s: not 64 hex digits or an Ed25519 PEM key\n", optarg);
				return 2;
			}
			n_keys++;
			break;
		case 't':
			if (parse_now(optarg, &now) < 0) return 2;
			break;
		default: return command_usage(argv[0]);
		}
	}
	if (n_keys == 0 || optind != argc - 1)
		return command_usage(argv[0]);
	char reason[300];
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	r = read_file(argv[optind], POLICY_BUNDLE_MAX, &data, &len);
	if (r < 0) {
		snprintf(reason, sizeof reason, "cannot read %s: %s", argv[optind], r == -EFBIG ? "too large" : strerror(-r));
		return fail("INPUT", reason);
	}
	_cleanup_policy_ Policy *p = NULL;
	PolicyError e;
	r = policy_verify(data, len, (const uint8_t(*)[32])keys, n_keys, now, &p, &e, reason, sizeof reason);
	if (r < 0)
		return fail(policy_error_name(e), r == -ENOMEM ? "out of memory" : reason);
	json_object *o = policy_to_json(p);
	print_json(o);
	json_object_put(o);
	return 0;
}
EML_COMMAND(policy_verify, "policy verify", "FILE --key PUB [--key PUB ...] [--now UNIX]",
	    "verify a signed policy bundle and print it as JSON", verb_verify);

static int verb_show(int argc, char **argv) {
	if (argc != 2 || argv[1][0] == '-')
		return command_usage(argv[0]);
	char reason[300];
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	int r = read_file(argv[1], POLICY_BUNDLE_MAX, &data, &len);
	if (r < 0) {
		snprintf(reason, sizeof reason, "cannot read %s: %s", argv[1], r == -EFBIG ? "too large" : strerror(-r));
		return fail("INPUT", reason);
	}
	_cleanup_policy_ Policy *p = NULL;
	bool json = len > 0 && data[0] == '{';
	if (json)
		r = policy_from_json((const char *)data, len, NULL, 0, &p, reason, sizeof reason);
	else
		r = policy_peek(data, len, &p, reason, sizeof reason);
	if (r < 0)
		return fail("BAD_FORMAT", r == -ENOMEM ? "out of memory" : reason);
	json_object *o = policy_to_json(p);
	/* Nothing was checked: say so where a reader cannot miss it. */
	json_object_object_add(o, "verified", json_object_new_boolean(0));
	if (!json) {
		char hex[2 * POLICY_KEY_ID_LEN + 1];
		hex_encode(p->key_id, POLICY_KEY_ID_LEN, hex);
		json_object_object_add(o, "key_id", json_object_new_string(hex));
	}
	print_json(o);
	json_object_put(o);
	return 0;
}
EML_COMMAND(policy_show, "policy show", "FILE", "print a policy bundle (or JSON policy) without verifying it",
	    verb_show);
