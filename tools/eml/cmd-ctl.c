/* cmd-ctl.c: `eml ctl load FILE` and `eml ctl status`: the operator's side of eml-inferenced's control port
 * (lib/ctlproto.h). A load streams the sealed model in CTL frames and watches for an early answer (the daemon
 * refuses as soon as it knows: bad signature, KMS refusal, tampering), so a refusal is reported, not a broken
 * pipe. */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>

#include "addr.h"
#include "command.h"
#include "ctlproto.h"
#include "frame.h"
#include "macro.h"
#include "socket.h"
#include "util.h"

#define CONNECT_TIMEOUT_USEC (5 * 1000000ull)
#define REPLY_TIMEOUT_MS (300 * 1000)

static int ctl_connect(const char *where, int *ret_fd) {
	struct eml_addr a;
	int r = addr_parse(where, &a);
	if (r < 0) {
		fprintf(stderr, "error: bad --control address %s: %s\n", where, addr_strerror(r));
		return r;
	}
	if ((r = socket_connect_deadline(&a, CONNECT_TIMEOUT_USEC, ret_fd)) < 0) {
		fprintf(stderr, "error: cannot connect to %s: %s\n", where, strerror(-r));
		return r;
	}
	fd_set_nonblock(*ret_fd, 0);
	return 0;
}

static int send_frame(int fd, uint32_t seq, const void *p, size_t n) {
	uint8_t h[FRAME_HEADER_SIZE];
	frame_header_encode(&(struct frame_header){FRAME_CTL, seq, (uint32_t)n}, h);
	int r = write_all(fd, h, sizeof h);
	return r < 0 ? r : write_all(fd, p, n);
}

static int read_reply(int fd, struct ctl_reply *rep) {
	struct frame_decoder d;
	frame_decoder_init(&d, CTL_MAX_REPLY);
	uint8_t buf[4096];
	int r;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if ((r = poll(&p, 1, REPLY_TIMEOUT_MS)) <= 0) {
			r = r == 0 ? -ETIMEDOUT : negerrno();
			break;
		}
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) {
			r = n == 0 ? -ECONNRESET : negerrno();
			break;
		}
		size_t off = 0, used;
		r = 0;
		while (off < (size_t)n && r == 0) {
			r = frame_decoder_feed(&d, buf + off, (size_t)n - off, &used);
			off += used;
		}
		if (r < 0) break;
		if (r == 1) {
			struct frame_header h;
			_cleanup_free_ uint8_t *payload = NULL;
			if ((r = frame_decoder_take(&d, &h, &payload)) == 0)
				r = h.type == FRAME_CTL && payload ? ctl_reply_decode(payload, h.length, rep) : -EBADMSG;
			break;
		}
	}
	frame_decoder_free(&d);
	return r;
}

static void print_reply(const struct ctl_reply *rep, bool with_load) {
	json_object *j = json_object_new_object(), *m;
	json_object_object_add(j, "ok", json_object_new_boolean(rep->ok));
	if (rep->has_model) {
		char hex[65];
		hex_encode(rep->manifest_sha256, 32, hex);
		m = json_object_new_object();
		json_object_object_add(m, "model_id", json_object_new_string(rep->model_id));
		json_object_object_add(m, "version", json_object_new_string(rep->version));
		json_object_object_add(m, "manifest_sha256", json_object_new_string(hex));
	} else
		m = NULL;
	json_object_object_add(j, "model", m);
	json_object_object_add(j, "loads", json_object_new_uint64(rep->loads));
	json_object_object_add(j, "load_failures", json_object_new_uint64(rep->load_failures));
	if (with_load) json_object_object_add(j, "load_ms", json_object_new_uint64(rep->load_ms));
	json_object_object_add(j, "security_mode", json_object_new_string(rep->security_mode));
	printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	json_object_put(j);
}

static const char *control_option(int argc, char **argv, const char *cmd, int *ret_rc) {
	static const struct option opts[] = {{"control", required_argument, NULL, 'c'}, {}};
	const char *where = getenv("EML_CONTROL");
	int c;
	*ret_rc = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		if (c != 'c') {
			*ret_rc = command_usage(cmd);
			return NULL;
		}
		where = optarg;
	}
	if (!where) {
		fprintf(stderr, "error: no control address: give --control ADDR or set EML_CONTROL\n");
		*ret_rc = 2;
	}
	return where;
}

static int verb_status(int argc, char **argv) {
	int rc;
	const char *where = control_option(argc, argv, "ctl status", &rc);
	if (!where) return rc;
	if (optind != argc) return command_usage("ctl status");
	_cleanup_close_ int fd = -1;
	if (ctl_connect(where, &fd) < 0) return 1;
	_cleanup_free_ uint8_t *req = NULL;
	size_t len;
	struct ctl_reply rep;
	int r = ctl_request_encode(&(struct ctl_request){.op = CTL_OP_STATUS}, &req, &len);
	if (r == 0) r = send_frame(fd, 0, req, len);
	if (r == 0) r = read_reply(fd, &rep);
	if (r < 0) {
		fprintf(stderr, "error: %s: %s\n", where, strerror(-r));
		return 1;
	}
	print_reply(&rep, false);
	return rep.ok ? 0 : 1;
}
EML_COMMAND(ctl_status, "ctl status", "[--control ADDR]", "show eml-inferenced's live model and counters",
	    verb_status);

static int verb_load(int argc, char **argv) {
	int rc;
	const char *where = control_option(argc, argv, "ctl load", &rc);
	if (!where) return rc;
	if (optind + 1 != argc) return command_usage("ctl load");
	const char *path = argv[optind];
	_cleanup_close_ int in = open(path, O_RDONLY | O_CLOEXEC), fd = -1;
	struct stat st;
	if (in < 0 || fstat(in, &st) < 0) {
		fprintf(stderr, "error: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (st.st_size <= 0 || (uint64_t)st.st_size > CTL_MAX_MODEL_BYTES) {
		fprintf(stderr, "error: %s: size %lld out of range\n", path, (long long)st.st_size);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN); /* a refusal closes the connection while we send: read the answer instead */
	if (ctl_connect(where, &fd) < 0) return 1;
	_cleanup_free_ uint8_t *req = NULL, *buf = malloc(CTL_MAX_DATA);
	size_t len;
	int r = buf ? ctl_request_encode(&(struct ctl_request){.op = CTL_OP_LOAD, .size = (uint64_t)st.st_size},
					 &req, &len)
		    : -ENOMEM;
	if (r == 0) r = send_frame(fd, 0, req, len);
	uint32_t seq = 1;
	for (uint64_t off = 0; r == 0 && off < (uint64_t)st.st_size; seq++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 0) > 0) break; /* an early answer: a refusal */
		ssize_t n = read(in, buf, CTL_MAX_DATA);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) {
			fprintf(stderr, "error: %s: %s\n", path, n < 0 ? strerror(errno) : "changed while loading");
			return 1;
		}
		if (send_frame(fd, seq, buf, (size_t)n) < 0) break;
		off += (uint64_t)n;
	}
	struct ctl_reply rep;
	if (r == 0) r = read_reply(fd, &rep);
	if (r < 0) {
		fprintf(stderr, "error: %s: no answer: %s\n", where, strerror(-r));
		return 1;
	}
	if (!rep.ok) {
		fprintf(stderr, "error: %s: %s\n", rep.error, rep.message);
		print_reply(&rep, false);
		return 1;
	}
	print_reply(&rep, true);
	return 0;
}
EML_COMMAND(ctl_load, "ctl load", "FILE.emodel [--control ADDR]",
	    "stream a sealed model to eml-inferenced, which unseals it and makes it live", verb_load);
