/* Tests for cose.c: the AIR v1 receipts (tagged EdDSA COSE_Sign1, from outside the project) and the real
 * Nitro attestation documents (untagged ES384), plus sign/verify round trips and header rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "cbor.h"
#include <json-c/json.h>
#include <openssl/x509.h>

#include "cose.h"
#include "macro.h"
#include "util.h"

static void vec_path(char *buf, size_t n, const char *rel) {
	snprintf(buf, n, "%s/tests/vectors/%s", getenv("EML_SRCDIR") ?: ".", rel);
}

static json_object *load_json(const char *rel) {
	char p[4096];
	vec_path(p, sizeof p, rel);
	json_object *j = json_object_from_file(p);
	assert_non_null(j);
	return j;
}

static size_t hex_field(json_object *j, const char *key, uint8_t **ret) {
	json_object *v;
	assert_true(json_object_object_get_ex(j, key, &v));
	size_t n;
	assert_int_equal(hex_decode_alloc(json_object_get_string(v), ret, &n), 0);
	return n;
}

static void test_air_vectors(void **state) {
	json_object *j = load_json("air/valid/v1-nitro-no-nonce.json");
	_cleanup_free_ uint8_t *msg = NULL, *pub = NULL, *payload = NULL;
	size_t len = hex_field(j, "receipt_hex", &msg);
	assert_int_equal(hex_field(j, "public_key_hex", &pub), 32);
	size_t plen = hex_field(j, "payload_hex", &payload);
	_cleanup_cose_sign1_ CoseSign1 *m = NULL;
	assert_int_equal(cose_sign1_decode(msg, len, &m), 0);
	assert_true(m->tagged);
	assert_int_equal(m->alg, COSE_ALG_EDDSA);
	assert_int_equal(m->payload_len, plen);
	assert_memory_equal(m->payload, payload, plen);
	CoseKey k;
	assert_int_equal(cose_key_ed25519(pub, &k), 0);
	assert_int_equal(cose_sign1_verify(m, &k, NULL, 0, NULL, 0), 0);
	/* external aad is part of what is signed */
	assert_int_equal(cose_sign1_verify(m, &k, (const uint8_t *)"x", 1, NULL, 0), -EKEYREJECTED);
	json_object_put(j);

	j = load_json("air/invalid/v1-wrong-key.json");
	_cleanup_free_ uint8_t *msg2 = NULL, *wrong = NULL;
	len = hex_field(j, "receipt_hex", &msg2);
	assert_int_equal(hex_field(j, "wrong_public_key_hex", &wrong), 32);
	_cleanup_cose_sign1_ CoseSign1 *m2 = NULL;
	assert_int_equal(cose_sign1_decode(msg2, len, &m2), 0);
	assert_int_equal(cose_key_ed25519(wrong, &k), 0);
	assert_int_equal(cose_sign1_verify(m2, &k, NULL, 0, NULL, 0), -EKEYREJECTED);
	json_object_put(j);

	j = load_json("air/invalid/v1-wrong-alg.json");
	_cleanup_free_ uint8_t *msg3 = NULL;
	len = hex_field(j, "receipt_hex", &msg3);
	CoseSign1 *m3 = NULL;
	assert_int_equal(cose_sign1_decode(msg3, len, &m3), -EPROTONOSUPPORT);
	assert_null(m3);
	json_object_put(j);
}

/* The leaf key of a Nitro document, found with libcbor directly. */
static void nitro_leaf_point(const CoseSign1 *m, uint8_t point[P384_POINT_LEN]) {
	cbor_item_t *pl = NULL;
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	assert_int_equal(ecbor_decode(m->payload, m->payload_len, &lim, &pl), 0);
	assert_non_null(pl);
	bool found = false;
	for (size_t i = 0; i < cbor_map_size(pl); i++) {
		struct cbor_pair p = cbor_map_handle(pl)[i];
		if (cbor_string_length(p.key) == 11 && memcmp(cbor_string_handle(p.key), "certificate", 11) == 0) {
			const uint8_t *d = cbor_bytestring_handle(p.value);
			X509 *x = d2i_X509(NULL, &d, (long)cbor_bytestring_length(p.value));
			assert_non_null(x);
			assert_int_equal(p384_point_from_pkey(X509_get0_pubkey(x), point), 0);
			X509_free(x);
			found = true;
		}
	}
	assert_true(found);
	cbor_decref(&pl);
}

static void test_nitro_documents(void **state) {
	const char *names[] = {"nitro/nitro-prod-2021.cose", "nitro/nitro-debug-full-2024.cose"};
	for (size_t n = 0; n < ARRAY_SIZE(names); n++) {
		char p[4096];
		vec_path(p, sizeof p, names[n]);
		_cleanup_free_ uint8_t *doc = NULL;
		size_t len;
		assert_int_equal(read_file(p, 1 << 20, &doc, &len), 0);
		_cleanup_cose_sign1_ CoseSign1 *m = NULL;
		assert_int_equal(cose_sign1_decode(doc, len, &m), 0);
		assert_false(m->tagged);
		assert_int_equal(m->alg, COSE_ALG_ES384);
		assert_int_equal(m->protected_len, 4);
		uint8_t point[P384_POINT_LEN];
		nitro_leaf_point(m, point);
		CoseKey k;
		assert_int_equal(cose_key_es384(point, &k), 0);
		assert_int_equal(cose_sign1_verify(m, &k, NULL, 0, NULL, 0), 0);
		/* every signature byte matters */
		for (size_t i = 0; i < m->signature_len; i++) {
			m->signature[i] ^= 0x01;
			assert_int_equal(cose_sign1_verify(m, &k, NULL, 0, NULL, 0), -EKEYREJECTED);
			m->signature[i] ^= 0x01;
		}
		m->payload[m->payload_len / 2] ^= 0x80;
		assert_int_equal(cose_sign1_verify(m, &k, NULL, 0, NULL, 0), -EKEYREJECTED);
		m->payload[m->payload_len / 2] ^= 0x80;
		/* an Ed25519 key cannot verify an ES384 message */
		CoseKey ed;
		uint8_t zero[32] = {0};
		assert_int_equal(cose_key_ed25519(zero, &ed), 0);
		assert_int_equal(cose_sign1_verify(m, &ed, NULL, 0, NULL, 0), -EPROTONOSUPPORT);
		/* trailing byte, truncation */
		uint8_t *longer = malloc(len + 1);
		memcpy(longer, doc, len);
		longer[len] = 0xf6;
		CoseSign1 *bad = NULL;
		assert_int_equal(cose_sign1_decode(longer, len + 1, &bad), -EBADMSG);
		assert_int_equal(cose_sign1_decode(longer, len - 1, &bad), -EBADMSG);
		free(longer);
	}
}

static void test_roundtrip(void **state) {
	EVP_PKEY *ec = NULL;
	assert_int_equal(p384_generate(&ec), 0);
	uint8_t point[P384_POINT_LEN];
	assert_int_equal(p384_point_from_pkey(ec, point), 0);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(ed);
	uint8_t edpub[32];
	size_t edlen = 32;
	assert_int_equal(EVP_PKEY_get_raw_public_key(ed, edpub, &edlen), 1);
	const uint8_t payload[] = "hello";
	const uint8_t aad[] = "aad";
	for (int tagged = 0; tagged < 2; tagged++) {
		uint8_t *msg;
		size_t len;
		CoseKey k;
		assert_int_equal(cose_sign1_sign(COSE_ALG_ES384, ec, payload, 5, aad, 3, tagged, &msg, &len), 0);
		_cleanup_cose_sign1_ CoseSign1 *m = NULL;
		assert_int_equal(cose_sign1_decode(msg, len, &m), 0);
		assert_int_equal(m->tagged, tagged);
		assert_int_equal(cose_key_es384(point, &k), 0);
		assert_int_equal(cose_sign1_verify(m, &k, aad, 3, NULL, 0), 0);
		assert_int_equal(cose_sign1_verify(m, &k, NULL, 0, NULL, 0), -EKEYREJECTED);
		free(msg);

		assert_int_equal(cose_sign1_sign(COSE_ALG_EDDSA, ed, payload, 5, NULL, 0, tagged, &msg, &len), 0);
		_cleanup_cose_sign1_ CoseSign1 *m2 = NULL;
		assert_int_equal(cose_sign1_decode(msg, len, &m2), 0);
		assert_int_equal(cose_key_ed25519(edpub, &k), 0);
		assert_int_equal(cose_sign1_verify(m2, &k, NULL, 0, NULL, 0), 0);
		/* key and alg must agree even when the bytes would verify under another alg */
		assert_int_equal(cose_key_es384(point, &k), 0);
		assert_int_equal(cose_sign1_verify(m2, &k, NULL, 0, NULL, 0), -EPROTONOSUPPORT);
		free(msg);
	}
	uint8_t *msg;
	size_t len;
	assert_int_equal(cose_sign1_sign(COSE_ALG_EDDSA, ec, payload, 5, NULL, 0, false, &msg, &len), -EPROTONOSUPPORT);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
}

/* Hand-built messages: [protected, unprotected, payload, 64-byte sig] */
static int decode_hex(const char *hex) {
	_cleanup_free_ uint8_t *b = NULL;
	size_t n;
	assert_int_equal(hex_decode_alloc(hex, &b, &n), 0);
	CoseSign1 *m = NULL;
	int r = cose_sign1_decode(b, n, &m);
	cose_sign1_free(m);
	return r;
}

#define Z8 "0000000000000000"
#define SIG64 "5840" Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8

static void test_headers(void **state) {
	/* baseline {1:-8} */
	assert_int_equal(decode_hex("84" "43a10127" "a0" "4161" SIG64), 0);
	/* tagged 18 ok, tag 98 (COSE_Sign) not */
	assert_int_equal(decode_hex("d2" "84" "43a10127" "a0" "4161" SIG64), 0);
	assert_int_equal(decode_hex("d862" "84" "43a10127" "a0" "4161" SIG64), -EBADMSG);
	/* crit [1] understood; crit [4] (kid) or [99] not */
	assert_int_equal(decode_hex("84" "46a201270281" "01" "a0" "4161" SIG64), 0);
	assert_int_equal(decode_hex("84" "46a201270281" "04" "a0" "4161" SIG64), -EOPNOTSUPP);
	assert_int_equal(decode_hex("84" "47a20127028118" "63" "a0" "4161" SIG64), -EOPNOTSUPP);
	/* alg missing, unknown, in the unprotected bucket */
	assert_int_equal(decode_hex("84" "40" "a0" "4161" SIG64), -EPROTONOSUPPORT);
	assert_int_equal(decode_hex("84" "43a10126" "a0" "4161" SIG64), -EPROTONOSUPPORT);
	assert_int_equal(decode_hex("84" "43a10127" "a10127" "4161" SIG64), -EBADMSG);
	/* duplicate label in the protected map */
	assert_int_equal(decode_hex("84" "45a201270127" "a0" "4161" SIG64), -EBADMSG);
	/* signature length wrong for EdDSA */
	assert_int_equal(decode_hex("84" "43a10127" "a0" "4161" "4100"), -EBADMSG);
	/* 3 elements, indefinite array */
	assert_int_equal(decode_hex("83" "43a10127" "a0" "4161"), -EBADMSG);
	assert_int_equal(decode_hex("9f" "43a10127" "a0" "4161" SIG64 "ff"), -EBADMSG);
	/* nil payload decodes (detached) */
	assert_int_equal(decode_hex("84" "43a10127" "a0" "f6" SIG64), 0);
}

static void test_sig_structure(void **state) {
	uint8_t *s;
	size_t n;
	const uint8_t prot[] = {0xa1, 0x01, 0x38, 0x22};
	assert_int_equal(cose_sig_structure(prot, 4, NULL, 0, (const uint8_t *)"ab", 2, &s, &n), 0);
	char hex[2 * 64 + 1];
	assert_true(n < 64);
	hex_encode(s, n, hex);
	/* ["Signature1", h'a1013822', h'', h'6162'] */
	assert_string_equal(hex, "846a5369676e61747572653144a101382240426162");
	free(s);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_air_vectors), cmocka_unit_test(test_nitro_documents),
		cmocka_unit_test(test_roundtrip),   cmocka_unit_test(test_headers),
		cmocka_unit_test(test_sig_structure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
