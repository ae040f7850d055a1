/* bench-kms-relay: what eml-kms-relay adds to a KMS call. Starts eml-nsm-sim, eml-kms-local and eml-kms-relay
 * from $EML_BUILD/bin, then times the same Decrypt-with-Recipient request (a) signed here and posted straight
 * to eml-kms-local over a kept-alive connection, and (b) sent as a frame through the relay (which signs and
 * posts it over its own kept-alive connections). Prints p50/p90 of each and the p50 difference, for several
 * rounds (best and median), since the machine is shared. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "addr.h"
#include "base64.h"
#include "frame.h"
#include "kms-http.h"
#include "kmsproto.h"
#include "macro.h"
#include "sigv4.h"
#include "socket.h"
#include "util.h"

#define N 300
#define ROUNDS 5

static char dir[256], bin[1024], endpoint[256], host[128];
static pid_t children[3];

static void stop_all(void) {
	for (int i = 0; i < 3; i++)
		if (children[i] > 0) {
			kill(children[i], SIGTERM);
			waitpid(children[i], NULL, 0);
		}
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	(void)!system(cmd);
}

static pid_t spawn(const char *cmdline) {
	pid_t p = fork();
	if (p == 0) {
		execl("/bin/sh", "sh", "-c", cmdline, (char *)NULL);
		_exit(127);
	}
	return p;
}

static int wait_path(const char *path) {
	for (int i = 0; i < 200; i++) {
		struct stat st;
		if (stat(path, &st) == 0 && st.st_size >= 0 && (S_ISSOCK(st.st_mode) || st.st_size > 0)) return 0;
		usleep(50000);
	}
	return -ETIMEDOUT;
}

struct grow {
	char *p;
	size_t len;
};

static size_t on_body(char *d, size_t s, size_t n, void *ud) {
	struct grow *g = ud;
	char *p = realloc(g->p, g->len + s * n + 1);
	if (!p) return 0;
	memcpy(p + g->len, d, s * n);
	g->p = p;
	g->len += s * n;
	g->p[g->len] = 0;
	return s * n;
}

/* One signed call straight to eml-kms-local on the kept-alive handle e. Returns the HTTP status. */
static long direct(CURL *e, const char *target, const char *body, char **ret_body) {
	struct sigv4_header h[] = {{"Host", host}, {"Content-Type", "application/x-amz-json-1.1"}, {"X-Amz-Target", target}};
	struct sigv4_request req = {"POST", "/", NULL, h, 3, (const uint8_t *)body, strlen(body)};
	struct sigv4_credentials c = {"AKIDBENCH", "benchsecret", NULL};
	struct sigv4_params p = {.region = "us-east-1", .service = "kms", .timestamp = time(NULL), .normalize_path = true};
	struct sigv4_result res;
	if (sigv4_sign(&req, &c, &p, &res) < 0) return -1;
	struct curl_slist *hl = NULL;
	int r = kms_http_signed_headers(h, 3, &res, NULL, &hl);
	sigv4_result_done(&res);
	if (r < 0) return -1;
	struct grow g = {};
	long status = 0;
	curl_easy_setopt(e, CURLOPT_URL, endpoint);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &g);
	if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hl);
	if (ret_body)
		*ret_body = g.p;
	else
		free(g.p);
	return status;
}

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void percentiles(uint64_t *v, size_t n, double *min, double *p50, double *p90) {
	qsort(v, n, sizeof *v, cmp_u64);
	*min = (double)v[0] / 1000.0;
	*p50 = (double)v[n / 2] / 1000.0;
	*p90 = (double)v[n * 9 / 10] / 1000.0;
}

int main(void) {
	const char *b = getenv("EML_BUILD");
	snprintf(bin, sizeof bin, "%s/bin", b ? b : "build/release");
	snprintf(dir, sizeof dir, "/tmp/bench-kms-relay-XXXXXX");
	if (!mkdtemp(dir)) return 1;
	atexit(stop_all);
	char cmd[4096], path[512];

	/* NSM simulator, local KMS, relay. */
	snprintf(cmd, sizeof cmd, "'%s/eml' dev ca init '%s/ca' >/dev/null", bin, dir);
	if (system(cmd) != 0) return fprintf(stderr, "cannot create a dev CA\n"), 1;
	snprintf(cmd, sizeof cmd, "exec '%s/eml-nsm-sim' --ca '%s/ca' --listen 'unix:%s/nsm.sock' 2>/dev/null", bin, dir, dir);
	children[0] = spawn(cmd);
	snprintf(path, sizeof path, "%s/creds", dir);
	FILE *f = fopen(path, "w");
	if (!f) return 1;
	fprintf(f, "AKIDBENCH benchsecret\n");
	fclose(f);
	snprintf(cmd, sizeof cmd,
		 "exec '%s/eml-kms-local' --keys '%s/keys' --credentials '%s/creds' --attestation-root '%s/ca/root.pem' "
		 "--print-address >'%s/addr' 2>/dev/null",
		 bin, dir, dir, dir, dir);
	children[1] = spawn(cmd);
	snprintf(path, sizeof path, "%s/addr", dir);
	if (wait_path(path) < 0) return fprintf(stderr, "eml-kms-local did not start\n"), 1;
	usleep(100000);
	uint8_t *addr;
	size_t al;
	if (read_file(path, 256, &addr, &al) < 0) return 1;
	addr[strcspn((char *)addr, "\n")] = 0;
	snprintf(host, sizeof host, "%s", (char *)addr + 4);
	snprintf(endpoint, sizeof endpoint, "http://%s/", host);
	free(addr);
	snprintf(cmd, sizeof cmd,
		 "AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=benchsecret exec '%s/eml-kms-relay' --listen "
		 "'unix:%s/relay.sock' --region us-east-1 --endpoint '%s' %s 2>/dev/null",
		 bin, dir, endpoint, getenv("EML_BENCH_RELAY_ARGS") ? getenv("EML_BENCH_RELAY_ARGS") : "");
	children[2] = spawn(cmd);
	snprintf(path, sizeof path, "%s/relay.sock", dir);
	if (wait_path(path) < 0) return fprintf(stderr, "eml-kms-relay did not start\n"), 1;
	snprintf(path, sizeof path, "%s/nsm.sock", dir);
	if (wait_path(path) < 0) return fprintf(stderr, "eml-nsm-sim did not start\n"), 1;

	/* A recipient key and one attestation document for it, reused by every request (fresh for 5 minutes). */
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	uint8_t *spki = NULL;
	int sl = i2d_PUBKEY(rsa, &spki);
	snprintf(path, sizeof path, "%s/spki.der", dir);
	if (sl <= 0 || write_file(path, spki, (size_t)sl, 0644) < 0) return 1;
	snprintf(cmd, sizeof cmd, "'%s/eml' attestation request --device 'unix:%s/nsm.sock' --public-key '%s' -o '%s/doc'",
		 bin, dir, path, dir);
	if (system(cmd) != 0) return fprintf(stderr, "no attestation document\n"), 1;
	snprintf(path, sizeof path, "%s/doc", dir);
	uint8_t *doc;
	size_t dl;
	char *doc64;
	if (read_file(path, 1 << 16, &doc, &dl) < 0 || base64_encode(doc, dl, &doc64) < 0) return 1;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *e = curl_easy_init();
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	char *resp = NULL;
	if (direct(e, "TrentService.CreateKey", "{}", &resp) != 200) return fprintf(stderr, "CreateKey failed\n"), 1;
	json_object *o = json_tokener_parse(resp), *m, *k;
	free(resp);
	if (!o || !json_object_object_get_ex(o, "KeyMetadata", &m) || !json_object_object_get_ex(m, "KeyId", &k)) return 1;
	char body[32768];
	snprintf(body, sizeof body,
		 "{\"KeyId\":\"%s\",\"NumberOfBytes\":32,\"Recipient\":{\"KeyEncryptionAlgorithm\":\"RSAES_OAEP_SHA_256\","
		 "\"AttestationDocument\":\"%s\"}}",
		 json_object_get_string(k), doc64);
	json_object_put(o);
	if (direct(e, "TrentService.GenerateDataKey", body, &resp) != 200) return fprintf(stderr, "GenerateDataKey failed\n"), 1;
	o = json_tokener_parse(resp);
	free(resp);
	json_object *blob;
	if (!o || !json_object_object_get_ex(o, "CiphertextBlob", &blob)) return 1;
	snprintf(body, sizeof body,
		 "{\"CiphertextBlob\":\"%s\",\"Recipient\":{\"KeyEncryptionAlgorithm\":\"RSAES_OAEP_SHA_256\","
		 "\"AttestationDocument\":\"%s\"}}",
		 json_object_get_string(blob), doc64);
	json_object_put(o);

	struct eml_addr ra;
	int fd = -1;
	snprintf(path, sizeof path, "unix:%s/relay.sock", dir);
	if (addr_parse(path, &ra) < 0 || socket_connect_deadline(&ra, 5000000, &fd) < 0 || fd_set_nonblock(fd, 0) < 0)
		return fprintf(stderr, "cannot connect to the relay\n"), 1;
	uint8_t *payload;
	size_t pl;
	if (kmsproto_request_encode("TrentService.Decrypt", body, &payload, &pl) < 0) return 1;

	printf("Decrypt with a Recipient, %d requests per round, %d rounds (ms)\n", N, ROUNDS);
	double over[ROUNDS];
	for (int round = 0; round < ROUNDS; round++) {
		uint64_t dt[N], rt[N];
		/* Interleave so both paths see the same machine load. */
		for (int i = 0; i < N; i++) {
			uint64_t t0 = now_monotonic_usec();
			if (direct(e, "TrentService.Decrypt", body, NULL) != 200) return fprintf(stderr, "direct Decrypt failed\n"), 1;
			uint64_t t1 = now_monotonic_usec();
			struct frame_header h;
			uint8_t *ans = NULL;
			if (frame_write(fd, FRAME_REQUEST, (uint32_t)i, payload, pl) < 0 ||
			    frame_read(fd, KMSPROTO_MAX_RESPONSE, &h, &ans) < 0 || h.type != FRAME_RESPONSE)
				return fprintf(stderr, "relay Decrypt failed\n"), 1;
			uint64_t t2 = now_monotonic_usec();
			free(ans);
			dt[i] = t1 - t0;
			rt[i] = t2 - t1;
		}
		double dmin, d50, d90, rmin, r50, r90;
		percentiles(dt, N, &dmin, &d50, &d90);
		percentiles(rt, N, &rmin, &r50, &r90);
		over[round] = r50 - d50;
		printf("round %d: direct min %.3f p50 %.3f p90 %.3f | via relay min %.3f p50 %.3f p90 %.3f | relay adds p50 "
		       "%.3f, min %.3f\n",
		       round + 1, dmin, d50, d90, rmin, r50, r90, r50 - d50, rmin - dmin);
	}
	double best = over[0];
	for (int i = 1; i < ROUNDS; i++) best = MIN(best, over[i]);
	/* median of the per-round overheads */
	for (int i = 0; i < ROUNDS; i++)
		for (int j = i + 1; j < ROUNDS; j++)
			if (over[j] < over[i]) {
				double t = over[i];
				over[i] = over[j];
				over[j] = t;
			}
	printf("relay overhead at p50: best %.3f ms, median %.3f ms (target <= 1 ms)\n", best, over[ROUNDS / 2]);
	close(fd);
	free(payload);
	free(doc);
	free(doc64);
	OPENSSL_free(spki);
	EVP_PKEY_free(rsa);
	curl_easy_cleanup(e);
	curl_global_cleanup();
	return 0;
}
