/* Tests for kmspolicy.c: AWS key-policy evaluation (Deny wins, Allow needed), recipient-attestation and
 * encryption-context conditions, wildcards and principals, and refusal of what cannot be evaluated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kmspolicy.h"
#include "macro.h"

#define ACCOUNT "111122223333"
#define ROOT "arn:aws:iam::111122223333:root"
#define PCR_A "aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00"
#define PCR_B "bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00"

static struct kmspolicy_request req(const char *action, const char *pcr0) {
	struct kmspolicy_request r = {.action = action, .principal_arn = ROOT, .account = ACCOUNT};
	r.pcr[0] = pcr0;
	return r;
}

static const char *ENCLAVE_POLICY =
	"{\"Version\":\"2012-10-17\",\"Statement\":["
	"{\"Sid\":\"owner\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" ROOT "\"},\"Action\":[\"kms:Encrypt\",\"kms:Describe*\"],\"Resource\":\"*\"},"
	"{\"Sid\":\"enclave\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" ACCOUNT "\"},\"Action\":\"kms:Decrypt\",\"Resource\":\"*\","
	"\"Condition\":{\"StringEqualsIgnoreCase\":{\"kms:RecipientAttestation:PCR0\":[\"" PCR_A "\",\"cc\"]}}}]}";

static void test_pcr_condition(void **state) {
	struct kmspolicy_request r = req("kms:Decrypt", PCR_A);
	assert_int_equal(kmspolicy_validate(ENCLAVE_POLICY, NULL), 0);
	assert_int_equal(kmspolicy_evaluate(ENCLAVE_POLICY, &r), 1);
	/* Upper case still matches under IgnoreCase. */
	char upper[] = PCR_A;
	for (char *c = upper; *c; c++) *c = (char)(*c >= 'a' && *c <= 'f' ? *c - 32 : *c);
	r = req("kms:Decrypt", upper);
	assert_int_equal(kmspolicy_evaluate(ENCLAVE_POLICY, &r), 1);
	/* Another PCR0, or none (no Recipient): denied. */
	r = req("kms:Decrypt", PCR_B);
	assert_int_equal(kmspolicy_evaluate(ENCLAVE_POLICY, &r), 0);
	r = req("kms:Decrypt", NULL);
	assert_int_equal(kmspolicy_evaluate(ENCLAVE_POLICY, &r), 0);
	/* Actions: exact, wildcard, case-insensitive; others denied. */
	r = req("kms:DescribeKey", NULL);
	assert_int_equal(kmspolicy_evaluate(ENCLAVE_POLICY, &r), 1);
	r = req("KMS:ENCRYPT", NULL);
	assert_int_equal(kmspolicy_evaluate(ENCLAVE_POLICY, &r), 1);
	r = req("kms:GenerateDataKey", PCR_A);
	assert_int_equal(kmspolicy_evaluate(ENCLAVE_POLICY, &r), 0);
	/* Another account's principal. */
	r = req("kms:Encrypt", NULL);
	r.principal_arn = "arn:aws:iam::999999999999:root";
	r.account = "999999999999";
	assert_int_equal(kmspolicy_evaluate(ENCLAVE_POLICY, &r), 0);
}

static void test_deny_wins(void **state) {
	const char *p = "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\",\"Resource\":\"*\"},"
			"{\"Effect\":\"Deny\",\"Principal\":{\"AWS\":\"*\"},\"Action\":\"kms:Decrypt\",\"Resource\":\"*\","
			"\"Condition\":{\"StringEquals\":{\"kms:RecipientAttestation:PCR8\":\"bad\"}}}]}";
	struct kmspolicy_request r = req("kms:Decrypt", PCR_A);
	assert_int_equal(kmspolicy_evaluate(p, &r), 1);
	r.pcr[8] = "bad";
	assert_int_equal(kmspolicy_evaluate(p, &r), 0);
	r.pcr[8] = "BAD"; /* StringEquals is case-sensitive */
	assert_int_equal(kmspolicy_evaluate(p, &r), 1);
}

static void test_image_and_context(void **state) {
	const char *p = "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:GenerateDataKey*\",\"Resource\":\"*\","
			"\"Condition\":{\"StringEquals\":{\"kms:RecipientAttestation:ImageSha384\":\"" PCR_A "\","
			"\"kms:EncryptionContext:model\":\"minilm\"}}}}";
	struct kmspolicy_request r = req("kms:GenerateDataKey", PCR_A);
	json_object *ctx = json_tokener_parse("{\"model\":\"minilm\"}"), *other = json_tokener_parse("{\"model\":\"x\"}");
	assert_int_equal(kmspolicy_evaluate(p, &r), 0); /* no context: the context condition fails */
	r.context = ctx;
	assert_int_equal(kmspolicy_evaluate(p, &r), 1);
	r.context = other;
	assert_int_equal(kmspolicy_evaluate(p, &r), 0);
	r.context = ctx;
	r.pcr[0] = PCR_B;
	assert_int_equal(kmspolicy_evaluate(p, &r), 0);
	json_object_put(ctx);
	json_object_put(other);
}

static void test_refused(void **state) {
	const char *bad[] = {
		"", "[]", "{}", "{\"Statement\":[]}", "not json", "{\"Statement\":{}}",
		"{\"Statement\":{\"Effect\":\"Maybe\",\"Principal\":\"*\",\"Action\":\"kms:*\"}}",
		"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"NotAction\":\"kms:*\"}}",
		"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"x\"},\"Action\":\"kms:*\"}}",
		"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\",\"Resource\":\"arn:x\"}}",
		"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\",\"Condition\":{\"StringLike\":{\"kms:RecipientAttestation:PCR0\":\"a\"}}}}",
		"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\",\"Condition\":{\"StringEquals\":{\"kms:RecipientAttestation:PCR9\":\"a\"}}}}",
		"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\",\"Condition\":{\"StringEquals\":{\"aws:SourceIp\":\"a\"}}}}",
		"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":[]}}",
		"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\"},\"Extra\":1}",
		"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\"}} trailing",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		const char *why = NULL;
		assert_int_equal(kmspolicy_validate(bad[i], &why), -EINVAL);
		assert_non_null(why);
		struct kmspolicy_request r = req("kms:Decrypt", PCR_A);
		assert_int_equal(kmspolicy_evaluate(bad[i], &r), 0); /* fail closed */
	}
	char *def = kmspolicy_default(ACCOUNT);
	assert_int_equal(kmspolicy_validate(def, NULL), 0);
	struct kmspolicy_request r = req("kms:Decrypt", NULL);
	assert_int_equal(kmspolicy_evaluate(def, &r), 1);
	free(def);
}

int main(void) {
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_pcr_condition), cmocka_unit_test(test_deny_wins),
					   cmocka_unit_test(test_image_and_context), cmocka_unit_test(test_refused)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
