/* cmd-receipt.c: `eml receipt verify`: AIR v1 receipt verification (lib/air) from the command line. */
#include <ctype.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "air.h"
#include "command.h"
#include "macro.h"
#include "util.h"

#define INPUT_MAX (4 * AIR_RECEIPT_MAX) /* hex or JSON wrapping of the largest receipt */

/* FILE may hold the raw COSE bytes, their hex, or a vector-style JSON object with "receipt_hex". */
static int load_receipt(const char *path, uint8_t **ret, size_t *ret_len, const char **ret_why) {
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	int r = read_file(path, INPUT_MAX, &data, &len);
	if (r < 0) {
		*ret_why = r == -EFBIG ? "file too large" : "cannot read file";
		return r;
	}
	size_t i = 0;
	while (i < len && isspace(data[i]))
		i++;
	if (i < len && data[i] == '{') {
		json_object *j = json_tokener_parse((const char *)data); /* read_file NUL-terminates */
		json_object *v = NULL;
		if (!j || !json_object_object_get_ex(j, "receipt_hex", &v) || !json_object_is_type(v, json_type_string)) {
			json_object_put(j);
			*ret_why = "JSON without a receipt_hex string";
			return -EINVAL;
		}
		r = hex_decode_alloc(json_object_get_string(v), ret, ret_len);
		json_object_put(j);
		*ret_why = "receipt_hex is not hex";
		return r;
	}
	bool hex = len > 0;
	size_t digits = 0;
	for (size_t k = 0; k < len && hex; k++) {
		if (isxdigit(data[k]))
			digits++;
		else if (!isspace(data[k]))
			hex = false;
	}
	if (hex && digits > 0) {
		_cleanup_free_ char *compact = malloc(digits + 1);
		if (!compact)
			return -ENOMEM;
		size_t o = 0;
		for (size_t k = 0; k < len; k++)
			if (isxdigit(data[k]))
				compact[o++] = (char)data[k];
		compact[o] = 0;
		*ret_why = "odd number of hex digits";
		return hex_decode_alloc(compact, ret, ret_len);
	}
	*ret = TAKE_PTR(data);
	*ret_len = len;
	return 0;
}

static int parse_hex_exact(const char *s, uint8_t *out, size_t len) {
	if (strlen(s) != 2 * len)
		return -EINVAL;
	return hex_decode(s, out, len) == (int)len ? 0 : -EINVAL;
}

static void add_hex(json_object *o, const char *key, const uint8_t *p, size_t n) {
	char *h = malloc(2 * n + 1);
	if (!h)
		return;
	hex_encode(p, n, h);
	json_object_object_add(o, key, json_object_new_string(h));
	free(h);
}

static json_object *claims_json(const struct air_claims *c) {
	json_object *o = json_object_new_object(), *pcrs = json_object_new_object();
	json_object_object_add(o, "verified", json_object_new_boolean(1));
	json_object_object_add(o, "iss", json_object_new_string(c->iss));
	json_object_object_add(o, "iat", json_object_new_uint64(c->iat));
	add_hex(o, "cti", c->cti, 16);
	if (c->nonce)
		add_hex(o, "eat_nonce", c->nonce, c->nonce_len);
	else
		json_object_object_add(o, "eat_nonce", NULL);
	json_object_object_add(o, "eat_profile", json_object_new_string(AIR_EAT_PROFILE));
	json_object_object_add(o, "model_id", json_object_new_string(c->model_id));
	json_object_object_add(o, "model_version", json_object_new_string(c->model_version));
	add_hex(o, "model_hash", c->model_hash, 32);
	json_object_object_add(o, "model_hash_scheme",
			       c->model_hash_scheme ? json_object_new_string(c->model_hash_scheme) : NULL);
	add_hex(o, "request_hash", c->request_hash, 32);
	add_hex(o, "response_hash", c->response_hash, 32);
	add_hex(o, "attestation_doc_hash", c->attestation_doc_hash, 32);
	json_object_object_add(o, "measurement_type", json_object_new_string(c->measurement_type));
	for (size_t i = 0; i < AIR_PCR_SLOTS; i++)
		if (c->has_pcr[i]) {
			char k[4];
			snprintf(k, sizeof k, "%u", air_pcr_index[i]);
			add_hex(pcrs, k, c->pcr[i], 48);
		}
	json_object_object_add(o, "pcrs", pcrs);
	json_object_object_add(o, "policy_version", json_object_new_string(c->policy_version));
	json_object_object_add(o, "sequence_number", json_object_new_uint64(c->sequence_number));
	json_object_object_add(o, "execution_time_ms", json_object_new_uint64(c->execution_time_ms));
	json_object_object_add(o, "memory_peak_mb", json_object_new_uint64(c->memory_peak_mb));
	json_object_object_add(o, "security_mode", json_object_new_string(c->security_mode));
	return o;
}

/* Receipt text is signed, not trusted for the terminal: print only printable ASCII. */
static const char *printable(const char *s, char *buf, size_t n) {
	size_t i;
	for (i = 0; s[i] && i < n - 1; i++)
		buf[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
	buf[i] = 0;
	return buf;
}

static int verb_verify(int argc, char **argv) {
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},       {"nonce", required_argument, NULL, 'n'},
		{"model-hash", required_argument, NULL, 'm'}, {"model-id", required_argument, NULL, 'i'},
		{"platform", required_argument, NULL, 'p'},  {"max-age", required_argument, NULL, 'a'},
		{"now", required_argument, NULL, 't'},       {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},            {},
	};
	uint8_t pk[32], model_hash[32];
	_cleanup_free_ uint8_t *nonce = NULL, *receipt = NULL;
	size_t nonce_len = 0, len;
	bool have_key = false, json = false;
	struct air_policy pol = {0};
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (c) {
		case 'k':
			if (parse_hex_exact(optarg, pk, 32) < 0) {
				fprintf(stderr, "error: USAGE: --key takes 64 hex digits (Ed25519 public key)\n");
				return 2;
			}
			have_key = true;
			break;
		case 'n':
			free(nonce);
			nonce = NULL;
			if (hex_decode_alloc(optarg, &nonce, &nonce_len) < 0 || nonce_len == 0 || nonce_len > AIR_NONCE_MAX) {
				fprintf(stderr, "error: USAGE: --nonce takes 1 to %d bytes of hex\n", AIR_NONCE_MAX);
				return 2;
			}
			pol.nonce = nonce, pol.nonce_len = nonce_len;
			break;
		case 'm':
			if (parse_hex_exact(optarg, model_hash, 32) < 0) {
				fprintf(stderr, "error: USAGE: --model-hash takes 64 hex digits (SHA-256)\n");
				return 2;
			}
			pol.model_hash = model_hash;
			break;
		case 'i':
			pol.model_id = optarg;
			break;
		case 'p':
			if (strcmp(optarg, AIR_PLATFORM_NITRO) != 0 && strcmp(optarg, AIR_PLATFORM_TDX) != 0) {
				fprintf(stderr, "error: USAGE: --platform is %s or %s\n", AIR_PLATFORM_NITRO,
					AIR_PLATFORM_TDX);
				return 2;
			}
			pol.platform = optarg;
			break;
		case 'a':
			if (parse_u64(optarg, UINT32_MAX, &pol.max_age) < 0 || pol.max_age == 0) {
				fprintf(stderr, "error: USAGE: --max-age takes seconds (> 0)\n");
				return 2;
			}
			break;
		case 't':
			if (parse_u64(optarg, UINT64_MAX / 2, &pol.now) < 0 || pol.now == 0) {
				fprintf(stderr, "error: USAGE: --now takes unix seconds\n");
				return 2;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: eml receipt verify FILE --key HEX [--nonce HEX] [--model-hash HEX] [--model-id ID]\n"
			       "                          [--platform nitro-pcr|tdx-mrtd-rtmr] [--max-age S] [--now UNIX] [--json]\n");
			return 0;
		default:
			return command_usage("receipt verify");
		}
	}
	if (optind != argc - 1 || !have_key)
		return command_usage("receipt verify");

	const char *why = NULL;
	r = load_receipt(argv[optind], &receipt, &len, &why);
	if (r < 0) {
		fprintf(stderr, "error: INPUT: %s: %s\n", argv[optind], why ? why : strerror(-r));
		return 1;
	}

	struct air_claims claims;
	struct air_result res;
	r = air_verify(receipt, len, pk, &pol, &claims, &res);
	if (r < 0) {
		if (json) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "verified", json_object_new_boolean(0));
			json_object_object_add(o, "code", json_object_new_string(res.full));
			json_object_object_add(o, "layer", json_object_new_int(res.layer));
			json_object_object_add(o, "check", json_object_new_string(res.check));
			json_object_object_add(o, "reason", json_object_new_string(res.reason));
			printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(o);
		}
		fprintf(stderr, "error: %s: %s\n", res.full, res.reason);
		air_claims_done(&claims);
		return 1;
	}
	if (json) {
		json_object *o = claims_json(&claims);
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		char mh[65], b1[128], b2[128], b3[128];
		hex_encode(claims.model_hash, 32, mh);
		printf("OK: AIR v1 receipt verified\n"
		       "model:       %s %s\n"
		       "model_hash:  %s\n"
		       "platform:    %s\n"
		       "iat:         %llu\n"
		       "sequence:    %llu\n"
		       "nonce:       %s\n"
		       "policy:      %s\n",
		       printable(claims.model_id, b1, sizeof b1), printable(claims.model_version, b2, sizeof b2), mh,
		       claims.measurement_type,
		       (unsigned long long)claims.iat, (unsigned long long)claims.sequence_number,
		       claims.nonce ? (pol.nonce ? "present, matches" : "present, not checked") : "absent",
		       printable(claims.policy_version, b3, sizeof b3));
	}
	air_claims_done(&claims);
	return 0;
}

EML_COMMAND(receipt_verify, "receipt verify",
	    "FILE --key HEX [--nonce HEX] [--model-hash HEX] [--model-id ID] [--platform nitro-pcr] [--max-age S] "
	    "[--now UNIX] [--json]",
	    "verify an AIR v1 receipt (four layers) and print its claims", verb_verify);
