/* Tests for kmsclient.c against a scripted relay on a unix socket (a thread of this test): answers opened
 * with the client's key, AWS error mapping, retries of throttling, refusal of a Plaintext, relay errors,
 * timeouts and out-of-step answers. The "attestation document" here is just the client's public key, which
 * the scripted relay uses to build CiphertextForRecipient with OpenSSL's CMS (cms_build_for_recipient). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <json-c/json.h>
#include <openssl/x509.h>

#include "base64.h"
#include "cms.h"
#include "frame.h"
#include "kmsclient.h"
#include "kmsproto.h"
#include "macro.h"
#include "util.h"

enum step { OK_CFR, OK_PLAINTEXT, THROTTLE, DENIED, REFUSED, SILENT, WRONG_SEQ, INTERNAL_500 };

struct script {
	int listen_fd;
	enum step steps[8];
	int n_steps;
	int requests;
	char last_target[64];
	bool had_recipient;
};

static const uint8_t SECRET[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static void answer(int fd, uint32_t seq, enum step s, const char *doc_b64) {
	uint8_t *p = NULL;
	size_t n = 0;
	char body[16384];
	switch (s) {
	case OK_CFR:
	case OK_PLAINTEXT: {
		uint8_t *spki, *cms;
		size_t sl, cl;
		char *cms64, *blob64;
		assert_int_equal(base64_decode(doc_b64, 4096, &spki, &sl), 0);
		const uint8_t *q = spki;
		EVP_PKEY *pub = d2i_PUBKEY(NULL, &q, (long)sl);
		assert_non_null(pub);
		assert_int_equal(cms_build_for_recipient(pub, SECRET, sizeof SECRET, &cms, &cl), 0);
		assert_int_equal(base64_encode(cms, cl, &cms64), 0);
		assert_int_equal(base64_encode((const uint8_t *)"blob", 4, &blob64), 0);
		snprintf(body, sizeof body, "{\"KeyId\":\"k\",\"CiphertextBlob\":\"%s\",\"CiphertextForRecipient\":\"%s\"%s}",
			 blob64, cms64, s == OK_PLAINTEXT ? ",\"Plaintext\":\"AAAA\"" : "");
		free(spki);
		free(cms);
		free(cms64);
		free(blob64);
		EVP_PKEY_free(pub);
		assert_int_equal(kmsproto_response_encode(200, body, strlen(body), &p, &n), 0);
		break;
	}
	case THROTTLE:
		snprintf(body, sizeof body, "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}");
		assert_int_equal(kmsproto_response_encode(400, body, strlen(body), &p, &n), 0);
		break;
	case DENIED:
		snprintf(body, sizeof body, "{\"__type\":\"AccessDeniedException\",\"message\":\"not authorized\"}");
		assert_int_equal(kmsproto_response_encode(400, body, strlen(body), &p, &n), 0);
		break;
	case INTERNAL_500:
		snprintf(body, sizeof body, "{\"__type\":\"KMSInternalException\",\"message\":\"boom\"}");
		assert_int_equal(kmsproto_response_encode(500, body, strlen(body), &p, &n), 0);
		break;
	case REFUSED:
		assert_int_equal(kmsproto_error_encode("Refused", "no Recipient", &p, &n), 0);
		frame_write(fd, FRAME_ERROR, seq, p, n);
		free(p);
		return;
	case SILENT: return;
	case WRONG_SEQ:
		snprintf(body, sizeof body, "{}");
		assert_int_equal(kmsproto_response_encode(200, body, 2, &p, &n), 0);
		frame_write(fd, FRAME_RESPONSE, seq + 1, p, n);
		free(p);
		return;
	}
	frame_write(fd, FRAME_RESPONSE, seq, p, n);
	free(p);
}

static void *relay_thread(void *arg) {
	struct script *s = arg;
	int fd = accept(s->listen_fd, NULL, NULL);
	for (int i = 0; fd >= 0 && i < s->n_steps; i++) {
		struct frame_header h;
		uint8_t *payload = NULL;
		if (frame_read(fd, KMSPROTO_MAX_PAYLOAD, &h, &payload) < 0) break;
		const char *target, *why;
		char *body = NULL;
		s->requests++;
		/* What the client sends must pass the real relay's admission check. */
		s->had_recipient = kmsproto_request_decode(payload, h.length, &target, &body, NULL, &why) == 0;
		char doc[8192] = "";
		if (s->had_recipient) {
			snprintf(s->last_target, sizeof s->last_target, "%s", target);
			json_object *o = json_tokener_parse(body), *r, *d;
			if (o && json_object_object_get_ex(o, "Recipient", &r) && json_object_object_get_ex(r, "AttestationDocument", &d))
				snprintf(doc, sizeof doc, "%s", json_object_get_string(d));
			json_object_put(o);
		}
		free(body);
		free(payload);
		answer(fd, h.seq, s->steps[i], doc);
		if (s->steps[i] == SILENT) {
			/* Hold the connection open until the client gives up. */
			char c;
			(void)!read(fd, &c, 1);
			break;
		}
	}
	if (fd >= 0) close(fd);
	return NULL;
}

/* The document is the SPKI itself (see the header comment). */
static int fake_attest(void *ud, const uint8_t *spki, size_t len, uint8_t **ret, size_t *ret_len) {
	*ret = malloc(len);
	memcpy(*ret, spki, len);
	*ret_len = len;
	return 0;
}

static int run(struct script *s, int op, uint64_t timeout_usec, uint8_t **ret, size_t *ret_len, struct kms_error *e) {
	char path[] = "/tmp/eml-kmsclient-XXXXXX";
	assert_non_null(mkdtemp(path));
	char sock[100], addr[160];
	snprintf(sock, sizeof sock, "%s/relay.sock", path);
	snprintf(addr, sizeof addr, "unix:%s", sock);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
	assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(s->listen_fd, 4), 0);
	pthread_t t;
	pthread_create(&t, NULL, relay_thread, s);
	struct kms_client_config cfg = {.relay = addr, .attest = fake_attest, .timeout_usec = timeout_usec,
					.retries = 3, .retries_set = 1};
	KmsClient *c;
	assert_int_equal(kms_client_new(&cfg, &c), 0);
	uint8_t blob[] = "blob";
	uint8_t *b = NULL;
	size_t bl;
	int r = op == 0   ? kms_client_decrypt(c, "k", blob, 4, "{\"a\":\"b\"}", ret, ret_len, e)
		: op == 1 ? kms_client_generate_data_key(c, "k", 32, NULL, ret, ret_len, &b, &bl, e)
			  : kms_client_generate_random(c, 32, ret, ret_len, e);
	if (r == 0 && op == 1) {
		assert_int_equal(bl, 4);
		assert_memory_equal(b, "blob", 4);
		free(b);
	}
	kms_client_free(c); /* closes the connection: a SILENT relay's read returns */
	pthread_join(t, NULL);
	close(s->listen_fd);
	unlink(sock);
	rmdir(path);
	return r;
}

static void test_success_paths(void **state) {
	for (int op = 0; op < 3; op++) {
		struct script s = {.steps = {OK_CFR}, .n_steps = 1};
		uint8_t *plain;
		size_t len;
		struct kms_error e = {};
		assert_int_equal(run(&s, op, 0, &plain, &len, &e), 0);
		assert_true(s.had_recipient);
		assert_int_equal(len, 32);
		assert_memory_equal(plain, SECRET, 32);
		free_secret(plain, len);
	}
}

static void test_errors(void **state) {
	uint8_t *plain = NULL;
	size_t len;
	struct kms_error e = {};
	struct script denied = {.steps = {DENIED}, .n_steps = 1};
	assert_int_equal(run(&denied, 0, 0, &plain, &len, &e), -EACCES);
	assert_string_equal(e.type, "AccessDeniedException");
	assert_string_equal(e.message, "not authorized");

	/* Throttled twice, then served: retried with backoff. */
	struct script throttled = {.steps = {THROTTLE, THROTTLE, OK_CFR}, .n_steps = 3};
	assert_int_equal(run(&throttled, 0, 0, &plain, &len, &e), 0);
	assert_int_equal(throttled.requests, 3);
	free_secret(plain, len);
	/* Throttled beyond the retries: -EBUSY after 1 + 3 attempts. */
	struct script always = {.steps = {THROTTLE, THROTTLE, THROTTLE, THROTTLE, OK_CFR}, .n_steps = 5};
	assert_int_equal(run(&always, 0, 0, &plain, &len, &e), -EBUSY);
	assert_int_equal(always.requests, 4);
	struct script five = {.steps = {INTERNAL_500, OK_CFR}, .n_steps = 2};
	assert_int_equal(run(&five, 0, 0, &plain, &len, &e), 0);
	free_secret(plain, len);

	/* A Plaintext in the answer means the host could have seen the key: refused. */
	struct script leaky = {.steps = {OK_PLAINTEXT}, .n_steps = 1};
	assert_int_equal(run(&leaky, 0, 0, &plain, &len, &e), -EPROTO);

	struct script refused = {.steps = {REFUSED}, .n_steps = 1};
	assert_int_equal(run(&refused, 0, 0, &plain, &len, &e), -ECONNREFUSED);
	assert_string_equal(e.type, "Refused");

	struct script silent = {.steps = {SILENT}, .n_steps = 1};
	uint64_t t0 = now_monotonic_usec();
	assert_int_equal(run(&silent, 2, 300000, &plain, &len, &e), -ETIMEDOUT);
	assert_true(now_monotonic_usec() - t0 < 3000000);

	struct script seq = {.steps = {WRONG_SEQ}, .n_steps = 1};
	assert_int_equal(run(&seq, 2, 0, &plain, &len, &e), -EPROTO);
}

static void test_error_map(void **state) {
	assert_int_equal(kms_error_from_type("AccessDeniedException"), -EACCES);
	assert_int_equal(kms_error_from_type("com.amazonaws.kms#InvalidCiphertextException"), -EBADMSG);
	assert_int_equal(kms_error_from_type("KMSInvalidStateException"), -EKEYEXPIRED);
	assert_int_equal(kms_error_from_type("NotFoundException"), -ENOENT);
	assert_int_equal(kms_error_from_type("ThrottlingException"), -EBUSY);
	assert_int_equal(kms_error_from_type("InvalidSignatureException"), -EPERM);
	assert_int_equal(kms_error_from_type("SomethingNew"), -EREMOTEIO);
	assert_int_equal(kms_error_from_type(NULL), -EREMOTEIO);
}

int main(void) {
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_success_paths), cmocka_unit_test(test_errors),
					   cmocka_unit_test(test_error_map)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
