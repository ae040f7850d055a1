/* Tests for air.c against the AIR v1 vectors in tests/vectors/air: the valid receipts verify (and building
 * them from their claims with their key reproduces them byte for byte), each invalid receipt fails with exactly
 * its expected code, layer and check; policy checks; every single-bit corruption is rejected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>

#include "air.h"
#include "helper-vectors.h"
#include "macro.h"
#include "util.h"

static const char *const valid[] = {"air/valid/v1-nitro-no-nonce.json", "air/valid/v1-tdx-with-nonce.json"};

static void key_from(json_object *j, const char *field, uint8_t out[32]) {
	_cleanup_free_ uint8_t *k = NULL;
	size_t n;
	assert_int_equal(tv_hex(j, field, &k, &n), 0);
	assert_int_equal(n, 32);
	memcpy(out, k, 32);
}

static void hex_fixed(json_object *o, const char *field, uint8_t *out, size_t len) {
	_cleanup_free_ uint8_t *b = NULL;
	size_t n;
	assert_int_equal(tv_hex(o, field, &b, &n), 0);
	assert_int_equal(n, len);
	memcpy(out, b, len);
}

static json_object *get(json_object *o, const char *k) {
	json_object *v = NULL;
	assert_true(json_object_object_get_ex(o, k, &v));
	return v;
}

/* Claims from the vector's JSON description (not from the receipt bytes). */
static void claims_from_json(json_object *j, struct air_claims *c, uint8_t **nonce_buf) {
	json_object *cl = get(j, "claims"), *m = get(cl, "enclave_measurements");
	memset(c, 0, sizeof *c);
	c->iss = (char *)tv_str(cl, "iss");
	c->iat = (uint64_t)json_object_get_int64(get(cl, "iat"));
	hex_fixed(cl, "cti_hex", c->cti, 16);
	*nonce_buf = NULL;
	if (tv_str(cl, "eat_nonce_hex")) {
		assert_int_equal(tv_hex(cl, "eat_nonce_hex", nonce_buf, &c->nonce_len), 0);
		c->nonce = *nonce_buf;
	}
	assert_string_equal(tv_str(cl, "eat_profile"), AIR_EAT_PROFILE);
	c->model_id = (char *)tv_str(cl, "model_id");
	c->model_version = (char *)tv_str(cl, "model_version");
	hex_fixed(cl, "model_hash_hex", c->model_hash, 32);
	hex_fixed(cl, "request_hash_hex", c->request_hash, 32);
	hex_fixed(cl, "response_hash_hex", c->response_hash, 32);
	hex_fixed(cl, "attestation_doc_hash_hex", c->attestation_doc_hash, 32);
	c->measurement_type = (char *)tv_str(m, "measurement_type");
	static const char *const names[AIR_PCR_SLOTS] = {"pcr0_hex", "pcr1_hex", "pcr2_hex",
							 "pcr3_hex", "pcr4_hex", "pcr8_hex"};
	for (size_t i = 0; i < AIR_PCR_SLOTS; i++)
		if (tv_str(m, names[i])) {
			hex_fixed(m, names[i], c->pcr[i], 48);
			c->has_pcr[i] = true;
		}
	c->policy_version = (char *)tv_str(cl, "policy_version");
	c->sequence_number = (uint64_t)json_object_get_int64(get(cl, "sequence_number"));
	c->execution_time_ms = (uint64_t)json_object_get_int64(get(cl, "execution_time_ms"));
	c->memory_peak_mb = (uint64_t)json_object_get_int64(get(cl, "memory_peak_mb"));
	c->security_mode = (char *)tv_str(cl, "security_mode");
}

static void test_valid_vectors(void **state) {
	for (size_t v = 0; v < ARRAY_SIZE(valid); v++) {
		json_object *j = NULL;
		assert_int_equal(tv_read_json(valid[v], &j), 0);
		_cleanup_free_ uint8_t *receipt = NULL, *built = NULL, *nonce = NULL;
		size_t len, built_len;
		uint8_t pk[32], seed[32], derived[32];
		assert_int_equal(tv_hex(j, "receipt_hex", &receipt, &len), 0);
		key_from(j, "public_key_hex", pk);
		key_from(j, "signing_key_seed_hex", seed);
		assert_int_equal(air_public_key(seed, derived), 0);
		assert_memory_equal(derived, pk, 32);

		struct air_claims got;
		struct air_result res;
		assert_int_equal(air_verify(receipt, len, pk, NULL, &got, &res), 0);
		assert_int_equal(res.code, AIR_OK);
		assert_string_equal(res.full, "OK");

		struct air_claims want;
		claims_from_json(j, &want, &nonce);
		assert_string_equal(got.iss, want.iss);
		assert_true(got.iat == want.iat);
		assert_string_equal(got.model_id, want.model_id);
		assert_string_equal(got.measurement_type, want.measurement_type);
		assert_memory_equal(got.model_hash, want.model_hash, 32);
		assert_memory_equal(got.pcr[2], want.pcr[2], 48);
		assert_int_equal(got.has_pcr[5], want.has_pcr[5]);
		assert_true(got.sequence_number == want.sequence_number);
		assert_int_equal(got.nonce_len, want.nonce_len);
		assert_null(got.model_hash_scheme);

		/* Deterministic build: the vector's claims and key give the vector's bytes. */
		assert_int_equal(air_sign(&want, seed, &built, &built_len), 0);
		assert_int_equal(built_len, len);
		assert_memory_equal(built, receipt, len);
		assert_int_equal((size_t)json_object_get_int(get(j, "receipt_length")), len);

		/* Policy (layer 4). */
		struct air_policy pol = {.platform = want.measurement_type, .model_hash = want.model_hash,
					 .model_id = want.model_id, .max_age = 300, .now = want.iat + 10};
		assert_int_equal(air_verify(receipt, len, pk, &pol, NULL, &res), 0);
		pol.now = want.iat + 301;
		assert_int_equal(air_verify(receipt, len, pk, &pol, NULL, &res), -EBADMSG);
		assert_string_equal(res.full, "TIMESTAMP_STALE");
		assert_int_equal(res.layer, 4);
		pol.now = want.iat - 60;
		assert_int_equal(air_verify(receipt, len, pk, &pol, NULL, &res), -EBADMSG);
		assert_string_equal(res.full, "TIMESTAMP_FUTURE");
		pol.clock_skew = 60;
		assert_int_equal(air_verify(receipt, len, pk, &pol, NULL, &res), 0);
		pol.platform = v == 0 ? AIR_PLATFORM_TDX : AIR_PLATFORM_NITRO;
		assert_int_equal(air_verify(receipt, len, pk, &pol, NULL, &res), -EBADMSG);
		assert_string_equal(res.full, "PLATFORM_MISMATCH");
		pol.platform = NULL;
		uint8_t other[32];
		memcpy(other, want.model_hash, 32);
		other[31] ^= 1;
		pol.model_hash = other;
		assert_int_equal(air_verify(receipt, len, pk, &pol, NULL, &res), -EBADMSG);
		assert_string_equal(res.full, "MODEL_HASH_MISMATCH");
		pol.model_hash = NULL;
		pol.model_id = "another-model";
		assert_int_equal(air_verify(receipt, len, pk, &pol, NULL, &res), -EBADMSG);
		assert_string_equal(res.full, "MODEL_ID_MISMATCH");
		pol.model_id = NULL;
		pol.require_nonce = true;
		if (!want.nonce) {
			assert_int_equal(air_verify(receipt, len, pk, &pol, NULL, &res), -EBADMSG);
			assert_string_equal(res.full, "NONCE_MISSING");
		} else {
			assert_int_equal(air_verify(receipt, len, pk, &pol, NULL, &res), 0);
			pol.nonce = want.nonce, pol.nonce_len = want.nonce_len;
			assert_int_equal(air_verify(receipt, len, pk, &pol, NULL, &res), 0);
			pol.nonce_len--;
			assert_int_equal(air_verify(receipt, len, pk, &pol, NULL, &res), -EBADMSG);
			assert_string_equal(res.full, "NONCE_MISMATCH");
		}
		/* A policy failure still hands out the claims. */
		struct air_claims again;
		pol = (struct air_policy){.model_id = "x"};
		assert_int_equal(air_verify(receipt, len, pk, &pol, &again, &res), -EBADMSG);
		assert_non_null(again.model_id);
		air_claims_done(&again);
		air_claims_done(&got);
		json_object_put(j);
	}
}

static void test_invalid_vectors(void **state) {
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/tests/vectors/air/invalid", getenv("EML_SRCDIR") ? getenv("EML_SRCDIR") : ".");
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t count = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strstr(de->d_name, ".json"))
			continue;
		char rel[512];
		snprintf(rel, sizeof rel, "air/invalid/%s", de->d_name);
		json_object *j = NULL;
		assert_int_equal(tv_read_json(rel, &j), 0);
		_cleanup_free_ uint8_t *receipt = NULL;
		size_t len;
		uint8_t pk[32];
		assert_int_equal(tv_hex(j, "receipt_hex", &receipt, &len), 0);
		key_from(j, tv_str(j, "public_key_hex") ? "public_key_hex" : "wrong_public_key_hex", pk);
		json_object *exp = get(j, "expected_failure");
		struct air_result res;
		struct air_claims c;
		assert_int_equal(air_verify(receipt, len, pk, NULL, &c, &res), -EBADMSG);
		print_message("%s: %s (layer %d, %s): %s\n", de->d_name, res.full, res.layer, res.check, res.reason);
		assert_string_equal(res.full, tv_str(exp, "code"));
		assert_int_equal(res.layer, json_object_get_int(get(exp, "layer")));
		assert_string_equal(res.check, tv_str(exp, "check"));
		assert_null(c.iss); /* no claims on a layer 1-3 failure */
		json_object_put(j);
		count++;
	}
	closedir(d);
	assert_true(count >= 4);
}

static void test_corruption(void **state) {
	json_object *j = NULL;
	assert_int_equal(tv_read_json(valid[1], &j), 0);
	_cleanup_free_ uint8_t *receipt = NULL;
	size_t len;
	uint8_t pk[32];
	assert_int_equal(tv_hex(j, "receipt_hex", &receipt, &len), 0);
	key_from(j, "public_key_hex", pk);
	struct air_result res;
	/* Every bit flip anywhere is refused (some land in the signature, some break the structure). */
	for (size_t i = 0; i < len; i++)
		for (int b = 0; b < 8; b++) {
			receipt[i] ^= (uint8_t)(1u << b);
			assert_int_equal(air_verify(receipt, len, pk, NULL, NULL, &res), -EBADMSG);
			assert_int_not_equal(res.code, AIR_OK);
			receipt[i] ^= (uint8_t)(1u << b);
		}
	/* Untagged COSE_Sign1 is refused; so are truncations and trailing bytes. */
	assert_int_equal(air_verify(receipt + 1, len - 1, pk, NULL, NULL, &res), -EBADMSG);
	assert_string_equal(res.full, "COSE_DECODE_FAILED");
	assert_int_equal(air_verify(receipt, len - 1, pk, NULL, NULL, &res), -EBADMSG);
	assert_string_equal(res.full, "COSE_DECODE_FAILED");
	uint8_t longer[len + 1];
	memcpy(longer, receipt, len);
	longer[len] = 0;
	assert_int_equal(air_verify(longer, len + 1, pk, NULL, NULL, &res), -EBADMSG);
	assert_string_equal(res.full, "COSE_DECODE_FAILED");
	json_object_put(j);
}

static void test_sign_refuses_bad_claims(void **state) {
	json_object *j = NULL;
	assert_int_equal(tv_read_json(valid[0], &j), 0);
	uint8_t seed[32], pk[32];
	key_from(j, "signing_key_seed_hex", seed);
	assert_int_equal(air_public_key(seed, pk), 0);
	_cleanup_free_ uint8_t *nonce = NULL;
	struct air_claims c;
	claims_from_json(j, &c, &nonce);
	uint8_t *out = NULL;
	size_t n;
	struct air_claims bad = c;
	memset(bad.model_hash, 0, 32);
	assert_int_equal(air_sign(&bad, seed, &out, &n), -EINVAL);
	bad = c, bad.measurement_type = "sev-snp";
	assert_int_equal(air_sign(&bad, seed, &out, &n), -EINVAL);
	bad = c, bad.has_pcr[1] = false;
	assert_int_equal(air_sign(&bad, seed, &out, &n), -EINVAL);
	bad = c, bad.model_hash_scheme = "md5";
	assert_int_equal(air_sign(&bad, seed, &out, &n), -EINVAL);
	/* A scheme and a nonce round-trip; a 128-byte nonce too. */
	uint8_t big_nonce[128] = {7};
	bad = c, bad.model_hash_scheme = "sha256-manifest", bad.nonce = big_nonce, bad.nonce_len = sizeof big_nonce;
	bad.has_pcr[5] = true;
	assert_int_equal(air_sign(&bad, seed, &out, &n), 0);
	struct air_claims got;
	struct air_result res;
	struct air_policy pol = {.nonce = big_nonce, .nonce_len = sizeof big_nonce};
	assert_int_equal(air_verify(out, n, pk, &pol, &got, &res), 0);
	assert_string_equal(got.model_hash_scheme, "sha256-manifest");
	assert_true(got.has_pcr[5]);
	air_claims_done(&got);
	free(out);
	json_object_put(j);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_vectors),
		cmocka_unit_test(test_invalid_vectors),
		cmocka_unit_test(test_corruption),
		cmocka_unit_test(test_sign_refuses_bad_claims),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
