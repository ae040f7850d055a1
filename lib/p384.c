/* p384.c: ECDSA P-384/SHA-384 verify (nettle) and sign (OpenSSL), signature encodings. */
#include <gmp.h>
#include <nettle/bignum.h>
#include <nettle/ecc-curve.h>
#include <nettle/ecc.h>
#include <nettle/ecdsa.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/sha.h>

#include "macro.h"
#include "p384.h"

static int verify_rs(const uint8_t pub[P384_POINT_LEN], const uint8_t *msg, size_t len, const uint8_t *r,
		     size_t rlen, const uint8_t *s, size_t slen) {
	uint8_t digest[SHA384_DIGEST_LENGTH];
	if (pub[0] != 0x04) return -EINVAL;
	if (!EVP_Digest(msg, len, digest, NULL, EVP_sha384(), NULL)) return -EIO;

	const struct ecc_curve *curve = nettle_get_secp_384r1();
	struct ecc_point point;
	struct dsa_signature sig;
	mpz_t x, y;
	int r_ = -EBADMSG;

	mpz_init(x);
	mpz_init(y);
	ecc_point_init(&point, curve);
	dsa_signature_init(&sig);
	nettle_mpz_set_str_256_u(x, P384_SCALAR_LEN, pub + 1);
	nettle_mpz_set_str_256_u(y, P384_SCALAR_LEN, pub + 1 + P384_SCALAR_LEN);
	/* ecc_point_set rejects coordinates out of range and points not on the curve. */
	if (!ecc_point_set(&point, x, y)) {
		r_ = -EINVAL;
		goto done;
	}
	nettle_mpz_set_str_256_u(sig.r, rlen, r);
	nettle_mpz_set_str_256_u(sig.s, slen, s);
	/* ecdsa_verify rejects r, s outside [1, n-1]. */
	if (ecdsa_verify(&point, sizeof digest, digest, &sig)) r_ = 0;
done:
	dsa_signature_clear(&sig);
	ecc_point_clear(&point);
	mpz_clear(x);
	mpz_clear(y);
	return r_;
}

int p384_verify_raw(const uint8_t pub[P384_POINT_LEN], const uint8_t *msg, size_t len,
		    const uint8_t sig[P384_SIG_RAW_LEN]) {
	if (!pub || !sig || (!msg && len)) return -EINVAL;
	return verify_rs(pub, msg, len, sig, P384_SCALAR_LEN, sig + P384_SCALAR_LEN, P384_SCALAR_LEN);
}

int p384_sig_der_to_raw(const uint8_t *der, size_t len, uint8_t ret[P384_SIG_RAW_LEN]) {
	if (!der || len > 2 * (P384_SCALAR_LEN + 8)) return -EBADMSG;
	const uint8_t *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	/* Trailing bytes would let two encodings carry one signature. */
	if (!sig || p != der + len) {
		ECDSA_SIG_free(sig);
		return -EBADMSG;
	}
	const BIGNUM *r, *s;
	ECDSA_SIG_get0(sig, &r, &s);
	int ok = BN_bn2binpad(r, ret, P384_SCALAR_LEN) == P384_SCALAR_LEN &&
		 BN_bn2binpad(s, ret + P384_SCALAR_LEN, P384_SCALAR_LEN) == P384_SCALAR_LEN;
	ECDSA_SIG_free(sig);
	return ok ? 0 : -EBADMSG;
}

int p384_verify_der(const uint8_t pub[P384_POINT_LEN], const uint8_t *msg, size_t len, const uint8_t *der,
		    size_t der_len) {
	uint8_t raw[P384_SIG_RAW_LEN];
	int r = p384_sig_der_to_raw(der, der_len, raw);
	if (r < 0) return r;
	return p384_verify_raw(pub, msg, len, raw);
}

int p384_point_from_pkey(const EVP_PKEY *pkey, uint8_t ret[P384_POINT_LEN]) {
	char group[32];
	size_t n = 0;
	if (!pkey || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC) return -EINVAL;
	if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) ||
	    strcmp(group, SN_secp384r1) != 0)
		return -EINVAL;
	/* Ask for the uncompressed form whatever the certificate used. */
	if (!EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0, &n)) return -EINVAL;
	if (n == P384_POINT_LEN) {
		if (!EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, ret, P384_POINT_LEN, &n) ||
		    n != P384_POINT_LEN || ret[0] != 0x04)
			return -EINVAL;
		return 0;
	}
	/* Compressed point: let OpenSSL decompress through EC_POINT. */
	uint8_t buf[P384_POINT_LEN];
	if (n > sizeof buf ||
	    !EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf, sizeof buf, &n))
		return -EINVAL;
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp384r1);
	EC_POINT *pt = g ? EC_POINT_new(g) : NULL;
	int ok = pt && EC_POINT_oct2point(g, pt, buf, n, NULL) &&
		 EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, ret, P384_POINT_LEN, NULL) == P384_POINT_LEN;
	EC_POINT_free(pt);
	EC_GROUP_free(g);
	return ok ? 0 : -EINVAL;
}

int p384_sign_raw(EVP_PKEY *key, const uint8_t *msg, size_t len, uint8_t ret[P384_SIG_RAW_LEN]) {
	uint8_t der[2 * (P384_SCALAR_LEN + 8)];
	size_t der_len = sizeof der;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = -EIO;
	if (!ctx) return -ENOMEM;
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha384(), NULL, key) == 1 &&
	    EVP_DigestSign(ctx, der, &der_len, msg, len) == 1)
		r = p384_sig_der_to_raw(der, der_len, ret);
	EVP_MD_CTX_free(ctx);
	return r;
}

int p384_generate(EVP_PKEY **ret) {
	EVP_PKEY *k = EVP_EC_gen(SN_secp384r1);
	if (!k) return -EIO;
	*ret = k;
	return 0;
}
