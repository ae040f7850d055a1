/* Tests for hpke.c: every encryption and export of the RFC 9180 X25519/HKDF-SHA256 vectors (all modes, all
 * AEADs incl. export-only), read from tests/vectors/hpke, plus misuse: tampering, roles, PSK rules, overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helper-vectors.h"
#include "hpke.h"
#include "macro.h"
#include "util.h"

struct buf {
	uint8_t *p;
	size_t n;
};

static struct buf hexf(json_object *o, const char *key) {
	struct buf b = {0};
	assert_int_equal(tv_hex(o, key, &b.p, &b.n), 0);
	return b;
}

static void freebuf(struct buf *b) {
	free(b->p);
	*b = (struct buf){0};
}

static size_t vector_count;

static void run_vector(json_object *v) {
	int mode = json_object_get_int(json_object_object_get(v, "mode"));
	int aead = json_object_get_int(json_object_object_get(v, "aead_id"));
	assert_int_equal(json_object_get_int(json_object_object_get(v, "kem_id")), HPKE_KEM_X25519_SHA256);
	assert_int_equal(json_object_get_int(json_object_object_get(v, "kdf_id")), HPKE_KDF_HKDF_SHA256);

	struct buf info = hexf(v, "info"), ikm_r = hexf(v, "ikmR"), ikm_e = hexf(v, "ikmE"), sk_rm = hexf(v, "skRm"),
		   pk_rm = hexf(v, "pkRm"), pk_em = hexf(v, "pkEm"), enc_v = hexf(v, "enc");
	struct buf psk = {0}, psk_id = {0}, ikm_s = {0}, sk_sm = {0}, pk_sm = {0};
	uint8_t sk_r[32], pk_r[32], sk[32], pk[32], sk_s[32], pk_s[32], enc[32];

	/* DeriveKeyPair reproduces the vector's keys. */
	assert_int_equal(hpke_derive_key_pair(ikm_r.p, ikm_r.n, sk_r, pk_r), 0);
	assert_memory_equal(sk_r, sk_rm.p, 32);
	assert_memory_equal(pk_r, pk_rm.p, 32);
	assert_int_equal(hpke_derive_key_pair(ikm_e.p, ikm_e.n, sk, pk), 0);
	assert_memory_equal(pk, pk_em.p, 32);

	struct hpke_params p = {.mode = mode, .aead = (uint16_t)aead, .info = info.p, .info_len = info.n};
	if (mode == HPKE_MODE_PSK || mode == HPKE_MODE_AUTH_PSK) {
		psk = hexf(v, "psk"), psk_id = hexf(v, "psk_id");
		p.psk = psk.p, p.psk_len = psk.n, p.psk_id = psk_id.p, p.psk_id_len = psk_id.n;
	}
	if (mode == HPKE_MODE_AUTH || mode == HPKE_MODE_AUTH_PSK) {
		ikm_s = hexf(v, "ikmS"), sk_sm = hexf(v, "skSm"), pk_sm = hexf(v, "pkSm");
		assert_int_equal(hpke_derive_key_pair(ikm_s.p, ikm_s.n, sk_s, pk_s), 0);
		assert_memory_equal(sk_s, sk_sm.p, 32);
		assert_memory_equal(pk_s, pk_sm.p, 32);
		p.sk_s = sk_s, p.pk_s = pk_s;
	}

	_cleanup_hpke_ctx_ struct hpke_ctx *s = NULL, *r = NULL;
	assert_int_equal(hpke_setup_s_derand(&p, pk_r, ikm_e.p, ikm_e.n, enc, &s), 0);
	assert_memory_equal(enc, enc_v.p, 32);
	assert_int_equal(hpke_setup_r(&p, enc, sk_r, &r), 0);
	/* The loaded-key recipient path derives the same context. */
	_cleanup_hpke_key_ struct hpke_key *key_r = NULL;
	_cleanup_hpke_ctx_ struct hpke_ctx *r2 = NULL;
	assert_int_equal(hpke_key_from_private(sk_r, &key_r), 0);
	assert_memory_equal(hpke_key_public(key_r), pk_rm.p, 32);
	assert_int_equal(hpke_setup_r_key(&p, enc, key_r, &r2), 0);

	json_object *encs = json_object_object_get(v, "encryptions");
	size_t n = encs ? json_object_array_length(encs) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(encs, i);
		struct buf aad = hexf(e, "aad"), pt = hexf(e, "pt"), ct = hexf(e, "ct");
		assert_int_equal(ct.n, pt.n + HPKE_TAG_LEN);
		uint8_t out[ct.n], back[pt.n + 1];
		assert_int_equal(hpke_seal(s, aad.p, aad.n, pt.p, pt.n, out), 0);
		assert_memory_equal(out, ct.p, ct.n);
		if (i == 0) { /* a tampered frame fails and does not advance the recipient */
			out[0] ^= 1;
			assert_int_equal(hpke_open(r, aad.p, aad.n, out, ct.n, back), -EBADMSG);
			out[0] ^= 1;
			assert_int_equal(hpke_ctx_seq(r), 0);
		}
		assert_int_equal(hpke_open(r, aad.p, aad.n, ct.p, ct.n, back), 0);
		assert_memory_equal(back, pt.p, pt.n);
		assert_int_equal(hpke_open(r2, aad.p, aad.n, ct.p, ct.n, back), 0);
		if (i == 0) { /* single-shot is sequence 0 */
			uint8_t enc1[32], one[ct.n], pt1[pt.n + 1];
			assert_int_equal(hpke_open_once(&p, enc, sk_r, aad.p, aad.n, ct.p, ct.n, pt1), 0);
			assert_memory_equal(pt1, pt.p, pt.n);
			assert_int_equal(hpke_seal_once(&p, pk_r, aad.p, aad.n, pt.p, pt.n, enc1, one), 0);
			assert_int_equal(hpke_open_once(&p, enc1, sk_r, aad.p, aad.n, one, ct.n, pt1), 0);
			assert_memory_equal(pt1, pt.p, pt.n);
		}
		freebuf(&aad), freebuf(&pt), freebuf(&ct);
	}
	assert_int_equal(hpke_ctx_seq(s), n);
	if (aead == HPKE_AEAD_EXPORT_ONLY) {
		uint8_t x[16];
		assert_int_equal(hpke_seal(s, NULL, 0, x, 0, x), -EPERM);
	}

	json_object *exps = json_object_object_get(v, "exports");
	size_t ne = json_object_array_length(exps);
	assert_true(ne > 0);
	for (size_t i = 0; i < ne; i++) {
		json_object *e = json_object_array_get_idx(exps, i);
		struct buf ectx = hexf(e, "exporter_context"), val = hexf(e, "exported_value");
		size_t L = (size_t)json_object_get_int(json_object_object_get(e, "L"));
		assert_int_equal(L, val.n);
		uint8_t a[L], b[L];
		assert_int_equal(hpke_export(s, ectx.p, ectx.n, a, L), 0);
		assert_int_equal(hpke_export(r, ectx.p, ectx.n, b, L), 0);
		assert_memory_equal(a, val.p, L);
		assert_memory_equal(b, val.p, L);
		assert_int_equal(hpke_export(r2, ectx.p, ectx.n, b, L), 0);
		assert_memory_equal(b, val.p, L);
		freebuf(&ectx), freebuf(&val);
	}
	vector_count++;
	freebuf(&info), freebuf(&ikm_r), freebuf(&ikm_e), freebuf(&sk_rm), freebuf(&pk_rm), freebuf(&pk_em),
		freebuf(&enc_v), freebuf(&psk), freebuf(&psk_id), freebuf(&ikm_s), freebuf(&sk_sm), freebuf(&pk_sm);
}

static void test_rfc9180_vectors(void **state) {
	json_object *j = NULL;
	assert_int_equal(tv_read_json("hpke/rfc9180-x25519-sha256.json", &j), 0);
	size_t n = json_object_array_length(j);
	assert_int_equal(n, 16);
	for (size_t i = 0; i < n; i++)
		run_vector(json_object_array_get_idx(j, i));
	assert_int_equal(vector_count, 16);
	json_object_put(j);
}

static void test_misuse(void **state) {
	uint8_t sk_r[32], pk_r[32], enc[32], ct[64], pt[64];
	assert_int_equal(hpke_generate_key_pair(sk_r, pk_r), 0);
	struct hpke_params p = {.mode = HPKE_MODE_BASE, .aead = HPKE_AEAD_CHACHA20_POLY1305};
	_cleanup_hpke_ctx_ struct hpke_ctx *s = NULL, *r = NULL;
	assert_int_equal(hpke_setup_s(&p, pk_r, enc, &s), 0);
	assert_int_equal(hpke_setup_r(&p, enc, sk_r, &r), 0);

	/* Roles. */
	assert_int_equal(hpke_open(s, NULL, 0, ct, 16, pt), -EPERM);
	assert_int_equal(hpke_seal(r, NULL, 0, pt, 1, ct), -EPERM);
	/* Reordering: message 1 opened first fails. */
	uint8_t c0[17], c1[17];
	assert_int_equal(hpke_seal(s, (const uint8_t *)"h", 1, (const uint8_t *)"a", 1, c0), 0);
	assert_int_equal(hpke_seal(s, (const uint8_t *)"h", 1, (const uint8_t *)"b", 1, c1), 0);
	assert_int_equal(hpke_open(r, (const uint8_t *)"h", 1, c1, 17, pt), -EBADMSG);
	assert_int_equal(hpke_open(r, (const uint8_t *)"x", 1, c0, 17, pt), -EBADMSG); /* wrong aad */
	assert_int_equal(hpke_open(r, (const uint8_t *)"h", 1, c0, 15, pt), -EBADMSG); /* too short */
	assert_int_equal(hpke_open(r, (const uint8_t *)"h", 1, c0, 17, pt), 0);
	assert_int_equal(pt[0], 'a');
	assert_int_equal(hpke_open(r, (const uint8_t *)"h", 1, c0, 17, pt), -EBADMSG); /* replay */
	/* In-place open. */
	assert_int_equal(hpke_open(r, (const uint8_t *)"h", 1, c1, 17, c1), 0);
	assert_int_equal(c1[0], 'b');

	/* Sequence exhaustion. */
	hpke_ctx_set_seq(s, UINT64_MAX - 1);
	assert_int_equal(hpke_seal(s, NULL, 0, pt, 1, ct), 0);
	assert_int_equal(hpke_seal(s, NULL, 0, pt, 1, ct), -EOVERFLOW);
	hpke_ctx_set_seq(r, UINT64_MAX);
	assert_int_equal(hpke_open(r, NULL, 0, ct, 17, pt), -EOVERFLOW);

	/* PSK input rules (RFC 9180 5.1 VerifyPSKInputs). */
	struct hpke_ctx *x = NULL;
	struct hpke_params q = p;
	q.psk = (const uint8_t *)"0123456789abcdef0123456789abcdef", q.psk_len = 32;
	assert_int_equal(hpke_setup_s(&q, pk_r, enc, &x), -EINVAL); /* psk without id */
	q.psk_id = (const uint8_t *)"id", q.psk_id_len = 2;
	assert_int_equal(hpke_setup_s(&q, pk_r, enc, &x), -EINVAL); /* psk in base mode */
	q.mode = HPKE_MODE_PSK;
	assert_int_equal(hpke_setup_s(&q, pk_r, enc, &x), 0);
	hpke_ctx_free(x);
	q.mode = HPKE_MODE_AUTH_PSK;
	assert_int_equal(hpke_setup_s(&q, pk_r, enc, &x), -EINVAL); /* no sender key */
	q = p;
	q.mode = HPKE_MODE_PSK;
	assert_int_equal(hpke_setup_r(&q, enc, sk_r, &x), -EINVAL); /* psk mode without psk */
	q = p;
	q.aead = 7;
	assert_int_equal(hpke_setup_s(&q, pk_r, enc, &x), -EINVAL);

	/* A small-order public key gives an all-zero DH and is refused. */
	uint8_t zero_pk[32] = {0};
	assert_int_equal(hpke_setup_s(&p, zero_pk, enc, &x), -EKEYREJECTED);
	assert_int_equal(hpke_setup_r(&p, zero_pk, sk_r, &x), -EKEYREJECTED);

	/* Export bounds; a keyed context cannot export. */
	uint8_t big[HPKE_MAX_EXPORT + 1];
	assert_int_equal(hpke_export(s, NULL, 0, big, HPKE_MAX_EXPORT), 0);
	assert_int_equal(hpke_export(s, NULL, 0, big, HPKE_MAX_EXPORT + 1), -EINVAL);
	assert_int_equal(hpke_export(s, NULL, 0, big, 0), -EINVAL);
	uint8_t key[32] = {1}, nonce[12] = {2};
	_cleanup_hpke_ctx_ struct hpke_ctx *ks = NULL, *kr = NULL;
	assert_int_equal(hpke_ctx_new_from_key(HPKE_AEAD_AES_256_GCM, true, key, 32, nonce, &ks), 0);
	assert_int_equal(hpke_ctx_new_from_key(HPKE_AEAD_AES_256_GCM, false, key, 32, nonce, &kr), 0);
	assert_int_equal(hpke_ctx_new_from_key(HPKE_AEAD_AES_256_GCM, false, key, 16, nonce, &x), -EINVAL);
	assert_int_equal(hpke_export(ks, NULL, 0, big, 32), -EPERM);
	hpke_ctx_set_seq(ks, 5), hpke_ctx_set_seq(kr, 5);
	assert_int_equal(hpke_seal(ks, NULL, 0, (const uint8_t *)"hi", 2, ct), 0);
	assert_int_equal(hpke_open(kr, NULL, 0, ct, 18, pt), 0);
	assert_memory_equal(pt, "hi", 2);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc9180_vectors),
		cmocka_unit_test(test_misuse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
