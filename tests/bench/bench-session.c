/* Benchmark of the attested session machines (lib/session), attestation excluded (a stand-in document that
 * costs a memcpy): session setup = client and server created, HELLO, ATTEST (server X25519 key generation,
 * client SetupBaseS and response-key export), first REQUEST opened by the server (SetupBaseR, export); then one
 * request/response exchange of 1 KiB each way (seal, frame, open on both sides). Prints best and median of
 * several rounds, each round the mean of many iterations. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "session.h"
#include "util.h"

#include "../common/session-stub.h"

static void die(const char *what) {
	fprintf(stderr, "bench-session: %s failed\n", what);
	exit(1);
}

static void c2s(SessionClient *c, SessionServer *s) {
	size_t n;
	const uint8_t *p = session_client_pending_output(c, &n);
	if (session_server_feed(s, p, n, 1) < 0) die("server feed");
	session_client_output_advance(c, n);
}

static void s2c(SessionServer *s, SessionClient *c) {
	size_t n;
	const uint8_t *p = session_server_pending_output(s, &n);
	if (session_client_feed(c, p, n, 1) < 0) die("client feed");
	session_server_output_advance(s, n);
}

static SessionServerConfig scfg;
static SessionClientConfig ccfg;

/* Setup through the first (empty) request opened by the server. */
static void setup(SessionClient **ret_c, SessionServer **ret_s) {
	uint32_t seq;
	uint8_t *p;
	size_t n;
	if (session_client_new(&ccfg, 1, ret_c) < 0 || session_server_new(&scfg, 1, ret_s) < 0) die("new");
	c2s(*ret_c, *ret_s);
	s2c(*ret_s, *ret_c);
	if (session_client_request(*ret_c, NULL, 0, 1, NULL) < 0) die("request");
	c2s(*ret_c, *ret_s);
	if (session_server_next_request(*ret_s, &seq, &p, &n) != 1) die("open");
	free(p);
}

/* Process CPU time: on a shared machine wall time also counts other processes' turns on the cores. */
static uint64_t cpu_usec(void) {
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, double *cpu, int n, const char *unit) {
	qsort(v, (size_t)n, sizeof *v, cmp);
	qsort(cpu, (size_t)n, sizeof *cpu, cmp);
	printf("%-52s wall best %7.3f median %7.3f %s; cpu best %7.3f median %7.3f %s (%d rounds)\n", what, v[0],
	       v[n / 2], unit, cpu[0], cpu[n / 2], unit, n);
}

int main(void) {
	scfg = (SessionServerConfig){.make_attestation = stub_make_attestation};
	memset(scfg.user_data.receipt_key, 7, 32);
	ccfg = (SessionClientConfig){.verify_attestation = stub_verify_attestation};
	enum { ROUNDS = 9 };
	double v[ROUNDS], cpu[ROUNDS];

	for (uint16_t aead = 2; aead <= 3; aead++) {
		ccfg.aead = aead;
		const char *name = aead == 2 ? "AES-256-GCM" : "ChaCha20-Poly1305";
		char label[96];
		for (int r = 0; r < ROUNDS; r++) {
			const int iters = 200;
			uint64_t t0 = now_monotonic_usec(), c0 = cpu_usec();
			for (int i = 0; i < iters; i++) {
				SessionClient *c;
				SessionServer *s;
				setup(&c, &s);
				session_client_free(c);
				session_server_free(s);
			}
			v[r] = (double)(now_monotonic_usec() - t0) / iters / 1000.0;
			cpu[r] = (double)(cpu_usec() - c0) / iters / 1000.0;
		}
		snprintf(label, sizeof label, "session setup, client+server (%s)", name);
		report(label, v, cpu, ROUNDS, "ms");

		SessionClient *c;
		SessionServer *s;
		setup(&c, &s);
		uint8_t req[1024], resp[1024];
		memset(req, 'q', sizeof req);
		memset(resp, 'r', sizeof resp);
		for (int r = 0; r < ROUNDS; r++) {
			const int iters = 20000;
			uint64_t t0 = now_monotonic_usec(), c0 = cpu_usec();
			for (int i = 0; i < iters; i++) {
				uint32_t seq, seq2;
				uint8_t *p;
				size_t n;
				if (session_client_request(c, req, sizeof req, 1, NULL) < 0) die("request");
				c2s(c, s);
				if (session_server_next_request(s, &seq, &p, &n) != 1 || n != sizeof req) die("open");
				free_secret(p, n);
				if (session_server_respond(s, seq, resp, sizeof resp, 1) < 0) die("respond");
				s2c(s, c);
				if (session_client_next_response(c, &seq2, &p, &n) != 1 || seq2 != seq) die("response");
				free_secret(p, n);
			}
			v[r] = (double)(now_monotonic_usec() - t0) / iters;
			cpu[r] = (double)(cpu_usec() - c0) / iters;
		}
		snprintf(label, sizeof label, "1 KiB request + 1 KiB response (%s)", name);
		report(label, v, cpu, ROUNDS, "us");
		session_client_free(c);
		session_server_free(s);
	}
	return 0;
}
