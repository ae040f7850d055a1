/* keyfile.c: Ed25519 key files (see keyfile.h). */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/pem.h>
#include <string.h>
#include <sys/stat.h>

#include "macro.h"
#include "util.h"

int keyfile_raw_public(EVP_PKEY *key, uint8_t ret_pub[32]) {
	size_t n = 32;
	if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519)
		return -EBADMSG;
	return EVP_PKEY_get_raw_public_key(key, ret_pub, &n) == 1 && n == 32 ? 0 : -EIO;
}

static int write_pem(const char *path, EVP_PKEY *key, bool private_key) {
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, private_key ? 0600 : 0644);
	if (fd < 0)
		return negerrno();
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	int ok = private_key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_PUBKEY(f, key);
	if (fclose(f) != 0)
		ok = 0;
	if (!ok) {
		unlink(path);
		return -EIO;
	}
	return 0;
}

int keyfile_generate(const char *priv_path, const char *pub_path, uint8_t ret_pub[32]) {
	EVP_PKEY *key = NULL;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	int r = -EIO;
	if (!c || EVP_PKEY_keygen_init(c) != 1 || EVP_PKEY_keygen(c, &key) != 1)
		goto out;
	r = write_pem(priv_path, key, true);
	if (r >= 0 && pub_path && (r = write_pem(pub_path, key, false)) < 0)
		unlink(priv_path);
	if (r >= 0 && ret_pub)
		r = keyfile_raw_public(key, ret_pub);
out:
	EVP_PKEY_free(key);
	EVP_PKEY_CTX_free(c);
	return r;
}

static int read_pem(const char *path, uint8_t **ret, size_t *ret_len) {
	return read_file(path, KEYFILE_MAX, ret, ret_len);
}

int keyfile_load_private(const char *path, EVP_PKEY **ret) {
	uint8_t *data = NULL;
	size_t len;
	int r = read_pem(path, &data, &len);
	if (r < 0)
		return r;
	BIO *b = BIO_new_mem_buf(data, (int)len);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	free_secret(data, len);
	if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		return -EBADMSG;
	}
	*ret = k;
	return 0;
}

int keyfile_load_public(const char *s, uint8_t ret_pub[32]) {
	if (strlen(s) == 64 && hex_decode(s, ret_pub, 32) == 32)
		return 0;
	uint8_t *data = NULL;
	size_t len;
	int r = read_pem(s, &data, &len);
	if (r < 0)
		return r;
	BIO *b = BIO_new_mem_buf(data, (int)len);
	EVP_PKEY *k = NULL;
	if (b && strstr((const char *)data, "PRIVATE KEY"))
		k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	else if (b)
		k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	BIO_free(b);
	free_secret(data, len);
	r = keyfile_raw_public(k, ret_pub);
	EVP_PKEY_free(k);
	return r;
}
