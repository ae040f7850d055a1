/* Fuzz AIR verification two ways per input: the input as a whole receipt, and the input as the payload of a
 * correctly signed AIR envelope, so the claim and policy layers see arbitrary maps past the signature. */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "air.h"
#include "cbor.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t seed[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t prot[] = {0xa2, 0x01, 0x27, 0x03, 0x18, 0x3d};

static size_t put_bstr(uint8_t *p, const uint8_t *b, size_t n) {
	size_t h = ecbor_write_head(p, 2, n);
	memcpy(p + h, b, n);
	return h + n;
}

/* 18([prot, {}, payload, Ed25519(Sig_structure)]) */
static uint8_t *wrap(const uint8_t *payload, size_t n, size_t *ret_len) {
	uint8_t *tbs = malloc(32 + n), *out = malloc(128 + n), *p = tbs;
	size_t siglen = 64;
	uint8_t sig[64];
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	if (!tbs || !out || !k || !m)
		abort();
	*p++ = 0x84;
	memcpy(p, "\x6aSignature1", 11), p += 11;
	p += put_bstr(p, prot, sizeof prot);
	*p++ = 0x40;
	p += put_bstr(p, payload, n);
	if (EVP_DigestSignInit(m, NULL, NULL, NULL, k) != 1 || EVP_DigestSign(m, sig, &siglen, tbs, (size_t)(p - tbs)) != 1)
		abort();
	p = out;
	*p++ = 0xd2, *p++ = 0x84;
	p += put_bstr(p, prot, sizeof prot);
	*p++ = 0xa0;
	p += put_bstr(p, payload, n);
	p += put_bstr(p, sig, 64);
	*ret_len = (size_t)(p - out);
	EVP_MD_CTX_free(m);
	EVP_PKEY_free(k);
	free(tbs);
	return out;
}

static void check(const uint8_t *r, size_t n, const uint8_t pk[32]) {
	struct air_claims c;
	struct air_result res;
	struct air_policy pol = {.nonce = (const uint8_t *)"\xde\xad\xbe\xef\xca\xfe\xba\xbe", .nonce_len = 8,
				 .platform = AIR_PLATFORM_NITRO, .max_age = 3600, .now = 1740500000};
	int rc = air_verify(r, n, pk, &pol, &c, &res);
	if (rc == 0 && res.code != AIR_OK)
		abort();
	if (rc < 0 && (res.code == AIR_OK || res.full[0] == 0))
		abort();
	/* A receipt that verifies must be exactly what air_sign makes of its claims. */
	if (rc == 0) {
		uint8_t *again = NULL;
		size_t alen;
		if (air_sign(&c, seed, &again, &alen) < 0 || alen != n || memcmp(again, r, n) != 0)
			abort();
		free(again);
	}
	air_claims_done(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	uint8_t pk[32];
	if (size > AIR_RECEIPT_MAX || air_public_key(seed, pk) < 0)
		return 0;
	check(data, size, pk);
	size_t n;
	uint8_t *w = wrap(data, size, &n);
	check(w, n, pk);
	free(w);
	return 0;
}
