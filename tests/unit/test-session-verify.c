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
#include "devca.h"
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

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
