/* Tests for session-verify.c and session-io.c: whole sessions over a socket pair, the server in a thread
 * attesting with documents in the real NSM format signed by a development CA (lib/devca, as eml-nsm-sim does),
 * the client judging them with a policy (lib/policy) through session_verify_nitro. Checks that a matching
 * policy opens the session and requests round-trip, and that another PCR0, another root, a model the policy
 * does not list, a stale document and a document for another nonce are each refused with their own code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "attest.h"
#include "cose.h"
#include "air.h"
#include "cbor.h"
#include "devca.h"
#include "eml_client.h"
#include "socket.h"
#include "macro.h"
#include "policy.h"
#include "session-io.h"
#include "session-verify.h"
#include "session.h"
#include "util.h"

static char cadir[64];
static DevCa *ca;
static EVP_PKEY *leaf_key;
static uint8_t *leaf_der;
static size_t leaf_len;

#define PCR_HEX(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

static int setup(void **state) {
	strcpy(cadir, "/tmp/test-session-verify-XXXXXX");
	if (!mkdtemp(cadir)) return -1;
	char d[96];
	snprintf(d, sizeof d, "%s/ca", cadir);
	/* Certificates valid since a while ago, so that a document may claim to be minutes old. */
	time_t now = time(NULL);
	if (devca_init(d, 2, now - 3600) < 0 || devca_load(d, &ca) < 0) return -1;
	return devca_issue_leaf(ca, "i-test-enc0123456789", now - 600, &leaf_key, &leaf_der, &leaf_len) < 0 ? -1 : 0;
}

static int teardown(void **state) {
	EVP_PKEY_free(leaf_key);
	OPENSSL_free(leaf_der);
	devca_free(ca);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", cadir);
	return system(cmd) == 0 ? 0 : -1;
}

struct enclave {
	uint8_t pcr0;          /* every byte of PCR0 */
	int64_t age_ms;        /* how old the document claims to be */
	bool wrong_nonce;
	bool with_model;
	uint8_t model_byte;
};

/* An NSM-format document signed by the dev CA's leaf (what eml-nsm-sim returns). */
static int make_doc(void *userdata, const uint8_t *nonce, size_t nonce_len, const uint8_t *pk, size_t pk_len,
		    const uint8_t *ud, size_t ud_len, uint8_t **ret, size_t *ret_len) {
	const struct enclave *e = userdata;
	static uint8_t pcrs[16][ATTEST_PCR_LEN];
	memset(pcrs, 0, sizeof pcrs);
	memset(pcrs[0], e->pcr0, ATTEST_PCR_LEN);
	uint8_t other[32];
	memcpy(other, nonce, 32);
	other[0] ^= 1;
	const struct x509_der *bundle;
	size_t nb = devca_bundle(ca, &bundle);
	struct attest_payload p = {
		.module_id = "i-test-enc0123456789",
		.timestamp_ms = now_realtime_usec() / 1000 - (uint64_t)e->age_ms,
		.pcr_mask = 0xffff,
		.pcrs = (const uint8_t(*)[ATTEST_PCR_LEN])pcrs,
		.certificate = {leaf_der, leaf_len},
		.cabundle = bundle,
		.n_cabundle = nb,
		.public_key = pk, .public_key_len = pk_len,
		.user_data = ud, .user_data_len = ud_len,
		.nonce = e->wrong_nonce ? other : nonce, .nonce_len = nonce_len,
	};
	_cleanup_free_ uint8_t *payload = NULL;
	size_t n;
	int r = attest_payload_encode(&p, &payload, &n);
	return r < 0 ? r : cose_sign1_sign(COSE_ALG_ES384, leaf_key, payload, n, NULL, 0, false, ret, ret_len);
}

static int echo_upper(void *userdata, uint32_t seq, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) {
	uint8_t *o = malloc(len + 1);
	if (!o) return -ENOMEM;
	for (size_t i = 0; i < len; i++) o[i] = (uint8_t)(req[i] >= 'a' && req[i] <= 'z' ? req[i] - 32 : req[i]);
	*ret = o, *ret_len = len;
	return 0;
}

struct server_thread {
	int fd;
	struct enclave e;
	int result;
};

static void *serve(void *arg) {
	struct server_thread *t = arg;
	SessionServerConfig cfg = {.make_attestation = make_doc, .userdata = &t->e};
	memset(cfg.user_data.receipt_key, 0x33, 32);
	cfg.user_data.has_model = t->e.with_model;
	memset(cfg.user_data.model_hash, t->e.model_byte, 32);
	SessionServer *s = NULL;
	t->result = session_server_new(&cfg, now_monotonic_usec(), &s);
	if (t->result == 0) t->result = session_server_serve_fd(s, t->fd, echo_upper, NULL);
	session_server_free(s);
	close(t->fd);
	return NULL;
}

static Policy *policy(const char *pcr0_hex, const char *extra) {
	char json[1024];
	snprintf(json, sizeof json, "{\"name\": \"dev\", \"pcrs\": {\"0\": [\"%s\"]}, \"max_age_s\": 60%s}", pcr0_hex,
		 extra);
	Policy *p = NULL;
	char reason[256];
	int r = policy_from_json(json, strlen(json), cadir, 0, &p, reason, sizeof reason);
	if (r < 0) fail_msg("policy: %s", reason);
	return p;
}

/* Run a session against an enclave; returns the client's status code and copies its message. */
static SessionError run(const Policy *pol, struct enclave e, char *msg, size_t msg_size) {
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct server_thread t = {.fd = sv[1], .e = e};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, serve, &t), 0);

	_cleanup_session_verifier_ SessionVerifier *v = NULL;
	assert_int_equal(session_verifier_new(pol, &v), 0);
	SessionClientConfig cc = {.verify_attestation = session_verify_nitro, .userdata = v};
	_cleanup_session_client_ SessionClient *c = NULL;
	assert_int_equal(session_client_new(&cc, now_monotonic_usec(), &c), 0);
	SessionError result = SESSION_OK;
	if (session_client_handshake_fd(c, sv[0]) == 0) {
		assert_non_null(session_verifier_doc(v));
		assert_int_equal(session_verifier_doc(v)->pcrs[0][0], e.pcr0);
		assert_memory_equal(session_client_peer(c)->receipt_key, (uint8_t[32]){[0 ... 31] = 0x33}, 32);
		for (int i = 0; i < 3; i++) {
			uint8_t *resp;
			size_t n;
			assert_int_equal(session_client_call_fd(c, sv[0], "hello enclave", 13, &resp, &n), 0);
			assert_int_equal(n, 13);
			assert_memory_equal(resp, "HELLO ENCLAVE", 13);
			free_secret(resp, n);
		}
		assert_int_equal(session_client_close_fd(c, sv[0]), 0);
	} else {
		result = session_client_status(c)->error;
		snprintf(msg, msg_size, "%s", session_client_status(c)->message);
	}
	close(sv[0]);
	assert_int_equal(pthread_join(th, NULL), 0);
	if (result == SESSION_OK) assert_int_equal(t.result, 0); /* the server saw a clean CLOSE */
	else assert_true(t.result < 0);
	return result;
}

static void test_accepted(void **state) {
	_cleanup_policy_ Policy *p = policy(PCR_HEX("5a"), ", \"roots\": [\"@ca/root.pem\"]");
	char msg[300];
	assert_int_equal(run(p, (struct enclave){.pcr0 = 0x5a}, msg, sizeof msg), SESSION_OK);
	/* The model list: a listed model passes. */
	_cleanup_policy_ Policy *pm = policy(PCR_HEX("5a"), ", \"roots\": [\"@ca/root.pem\"], \"models\": [\""
					    "7777777777777777777777777777777777777777777777777777777777777777\"]");
	assert_int_equal(run(pm, (struct enclave){.pcr0 = 0x5a, .with_model = true, .model_byte = 0x77}, msg, sizeof msg),
			 SESSION_OK);
}

static void expect_refusal(const Policy *p, struct enclave e, const char *code) {
	char msg[300] = "";
	assert_int_equal(run(p, e, msg, sizeof msg), SESSION_ATTEST_FAILED);
	if (!strstr(msg, code)) fail_msg("expected %s in \"%s\"", code, msg);
}

static void test_refused(void **state) {
	_cleanup_policy_ Policy *p = policy(PCR_HEX("5a"), ", \"roots\": [\"@ca/root.pem\"]");
	expect_refusal(p, (struct enclave){.pcr0 = 0x5b}, "PCR_NOT_ALLOWED");
	expect_refusal(p, (struct enclave){.pcr0 = 0x5a, .wrong_nonce = true}, "NONCE_MISMATCH");
	expect_refusal(p, (struct enclave){.pcr0 = 0x5a, .age_ms = 120000}, "STALE");
	_cleanup_policy_ Policy *aws = policy(PCR_HEX("5a"), "");
	expect_refusal(aws, (struct enclave){.pcr0 = 0x5a}, "UNKNOWN_ROOT");
	_cleanup_policy_ Policy *pm = policy(PCR_HEX("5a"), ", \"roots\": [\"aws-nitro-g1\", \"@ca/root.pem\"], \"models\": [\""
					    "7777777777777777777777777777777777777777777777777777777777777777\"]");
	expect_refusal(pm, (struct enclave){.pcr0 = 0x5a, .with_model = true, .model_byte = 0x78}, "MODEL_NOT_ALLOWED");
	expect_refusal(pm, (struct enclave){.pcr0 = 0x5a}, "MODEL_NOT_ALLOWED");
}

/* A silent enclave: the blocking driver gives up at the handshake deadline instead of hanging. */
static void test_silent_peer_times_out(void **state) {
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	SessionClientConfig cc = {.verify_attestation = session_verify_nitro, .limits.handshake_timeout_usec = 200000};
	_cleanup_session_client_ SessionClient *c = NULL;
	uint64_t t0 = now_monotonic_usec();
	assert_int_equal(session_client_new(&cc, t0, &c), 0);
	assert_int_equal(session_client_handshake_fd(c, sv[0]), -ETIMEDOUT);
	uint64_t took = now_monotonic_usec() - t0;
	assert_true(took >= 200000 && took < 5000000);
	assert_int_equal(session_client_status(c)->error, SESSION_TIMEOUT);
	/* What the enclave side received: HELLO, then ERROR TIMEOUT. */
	uint8_t buf[512];
	ssize_t n = read(sv[1], buf, sizeof buf);
	assert_true(n > 24);
	assert_int_equal(buf[3], 1); /* HELLO */
	size_t hello_len = 12 + ((size_t)buf[10] << 8 | buf[11]);
	assert_true((size_t)n > hello_len + 12);
	assert_int_equal(buf[hello_len + 3], 5); /* ERROR */
	assert_non_null(memmem(buf + hello_len, (size_t)n - hello_len, "TIMEOUT", 7));
	close(sv[0]);
	close(sv[1]);
}

/* ---- eml_client against an enclave stand-in on a unix socket ---------------------------------------- */

static const uint8_t receipt_seed[32] = "receipt key seed for the tests!";

struct embed_server {
	int listen_fd;
	struct enclave e;
	SessionServer *s;
	bool bad_pcr;       /* the receipt claims another PCR0 than the attested one */
	bool wrong_key;     /* the receipt is signed by a key that was not attested */
	int result;
};

/* Answers {"op": "embed", "inputs": [...]} with vectors [len(text), i] and a receipt. */
static int embed_handler(void *userdata, uint32_t seq, const uint8_t *req, size_t len, uint8_t **ret,
			 size_t *ret_len) {
	struct embed_server *t = userdata;
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	lim.deterministic = true;
	_cleanup_cbor_ cbor_item_t *m = NULL;
	if (ecbor_decode(req, len, &lim, &m) < 0 || !ecbor_tstr_equal(ecbor_map_get_text(m, "op"), "embed")) return -EBADMSG;
	cbor_item_t *in = ecbor_map_get_text(m, "inputs");
	if (!in || !cbor_isa_array(in)) return -EBADMSG;
	size_t n = cbor_array_size(in);
	float v[16][2];
	for (size_t i = 0; i < n && i < 16; i++) {
		const char *txt;
		size_t tl;
		if (ecbor_get_tstr(cbor_array_handle(in)[i], &txt, &tl) < 0) return -EBADMSG;
		v[i][0] = (float)tl, v[i][1] = (float)i + 0.5f;
	}
	struct air_claims c = {
		.iss = "test-enclave", .iat = now_realtime_usec() / 1000000, .model_id = "minilm", .model_version = "1",
		.measurement_type = AIR_PLATFORM_NITRO, .policy_version = "p1", .security_mode = "GatewayOnly",
		.sequence_number = seq,
	};
	memset(c.model_hash, t->e.model_byte ? t->e.model_byte : 1, 32);
	memset(c.cti, 0xc7, 16);
	memcpy(c.attestation_doc_hash, session_server_doc_sha256(t->s), 32);
	c.has_pcr[0] = c.has_pcr[1] = c.has_pcr[2] = true;
	memset(c.pcr[0], t->bad_pcr ? 0x11 : t->e.pcr0, 48);
	uint8_t seed[32];
	memcpy(seed, receipt_seed, 32);
	seed[0] ^= t->wrong_key;
	_cleanup_free_ uint8_t *receipt = NULL;
	size_t rl;
	int r = air_sign(&c, seed, &receipt, &rl);
	return r < 0 ? r : eml_embed_response_encode(&v[0][0], n, 2, receipt, rl, ret, ret_len);
}

static void *serve_embed(void *arg) {
	struct embed_server *t = arg;
	int fd = accept4(t->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		t->result = -errno;
		return NULL;
	}
	SessionServerConfig cfg = {.make_attestation = make_doc, .userdata = &t->e};
	assert_int_equal(air_public_key(receipt_seed, cfg.user_data.receipt_key), 0);
	cfg.user_data.has_model = true;
	memset(cfg.user_data.model_hash, t->e.model_byte ? t->e.model_byte : 1, 32);
	t->result = session_server_new(&cfg, now_monotonic_usec(), &t->s);
	if (t->result == 0) t->result = session_server_serve_fd(t->s, fd, embed_handler, t);
	t->s = session_server_free(t->s);
	close(fd);
	return NULL;
}

static int embed_once(struct embed_server *t, const Policy *p, EmlEmbedding **ret, char *reason, size_t size) {
	char path[128], endpoint[140];
	snprintf(path, sizeof path, "%s/enclave.sock", cadir);
	snprintf(endpoint, sizeof endpoint, "unix:%s", path);
	struct eml_addr a;
	assert_int_equal(addr_parse(endpoint, &a), 0);
	assert_int_equal(socket_listen(&a, 4, &t->listen_fd), 0);
	assert_int_equal(fd_set_nonblock(t->listen_fd, 0), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, serve_embed, t), 0);
	EmlClientOptions o = {.endpoint = endpoint, .policy = p};
	_cleanup_eml_client_ EmlClient *c = NULL;
	int r = eml_client_connect(&o, &c, reason, size);
	if (r == 0) {
		assert_int_equal(eml_client_attestation(c)->pcrs[0][0], t->e.pcr0);
		const char *texts[] = {"a", "bb", "ccc"};
		r = eml_client_embed(c, texts, 3, ret, reason, size);
		c = eml_client_free(c);
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	close(t->listen_fd);
	unlink(path);
	return r;
}

static void test_eml_client(void **state) {
	_cleanup_policy_ Policy *p = policy(PCR_HEX("5a"), ", \"roots\": [\"@ca/root.pem\"]");
	char reason[300] = "";
	EmlEmbedding *e = NULL;
	struct embed_server t = {.e = {.pcr0 = 0x5a}};
	if (embed_once(&t, p, &e, reason, sizeof reason) < 0) fail_msg("embed: %s", reason);
	assert_int_equal(t.result, 0); /* the enclave saw a clean CLOSE */
	assert_int_equal(e->n, 3);
	assert_int_equal(e->dim, 2);
	for (int i = 0; i < 3; i++) {
		assert_true(e->vectors[i * 2] == (float)(i + 1));
		assert_true(e->vectors[i * 2 + 1] == (float)i + 0.5f);
	}
	assert_true(e->receipt_bound);
	assert_string_equal(e->claims.model_id, "minilm");
	assert_int_equal(e->claims.sequence_number, 0);
	eml_embedding_free(e);

	struct embed_server bad = {.e = {.pcr0 = 0x5a}, .bad_pcr = true};
	assert_true(embed_once(&bad, p, &e, reason, sizeof reason) < 0);
	assert_non_null(strstr(reason, "RECEIPT: PCR0"));
	struct embed_server forged = {.e = {.pcr0 = 0x5a}, .wrong_key = true};
	assert_true(embed_once(&forged, p, &e, reason, sizeof reason) < 0);
	assert_non_null(strstr(reason, "RECEIPT: SIG_FAILED"));
	struct embed_server other = {.e = {.pcr0 = 0x5b}};
	assert_true(embed_once(&other, p, &e, reason, sizeof reason) < 0);
	assert_non_null(strstr(reason, "ATTEST_FAILED"));
	assert_non_null(strstr(reason, "PCR_NOT_ALLOWED"));
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_silent_peer_times_out),
		cmocka_unit_test(test_eml_client),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
