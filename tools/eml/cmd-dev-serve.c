/* cmd-dev-serve.c: `eml dev serve`: a development stand-in for the enclave's session service. It serves the
 * attested session (lib/session) on --listen, one connection at a time, with attestation documents from an
 * NSM (eml-nsm-sim in dev mode), embeddings from a local model directory, and AIR receipts signed with a key
 * made at start. Not an enclave: no sealed model, no KMS; it exists so that clients (eml embed --endpoint,
 * lib/eml_client) can be developed and tested against the real protocol on one machine. */
#include <getopt.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "addr.h"
#include "air.h"
#include "attest.h"
#include "audit.h"
#include "cbor.h"
#include "command.h"
#include "eml_client.h"
#include "embedder.h"
#include "macro.h"
#include "nsm-transport.h"
#include "nsm.h"
#include "session-io.h"
#include "session.h"
#include "socket.h"
#include "util.h"

struct server {
	Nsm *nsm;
	struct embedder *emb;
	struct bert_ctx *ctx;
	uint8_t receipt_seed[32];
	uint8_t model_hash[32];
	char model_id[64];
	SessionServer *s;
	AttestDoc *doc; /* this session's document: its PCRs go into receipts */
};

static int make_doc(void *userdata, const uint8_t *nonce, size_t nonce_len, const uint8_t *pk, size_t pk_len,
		    const uint8_t *ud, size_t ud_len, uint8_t **ret, size_t *ret_len) {
	struct server *sv = userdata;
	int r = nsm_attestation(sv->nsm, ud, ud_len, nonce, nonce_len, pk, pk_len, ret, ret_len);
	if (r < 0)
		return r;
	attest_doc_free(sv->doc);
	sv->doc = NULL;
	return attest_parse(*ret, *ret_len, &sv->doc, NULL, NULL, 0);
}

static int handle(void *userdata, uint32_t seq, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) {
	struct server *sv = userdata;
	struct ecbor_limits lim = ECBOR_LIMITS_DEFAULT;
	lim.deterministic = true;
	_cleanup_cbor_ cbor_item_t *m = NULL;
	uint64_t t0 = now_monotonic_usec();
	if (ecbor_decode(req, len, &lim, &m) < 0 || !cbor_isa_map(m) || cbor_map_size(m) != 2 ||
	    !ecbor_tstr_equal(ecbor_map_get_text(m, "op"), "embed"))
		return -EBADMSG;
	cbor_item_t *in = ecbor_map_get_text(m, "inputs");
	if (!in || !cbor_isa_array(in) || cbor_array_size(in) == 0 || cbor_array_size(in) > EML_CLIENT_MAX_INPUTS)
		return -EBADMSG;
	size_t n = cbor_array_size(in);
	_cleanup_free_ char **texts = calloc(n, sizeof *texts);
	_cleanup_free_ float *vec = malloc(n * sv->emb->dim * sizeof(float));
	int r = texts && vec ? 0 : -ENOMEM;
	for (size_t i = 0; i < n && r == 0; i++)
		r = ecbor_get_tstr_dup(cbor_array_handle(in)[i], &texts[i]);
	size_t tokens = 0;
	if (r == 0)
		r = embedder_embed(sv->emb, sv->ctx, (const char *const *)texts, n, vec, &tokens);
	for (size_t i = 0; i < n && texts; i++)
		free_secret(texts[i], texts[i] ? strlen(texts[i]) : 0);
	if (r < 0)
		return r;

	struct air_claims c = {
		.iss = "eml-dev-serve", .iat = now_realtime_usec() / 1000000, .model_id = sv->model_id,
		.model_version = "dev", .measurement_type = AIR_PLATFORM_NITRO, .policy_version = "dev",
		.security_mode = "development", .sequence_number = seq, .model_hash_scheme = "sha256-single",
		.execution_time_ms = (now_monotonic_usec() - t0) / 1000,
	};
	RAND_bytes(c.cti, sizeof c.cti);
	memcpy(c.model_hash, sv->model_hash, 32);
	SHA256(req, len, c.request_hash);
	SHA256((const uint8_t *)vec, n * sv->emb->dim * sizeof(float), c.response_hash);
	memcpy(c.attestation_doc_hash, session_server_doc_sha256(sv->s), 32);
	for (size_t i = 0; i < AIR_PCR_SLOTS; i++)
		if (sv->doc && (sv->doc->pcr_mask & (1u << air_pcr_index[i]))) {
			c.has_pcr[i] = true;
			memcpy(c.pcr[i], sv->doc->pcrs[air_pcr_index[i]], 48);
		}
	_cleanup_free_ uint8_t *receipt = NULL;
	size_t rl;
	r = air_sign(&c, sv->receipt_seed, &receipt, &rl);
	if (r < 0)
		return r;
	/* One AUDIT record per request for the relay (metadata only), as the enclave writes them. */
	struct audit_record a = {.inputs = n, .tokens = tokens, .duration_us = now_monotonic_usec() - t0};
	SHA256(receipt, rl, a.receipt_sha256);
	snprintf(a.model_id, sizeof a.model_id, "%s", sv->model_id);
	snprintf(a.status, sizeof a.status, "ok");
	_cleanup_free_ uint8_t *audit = NULL;
	size_t al;
	if (audit_encode(&a, &audit, &al) == 0)
		(void)session_server_audit(sv->s, seq, audit, al);
	return eml_embed_response_encode(vec, n, sv->emb->dim, receipt, rl, ret, ret_len);
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) { stop = 1; }

static int verb_serve(int argc, char **argv) {
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'}, {"nsm", required_argument, NULL, 'n'},
		{"model", required_argument, NULL, 'm'},  {},
	};
	const char *listen_addr = NULL, *device = NSM_DEVICE_DEFAULT, *model = NULL;
	int c, r;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		switch (c) {
		case 'l': listen_addr = optarg; break;
		case 'n': device = optarg; break;
		case 'm': model = optarg; break;
		default: return command_usage(argv[0]);
		}
	}
	if (!listen_addr || !model || optind != argc)
		return command_usage(argv[0]);

	struct server sv = {0};
	char err[512] = "", path[4096];
	if ((r = embedder_load_dir(model, 0, &sv.emb, err, sizeof err)) < 0 ||
	    (r = embedder_ctx_new(sv.emb, 1, &sv.ctx)) < 0) {
		fprintf(stderr, "error: MODEL: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	/* The model's identity for receipts and user_data: SHA-256 of its weights file. */
	snprintf(path, sizeof path, "%s/model.safetensors", model);
	_cleanup_free_ uint8_t *weights = NULL;
	size_t wl;
	if ((r = read_file(path, EMBEDDER_MAX_MODEL_BYTES, &weights, &wl)) < 0) {
		fprintf(stderr, "error: MODEL: %s: %s\n", path, strerror(-r));
		return 1;
	}
	SHA256(weights, wl, sv.model_hash);
	free(TAKE_PTR(weights));
	const char *base = strrchr(model, '/');
	snprintf(sv.model_id, sizeof sv.model_id, "%s", base && base[1] ? base + 1 : model);
	if ((r = nsm_open(device, &sv.nsm)) < 0) {
		fprintf(stderr, "error: NSM: cannot open %s: %s\n", device, strerror(-r));
		return 1;
	}
	RAND_priv_bytes(sv.receipt_seed, sizeof sv.receipt_seed);
	SessionServerConfig cfg = {.make_attestation = make_doc, .userdata = &sv};
	air_public_key(sv.receipt_seed, cfg.user_data.receipt_key);
	cfg.user_data.has_model = true;
	memcpy(cfg.user_data.model_hash, sv.model_hash, 32);

	struct eml_addr a;
	_cleanup_close_ int lfd = -1;
	if (addr_parse(listen_addr, &a) < 0 || (r = socket_listen(&a, 16, &lfd)) < 0) {
		fprintf(stderr, "error: LISTEN: %s: %s\n", listen_addr, r < 0 ? strerror(-r) : "not an address");
		return 1;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	fprintf(stderr, "eml dev serve: listening on %s, model %s\n", listen_addr, sv.model_id);
	while (!stop) {
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		if (poll(&p, 1, 500) <= 0)
			continue;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (session_server_new(&cfg, now_monotonic_usec(), &sv.s) == 0) {
			r = session_server_serve_fd(sv.s, fd, handle, &sv);
			const SessionStatus *st = session_server_status(sv.s);
			fprintf(stderr, "session: %s%s%s\n", session_state_name(st->state),
				st->state == SESSION_FAILED ? " " : "",
				st->state == SESSION_FAILED
					? (st->error == SESSION_REMOTE ? st->remote_code : session_error_name(st->error))
					: "");
			sv.s = session_server_free(sv.s);
		}
		close(fd);
	}
	attest_doc_free(sv.doc);
	nsm_close(sv.nsm);
	bert_ctx_free(sv.ctx);
	embedder_free(sv.emb);
	wipe(sv.receipt_seed, sizeof sv.receipt_seed);
	return 0;
}
EML_COMMAND(dev_serve, "dev serve", "--listen ADDR --model DIR [--nsm /dev/nsm|unix:PATH]",
	    "development stand-in for the enclave's session service (attested sessions, local model)", verb_serve);
