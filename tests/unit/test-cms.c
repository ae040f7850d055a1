/* Tests for cms.c: the two KMS CiphertextForRecipient samples in tests/vectors/cms parse to exactly their
 * .encrypted-key, .iv and .content; every single-bit corruption outside those opaque fields and every truncation
 * fails with the expected class of error; a blob built by OpenSSL's CMS code (streamed BER and definite DER)
 * unwraps with the right key and fails cleanly with a wrong key or corrupted fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/cms.h>
#include <openssl/rsa.h>

#include "cms.h"
#include "macro.h"
#include "util.h"

static uint8_t *vec(const char *name, size_t *len) {
	const char *src = getenv("EML_SRCDIR");
	char path[1024];
	uint8_t *d;
	snprintf(path, sizeof path, "%s/tests/vectors/cms/%s", src ? src : ".", name);
	assert_int_equal(read_file(path, 1 << 20, &d, len), 0);
	return d;
}

struct sample {
	uint8_t *ber, *key, *iv, *content;
	size_t ber_len, key_len, iv_len, content_len;
};

static void load(const char *stem, struct sample *s) {
	char n[64];
	snprintf(n, sizeof n, "%s.ber", stem);
	s->ber = vec(n, &s->ber_len);
	snprintf(n, sizeof n, "%s.encrypted-key", stem);
	s->key = vec(n, &s->key_len);
	snprintf(n, sizeof n, "%s.iv", stem);
	s->iv = vec(n, &s->iv_len);
	snprintf(n, sizeof n, "%s.content", stem);
	s->content = vec(n, &s->content_len);
}

static void unload(struct sample *s) {
	free(s->ber);
	free(s->key);
	free(s->iv);
	free(s->content);
}

static const char *const STEMS[] = {"kms-cfr-1", "kms-cfr-2"};

static void test_vectors_parse(void **state) {
	for (size_t i = 0; i < ARRAY_SIZE(STEMS); i++) {
		struct sample s;
		struct cms_enveloped e;
		const char *why = "unset";
		load(STEMS[i], &s);
		assert_int_equal(cms_parse_enveloped(s.ber, s.ber_len, &e, &why), 0);
		assert_null(why);
		assert_int_equal(e.encrypted_key_len, s.key_len);
		assert_memory_equal(e.encrypted_key, s.key, s.key_len);
		assert_int_equal(s.iv_len, 16);
		assert_memory_equal(e.iv, s.iv, 16);
		assert_int_equal(e.content_len, s.content_len);
		assert_memory_equal(e.content, s.content, s.content_len);
		assert_non_null(e.key_id);
		assert_int_equal(e.key_id_len, 32);
		cms_enveloped_done(&e);
		unload(&s);
	}
}

static bool in_range(size_t off, const uint8_t *base, const uint8_t *field, size_t len) {
	return field && off >= (size_t)(field - base) && off < (size_t)(field - base) + len;
}

static void test_vectors_truncated(void **state) {
	for (size_t i = 0; i < ARRAY_SIZE(STEMS); i++) {
		struct sample s;
		load(STEMS[i], &s);
		for (size_t n = 0; n < s.ber_len; n++) {
			struct cms_enveloped e;
			const char *why = NULL;
			/* A fresh copy so ASan sees any read past the cut. */
			uint8_t *cut = malloc(n ? n : 1);
			memcpy(cut, s.ber, n);
			int r = cms_parse_enveloped(cut, n, &e, &why);
			assert_true(r == -ENODATA || r == -EBADMSG);
			assert_non_null(why);
			free(cut);
		}
		unload(&s);
	}
}

/* Flip each bit of every byte: outside the opaque fields (encrypted key, IV, ciphertext, key identifier) the
 * parse must fail; inside them it must succeed and carry the flipped value. */
static void test_vectors_corrupted(void **state) {
	for (size_t i = 0; i < ARRAY_SIZE(STEMS); i++) {
		struct sample s;
		load(STEMS[i], &s);
		const uint8_t *k = memmem(s.ber, s.ber_len, s.key, s.key_len);
		const uint8_t *iv = memmem(s.ber, s.ber_len, s.iv, s.iv_len);
		const uint8_t *ct = memmem(s.ber, s.ber_len, s.content, s.content_len);
		assert_true(k && iv && ct);
		struct cms_enveloped orig;
		assert_int_equal(cms_parse_enveloped(s.ber, s.ber_len, &orig, NULL), 0);
		const uint8_t *ski = memmem(s.ber, s.ber_len, orig.key_id, orig.key_id_len);
		assert_non_null(ski);
		unsigned failures = 0;
		for (size_t off = 0; off < s.ber_len; off++) {
			bool opaque = in_range(off, s.ber, k, s.key_len) || in_range(off, s.ber, iv, 16) ||
				      in_range(off, s.ber, ct, s.content_len) || in_range(off, s.ber, ski, orig.key_id_len);
			for (int bit = 0; bit < 8; bit++) {
				s.ber[off] ^= (uint8_t)(1 << bit);
				struct cms_enveloped e;
				const char *why = NULL;
				int r = cms_parse_enveloped(s.ber, s.ber_len, &e, &why);
				if (opaque) {
					assert_int_equal(r, 0);
					cms_enveloped_done(&e);
				} else {
					if (r == 0) print_message("%s: flip at %zu bit %d accepted\n", STEMS[i], off, bit);
					assert_true(r < 0);
					assert_non_null(why);
					failures++;
				}
				s.ber[off] ^= (uint8_t)(1 << bit);
			}
		}
		assert_true(failures > 0);
		cms_enveloped_done(&orig);
		unload(&s);
	}
}

/* Specific fields of kms-cfr-1 give their specific error class (offsets from its ASN.1 dump). */
static void test_vector_field_errors(void **state) {
	struct sample s;
	load("kms-cfr-1", &s);
	static const struct {
		size_t off;
		uint8_t value;
		int err;
	} cases[] = {
		{12, 0x01, -EPROTONOSUPPORT},  /* content type -> id-data */
		{19, 0x03, -EPROTO},           /* EnvelopedData version */
		{30, 0x00, -EPROTO},           /* KeyTransRecipientInfo version 0 with a key identifier */
		{77, 0x01, -EPROTONOSUPPORT},  /* rsaesOaep -> rsaEncryption */
		{94, 0x02, -EPROTONOSUPPORT},  /* OAEP hash sha256 -> sha384 */
		{111, 0x09, -EPROTONOSUPPORT}, /* MGF1 -> pSpecified */
		{124, 0x03, -EPROTONOSUPPORT}, /* MGF1 hash sha256 -> sha512 */
		{399, 0x02, -EPROTONOSUPPORT}, /* content type id-data -> signedData */
		{412, 0x02, -EPROTONOSUPPORT}, /* aes-256-cbc -> aes-128-cbc */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t saved = s.ber[cases[i].off];
		s.ber[cases[i].off] = cases[i].value;
		struct cms_enveloped e;
		const char *why = NULL;
		assert_int_equal(cms_parse_enveloped(s.ber, s.ber_len, &e, &why), cases[i].err);
		assert_non_null(why);
		s.ber[cases[i].off] = saved;
	}
	/* Trailing garbage and an oversize input. */
	uint8_t *longer = malloc(s.ber_len + 1);
	memcpy(longer, s.ber, s.ber_len);
	longer[s.ber_len] = 0;
	struct cms_enveloped e;
	assert_int_equal(cms_parse_enveloped(longer, s.ber_len + 1, &e, NULL), -EBADMSG);
	free(longer);
	assert_int_equal(cms_parse_enveloped(s.ber, CMS_MAX_INPUT + 1, &e, NULL), -E2BIG);
	unload(&s);
}

static void test_deep_nesting(void **state) {
	/* 40 nested indefinite SEQUENCEs: refused by depth, not by the stack. */
	uint8_t b[200];
	size_t n = 0;
	for (int i = 0; i < 40; i++) b[n++] = 0x30, b[n++] = 0x80;
	for (int i = 0; i < 40; i++) b[n++] = 0, b[n++] = 0;
	struct cms_enveloped e;
	assert_int_equal(cms_parse_enveloped(b, n, &e, NULL), -E2BIG);
	/* Indefinite length on a primitive. */
	const uint8_t prim[] = {0x04, 0x80, 0x00, 0x00};
	assert_int_equal(cms_parse_enveloped(prim, sizeof prim, &e, NULL), -EBADMSG);
}

static EVP_PKEY *rsa2048(void) {
	EVP_PKEY *k = EVP_RSA_gen(2048);
	assert_non_null(k);
	return k;
}

/* Definite-length DER of the same structure, through OpenSSL's non-streaming encoder. */
static void to_der(const uint8_t *ber, size_t len, uint8_t **ret, size_t *ret_len) {
	const uint8_t *p = ber;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	assert_non_null(cms);
	uint8_t *der = NULL;
	int n = i2d_CMS_ContentInfo(cms, &der);
	assert_true(n > 0);
	*ret = malloc((size_t)n);
	memcpy(*ret, der, (size_t)n);
	*ret_len = (size_t)n;
	OPENSSL_free(der);
	CMS_ContentInfo_free(cms);
}

static void test_round_trip(void **state) {
	EVP_PKEY *key = rsa2048(), *other = rsa2048();
	uint8_t secret[32];
	for (size_t i = 0; i < sizeof secret; i++) secret[i] = (uint8_t)(i * 7 + 1);
	uint8_t *blob, *der, *plain;
	size_t blob_len, der_len, plain_len;
	const char *why;
	assert_int_equal(cms_build_for_recipient(key, secret, sizeof secret, &blob, &blob_len), 0);
	assert_int_equal(blob[1], 0x80); /* streamed: indefinite outer length, as KMS sends */
	to_der(blob, blob_len, &der, &der_len);
	assert_int_not_equal(der[1], 0x80);

	const uint8_t *forms[] = {blob, der};
	size_t lens[] = {blob_len, der_len};
	for (int f = 0; f < 2; f++) {
		assert_int_equal(cms_decrypt(forms[f], lens[f], key, &plain, &plain_len, &why), 0);
		assert_int_equal(plain_len, sizeof secret);
		assert_memory_equal(plain, secret, sizeof secret);
		free_secret(plain, plain_len);
		assert_int_equal(cms_decrypt(forms[f], lens[f], other, &plain, &plain_len, &why), -EKEYREJECTED);
		assert_non_null(why);
	}

	/* Key identifier is SHA-256 of the recipient's SubjectPublicKeyInfo. */
	struct cms_enveloped e;
	assert_int_equal(cms_parse_enveloped(blob, blob_len, &e, NULL), 0);
	uint8_t *spki = NULL;
	int n = i2d_PUBKEY(key, &spki);
	uint8_t md[32];
	EVP_Digest(spki, (size_t)n, md, NULL, EVP_sha256(), NULL);
	OPENSSL_free(spki);
	assert_int_equal(e.key_id_len, 32);
	assert_memory_equal(e.key_id, md, 32);

	/* Corrupted encrypted key -> unwrap error; corrupted padding -> content error. */
	e.encrypted_key[10] ^= 1;
	assert_int_equal(cms_enveloped_decrypt(&e, key, &plain, &plain_len, &why), -EKEYREJECTED);
	e.encrypted_key[10] ^= 1;
	assert_true(e.content_len >= 32);
	/* The last byte of the second-to-last block XORs into the padding byte: 0x10 ^ 0xff is never valid. */
	e.content[e.content_len - 17] ^= 0xff;
	assert_int_equal(cms_enveloped_decrypt(&e, key, &plain, &plain_len, &why), -EBADE);
	e.content[e.content_len - 17] ^= 0xff;
	assert_int_equal(cms_enveloped_decrypt(&e, key, &plain, &plain_len, &why), 0);
	free_secret(plain, plain_len);
	cms_enveloped_done(&e);

	free(blob);
	free(der);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_parse),     cmocka_unit_test(test_vectors_truncated),
		cmocka_unit_test(test_vectors_corrupted), cmocka_unit_test(test_vector_field_errors),
		cmocka_unit_test(test_deep_nesting),      cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
