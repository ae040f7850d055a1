/* devca.c: development attestation CA (see devca.h). */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include "devca.h"
#include "p384.h"
#include "util.h"

struct DevCa {
	X509 *issuer;
	EVP_PKEY *issuer_key;
	size_t n;
	uint8_t *der[1 + DEVCA_MAX_INTERMEDIATES];
	struct x509_der bundle[1 + DEVCA_MAX_INTERMEDIATES];
};

static int add_ext(X509 *issuer, X509 *x, int nid, const char *value) {
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!e) return -EINVAL;
	int ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -ENOMEM;
}

/* One certificate. issuer NULL: self-signed. pathlen < 0 with ca: no limit; ca false: an end entity. */
static int make_cert(X509 *issuer, EVP_PKEY *issuer_key, EVP_PKEY *key, const char *cn, time_t not_before,
		     time_t not_after, int ca, int pathlen, X509 **ret) {
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	BIGNUM *bn = BN_new();
	uint8_t serial[16];
	char bc[48];
	int r = -ENOMEM;
	if (!x || !name || !bn) goto fail;
	r = -EIO;
	if (RAND_bytes(serial, sizeof serial) != 1) goto fail;
	serial[0] &= 0x7f; /* positive */
	serial[0] |= 0x01; /* and no leading zero octet */
	if (!BN_bin2bn(serial, sizeof serial, bn) || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) goto fail;
	if (!X509_set_version(x, X509_VERSION_3)) goto fail;
	if (!X509_NAME_add_entry_by_txt(name, "C", MBSTRING_ASC, (const uint8_t *)"US", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const uint8_t *)"EphemeralML dev", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC, (const uint8_t *)"eml-nsm-sim", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const uint8_t *)cn, -1, -1, 0))
		goto fail;
	if (!X509_set_subject_name(x, name)) goto fail;
	if (!X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name)) goto fail;
	if (!ASN1_TIME_set(X509_getm_notBefore(x), not_before) || !ASN1_TIME_set(X509_getm_notAfter(x), not_after))
		goto fail;
	if (!X509_set_pubkey(x, key)) goto fail;
	if (ca && pathlen >= 0)
		snprintf(bc, sizeof bc, "critical,CA:TRUE,pathlen:%d", pathlen);
	else
		snprintf(bc, sizeof bc, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	r = add_ext(issuer ? issuer : x, x, NID_basic_constraints, bc);
	if (r == 0)
		r = add_ext(issuer ? issuer : x, x, NID_key_usage,
			    ca ? "critical,digitalSignature,keyCertSign,cRLSign" : "critical,digitalSignature");
	if (r == 0) r = add_ext(issuer ? issuer : x, x, NID_subject_key_identifier, "hash");
	if (r == 0 && issuer) r = add_ext(issuer, x, NID_authority_key_identifier, "keyid:always");
	if (r < 0) goto fail;
	r = -EIO;
	if (X509_sign(x, issuer_key ? issuer_key : key, EVP_sha384()) <= 0) goto fail;
	*ret = x;
	x = NULL;
	r = 0;
fail:
	X509_free(x);
	X509_NAME_free(name);
	BN_free(bn);
	return r;
}

static int write_pem_certs(const char *path, X509 **certs, size_t n) {
	BIO *b = BIO_new(BIO_s_mem());
	if (!b) return -ENOMEM;
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++)
		if (!PEM_write_bio_X509(b, certs[i])) r = -EIO;
	char *data;
	long len = BIO_get_mem_data(b, &data);
	if (r == 0) r = write_file(path, data, (size_t)len, 0644);
	BIO_free(b);
	return r;
}

static int write_pem_key(const char *path, EVP_PKEY *key) {
	/* secure heap BIO: the PEM of a private key is a secret too */
	BIO *b = BIO_new(BIO_s_secmem());
	if (!b) return -ENOMEM;
	int r = PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) ? 0 : -EIO;
	char *data;
	long len = BIO_get_mem_data(b, &data);
	if (r == 0) r = write_file(path, data, (size_t)len, 0600);
	BIO_free(b);
	return r;
}

static char *path_join(const char *dir, const char *name) {
	char *p;
	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

int devca_init(const char *dir, unsigned n_intermediates, time_t now) {
	if (!dir || n_intermediates == 0 || n_intermediates > DEVCA_MAX_INTERMEDIATES) return -EINVAL;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) return negerrno();
	_cleanup_free_ char *root_path = path_join(dir, "root.pem");
	_cleanup_free_ char *bundle_path = path_join(dir, "bundle.pem");
	_cleanup_free_ char *key_path = path_join(dir, "issuer.key");
	if (!root_path || !bundle_path || !key_path) return -ENOMEM;
	if (access(root_path, F_OK) == 0) return -EEXIST;

	X509 *certs[1 + DEVCA_MAX_INTERMEDIATES] = {0};
	EVP_PKEY *keys[1 + DEVCA_MAX_INTERMEDIATES] = {0};
	size_t n = 1 + n_intermediates;
	/* Shaped like AWS: a 30-year root, then CAs with shrinking path lengths. The intermediates live a year
	 * here (AWS rotates them faster) so that a dev CA keeps working without care. */
	time_t nb = now - 60;
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		char cn[64];
		r = p384_generate(&keys[i]);
		if (r < 0) break;
		if (i == 0) {
			snprintf(cn, sizeof cn, "eml-dev.nitro-enclaves root");
			r = make_cert(NULL, NULL, keys[0], cn, nb, now + 30L * 365 * 86400, 1, -1, &certs[0]);
		} else {
			snprintf(cn, sizeof cn, "eml-dev.nitro-enclaves intermediate %zu", i);
			r = make_cert(certs[i - 1], keys[i - 1], keys[i], cn, nb, now + 365L * 86400, 1, (int)(n - 1 - i),
				      &certs[i]);
		}
	}
	if (r == 0) r = write_pem_key(key_path, keys[n - 1]);
	if (r == 0) r = write_pem_certs(bundle_path, certs, n);
	/* root.pem last: its presence marks a complete CA directory */
	if (r == 0) r = write_pem_certs(root_path, certs, 1);
	for (size_t i = 0; i < n; i++) {
		X509_free(certs[i]);
		EVP_PKEY_free(keys[i]);
	}
	return r;
}

DevCa *devca_free(DevCa *ca) {
	if (!ca) return NULL;
	X509_free(ca->issuer);
	EVP_PKEY_free(ca->issuer_key);
	for (size_t i = 0; i < ca->n; i++) OPENSSL_free(ca->der[i]);
	free(ca);
	return NULL;
}

int devca_load(const char *dir, DevCa **ret) {
	_cleanup_free_ char *bundle_path = path_join(dir, "bundle.pem");
	_cleanup_free_ char *key_path = path_join(dir, "issuer.key");
	if (!bundle_path || !key_path || !ret) return -ENOMEM;
	_cleanup_(devca_freep) DevCa *ca = calloc(1, sizeof *ca);
	if (!ca) return -ENOMEM;
	_cleanup_fclose_ FILE *f = fopen(bundle_path, "re");
	if (!f) return negerrno();
	X509 *x;
	while ((x = PEM_read_X509(f, NULL, NULL, NULL))) {
		if (ca->n >= 1 + DEVCA_MAX_INTERMEDIATES) {
			X509_free(x);
			return -EBADMSG;
		}
		int len = i2d_X509(x, &ca->der[ca->n]);
		if (len <= 0) {
			X509_free(x);
			return -EBADMSG;
		}
		ca->bundle[ca->n] = (struct x509_der){ca->der[ca->n], (size_t)len};
		ca->n++;
		X509_free(ca->issuer);
		ca->issuer = x;
	}
	ERR_clear_error();
	if (ca->n < 2) return -EBADMSG;
	_cleanup_fclose_ FILE *kf = fopen(key_path, "re");
	if (!kf) return negerrno();
	ca->issuer_key = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
	if (!ca->issuer_key || X509_check_private_key(ca->issuer, ca->issuer_key) != 1) return -EBADMSG;
	*ret = TAKE_PTR(ca);
	return 0;
}

size_t devca_bundle(const DevCa *ca, const struct x509_der **ret) {
	*ret = ca->bundle;
	return ca->n;
}

int devca_issue_leaf(DevCa *ca, const char *cn, time_t now, EVP_PKEY **ret_key, uint8_t **ret_der,
		     size_t *ret_len) {
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	int r = p384_generate(&key);
	if (r == 0)
		r = make_cert(ca->issuer, ca->issuer_key, key, cn, now - 60, now + DEVCA_LEAF_LIFETIME_S - 60, 0, -1, &x);
	if (r == 0) {
		uint8_t *der = NULL;
		int len = i2d_X509(x, &der);
		if (len <= 0)
			r = -EIO;
		else {
			*ret_der = der;
			*ret_len = (size_t)len;
			*ret_key = TAKE_PTR(key);
		}
	}
	X509_free(x);
	EVP_PKEY_free(key);
	return r;
}
