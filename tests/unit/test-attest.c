/* Tests for attest.c with the real AWS documents in tests/vectors/nitro (and their root), documents built the
 * way eml-nsm-sim builds them (devca + attest_payload_encode + cose), and the JSON policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/stat.h>

#include "attest.h"
#include "cbor.h"
#include "cose.h"
#include "devca.h"
#include "helper-vectors.h"
#include "macro.h"
#include "nitro-root.h"
#include "util.h"

#define PROD_MS 1616018515685ull
#define DEBUG_MS 1706120065635ull
#define DAY_MS (86400ull * 1000)

static X509Root *aws_root(void) {
	_cleanup_free_ uint8_t *pem = NULL;
	size_t len;
	X509Root *r = NULL;
	assert_int_equal(tv_read("nitro/aws-nitro-root-g1.pem", &pem, &len), 0);
	assert_int_equal(x509_root_from_pem(pem, len, &r), 0);
	return r;
}

static AttestError verify(const uint8_t *doc, size_t len, const X509Root *root, uint64_t now_ms,
			  const uint8_t *nonce, size_t nonce_len, const AttestPolicy *pol, AttestDoc **ret) {
	struct attest_verify_params p = {.root = root, .now_ms = now_ms, .nonce = nonce, .nonce_len = nonce_len,
					 .policy = pol};
	AttestError e = _ATTEST_ERROR_MAX;
	char reason[256];
	int r = attest_verify(doc, len, &p, ret, &e, reason, sizeof reason);
	assert_true((r == 0) == (e == ATTEST_OK));
	return e;
}

static void test_error_names(void **state) {
	assert_string_equal(attest_error_name(ATTEST_BAD_STRUCTURE), "BAD_STRUCTURE");
	assert_string_equal(attest_error_name(ATTEST_EXPIRED), "EXPIRED");
	assert_string_equal(attest_error_name(ATTEST_PCR_NOT_ALLOWED), "PCR_NOT_ALLOWED");
	assert_string_equal(attest_error_name(_ATTEST_ERROR_MAX), "INTERNAL");
	/* every code has its own name */
	for (int i = 0; i < _ATTEST_ERROR_MAX; i++)
		for (int j = i + 1; j < _ATTEST_ERROR_MAX; j++)
			assert_string_not_equal(attest_error_name(i), attest_error_name(j));
}

static void test_builtin_root_matches_vector(void **state) {
	_cleanup_x509_root_ X509Root *a = aws_root(), *b = NULL;
	assert_int_equal(nitro_root_g1(&b), 0);
	assert_memory_equal(x509_root_fingerprint(a), x509_root_fingerprint(b), 32);
}

static void test_real_documents(void **state) {
	_cleanup_x509_root_ X509Root *root = aws_root();
	struct { const char *name; uint64_t ts; } v[] = {{"nitro/nitro-prod-2021.cose", PROD_MS},
							{"nitro/nitro-debug-full-2024.cose", DEBUG_MS}};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		_cleanup_free_ uint8_t *doc = NULL;
		size_t len;
		assert_int_equal(tv_read(v[i].name, &doc, &len), 0);
		_cleanup_attest_doc_ AttestDoc *d = NULL;
		assert_int_equal(verify(doc, len, root, v[i].ts, NULL, 0, NULL, &d), ATTEST_OK);
		assert_int_equal(d->timestamp_ms, v[i].ts);
		assert_string_equal(d->digest, "SHA384");
		assert_int_equal(d->pcr_mask, 0xffff);
		assert_int_equal(d->n_cabundle, 4);
		/* one day later: expired */
		assert_int_equal(verify(doc, len, root, v[i].ts + DAY_MS, NULL, 0, NULL, NULL), ATTEST_EXPIRED);
		/* freshness against the verification time */
		_cleanup_attest_policy_ AttestPolicy *pol = NULL;
		assert_int_equal(attest_policy_new(&pol), 0);
		pol->max_age_ms = 60 * 1000;
		assert_int_equal(verify(doc, len, root, v[i].ts + 30000, NULL, 0, pol, NULL), ATTEST_OK);
		assert_int_equal(verify(doc, len, root, v[i].ts + 61000, NULL, 0, pol, NULL), ATTEST_STALE);
		/* before the leaf existed: the chain check speaks first */
		assert_int_equal(verify(doc, len, root, v[i].ts - 120000, NULL, 0, pol, NULL), ATTEST_EXPIRED);
	}
}

static void test_real_fields_and_nonce(void **state) {
	_cleanup_x509_root_ X509Root *root = aws_root();
	_cleanup_free_ uint8_t *doc = NULL;
	size_t len;
	assert_int_equal(tv_read("nitro/nitro-debug-full-2024.cose", &doc, &len), 0);
	_cleanup_attest_doc_ AttestDoc *d = NULL;
	const uint8_t nonce[] = "Nonce\n";
	assert_int_equal(verify(doc, len, root, DEBUG_MS, nonce, 6, NULL, &d), ATTEST_OK);
	assert_int_equal(d->user_data_len, 13);
	assert_memory_equal(d->user_data, "Hello World!\n", 13);
	assert_int_equal(d->public_key_len, 294);
	/* debug mode: PCR0 all zero */
	uint8_t zero[ATTEST_PCR_LEN] = {0};
	assert_memory_equal(d->pcrs[0], zero, ATTEST_PCR_LEN);
	assert_int_equal(verify(doc, len, root, DEBUG_MS, (const uint8_t *)"Nonce!", 6, NULL, NULL), ATTEST_NONCE_MISMATCH);
	assert_int_equal(verify(doc, len, root, DEBUG_MS, nonce, 5, NULL, NULL), ATTEST_NONCE_MISMATCH);

	_cleanup_free_ uint8_t *prod = NULL;
	assert_int_equal(tv_read("nitro/nitro-prod-2021.cose", &prod, &len), 0);
	_cleanup_attest_doc_ AttestDoc *p = NULL;
	assert_int_equal(verify(prod, len, root, PROD_MS, NULL, 0, NULL, &p), ATTEST_OK);
	assert_null(p->nonce);
	assert_null(p->user_data);
	assert_null(p->public_key);
	assert_int_equal(verify(prod, len, root, PROD_MS, nonce, 6, NULL, NULL), ATTEST_NONCE_MISMATCH);
	char hex[2 * ATTEST_PCR_LEN + 1];
	hex_encode(p->pcrs[0], 6, hex);
	assert_string_equal(hex, "2d151586641b"); /* the vector README's PCR0 prefix */
}

static void test_policy(void **state) {
	_cleanup_x509_root_ X509Root *root = aws_root();
	_cleanup_free_ uint8_t *doc = NULL;
	size_t len;
	assert_int_equal(tv_read("nitro/nitro-prod-2021.cose", &doc, &len), 0);
	_cleanup_attest_doc_ AttestDoc *d = NULL;
	assert_int_equal(verify(doc, len, root, PROD_MS, NULL, 0, NULL, &d), ATTEST_OK);
	char pcr0[97], pcr8[97], other[97];
	hex_encode(d->pcrs[0], ATTEST_PCR_LEN, pcr0);
	hex_encode(d->pcrs[8], ATTEST_PCR_LEN, pcr8);
	memset(other, 'a', 96);
	other[96] = 0;

	char json[1024];
	char reason[200];
	_cleanup_attest_policy_ AttestPolicy *ok = NULL, *bad = NULL, *missing = NULL;
	snprintf(json, sizeof json, "{\"pcrs\": {\"0\": [\"%s\", \"%s\"], \"8\": [\"%s\"]}, \"max_age_s\": 0}", other,
		 pcr0, pcr8);
	assert_int_equal(attest_policy_from_json(json, strlen(json), &ok, reason, sizeof reason), 0);
	assert_int_equal(ok->pcr_mask, (1u << 0) | (1u << 8));
	assert_int_equal(verify(doc, len, root, PROD_MS, NULL, 0, ok, NULL), ATTEST_OK);
	snprintf(json, sizeof json, "{\"pcrs\": {\"0\": [\"%s\"]}}", other);
	assert_int_equal(attest_policy_from_json(json, strlen(json), &bad, reason, sizeof reason), 0);
	assert_int_equal(verify(doc, len, root, PROD_MS, NULL, 0, bad, NULL), ATTEST_PCR_NOT_ALLOWED);
	snprintf(json, sizeof json, "{\"pcrs\": {\"20\": [\"%s\"]}}", other);
	assert_int_equal(attest_policy_from_json(json, strlen(json), &missing, reason, sizeof reason), 0);
	assert_int_equal(verify(doc, len, root, PROD_MS, NULL, 0, missing, NULL), ATTEST_PCR_NOT_ALLOWED);

	static const char *const invalid[] = {
		"", "[]", "{\"pcrs\": []}", "{\"pcrs\": {\"32\": [\"00\"]}}", "{\"pcrs\": {\"00\": []}}",
		"{\"pcrs\": {\"0\": []}}", "{\"pcrs\": {\"0\": [\"abcd\"]}}", "{\"max_age_s\": -1}",
		"{\"max_age_s\": \"5\"}", "{\"pcr\": {}}", "{\"pcrs\": {}} x", "{\"max_age_s\": 1, }",
	};
	for (size_t i = 0; i < ARRAY_SIZE(invalid); i++) {
		AttestPolicy *p = NULL;
		reason[0] = 0;
		assert_int_equal(attest_policy_from_json(invalid[i], strlen(invalid[i]), &p, reason, sizeof reason), -EINVAL);
		assert_null(p);
		assert_true(reason[0] != 0);
	}
}

/* Every signature byte, then every 5th byte of the rest, flipped: rejected with a code, never accepted. */
static void test_byte_flips(void **state) {
	_cleanup_x509_root_ X509Root *root = aws_root();
	_cleanup_x509_path_cache_ X509PathCache *cache = NULL;
	assert_int_equal(x509_path_cache_new(8, &cache), 0);
	const char *names[] = {"nitro/nitro-prod-2021.cose", "nitro/nitro-debug-full-2024.cose"};
	const uint64_t ts[] = {PROD_MS, DEBUG_MS};
	for (size_t v = 0; v < ARRAY_SIZE(names); v++) {
		_cleanup_free_ uint8_t *doc = NULL;
		size_t len;
		assert_int_equal(tv_read(names[v], &doc, &len), 0);
		unsigned counts[_ATTEST_ERROR_MAX] = {0};
		for (size_t i = 0; i < len; i++) {
			if (i < len - 96 && i % 5 != 0) continue;
			for (int bit = 0; bit < 8; bit += (i < len - 96 ? 8 : 3)) {
				doc[i] ^= (uint8_t)(1u << bit);
				struct attest_verify_params p = {.root = root, .now_ms = ts[v], .cache = cache};
				AttestError e = ATTEST_OK;
				int r = attest_verify(doc, len, &p, NULL, &e, NULL, 0);
				doc[i] ^= (uint8_t)(1u << bit);
				if (r == 0 || e == ATTEST_OK || e == ATTEST_INTERNAL)
					fail_msg("flip of byte %zu bit %d of %s: r=%d code=%s", i, bit, names[v], r,
						 attest_error_name(e));
				counts[e]++;
				if (i >= len - 96) assert_int_equal(e, ATTEST_SIGNATURE);
			}
		}
		/* the sample reaches structure, chain, root and signature checks */
		assert_true(counts[ATTEST_BAD_STRUCTURE] > 0);
		assert_true(counts[ATTEST_SIGNATURE] > 96);
		assert_true(counts[ATTEST_CHAIN] > 0);
		assert_true(counts[ATTEST_UNKNOWN_ROOT] > 0);
		/* and the untouched document still verifies */
		assert_int_equal(verify(doc, len, root, ts[v], NULL, 0, NULL, NULL), ATTEST_OK);
	}
}

/* A document built exactly as eml-nsm-sim builds one. */
static void sim_document(const char *ca_dir, bool with_optional, int64_t ts_offset_ms, uint8_t **ret, size_t *ret_len) {
	_cleanup_devca_ DevCa *ca = NULL;
	assert_int_equal(devca_load(ca_dir, &ca), 0);
	EVP_PKEY *key = NULL;
	uint8_t *leaf = NULL;
	size_t leaf_len;
	time_t now = time(NULL);
	assert_int_equal(devca_issue_leaf(ca, "i-0123456789abcdef0-enc0123456789abcdef", now, &key, &leaf, &leaf_len), 0);
	const struct x509_der *bundle;
	size_t n = devca_bundle(ca, &bundle);
	static uint8_t pcrs[ATTEST_PCR_COUNT][ATTEST_PCR_LEN];
	struct attest_payload p = {
		.module_id = "i-0123456789abcdef0-enc0123456789abcdef", .timestamp_ms = (uint64_t)((int64_t)now * 1000 + ts_offset_ms),
		.pcr_mask = 0xffff, .pcrs = (const uint8_t(*)[ATTEST_PCR_LEN])pcrs, .certificate = {leaf, leaf_len},
		.cabundle = bundle, .n_cabundle = n,
	};
	if (with_optional) {
		p.public_key = (const uint8_t *)"0123456789";
		p.public_key_len = 10;
		p.user_data = (const uint8_t *)"user";
		p.user_data_len = 4;
		p.nonce = (const uint8_t *)"nonce";
		p.nonce_len = 5;
	}
	_cleanup_free_ uint8_t *payload = NULL;
	size_t plen;
	assert_int_equal(attest_payload_encode(&p, &payload, &plen), 0);
	assert_int_equal(cose_sign1_sign(COSE_ALG_ES384, key, payload, plen, NULL, 0, false, ret, ret_len), 0);
	EVP_PKEY_free(key);
	OPENSSL_free(leaf);
}

/* "key:type" for each payload entry in order; pcrs and cabundle element types included. */
static void skeleton(const uint8_t *doc, size_t len, char *out, size_t size) {
	_cleanup_cose_sign1_ CoseSign1 *m = NULL;
	assert_int_equal(cose_sign1_decode(doc, len, &m), 0);
	cbor_item_t *pl = NULL;
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	assert_int_equal(ecbor_decode(m->payload, m->payload_len, &lim, &pl), 0);
	size_t o = (size_t)snprintf(out, size, "tagged=%d prot=%zu:", m->tagged, m->protected_len);
	for (size_t i = 0; i < m->protected_len; i++) o += (size_t)snprintf(out + o, size - o, "%02x", m->protected_bytes[i]);
	o += (size_t)snprintf(out + o, size - o, " sig=%zu |", m->signature_len);
	for (size_t i = 0; i < cbor_map_size(pl); i++) {
		struct cbor_pair p = cbor_map_handle(pl)[i];
		const char *k;
		size_t kl;
		assert_int_equal(ecbor_get_tstr(p.key, &k, &kl), 0);
		o += (size_t)snprintf(out + o, size - o, " %.*s:%s", (int)kl, k,
				      ecbor_is_null(p.value) ? "null" : (const char *[]){"uint", "negint", "bstr", "tstr", "array", "map", "tag", "float"}[cbor_typeof(p.value)]);
		if (cbor_isa_map(p.value))
			for (size_t j = 0; j < cbor_map_size(p.value); j++) {
				uint64_t idx;
				size_t bl;
				const uint8_t *b;
				assert_int_equal(ecbor_get_uint(cbor_map_handle(p.value)[j].key, &idx), 0);
				assert_int_equal(ecbor_get_bstr(cbor_map_handle(p.value)[j].value, &b, &bl), 0);
				o += (size_t)snprintf(out + o, size - o, ",%u=b%zu", (unsigned)idx, bl);
			}
		if (cbor_isa_array(p.value))
			o += (size_t)snprintf(out + o, size - o, ",n=%zu", cbor_array_size(p.value));
	}
	cbor_decref(&pl);
}

static void test_sim_documents(void **state) {
	char dir[] = "/tmp/eml-attest-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char ca[64];
	snprintf(ca, sizeof ca, "%s/ca", dir);
	assert_int_equal(devca_init(ca, 3, time(NULL)), 0);
	_cleanup_free_ uint8_t *sim_null = NULL, *sim_full = NULL, *prod = NULL, *dbg = NULL;
	size_t sn_len, sf_len, prod_len, dbg_len;
	sim_document(ca, false, 0, &sim_null, &sn_len);
	sim_document(ca, true, 0, &sim_full, &sf_len);
	assert_int_equal(tv_read("nitro/nitro-prod-2021.cose", &prod, &prod_len), 0);
	assert_int_equal(tv_read("nitro/nitro-debug-full-2024.cose", &dbg, &dbg_len), 0);

	/* same structure: key order, types, nulls, PCR count and sizes, bundle length */
	char a[2048], b[2048];
	skeleton(prod, prod_len, a, sizeof a);
	skeleton(sim_null, sn_len, b, sizeof b);
	assert_string_equal(a, b);
	skeleton(dbg, dbg_len, a, sizeof a);
	skeleton(sim_full, sf_len, b, sizeof b);
	assert_string_equal(a, b);
	assert_non_null(strstr(a, " module_id:tstr digest:tstr timestamp:uint pcrs:map,0=b48"));
	assert_non_null(strstr(b, "certificate:bstr cabundle:array,n=4 public_key:bstr user_data:bstr nonce:bstr"));

	/* verify against the dev root, rejected against the AWS root */
	char root_path[96];
	snprintf(root_path, sizeof root_path, "%s/root.pem", ca);
	_cleanup_x509_root_ X509Root *dev = NULL, *awsr = aws_root();
	assert_int_equal(x509_root_load_pem(root_path, &dev), 0);
	uint64_t now = now_realtime_usec() / 1000;
	assert_int_equal(verify(sim_full, sf_len, dev, now, (const uint8_t *)"nonce", 5, NULL, NULL), ATTEST_OK);
	assert_int_equal(verify(sim_null, sn_len, dev, now, NULL, 0, NULL, NULL), ATTEST_OK);
	assert_int_equal(verify(sim_full, sf_len, awsr, now, NULL, 0, NULL, NULL), ATTEST_UNKNOWN_ROOT);
	/* the 3-hour leaf */
	assert_int_equal(verify(sim_full, sf_len, dev, now + 3 * 3600 * 1000ull, NULL, 0, NULL, NULL), ATTEST_EXPIRED);

	/* dated 10 minutes ahead while its leaf is valid: fine without a freshness policy, STALE with one */
	_cleanup_free_ uint8_t *future = NULL;
	size_t fl;
	sim_document(ca, false, 600 * 1000, &future, &fl);
	_cleanup_attest_policy_ AttestPolicy *pol = NULL;
	assert_int_equal(attest_policy_new(&pol), 0);
	pol->max_age_ms = 60 * 1000;
	assert_int_equal(verify(future, fl, dev, now, NULL, 0, NULL, NULL), ATTEST_OK);
	assert_int_equal(verify(future, fl, dev, now, NULL, 0, pol, NULL), ATTEST_STALE);
	assert_int_equal(verify(sim_null, sn_len, dev, now, NULL, 0, pol, NULL), ATTEST_OK);

	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_bad_structure(void **state) {
	_cleanup_x509_root_ X509Root *root = aws_root();
	_cleanup_free_ uint8_t *doc = NULL;
	size_t len;
	assert_int_equal(tv_read("nitro/nitro-prod-2021.cose", &doc, &len), 0);
	assert_int_equal(verify(doc, 0, root, PROD_MS, NULL, 0, NULL, NULL), ATTEST_BAD_STRUCTURE);
	assert_int_equal(verify(doc, len - 1, root, PROD_MS, NULL, 0, NULL, NULL), ATTEST_BAD_STRUCTURE);
	/* alg -35 -> -7 (ES256) in the protected header: a1 01 38 22 -> a1 01 26 (re-framed by hand) */
	assert_int_equal(doc[1], 0x44);
	uint8_t *es256 = malloc(len);
	es256[0] = 0x84;
	es256[1] = 0x43;
	es256[2] = 0xa1;
	es256[3] = 0x01;
	es256[4] = 0x26;
	memcpy(es256 + 5, doc + 6, len - 6);
	assert_int_equal(verify(es256, len - 1, root, PROD_MS, NULL, 0, NULL, NULL), ATTEST_BAD_ALG);
	free(es256);
	/* an EdDSA COSE_Sign1 is not an attestation document */
	_cleanup_free_ uint8_t *air = NULL;
	json_object *j = NULL;
	assert_int_equal(tv_read_json("air/valid/v1-nitro-no-nonce.json", &j), 0);
	size_t alen;
	assert_int_equal(tv_hex(j, "receipt_hex", &air, &alen), 0);
	json_object_put(j);
	assert_int_equal(verify(air, alen, root, PROD_MS, NULL, 0, NULL, NULL), ATTEST_BAD_ALG);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_names),   cmocka_unit_test(test_builtin_root_matches_vector),
		cmocka_unit_test(test_real_documents), cmocka_unit_test(test_real_fields_and_nonce),
		cmocka_unit_test(test_policy),        cmocka_unit_test(test_byte_flips),
		cmocka_unit_test(test_sim_documents), cmocka_unit_test(test_bad_structure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
