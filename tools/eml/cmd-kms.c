/* cmd-kms.c: `eml kms ...`, KMS debugging from the host or a developer machine:
 *   eml kms call TARGET BODY       one SigV4-signed AWS KMS JSON 1.1 request; prints the response body
 *   eml kms unwrap --key PEM FILE  decrypt a CiphertextForRecipient (base64) with the recipient's RSA key
 *   eml kms enclave ...            the enclave's KMS client (lib/kmsclient) run from the command line
 *   eml kms relay-send TARGET BODY one raw frame to eml-kms-relay (admission tests) */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/pem.h>

#include "base64.h"
#include "addr.h"
#include "cms.h"
#include "frame.h"
#include "curl-body.h"
#include "kms-http.h"
#include "kmsproto.h"
#include "socket.h"
#include "kmsclient.h"
#include "nsm.h"
#include "command.h"
#include "macro.h"
#include "sigv4.h"
#include "util.h"

#define MAX_RESPONSE (1u << 20)

static int verb_call(int argc, char **argv) {
	static const struct option opts[] = {{"endpoint", required_argument, NULL, 'e'},
					     {"region", required_argument, NULL, 'r'},
					     {"date", required_argument, NULL, 'd'},
					     {"help", no_argument, NULL, 'h'},
					     {}};
	const char *endpoint = NULL, *region = NULL;
	uint64_t date = 0;
	bool have_date = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'e': endpoint = optarg; break;
		case 'r': region = optarg; break;
		case 'd':
			if (parse_u64(optarg, INT64_MAX, &date) < 0) return command_usage("kms call");
			have_date = true;
			break;
		default: return command_usage("kms call");
		}
	}
	if (argc - optind != 2) return command_usage("kms call");
	if (!region) region = getenv("AWS_REGION");
	if (!region) region = "us-east-1";
	const char *akid = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY"),
		   *token = getenv("AWS_SESSION_TOKEN");
	if (!akid || !secret) {
		fprintf(stderr, "error: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set\n");
		return 1;
	}
	char target[128];
	const char *t = argv[optind];
	snprintf(target, sizeof target, "%s%s", strchr(t, '.') ? "" : "TrentService.", t);
	_cleanup_free_ uint8_t *body = NULL;
	size_t body_len;
	const char *b = argv[optind + 1];
	if (b[0] == '@') {
		if (read_file(b + 1, 1 << 20, &body, &body_len) < 0) {
			fprintf(stderr, "error: cannot read %s\n", b + 1);
			return 1;
		}
	} else {
		body = (uint8_t *)strdup(b);
		body_len = strlen(b);
	}
	_cleanup_free_ char *default_ep = NULL;
	if (!endpoint) {
		if (asprintf(&default_ep, "https://kms.%s.amazonaws.com/", region) < 0) return 1;
		endpoint = default_ep;
	}

	/* Sign exactly the Host header curl will send. */
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL;
	if (!u || curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		fprintf(stderr, "error: bad --endpoint %s\n", endpoint);
		curl_url_cleanup(u);
		return 1;
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	char host_hdr[300];
	snprintf(host_hdr, sizeof host_hdr, "%s%s%s", host, port ? ":" : "", port ? port : "");
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);

	struct sigv4_header h[] = {{"Host", host_hdr}, {"Content-Type", "application/x-amz-json-1.1"}, {"X-Amz-Target", target}};
	struct sigv4_request req = {"POST", "/", NULL, h, ARRAY_SIZE(h), body, body_len};
	struct sigv4_credentials cr = {akid, secret, token && *token ? token : NULL};
	struct sigv4_params p = {.region = region, .service = "kms", .timestamp = have_date ? (time_t)date : time(NULL),
				 .normalize_path = true};
	struct sigv4_result res;
	int r = sigv4_sign(&req, &cr, &p, &res);
	if (r < 0) {
		fprintf(stderr, "error: signing failed: %s\n", strerror(-r));
		return 1;
	}
	struct curl_slist *hl = NULL;
	r = kms_http_signed_headers(h, ARRAY_SIZE(h), &res, cr.session_token, &hl);
	sigv4_result_done(&res);
	if (r < 0) {
		fprintf(stderr, "error: request headers: %s\n", strerror(-r));
		return 1;
	}

	struct curl_body out = {.max = MAX_RESPONSE};
	CURL *e = curl_easy_init();
	long status = 0;
	CURLcode cc = CURLE_FAILED_INIT;
	if (e) {
		curl_easy_setopt(e, CURLOPT_URL, endpoint);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)body_len);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_body_write);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &out);
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
		cc = curl_easy_perform(e);
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(e);
	}
	curl_slist_free_all(hl);
	if (cc != CURLE_OK) {
		fprintf(stderr, "error: %s: %s\n", endpoint, out.overflow ? "response too large" : curl_easy_strerror(cc));
		curl_body_done(&out);
		return 1;
	}
	printf("%s\n", out.p ? out.p : "");
	curl_body_done(&out); /* may hold a Plaintext */
	if (status != 200) fprintf(stderr, "error: HTTP %ld\n", status);
	return status == 200 ? 0 : 1;
}
EML_COMMAND(kms_call, "kms call", "TARGET BODY|@FILE [--endpoint URL] [--region R] [--date UNIX]",
	    "send one SigV4-signed KMS request (credentials from AWS_* variables)", verb_call);

static EVP_PKEY *load_private_key(const char *path) {
	FILE *f = fopen(path, "re");
	if (!f) return NULL;
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

static int verb_unwrap(int argc, char **argv) {
	static const struct option opts[] = {{"key", required_argument, NULL, 'k'}, {}};
	const char *key = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'k') return command_usage("kms unwrap");
		key = optarg;
	}
	if (!key || argc - optind != 1) return command_usage("kms unwrap");
	EVP_PKEY *pk = load_private_key(key);
	if (!pk) {
		fprintf(stderr, "error: cannot read the private key %s\n", key);
		return 1;
	}
	_cleanup_free_ uint8_t *text = NULL, *ber = NULL;
	size_t tl, bl;
	int r = read_file(argv[optind], 1 << 20, &text, &tl);
	if (r >= 0) {
		while (tl && (text[tl - 1] == '\n' || text[tl - 1] == '\r')) text[--tl] = 0;
		r = base64_decode((char *)text, CMS_MAX_INPUT, &ber, &bl);
	}
	if (r < 0) {
		fprintf(stderr, "error: %s is not a base64 CiphertextForRecipient\n", argv[optind]);
		EVP_PKEY_free(pk);
		return 1;
	}
	uint8_t *plain;
	size_t pl;
	const char *why = NULL;
	r = cms_decrypt(ber, bl, pk, &plain, &pl, &why);
	EVP_PKEY_free(pk);
	if (r < 0) {
		fprintf(stderr, "error: %s: %s\n", cms_strerror(r), why);
		return 1;
	}
	char *hex = malloc(2 * pl + 1);
	if (hex) {
		hex_encode(plain, pl, hex);
		printf("%s\n", hex);
		free_secret(hex, 2 * pl + 1);
	}
	free_secret(plain, pl);
	return hex ? 0 : 1;
}
EML_COMMAND(kms_unwrap, "kms unwrap", "--key PEM FILE", "decrypt a CiphertextForRecipient with the recipient key",
	    verb_unwrap);

/* ---- the enclave's client, for tests and debugging (prints secrets) ---- */

struct enclave_opts {
	const char *relay, *nsm, *key_id, *context, *blob;
	uint64_t bytes, count;
};

static int parse_enclave_opts(const char *path, int argc, char **argv, struct enclave_opts *o) {
	static const struct option opts[] = {
		{"relay", required_argument, NULL, 'r'},  {"nsm", required_argument, NULL, 'n'},
		{"key-id", required_argument, NULL, 'k'}, {"context", required_argument, NULL, 'c'},
		{"blob", required_argument, NULL, 'b'},   {"bytes", required_argument, NULL, 'B'},
		{"count", required_argument, NULL, 'N'},  {},
	};
	*o = (struct enclave_opts){.relay = "vsock:3:8001", .nsm = "/dev/nsm", .bytes = 32, .count = 1};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': o->relay = optarg; break;
		case 'n': o->nsm = optarg; break;
		case 'k': o->key_id = optarg; break;
		case 'c': o->context = optarg; break;
		case 'b': o->blob = optarg; break;
		case 'B':
			if (parse_u64(optarg, 1024, &o->bytes) < 0 || !o->bytes) return command_usage(path);
			break;
		case 'N':
			if (parse_u64(optarg, 1000000, &o->count) < 0 || !o->count) return command_usage(path);
			break;
		default: return command_usage(path);
		}
	}
	return optind == argc ? 0 : command_usage(path);
}

static int report(int r, const struct kms_error *e) {
	fprintf(stderr, "error: %s: %s (%s)\n", e->type[0] ? e->type : "Error", e->message[0] ? e->message : strerror(-r),
		strerror(-r));
	return 1;
}

static int print_hex_secret(const uint8_t *p, size_t n) {
	char *hex = malloc(2 * n + 1);
	if (!hex) return -ENOMEM;
	hex_encode(p, n, hex);
	printf("%s\n", hex);
	free_secret(hex, 2 * n + 1);
	return 0;
}

static int enclave_run(const char *path, int argc, char **argv, int op) {
	struct enclave_opts o;
	int r = parse_enclave_opts(path, argc, argv, &o);
	if (r) return r;
	if ((op == 0 && !o.key_id) || (op == 1 && !o.blob)) return command_usage(path);
	_cleanup_nsm_ Nsm *nsm = NULL;
	if ((r = nsm_open(o.nsm, &nsm)) < 0) {
		fprintf(stderr, "error: cannot open the NSM at %s: %s\n", o.nsm, strerror(-r));
		return 1;
	}
	struct kms_client_config cfg = {.relay = o.relay, .attest = kms_attest_nsm, .attest_userdata = nsm};
	_cleanup_kms_client_ KmsClient *c = NULL;
	if ((r = kms_client_new(&cfg, &c)) < 0) {
		fprintf(stderr, "error: cannot create the KMS client: %s\n", strerror(-r));
		return 1;
	}
	struct kms_error e = {};
	uint8_t *plain = NULL, *blob = NULL, *first = NULL;
	size_t pl = 0, bl = 0, first_len = 0;
	int ret = 1;
	if (op == 0) {
		if ((r = kms_client_generate_data_key(c, o.key_id, o.bytes, o.context, &plain, &pl, &blob, &bl, &e)) < 0)
			return report(r, &e);
		_cleanup_free_ char *b64 = NULL;
		if (base64_encode(blob, bl, &b64) < 0) goto done;
		char *hex = malloc(2 * pl + 1);
		if (!hex) goto done;
		hex_encode(plain, pl, hex);
		printf("{\"CiphertextBlob\":\"%s\",\"Plaintext\":\"%s\"}\n", b64, hex);
		free_secret(hex, 2 * pl + 1);
		ret = 0;
	} else if (op == 1) {
		_cleanup_free_ uint8_t *in = NULL;
		size_t il;
		if (base64_decode(o.blob, 8192, &in, &il) < 0) {
			fprintf(stderr, "error: --blob is not base64\n");
			return 1;
		}
		for (uint64_t i = 0; i < o.count; i++) {
			if ((r = kms_client_decrypt(c, o.key_id, in, il, o.context, &plain, &pl, &e)) < 0) {
				ret = report(r, &e);
				goto done;
			}
			if (!first) {
				first = plain;
				first_len = pl;
			} else {
				bool same = pl == first_len && mem_equal_ct(plain, first, pl);
				free_secret(plain, pl);
				if (!same) {
					fprintf(stderr, "error: decrypt %" PRIu64 " gave a different plaintext\n", i);
					goto done;
				}
			}
			plain = NULL;
		}
		ret = print_hex_secret(first, first_len) < 0;
	} else {
		if ((r = kms_client_generate_random(c, o.bytes, &plain, &pl, &e)) < 0) return report(r, &e);
		ret = print_hex_secret(plain, pl) < 0;
	}
done:
	if (plain) free_secret(plain, pl);
	if (first) free_secret(first, first_len);
	free(blob);
	return ret;
}

static int verb_enclave_gdk(int argc, char **argv) { return enclave_run("kms enclave generate-data-key", argc, argv, 0); }
static int verb_enclave_decrypt(int argc, char **argv) { return enclave_run("kms enclave decrypt", argc, argv, 1); }
static int verb_enclave_random(int argc, char **argv) { return enclave_run("kms enclave generate-random", argc, argv, 2); }
EML_COMMAND(kms_enclave_gdk, "kms enclave generate-data-key",
	    "--key-id ID [--bytes N] [--context JSON] [--relay ADDR] [--nsm DEV]",
	    "as the enclave: GenerateDataKey with a Recipient through eml-kms-relay", verb_enclave_gdk);
EML_COMMAND(kms_enclave_decrypt, "kms enclave decrypt",
	    "--blob B64 [--key-id ID] [--context JSON] [--count N] [--relay ADDR] [--nsm DEV]",
	    "as the enclave: Decrypt with a Recipient through eml-kms-relay", verb_enclave_decrypt);
EML_COMMAND(kms_enclave_random, "kms enclave generate-random", "[--bytes N] [--relay ADDR] [--nsm DEV]",
	    "as the enclave: GenerateRandom with a Recipient through eml-kms-relay", verb_enclave_random);

/* Send one raw REQUEST frame (nothing added: no Recipient unless BODY has one) and print the answer frame as
 * "TYPE PAYLOAD". For testing the relay's admission rules. */
static int verb_relay_send(int argc, char **argv) {
	static const struct option opts[] = {{"relay", required_argument, NULL, 'r'}, {}};
	const char *relay = "vsock:3:8001";
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'r') return command_usage("kms relay-send");
		relay = optarg;
	}
	if (argc - optind != 2) return command_usage("kms relay-send");
	struct eml_addr a;
	_cleanup_close_ int fd = -1;
	int r = addr_parse(relay, &a);
	if (r >= 0) r = socket_connect_deadline(&a, 5000000, &fd);
	if (r >= 0) r = fd_set_nonblock(fd, 0);
	if (r < 0) {
		fprintf(stderr, "error: cannot connect to %s: %s\n", relay, strerror(-r));
		return 1;
	}
	_cleanup_free_ char *payload = NULL;
	if (asprintf(&payload, "{\"target\":\"%s\",\"body\":%s}", argv[optind], argv[optind + 1]) < 0) return 1;
	struct frame_header h;
	_cleanup_free_ uint8_t *answer = NULL;
	struct timeval tv = {15, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	signal(SIGPIPE, SIG_IGN); /* a relay that hangs up is reported, not fatal */
	r = frame_write(fd, FRAME_REQUEST, 7, payload, strlen(payload));
	if (r >= 0) r = frame_read(fd, KMSPROTO_MAX_RESPONSE, &h, &answer);
	if (r < 0) {
		fprintf(stderr, "error: relay: %s\n", strerror(-r));
		return 1;
	}
	printf("%s %.*s\n", frame_type_name(h.type), (int)h.length, answer ? (const char *)answer : "");
	return h.type == FRAME_RESPONSE && h.seq == 7 ? 0 : 1;
}
EML_COMMAND(kms_relay_send, "kms relay-send", "TARGET BODY [--relay ADDR]",
	    "send one raw request frame to eml-kms-relay and print the answer frame", verb_relay_send);
