/* The two-thread signature checks of attest_verify / x509_chain_verify_opts give the verdict and the reason
 * of the one-by-one order: real AWS documents (tests/vectors/nitro) with one and two corrupted bytes are
 * verified both ways, with and without a primed path cache, and must agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "attest.h"
#include "helper-vectors.h"
#include "macro.h"
#include "nitro-root.h"
#include "util.h"

#define PROD_MS 1616018515685ull

struct verdict {
	int r;
	AttestError e;
	char reason[256];
};

static void run(const uint8_t *doc, size_t len, const X509Root *root, X509PathCache *cache, bool sequential,
		struct verdict *v) {
	struct attest_verify_params p = {.root = root, .cache = cache, .now_ms = PROD_MS, .sequential = sequential};
	v->e = _ATTEST_ERROR_MAX;
	v->reason[0] = 0;
	v->r = attest_verify(doc, len, &p, NULL, &v->e, v->reason, sizeof v->reason);
}

static void check_same(const uint8_t *doc, size_t len, const X509Root *root, X509PathCache *cache, unsigned *n_ok,
		       unsigned *n_codes) {
	struct verdict s, p;
	run(doc, len, root, cache, true, &s);
	run(doc, len, root, cache, false, &p);
	assert_int_equal(s.r, p.r);
	assert_int_equal(s.e, p.e);
	assert_string_equal(s.reason, p.reason);
	if (s.e == ATTEST_OK) (*n_ok)++;
	*n_codes |= 1u << s.e;
}

static void test_good_document_both_ways(void **state) {
	(void)state;
	_cleanup_x509_root_ X509Root *root = NULL;
	_cleanup_x509_path_cache_ X509PathCache *cache = NULL;
	_cleanup_free_ uint8_t *doc = NULL;
	size_t len;
	assert_int_equal(nitro_root_g1(&root), 0);
	assert_int_equal(x509_path_cache_new(4, &cache), 0);
	assert_int_equal(tv_read("nitro/nitro-prod-2021.cose", &doc, &len), 0);
	for (int seq = 0; seq < 2; seq++) {
		struct verdict v;
		run(doc, len, root, NULL, seq, &v);
		assert_int_equal(v.r, 0);
		run(doc, len, root, cache, seq, &v); /* miss, then hit */
		assert_int_equal(v.r, 0);
		run(doc, len, root, cache, seq, &v);
		assert_int_equal(v.r, 0);
	}
	assert_int_equal(x509_path_cache_hits(cache), 3);
}

static void test_flips_agree(void **state) {
	(void)state;
	_cleanup_x509_root_ X509Root *root = NULL;
	_cleanup_x509_path_cache_ X509PathCache *cache = NULL;
	_cleanup_free_ uint8_t *doc = NULL;
	size_t len;
	assert_int_equal(nitro_root_g1(&root), 0);
	assert_int_equal(x509_path_cache_new(4, &cache), 0);
	assert_int_equal(tv_read("nitro/nitro-prod-2021.cose", &doc, &len), 0);
	struct verdict v;
	run(doc, len, root, cache, true, &v); /* prime: the flips below that keep the bundle take the hit path */
	assert_int_equal(v.r, 0);

	unsigned n_ok = 0, codes = 0;
	/* one byte: every 11th position, with and without the cache */
	for (size_t i = 0; i < len; i += 11) {
		doc[i] ^= 0x01;
		check_same(doc, len, root, NULL, &n_ok, &codes);
		check_same(doc, len, root, cache, &n_ok, &codes);
		doc[i] ^= 0x01;
	}
	/* two bytes: faults at two places of the path, where the first in the serial order must win */
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (int k = 0; k < 150; k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t i = (size_t)(x % len), j = (size_t)((x >> 32) % len);
		doc[i] ^= 0x80;
		doc[j] ^= 0x02;
		check_same(doc, len, root, NULL, &n_ok, &codes);
		doc[j] ^= 0x02;
		doc[i] ^= 0x80;
	}
	/* the corruptions reached the signature checks, the chain and the parser, not only one of them */
	assert_true(codes & (1u << ATTEST_SIGNATURE));
	assert_true(codes & (1u << ATTEST_CHAIN));
	assert_true(codes & (1u << ATTEST_BAD_STRUCTURE));
}

/* Offset of the DER bytes of cert inside doc (the payload stores them verbatim). */
static size_t offset_of(const uint8_t *doc, size_t len, const struct x509_der *cert) {
	const uint8_t *p = memmem(doc, len, cert->data, cert->len);
	assert_non_null(p);
	return (size_t)(p - doc);
}

/* A bad signature on an early link and a later certificate that does not parse: the one-by-one order meets
 * the signature first, so CHAIN it is, not BAD_STRUCTURE, although the parse failure is found before any
 * signature is checked. */
static void test_first_failure_wins(void **state) {
	(void)state;
	_cleanup_x509_root_ X509Root *root = NULL;
	_cleanup_free_ uint8_t *doc = NULL;
	size_t len;
	assert_int_equal(nitro_root_g1(&root), 0);
	assert_int_equal(tv_read("nitro/nitro-prod-2021.cose", &doc, &len), 0);
	_cleanup_attest_doc_ AttestDoc *d = NULL;
	assert_int_equal(attest_parse(doc, len, &d, NULL, NULL, 0), 0);
	assert_int_equal(d->n_cabundle, 4);
	struct { size_t sig_cert; const struct x509_der *broken; const char *reason; } cases[] = {
		{1, &d->cabundle[2], "certificate 1: bad signature"},
		{2, &d->cabundle[3], "certificate 2: bad signature"},
		{3, &d->certificate, "certificate 3: bad signature"},
	};
	for (size_t k = 0; k < ARRAY_SIZE(cases); k++) {
		/* the last byte of a certificate is the signature's s: still DER, no longer valid */
		size_t sig_at = offset_of(doc, len, &d->cabundle[cases[k].sig_cert]) + d->cabundle[cases[k].sig_cert].len - 1;
		size_t broken_at = offset_of(doc, len, cases[k].broken); /* SEQUENCE tag 0x30 -> 0x31 */
		doc[sig_at] ^= 0x01;
		doc[broken_at] ^= 0x01;
		for (int seq = 0; seq < 2; seq++) {
			struct verdict v;
			run(doc, len, root, NULL, seq, &v);
			assert_int_equal(v.r, -EPERM);
			assert_int_equal(v.e, ATTEST_CHAIN);
			assert_string_equal(v.reason, cases[k].reason);
		}
		doc[broken_at] ^= 0x01;
		doc[sig_at] ^= 0x01;
	}
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_document_both_ways),
		cmocka_unit_test(test_flips_agree),
		cmocka_unit_test(test_first_failure_wins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
