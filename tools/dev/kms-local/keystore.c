/* keystore.c: eml-kms-local's keys (one 0600 JSON file per key) and its versioned ciphertext blobs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base64.h"
#include "kms-local.h"
#include "macro.h"
#include "util.h"

#define BLOB_MAGIC "EMLK"
#define BLOB_VERSION 1
#define BLOB_HEADER (4 + 1 + KMS_KEY_ID_LEN)
#define BLOB_NONCE 12
#define BLOB_TAG 16
#define KEY_FILE_MAX 65536

void kms_key_free(struct kms_key *k) {
	if (!k) return;
	wipe(k->material, sizeof k->material);
	free(k->description);
	free(k->policy);
	free(k);
}

/* Key ids are UUIDs; checking the form also keeps them safe as file names. */
static bool valid_key_id(const char *id) {
	if (strlen(id) != KMS_KEY_ID_LEN) return false;
	for (int i = 0; i < KMS_KEY_ID_LEN; i++) {
		char c = id[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-') return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

static void make_arn(struct kms_key *k, const char *region, const char *account) {
	snprintf(k->arn, sizeof k->arn, "arn:aws:kms:%s:%s:key/%s", region, account, k->id);
}

int keystore_create(const char *dir, const char *region, const char *account, const char *description,
		    const char *policy, struct kms_key **ret) {
	uint8_t u[16];
	struct kms_key *k = calloc(1, sizeof *k);
	json_object *o = NULL;
	char *b64 = NULL;
	int r = -ENOMEM;
	if (!k) return -ENOMEM;
	if (RAND_bytes(u, sizeof u) != 1 || RAND_priv_bytes(k->material, sizeof k->material) != 1) {
		r = -EIO;
		goto done;
	}
	u[6] = (u[6] & 0x0f) | 0x40; /* version 4 */
	u[8] = (u[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	snprintf(k->id, sizeof k->id, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
		 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
	make_arn(k, region, account);
	k->created = (int64_t)time(NULL);
	k->enabled = true;
	k->description = strdup(description ? description : "");
	k->policy = strdup(policy);
	if (!k->description || !k->policy) goto done;
	if ((r = base64_encode(k->material, sizeof k->material, &b64)) < 0) goto done;
	o = json_object_new_object();
	if (!o) goto done;
	json_object_object_add(o, "Version", json_object_new_int(1));
	json_object_object_add(o, "KeyId", json_object_new_string(k->id));
	json_object_object_add(o, "CreationDate", json_object_new_int64(k->created));
	json_object_object_add(o, "Enabled", json_object_new_boolean(1));
	json_object_object_add(o, "Description", json_object_new_string(k->description));
	json_object_object_add(o, "Policy", json_object_new_string(k->policy));
	json_object_object_add(o, "Material", json_object_new_string(b64));
	size_t len;
	const char *text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.json", dir, k->id);
	r = text ? write_file(path, text, len, 0600) : -ENOMEM;
	/* The serialised text held the material: json-c keeps it in the object's buffer, wiped below. */
	if (text) wipe((void *)text, len);
	json_object *mv;
	if (json_object_object_get_ex(o, "Material", &mv))
		wipe((void *)json_object_get_string(mv), (size_t)json_object_get_string_len(mv));
done:
	if (b64) free_secret(b64, strlen(b64));
	json_object_put(o);
	if (r < 0) {
		kms_key_free(k);
		return r;
	}
	*ret = k;
	return 0;
}

static const char *get_string(json_object *o, const char *key) {
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) return NULL;
	return json_object_get_string(v);
}

int keystore_load(const char *dir, const char *region, const char *account, const char *key_id,
		  struct kms_key **ret) {
	char prefix[160];
	snprintf(prefix, sizeof prefix, "arn:aws:kms:%s:%s:key/", region, account);
	if (strncmp(key_id, "arn:", 4) == 0) {
		if (strncmp(key_id, prefix, strlen(prefix)) != 0) return -ENOENT;
		key_id += strlen(prefix);
	}
	if (!valid_key_id(key_id)) return -EINVAL;
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.json", dir, key_id);
	uint8_t *data = NULL;
	size_t len = 0;
	int r = read_file(path, KEY_FILE_MAX, &data, &len);
	if (r == -ENOENT) return -ENOENT;
	if (r < 0) return -EBADMSG;
	json_object *o = json_tokener_parse((const char *)data);
	free_secret(data, len);
	if (!o) return -EBADMSG;
	struct kms_key *k = calloc(1, sizeof *k);
	const char *id = get_string(o, "KeyId"), *pol = get_string(o, "Policy"), *mat = get_string(o, "Material"),
		   *desc = get_string(o, "Description");
	json_object *v;
	uint8_t *m = NULL;
	size_t ml = 0;
	r = -EBADMSG;
	if (!k) {
		r = -ENOMEM;
		goto done;
	}
	if (!id || strcmp(id, key_id) != 0 || !pol || !mat || !desc) goto done;
	if (base64_decode(mat, 32, &m, &ml) < 0 || ml != 32) goto done;
	memcpy(k->material, m, 32);
	memcpy(k->id, id, KMS_KEY_ID_LEN + 1);
	make_arn(k, region, account);
	k->created = json_object_object_get_ex(o, "CreationDate", &v) ? json_object_get_int64(v) : 0;
	k->enabled = json_object_object_get_ex(o, "Enabled", &v) && json_object_get_boolean(v);
	k->description = strdup(desc);
	k->policy = strdup(pol);
	if (!k->description || !k->policy) {
		r = -ENOMEM;
		goto done;
	}
	r = 0;
	*ret = TAKE_PTR(k);
done:
	if (m) free_secret(m, ml);
	/* The parsed object held the base64 material. */
	if (mat) wipe((void *)mat, strlen(mat));
	json_object_put(o);
	kms_key_free(k);
	return r;
}

int context_validate(json_object *context) {
	if (!context) return 0;
	if (!json_object_is_type(context, json_type_object)) return -EINVAL;
	size_t pairs = 0, bytes = 0;
	json_object_object_foreach(context, key, val) {
		if (!json_object_is_type(val, json_type_string)) return -EINVAL;
		if (++pairs > KMS_MAX_CONTEXT_PAIRS) return -E2BIG;
		bytes += strlen(key) + (size_t)json_object_get_string_len(val);
		if (bytes > KMS_MAX_CONTEXT_BYTES) return -E2BIG;
	}
	return 0;
}

static int key_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Canonical encryption context for the AAD: pairs sorted by key, each key and value length-prefixed (u16 BE),
 * after a u16 count, so that no two different contexts encode alike. */
static int context_encode(json_object *context, uint8_t **ret, size_t *ret_len) {
	const char *keys[KMS_MAX_CONTEXT_PAIRS];
	size_t n = 0, len = 2;
	int r = context_validate(context);
	if (r < 0) return r;
	if (context) {
		json_object_object_foreach(context, key, val) {
			keys[n++] = key;
			len += 4 + strlen(key) + (size_t)json_object_get_string_len(val);
		}
	}
	qsort(keys, n, sizeof keys[0], key_cmp);
	uint8_t *o = malloc(len), *p = o;
	if (!o) return -ENOMEM;
	*p++ = (uint8_t)(n >> 8);
	*p++ = (uint8_t)n;
	for (size_t i = 0; i < n; i++) {
		json_object *v;
		json_object_object_get_ex(context, keys[i], &v);
		const char *s[2] = {keys[i], json_object_get_string(v)};
		for (int j = 0; j < 2; j++) {
			size_t l = strlen(s[j]);
			*p++ = (uint8_t)(l >> 8);
			*p++ = (uint8_t)l;
			memcpy(p, s[j], l);
			p += l;
		}
	}
	*ret = o;
	*ret_len = len;
	return 0;
}

static int gcm(bool enc, const uint8_t key[32], const uint8_t *nonce, const uint8_t *aad1, size_t aad1_len,
	       const uint8_t *aad2, size_t aad2_len, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag) {
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int l, r = -EIO;
	if (!c) return -ENOMEM;
	if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce, enc) != 1 ||
	    EVP_CipherUpdate(c, NULL, &l, aad1, (int)aad1_len) != 1 || EVP_CipherUpdate(c, NULL, &l, aad2, (int)aad2_len) != 1 ||
	    (len && EVP_CipherUpdate(c, out, &l, in, (int)len) != 1))
		goto done;
	if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, BLOB_TAG, tag) != 1) goto done;
	if (EVP_CipherFinal_ex(c, out + len, &l) != 1) {
		r = enc ? -EIO : -EBADE;
		goto done;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, BLOB_TAG, tag) != 1) goto done;
	r = 0;
done:
	EVP_CIPHER_CTX_free(c);
	return r;
}

int blob_seal(const struct kms_key *k, json_object *context, const uint8_t *plain, size_t len, uint8_t **ret,
	      size_t *ret_len) {
	if (len > KMS_MAX_PLAINTEXT) return -E2BIG;
	_cleanup_free_ uint8_t *aad = NULL;
	size_t aad_len;
	int r = context_encode(context, &aad, &aad_len);
	if (r < 0) return r;
	size_t total = BLOB_HEADER + BLOB_NONCE + len + BLOB_TAG;
	uint8_t *b = malloc(total);
	if (!b) return -ENOMEM;
	memcpy(b, BLOB_MAGIC, 4);
	b[4] = BLOB_VERSION;
	memcpy(b + 5, k->id, KMS_KEY_ID_LEN);
	if (RAND_bytes(b + BLOB_HEADER, BLOB_NONCE) != 1) {
		free(b);
		return -EIO;
	}
	r = gcm(true, k->material, b + BLOB_HEADER, b, BLOB_HEADER, aad, aad_len, plain, len,
		b + BLOB_HEADER + BLOB_NONCE, b + total - BLOB_TAG);
	if (r < 0) {
		free(b);
		return r;
	}
	*ret = b;
	*ret_len = total;
	return 0;
}

int blob_key_id(const uint8_t *blob, size_t len, char ret_id[KMS_KEY_ID_LEN + 1]) {
	if (len < BLOB_HEADER + BLOB_NONCE + BLOB_TAG || len > KMS_MAX_CIPHERTEXT) return -EBADMSG;
	if (memcmp(blob, BLOB_MAGIC, 4) != 0 || blob[4] != BLOB_VERSION) return -EBADMSG;
	memcpy(ret_id, blob + 5, KMS_KEY_ID_LEN);
	ret_id[KMS_KEY_ID_LEN] = 0;
	return valid_key_id(ret_id) ? 0 : -EBADMSG;
}

int blob_open(const struct kms_key *k, json_object *context, const uint8_t *blob, size_t len, uint8_t **ret,
	      size_t *ret_len) {
	char id[KMS_KEY_ID_LEN + 1];
	int r = blob_key_id(blob, len, id);
	if (r < 0) return r;
	if (strcmp(id, k->id) != 0) return -EBADE;
	_cleanup_free_ uint8_t *aad = NULL;
	size_t aad_len;
	if ((r = context_encode(context, &aad, &aad_len)) < 0) return r;
	size_t plen = len - BLOB_HEADER - BLOB_NONCE - BLOB_TAG;
	uint8_t tag[BLOB_TAG];
	memcpy(tag, blob + len - BLOB_TAG, BLOB_TAG);
	uint8_t *p = malloc(plen + 16);
	if (!p) return -ENOMEM;
	r = gcm(false, k->material, blob + BLOB_HEADER, blob, BLOB_HEADER, aad, aad_len, blob + BLOB_HEADER + BLOB_NONCE,
		plen, p, tag);
	if (r < 0) {
		free_secret(p, plen + 16);
		return r;
	}
	*ret = p;
	*ret_len = plen;
	return 0;
}
