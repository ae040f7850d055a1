/* session-load: SESSIONS concurrent attested sessions (lib/eml_client), each making REQUESTS embedding
 * requests of one text, every receipt verified by the client (signature by the attested receipt key, model
 * hash, PCRs, bound to the session's document). Prints one line of counts; exit 0 only when every session and
 * every request succeeded.
 *   session-load ENDPOINT POLICY.json SESSIONS REQUESTS */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eml_client.h"
#include "macro.h"
#include "policy.h"
#include "util.h"

static const char *endpoint;
static Policy *policy;
static unsigned requests;
static atomic_uint ok_requests, failed_sessions, failed_requests;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static void *run(void *arg) {
	unsigned id = (unsigned)(uintptr_t)arg;
	char reason[256] = "";
	EmlClientOptions o = {.endpoint = endpoint, .policy = policy, .timeout_usec = 60000000};
	_cleanup_eml_client_ EmlClient *c = NULL;
	if (eml_client_connect(&o, &c, reason, sizeof reason) < 0) {
		pthread_mutex_lock(&print_lock);
		fprintf(stderr, "session %u: connect: %s\n", id, reason);
		pthread_mutex_unlock(&print_lock);
		atomic_fetch_add(&failed_sessions, 1);
		return NULL;
	}
	for (unsigned i = 0; i < requests; i++) {
		char text[64];
		snprintf(text, sizeof text, "session %u request %u", id, i);
		const char *t = text;
		EmlEmbedding *e = NULL;
		if (eml_client_embed(c, &t, 1, &e, reason, sizeof reason) < 0 || !e->receipt_bound ||
		    e->claims.sequence_number != i) {
			pthread_mutex_lock(&print_lock);
			fprintf(stderr, "session %u request %u: %s\n", id, i, reason[0] ? reason : "receipt not bound");
			pthread_mutex_unlock(&print_lock);
			atomic_fetch_add(&failed_requests, 1);
			eml_embedding_free(e);
			atomic_fetch_add(&failed_sessions, 1);
			return NULL;
		}
		eml_embedding_free(e);
		atomic_fetch_add(&ok_requests, 1);
	}
	return NULL;
}

int main(int argc, char **argv) {
	uint64_t sessions, reqs;
	if (argc != 5 || parse_u64(argv[3], 1024, &sessions) < 0 || parse_u64(argv[4], 1u << 20, &reqs) < 0) {
		fprintf(stderr, "usage: session-load ENDPOINT POLICY.json SESSIONS REQUESTS\n");
		return 2;
	}
	endpoint = argv[1];
	requests = (unsigned)reqs;
	_cleanup_free_ uint8_t *text = NULL;
	size_t len;
	char reason[256];
	if (read_file(argv[2], 1u << 20, &text, &len) < 0 ||
	    policy_from_json((const char *)text, len, NULL, now_realtime_usec() / 1000000, &policy, reason,
			     sizeof reason) < 0) {
		fprintf(stderr, "session-load: bad policy %s\n", argv[2]);
		return 2;
	}
	pthread_t *t = calloc(sessions, sizeof *t);
	if (!t) return 1;
	uint64_t t0 = now_monotonic_usec();
	for (uint64_t i = 0; i < sessions; i++)
		if (pthread_create(&t[i], NULL, run, (void *)(uintptr_t)i) != 0) return 1;
	for (uint64_t i = 0; i < sessions; i++) pthread_join(t[i], NULL);
	double s = (double)(now_monotonic_usec() - t0) / 1e6;
	printf("sessions=%" PRIu64 " requests_ok=%u failed_sessions=%u failed_requests=%u seconds=%.2f rps=%.0f\n",
	       sessions, atomic_load(&ok_requests), atomic_load(&failed_sessions), atomic_load(&failed_requests), s,
	       atomic_load(&ok_requests) / s);
	free(t);
	policy_free(policy);
	return atomic_load(&failed_sessions) == 0 && atomic_load(&ok_requests) == sessions * reqs ? 0 : 1;
}
