/* eml-kms-local: AWS KMS's JSON 1.1 protocol on loopback for development and tests: CreateKey, DescribeKey,
 * Encrypt, Decrypt, GenerateDataKey, GenerateRandom; SigV4-verified requests; key policies with
 * recipient-attestation conditions; CiphertextForRecipient as AWS builds it.
 *
 * HTTP comes from libmicrohttpd (a maintained Debian library with keep-alive, connection and memory limits and
 * timeouts) rather than a parser of our own: this is a developer stand-in, and a well-exercised server keeps
 * its own attack surface out of the project. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <microhttpd.h>
#include <openssl/rand.h>

#include "addr.h"
#include "base64.h"
#include "cms.h"
#include "kms-local.h"
#include "kmspolicy.h"
#include "log.h"
#include "macro.h"
#include "sigv4.h"
#include "socket.h"
#include "util.h"

#define MAX_BODY (64u * 1024)
#define MAX_CREDS 16
#define JSON_CT "application/x-amz-json-1.1"

struct cred {
	char *akid, *secret, *token;
};

struct server {
	const char *keys_dir;
	const char *region;
	const char *account;
	struct cred creds[MAX_CREDS];
	size_t n_creds;
	struct attestation_config att;
	uint64_t max_skew;
};

struct conn_req {
	char *body;
	size_t len;
	bool too_big;
	uint64_t start;
};

/* One request being answered. */
struct op {
	struct server *s;
	json_object *req;
	json_object *resp;
	int status;
	const char *etype;
	char emsg[512];
	char principal[128];
	char key_id[KMS_KEY_ID_LEN + 1];
};

_printf_(4, 5) static int fail(struct op *o, int status, const char *type, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->emsg, sizeof o->emsg, fmt, ap);
	va_end(ap);
	o->status = status;
	o->etype = type;
	return -1;
}

static int lookup(void *ud, const char *akid, const char **ret_secret, const char **ret_token) {
	struct server *s = ud;
	for (size_t i = 0; i < s->n_creds; i++)
		if (strcmp(s->creds[i].akid, akid) == 0) {
			*ret_secret = s->creds[i].secret;
			*ret_token = s->creds[i].token;
			return 0;
		}
	return -ENOKEY;
}

/* ---- request fields ---- */

/* Optional string field: 0 absent, 1 present, -1 wrong type (error set). */
static int opt_string(struct op *o, const char *name, const char **ret) {
	json_object *v;
	*ret = NULL;
	if (!json_object_object_get_ex(o->req, name, &v) || json_object_is_type(v, json_type_null)) return 0;
	if (!json_object_is_type(v, json_type_string))
		return fail(o, 400, "SerializationException", "%s must be a string", name);
	*ret = json_object_get_string(v);
	return 1;
}

static int req_string(struct op *o, const char *name, const char **ret) {
	int r = opt_string(o, name, ret);
	if (r == 0) return fail(o, 400, "ValidationException", "1 validation error detected: %s must not be null", name);
	return r;
}

static int opt_bytes(struct op *o, const char *name, size_t max, uint8_t **ret, size_t *ret_len) {
	const char *s;
	int r = opt_string(o, name, &s);
	if (r <= 0) return r;
	r = base64_decode(s, max, ret, ret_len);
	if (r == -E2BIG) return fail(o, 400, "ValidationException", "%s is longer than %zu bytes", name, max);
	if (r < 0) return fail(o, 400, "SerializationException", "%s is not valid base64", name);
	if (*ret_len == 0) {
		free(*ret);
		return fail(o, 400, "ValidationException", "%s must not be empty", name);
	}
	return 1;
}

static int opt_int(struct op *o, const char *name, int64_t lo, int64_t hi, int64_t *ret) {
	json_object *v;
	if (!json_object_object_get_ex(o->req, name, &v) || json_object_is_type(v, json_type_null)) return 0;
	if (!json_object_is_type(v, json_type_int)) return fail(o, 400, "SerializationException", "%s must be an integer", name);
	int64_t x = json_object_get_int64(v);
	if (x < lo || x > hi)
		return fail(o, 400, "ValidationException", "%s must be between %" PRId64 " and %" PRId64, name, lo, hi);
	*ret = x;
	return 1;
}

static int get_context(struct op *o, json_object **ret) {
	json_object *v = NULL;
	*ret = NULL;
	if (!json_object_object_get_ex(o->req, "EncryptionContext", &v) || json_object_is_type(v, json_type_null)) return 0;
	int r = context_validate(v);
	if (r == -E2BIG) return fail(o, 400, "ValidationException", "EncryptionContext is too large");
	if (r < 0) return fail(o, 400, "SerializationException", "EncryptionContext must map strings to strings");
	*ret = v;
	return 0;
}

static int check_algorithm(struct op *o) {
	const char *a;
	int r = opt_string(o, "EncryptionAlgorithm", &a);
	if (r < 0) return r;
	if (r == 1 && strcmp(a, "SYMMETRIC_DEFAULT") != 0)
		return fail(o, 400, "InvalidKeyUsageException", "EncryptionAlgorithm %s is not valid for this key", a);
	return 0;
}

/* Recipient: 0 absent, 1 verified (*rec filled), -1 error set. */
static int get_recipient(struct op *o, struct recipient *rec) {
	json_object *v, *alg, *doc;
	if (!json_object_object_get_ex(o->req, "Recipient", &v) || json_object_is_type(v, json_type_null)) return 0;
	if (!json_object_is_type(v, json_type_object))
		return fail(o, 400, "SerializationException", "Recipient must be an object");
	struct json_object_iter it;
	json_object_object_foreachC(v, it) {
		if (strcmp(it.key, "KeyEncryptionAlgorithm") != 0 && strcmp(it.key, "AttestationDocument") != 0)
			return fail(o, 400, "SerializationException", "unknown Recipient field %s", it.key);
	}
	if (!json_object_object_get_ex(v, "KeyEncryptionAlgorithm", &alg) || !json_object_is_type(alg, json_type_string) ||
	    strcmp(json_object_get_string(alg), "RSAES_OAEP_SHA_256") != 0)
		return fail(o, 400, "ValidationException", "Recipient.KeyEncryptionAlgorithm must be RSAES_OAEP_SHA_256");
	if (!json_object_object_get_ex(v, "AttestationDocument", &doc) || !json_object_is_type(doc, json_type_string))
		return fail(o, 400, "ValidationException", "Recipient.AttestationDocument must not be null");
	_cleanup_free_ uint8_t *d = NULL;
	size_t dl;
	if (base64_decode(json_object_get_string(doc), KMS_MAX_ATTESTATION_DOC, &d, &dl) < 0)
		return fail(o, 400, "ValidationException", "Recipient.AttestationDocument is not base64 of at most %d bytes",
			    KMS_MAX_ATTESTATION_DOC);
	const char *why = NULL;
	if (attestation_verify_recipient(&o->s->att, d, dl, time(NULL), rec, &why) < 0)
		return fail(o, 400, "ValidationException", "Recipient.AttestationDocument is invalid: %s", why);
	return 1;
}

/* Put the plaintext in the response: encrypted to the recipient as CMS when there is one, else in the clear. */
static int put_secret(struct op *o, const char *field, const struct recipient *rec, const uint8_t *plain, size_t len) {
	char *b64 = NULL;
	int r;
	if (rec) {
		_cleanup_free_ uint8_t *cms = NULL;
		size_t cl;
		r = cms_build_for_recipient(rec->public_key, plain, len, &cms, &cl);
		if (r >= 0) r = base64_encode(cms, cl, &b64);
		if (r < 0) return fail(o, 500, "KMSInternalException", "cannot build CiphertextForRecipient");
		json_object_object_add(o->resp, "CiphertextForRecipient", json_object_new_string(b64));
		free(b64);
		return 0;
	}
	if (base64_encode(plain, len, &b64) < 0) return fail(o, 500, "KMSInternalException", "out of memory");
	json_object_object_add(o->resp, field, json_object_new_string(b64));
	free_secret(b64, strlen(b64));
	return 0;
}

static int put_bytes(struct op *o, const char *field, const uint8_t *b, size_t len) {
	char *b64;
	if (base64_encode(b, len, &b64) < 0) return fail(o, 500, "KMSInternalException", "out of memory");
	json_object_object_add(o->resp, field, json_object_new_string(b64));
	free(b64);
	return 0;
}

static int load_key(struct op *o, const char *key_id, struct kms_key **ret) {
	int r = keystore_load(o->s->keys_dir, o->s->region, o->s->account, key_id, ret);
	if (r == -ENOENT || r == -EINVAL) return fail(o, 400, "NotFoundException", "Key '%s' does not exist", key_id);
	if (r < 0) return fail(o, 500, "KMSInternalException", "key store error");
	snprintf(o->key_id, sizeof o->key_id, "%s", (*ret)->id);
	return 0;
}

static int authorize(struct op *o, const struct kms_key *k, const char *action, const struct recipient *rec,
		     json_object *context) {
	struct kmspolicy_request pr = {.action = action, .principal_arn = o->principal, .account = o->s->account,
				       .context = context};
	for (unsigned i = 0; rec && i < KMSPOLICY_PCRS; i++) pr.pcr[i] = rec->pcr[i];
	if (kmspolicy_evaluate(k->policy, &pr) == 1) return 0;
	return fail(o, 400, "AccessDeniedException",
		    "User: %s is not authorized to perform: %s on resource: %s because no resource-based policy allows "
		    "the %s action",
		    o->principal, action, k->arn, action);
}

static int check_enabled(struct op *o, const struct kms_key *k) {
	if (k->enabled) return 0;
	return fail(o, 400, "DisabledException", "%s is disabled.", k->arn);
}

static json_object *key_metadata(const struct server *s, const struct kms_key *k) {
	json_object *m = json_object_new_object(), *algs = json_object_new_array();
	json_object_object_add(m, "AWSAccountId", json_object_new_string(s->account));
	json_object_object_add(m, "KeyId", json_object_new_string(k->id));
	json_object_object_add(m, "Arn", json_object_new_string(k->arn));
	json_object_object_add(m, "CreationDate", json_object_new_int64(k->created));
	json_object_object_add(m, "Enabled", json_object_new_boolean(k->enabled));
	json_object_object_add(m, "Description", json_object_new_string(k->description));
	json_object_object_add(m, "KeyUsage", json_object_new_string("ENCRYPT_DECRYPT"));
	json_object_object_add(m, "KeyState", json_object_new_string(k->enabled ? "Enabled" : "Disabled"));
	json_object_object_add(m, "Origin", json_object_new_string("AWS_KMS"));
	json_object_object_add(m, "KeyManager", json_object_new_string("CUSTOMER"));
	json_object_object_add(m, "CustomerMasterKeySpec", json_object_new_string("SYMMETRIC_DEFAULT"));
	json_object_object_add(m, "KeySpec", json_object_new_string("SYMMETRIC_DEFAULT"));
	json_object_array_add(algs, json_object_new_string("SYMMETRIC_DEFAULT"));
	json_object_object_add(m, "EncryptionAlgorithms", algs);
	json_object_object_add(m, "MultiRegion", json_object_new_boolean(0));
	return m;
}

/* ---- operations ---- */

static int op_create_key(struct op *o) {
	const char *desc = NULL, *policy = NULL, *usage = NULL, *spec = NULL, *spec2 = NULL, *why = NULL;
	if (opt_string(o, "Description", &desc) < 0 || opt_string(o, "Policy", &policy) < 0 ||
	    opt_string(o, "KeyUsage", &usage) < 0 || opt_string(o, "KeySpec", &spec) < 0 ||
	    opt_string(o, "CustomerMasterKeySpec", &spec2) < 0)
		return -1;
	if (desc && strlen(desc) > 8192) return fail(o, 400, "ValidationException", "Description is too long");
	if (usage && strcmp(usage, "ENCRYPT_DECRYPT") != 0)
		return fail(o, 400, "UnsupportedOperationException", "only ENCRYPT_DECRYPT keys are supported");
	if ((spec && strcmp(spec, "SYMMETRIC_DEFAULT") != 0) || (spec2 && strcmp(spec2, "SYMMETRIC_DEFAULT") != 0))
		return fail(o, 400, "UnsupportedOperationException", "only SYMMETRIC_DEFAULT keys are supported");
	_cleanup_free_ char *def = NULL;
	if (!policy) {
		if (!(def = kmspolicy_default(o->s->account))) return fail(o, 500, "KMSInternalException", "out of memory");
		policy = def;
	} else if (kmspolicy_validate(policy, &why) < 0)
		return fail(o, 400, "MalformedPolicyDocumentException", "The new key policy will not allow you to update "
			    "the key policy in the future (%s).", why);
	struct kms_key *k;
	if (keystore_create(o->s->keys_dir, o->s->region, o->s->account, desc, policy, &k) < 0)
		return fail(o, 500, "KMSInternalException", "cannot store the key");
	snprintf(o->key_id, sizeof o->key_id, "%s", k->id);
	json_object_object_add(o->resp, "KeyMetadata", key_metadata(o->s, k));
	kms_key_free(k);
	return 0;
}

static int op_describe_key(struct op *o) {
	const char *id;
	struct kms_key *k;
	if (req_string(o, "KeyId", &id) < 0 || load_key(o, id, &k) < 0) return -1;
	int r = authorize(o, k, "kms:DescribeKey", NULL, NULL);
	if (r == 0) json_object_object_add(o->resp, "KeyMetadata", key_metadata(o->s, k));
	kms_key_free(k);
	return r;
}

static int op_encrypt(struct op *o) {
	const char *id;
	json_object *ctx;
	struct kms_key *k = NULL;
	uint8_t *plain = NULL, *blob = NULL;
	size_t pl = 0, bl;
	int r = -1;
	if (req_string(o, "KeyId", &id) < 0 || get_context(o, &ctx) < 0 || check_algorithm(o) < 0) return -1;
	int have = opt_bytes(o, "Plaintext", KMS_MAX_PLAINTEXT, &plain, &pl);
	if (have < 0) return -1;
	if (have == 0) return fail(o, 400, "ValidationException", "1 validation error detected: Plaintext must not be null");
	if (load_key(o, id, &k) < 0 || check_enabled(o, k) < 0 || authorize(o, k, "kms:Encrypt", NULL, ctx) < 0) goto done;
	if (blob_seal(k, ctx, plain, pl, &blob, &bl) < 0) {
		fail(o, 500, "KMSInternalException", "encryption failed");
		goto done;
	}
	if (put_bytes(o, "CiphertextBlob", blob, bl) < 0) goto done;
	json_object_object_add(o->resp, "KeyId", json_object_new_string(k->arn));
	json_object_object_add(o->resp, "EncryptionAlgorithm", json_object_new_string("SYMMETRIC_DEFAULT"));
	r = 0;
done:
	free_secret(plain, pl);
	free(blob);
	kms_key_free(k);
	return r;
}

static int op_decrypt(struct op *o) {
	const char *want_id;
	json_object *ctx;
	struct kms_key *k = NULL;
	uint8_t *blob = NULL, *plain = NULL;
	size_t bl = 0, pl = 0;
	struct recipient rec = {};
	char id[KMS_KEY_ID_LEN + 1];
	int r = -1, have_rec;
	if (opt_string(o, "KeyId", &want_id) < 0 || get_context(o, &ctx) < 0 || check_algorithm(o) < 0) return -1;
	int have = opt_bytes(o, "CiphertextBlob", KMS_MAX_CIPHERTEXT, &blob, &bl);
	if (have < 0) return -1;
	if (have == 0) return fail(o, 400, "ValidationException", "1 validation error detected: CiphertextBlob must not be null");
	if (blob_key_id(blob, bl, id) < 0) {
		fail(o, 400, "InvalidCiphertextException", "the ciphertext is not a ciphertext blob of this KMS");
		goto done;
	}
	if (load_key(o, id, &k) < 0) {
		/* A blob naming a key we do not have is invalid ciphertext, as for AWS. */
		fail(o, 400, "InvalidCiphertextException", "the ciphertext refers to a key that does not exist");
		goto done;
	}
	if (want_id) {
		struct kms_key *w = NULL;
		if (load_key(o, want_id, &w) < 0) goto done;
		bool same = strcmp(w->id, k->id) == 0;
		kms_key_free(w);
		snprintf(o->key_id, sizeof o->key_id, "%s", k->id);
		if (!same) {
			fail(o, 400, "IncorrectKeyException",
			     "The key ID in the request does not identify a KMS key that can perform this operation.");
			goto done;
		}
	}
	if (check_enabled(o, k) < 0) goto done;
	if ((have_rec = get_recipient(o, &rec)) < 0) goto done;
	if (authorize(o, k, "kms:Decrypt", have_rec ? &rec : NULL, ctx) < 0) goto done;
	if (blob_open(k, ctx, blob, bl, &plain, &pl) < 0) {
		fail(o, 400, "InvalidCiphertextException", "ciphertext or encryption context does not authenticate");
		goto done;
	}
	json_object_object_add(o->resp, "KeyId", json_object_new_string(k->arn));
	json_object_object_add(o->resp, "EncryptionAlgorithm", json_object_new_string("SYMMETRIC_DEFAULT"));
	if (put_secret(o, "Plaintext", have_rec ? &rec : NULL, plain, pl) < 0) goto done;
	r = 0;
done:
	if (plain) free_secret(plain, pl);
	free(blob);
	recipient_done(&rec);
	kms_key_free(k);
	return r;
}

static int op_generate_data_key(struct op *o) {
	const char *id, *spec;
	json_object *ctx;
	int64_t nbytes = 0;
	struct kms_key *k = NULL;
	struct recipient rec = {};
	uint8_t key[1024], *blob = NULL;
	size_t bl;
	int r = -1, have_rec, have_n, have_spec;
	if (req_string(o, "KeyId", &id) < 0 || get_context(o, &ctx) < 0) return -1;
	if ((have_spec = opt_string(o, "KeySpec", &spec)) < 0 || (have_n = opt_int(o, "NumberOfBytes", 1, 1024, &nbytes)) < 0)
		return -1;
	if (have_spec == have_n)
		return fail(o, 400, "ValidationException", "exactly one of KeySpec and NumberOfBytes is required");
	if (have_spec) {
		if (strcmp(spec, "AES_256") == 0)
			nbytes = 32;
		else if (strcmp(spec, "AES_128") == 0)
			nbytes = 16;
		else
			return fail(o, 400, "ValidationException", "KeySpec must be AES_256 or AES_128");
	}
	if (load_key(o, id, &k) < 0 || check_enabled(o, k) < 0) goto done;
	if ((have_rec = get_recipient(o, &rec)) < 0) goto done;
	if (authorize(o, k, "kms:GenerateDataKey", have_rec ? &rec : NULL, ctx) < 0) goto done;
	if (RAND_priv_bytes(key, (int)nbytes) != 1) {
		fail(o, 500, "KMSInternalException", "random generator failed");
		goto done;
	}
	if (blob_seal(k, ctx, key, (size_t)nbytes, &blob, &bl) < 0) {
		fail(o, 500, "KMSInternalException", "encryption failed");
		goto done;
	}
	if (put_bytes(o, "CiphertextBlob", blob, bl) < 0) goto done;
	if (put_secret(o, "Plaintext", have_rec ? &rec : NULL, key, (size_t)nbytes) < 0) goto done;
	json_object_object_add(o->resp, "KeyId", json_object_new_string(k->arn));
	r = 0;
done:
	wipe(key, sizeof key);
	free(blob);
	recipient_done(&rec);
	kms_key_free(k);
	return r;
}

static int op_generate_random(struct op *o) {
	int64_t n = 0;
	const char *store;
	struct recipient rec = {};
	uint8_t buf[1024];
	int r = -1, have_rec;
	int have = opt_int(o, "NumberOfBytes", 1, 1024, &n);
	if (have < 0 || opt_string(o, "CustomKeyStoreId", &store) < 0) return -1;
	if (have == 0) return fail(o, 400, "ValidationException", "NumberOfBytes must not be null");
	if (store) return fail(o, 400, "CustomKeyStoreNotFoundException", "custom key stores are not supported");
	if ((have_rec = get_recipient(o, &rec)) < 0) return -1;
	if (RAND_priv_bytes(buf, (int)n) != 1)
		fail(o, 500, "KMSInternalException", "random generator failed");
	else
		r = put_secret(o, "Plaintext", have_rec ? &rec : NULL, buf, (size_t)n);
	wipe(buf, sizeof buf);
	recipient_done(&rec);
	return r;
}

static const struct {
	const char *target;
	int (*fn)(struct op *o);
} OPS[] = {
	{"TrentService.CreateKey", op_create_key},     {"TrentService.DescribeKey", op_describe_key},
	{"TrentService.Encrypt", op_encrypt},          {"TrentService.Decrypt", op_decrypt},
	{"TrentService.GenerateDataKey", op_generate_data_key}, {"TrentService.GenerateRandom", op_generate_random},
};

/* ---- HTTP ---- */

struct header_list {
	struct sigv4_header h[SIGV4_MAX_HEADERS];
	size_t n;
	bool overflow;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
	struct header_list *l = cls;
	if (l->n >= SIGV4_MAX_HEADERS) {
		l->overflow = true;
		return MHD_NO;
	}
	l->h[l->n++] = (struct sigv4_header){key, value ? value : ""};
	return MHD_YES;
}

static void free_wiped(void *p) {
	if (p) free_secret(p, strlen(p));
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_object *body, const char *etype) {
	size_t len;
	const char *text = json_object_to_json_string_length(body, JSON_C_TO_STRING_PLAIN, &len);
	char *copy = text ? strndup(text, len) : NULL;
	/* json-c's buffer may hold a plaintext: wipe it, and have MHD wipe its copy when done. */
	if (text) wipe((void *)text, len);
	if (!copy) return MHD_NO;
	struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, copy, free_wiped);
	if (!r) {
		free(copy);
		return MHD_NO;
	}
	uint8_t id[16];
	char rid[37];
	RAND_bytes(id, sizeof id);
	snprintf(rid, sizeof rid, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", id[0], id[1], id[2],
		 id[3], id[4], id[5], id[6], id[7], id[8], id[9], id[10], id[11], id[12], id[13], id[14], id[15]);
	MHD_add_response_header(r, "Content-Type", JSON_CT);
	MHD_add_response_header(r, "x-amzn-RequestId", rid);
	if (etype) MHD_add_response_header(r, "x-amzn-ErrorType", etype);
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *type, const char *msg) {
	json_object *o = json_object_new_object();
	json_object_object_add(o, "__type", json_object_new_string(type));
	json_object_object_add(o, "message", json_object_new_string(msg));
	enum MHD_Result r = send_json(c, status, o, type);
	json_object_put(o);
	return r;
}

static const char *sigv4_error_type(int r) {
	switch (r) {
	case -ENOKEY:
	case -EPERM: return "UnrecognizedClientException";
	case -EBADMSG:
	case -EPROTONOSUPPORT: return "IncompleteSignatureException";
	default: return "InvalidSignatureException";
	}
}

/* Wipe every string value of a response object (plaintexts) before it is freed. */
static void wipe_strings(json_object *o) {
	struct json_object_iter it;
	json_object_object_foreachC(o, it) {
		if (json_object_is_type(it.val, json_type_string))
			wipe((void *)json_object_get_string(it.val), (size_t)json_object_get_string_len(it.val));
	}
}

static enum MHD_Result serve(struct server *s, struct MHD_Connection *c, const char *url, const char *method,
			     struct conn_req *cr) {
	if (strcmp(method, "POST") != 0) return send_error(c, 405, "UnknownOperationException", "only POST is supported");
	if (strcmp(url, "/") != 0 || MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, NULL, NULL) > 0)
		return send_error(c, 404, "UnknownOperationException", "the JSON protocol is served on / only");
	if (cr->too_big) return send_error(c, 413, "ValidationException", "request body larger than 64 KiB");

	struct header_list hl = {};
	MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, &hl);
	if (hl.overflow) return send_error(c, 431, "ValidationException", "too many request headers");
	struct sigv4_request sr = {method, url, NULL, hl.h, hl.n, (const uint8_t *)cr->body, cr->len};
	struct sigv4_verify_params vp = {s->region, "kms", time(NULL), s->max_skew, lookup, s};
	_cleanup_free_ char *akid = NULL;
	int r = sigv4_verify(&sr, &vp, &akid);
	const char *target = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amz-Target");
	if (r < 0) {
		log_struct(LOG_NOTICE, NULL, "MESSAGE=refused %s: %s", target ? target : "-", sigv4_strerror(r),
			   "EML_TARGET=%s", target ? target : "-", "EML_STATUS=400", NULL);
		return send_error(c, 400, sigv4_error_type(r), sigv4_strerror(r));
	}
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	if (!ct || strcmp(ct, JSON_CT) != 0)
		return send_error(c, 400, "SerializationException", "Content-Type must be " JSON_CT);
	int (*fn)(struct op *) = NULL;
	for (size_t i = 0; target && i < ARRAY_SIZE(OPS); i++)
		if (strcmp(target, OPS[i].target) == 0) fn = OPS[i].fn;
	if (!fn) return send_error(c, 400, "UnknownOperationException", "unknown or unsupported X-Amz-Target");

	json_tokener *tok = json_tokener_new_ex(16);
	json_object *req = tok && cr->body ? json_tokener_parse_ex(tok, cr->body, (int)cr->len) : NULL;
	bool complete = tok && json_tokener_get_error(tok) == json_tokener_success &&
			json_tokener_get_parse_end(tok) == cr->len;
	json_tokener_free(tok);
	if (!req || !complete || !json_object_is_type(req, json_type_object)) {
		json_object_put(req);
		return send_error(c, 400, "SerializationException", "request body is not a JSON object");
	}

	struct op o = {.s = s, .req = req, .resp = json_object_new_object(), .status = 200};
	snprintf(o.principal, sizeof o.principal, "arn:aws:iam::%s:root", s->account);
	r = fn(&o);
	enum MHD_Result ret;
	if (r < 0)
		ret = send_error(c, o.status, o.etype, o.emsg);
	else
		ret = send_json(c, 200, o.resp, NULL);
	log_struct(r < 0 ? LOG_NOTICE : LOG_INFO, NULL, "MESSAGE=%s %s: %d%s%s", target, o.key_id[0] ? o.key_id : "-",
		   o.status, r < 0 ? " " : "", r < 0 ? o.etype : "", "EML_TARGET=%s", target, "EML_KEY_ID=%s",
		   o.key_id[0] ? o.key_id : "-", "EML_STATUS=%d", o.status, "EML_LATENCY_US=%" PRIu64,
		   now_monotonic_usec() - cr->start, NULL);
	wipe_strings(o.resp);
	json_object_put(o.resp);
	json_object_put(req);
	return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			       const char *version, const char *upload, size_t *upload_size, void **con_cls) {
	struct conn_req *cr = *con_cls;
	if (!cr) {
		cr = calloc(1, sizeof *cr);
		if (!cr) return MHD_NO;
		cr->start = now_monotonic_usec();
		*con_cls = cr;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!cr->too_big && cr->len + *upload_size <= MAX_BODY) {
			char *b = realloc(cr->body, cr->len + *upload_size + 1);
			if (!b) return MHD_NO;
			memcpy(b + cr->len, upload, *upload_size);
			cr->body = b;
			cr->len += *upload_size;
			cr->body[cr->len] = 0;
		} else
			cr->too_big = true;
		*upload_size = 0;
		return MHD_YES;
	}
	return serve(cls, c, url, method, cr);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
	struct conn_req *cr = *con_cls;
	if (!cr) return;
	free(cr->body);
	free(cr);
	*con_cls = NULL;
}

/* Small answers go out at once: without TCP_NODELAY a response written in two pieces can wait for the
 * client's delayed ACK (milliseconds on every kept-alive connection that is not constantly busy). */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode code) {
	if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	int one = 1;
	if (ci) (void)setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- start-up ---- */

static int load_credentials(struct server *s, const char *file) {
	if (!file) {
		const char *a = getenv("AWS_ACCESS_KEY_ID"), *k = getenv("AWS_SECRET_ACCESS_KEY"), *t = getenv("AWS_SESSION_TOKEN");
		if (!a || !k) return -ENOKEY;
		s->creds[0] = (struct cred){strdup(a), strdup(k), t && *t ? strdup(t) : NULL};
		s->n_creds = 1;
		return s->creds[0].akid && s->creds[0].secret ? 0 : -ENOMEM;
	}
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	int r = read_file(file, 65536, &data, &len);
	if (r < 0) return r;
	char *save = NULL;
	for (char *line = strtok_r((char *)data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[4] = {}, *s2 = NULL;
		int n = 0;
		if (line[0] == '#') continue;
		for (char *t = strtok_r(line, " \t", &s2); t && n < 4; t = strtok_r(NULL, " \t", &s2)) f[n++] = t;
		if (n == 0) continue;
		if (n < 2 || n > 3 || s->n_creds >= MAX_CREDS) return -EINVAL;
		s->creds[s->n_creds++] = (struct cred){strdup(f[0]), strdup(f[1]), n == 3 ? strdup(f[2]) : NULL};
	}
	wipe(data, len);
	return s->n_creds ? 0 : -ENOKEY;
}

static void usage(FILE *f) {
	fprintf(f, "usage: eml-kms-local --keys DIR [--listen ADDR] [--credentials FILE] [--region R] [--account ID]\n"
		   "                     [--attestation-root PEM] [--attestation-max-age S] [--max-skew S]\n"
		   "                     [--threads N] [--print-address]\n"
		   "A local stand-in for AWS KMS (JSON 1.1, SigV4). See eml-kms-local(1).\n");
}

int main(int argc, char **argv) {
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'},      {"keys", required_argument, NULL, 'k'},
		{"credentials", required_argument, NULL, 'c'}, {"region", required_argument, NULL, 'r'},
		{"account", required_argument, NULL, 'a'},     {"attestation-root", required_argument, NULL, 'R'},
		{"attestation-max-age", required_argument, NULL, 'M'}, {"max-skew", required_argument, NULL, 'S'},
		{"threads", required_argument, NULL, 't'},     {"print-address", no_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},              {},
	};
	const char *listen = "tcp:127.0.0.1:0", *creds = NULL, *root = NULL;
	uint64_t max_age = 300, threads = 4;
	bool print = false;
	struct server s = {.region = "us-east-1", .account = "111122223333", .max_skew = 900};
	int c;
	log_setup("eml-kms-local");
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 'k': s.keys_dir = optarg; break;
		case 'c': creds = optarg; break;
		case 'r': s.region = optarg; break;
		case 'a': s.account = optarg; break;
		case 'R': root = optarg; break;
		case 'M':
			if (parse_u64(optarg, 86400, &max_age) < 0) fatal("bad --attestation-max-age: %s", optarg);
			break;
		case 'S':
			if (parse_u64(optarg, 86400, &s.max_skew) < 0) fatal("bad --max-skew: %s", optarg);
			break;
		case 't':
			if (parse_u64(optarg, 64, &threads) < 0 || threads == 0) fatal("bad --threads: %s", optarg);
			break;
		case 'p': print = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!s.keys_dir || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (strlen(s.account) != 12 || strspn(s.account, "0123456789") != 12) fatal("--account must be 12 digits");
	if (mkdir(s.keys_dir, 0700) < 0 && errno != EEXIST) fatal("cannot create %s: %m", s.keys_dir);
	int r = load_credentials(&s, creds);
	if (r < 0) fatal("no credentials (--credentials FILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY): %s", strerror(-r));
	if ((r = attestation_config_load(&s.att, root, max_age)) < 0) fatal("cannot load attestation root %s: %s", root, strerror(-r));
	if (!root) log_warn("no --attestation-root: every request with a Recipient will be refused");

	struct eml_addr a;
	int fd;
	char bound[ADDR_STRING_MAX];
	if ((r = addr_parse(listen, &a)) < 0) fatal("bad --listen %s: %s", listen, addr_strerror(r));
	if ((r = socket_listen(&a, 128, &fd)) < 0) fatal("cannot listen on %s: %s", listen, strerror(-r));
	if ((r = socket_local_address(fd, bound, sizeof bound)) < 0) fatal("cannot read the bound address");

	/* Signals are taken synchronously by the main thread; the server threads inherit the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, handler, &s,
		MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
		MHD_OPTION_CONNECTION_LIMIT, 512u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024), MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
		MHD_OPTION_END);
	if (!d) fatal("cannot start the HTTP server");
	log_struct(LOG_INFO, EML_MSG_STARTED, "MESSAGE=eml-kms-local listening on %s (region %s, account %s)", bound,
		   s.region, s.account, "EML_LISTEN=%s", bound, NULL);
	if (print) {
		printf("%s\n", bound);
		fflush(stdout);
	}
	int sig;
	sigwait(&set, &sig);
	log_struct(LOG_INFO, EML_MSG_STOPPING, "MESSAGE=eml-kms-local stopping (signal %d)", sig, NULL);
	MHD_stop_daemon(d);
	attestation_config_done(&s.att);
	for (size_t i = 0; i < s.n_creds; i++) {
		free(s.creds[i].akid);
		free_secret(s.creds[i].secret, strlen(s.creds[i].secret));
		if (s.creds[i].token) free_secret(s.creds[i].token, strlen(s.creds[i].token));
	}
	return 0;
}
