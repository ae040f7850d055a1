/* Tests for x509-chain.c against the real AWS Nitro chains carried by the two documents in tests/vectors/nitro.
 * The certificates are pulled out with libcbor directly so that this suite depends on nothing of ours but
 * the module under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "cbor.h"

#include "macro.h"
#include "util.h"
#include "x509-chain.h"

struct doc {
	uint8_t *file;
	size_t file_len;
	cbor_item_t *payload;
	struct x509_der leaf;
	struct x509_der bundle[X509_CHAIN_MAX_BUNDLE];
	size_t n;
	time_t t;
};

static void load_doc(const char *name, time_t t, struct doc *d) {
	char path[4096];
	snprintf(path, sizeof path, "%s/tests/vectors/nitro/%s", getenv("EML_SRCDIR") ?: ".", name);
	memset(d, 0, sizeof *d);
	assert_int_equal(read_file(path, 1 << 20, &d->file, &d->file_len), 0);
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	cbor_item_t *top = NULL;
	assert_int_equal(ecbor_decode(d->file, d->file_len, &lim, &top), 0);
	assert_non_null(top);
	assert_true(cbor_isa_array(top) && cbor_array_size(top) == 4);
	cbor_item_t *pl = cbor_array_get(top, 2);
	assert_int_equal(ecbor_decode(cbor_bytestring_handle(pl), cbor_bytestring_length(pl), &lim, &d->payload), 0);
	cbor_decref(&pl);
	cbor_decref(&top);
	assert_non_null(d->payload);
	struct cbor_pair *pairs = cbor_map_handle(d->payload);
	for (size_t i = 0; i < cbor_map_size(d->payload); i++) {
		const char *k = (const char *)cbor_string_handle(pairs[i].key);
		size_t kl = cbor_string_length(pairs[i].key);
		if (kl == 11 && memcmp(k, "certificate", 11) == 0) {
			d->leaf.data = cbor_bytestring_handle(pairs[i].value);
			d->leaf.len = cbor_bytestring_length(pairs[i].value);
		} else if (kl == 8 && memcmp(k, "cabundle", 8) == 0) {
			d->n = cbor_array_size(pairs[i].value);
			assert_true(d->n <= X509_CHAIN_MAX_BUNDLE);
			for (size_t j = 0; j < d->n; j++) {
				cbor_item_t *c = cbor_array_handle(pairs[i].value)[j];
				d->bundle[j].data = cbor_bytestring_handle(c);
				d->bundle[j].len = cbor_bytestring_length(c);
			}
		}
	}
	assert_non_null(d->leaf.data);
	assert_true(d->n >= 2);
	d->t = t;
}

static void free_doc(struct doc *d) {
	cbor_decref(&d->payload);
	free(d->file);
}

static X509Root *aws_root(void) {
	char path[4096];
	X509Root *r = NULL;
	snprintf(path, sizeof path, "%s/tests/vectors/nitro/aws-nitro-root-g1.pem", getenv("EML_SRCDIR") ?: ".");
	assert_int_equal(x509_root_load_pem(path, &r), 0);
	return r;
}

#define PROD_T ((time_t)1616018515)
#define DEBUG_T ((time_t)1706120065)

static void test_root_fingerprint(void **state) {
	_cleanup_x509_root_ X509Root *r = aws_root();
	char hex[65];
	hex_encode(x509_root_fingerprint(r), 32, hex);
	/* The published fingerprint of AWS Nitro root G1. */
	assert_string_equal(hex, "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b");
}

static void test_real_chains_verify(void **state) {
	_cleanup_x509_root_ X509Root *r = aws_root();
	struct doc d[2];
	load_doc("nitro-prod-2021.cose", PROD_T, &d[0]);
	load_doc("nitro-debug-full-2024.cose", DEBUG_T, &d[1]);
	for (int i = 0; i < 2; i++) {
		uint8_t point[P384_POINT_LEN] = {0};
		char reason[128] = "";
		int rc = x509_chain_verify(r, d[i].bundle, d[i].n, &d[i].leaf, d[i].t, d[i].t, NULL, point, reason,
					   sizeof reason);
		if (rc) fprintf(stderr, "doc %d: %s\n", i, reason);
		assert_int_equal(rc, 0);
		assert_int_equal(point[0], 0x04);
		/* one day later the leaf (3 hours) has expired */
		assert_int_equal(x509_chain_verify(r, d[i].bundle, d[i].n, &d[i].leaf, d[i].t, d[i].t + 86400, NULL,
						   NULL, NULL, 0),
				 -EKEYEXPIRED);
		assert_int_equal(x509_chain_verify(r, d[i].bundle, d[i].n, &d[i].leaf, d[i].t + 86400, d[i].t, NULL,
						   NULL, NULL, 0),
				 -EKEYEXPIRED);
		/* an hour before the leaf existed */
		assert_int_equal(x509_chain_verify(r, d[i].bundle, d[i].n, &d[i].leaf, d[i].t - 3600, d[i].t - 3600,
						   NULL, NULL, NULL, 0),
				 -EKEYEXPIRED);
		free_doc(&d[i]);
	}
}

static void test_unknown_root(void **state) {
	struct doc d;
	load_doc("nitro-prod-2021.cose", PROD_T, &d);
	/* Pin the second certificate instead of the root: the bundle no longer starts with it. */
	_cleanup_x509_root_ X509Root *other = NULL;
	assert_int_equal(x509_root_from_der(d.bundle[1].data, d.bundle[1].len, &other), 0);
	assert_int_equal(x509_chain_verify(other, d.bundle, d.n, &d.leaf, d.t, d.t, NULL, NULL, NULL, 0), -ENOKEY);
	free_doc(&d);
}

static void test_broken_links(void **state) {
	_cleanup_x509_root_ X509Root *r = aws_root();
	struct doc d;
	load_doc("nitro-prod-2021.cose", PROD_T, &d);
	/* drop an intermediate: the next certificate's issuer no longer matches */
	struct x509_der shortb[X509_CHAIN_MAX_BUNDLE];
	memcpy(shortb, d.bundle, sizeof shortb);
	memmove(&shortb[1], &shortb[2], (d.n - 2) * sizeof shortb[0]);
	assert_int_equal(x509_chain_verify(r, shortb, d.n - 1, &d.leaf, d.t, d.t, NULL, NULL, NULL, 0),
			 -EKEYREJECTED);
	/* swap two intermediates */
	memcpy(shortb, d.bundle, sizeof shortb);
	shortb[1] = d.bundle[2];
	shortb[2] = d.bundle[1];
	assert_int_equal(x509_chain_verify(r, shortb, d.n, &d.leaf, d.t, d.t, NULL, NULL, NULL, 0), -EKEYREJECTED);
	/* the last intermediate as the leaf: a CA, and not issued by itself */
	assert_true(x509_chain_verify(r, d.bundle, d.n, &d.bundle[d.n - 1], d.t, d.t, NULL, NULL, NULL, 0) < 0);
	/* flip the last byte of the leaf (inside its signature) */
	uint8_t *leaf = malloc(d.leaf.len);
	memcpy(leaf, d.leaf.data, d.leaf.len);
	leaf[d.leaf.len - 1] ^= 1;
	struct x509_der bad = {leaf, d.leaf.len};
	assert_int_equal(x509_chain_verify(r, d.bundle, d.n, &bad, d.t, d.t, NULL, NULL, NULL, 0), -EKEYREJECTED);
	/* flip a byte in the leaf's subject public key area (middle of the TBS) */
	leaf[d.leaf.len - 1] ^= 1;
	leaf[d.leaf.len / 2] ^= 0x40;
	assert_true(x509_chain_verify(r, d.bundle, d.n, &bad, d.t, d.t, NULL, NULL, NULL, 0) < 0);
	/* trailing garbage */
	uint8_t *longer = malloc(d.leaf.len + 1);
	memcpy(longer, d.leaf.data, d.leaf.len);
	longer[d.leaf.len] = 0;
	struct x509_der trailing = {longer, d.leaf.len + 1};
	assert_int_equal(x509_chain_verify(r, d.bundle, d.n, &trailing, d.t, d.t, NULL, NULL, NULL, 0), -EBADMSG);
	assert_int_equal(x509_chain_verify(r, d.bundle, 0, &d.leaf, d.t, d.t, NULL, NULL, NULL, 0), -EBADMSG);
	free(leaf);
	free(longer);
	free_doc(&d);
}

static void test_cache(void **state) {
	_cleanup_x509_root_ X509Root *r = aws_root();
	_cleanup_x509_path_cache_ X509PathCache *c = NULL;
	assert_int_equal(x509_path_cache_new(4, &c), 0);
	struct doc d;
	load_doc("nitro-debug-full-2024.cose", DEBUG_T, &d);
	uint8_t p1[P384_POINT_LEN], p2[P384_POINT_LEN];
	assert_int_equal(x509_chain_verify(r, d.bundle, d.n, &d.leaf, d.t, d.t, c, p1, NULL, 0), 0);
	assert_int_equal(x509_path_cache_hits(c), 0);
	assert_int_equal(x509_chain_verify(r, d.bundle, d.n, &d.leaf, d.t, d.t, c, p2, NULL, 0), 0);
	assert_int_equal(x509_path_cache_hits(c), 1);
	assert_memory_equal(p1, p2, sizeof p1);
	/* a hit still checks times and the leaf */
	assert_int_equal(x509_chain_verify(r, d.bundle, d.n, &d.leaf, d.t, d.t + 86400, c, NULL, NULL, 0),
			 -EKEYEXPIRED);
	assert_int_equal(x509_path_cache_hits(c), 2);
	uint8_t *leaf = malloc(d.leaf.len);
	memcpy(leaf, d.leaf.data, d.leaf.len);
	leaf[d.leaf.len - 5] ^= 0x10;
	struct x509_der bad = {leaf, d.leaf.len};
	assert_true(x509_chain_verify(r, d.bundle, d.n, &bad, d.t, d.t, c, NULL, NULL, 0) < 0);
	assert_int_equal(x509_path_cache_hits(c), 3);
	free(leaf);
	/* a different bundle (intermediate missing) misses the cache and fails */
	struct x509_der shortb[X509_CHAIN_MAX_BUNDLE];
	memcpy(shortb, d.bundle, sizeof shortb);
	memmove(&shortb[1], &shortb[2], (d.n - 2) * sizeof shortb[0]);
	assert_true(x509_chain_verify(r, shortb, d.n - 1, &d.leaf, d.t, d.t, c, NULL, NULL, 0) < 0);
	assert_int_equal(x509_path_cache_hits(c), 3);
	free_doc(&d);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root_fingerprint), cmocka_unit_test(test_real_chains_verify),
		cmocka_unit_test(test_unknown_root),     cmocka_unit_test(test_broken_links),
		cmocka_unit_test(test_cache),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
