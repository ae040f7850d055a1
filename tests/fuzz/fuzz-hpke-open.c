/* Fuzz HPKE recipients with hostile bytes: the first 32 bytes as enc for a fresh SetupR (all modes' inputs
 * are fixed), the rest as ciphertext for it and for an established context. Forgeries must not open. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hpke.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	static const uint8_t ikm[32] = "fuzz-hpke-open recipient ikm...";
	uint8_t sk_r[32], pk_r[32], enc[32], pt[4096];
	if (size < 32 || size - 32 > sizeof pt + HPKE_TAG_LEN)
		return 0;
	if (hpke_derive_key_pair(ikm, sizeof ikm, sk_r, pk_r) < 0)
		abort();
	uint16_t aeads[] = {HPKE_AEAD_AES_128_GCM, HPKE_AEAD_AES_256_GCM, HPKE_AEAD_CHACHA20_POLY1305};
	struct hpke_params p = {.mode = HPKE_MODE_BASE, .aead = aeads[data[0] % 3], .info = data, .info_len = 1};
	const uint8_t *ct = data + 32;
	size_t ct_len = size - 32;

	struct hpke_ctx *r = NULL;
	int rc = hpke_setup_r(&p, data, sk_r, &r);
	if (rc == 0) {
		if (hpke_open(r, NULL, 0, ct, ct_len, pt) == 0)
			abort(); /* a forgery against a key nobody sealed with */
		if (hpke_ctx_seq(r) != 0)
			abort();
		uint8_t x[16];
		if (hpke_export(r, ct, ct_len, x, sizeof x) < 0)
			abort();
	} else if (rc != -EKEYREJECTED)
		abort();
	hpke_ctx_free(r);

	/* An established session receiving garbage. */
	struct hpke_ctx *s = NULL, *r2 = NULL;
	if (hpke_setup_s(&p, pk_r, enc, &s) < 0 || hpke_setup_r(&p, enc, sk_r, &r2) < 0)
		abort();
	if (hpke_open(r2, data, 12, ct, ct_len, pt) == 0)
		abort();
	uint8_t msg[64];
	if (ct_len <= sizeof msg - HPKE_TAG_LEN) {
		if (hpke_seal(s, data, 12, ct, ct_len, msg) < 0 || hpke_open(r2, data, 12, msg, ct_len + HPKE_TAG_LEN, pt) < 0 ||
		    (ct_len && memcmp(pt, ct, ct_len) != 0))
			abort();
	}
	hpke_ctx_free(s);
	hpke_ctx_free(r2);
	return 0;
}
