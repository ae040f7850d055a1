/* Tests for policy.c and keyfile.c: the JSON form and its refusals, the canonical CBOR payload (deterministic,
 * round trip, strict decoding), signing and verifying (tampering, unknown key, expiry, not yet valid), the
 * client-side loader (signed bundle or private JSON file, trusted key directories), and the conversion into
 * the attestation verifier's inputs, checked on a real AWS Nitro document from tests/vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/sha.h>
#include <sys/stat.h>

#include "attest.h"
#include "cbor.h"
#include "cose.h"
#include "helper-vectors.h"
#include "keyfile.h"
#include "macro.h"
#include "nitro-root.h"
#include "policy.h"
#include "util.h"

#define PCR0_A "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
#define PCR0_B "0a0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
#define MODEL "aa00000000000000000000000000000000000000000000000000000000000000"

static char tmpdir[64];

static int setup(void **state) {
	strcpy(tmpdir, "/tmp/test-policy-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *tmp(const char *name) {
	static char buf[4][128];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
	return buf[i];
}

static Policy *from_json(const char *json, int expect, const char *reason_part) {
	Policy *p = NULL;
	char reason[256] = "";
	int r = policy_from_json(json, strlen(json), NULL, 1000, &p, reason, sizeof reason);
	if (expect == 0 && r != 0) fail_msg("refused: %s (%s)", json, reason);
	assert_int_equal(r, expect);
	if (reason_part && !strstr(reason, reason_part)) fail_msg("reason \"%s\" lacks \"%s\"", reason, reason_part);
	return p;
}

static void test_json(void **state) {
	_cleanup_policy_ Policy *p = from_json("{\"name\": \"t\", \"pcrs\": {\"0\": [\"" PCR0_A "\", \"" PCR0_B "\"], \"8\": [\"" PCR0_A
					       "\"]}, \"models\": [\"" MODEL "\"], \"expires\": 2000}",
					       0, NULL);
	assert_string_equal(p->name, "t");
	assert_int_equal(p->pcr_mask, (1u << 0) | (1u << 8));
	assert_int_equal(p->n_pcr_values[0], 2);
	assert_int_equal(p->pcr_values[0][1][0], 0x0a);
	assert_int_equal(p->issued, 1000);
	assert_int_equal(p->expires, 2000);
	assert_int_equal(p->max_age_s, 300);
	assert_int_equal(p->n_models, 1);
	assert_false(p->is_signed);
	/* The default root is AWS's, pinned by its published fingerprint. */
	assert_int_equal(p->n_roots, 1);
	uint8_t fp[32];
	char hex[65];
	SHA256(p->roots[0].der, p->roots[0].len, fp);
	hex_encode(fp, 32, hex);
	assert_string_equal(hex, NITRO_ROOT_G1_SHA256);
	uint8_t h[32] = {0xaa};
	assert_true(policy_model_allowed(p, h));
	h[1] = 1;
	assert_false(policy_model_allowed(p, h));

	_cleanup_policy_ Policy *any = from_json("{\"name\": \"t\", \"pcrs\": {\"0\": [\"" PCR0_A "\"]}}", 0, NULL);
	assert_true(policy_model_allowed(any, h));

	struct { const char *json, *why; } bad[] = {
		{"{\"pcrs\": {\"0\": [\"" PCR0_A "\"]}}", "name is missing"},
		{"{\"name\": \"t\"}", "pcrs is missing"},
		{"{\"name\": \"t\", \"pcrs\": {}}", "pcrs is missing"},
		{"{\"name\": \"t\", \"pcrs\": {\"0\": []}}", "pcrs.0"},
		{"{\"name\": \"t\", \"pcrs\": {\"32\": [\"" PCR0_A "\"]}}", "index"},
		{"{\"name\": \"t\", \"pcrs\": {\"00\": [\"" PCR0_A "\"]}}", "index"},
		{"{\"name\": \"t\", \"pcrs\": {\"0\": [\"00\"]}}", "48 bytes"},
		{"{\"name\": \"t\", \"pcrs\": {\"0\": [\"" PCR0_A "\"]}, \"max_age_s\": 0}", "max_age_s"},
		{"{\"name\": \"t\", \"pcrs\": {\"0\": [\"" PCR0_A "\"]}, \"max_age_s\": 99999999}", "max_age_s"},
		{"{\"name\": \"t\", \"pcrs\": {\"0\": [\"" PCR0_A "\"]}, \"models\": []}", "models"},
		{"{\"name\": \"t\", \"pcrs\": {\"0\": [\"" PCR0_A "\"]}, \"models\": [\"aa\"]}", "models[0]"},
		{"{\"name\": \"t\", \"pcrs\": {\"0\": [\"" PCR0_A "\"]}, \"roots\": [\"junk\"]}", "roots"},
		{"{\"name\": \"t\", \"pcrs\": {\"0\": [\"" PCR0_A "\"]}, \"roots\": [\"aws-nitro-g1\", \"aws-nitro-g1\"]}", "twice"},
		{"{\"name\": \"t\", \"pcrs\": {\"0\": [\"" PCR0_A "\"]}, \"roots\": [\"@/nonexistent.pem\"]}", "cannot read"},
		{"{\"name\": \"t\", \"pcrs\": {\"0\": [\"" PCR0_A "\"]}, \"expires\": 500}", "expires"},
		{"{\"name\": \"t\", \"pcrs\": {\"0\": [\"" PCR0_A "\"]}, \"colour\": 1}", "unknown policy key"},
		{"{\"name\": \"t\\n\", \"pcrs\": {\"0\": [\"" PCR0_A "\"]}}", "name"},
		{"{\"name\": \"t\", \"pcrs\": {\"0\": [\"" PCR0_A "\"]}} trailing", "JSON"},
		{"[]", "JSON object"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) from_json(bad[i].json, -EINVAL, bad[i].why);
}

static Policy *sample(void) {
	return from_json("{\"name\": \"prod-7\", \"pcrs\": {\"0\": [\"" PCR0_A "\"], \"1\": [\"" PCR0_B "\"], \"2\": [\"" PCR0_A
			 "\"], \"8\": [\"" PCR0_B "\"]}, \"max_age_s\": 120, \"models\": [\"" MODEL "\"], \"issued\": 1500,"
			 " \"expires\": 5000}",
			 0, NULL);
}

static void test_encoding(void **state) {
	_cleanup_policy_ Policy *p = sample();
	memset(p->key_id, 0x5c, sizeof p->key_id);
	_cleanup_free_ uint8_t *a = NULL, *b = NULL;
	size_t an, bn;
	assert_int_equal(policy_encode(p, &a, &an), 0);
	/* Deterministic: decoding with .deterministic accepts it and a re-encode is byte-identical. */
	_cleanup_policy_ Policy *q = NULL;
	char reason[256];
	assert_int_equal(policy_decode(a, an, &q, reason, sizeof reason), 0);
	assert_int_equal(policy_encode(q, &b, &bn), 0);
	assert_int_equal(an, bn);
	assert_memory_equal(a, b, an);
	assert_string_equal(q->name, "prod-7");
	assert_memory_equal(q->key_id, p->key_id, sizeof p->key_id);
	assert_int_equal(q->pcr_mask, p->pcr_mask);
	assert_int_equal(q->expires, 5000);
	assert_int_equal(q->max_age_s, 120);
	assert_int_equal(q->n_models, 1);
	assert_int_equal(q->n_roots, 1);
	/* Every truncation fails. */
	for (size_t i = 0; i < an; i++) {
		Policy *t = NULL;
		assert_int_equal(policy_decode(a, i, &t, reason, sizeof reason), -EBADMSG);
	}
	/* An unknown key is refused (rebuilt map with "extra"). */
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	_cleanup_cbor_ cbor_item_t *m = NULL;
	assert_int_equal(ecbor_decode(a, an, &lim, &m), 0);
	cbor_item_t *m2 = ecbor_map();
	struct cbor_pair *pairs = cbor_map_handle(m);
	for (size_t i = 0; i < cbor_map_size(m); i++)
		assert_int_equal(ecbor_map_put(m2, cbor_incref(pairs[i].key), cbor_incref(pairs[i].value)), 0);
	assert_int_equal(ecbor_map_put(m2, ecbor_tstr("extra"), ecbor_uint(1)), 0);
	_cleanup_free_ uint8_t *c = NULL;
	size_t cn;
	assert_int_equal(ecbor_encode(m2, &c, &cn), 0);
	cbor_decref(&m2);
	Policy *t = NULL;
	assert_int_equal(policy_decode(c, cn, &t, reason, sizeof reason), -EBADMSG);
	assert_non_null(strstr(reason, "keys this version does not know"));
}

static void test_sign_verify(void **state) {
	uint8_t pub[32], pub2[32];
	assert_int_equal(keyfile_generate(tmp("k.pem"), tmp("k.pub"), pub), 0);
	assert_int_equal(keyfile_generate(tmp("k.pem"), NULL, NULL), -EEXIST);
	assert_int_equal(keyfile_generate(tmp("k2.pem"), NULL, pub2), 0);
	struct stat st;
	assert_int_equal(stat(tmp("k.pem"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	uint8_t again[32];
	assert_int_equal(keyfile_load_public(tmp("k.pub"), again), 0);
	assert_memory_equal(again, pub, 32);
	assert_int_equal(keyfile_load_public(tmp("k.pem"), again), 0);
	assert_memory_equal(again, pub, 32);
	char hex[65];
	hex_encode(pub, 32, hex);
	assert_int_equal(keyfile_load_public(hex, again), 0);
	assert_memory_equal(again, pub, 32);

	EVP_PKEY *key = NULL;
	assert_int_equal(keyfile_load_private(tmp("k.pem"), &key), 0);
	assert_int_equal(keyfile_load_private(tmp("k.pub"), &key), -EBADMSG);
	_cleanup_policy_ Policy *p = sample();
	_cleanup_free_ uint8_t *bundle = NULL;
	size_t n;
	assert_int_equal(policy_sign(p, key, &bundle, &n), 0);
	EVP_PKEY_free(key);
	uint8_t id[8];
	policy_key_id(pub, id);
	assert_memory_equal(p->key_id, id, 8);

	uint8_t keys_[2][32];
	memcpy(keys_[0], pub2, 32);
	memcpy(keys_[1], pub, 32);
	const uint8_t(*keys)[32] = (const uint8_t(*)[32])keys_;
	Policy *v = NULL;
	PolicyError e;
	char reason[256];
	assert_int_equal(policy_verify(bundle, n, keys, 2, 2000, &v, &e, reason, sizeof reason), 0);
	assert_int_equal(e, POLICY_OK);
	assert_true(v->is_signed);
	assert_string_equal(v->name, "prod-7");
	v = policy_free(v);

	/* The checks in order: no key, unknown key, time window. */
	assert_int_equal(policy_verify(bundle, n, keys, 0, 2000, &v, &e, reason, sizeof reason), -EPERM);
	assert_int_equal(e, POLICY_UNTRUSTED);
	assert_int_equal(policy_verify(bundle, n, keys, 1, 2000, &v, &e, reason, sizeof reason), -EPERM);
	assert_int_equal(e, POLICY_UNKNOWN_KEY);
	assert_int_equal(policy_verify(bundle, n, keys, 2, 5000, &v, &e, reason, sizeof reason), -EPERM);
	assert_int_equal(e, POLICY_EXPIRED);
	assert_int_equal(policy_verify(bundle, n, keys, 2, 1500 - 301, &v, &e, reason, sizeof reason), -EPERM);
	assert_int_equal(e, POLICY_NOT_YET_VALID);
	assert_int_equal(policy_verify(bundle, n, keys, 2, 1500 - 300, &v, &e, reason, sizeof reason), 0);
	v = policy_free(v);

	/* Any single flipped bit is refused (format or signature), never accepted. */
	for (size_t bit = 0; bit < n * 8; bit++) {
		bundle[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int r = policy_verify(bundle, n, keys, 2, 2000, &v, &e, reason, sizeof reason);
		if (r == 0) fail_msg("bit %zu flipped and still valid", bit);
		assert_true(e == POLICY_BAD_FORMAT || e == POLICY_BAD_SIGNATURE || e == POLICY_UNKNOWN_KEY);
		bundle[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* The key id is signed: a bundle whose payload names another key fails as unknown or bad signature. */
	_cleanup_policy_ Policy *peek = NULL;
	assert_int_equal(policy_peek(bundle, n, &peek, reason, sizeof reason), 0);
	assert_false(peek->is_signed);
	assert_memory_equal(peek->key_id, id, 8);
}

static void test_load(void **state) {
	uint8_t pub[32];
	assert_int_equal(keyfile_generate(tmp("signer.pem"), tmp("signer.pub"), pub), 0);
	EVP_PKEY *key = NULL;
	assert_int_equal(keyfile_load_private(tmp("signer.pem"), &key), 0);
	_cleanup_policy_ Policy *p = sample();
	_cleanup_free_ uint8_t *bundle = NULL;
	size_t n;
	assert_int_equal(policy_sign(p, key, &bundle, &n), 0);
	EVP_PKEY_free(key);
	assert_int_equal(write_file(tmp("p.cose"), bundle, n, 0644), 0);

	/* Trusted keys from a directory: PEM files and raw hex .pub files; other files are ignored. */
	char dir[128];
	snprintf(dir, sizeof dir, "%s/keys", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	char hex[66];
	hex_encode(pub, 32, hex);
	strcat(hex, "\n");
	char path[160];
	snprintf(path, sizeof path, "%s/owner.pub", dir);
	assert_int_equal(write_file(path, hex, 65, 0644), 0);
	snprintf(path, sizeof path, "%s/README", dir);
	assert_int_equal(write_file(path, "x", 1, 0644), 0);
	uint8_t (*keys)[32] = NULL;
	size_t nk = 0;
	assert_int_equal(policy_keys_load_dir(dir, &keys, &nk), 0);
	assert_int_equal(policy_keys_load_dir("/nonexistent-dir", &keys, &nk), 0);
	assert_int_equal(nk, 1);
	assert_memory_equal(keys[0], pub, 32);

	Policy *v = NULL;
	PolicyError e;
	char reason[256];
	assert_int_equal(policy_load(tmp("p.cose"), (const uint8_t(*)[32])keys, nk, 2000, &v, &e, reason, sizeof reason), 0);
	assert_true(v->is_signed);
	v = policy_free(v);
	assert_int_equal(policy_load(tmp("p.cose"), NULL, 0, 2000, &v, &e, reason, sizeof reason), -EPERM);
	assert_int_equal(e, POLICY_UNTRUSTED);
	free(keys);

	/* An unsigned JSON policy is accepted only from a file nobody else can write. */
	const char *json = "{\"name\": \"mine\", \"pcrs\": {\"0\": [\"" PCR0_A "\"]}}";
	assert_int_equal(write_file(tmp("mine.json"), json, strlen(json), 0600), 0);
	assert_int_equal(policy_load(tmp("mine.json"), NULL, 0, 2000, &v, &e, reason, sizeof reason), 0);
	assert_false(v->is_signed);
	assert_string_equal(v->name, "mine");
	v = policy_free(v);
	assert_int_equal(chmod(tmp("mine.json"), 0666), 0);
	assert_int_equal(policy_load(tmp("mine.json"), NULL, 0, 2000, &v, &e, reason, sizeof reason), -EPERM);
	assert_int_equal(e, POLICY_UNTRUSTED);
	assert_int_equal(policy_load(tmp("absent.json"), NULL, 0, 2000, &v, &e, reason, sizeof reason), -ENOENT);
}

/* The conversion into the verifier's inputs, on a real production document: the root comes from the outside
 * PEM by @file, PCR0 from the document; a policy naming another PCR0 refuses it. */
static void test_attest_conversion(void **state) {
	_cleanup_free_ uint8_t *doc = NULL;
	size_t len;
	assert_int_equal(tv_read("nitro/nitro-prod-2021.cose", &doc, &len), 0);
	_cleanup_attest_doc_ AttestDoc *d = NULL;
	assert_int_equal(attest_parse(doc, len, &d, NULL, NULL, 0), 0);
	char pcr0[97];
	hex_encode(d->pcrs[0], ATTEST_PCR_LEN, pcr0);
	assert_memory_equal(pcr0, "2d1515", 6); /* as tests/vectors/README.md describes it */

	const char *src = getenv("EML_SRCDIR");
	char json[1024];
	for (int variant = 0; variant < 2; variant++) {
		snprintf(json, sizeof json,
			 "{\"name\": \"real\", \"pcrs\": {\"0\": [\"%s\"]}, \"max_age_s\": 60,"
			 " \"roots\": [\"@%s/tests/vectors/nitro/aws-nitro-root-g1.pem\"]}",
			 variant == 0 ? pcr0 : PCR0_A, src ? src : ".");
		_cleanup_policy_ Policy *p = from_json(json, 0, NULL);
		uint8_t fp[32];
		char hex[65];
		SHA256(p->roots[0].der, p->roots[0].len, fp);
		hex_encode(fp, 32, hex);
		assert_string_equal(hex, NITRO_ROOT_G1_SHA256);
		_cleanup_attest_policy_ AttestPolicy *ap = NULL;
		_cleanup_x509_root_ X509Root *root = NULL;
		assert_int_equal(policy_attest_policy(p, &ap), 0);
		assert_int_equal(ap->max_age_ms, 60000);
		assert_int_equal(ap->pcr_mask, 1);
		assert_int_equal(policy_root(p, 0, &root), 0);
		assert_int_equal(policy_root(p, 1, &root), -ENOENT);
		struct attest_verify_params vp = {.root = root, .now_ms = 1616018515685ull + 1000, .policy = ap};
		AttestError e;
		char reason[256];
		int r = attest_verify(doc, len, &vp, NULL, &e, reason, sizeof reason);
		if (variant == 0) {
			if (r != 0) fail_msg("refused: %s %s", attest_error_name(e), reason);
		} else {
			assert_int_equal(r, -EPERM);
			assert_int_equal(e, ATTEST_PCR_NOT_ALLOWED);
		}
	}
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_encoding),
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_attest_conversion),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
