/* eml-nsm-sim: a stand-in for the Nitro Secure Module on a unix socket, for dev mode and tests. It answers
 * the NSM's CBOR protocol (lib/nsm) with the device's semantics: PCRs 0-15 locked at start, 16-31 extendable
 * (SHA-384 extend) and lockable, GetRandom of 256 bytes, DescribeNSM, the device's size limits and error
 * variants; and it signs attestation documents shaped byte for byte like AWS's (untagged COSE_Sign1 ES384,
 * the NSM payload field order, nulls for absent fields) with a dev CA (devca) whose 3-hour leaf it renews.
 * Transport: each message is a u32 big-endian length then that many bytes, both ways (man eml-nsm-sim(1)). */
#include <getopt.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "attest.h"
#include "cose.h"
#include "devca.h"
#include "eif.h"
#include "log.h"
#include "notify.h"
#include "nsm-transport.h"
#include "nsm.h"
#include "socket.h"
#include "util.h"

#define MAX_CLIENTS 64
#define LOCKED_AT_START 16       /* PCRs 0..15: the image measurements, read-only in an enclave */
#define RENEW_BEFORE_S (2 * 3600) /* renew the leaf once less than this validity is left */

struct sim {
	uint8_t pcr[ATTEST_PCR_COUNT][ATTEST_PCR_LEN];
	uint32_t locked;
	DevCa *ca;
	EVP_PKEY *leaf_key;
	uint8_t *leaf_der;
	size_t leaf_len;
	time_t leaf_issued;
	char module_id[64];
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) { stop = 1; }

static int renew_leaf(struct sim *s, time_t now) {
	EVP_PKEY *key = NULL;
	uint8_t *der = NULL;
	size_t len;
	int r = devca_issue_leaf(s->ca, s->module_id, now, &key, &der, &len);
	if (r < 0) return r;
	EVP_PKEY_free(s->leaf_key);
	OPENSSL_free(s->leaf_der);
	s->leaf_key = key;
	s->leaf_der = der;
	s->leaf_len = len;
	s->leaf_issued = now;
	log_info("issued a new attestation leaf certificate, valid 3 hours");
	return 0;
}

static int respond_error(enum nsm_error e, uint8_t **ret, size_t *ret_len) {
	struct nsm_response s = {.op = NSM_OP_ERROR, .error = e};
	return nsm_response_encode(&s, ret, ret_len);
}

static int attestation(struct sim *s, const struct nsm_request *q, uint8_t **ret, size_t *ret_len) {
	if ((q->user_data && q->user_data_len > ATTEST_USER_DATA_MAX) || (q->nonce && q->nonce_len > ATTEST_NONCE_MAX) ||
	    (q->public_key && q->public_key_len > ATTEST_PUBLIC_KEY_MAX))
		return respond_error(NSM_E_INPUT_TOO_LARGE, ret, ret_len);
	/* AWS documents public_key as 1..1024 bytes: an empty one is not a key */
	if (q->public_key && q->public_key_len == 0) return respond_error(NSM_E_INVALID_ARGUMENT, ret, ret_len);
	uint64_t now_ms = now_realtime_usec() / 1000;
	time_t now = (time_t)(now_ms / 1000);
	if (!s->leaf_key || now - s->leaf_issued > DEVCA_LEAF_LIFETIME_S - RENEW_BEFORE_S) {
		if (renew_leaf(s, now) < 0) return respond_error(NSM_E_INTERNAL_ERROR, ret, ret_len);
	}
	const struct x509_der *bundle;
	size_t n = devca_bundle(s->ca, &bundle);
	struct attest_payload p = {
		.module_id = s->module_id,
		.timestamp_ms = now_ms,
		.pcr_mask = 0xffffu, /* the device reports PCRs 0..15 */
		.pcrs = (const uint8_t(*)[ATTEST_PCR_LEN])s->pcr,
		.certificate = {s->leaf_der, s->leaf_len},
		.cabundle = bundle,
		.n_cabundle = n,
		.public_key = q->public_key, .public_key_len = q->public_key_len,
		.user_data = q->user_data, .user_data_len = q->user_data_len,
		.nonce = q->nonce, .nonce_len = q->nonce_len,
	};
	_cleanup_free_ uint8_t *payload = NULL, *doc = NULL;
	size_t payload_len, doc_len;
	if (attest_payload_encode(&p, &payload, &payload_len) < 0 ||
	    cose_sign1_sign(COSE_ALG_ES384, s->leaf_key, payload, payload_len, NULL, 0, false, &doc, &doc_len) < 0)
		return respond_error(NSM_E_INTERNAL_ERROR, ret, ret_len);
	if (doc_len + 32 > NSM_RESPONSE_MAX) return respond_error(NSM_E_BUFFER_TOO_SMALL, ret, ret_len);
	struct nsm_response out = {.op = NSM_OP_ATTESTATION, .data = doc, .data_len = doc_len};
	return nsm_response_encode(&out, ret, ret_len);
}

/* One request in, one response out (always a response: malformed input gets InvalidArgument). */
static int handle(struct sim *s, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) {
	struct nsm_request q;
	if (nsm_request_decode(req, len, &q) < 0) return respond_error(NSM_E_INVALID_ARGUMENT, ret, ret_len);
	struct nsm_response out = {.op = q.op};
	uint8_t buf[NSM_RANDOM_MAX];
	int r;
	switch (q.op) {
	case NSM_OP_DESCRIBE_PCR:
		if (q.index >= ATTEST_PCR_COUNT) {
			r = respond_error(NSM_E_INVALID_INDEX, ret, ret_len);
			break;
		}
		out.lock = s->locked & (1u << q.index);
		out.data = s->pcr[q.index];
		out.data_len = ATTEST_PCR_LEN;
		r = nsm_response_encode(&out, ret, ret_len);
		break;
	case NSM_OP_EXTEND_PCR:
		if (q.index >= ATTEST_PCR_COUNT)
			r = respond_error(NSM_E_INVALID_INDEX, ret, ret_len);
		else if (s->locked & (1u << q.index))
			r = respond_error(NSM_E_READ_ONLY_INDEX, ret, ret_len);
		else if (q.data_len > NSM_PCR_DATA_MAX)
			r = respond_error(NSM_E_INPUT_TOO_LARGE, ret, ret_len);
		else {
			/* PCR := SHA-384(PCR || data), as the device extends */
			EVP_MD_CTX *c = EVP_MD_CTX_new();
			bool ok = c && EVP_DigestInit_ex(c, EVP_sha384(), NULL) &&
				  EVP_DigestUpdate(c, s->pcr[q.index], ATTEST_PCR_LEN) &&
				  EVP_DigestUpdate(c, q.data, q.data_len) && EVP_DigestFinal_ex(c, s->pcr[q.index], NULL);
			EVP_MD_CTX_free(c);
			if (!ok)
				r = respond_error(NSM_E_INTERNAL_ERROR, ret, ret_len);
			else {
				out.data = s->pcr[q.index];
				out.data_len = ATTEST_PCR_LEN;
				r = nsm_response_encode(&out, ret, ret_len);
			}
		}
		break;
	case NSM_OP_LOCK_PCR:
		if (q.index >= ATTEST_PCR_COUNT)
			r = respond_error(NSM_E_INVALID_INDEX, ret, ret_len);
		else {
			s->locked |= 1u << q.index;
			r = nsm_response_encode(&out, ret, ret_len);
		}
		break;
	case NSM_OP_LOCK_PCRS:
		if (q.index > ATTEST_PCR_COUNT)
			r = respond_error(NSM_E_INVALID_INDEX, ret, ret_len);
		else {
			s->locked |= q.index == 32 ? UINT32_MAX : (1u << q.index) - 1;
			r = nsm_response_encode(&out, ret, ret_len);
		}
		break;
	case NSM_OP_DESCRIBE_NSM:
		out.desc = (struct nsm_description){.version_major = 1, .max_pcrs = ATTEST_PCR_COUNT,
						    .locked_mask = s->locked};
		snprintf(out.desc.module_id, sizeof out.desc.module_id, "%s", s->module_id);
		strcpy(out.desc.digest, "SHA384");
		r = nsm_response_encode(&out, ret, ret_len);
		break;
	case NSM_OP_GET_RANDOM:
		if (RAND_bytes(buf, sizeof buf) != 1) {
			r = respond_error(NSM_E_INTERNAL_ERROR, ret, ret_len);
			break;
		}
		out.data = buf;
		out.data_len = sizeof buf;
		r = nsm_response_encode(&out, ret, ret_len);
		wipe(buf, sizeof buf);
		break;
	case NSM_OP_ATTESTATION: r = attestation(s, &q, ret, ret_len); break;
	default: r = respond_error(NSM_E_INVALID_OPERATION, ret, ret_len); break;
	}
	nsm_request_done(&q);
	return r;
}

/* PCR values: either nitro-cli's {"Measurements": {"PCR0": hex, ...}} (what `eml eif build --pcrs` writes)
 * or a plain {"0": hex, "8": hex}. Only 0..15 (the locked, measured bank) may be set. */
static int load_pcrs(const char *path, struct sim *s, uint32_t *ret_set) {
	_cleanup_free_ uint8_t *text = NULL;
	size_t len;
	int r = read_file(path, 1 << 20, &text, &len);
	if (r < 0) return r;
	json_object *root = json_tokener_parse((const char *)text);
	if (!root || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return -EINVAL;
	}
	json_object *obj = root, *m;
	bool nitro = json_object_object_get_ex(root, "Measurements", &m);
	if (nitro) obj = m;
	r = 0;
	json_object_object_foreach(obj, key, val) {
		uint64_t i;
		const char *k = key;
		if (nitro) {
			if (strcmp(key, "HashAlgorithm") == 0) continue;
			if (strncmp(key, "PCR", 3) != 0) {
				r = -EINVAL;
				break;
			}
			k += 3;
		}
		if (parse_u64(k, LOCKED_AT_START - 1, &i) < 0 || !json_object_is_type(val, json_type_string) ||
		    json_object_get_string_len(val) != 2 * ATTEST_PCR_LEN ||
		    hex_decode(json_object_get_string(val), s->pcr[i], ATTEST_PCR_LEN) != ATTEST_PCR_LEN) {
			r = -EINVAL;
			break;
		}
		*ret_set |= 1u << i;
	}
	json_object_put(root);
	return r;
}

/* PCR0/1/2 as the EIF's measurements (lib/eif), so that a dev enclave presents the PCR0 the production image
 * would and KMS policies written for that image apply unchanged. */
static int load_eif(const char *path, struct sim *s, const char **ret_error) {
	struct eif_info info;
	int r = eif_measure_file(path, &info, ret_error);
	if (r < 0) return r;
	for (size_t i = 0; i < 3; i++) memcpy(s->pcr[i], info.pcrs.pcr[i], ATTEST_PCR_LEN);
	return 0;
}

static int serve_one(struct sim *s, int fd) {
	static uint8_t req[NSM_REQUEST_MAX];
	size_t len;
	int r = nsm_frame_read(fd, req, sizeof req, &len);
	uint8_t *resp = NULL;
	size_t resp_len;
	if (r == -EMSGSIZE) {
		/* larger than the device's request limit: answer as the device would, then drop the stream */
		if (respond_error(NSM_E_INPUT_TOO_LARGE, &resp, &resp_len) == 0) nsm_frame_write(fd, resp, resp_len);
		free(resp);
		return r;
	}
	if (r < 0) return r;
	r = handle(s, req, len, &resp, &resp_len);
	if (r < 0) return r;
	r = nsm_frame_write(fd, resp, resp_len);
	free(resp);
	return r;
}

static void usage(void) {
	fprintf(stderr, "usage: eml-nsm-sim --ca DIR [--listen unix:PATH] [--pcrs FILE] [--eif FILE] [--module-id ID]\n"
			"See eml-nsm-sim(1).\n");
}

int main(int argc, char **argv) {
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'}, {"pcrs", required_argument, NULL, 'p'},
		{"ca", required_argument, NULL, 'c'},     {"module-id", required_argument, NULL, 'm'},
		{"eif", required_argument, NULL, 'e'},    {"help", no_argument, NULL, 'h'},
		{},
	};
	char *listen_addr = NULL;
	const char *pcrs_path = NULL, *eif_path = NULL, *ca_dir = NULL, *module_id = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (c) {
		case 'l': listen_addr = optarg; break;
		case 'p': pcrs_path = optarg; break;
		case 'e': eif_path = optarg; break;
		case 'c': ca_dir = optarg; break;
		case 'm': module_id = optarg; break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (optind != argc || !ca_dir) {
		usage();
		return 2;
	}
	log_setup("eml-nsm-sim");
	static struct sim s;
	int r = devca_load(ca_dir, &s.ca);
	if (r < 0) fatal("cannot load the dev CA from %s: %s (create it with `eml dev ca init`)", ca_dir, strerror(-r));
	uint32_t set = 0;
	if (pcrs_path && (r = load_pcrs(pcrs_path, &s, &set)) < 0)
		fatal("cannot load PCRs from %s: %s", pcrs_path, r == -EINVAL ? "not a PCR JSON file" : strerror(-r));
	if (eif_path) {
		/* two sources for one PCR would leave the document's value to option order: refuse */
		if (set & 7u) fatal("--pcrs sets PCR0, 1 or 2, which --eif measures: give them once");
		const char *why = NULL;
		if ((r = load_eif(eif_path, &s, &why)) < 0)
			fatal("cannot measure %s: %s", eif_path, why ? why : strerror(-r));
	}
	s.locked = (1u << LOCKED_AT_START) - 1;
	if (module_id)
		snprintf(s.module_id, sizeof s.module_id, "%s", module_id);
	else {
		uint8_t id[16];
		char hex[33];
		RAND_bytes(id, sizeof id);
		hex_encode(id, sizeof id, hex);
		/* the shape of a real module id: i-<17 hex>-enc<16 hex> */
		snprintf(s.module_id, sizeof s.module_id, "i-%.17s-enc%.16s", hex, hex + 16);
	}
	if (renew_leaf(&s, time(NULL)) < 0) fatal("cannot issue a leaf certificate from %s", ca_dir);

	int *fds = NULL;
	size_t n_fds = 0;
	int activated = 0;
	r = listeners_get("nsm", 1, listen_addr ? &listen_addr : NULL, listen_addr ? 1 : 0, &fds, &n_fds, &activated);
	if (r < 0) fatal("no socket to listen on (--listen unix:PATH): %s", strerror(-r));

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	notify_ready_status("serving %s", s.module_id);
	log_struct(LOG_INFO, EML_MSG_STARTED, "MESSAGE=eml-nsm-sim ready, module %s", s.module_id, NULL);

	struct pollfd pfd[MAX_CLIENTS + 8];
	size_t n_listen = MIN(n_fds, (size_t)8), n_clients = 0;
	for (size_t i = 0; i < n_listen; i++) pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
	while (!stop) {
		if (poll(pfd, n_listen + n_clients, -1) < 0) {
			if (errno == EINTR) continue;
			fatal("poll: %m");
		}
		for (size_t i = 0; i < n_listen; i++) {
			if (!(pfd[i].revents & POLLIN)) continue;
			int fd = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0) continue;
			if (n_clients >= MAX_CLIENTS) {
				close(fd);
				continue;
			}
			/* a client that stalls mid-message must not hold the simulator */
			struct timeval tv = {.tv_sec = 2};
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
			pfd[n_listen + n_clients++] = (struct pollfd){.fd = fd, .events = POLLIN};
		}
		for (size_t i = n_listen; i < n_listen + n_clients;) {
			if (pfd[i].revents && serve_one(&s, pfd[i].fd) < 0) {
				close(pfd[i].fd);
				pfd[i] = pfd[n_listen + --n_clients];
				continue;
			}
			pfd[i].revents = 0;
			i++;
		}
	}
	notify_stopping();
	log_struct(LOG_INFO, EML_MSG_STOPPING, "MESSAGE=eml-nsm-sim stopping", NULL);
	for (size_t i = 0; i < n_listen + n_clients; i++) close(pfd[i].fd);
	free(fds);
	EVP_PKEY_free(s.leaf_key);
	OPENSSL_free(s.leaf_der);
	devca_free(s.ca);
	return 0;
}
