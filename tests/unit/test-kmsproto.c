/* Tests for kmsproto.c: the relay's admission check and the frame payload codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kmsproto.h"
#include "macro.h"

#define REC "\"Recipient\":{\"KeyEncryptionAlgorithm\":\"RSAES_OAEP_SHA_256\",\"AttestationDocument\":\"AAAA\"}"

static int decode(const char *s, const char **target, char **body, char **key_id) {
	const char *why = NULL;
	int r = kmsproto_request_decode((const uint8_t *)s, strlen(s), target, body, key_id, &why);
	if (r < 0) assert_non_null(why);
	return r;
}

static void test_admission(void **state) {
	const char *t;
	char *body, *kid;
	assert_int_equal(decode("{\"target\":\"TrentService.Decrypt\",\"body\":{\"KeyId\":\"k1\"," REC "}}", &t, &body, &kid), 0);
	assert_string_equal(t, "TrentService.Decrypt");
	assert_string_equal(kid, "k1");
	assert_non_null(strstr(body, "RSAES_OAEP_SHA_256"));
	free(body);
	free(kid);
	assert_int_equal(decode("{\"target\":\"TrentService.GenerateRandom\",\"body\":{\"NumberOfBytes\":32," REC "}}", &t, &body, &kid), 0);
	assert_null(kid);
	free(body);

	/* No Recipient, a weaker algorithm, an empty document: refused. */
	assert_int_equal(decode("{\"target\":\"TrentService.Decrypt\",\"body\":{\"CiphertextBlob\":\"AA==\"}}", &t, &body, NULL), -EACCES);
	assert_int_equal(decode("{\"target\":\"TrentService.Decrypt\",\"body\":{\"Recipient\":{\"KeyEncryptionAlgorithm\":"
				"\"RSAES_OAEP_SHA_1\",\"AttestationDocument\":\"AAAA\"}}}", &t, &body, NULL), -EACCES);
	assert_int_equal(decode("{\"target\":\"TrentService.Decrypt\",\"body\":{\"Recipient\":{\"KeyEncryptionAlgorithm\":"
				"\"RSAES_OAEP_SHA_256\",\"AttestationDocument\":\"\"}}}", &t, &body, NULL), -EACCES);
	assert_int_equal(decode("{\"target\":\"TrentService.Decrypt\",\"body\":{\"Recipient\":\"x\"}}", &t, &body, NULL), -EACCES);
	/* Targets outside the allow-list. */
	assert_int_equal(decode("{\"target\":\"TrentService.Encrypt\",\"body\":{" REC "}}", &t, &body, NULL), -EPERM);
	assert_int_equal(decode("{\"target\":\"TrentService.CreateKey\",\"body\":{" REC "}}", &t, &body, NULL), -EPERM);
	/* Shapes. */
	const char *bad[] = {"", "[]", "{}", "{\"target\":1,\"body\":{}}", "{\"target\":\"TrentService.Decrypt\",\"body\":[]}",
			     "{\"target\":\"TrentService.Decrypt\",\"body\":{" REC "},\"x\":1}",
			     "{\"target\":\"TrentService.Decrypt\",\"body\":{" REC "}} trailing", "{\"target\":"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) assert_int_equal(decode(bad[i], &t, &body, NULL), -EBADMSG);
	/* Size: a body over 64 KiB. */
	size_t n = KMSPROTO_MAX_PAYLOAD + 10;
	char *big = malloc(n + 1);
	memset(big, ' ', n);
	big[n] = 0;
	memcpy(big, "{\"target\":\"TrentService.Decrypt\",\"body\":{", 41);
	assert_int_equal(decode(big, &t, &body, NULL), -E2BIG);
	free(big);
}

static void test_round_trips(void **state) {
	uint8_t *p;
	size_t n;
	const char *t;
	char *body, *e, *m;
	int status;
	assert_int_equal(kmsproto_request_encode("TrentService.GenerateDataKey", "{\"KeyId\":\"k\",\"NumberOfBytes\":32," REC "}", &p, &n), 0);
	assert_int_equal(kmsproto_request_decode(p, n, &t, &body, NULL, NULL), 0);
	assert_string_equal(t, "TrentService.GenerateDataKey");
	free(body);
	free(p);
	assert_int_equal(kmsproto_request_encode("TrentService.Decrypt", "not json", &p, &n), -EBADMSG);

	const char *kms = "{\"__type\":\"AccessDeniedException\",\"message\":\"no\"}";
	assert_int_equal(kmsproto_response_encode(400, kms, strlen(kms), &p, &n), 0);
	assert_int_equal(kmsproto_response_decode(p, n, &status, &body), 0);
	assert_int_equal(status, 400);
	assert_non_null(strstr(body, "AccessDeniedException"));
	free(body);
	free(p);
	/* An unparseable KMS body becomes {}. */
	assert_int_equal(kmsproto_response_encode(502, "<html>", 6, &p, &n), 0);
	assert_int_equal(kmsproto_response_decode(p, n, &status, &body), 0);
	assert_string_equal(body, "{}");
	free(body);
	free(p);
	assert_int_equal(kmsproto_response_decode((const uint8_t *)"{\"status\":99,\"body\":{}}", 23, &status, &body), -EBADMSG);

	assert_int_equal(kmsproto_error_encode("Refused", "no Recipient", &p, &n), 0);
	assert_int_equal(kmsproto_error_decode(p, n, &e, &m), 0);
	assert_string_equal(e, "Refused");
	assert_string_equal(m, "no Recipient");
	free(e);
	free(m);
	free(p);
	assert_int_equal(kmsproto_error_decode((const uint8_t *)"{\"error\":1}", 11, &e, &m), -EBADMSG);
}

int main(void) {
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_admission), cmocka_unit_test(test_round_trips)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
