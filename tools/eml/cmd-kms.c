/* cmd-kms.c: `eml kms ...`, KMS debugging from the host or a developer machine:
 *   eml kms call TARGET BODY       one SigV4-signed AWS KMS JSON 1.1 request; prints the response body
 *   eml kms unwrap --key PEM FILE  decrypt a CiphertextForRecipient (base64) with the recipient's RSA key
 *   eml kms dev-document ...       an NSM-shaped attestation document signed by a development CA, for tests of
 *                                  eml-kms-local until eml-nsm-sim can produce them */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "base64.h"
#include "cms.h"
#include "command.h"
#include "macro.h"
#include "sigv4.h"
#include "util.h"

#define MAX_RESPONSE (1u << 20)

struct grow {
	char *p;
	size_t len;
	bool overflow;
};

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
	struct grow *g = ud;
	size_t add = size * n;
	if (g->len + add > MAX_RESPONSE) {
		g->overflow = true;
		return 0;
	}
	char *p = realloc(g->p, g->len + add + 1);
	if (!p) return 0;
	memcpy(p + g->len, data, add);
	g->p = p;
	g->len += add;
	g->p[g->len] = 0;
	return add;
}

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
	char line[4096];
	for (size_t i = 0; i < ARRAY_SIZE(h); i++) {
		snprintf(line, sizeof line, "%s: %s", h[i].name, h[i].value);
		hl = curl_slist_append(hl, line);
	}
	snprintf(line, sizeof line, "X-Amz-Date: %s", res.amz_date);
	hl = curl_slist_append(hl, line);
	if (cr.session_token) {
		snprintf(line, sizeof line, "X-Amz-Security-Token: %s", cr.session_token);
		hl = curl_slist_append(hl, line);
	}
	snprintf(line, sizeof line, "Authorization: %s", res.authorization);
	hl = curl_slist_append(hl, line);
	hl = curl_slist_append(hl, "Expect:");
	sigv4_result_done(&res);

	struct grow out = {};
	CURL *e = curl_easy_init();
	long status = 0;
	CURLcode cc = CURLE_FAILED_INIT;
	if (e) {
		curl_easy_setopt(e, CURLOPT_URL, endpoint);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)body_len);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
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
		free(out.p);
		return 1;
	}
	printf("%s\n", out.p ? out.p : "");
	if (out.p) wipe(out.p, out.len); /* may hold a Plaintext */
	free(out.p);
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

/* ---- a minimal CBOR writer for the development document ---- */

struct cbor_out {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

static void out_add(struct cbor_out *o, const void *d, size_t n) {
	if (o->oom || n == 0) return;
	if (o->len + n > o->cap) {
		size_t cap = MAX(o->cap * 2, o->len + n + 256);
		uint8_t *p = realloc(o->p, cap);
		if (!p) {
			o->oom = true;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, d, n);
	o->len += n;
}

static void head(struct cbor_out *o, unsigned major, uint64_t v) {
	uint8_t b[9];
	size_t n;
	if (v < 24) {
		b[0] = (uint8_t)(major << 5 | v);
		n = 1;
	} else {
		int bytes = v < 256 ? 1 : v < 65536 ? 2 : v <= UINT32_MAX ? 4 : 8;
		b[0] = (uint8_t)(major << 5 | (bytes == 1 ? 24 : bytes == 2 ? 25 : bytes == 4 ? 26 : 27));
		for (int i = 0; i < bytes; i++) b[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
		n = 1 + (size_t)bytes;
	}
	out_add(o, b, n);
}

static void bstr(struct cbor_out *o, const uint8_t *d, size_t n) {
	head(o, 2, n);
	out_add(o, d, n);
}

static void tstr(struct cbor_out *o, const char *s) {
	head(o, 3, strlen(s));
	out_add(o, s, strlen(s));
}

static int read_pem_certs(const char *path, STACK_OF(X509) **ret) {
	FILE *f = fopen(path, "re");
	if (!f) return -errno;
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509 *x;
	while ((x = PEM_read_X509(f, NULL, NULL, NULL))) sk_X509_push(sk, x);
	ERR_clear_error();
	fclose(f);
	if (sk_X509_num(sk) == 0) {
		sk_X509_free(sk);
		return -EBADMSG;
	}
	*ret = sk;
	return 0;
}

static void put_cert(struct cbor_out *o, X509 *x) {
	uint8_t *der = NULL;
	int n = i2d_X509(x, &der);
	if (n <= 0) {
		o->oom = true;
		return;
	}
	bstr(o, der, (size_t)n);
	OPENSSL_free(der);
}

static int verb_dev_document(int argc, char **argv) {
	static const struct option opts[] = {
		{"leaf-key", required_argument, NULL, 'k'}, {"leaf-cert", required_argument, NULL, 'c'},
		{"bundle", required_argument, NULL, 'b'},   {"public-key", required_argument, NULL, 'p'},
		{"pcr", required_argument, NULL, 'P'},      {"timestamp", required_argument, NULL, 't'},
		{"output", required_argument, NULL, 'o'},   {},
	};
	const char *key = NULL, *cert = NULL, *bundle = NULL, *pub = NULL, *out = NULL;
	uint8_t pcrs[16][48] = {};
	uint64_t ts = 0;
	int c;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (c) {
		case 'k': key = optarg; break;
		case 'c': cert = optarg; break;
		case 'b': bundle = optarg; break;
		case 'p': pub = optarg; break;
		case 'o': out = optarg; break;
		case 't':
			if (parse_u64(optarg, UINT64_MAX, &ts) < 0) return command_usage("kms dev-document");
			break;
		case 'P': {
			char *eq = strchr(optarg, '=');
			uint64_t idx;
			if (!eq) return command_usage("kms dev-document");
			*eq = 0;
			if (parse_u64(optarg, 15, &idx) < 0 || hex_decode(eq + 1, pcrs[idx], 48) != 48) {
				fprintf(stderr, "error: --pcr wants N=HEX with 48 bytes of hex\n");
				return 2;
			}
			break;
		}
		default: return command_usage("kms dev-document");
		}
	}
	if (!key || !cert || !bundle || !out || optind != argc) return command_usage("kms dev-document");
	if (!ts) ts = now_realtime_usec() / 1000;

	int ret = 1;
	EVP_PKEY *pk = load_private_key(key);
	STACK_OF(X509) *leaf = NULL, *cab = NULL;
	_cleanup_free_ uint8_t *spki = NULL;
	size_t spki_len = 0;
	struct cbor_out payload = {}, prot = {}, tbs = {}, doc = {};
	uint8_t *sig_der = NULL;
	if (!pk || read_pem_certs(cert, &leaf) < 0 || read_pem_certs(bundle, &cab) < 0 ||
	    (pub && read_file(pub, 4096, &spki, &spki_len) < 0)) {
		fprintf(stderr, "error: cannot read the key, certificates or public key\n");
		goto done;
	}
	/* Payload: the NSM document's fields in the NSM's order. */
	head(&payload, 5, 9);
	tstr(&payload, "module_id");
	tstr(&payload, "i-0123456789abcdef0-enc0123456789abcd");
	tstr(&payload, "digest");
	tstr(&payload, "SHA384");
	tstr(&payload, "timestamp");
	head(&payload, 0, ts);
	tstr(&payload, "pcrs");
	head(&payload, 5, 16);
	for (unsigned i = 0; i < 16; i++) {
		head(&payload, 0, i);
		bstr(&payload, pcrs[i], 48);
	}
	tstr(&payload, "certificate");
	put_cert(&payload, sk_X509_value(leaf, 0));
	tstr(&payload, "cabundle");
	head(&payload, 4, (uint64_t)sk_X509_num(cab));
	for (int i = 0; i < sk_X509_num(cab); i++) put_cert(&payload, sk_X509_value(cab, i));
	tstr(&payload, "public_key");
	if (spki)
		bstr(&payload, spki, spki_len);
	else
		head(&payload, 7, 22);
	tstr(&payload, "user_data");
	head(&payload, 7, 22);
	tstr(&payload, "nonce");
	head(&payload, 7, 22);
	/* protected = {1: -35} */
	static const uint8_t alg[] = {0xa1, 0x01, 0x38, 0x22};
	out_add(&prot, alg, sizeof alg);
	/* Sig_structure */
	head(&tbs, 4, 4);
	tstr(&tbs, "Signature1");
	bstr(&tbs, prot.p, prot.len);
	bstr(&tbs, NULL, 0);
	bstr(&tbs, payload.p, payload.len);
	if (payload.oom || prot.oom || tbs.oom) goto done;
	size_t sl = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool ok = md && EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, pk) == 1 &&
		  EVP_DigestSign(md, NULL, &sl, tbs.p, tbs.len) == 1 && (sig_der = malloc(sl)) &&
		  EVP_DigestSign(md, sig_der, &sl, tbs.p, tbs.len) == 1;
	EVP_MD_CTX_free(md);
	if (!ok) {
		fprintf(stderr, "error: signing failed (the leaf key must be P-384)\n");
		goto done;
	}
	const uint8_t *sp = sig_der;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &sp, (long)sl);
	uint8_t rs[96];
	if (!es || BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 48) != 48 || BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 48, 48) != 48) {
		ECDSA_SIG_free(es);
		goto done;
	}
	ECDSA_SIG_free(es);
	head(&doc, 4, 4);
	bstr(&doc, prot.p, prot.len);
	head(&doc, 5, 0);
	bstr(&doc, payload.p, payload.len);
	bstr(&doc, rs, 96);
	if (doc.oom || write_file(out, doc.p, doc.len, 0644) < 0) {
		fprintf(stderr, "error: cannot write %s\n", out);
		goto done;
	}
	ret = 0;
done:
	EVP_PKEY_free(pk);
	sk_X509_pop_free(leaf, X509_free);
	sk_X509_pop_free(cab, X509_free);
	free(sig_der);
	free(payload.p);
	free(prot.p);
	free(tbs.p);
	free(doc.p);
	return ret;
}
EML_COMMAND(kms_dev_document, "kms dev-document",
	    "--leaf-key PEM --leaf-cert PEM --bundle PEM [--public-key DER] [--pcr N=HEX]... [--timestamp MS] -o FILE",
	    "write a development NSM-shaped attestation document (for eml-kms-local tests)", verb_dev_document);
