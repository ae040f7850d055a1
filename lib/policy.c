/* policy.c: the signed policy bundle (see policy.h). */
#include "policy.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cbor.h"
#include "cose.h"
#include "keyfile.h"
#include "nitro-root.h"
#include "json-hex.h"
#include "util.h"

#define DEFAULT_MAX_AGE_S 300
#define MAX_TRUSTED_KEYS 64
#define ISSUED_SKEW_S 300 /* a bundle may claim to be issued this far ahead of our clock */

static const char *const error_names[_POLICY_ERROR_MAX] = {
	[POLICY_OK] = "OK",
	[POLICY_BAD_FORMAT] = "BAD_FORMAT",
	[POLICY_UNKNOWN_KEY] = "UNKNOWN_KEY",
	[POLICY_BAD_SIGNATURE] = "BAD_SIGNATURE",
	[POLICY_NOT_YET_VALID] = "NOT_YET_VALID",
	[POLICY_EXPIRED] = "EXPIRED",
	[POLICY_UNTRUSTED] = "UNTRUSTED",
	[POLICY_INTERNAL] = "INTERNAL",
};

const char *policy_error_name(PolicyError e) {
	return (unsigned)e < _POLICY_ERROR_MAX ? error_names[e] : "INTERNAL";
}

Policy *policy_free(Policy *p) {
	if (!p)
		return NULL;
	for (unsigned i = 0; i < ATTEST_PCR_COUNT; i++)
		free(p->pcr_values[i]);
	for (size_t i = 0; i < p->n_roots; i++)
		free(p->roots[i].der);
	free(p->models);
	free(p);
	return NULL;
}

static bool name_ok(const char *s, size_t n) {
	if (n == 0 || n > POLICY_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

static int add_pcr(void *userdata, unsigned idx, const uint8_t v[ATTEST_PCR_LEN]) {
	Policy *p = userdata;
	if (p->n_pcr_values[idx] >= POLICY_MAX_PCR_VALUES)
		return -E2BIG;
	void *n = realloc(p->pcr_values[idx], (p->n_pcr_values[idx] + 1) * ATTEST_PCR_LEN);
	if (!n)
		return -ENOMEM;
	p->pcr_values[idx] = n;
	memcpy(p->pcr_values[idx][p->n_pcr_values[idx]++], v, ATTEST_PCR_LEN);
	p->pcr_mask |= 1u << idx;
	return 0;
}

static int add_model(Policy *p, const uint8_t h[32]) {
	if (p->n_models >= POLICY_MAX_MODELS)
		return -E2BIG;
	void *n = realloc(p->models, (p->n_models + 1) * 32);
	if (!n)
		return -ENOMEM;
	p->models = n;
	memcpy(p->models[p->n_models++], h, 32);
	return 0;
}

/* A root must be a certificate we could pin: it parses as X.509 (the chain checks do the rest). */
static int add_root_der(Policy *p, const uint8_t *der, size_t len) {
	if (p->n_roots >= POLICY_MAX_ROOTS)
		return -E2BIG;
	X509Root *r = NULL;
	int k = x509_root_from_der(der, len, &r);
	x509_root_free(r);
	if (k < 0)
		return -EBADMSG;
	for (size_t i = 0; i < p->n_roots; i++)
		if (p->roots[i].len == len && memcmp(p->roots[i].der, der, len) == 0)
			return -ENOTUNIQ;
	uint8_t *d = malloc(len);
	if (!d)
		return -ENOMEM;
	memcpy(d, der, len);
	p->roots[p->n_roots++] = (PolicyRoot){d, len};
	return 0;
}

static int add_root_aws(Policy *p) {
	_cleanup_x509_root_ X509Root *r = NULL;
	int k = nitro_root_g1(&r);
	if (k < 0)
		return k;
	size_t len;
	const uint8_t *der = x509_root_der(r, &len);
	return add_root_der(p, der, len);
}

static int pem_to_der(const char *pem, size_t len, uint8_t **ret, size_t *ret_len) {
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!x)
		return -EBADMSG;
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	X509_free(x);
	if (n <= 0)
		return -EBADMSG;
	*ret = malloc((size_t)n);
	if (!*ret) {
		OPENSSL_free(der);
		return -ENOMEM;
	}
	memcpy(*ret, der, (size_t)n);
	*ret_len = (size_t)n;
	OPENSSL_free(der);
	return 0;
}

static int json_root(Policy *p, const char *s, const char *base_dir, char *reason, size_t size) {
	if (strcmp(s, POLICY_ROOT_AWS) == 0)
		return add_root_aws(p) < 0 ? errorf(-EINVAL, reason, size, "roots: the AWS root is listed twice") : 0;
	_cleanup_free_ uint8_t *file = NULL, *der = NULL;
	size_t len, der_len;
	const char *pem = s;
	size_t pem_len = strlen(s);
	if (s[0] == '@') {
		_cleanup_free_ char *path = NULL;
		if (s[1] == '/' || !base_dir)
			path = strdup(s + 1);
		else if (asprintf(&path, "%s/%s", base_dir, s + 1) < 0)
			path = NULL;
		if (!path)
			return -ENOMEM;
		if (read_file(path, 64 * 1024, &file, &len) < 0)
			return errorf(-EINVAL, reason, size, "roots: cannot read %.200s", path);
		pem = (const char *)file, pem_len = len;
	}
	if (pem_to_der(pem, pem_len, &der, &der_len) < 0)
		return errorf(-EINVAL, reason, size, "roots: \"%.40s\" is not aws-nitro-g1, a PEM certificate or @file", s);
	int r = add_root_der(p, der, der_len);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return errorf(-EINVAL, reason, size, "roots: \"%.40s\" is %s", s,
			    r == -ENOTUNIQ ? "listed twice" : r == -E2BIG ? "one root too many" : "not a usable root");
	return 0;
}

static bool json_uint(json_object *v, uint64_t max, uint64_t *ret) {
	if (!json_object_is_type(v, json_type_int))
		return false;
	int64_t x = json_object_get_int64(v);
	if (x < 0 || (uint64_t)x > max)
		return false;
	*ret = (uint64_t)x;
	return true;
}

int policy_from_json(const char *text, size_t len, const char *base_dir, uint64_t now, Policy **ret, char *reason,
		     size_t size) {
	if (!text || !ret)
		return -EINVAL;
	if (len > POLICY_BUNDLE_MAX)
		return errorf(-EINVAL, reason, size, "policy larger than %u bytes", POLICY_BUNDLE_MAX);
	json_tokener *tok = json_tokener_new_ex(8);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *root = json_tokener_parse_ex(tok, text, (int)len);
	bool complete = json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == len;
	json_tokener_free(tok);
	_cleanup_policy_ Policy *p = calloc(1, sizeof *p);
	bool have_roots = false, have_age = false, have_issued = false;
	int r = 0;
	if (!p) {
		r = -ENOMEM;
		goto done;
	}
	if (!root || !complete || !json_object_is_type(root, json_type_object)) {
		r = errorf(-EINVAL, reason, size, "policy is not one JSON object");
		goto done;
	}
	json_object_object_foreach(root, key, val) {
		if (strcmp(key, "name") == 0) {
			if (!json_object_is_type(val, json_type_string) ||
			    !name_ok(json_object_get_string(val), (size_t)json_object_get_string_len(val))) {
				r = errorf(-EINVAL, reason, size, "name is not 1..%d printable ASCII characters", POLICY_NAME_MAX);
				goto done;
			}
			memcpy(p->name, json_object_get_string(val), (size_t)json_object_get_string_len(val));
		} else if (strcmp(key, "max_age_s") == 0) {
			if (!json_uint(val, POLICY_MAX_AGE_LIMIT_S, &p->max_age_s) || p->max_age_s == 0) {
				r = errorf(-EINVAL, reason, size, "max_age_s is not an integer in 1..%u", POLICY_MAX_AGE_LIMIT_S);
				goto done;
			}
			have_age = true;
		} else if (strcmp(key, "issued") == 0 || strcmp(key, "expires") == 0) {
			uint64_t *t = key[0] == 'i' ? &p->issued : &p->expires;
			if (!json_uint(val, UINT32_MAX * 4ull, t) || *t == 0) {
				r = errorf(-EINVAL, reason, size, "%s is not unix seconds", key);
				goto done;
			}
			if (key[0] == 'i')
				have_issued = true;
		} else if (strcmp(key, "pcrs") == 0) {
			if ((r = attest_pcrs_from_json(val, POLICY_MAX_PCR_VALUES, add_pcr, p, reason, size)) < 0)
				goto done;
		} else if (strcmp(key, "roots") == 0) {
			size_t n = json_object_is_type(val, json_type_array) ? json_object_array_length(val) : 0;
			if (n == 0 || n > POLICY_MAX_ROOTS) {
				r = errorf(-EINVAL, reason, size, "roots is not an array of 1..%d entries", POLICY_MAX_ROOTS);
				goto done;
			}
			for (size_t k = 0; k < n; k++) {
				json_object *v = json_object_array_get_idx(val, k);
				if (!json_object_is_type(v, json_type_string)) {
					r = errorf(-EINVAL, reason, size, "roots[%zu] is not a string", k);
					goto done;
				}
				if ((r = json_root(p, json_object_get_string(v), base_dir, reason, size)) < 0)
					goto done;
			}
			have_roots = true;
		} else if (strcmp(key, "models") == 0) {
			size_t n = json_object_is_type(val, json_type_array) ? json_object_array_length(val) : 0;
			if (n == 0 || n > POLICY_MAX_MODELS) {
				r = errorf(-EINVAL, reason, size, "models is not an array of 1..%d hashes (leave it out to allow any)",
					 POLICY_MAX_MODELS);
				goto done;
			}
			for (size_t k = 0; k < n; k++) {
				uint8_t h[32];
				if (!json_hex_get(json_object_array_get_idx(val, k), h, sizeof h)) {
					r = errorf(-EINVAL, reason, size, "models[%zu] is not 32 bytes of hex (SHA-256)", k);
					goto done;
				}
				if ((r = add_model(p, h)) < 0)
					goto done;
			}
		} else {
			r = errorf(-EINVAL, reason, size, "unknown policy key \"%.32s\"", key);
			goto done;
		}
	}
	if (!p->name[0]) {
		r = errorf(-EINVAL, reason, size, "name is missing");
		goto done;
	}
	if (!p->pcr_mask) {
		r = errorf(-EINVAL, reason, size, "pcrs is missing: a policy must pin at least one PCR");
		goto done;
	}
	if (!have_roots && (r = add_root_aws(p)) < 0)
		goto done;
	if (!have_age)
		p->max_age_s = DEFAULT_MAX_AGE_S;
	if (!have_issued)
		p->issued = now ? now : now_realtime_usec() / 1000000;
	if (p->expires && p->expires <= p->issued) {
		r = errorf(-EINVAL, reason, size, "expires is not after issued");
		goto done;
	}
	*ret = TAKE_PTR(p);
done:
	if (r == -E2BIG)
		r = errorf(-EINVAL, reason, size, "too many values");
	json_object_put(root);
	return r;
}

json_object *policy_to_json(const Policy *p) {
	json_object *o = json_object_new_object(), *pcrs = json_object_new_object(), *roots = json_object_new_array();
	json_object_object_add(o, "name", json_object_new_string(p->name));
	json_object_object_add(o, "signed", json_object_new_boolean(p->is_signed));
	json_object_object_add(o, "key_id", p->is_signed ? json_hex_new(p->key_id, sizeof p->key_id) : NULL);
	json_object_object_add(o, "issued", json_object_new_uint64(p->issued));
	json_object_object_add(o, "expires", p->expires ? json_object_new_uint64(p->expires) : NULL);
	json_object_object_add(o, "max_age_s", json_object_new_uint64(p->max_age_s));
	for (unsigned i = 0; i < ATTEST_PCR_COUNT; i++) {
		if (!(p->pcr_mask & (1u << i)))
			continue;
		json_object *a = json_object_new_array();
		for (size_t k = 0; k < p->n_pcr_values[i]; k++)
			json_object_array_add(a, json_hex_new(p->pcr_values[i][k], ATTEST_PCR_LEN));
		char key[4];
		snprintf(key, sizeof key, "%u", i);
		json_object_object_add(pcrs, key, a);
	}
	json_object_object_add(o, "pcrs", pcrs);
	for (size_t i = 0; i < p->n_roots; i++) {
		json_object *ro = json_object_new_object();
		uint8_t fp[32];
		SHA256(p->roots[i].der, p->roots[i].len, fp);
		json_object_object_add(ro, "sha256", json_hex_new(fp, 32));
		X509Root *aws = NULL;
		bool is_aws = nitro_root_g1(&aws) == 0 && mem_equal_ct(x509_root_fingerprint(aws), fp, 32);
		x509_root_free(aws);
		json_object_object_add(ro, "name", is_aws ? json_object_new_string(POLICY_ROOT_AWS) : NULL);
		json_object_array_add(roots, ro);
	}
	json_object_object_add(o, "roots", roots);
	if (p->models) {
		json_object *m = json_object_new_array();
		for (size_t i = 0; i < p->n_models; i++)
			json_object_array_add(m, json_hex_new(p->models[i], 32));
		json_object_object_add(o, "models", m);
	} else
		json_object_object_add(o, "models", NULL);
	return o;
}

int policy_encode(const Policy *p, uint8_t **ret, size_t *ret_len) {
	_cleanup_cbor_ cbor_item_t *m = ecbor_map();
	cbor_item_t *pcrs = ecbor_map(), *roots = ecbor_array();
	int r = ecbor_map_put(m, ecbor_tstr("v"), ecbor_uint(1));
	r = r ?: ecbor_map_put(m, ecbor_tstr("name"), ecbor_tstr(p->name));
	r = r ?: ecbor_map_put(m, ecbor_tstr("key_id"), ecbor_bstr(p->key_id, sizeof p->key_id));
	r = r ?: ecbor_map_put(m, ecbor_tstr("issued"), ecbor_uint(p->issued));
	if (p->expires)
		r = r ?: ecbor_map_put(m, ecbor_tstr("expires"), ecbor_uint(p->expires));
	r = r ?: ecbor_map_put(m, ecbor_tstr("max_age_s"), ecbor_uint(p->max_age_s));
	for (unsigned i = 0; i < ATTEST_PCR_COUNT && pcrs; i++) {
		if (!(p->pcr_mask & (1u << i)))
			continue;
		cbor_item_t *a = ecbor_array();
		for (size_t k = 0; k < p->n_pcr_values[i] && a; k++)
			if (ecbor_array_push(a, ecbor_bstr(p->pcr_values[i][k], ATTEST_PCR_LEN)) < 0)
				r = -ENOMEM;
		r = r ?: ecbor_map_put(pcrs, ecbor_uint(i), a);
	}
	for (size_t i = 0; i < p->n_roots && roots; i++)
		if (ecbor_array_push(roots, ecbor_bstr(p->roots[i].der, p->roots[i].len)) < 0)
			r = -ENOMEM;
	r = r ?: ecbor_map_put(m, ecbor_tstr("pcrs"), pcrs);
	pcrs = NULL;
	r = r ?: ecbor_map_put(m, ecbor_tstr("roots"), roots);
	roots = NULL;
	if (p->models) {
		cbor_item_t *a = ecbor_array();
		for (size_t i = 0; i < p->n_models && a; i++)
			if (ecbor_array_push(a, ecbor_bstr(p->models[i], 32)) < 0)
				r = -ENOMEM;
		r = r ?: ecbor_map_put(m, ecbor_tstr("models"), a);
	}
	if (pcrs)
		cbor_decref(&pcrs);
	if (roots)
		cbor_decref(&roots);
	return r ?: ecbor_encode(m, ret, ret_len);
}

int policy_decode(const uint8_t *buf, size_t len, Policy **ret, char *reason, size_t size) {
	const struct ecbor_limits lim = {.max_size = POLICY_BUNDLE_MAX, .max_depth = 3, .max_items = 8192,
					 .max_string = X509_CHAIN_MAX_CERT, .deterministic = true};
	_cleanup_cbor_ cbor_item_t *m = NULL;
	_cleanup_policy_ Policy *p = calloc(1, sizeof *p);
	const uint8_t *b;
	const char *s;
	size_t n;
	uint64_t v;
	if (!p)
		return -ENOMEM;
	int r = ecbor_decode(buf, len, &lim, &m);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return errorf(-EINVAL, reason, size, "payload is not deterministic CBOR (%s)", ecbor_strerror(r)), -EBADMSG;
	if (!cbor_isa_map(m))
		return errorf(-EINVAL, reason, size, "payload is not a map"), -EBADMSG;
	size_t expect = 7; /* v, name, key_id, issued, max_age_s, pcrs, roots */
	if (ecbor_map_text_uint(m, "v", &v) < 0 || v != 1)
		return errorf(-EINVAL, reason, size, "v is not 1"), -EBADMSG;
	if (ecbor_map_text_tstr(m, "name", &s, &n) < 0 || !name_ok(s, n))
		return errorf(-EINVAL, reason, size, "name missing or not printable ASCII"), -EBADMSG;
	memcpy(p->name, s, n);
	if (ecbor_get_bstr_len(ecbor_map_get_text(m, "key_id"), POLICY_KEY_ID_LEN, &b) < 0)
		return errorf(-EINVAL, reason, size, "key_id missing or not 8 bytes"), -EBADMSG;
	memcpy(p->key_id, b, POLICY_KEY_ID_LEN);
	if (ecbor_map_text_uint(m, "issued", &p->issued) < 0 || p->issued == 0)
		return errorf(-EINVAL, reason, size, "issued missing"), -EBADMSG;
	if (ecbor_map_get_text(m, "expires")) {
		if (ecbor_map_text_uint(m, "expires", &p->expires) < 0 || p->expires <= p->issued)
			return errorf(-EINVAL, reason, size, "expires is not a time after issued"), -EBADMSG;
		expect++;
	}
	if (ecbor_map_text_uint(m, "max_age_s", &p->max_age_s) < 0 || p->max_age_s == 0 ||
	    p->max_age_s > POLICY_MAX_AGE_LIMIT_S)
		return errorf(-EINVAL, reason, size, "max_age_s missing or out of range"), -EBADMSG;

	cbor_item_t *pcrs = ecbor_map_get_text(m, "pcrs");
	if (!pcrs || !cbor_isa_map(pcrs) || cbor_map_size(pcrs) == 0)
		return errorf(-EINVAL, reason, size, "pcrs missing or empty"), -EBADMSG;
	struct cbor_pair *pairs = cbor_map_handle(pcrs);
	for (size_t i = 0; i < cbor_map_size(pcrs); i++) {
		uint64_t idx;
		if (ecbor_get_uint(pairs[i].key, &idx) < 0 || idx >= ATTEST_PCR_COUNT)
			return errorf(-EINVAL, reason, size, "pcrs key is not an index 0..31"), -EBADMSG;
		cbor_item_t *a = pairs[i].value;
		if (!cbor_isa_array(a) || cbor_array_size(a) == 0 || cbor_array_size(a) > POLICY_MAX_PCR_VALUES)
			return errorf(-EINVAL, reason, size, "pcrs[%llu] is not 1..%d values", (unsigned long long)idx,
				    POLICY_MAX_PCR_VALUES), -EBADMSG;
		for (size_t k = 0; k < cbor_array_size(a); k++) {
			if (ecbor_get_bstr_len(cbor_array_handle(a)[k], ATTEST_PCR_LEN, &b) < 0)
				return errorf(-EINVAL, reason, size, "pcrs[%llu] holds a value that is not 48 bytes",
					    (unsigned long long)idx), -EBADMSG;
			if ((r = add_pcr(p, (unsigned)idx, b)) < 0)
				return r;
		}
	}
	cbor_item_t *roots = ecbor_map_get_text(m, "roots");
	if (!roots || !cbor_isa_array(roots) || cbor_array_size(roots) == 0 ||
	    cbor_array_size(roots) > POLICY_MAX_ROOTS)
		return errorf(-EINVAL, reason, size, "roots is not 1..%d certificates", POLICY_MAX_ROOTS), -EBADMSG;
	for (size_t k = 0; k < cbor_array_size(roots); k++) {
		if (ecbor_get_bstr(cbor_array_handle(roots)[k], &b, &n) < 0)
			return errorf(-EINVAL, reason, size, "roots[%zu] is not a bstr", k), -EBADMSG;
		r = add_root_der(p, b, n);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return errorf(-EINVAL, reason, size, "roots[%zu] is not a usable certificate", k), -EBADMSG;
	}
	cbor_item_t *models = ecbor_map_get_text(m, "models");
	if (models) {
		if (!cbor_isa_array(models) || cbor_array_size(models) == 0 || cbor_array_size(models) > POLICY_MAX_MODELS)
			return errorf(-EINVAL, reason, size, "models is not 1..%d hashes", POLICY_MAX_MODELS), -EBADMSG;
		for (size_t k = 0; k < cbor_array_size(models); k++) {
			if (ecbor_get_bstr_len(cbor_array_handle(models)[k], 32, &b) < 0)
				return errorf(-EINVAL, reason, size, "models[%zu] is not 32 bytes", k), -EBADMSG;
			if ((r = add_model(p, b)) < 0)
				return r;
		}
		expect++;
	}
	if (cbor_map_size(m) != expect)
		return errorf(-EINVAL, reason, size, "payload has keys this version does not know"), -EBADMSG;
	*ret = TAKE_PTR(p);
	return 0;
}

void policy_key_id(const uint8_t pub[32], uint8_t ret[POLICY_KEY_ID_LEN]) {
	uint8_t h[32];
	SHA256(pub, 32, h);
	memcpy(ret, h, POLICY_KEY_ID_LEN);
}

int policy_sign(Policy *p, EVP_PKEY *key, uint8_t **ret, size_t *ret_len) {
	uint8_t pub[32];
	int r = keyfile_raw_public(key, pub);
	if (r < 0)
		return r;
	policy_key_id(pub, p->key_id);
	_cleanup_free_ uint8_t *payload = NULL;
	size_t n;
	r = policy_encode(p, &payload, &n);
	if (r < 0)
		return r;
	return cose_sign1_sign(COSE_ALG_EDDSA, key, payload, n, NULL, 0, true, ret, ret_len);
}

static int open_bundle(const uint8_t *bundle, size_t len, CoseSign1 **ret_msg, Policy **ret, char *reason,
		       size_t size) {
	_cleanup_cose_sign1_ CoseSign1 *m = NULL;
	if (len > POLICY_BUNDLE_MAX)
		return errorf(-EINVAL, reason, size, "bundle larger than %u bytes", POLICY_BUNDLE_MAX), -EBADMSG;
	int r = cose_sign1_decode(bundle, len, &m);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return errorf(-EINVAL, reason, size, "not a COSE_Sign1 message"), -EBADMSG;
	if (!m->tagged || m->alg != COSE_ALG_EDDSA || !m->payload)
		return errorf(-EINVAL, reason, size, "not a tagged EdDSA COSE_Sign1 with a payload"), -EBADMSG;
	r = policy_decode(m->payload, m->payload_len, ret, reason, size);
	if (r < 0)
		return r;
	if (ret_msg)
		*ret_msg = TAKE_PTR(m);
	return 0;
}

int policy_peek(const uint8_t *bundle, size_t len, Policy **ret, char *reason, size_t size) {
	return open_bundle(bundle, len, NULL, ret, reason, size);
}

int policy_verify(const uint8_t *bundle, size_t len, const uint8_t (*keys)[32], size_t n_keys, uint64_t now,
		  Policy **ret, PolicyError *ret_error, char *reason, size_t size) {
	_cleanup_cose_sign1_ CoseSign1 *m = NULL;
	_cleanup_policy_ Policy *p = NULL;
	PolicyError dummy;
	if (!ret_error)
		ret_error = &dummy;
	*ret_error = POLICY_INTERNAL;
	int r = open_bundle(bundle, len, &m, &p, reason, size);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		*ret_error = POLICY_BAD_FORMAT;
		return -EPERM;
	}
	if (n_keys == 0) {
		*ret_error = POLICY_UNTRUSTED;
		errorf(-EINVAL, reason, size, "no trusted policy key to check the bundle against");
		return -EPERM;
	}
	const uint8_t *key = NULL;
	for (size_t i = 0; i < n_keys && !key; i++) {
		uint8_t id[POLICY_KEY_ID_LEN];
		policy_key_id(keys[i], id);
		if (memcmp(id, p->key_id, sizeof id) == 0)
			key = keys[i];
	}
	if (!key) {
		char hex[2 * POLICY_KEY_ID_LEN + 1];
		hex_encode(p->key_id, POLICY_KEY_ID_LEN, hex);
		*ret_error = POLICY_UNKNOWN_KEY;
		errorf(-EINVAL, reason, size, "signed by key %s, which is not trusted", hex);
		return -EPERM;
	}
	CoseKey ck;
	if (cose_key_ed25519(key, &ck) < 0 || cose_sign1_verify(m, &ck, NULL, 0, NULL, 0) < 0) {
		*ret_error = POLICY_BAD_SIGNATURE;
		errorf(-EINVAL, reason, size, "the signature does not verify");
		return -EPERM;
	}
	if (!now)
		now = now_realtime_usec() / 1000000;
	if (p->issued > now + ISSUED_SKEW_S) {
		*ret_error = POLICY_NOT_YET_VALID;
		errorf(-EINVAL, reason, size, "issued %llu, in the future", (unsigned long long)p->issued);
		return -EPERM;
	}
	if (p->expires && now >= p->expires) {
		*ret_error = POLICY_EXPIRED;
		errorf(-EINVAL, reason, size, "expired at %llu", (unsigned long long)p->expires);
		return -EPERM;
	}
	p->is_signed = true;
	*ret_error = POLICY_OK;
	*ret = TAKE_PTR(p);
	return 0;
}

int policy_attest_policy(const Policy *p, AttestPolicy **ret) {
	_cleanup_attest_policy_ AttestPolicy *a = NULL;
	int r = attest_policy_new(&a);
	if (r < 0)
		return r;
	a->max_age_ms = p->max_age_s * 1000;
	for (unsigned i = 0; i < ATTEST_PCR_COUNT; i++)
		for (size_t k = 0; k < p->n_pcr_values[i]; k++)
			if ((r = attest_policy_allow(a, i, p->pcr_values[i][k])) < 0)
				return r;
	*ret = TAKE_PTR(a);
	return 0;
}

int policy_root(const Policy *p, size_t i, X509Root **ret) {
	if (i >= p->n_roots)
		return -ENOENT;
	return x509_root_from_der(p->roots[i].der, p->roots[i].len, ret);
}

bool policy_model_allowed(const Policy *p, const uint8_t hash[32]) {
	if (!p->models)
		return true;
	for (size_t i = 0; i < p->n_models; i++)
		if (memcmp(p->models[i], hash, 32) == 0)
			return true;
	return false;
}

int policy_load(const char *path, const uint8_t (*keys)[32], size_t n_keys, uint64_t now, Policy **ret,
		PolicyError *ret_error, char *reason, size_t size) {
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	PolicyError dummy;
	if (!ret_error)
		ret_error = &dummy;
	*ret_error = POLICY_INTERNAL;
	int r = read_file(path, POLICY_BUNDLE_MAX, &data, &len);
	if (r < 0) {
		errorf(-EINVAL, reason, size, "cannot read %.200s: %s", path, r == -EFBIG ? "too large" : strerror(-r));
		return r;
	}
	size_t i = 0;
	while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
		i++;
	if (i == len || data[i] != '{')
		return policy_verify(data, len, keys, n_keys, now, ret, ret_error, reason, size);

	/* A JSON policy carries no signature: it is trusted because the user wrote it, so it must not be a file
	 * that someone else could have written. */
	struct stat st;
	if (stat(path, &st) < 0)
		return negerrno();
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		*ret_error = POLICY_UNTRUSTED;
		errorf(-EINVAL, reason, size, "unsigned policy %.200s is writable by group or others", path);
		return -EPERM;
	}
	_cleanup_free_ char *dir = strdup(path);
	if (!dir)
		return -ENOMEM;
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	r = policy_from_json((const char *)data, len, slash ? dir : NULL, now, ret, reason, size);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		*ret_error = POLICY_BAD_FORMAT;
		return -EPERM;
	}
	*ret_error = POLICY_OK;
	return 0;
}

int policy_keys_load_dir(const char *dir, uint8_t (**keys)[32], size_t *n_keys) {
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT || errno == ENOTDIR ? 0 : negerrno();
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 5 ||
		    (strcmp(de->d_name + l - 4, ".pem") != 0 && strcmp(de->d_name + l - 4, ".pub") != 0))
			continue;
		if (*n_keys >= MAX_TRUSTED_KEYS) {
			r = -E2BIG;
			break;
		}
		_cleanup_free_ char *path = NULL;
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		uint8_t pub[32];
		_cleanup_free_ uint8_t *raw = NULL;
		size_t rl;
		/* A .pub may hold the 64 hex digits of a raw key. */
		if (read_file(path, KEYFILE_MAX, &raw, &rl) == 0 && rl >= 64 && rl <= 65) {
			raw[64] = 0;
			if (keyfile_load_public((char *)raw, pub) == 0)
				goto add;
		}
		if (keyfile_load_public(path, pub) < 0)
			continue; /* not a key: ignored, like any stray file */
	add:;
		void *n = realloc(*keys, (*n_keys + 1) * 32);
		if (!n) {
			r = -ENOMEM;
			break;
		}
		*keys = n;
		memcpy((*keys)[(*n_keys)++], pub, 32);
	}
	closedir(d);
	return r;
}
