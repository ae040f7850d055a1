/* air.c: AIR v1 receipts (see air.h): deterministic claims encoding, the fixed COSE_Sign1 profile AIR uses,
 * Ed25519 (nettle), and the four verification layers. The envelope is parsed here rather than by
 * cose_sign1_decode because AIR must tell BAD_ALG from BAD_CONTENT_TYPE from a decode failure, refuse any
 * unprotected header and untagged messages, and sign with a content type in the protected header;
 * lib/cose supplies the Sig_structure. */
#include "air.h"

#include <ctype.h>
#include <nettle/eddsa.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <string.h>

#include "cbor.h"
#include "cose.h"
#include "macro.h"
#include "util.h"

enum {
	CLAIM_ISS = 1,
	CLAIM_IAT = 6,
	CLAIM_CTI = 7,
	CLAIM_NONCE = 10,
	CLAIM_PROFILE = 265,
	CLAIM_MODEL_ID = -65537,
	CLAIM_MODEL_VERSION = -65538,
	CLAIM_MODEL_HASH = -65539,
	CLAIM_REQUEST_HASH = -65540,
	CLAIM_RESPONSE_HASH = -65541,
	CLAIM_ATTESTATION_DOC_HASH = -65542,
	CLAIM_MEASUREMENTS = -65543,
	CLAIM_POLICY_VERSION = -65544,
	CLAIM_SEQUENCE = -65545,
	CLAIM_EXECUTION_TIME = -65546,
	CLAIM_MEMORY_PEAK = -65547,
	CLAIM_SECURITY_MODE = -65548,
	CLAIM_MODEL_HASH_SCHEME = -65549,
};

#define COSE_HDR_ALG 1
#define COSE_HDR_CONTENT_TYPE 3
#define COAP_CT_CWT 61

const unsigned air_pcr_index[AIR_PCR_SLOTS] = {0, 1, 2, 3, 4, 8};
static const char *const pcr_names[AIR_PCR_SLOTS] = {"pcr0", "pcr1", "pcr2", "pcr3", "pcr4", "pcr8"};
static const char *const hash_schemes[] = {"sha256-single", "sha256-concat", "sha256-manifest"};

static const char *const code_names[_AIR_CODE_MAX] = {
	[AIR_OK] = "OK",
	[AIR_COSE_DECODE_FAILED] = "COSE_DECODE_FAILED",
	[AIR_BAD_ALG] = "BAD_ALG",
	[AIR_BAD_CONTENT_TYPE] = "BAD_CONTENT_TYPE",
	[AIR_MISSING_PAYLOAD] = "MISSING_PAYLOAD",
	[AIR_PAYLOAD_NOT_MAP] = "PAYLOAD_NOT_MAP",
	[AIR_WRONG_PROFILE] = "WRONG_PROFILE",
	[AIR_BAD_SIG_LENGTH] = "BAD_SIG_LENGTH",
	[AIR_SIG_FAILED] = "SIG_FAILED",
	[AIR_MISSING_CLAIM] = "MISSING_CLAIM",
	[AIR_WRONG_TYPE] = "WRONG_TYPE",
	[AIR_BAD_CTI_LENGTH] = "BAD_CTI_LENGTH",
	[AIR_BAD_HASH_LENGTH] = "BAD_HASH_LENGTH",
	[AIR_ZERO_MODEL_HASH] = "ZERO_MODEL_HASH",
	[AIR_BAD_MEASUREMENT_LENGTH] = "BAD_MEASUREMENT_LENGTH",
	[AIR_UNKNOWN_MTYPE] = "UNKNOWN_MTYPE",
	[AIR_UNKNOWN_HASH_SCHEME] = "UNKNOWN_HASH_SCHEME",
	[AIR_UNKNOWN_CLAIM] = "UNKNOWN_CLAIM",
	[AIR_TIMESTAMP_FUTURE] = "TIMESTAMP_FUTURE",
	[AIR_TIMESTAMP_STALE] = "TIMESTAMP_STALE",
	[AIR_MODEL_HASH_MISMATCH] = "MODEL_HASH_MISMATCH",
	[AIR_MODEL_ID_MISMATCH] = "MODEL_ID_MISMATCH",
	[AIR_PLATFORM_MISMATCH] = "PLATFORM_MISMATCH",
	[AIR_NONCE_MISSING] = "NONCE_MISSING",
	[AIR_NONCE_MISMATCH] = "NONCE_MISMATCH",
	[AIR_INTERNAL_ERROR] = "INTERNAL_ERROR",
};

const char *air_code_name(enum air_code c) {
	return (unsigned)c < _AIR_CODE_MAX && code_names[c] ? code_names[c] : "UNKNOWN";
}

int air_code_layer(enum air_code c) {
	if (c >= AIR_COSE_DECODE_FAILED && c <= AIR_WRONG_PROFILE)
		return 1;
	if (c >= AIR_BAD_SIG_LENGTH && c <= AIR_SIG_FAILED)
		return 2;
	if (c >= AIR_MISSING_CLAIM && c <= AIR_UNKNOWN_CLAIM)
		return 3;
	if (c >= AIR_TIMESTAMP_FUTURE && c <= AIR_NONCE_MISMATCH)
		return 4;
	return 0;
}

/* Record a failure. suffix (may be NULL) comes from the receipt: only printable ASCII survives, so a hostile
 * receipt cannot inject terminal escapes or fake lines into what the CLI prints. */
_printf_(5, 6) static int fail(struct air_result *res, enum air_code code, const char *check, const char *suffix,
			       const char *fmt, ...) {
	va_list ap;
	res->code = code;
	res->layer = air_code_layer(code);
	snprintf(res->check, sizeof res->check, "%s", check);
	if (suffix) {
		char clean[48];
		size_t i;
		for (i = 0; suffix[i] && i < sizeof clean - 1; i++)
			clean[i] = isprint((unsigned char)suffix[i]) && suffix[i] != ' ' ? suffix[i] : '?';
		clean[i] = 0;
		snprintf(res->full, sizeof res->full, "%s:%s", air_code_name(code), clean);
	} else
		snprintf(res->full, sizeof res->full, "%s", air_code_name(code));
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof res->reason, fmt, ap);
	va_end(ap);
	return code == AIR_INTERNAL_ERROR ? -ENOMEM : -EBADMSG;
}

void air_claims_done(struct air_claims *c) {
	if (!c)
		return;
	free(c->iss);
	free(c->nonce);
	free(c->model_id);
	free(c->model_version);
	free(c->measurement_type);
	free(c->policy_version);
	free(c->security_mode);
	free(c->model_hash_scheme);
	memset(c, 0, sizeof *c);
}

/* ---- Ed25519 ------------------------------------------------------------------------------------------ */

/* nettle rather than OpenSSL's EVP: a receipt is signed for every response and verified by every client, and
 * here nettle signs in 35 us against 47 and verifies in 115-125 us against 122-144 (signatures are
 * deterministic, so both give the same bytes); it is already a dependency (P-384). Like OpenSSL it refuses
 * a non-canonical S (S >= L) and a public key that does not decode. */
int air_public_key(const uint8_t sk[32], uint8_t ret_pk[32]) {
	ed25519_sha512_public_key(ret_pk, sk);
	return 0;
}

struct air_signer {
	uint8_t sk[32];
	uint8_t pk[32];
};

int air_signer_new(const uint8_t sk[32], struct air_signer **ret) {
	struct air_signer *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	memcpy(s->sk, sk, sizeof s->sk);
	ed25519_sha512_public_key(s->pk, s->sk);
	*ret = s;
	return 0;
}

void air_signer_free(struct air_signer *s) {
	if (!s)
		return;
	wipe(s->sk, sizeof s->sk);
	free(s);
}

const uint8_t *air_signer_public_key(const struct air_signer *s) { return s ? s->pk : NULL; }

/* Sig_structure = ["Signature1", protected, external_aad = h'', payload] (lib/cose builds it). */
static int sig_structure(const uint8_t *prot, size_t prot_len, const uint8_t *payload, size_t payload_len,
			 uint8_t **ret, size_t *ret_len) {
	return cose_sig_structure(prot, prot_len, (const uint8_t *)"", 0, payload, payload_len, ret, ret_len);
}

/* ---- build ---------------------------------------------------------------------------------------------- */

static bool known_platform(const char *t) {
	return t && (strcmp(t, AIR_PLATFORM_NITRO) == 0 || strcmp(t, AIR_PLATFORM_TDX) == 0);
}

static bool known_scheme(const char *s) {
	for (size_t i = 0; i < ARRAY_SIZE(hash_schemes); i++)
		if (strcmp(s, hash_schemes[i]) == 0)
			return true;
	return false;
}

static bool all_zero(const uint8_t *p, size_t n) {
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static int claims_payload(const struct air_claims *c, uint8_t **ret, size_t *ret_len) {
	_cleanup_cbor_ cbor_item_t *m = ecbor_map(), *meas = ecbor_map();
	int r = 0;
	if (!m || !meas)
		return -ENOMEM;
	for (size_t i = 0; i < AIR_PCR_SLOTS && r >= 0; i++)
		if (c->has_pcr[i])
			r = ecbor_map_put(meas, ecbor_tstr(pcr_names[i]), ecbor_bstr(c->pcr[i], 48));
	if (r >= 0)
		r = ecbor_map_put(meas, ecbor_tstr("measurement_type"), ecbor_tstr(c->measurement_type));

#define PUT(k, v)                                                                                          \
	do {                                                                                               \
		if (r >= 0)                                                                                \
			r = ecbor_map_put(m, ecbor_int(k), (v));                                           \
	} while (0)
	PUT(CLAIM_ISS, ecbor_tstr(c->iss));
	PUT(CLAIM_IAT, ecbor_uint(c->iat));
	PUT(CLAIM_CTI, ecbor_bstr(c->cti, 16));
	if (c->nonce)
		PUT(CLAIM_NONCE, ecbor_bstr(c->nonce, c->nonce_len));
	PUT(CLAIM_PROFILE, ecbor_tstr(AIR_EAT_PROFILE));
	PUT(CLAIM_MODEL_ID, ecbor_tstr(c->model_id));
	PUT(CLAIM_MODEL_VERSION, ecbor_tstr(c->model_version));
	PUT(CLAIM_MODEL_HASH, ecbor_bstr(c->model_hash, 32));
	PUT(CLAIM_REQUEST_HASH, ecbor_bstr(c->request_hash, 32));
	PUT(CLAIM_RESPONSE_HASH, ecbor_bstr(c->response_hash, 32));
	PUT(CLAIM_ATTESTATION_DOC_HASH, ecbor_bstr(c->attestation_doc_hash, 32));
	if (r >= 0) {
		r = ecbor_map_put(m, ecbor_int(CLAIM_MEASUREMENTS), meas);
		meas = NULL; /* consumed */
	}
	PUT(CLAIM_POLICY_VERSION, ecbor_tstr(c->policy_version));
	PUT(CLAIM_SEQUENCE, ecbor_uint(c->sequence_number));
	PUT(CLAIM_EXECUTION_TIME, ecbor_uint(c->execution_time_ms));
	PUT(CLAIM_MEMORY_PEAK, ecbor_uint(c->memory_peak_mb));
	PUT(CLAIM_SECURITY_MODE, ecbor_tstr(c->security_mode));
	if (c->model_hash_scheme)
		PUT(CLAIM_MODEL_HASH_SCHEME, ecbor_tstr(c->model_hash_scheme));
#undef PUT
	if (r < 0)
		return r;
	return ecbor_encode(m, ret, ret_len);
}

int air_sign(const struct air_claims *c, const uint8_t sk[32], uint8_t **ret, size_t *ret_len) {
	struct air_signer *s = NULL;
	if (!sk)
		return -EINVAL;
	int r = air_signer_new(sk, &s);
	if (r >= 0)
		r = air_signer_sign(s, c, ret, ret_len);
	air_signer_free(s);
	return r;
}

int air_signer_sign(const struct air_signer *s, const struct air_claims *c, uint8_t **ret, size_t *ret_len) {
	static const uint8_t prot[] = {0xa2, 0x01, 0x27, 0x03, 0x18, 0x3d}; /* {1: -8, 3: 61}, deterministic */
	_cleanup_free_ uint8_t *payload = NULL, *tbs = NULL;
	size_t payload_len, tbs_len;
	uint8_t sig[64];
	int r;

	if (!s || !c || !ret || !ret_len)
		return -EINVAL;
	if (!c->iss || !c->model_id || !c->model_version || !c->policy_version || !c->security_mode ||
	    !known_platform(c->measurement_type) || all_zero(c->model_hash, 32) || all_zero(c->cti, 16) ||
	    (c->nonce_len && !c->nonce) || (c->model_hash_scheme && !known_scheme(c->model_hash_scheme)))
		return -EINVAL;
	if (!c->has_pcr[0] || !c->has_pcr[1] || !c->has_pcr[2] ||
	    (c->has_pcr[5] && strcmp(c->measurement_type, AIR_PLATFORM_TDX) == 0))
		return -EINVAL;

	r = claims_payload(c, &payload, &payload_len);
	if (r < 0)
		return r;
	r = sig_structure(prot, sizeof prot, payload, payload_len, &tbs, &tbs_len);
	if (r < 0)
		return r;
	ed25519_sha512_sign(s->pk, s->sk, tbs_len, tbs, sig);

	/* 18([bstr prot, {}, bstr payload, bstr sig]) */
	uint8_t hp[9];
	size_t np = ecbor_write_head(hp, 2, payload_len);
	size_t total = 2 + 1 + sizeof prot + 1 + np + payload_len + 2 + 64;
	uint8_t *out = malloc(total), *p = out;
	if (!out)
		return -ENOMEM;
	*p++ = 0xd2, *p++ = 0x84;
	*p++ = 0x40 | sizeof prot;
	memcpy(p, prot, sizeof prot), p += sizeof prot;
	*p++ = 0xa0;
	memcpy(p, hp, np), p += np;
	memcpy(p, payload, payload_len), p += payload_len;
	*p++ = 0x58, *p++ = 64;
	memcpy(p, sig, 64);
	*ret = out;
	*ret_len = total;
	return 0;
}

/* ---- verify --------------------------------------------------------------------------------------------- */

struct parsed {
	const uint8_t *prot;
	size_t prot_len;
	const uint8_t *payload;
	size_t payload_len;
	const uint8_t *sig;
	size_t sig_len;
	cbor_item_t *claims; /* the payload map */
};

static int layer1(const uint8_t *receipt, size_t len, cbor_item_t **top, struct parsed *p,
		  struct air_result *res) {
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	int r;

	lim.max_size = AIR_RECEIPT_MAX, lim.max_depth = 4, lim.max_items = 64, lim.max_string = AIR_RECEIPT_MAX;
	r = ecbor_decode(receipt, len, &lim, top);
	if (r == -ENOMEM)
		return fail(res, AIR_INTERNAL_ERROR, "COSE_DECODE", NULL, "out of memory");
	if (r < 0)
		return fail(res, AIR_COSE_DECODE_FAILED, "COSE_DECODE", NULL, "not CBOR AIR accepts: %s",
			    ecbor_strerror(r));
	if (!cbor_isa_tag(*top) || cbor_tag_value(*top) != COSE_TAG_SIGN1)
		return fail(res, AIR_COSE_DECODE_FAILED, "COSE_DECODE", NULL, "not a tagged COSE_Sign1 (tag 18)");
	_cleanup_cbor_ cbor_item_t *arr = cbor_tag_item(*top);
	if (!cbor_isa_array(arr) || cbor_array_size(arr) != 4)
		return fail(res, AIR_COSE_DECODE_FAILED, "COSE_DECODE", NULL, "COSE_Sign1 is not an array of 4");
	cbor_item_t **it = cbor_array_handle(arr);
	if (ecbor_get_bstr(it[0], &p->prot, &p->prot_len) < 0)
		return fail(res, AIR_COSE_DECODE_FAILED, "COSE_DECODE", NULL, "protected header is not a bstr");
	if (!cbor_isa_map(it[1]))
		return fail(res, AIR_COSE_DECODE_FAILED, "COSE_DECODE", NULL, "unprotected header is not a map");
	if (ecbor_get_bstr(it[3], &p->sig, &p->sig_len) < 0)
		return fail(res, AIR_COSE_DECODE_FAILED, "COSE_DECODE", NULL, "signature is not a bstr");
	bool nil_payload = ecbor_is_null(it[2]);
	if (!nil_payload && ecbor_get_bstr(it[2], &p->payload, &p->payload_len) < 0)
		return fail(res, AIR_COSE_DECODE_FAILED, "COSE_DECODE", NULL, "payload is neither bstr nor nil");

	/* Protected header: exactly {1: -8, 3: 61}. */
	struct ecbor_limits hl = ECBOR_LIMITS_DEFAULT;
	hl.max_size = 256, hl.max_depth = 2, hl.max_items = 32;
	_cleanup_cbor_ cbor_item_t *hdr = NULL;
	r = ecbor_decode(p->prot, p->prot_len, &hl, &hdr);
	if (r < 0 || !cbor_isa_map(hdr))
		return fail(res, AIR_COSE_DECODE_FAILED, "COSE_DECODE", NULL, "protected header is not a CBOR map");
	int64_t alg, ct;
	if (ecbor_get_int(ecbor_map_get_int(hdr, COSE_HDR_ALG), &alg) < 0)
		return fail(res, AIR_BAD_ALG, "ALG", NULL, "protected header has no integer alg");
	if (alg != COSE_ALG_EDDSA)
		return fail(res, AIR_BAD_ALG, "ALG", NULL, "alg is %lld, expected EdDSA (-8)", (long long)alg);
	if (ecbor_get_int(ecbor_map_get_int(hdr, COSE_HDR_CONTENT_TYPE), &ct) < 0 || ct != COAP_CT_CWT)
		return fail(res, AIR_BAD_CONTENT_TYPE, "CONTENT_TYPE", NULL,
			    "content type is missing or not application/cwt (61)");
	if (cbor_map_size(hdr) != 2)
		return fail(res, AIR_COSE_DECODE_FAILED, "COSE_DECODE", NULL, "unexpected protected header parameters");
	if (cbor_map_size(it[1]) != 0)
		return fail(res, AIR_COSE_DECODE_FAILED, "COSE_DECODE", NULL, "AIR v1 forbids unprotected headers");

	if (nil_payload || p->payload_len == 0)
		return fail(res, AIR_MISSING_PAYLOAD, "PAYLOAD", NULL, "payload missing or empty");
	struct ecbor_limits pl = ECBOR_LIMITS_DEFAULT;
	pl.max_size = AIR_RECEIPT_MAX, pl.max_depth = 2, pl.max_items = 128, pl.deterministic = true;
	r = ecbor_decode(p->payload, p->payload_len, &pl, &p->claims);
	if (r == -ENOMEM)
		return fail(res, AIR_INTERNAL_ERROR, "CLAIMS_DECODE", NULL, "out of memory");
	if (r < 0)
		return fail(res, AIR_PAYLOAD_NOT_MAP, "CLAIMS_DECODE", NULL,
			    "payload is not deterministic CBOR: %s", ecbor_strerror(r));
	if (!cbor_isa_map(p->claims))
		return fail(res, AIR_PAYLOAD_NOT_MAP, "CLAIMS_DECODE", NULL, "payload is not a map");
	if (!ecbor_tstr_equal(ecbor_map_get_int(p->claims, CLAIM_PROFILE), AIR_EAT_PROFILE))
		return fail(res, AIR_WRONG_PROFILE, "EAT_PROFILE", NULL, "eat_profile is missing or not AIR v1");
	return 0;
}

static int layer2(const struct parsed *p, const uint8_t pk[32], struct air_result *res) {
	_cleanup_free_ uint8_t *tbs = NULL;
	size_t tbs_len;
	if (p->sig_len != 64)
		return fail(res, AIR_BAD_SIG_LENGTH, "SIG", NULL, "signature is %zu bytes, expected 64", p->sig_len);
	if (sig_structure(p->prot, p->prot_len, p->payload, p->payload_len, &tbs, &tbs_len) < 0)
		return fail(res, AIR_INTERNAL_ERROR, "SIG", NULL, "out of memory");
	if (!ed25519_sha512_verify(pk, tbs_len, tbs, p->sig))
		return fail(res, AIR_SIG_FAILED, "SIG", NULL, "Ed25519 signature does not verify with this key");
	return 0;
}

/* Text claim into a new C string. */
static int get_text(const cbor_item_t *m, int64_t key, const char *name, char **ret, struct air_result *res) {
	cbor_item_t *v = ecbor_map_get_int(m, key);
	if (!v)
		return fail(res, AIR_MISSING_CLAIM, "CLAIMS", name, "claim %s is missing", name);
	int r = ecbor_get_tstr_dup(v, ret);
	if (r == -ENOMEM)
		return fail(res, AIR_INTERNAL_ERROR, "CLAIMS", NULL, "out of memory");
	if (r < 0)
		return fail(res, AIR_WRONG_TYPE, "CLAIMS", name, "claim %s is not a text string", name);
	return 0;
}

static int get_uint(const cbor_item_t *m, int64_t key, const char *name, uint64_t *ret, struct air_result *res) {
	cbor_item_t *v = ecbor_map_get_int(m, key);
	if (!v)
		return fail(res, AIR_MISSING_CLAIM, "CLAIMS", name, "claim %s is missing", name);
	if (ecbor_get_uint(v, ret) < 0)
		return fail(res, AIR_WRONG_TYPE, "CLAIMS", name, "claim %s is not an unsigned integer", name);
	return 0;
}

static int get_hash(const cbor_item_t *m, int64_t key, const char *name, uint8_t out[32], struct air_result *res) {
	cbor_item_t *v = ecbor_map_get_int(m, key);
	const uint8_t *b;
	size_t n;
	if (!v)
		return fail(res, AIR_MISSING_CLAIM, "CLAIMS", name, "claim %s is missing", name);
	if (ecbor_get_bstr(v, &b, &n) < 0)
		return fail(res, AIR_WRONG_TYPE, "CLAIMS", name, "claim %s is not a byte string", name);
	if (n != 32)
		return fail(res, AIR_BAD_HASH_LENGTH, "CLAIMS", name, "%s is %zu bytes, expected 32 (SHA-256)", name, n);
	memcpy(out, b, 32);
	return 0;
}

static bool claim_known(int64_t k) {
	static const int64_t known[] = {CLAIM_ISS, CLAIM_IAT, CLAIM_CTI, CLAIM_NONCE, CLAIM_PROFILE};
	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		if (k == known[i])
			return true;
	return k <= CLAIM_MODEL_ID && k >= CLAIM_MODEL_HASH_SCHEME;
}

static int measurements(const cbor_item_t *m, struct air_claims *c, struct air_result *res) {
	cbor_item_t *meas = ecbor_map_get_int(m, CLAIM_MEASUREMENTS);
	if (!meas)
		return fail(res, AIR_MISSING_CLAIM, "MEAS", "enclave_measurements", "claim enclave_measurements is missing");
	if (!cbor_isa_map(meas))
		return fail(res, AIR_WRONG_TYPE, "MEAS", "enclave_measurements", "enclave_measurements is not a map");
	/* Lengths first (the MEAS check), then the type (MTYPE), as AIR orders them. */
	size_t n = cbor_map_size(meas);
	struct cbor_pair *pairs = cbor_map_handle(meas);
	for (size_t i = 0; i < n; i++) {
		const char *k;
		size_t kl;
		if (ecbor_get_tstr(pairs[i].key, &k, &kl) < 0)
			return fail(res, AIR_WRONG_TYPE, "MEAS", "enclave_measurements",
				    "enclave_measurements has a non-text key");
		if (kl == strlen("measurement_type") && memcmp(k, "measurement_type", kl) == 0)
			continue;
		size_t slot = AIR_PCR_SLOTS;
		for (size_t s = 0; s < AIR_PCR_SLOTS; s++)
			if (kl == 4 && memcmp(k, pcr_names[s], 4) == 0)
				slot = s;
		if (slot == AIR_PCR_SLOTS) {
			char name[32];
			snprintf(name, sizeof name, "%.*s", (int)MIN(kl, sizeof name - 1), k);
			return fail(res, AIR_UNKNOWN_CLAIM, "MEAS", name, "unknown measurement %s", name);
		}
		const uint8_t *b;
		size_t bl;
		if (ecbor_get_bstr(pairs[i].value, &b, &bl) < 0)
			return fail(res, AIR_WRONG_TYPE, "MEAS", pcr_names[slot], "%s is not a byte string",
				    pcr_names[slot]);
		if (bl != 48)
			return fail(res, AIR_BAD_MEASUREMENT_LENGTH, "MEAS", NULL,
				    "%s is %zu bytes instead of 48 (SHA-384)", pcr_names[slot], bl);
		c->has_pcr[slot] = true;
		memcpy(c->pcr[slot], b, 48);
	}
	for (size_t s = 0; s < 3; s++)
		if (!c->has_pcr[s])
			return fail(res, AIR_MISSING_CLAIM, "MEAS", pcr_names[s], "measurement %s is missing", pcr_names[s]);
	cbor_item_t *t = ecbor_map_get_text(meas, "measurement_type");
	if (!t)
		return fail(res, AIR_MISSING_CLAIM, "MTYPE", "measurement_type", "measurement_type is missing");
	int r = ecbor_get_tstr_dup(t, &c->measurement_type);
	if (r == -ENOMEM)
		return fail(res, AIR_INTERNAL_ERROR, "MTYPE", NULL, "out of memory");
	if (r < 0)
		return fail(res, AIR_WRONG_TYPE, "MTYPE", "measurement_type", "measurement_type is not text");
	if (!known_platform(c->measurement_type))
		return fail(res, AIR_UNKNOWN_MTYPE, "MTYPE", c->measurement_type, "unknown measurement_type");
	if (c->has_pcr[5] && strcmp(c->measurement_type, AIR_PLATFORM_TDX) == 0)
		return fail(res, AIR_UNKNOWN_CLAIM, "MEAS", "pcr8", "pcr8 is not a TDX measurement");
	return 0;
}

static int layer3(const cbor_item_t *m, struct air_claims *c, struct air_result *res) {
	const uint8_t *b;
	size_t n;
	int r;

	/* Closed map: anything the CDDL does not define is refused. */
	size_t count = cbor_map_size(m);
	struct cbor_pair *pairs = cbor_map_handle(m);
	for (size_t i = 0; i < count; i++) {
		int64_t k;
		if (ecbor_get_int(pairs[i].key, &k) < 0 || !claim_known(k)) {
			char name[24] = "non-integer";
			if (ecbor_get_int(pairs[i].key, &k) == 0)
				snprintf(name, sizeof name, "%lld", (long long)k);
			return fail(res, AIR_UNKNOWN_CLAIM, "CLAIMS", name, "claim key %s is not defined by AIR v1", name);
		}
	}

	if ((r = get_text(m, CLAIM_ISS, "iss", &c->iss, res)) < 0 ||
	    (r = get_uint(m, CLAIM_IAT, "iat", &c->iat, res)) < 0)
		return r;
	cbor_item_t *cti = ecbor_map_get_int(m, CLAIM_CTI);
	if (!cti)
		return fail(res, AIR_MISSING_CLAIM, "CTI", "cti", "claim cti is missing");
	if (ecbor_get_bstr(cti, &b, &n) < 0)
		return fail(res, AIR_WRONG_TYPE, "CTI", "cti", "claim cti is not a byte string");
	if (n != 16)
		return fail(res, AIR_BAD_CTI_LENGTH, "CTI", NULL, "cti is %zu bytes, expected 16", n);
	if (all_zero(b, 16))
		return fail(res, AIR_BAD_CTI_LENGTH, "CTI", NULL, "cti is all zeros");
	memcpy(c->cti, b, 16);
	cbor_item_t *nonce = ecbor_map_get_int(m, CLAIM_NONCE);
	if (nonce) {
		if (ecbor_get_bstr(nonce, &b, &n) < 0)
			return fail(res, AIR_WRONG_TYPE, "NONCE", "eat_nonce", "eat_nonce is not a byte string");
		c->nonce = malloc(n ? n : 1);
		if (!c->nonce)
			return fail(res, AIR_INTERNAL_ERROR, "NONCE", NULL, "out of memory");
		memcpy(c->nonce, b, n);
		c->nonce_len = n;
	}
	if ((r = get_text(m, CLAIM_MODEL_ID, "model_id", &c->model_id, res)) < 0 ||
	    (r = get_text(m, CLAIM_MODEL_VERSION, "model_version", &c->model_version, res)) < 0 ||
	    (r = get_hash(m, CLAIM_MODEL_HASH, "model_hash", c->model_hash, res)) < 0 ||
	    (r = get_hash(m, CLAIM_REQUEST_HASH, "request_hash", c->request_hash, res)) < 0 ||
	    (r = get_hash(m, CLAIM_RESPONSE_HASH, "response_hash", c->response_hash, res)) < 0 ||
	    (r = get_hash(m, CLAIM_ATTESTATION_DOC_HASH, "attestation_doc_hash", c->attestation_doc_hash, res)) < 0 ||
	    (r = get_text(m, CLAIM_POLICY_VERSION, "policy_version", &c->policy_version, res)) < 0 ||
	    (r = get_uint(m, CLAIM_SEQUENCE, "sequence_number", &c->sequence_number, res)) < 0 ||
	    (r = get_uint(m, CLAIM_EXECUTION_TIME, "execution_time_ms", &c->execution_time_ms, res)) < 0 ||
	    (r = get_uint(m, CLAIM_MEMORY_PEAK, "memory_peak_mb", &c->memory_peak_mb, res)) < 0 ||
	    (r = get_text(m, CLAIM_SECURITY_MODE, "security_mode", &c->security_mode, res)) < 0)
		return r;
	if (all_zero(c->model_hash, 32))
		return fail(res, AIR_ZERO_MODEL_HASH, "MHASH_PRESENT", NULL, "model_hash is all zeros");
	r = measurements(m, c, res);
	if (r < 0)
		return r;
	if (ecbor_map_get_int(m, CLAIM_MODEL_HASH_SCHEME)) {
		r = get_text(m, CLAIM_MODEL_HASH_SCHEME, "model_hash_scheme", &c->model_hash_scheme, res);
		if (r < 0)
			return r;
		if (!known_scheme(c->model_hash_scheme))
			return fail(res, AIR_UNKNOWN_HASH_SCHEME, "MHASH_SCHEME", c->model_hash_scheme,
				    "unknown model_hash_scheme");
	}
	return 0;
}

static int layer4(const struct air_claims *c, const struct air_policy *pol, struct air_result *res) {
	if (!pol)
		return 0;
	if (pol->max_age) {
		uint64_t now = pol->now ? pol->now : now_realtime_usec() / 1000000;
		if (c->iat > now && c->iat - now > pol->clock_skew)
			return fail(res, AIR_TIMESTAMP_FUTURE, "FRESH", NULL, "iat is %llu s in the future",
				    (unsigned long long)(c->iat - now));
		if (now > c->iat && now - c->iat > pol->max_age)
			return fail(res, AIR_TIMESTAMP_STALE, "FRESH", NULL, "receipt is %llu s old (max %llu s)",
				    (unsigned long long)(now - c->iat), (unsigned long long)pol->max_age);
	}
	if (pol->model_hash && CRYPTO_memcmp(pol->model_hash, c->model_hash, 32) != 0)
		return fail(res, AIR_MODEL_HASH_MISMATCH, "MHASH", NULL, "model_hash differs from the expected one");
	if (pol->model_id && strcmp(pol->model_id, c->model_id) != 0)
		return fail(res, AIR_MODEL_ID_MISMATCH, "MODEL", NULL, "model_id differs from the expected one");
	if (pol->platform && strcmp(pol->platform, c->measurement_type) != 0)
		return fail(res, AIR_PLATFORM_MISMATCH, "MTYPE", NULL, "measurement_type is %s, expected %s",
			    c->measurement_type, known_platform(pol->platform) ? pol->platform : "another");
	if ((pol->nonce || pol->require_nonce) && !c->nonce)
		return fail(res, AIR_NONCE_MISSING, "NONCE", NULL, "receipt carries no eat_nonce");
	if (pol->nonce && (pol->nonce_len != c->nonce_len || CRYPTO_memcmp(pol->nonce, c->nonce, c->nonce_len) != 0))
		return fail(res, AIR_NONCE_MISMATCH, "NONCE", NULL, "eat_nonce differs from the challenge");
	return 0;
}

int air_verify(const uint8_t *receipt, size_t len, const uint8_t pk[32], const struct air_policy *policy,
	       struct air_claims *ret_claims, struct air_result *ret_result) {
	struct air_result dummy;
	struct air_result *res = ret_result ? ret_result : &dummy;
	_cleanup_cbor_ cbor_item_t *top = NULL;
	struct parsed p = {0};
	struct air_claims c = {0};
	int r;

	memset(res, 0, sizeof *res);
	if (ret_claims)
		memset(ret_claims, 0, sizeof *ret_claims);
	if (!receipt || !pk)
		return fail(res, AIR_COSE_DECODE_FAILED, "COSE_DECODE", NULL, "no receipt or key");

	r = layer1(receipt, len, &top, &p, res);
	if (r >= 0)
		r = layer2(&p, pk, res);
	if (r >= 0)
		r = layer3(p.claims, &c, res);
	if (r >= 0)
		r = layer4(&c, policy, res);
	ecbor_unrefp(&p.claims);
	if (r >= 0) {
		snprintf(res->full, sizeof res->full, "OK");
		snprintf(res->check, sizeof res->check, "ALL");
	}
	if (ret_claims && (r >= 0 || res->layer == 4)) {
		*ret_claims = c;
		return r;
	}
	air_claims_done(&c);
	return r;
}
