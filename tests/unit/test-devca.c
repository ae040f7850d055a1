/* Tests for devca.c: a generated dev chain has AWS's shape and passes (and fails) x509-chain like a real one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include "devca.h"
#include "macro.h"
#include "util.h"
#include "x509-chain.h"

static char dir[64];

static int setup(void **state) {
	snprintf(dir, sizeof dir, "/tmp/eml-devca-XXXXXX");
	if (!mkdtemp(dir)) return -1;
	return devca_init(dir, 3, time(NULL));
}

static int teardown(void **state) {
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd);
}

static void test_layout(void **state) {
	char p[128];
	struct stat st;
	snprintf(p, sizeof p, "%s/issuer.key", dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(p, sizeof p, "%s/root.pem", dir);
	assert_int_equal(stat(p, &st), 0);
	/* refuses to overwrite */
	assert_int_equal(devca_init(dir, 3, time(NULL)), -EEXIST);
	assert_int_equal(devca_init(dir, 0, time(NULL)), -EINVAL);
}

static void test_chain(void **state) {
	time_t now = time(NULL);
	_cleanup_devca_ DevCa *ca = NULL;
	assert_int_equal(devca_load(dir, &ca), 0);
	const struct x509_der *bundle;
	size_t n = devca_bundle(ca, &bundle);
	assert_int_equal(n, 4); /* root + 3, like AWS */

	EVP_PKEY *key = NULL;
	uint8_t *leaf = NULL;
	size_t leaf_len = 0;
	assert_int_equal(devca_issue_leaf(ca, "i-0123456789abcdef0-enc0123456789abcdef", now, &key, &leaf, &leaf_len), 0);
	const uint8_t *p = leaf;
	X509 *x = d2i_X509(NULL, &p, (long)leaf_len);
	assert_non_null(x);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA384);
	assert_false(X509_get_extension_flags(x) & EXFLAG_CA);
	X509_free(x);

	char path[128];
	snprintf(path, sizeof path, "%s/root.pem", dir);
	_cleanup_x509_root_ X509Root *root = NULL;
	assert_int_equal(x509_root_load_pem(path, &root), 0);
	struct x509_der l = {leaf, leaf_len};
	uint8_t point[P384_POINT_LEN], mine[P384_POINT_LEN];
	char reason[128] = "";
	int r = x509_chain_verify(root, bundle, n, &l, now, now, NULL, point, reason, sizeof reason);
	if (r) fprintf(stderr, "%s\n", reason);
	assert_int_equal(r, 0);
	assert_int_equal(p384_point_from_pkey(key, mine), 0);
	assert_memory_equal(point, mine, sizeof mine);
	/* the leaf lives 3 hours */
	assert_int_equal(x509_chain_verify(root, bundle, n, &l, now, now + 3 * 3600, NULL, NULL, NULL, 0),
			 -EKEYEXPIRED);
	assert_int_equal(x509_chain_verify(root, bundle, n, &l, now, now + 2 * 3600, NULL, NULL, NULL, 0), 0);

	/* a bundle is not a root */
	X509Root *two = NULL;
	snprintf(path, sizeof path, "%s/bundle.pem", dir);
	assert_int_equal(x509_root_load_pem(path, &two), -EBADMSG);
	assert_null(two);

	/* against the AWS root: unknown root */
	char aws[4096];
	snprintf(aws, sizeof aws, "%s/tests/vectors/nitro/aws-nitro-root-g1.pem", getenv("EML_SRCDIR") ?: ".");
	_cleanup_x509_root_ X509Root *awsroot = NULL;
	assert_int_equal(x509_root_load_pem(aws, &awsroot), 0);
	assert_int_equal(x509_chain_verify(awsroot, bundle, n, &l, now, now, NULL, NULL, NULL, 0), -ENOKEY);
	EVP_PKEY_free(key);
	OPENSSL_free(leaf);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_chain),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
