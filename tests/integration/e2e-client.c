/* e2e-client: the in-process side of the end-to-end benchmark (tests/bench/e2e.sh).
 *
 *   e2e-client ENDPOINT POLICY POLICY_KEY MODEL_DIR RUNS TEXT
 *
 * Times, alternating so that background load hits both alike:
 *   local    embedder_embed() of TEXT, one thread, the model of MODEL_DIR loaded once (what `eml embed` costs
 *            per sentence once the model is in memory);
 *   remote   eml_client_embed() of TEXT over one attested session through ENDPOINT (the relay), receipt
 *            verification included: the per-request cost an application linking lib/eml_client pays;
 *   session  eml_client_connect() + free: connect, attestation document, its verification, HPKE setup.
 * Prints p50 and best of each in microseconds, and remote minus local at p50. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert.h"
#include "eml_client.h"
#include "embedder.h"
#include "keyfile.h"
#include "macro.h"
#include "policy.h"
#include "util.h"

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t p50(uint64_t *v, size_t n) {
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[n / 2];
}

static void die(const char *what, const char *why) {
	fprintf(stderr, "e2e-client: %s: %s\n", what, why);
	exit(1);
}

int main(int argc, char **argv) {
	uint64_t runs;
	if (argc != 7 || parse_u64(argv[5], 100000, &runs) < 0 || runs == 0) {
		fprintf(stderr, "usage: e2e-client ENDPOINT POLICY POLICY_KEY MODEL_DIR RUNS TEXT\n");
		return 2;
	}
	const char *endpoint = argv[1], *text = argv[6];
	char reason[512];
	uint8_t key[32];
	int r;
	if ((r = keyfile_load_public(argv[3], key)) < 0) die(argv[3], strerror(-r));
	Policy *policy = NULL;
	PolicyError pe;
	if (policy_load(argv[2], (const uint8_t(*)[32])key, 1, 0, &policy, &pe, reason, sizeof(reason)) < 0)
		die(argv[2], reason);
	struct embedder *emb = NULL;
	struct bert_ctx *ctx = NULL;
	if (embedder_load_dir(argv[4], 0, &emb, reason, sizeof(reason)) < 0) die(argv[4], reason);
	if ((r = embedder_ctx_new(emb, 1, &ctx)) < 0) die("embedder context", strerror(-r));
	float *local = malloc(sizeof(float) * emb->dim);
	uint64_t *t_local = calloc(runs, sizeof(uint64_t)), *t_remote = calloc(runs, sizeof(uint64_t)),
		 *t_session = calloc(runs, sizeof(uint64_t));
	if (!local || !t_local || !t_remote || !t_session) die("memory", strerror(ENOMEM));

	EmlClientOptions o = {.endpoint = endpoint, .policy = policy};
	EmlClient *c = NULL;
	if (eml_client_connect(&o, &c, reason, sizeof(reason)) < 0) die("connect", reason);
	const char *texts[1] = {text};
	float max_diff = 0;
	for (uint64_t i = 0; i <= runs; i++) { /* run 0 warms both up and is not counted */
		uint64_t t0 = now_monotonic_usec();
		if ((r = embedder_embed(emb, ctx, texts, 1, local, NULL)) < 0) die("local embed", strerror(-r));
		uint64_t t1 = now_monotonic_usec();
		EmlEmbedding *e = NULL;
		if (eml_client_embed(c, texts, 1, &e, reason, sizeof(reason)) < 0) die("remote embed", reason);
		uint64_t t2 = now_monotonic_usec();
		if (e->n != 1 || e->dim != emb->dim) die("remote embed", "unexpected shape");
		for (size_t k = 0; k < e->dim; k++) {
			float d = e->vectors[k] - local[k];
			if (d < 0) d = -d;
			if (d > max_diff) max_diff = d;
		}
		eml_embedding_free(e);
		if (i > 0) {
			t_local[i - 1] = t1 - t0;
			t_remote[i - 1] = t2 - t1;
		}
	}
	eml_client_free(c);
	for (uint64_t i = 0; i < runs; i++) {
		uint64_t t0 = now_monotonic_usec();
		if (eml_client_connect(&o, &c, reason, sizeof(reason)) < 0) die("connect", reason);
		eml_client_free(c);
		t_session[i] = now_monotonic_usec() - t0;
	}
	uint64_t pl = p50(t_local, runs), pr = p50(t_remote, runs), ps = p50(t_session, runs);
	printf("local embed (model in memory):      p50 %8.3f ms  best %8.3f ms\n", pl / 1e3, t_local[0] / 1e3);
	printf("remote embed (one session, relay):  p50 %8.3f ms  best %8.3f ms\n", pr / 1e3, t_remote[0] / 1e3);
	printf("added per request at p50:           %+.3f ms (target <= +2 ms); max |remote - local| %.2g\n",
	       ((double)pr - (double)pl) / 1e3, (double)max_diff);
	printf("session setup (connect, attest, verify, HPKE, close): p50 %.3f ms  best %.3f ms\n", ps / 1e3,
	       t_session[0] / 1e3);
	free(local);
	free(t_local);
	free(t_remote);
	free(t_session);
	bert_ctx_free(ctx);
	embedder_free(emb);
	policy_free(policy);
	return 0;
}
