/* cmd-remote.c: the client side of the attested session from the command line: `eml embed --endpoint`
 * (handed over by cmd-embed.c) and `eml attestation fetch`. Policies are trusted as eml-policy(1) says: a
 * signed bundle checked against --policy-key keys (or, without any, the keys in the user's and the system's
 * policy-keys directories), or a private JSON policy. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "attest.h"
#include "command.h"
#include "eml_client.h"
#include "keyfile.h"
#include "macro.h"
#include "policy.h"
#include "remote.h"
#include "session-io.h"
#include "session.h"
#include "socket.h"
#include "json-hex.h"
#include "util.h"

#define MAX_KEYS 16

static int fail(const char *code, const char *reason) {
	fprintf(stderr, "error: %s: %s\n", code, reason);
	return 1;
}

struct keys {
	uint8_t (*k)[32];
	size_t n;
	bool given; /* --policy-key was used: the directories are not consulted */
};

/* One --policy-key option; says what is wrong with it on failure. */
static int add_key(struct keys *ks, const char *arg) {
	uint8_t pub[32];
	if (ks->n >= MAX_KEYS) {
		fprintf(stderr, "error: USAGE: at most %d --policy-key options\n", MAX_KEYS);
		return -E2BIG;
	}
	if (keyfile_load_public(arg, pub) < 0) {
		fprintf(stderr, "error: USAGE: --policy-key %s is not an Ed25519 public key\n", arg);
		return -EINVAL;
	}
	void *n = realloc(ks->k, (ks->n + 1) * 32);
	if (!n) {
		fprintf(stderr, "error: out of memory\n");
		return -ENOMEM;
	}
	ks->k = n;
	memcpy(ks->k[ks->n++], pub, 32);
	ks->given = true;
	return 0;
}

static int load_policy(const char *path, struct keys *ks, Policy **ret) {
	char reason[300];
	if (!ks->given) {
		const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
		char dir[512];
		if (xdg && xdg[0])
			snprintf(dir, sizeof dir, "%s/eml/policy-keys", xdg);
		else
			snprintf(dir, sizeof dir, "%s/.config/eml/policy-keys", home ? home : "/nonexistent");
		(void)policy_keys_load_dir(dir, &ks->k, &ks->n);
		(void)policy_keys_load_dir("/etc/eml/policy-keys", &ks->k, &ks->n);
	}
	PolicyError e = POLICY_INTERNAL;
	int r = policy_load(path, (const uint8_t(*)[32])ks->k, ks->n, 0, ret, &e, reason, sizeof reason);
	if (r == -EPERM) {
		char msg[400];
		snprintf(msg, sizeof msg, "%s: %s", path, reason);
		return fail(policy_error_name(e), msg);
	}
	if (r < 0)
		return fail("POLICY", reason);
	return 0;
}

static json_object *doc_json(const AttestDoc *d) {
	json_object *o = json_object_new_object();
	json_object_object_add(o, "module_id", json_object_new_string(d->module_id));
	json_object_object_add(o, "timestamp", json_object_new_uint64(d->timestamp_ms));
	json_object_object_add(o, "pcrs", json_hex_rows(&d->pcrs[0][0], ATTEST_PCR_LEN, ATTEST_PCR_COUNT, d->pcr_mask));
	return o;
}

static void add_user_data(json_object *o, const SessionUserData *u) {
	json_object_object_add(o, "receipt_key", json_hex_new(u->receipt_key, 32));
	json_object_object_add(o, "model_hash", u->has_model ? json_hex_new(u->model_hash, 32) : NULL);
}

static void print_json(json_object *o) {
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

int embed_remote(int argc, char **argv) {
	static const struct option opts[] = {
		{"endpoint", required_argument, NULL, 'e'}, {"policy", required_argument, NULL, 'P'},
		{"policy-key", required_argument, NULL, 'k'}, {"timeout", required_argument, NULL, 't'},
		{},
	};
	const char *endpoint = NULL, *policy_path = NULL;
	struct keys ks = {0};
	uint64_t timeout_s = 10;
	int c, rc;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		switch (c) {
		case 'e': endpoint = optarg; break;
		case 'P': policy_path = optarg; break;
		case 'k':
			if (add_key(&ks, optarg) < 0) {
				free(ks.k);
				return 2;
			}
			break;
		case 't':
			if (parse_u64(optarg, 3600, &timeout_s) < 0 || timeout_s == 0) {
				free(ks.k);
				return command_usage("embed");
			}
			break;
		default:
			free(ks.k);
			fprintf(stderr, "usage: eml embed --endpoint ADDR --policy FILE [--policy-key PUB]... TEXT...\n");
			return 2;
		}
	}
	if (!endpoint || !policy_path || optind >= argc) {
		free(ks.k);
		fprintf(stderr, "usage: eml embed --endpoint ADDR --policy FILE [--policy-key PUB]... TEXT...\n");
		return 2;
	}
	_cleanup_policy_ Policy *policy = NULL;
	rc = load_policy(policy_path, &ks, &policy);
	free(ks.k);
	if (rc)
		return rc;

	char reason[400];
	EmlClientOptions o = {.endpoint = endpoint, .policy = policy, .timeout_usec = timeout_s * 1000000};
	_cleanup_eml_client_ EmlClient *cl = NULL;
	int r = eml_client_connect(&o, &cl, reason, sizeof reason);
	if (r < 0) {
		fprintf(stderr, "error: %s\n", reason); /* reason is "CODE: why" */
		return 1;
	}
	EmlEmbedding *e = NULL;
	r = eml_client_embed(cl, (const char *const *)argv + optind, (size_t)(argc - optind), &e, reason, sizeof reason);
	if (r < 0) {
		fprintf(stderr, "error: %s\n", reason);
		return 1;
	}
	json_object *out = json_object_new_object(), *embs = json_object_new_array();
	json_object_object_add(out, "dim", json_object_new_uint64(e->dim));
	for (size_t i = 0; i < e->n; i++) {
		json_object *v = json_object_new_array();
		for (size_t k = 0; k < e->dim; k++)
			json_object_array_add(v, json_object_new_double((double)e->vectors[i * e->dim + k]));
		json_object_array_add(embs, v);
	}
	json_object_object_add(out, "embeddings", embs);
	json_object_object_add(out, "receipt", json_hex_new(e->receipt, e->receipt_len));
	json_object_object_add(out, "receipt_verified", json_object_new_boolean(1));
	json_object_object_add(out, "receipt_bound", json_object_new_boolean(e->receipt_bound));
	json_object_object_add(out, "model_id", json_object_new_string(e->claims.model_id));
	json_object *att = doc_json(eml_client_attestation(cl));
	add_user_data(att, eml_client_peer(cl));
	json_object_object_add(out, "attestation", att);
	json_object_object_add(out, "policy", json_object_new_string(policy->name));
	json_object_object_add(out, "policy_signed", json_object_new_boolean(policy->is_signed));
	print_json(out);
	json_object_put(out);
	eml_embedding_free(e);
	return 0;
}

/* attestation fetch without a policy: keep the document, check only what the session needs to proceed. */
struct grab {
	uint8_t *doc;
	size_t len;
};

static int grab_doc(void *userdata, const uint8_t *doc, size_t len, const uint8_t *nonce, size_t nonce_len,
		    SessionAttested *ret) {
	struct grab *g = userdata;
	_cleanup_attest_doc_ AttestDoc *d = NULL;
	if (attest_parse(doc, len, &d, NULL, ret->reason, sizeof ret->reason) < 0)
		return -EBADMSG;
	if (!d->public_key || d->public_key_len > sizeof ret->public_key || !d->user_data ||
	    d->user_data_len > sizeof ret->user_data)
		return -EBADMSG;
	memcpy(ret->public_key, d->public_key, d->public_key_len);
	ret->public_key_len = d->public_key_len;
	memcpy(ret->user_data, d->user_data, d->user_data_len);
	ret->user_data_len = d->user_data_len;
	g->doc = malloc(len);
	if (!g->doc)
		return -ENOMEM;
	memcpy(g->doc, doc, len);
	g->len = len;
	return 0;
}

static int verb_fetch(int argc, char **argv) {
	static const struct option opts[] = {
		{"endpoint", required_argument, NULL, 'e'}, {"policy", required_argument, NULL, 'P'},
		{"policy-key", required_argument, NULL, 'k'}, {"output", required_argument, NULL, 'o'},
		{},
	};
	const char *endpoint = NULL, *policy_path = NULL, *output = NULL;
	struct keys ks = {0};
	int c, r, rc;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) >= 0) {
		switch (c) {
		case 'e': endpoint = optarg; break;
		case 'P': policy_path = optarg; break;
		case 'o': output = optarg; break;
		case 'k':
			if (add_key(&ks, optarg) < 0) {
				free(ks.k);
				return 2;
			}
			break;
		default: free(ks.k); return command_usage(argv[0]);
		}
	}
	if (!endpoint || optind != argc) {
		free(ks.k);
		return command_usage(argv[0]);
	}
	char reason[400];
	json_object *out = NULL;
	_cleanup_free_ uint8_t *doc_copy = NULL;
	size_t doc_len = 0;
	if (policy_path) {
		_cleanup_policy_ Policy *policy = NULL;
		rc = load_policy(policy_path, &ks, &policy);
		free(ks.k);
		if (rc)
			return rc;
		EmlClientOptions o = {.endpoint = endpoint, .policy = policy};
		_cleanup_eml_client_ EmlClient *cl = NULL;
		if (eml_client_connect(&o, &cl, reason, sizeof reason) < 0) {
			fprintf(stderr, "error: %s\n", reason);
			return 1;
		}
		out = doc_json(eml_client_attestation(cl));
		add_user_data(out, eml_client_peer(cl));
		json_object_object_add(out, "verified", json_object_new_boolean(1));
		json_object_object_add(out, "policy", json_object_new_string(policy->name));
		const uint8_t *d = eml_client_document(cl, &doc_len);
		doc_copy = malloc(doc_len);
		if (!doc_copy)
			return fail("INTERNAL", "out of memory");
		memcpy(doc_copy, d, doc_len);
	} else {
		free(ks.k);
		struct eml_addr a;
		if (addr_parse(endpoint, &a) < 0)
			return fail("USAGE", "--endpoint is not an address (tcp:HOST:PORT, unix:PATH, vsock:CID:PORT)");
		_cleanup_close_ int fd = -1;
		if ((r = socket_connect_deadline(&a, 10000000, &fd)) < 0) {
			snprintf(reason, sizeof reason, "%s: %s", endpoint, strerror(-r));
			return fail("CONNECT", reason);
		}
		struct grab g = {0};
		SessionClientConfig cc = {.verify_attestation = grab_doc, .userdata = &g};
		_cleanup_session_client_ SessionClient *s = NULL;
		if (session_client_new(&cc, now_monotonic_usec(), &s) < 0)
			return fail("INTERNAL", "out of memory");
		r = session_client_handshake_fd(s, fd);
		doc_copy = g.doc, doc_len = g.len;
		if (r < 0) {
			const SessionStatus *st = session_client_status(s);
			snprintf(reason, sizeof reason, "%s", st->message);
			return fail(st->error == SESSION_REMOTE ? st->remote_code : session_error_name(st->error), reason);
		}
		(void)session_client_close_fd(s, fd);
		_cleanup_attest_doc_ AttestDoc *d = NULL;
		if (attest_parse(doc_copy, doc_len, &d, NULL, NULL, 0) < 0)
			return fail("BAD_STRUCTURE", "document does not parse");
		out = doc_json(d);
		add_user_data(out, session_client_peer(s));
		json_object_object_add(out, "verified", json_object_new_boolean(0));
	}
	if (output) {
		r = strcmp(output, "-") == 0 ? write_all(STDOUT_FILENO, doc_copy, doc_len)
					     : write_file(output, doc_copy, doc_len, 0644);
		if (r < 0) {
			json_object_put(out);
			return fail("INPUT", "cannot write the document");
		}
	}
	if (!output || strcmp(output, "-") != 0)
		print_json(out);
	json_object_put(out);
	return 0;
}
EML_COMMAND(attestation_fetch, "attestation fetch",
	    "--endpoint ADDR [--policy FILE [--policy-key PUB]...] [-o DOC]",
	    "run the session handshake with an enclave and print (and save) its attestation document", verb_fetch);
