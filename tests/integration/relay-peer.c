/* relay-peer: the two ends of a relayed connection, for the integration tests and the relay benchmark.
 *
 *   relay-peer server ADDR [--audit] [--raw] [--hello TEXT] [--hold] [--slow-ms N] [--echo-at-eof]
 *                    [--quit-after N]
 *       frames: echo every frame back as RESPONSE (same seq); --audit also sends one AUDIT frame per REQUEST.
 *       --raw: echo bytes (--slow-ms: wait N ms first unless the data starts with "fast"); --hello: send TEXT
 *       first; --hold: accept, never answer; --echo-at-eof: echo everything once the peer half-closed;
 *       --quit-after: close each connection after N frames (an enclave dying mid-session).
 *   relay-peer stream ADDR BYTES FRAME_SIZE [--fast]
 *                                             send BYTES in REQUEST frames, check the echo (SHA-256 both
 *                                             ways), fail on any other frame type; print MiB/s. --fast (the
 *                                             benchmark): one random frame resent with its seq in its first
 *                                             bytes, each echo compared with memcmp, no hashing and no
 *                                             allocation per frame, so the peer costs less CPU than the proxy
 *                                             it measures
 *   relay-peer hold ADDR N                    open N sessions, round trip on each, all at once; then again
 *   relay-peer partial ADDR                   send half a frame, then vanish
 *   relay-peer open ADDR N SECONDS            open N connections, send nothing, exit after SECONDS
 *   relay-peer dns tcp:IP:PORT ZONE           a UDP DNS responder for "NAME IPV4 TTL" lines of ZONE
 *   relay-peer expect-error ADDR MS [oversize|garbage|idle]  send HELLO (or an oversized or bad header, or one round
 *                                             trip and go quiet); expect ERROR (strictly decoded) then EOF
 *                                             within MS; print its code and message
 *   relay-peer rr ADDR[,ADDR...] SIZE COUNT   request/response latency: print p50 and p99 in microseconds,
 *                                             a line per address (several: round trips interleaved)
 *   relay-peer raw ADDR SEND EXPECT MS [half] raw bytes: send SEND (then half-close), expect EXPECT back
 *                                             within MS
 *   relay-peer blackhole tcp:HOST:PORT        a listener whose accept queue is full: connects to it hang
 *   relay-peer free-port                      print a free tcp port on 127.0.0.1
 *   relay-peer notify PATH OUT                a service manager's notify socket: append each datagram to OUT
 *                                             as one line */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "addr.h"
#include "audit.h"
#include "cbor.h"
#include "frame.h"
#include "macro.h"
#include "socket.h"
#include "util.h"

static bool opt_audit, opt_raw, opt_hold, opt_echo_at_eof;
static uint64_t opt_slow_ms, opt_quit_after;
static const char *opt_hello;

static _Noreturn void die(const char *what, int r) {
	fprintf(stderr, "relay-peer: %s: %s\n", what, r < 0 ? strerror(-r) : "failed");
	exit(1);
}

static void nodelay(int fd) {
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails harmlessly on unix */
}

/* One writev per frame, as a real client would send it (frame_write makes two writes). */
static int send_frame(int fd, uint8_t type, uint32_t seq, const void *payload, size_t len) {
	uint8_t hdr[FRAME_HEADER_SIZE];
	frame_header_encode(&(struct frame_header){.type = type, .seq = seq, .length = (uint32_t)len}, hdr);
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)payload, len}};
	size_t total = sizeof(hdr) + len;
	while (total > 0) {
		ssize_t n = writev(fd, iov, 2);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return negerrno();
		}
		total -= (size_t)n;
		for (int i = 0; i < 2; i++) {
			size_t k = MIN((size_t)n, iov[i].iov_len);
			iov[i].iov_base = (uint8_t *)iov[i].iov_base + k;
			iov[i].iov_len -= k;
			n -= (ssize_t)k;
		}
	}
	return 0;
}

static int dial(const char *s, uint64_t timeout_usec) {
	struct eml_addr a;
	int fd, r = addr_parse(s, &a);
	if (r < 0)
		die("address", r);
	r = socket_connect_deadline(&a, timeout_usec, &fd);
	if (r < 0)
		return r;
	fd_set_nonblock(fd, 0);
	nodelay(fd);
	return fd;
}

static int read_header(int fd, struct frame_header *h) {
	uint8_t hdr[FRAME_HEADER_SIZE];
	int r = read_all(fd, hdr, sizeof hdr);
	return r < 0 ? r : frame_header_decode(hdr, 0, h);
}

/* Read len payload bytes into *buf (grown as needed, kept across calls: no allocation per frame). */
static int read_payload_into(int fd, size_t len, uint8_t **buf, size_t *cap) {
	if (len > *cap) {
		uint8_t *n = realloc(*buf, len);
		if (!n)
			return -ENOMEM;
		*buf = n;
		*cap = len;
	}
	return len ? read_all(fd, *buf, len) : 0;
}

static int read_frame_into(int fd, struct frame_header *h, uint8_t **buf, size_t *cap) {
	int r = read_header(fd, h);
	return r < 0 ? r : read_payload_into(fd, h->length, buf, cap);
}

/* Echo one frame back as RESPONSE. Payloads of 64 KiB and more are spliced socket -> pipe -> socket behind
 * the response header, so that the echo server costs the benchmark little next to the proxy it measures;
 * where splice is refused (EINVAL), or for small frames, the payload goes through buf. */
#define ECHO_SPLICE_MIN (64u * 1024)
static int echo_frame(int fd, uint8_t **buf, size_t *cap, int pipefd[2], struct frame_header *ret_h) {
	uint8_t hdr[FRAME_HEADER_SIZE];
	int r = read_header(fd, ret_h);
	if (r < 0)
		return r;
	if (ret_h->length >= ECHO_SPLICE_MIN && pipefd[0] >= 0) {
		frame_header_encode(&(struct frame_header){.type = FRAME_RESPONSE, .seq = ret_h->seq,
							   .length = ret_h->length}, hdr);
		if (send(fd, hdr, sizeof hdr, MSG_MORE | MSG_NOSIGNAL) != (ssize_t)sizeof hdr)
			return -EIO;
		for (size_t left = ret_h->length; left > 0;) {
			ssize_t n = splice(fd, NULL, pipefd[1], NULL, MIN(left, (size_t)1 << 20), SPLICE_F_MOVE);
			if (n < 0 && errno == EINVAL) { /* this socket type cannot splice: copy the rest */
				uint8_t b[65536];
				for (; left > 0; left -= MIN(left, sizeof b))
					if ((r = read_all(fd, b, MIN(left, sizeof b))) < 0 ||
					    (r = write_all(fd, b, MIN(left, sizeof b))) < 0)
						return r;
				return 0;
			}
			if (n <= 0)
				return n == 0 ? -EPIPE : negerrno();
			left -= (size_t)n;
			for (ssize_t out = 0; out < n;) {
				ssize_t m = splice(pipefd[0], NULL, fd, NULL, (size_t)(n - out),
						   SPLICE_F_MOVE | (left ? SPLICE_F_MORE : 0));
				if (m <= 0)
					return m == 0 ? -EPIPE : negerrno();
				out += m;
			}
		}
		return 0;
	}
	if ((r = read_payload_into(fd, ret_h->length, buf, cap)) < 0)
		return r;
	return send_frame(fd, FRAME_RESPONSE, ret_h->seq, *buf, ret_h->length);
}

static void *serve(void *arg) {
	int fd = (int)(intptr_t)arg;
	nodelay(fd);
	if (opt_hello)
		write_all(fd, opt_hello, strlen(opt_hello));
	if (opt_hold) {
		char b[4096];
		while (read(fd, b, sizeof(b)) > 0)
			;
	} else if (opt_echo_at_eof) { /* answers only after the peer half-closed: needs half-close to work */
		char b[65536];
		size_t have = 0;
		ssize_t n;
		while (have < sizeof(b) && (n = read(fd, b + have, sizeof(b) - have)) > 0)
			have += (size_t)n;
		write_all(fd, b, have);
	} else if (opt_raw) {
		char b[65536];
		ssize_t n;
		bool first = true;
		while ((n = read(fd, b, sizeof(b))) > 0) {
			if (first && opt_slow_ms && !(n >= 4 && memcmp(b, "fast", 4) == 0))
				usleep((useconds_t)(opt_slow_ms * 1000));
			first = false;
			if (write_all(fd, b, (size_t)n) < 0)
				break;
		}
	} else {
		uint8_t *p = NULL;
		size_t cap = 0;
		int pipefd[2] = {-1, -1};
		if (pipe2(pipefd, O_CLOEXEC) == 0)
			(void)fcntl(pipefd[1], F_SETPIPE_SZ, 1 << 20);
		for (uint64_t frames = 0; !opt_quit_after || frames < opt_quit_after; frames++) {
			struct frame_header h;
			int r = echo_frame(fd, &p, &cap, pipefd, &h);
			if (r < 0)
				break;
			if (opt_audit && h.type == FRAME_REQUEST) {
				struct audit_record a = {.inputs = 2, .tokens = 17, .duration_us = 1234};
				for (size_t i = 0; i < sizeof(a.receipt_sha256); i++)
					a.receipt_sha256[i] = (uint8_t)(h.seq + i);
				strcpy(a.model_id, "test-model");
				strcpy(a.status, "ok");
				uint8_t *b;
				size_t bl;
				if (audit_encode(&a, &b, &bl) < 0)
					break;
				r = send_frame(fd, FRAME_AUDIT, h.seq, b, bl);
				free(b);
				if (r < 0)
					break;
			}
		}
		if (pipefd[0] >= 0)
			close(pipefd[0]), close(pipefd[1]);
		free(p);
	}
	close(fd);
	return NULL;
}

static int cmd_server(const char *addr) {
	struct eml_addr a;
	int fd, r = addr_parse(addr, &a);
	if (r < 0 || (r = socket_listen(&a, 4096, &fd)) < 0)
		die("listen", r);
	fd_set_nonblock(fd, 0);
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EMFILE || errno == ENFILE)
				usleep(10000);
			continue;
		}
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 256 * 1024);
		if (pthread_create(&t, &at, serve, (void *)(intptr_t)c) != 0)
			close(c);
		pthread_attr_destroy(&at);
	}
}

struct writer {
	int fd;
	uint64_t bytes;
	size_t frame;
	uint8_t digest[32];
	const uint8_t *pattern; /* --fast: the frame resent, seq in its first bytes */
	int r;
};

/* --fast: frame seq is the pattern with seq over its first (up to) 4 bytes. */
static void stamp(uint8_t *frame, size_t n, uint32_t seq) {
	for (size_t i = 0; i < MIN(n, (size_t)4); i++)
		frame[i] = (uint8_t)(seq >> (8 * i));
}

static void *fast_writer(void *arg) {
	struct writer *w = arg;
	uint8_t *buf = malloc(w->frame);
	memcpy(buf, w->pattern, w->frame);
	for (uint32_t seq = 0; w->bytes > 0; seq++) {
		size_t n = (size_t)MIN((uint64_t)w->frame, w->bytes);
		stamp(buf, n, seq);
		if ((w->r = send_frame(w->fd, FRAME_REQUEST, seq, buf, n)) < 0)
			break;
		w->bytes -= n;
	}
	free(buf);
	return NULL;
}

static void *stream_writer(void *arg) {
	struct writer *w = arg;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t *buf = malloc(w->frame);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (uint32_t seq = 0; w->bytes > 0; seq++) {
		size_t n = (size_t)MIN((uint64_t)w->frame, w->bytes);
		for (size_t i = 0; i < n; i++) { /* xorshift: cheap bytes that differ everywhere */
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[i] = (uint8_t)x;
		}
		EVP_DigestUpdate(md, buf, n);
		w->r = send_frame(w->fd, FRAME_REQUEST, seq, buf, n);
		if (w->r < 0)
			break;
		w->bytes -= n;
	}
	EVP_DigestFinal_ex(md, w->digest, NULL);
	EVP_MD_CTX_free(md);
	free(buf);
	return NULL;
}

/* Stream bytes in frames both ways and check the echo: by SHA-256 of everything sent and received, or with
 * fast, frame by frame with memcmp against the pattern fast_writer sends (no hashing, no allocation). */
static int cmd_stream(const char *addr, uint64_t bytes, size_t frame, bool fast) {
	int fd = dial(addr, 5000000);
	if (fd < 0)
		die("connect", fd);
	uint8_t *pattern = NULL, *want = NULL, *got = NULL;
	size_t cap = 0;
	if (fast) {
		pattern = malloc(frame), want = malloc(frame);
		if (!pattern || !want || RAND_bytes(pattern, (int)frame) != 1)
			die("random", -ENOMEM);
		memcpy(want, pattern, frame);
	}
	struct writer w = {.fd = fd, .bytes = bytes, .frame = frame, .pattern = pattern};
	pthread_t t;
	uint64_t start = now_monotonic_usec(), have = 0;
	pthread_create(&t, NULL, fast ? fast_writer : stream_writer, &w);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (uint32_t seq = 0; have < bytes; seq++) {
		struct frame_header h;
		int r = read_frame_into(fd, &h, &got, &cap);
		if (r < 0)
			die("read echo", r);
		if (h.type != FRAME_RESPONSE) {
			fprintf(stderr, "relay-peer: unexpected %s frame from the relay\n", frame_type_name(h.type));
			exit(1);
		}
		if (fast) {
			size_t n = (size_t)MIN((uint64_t)frame, bytes - have);
			stamp(want, n, seq);
			if (h.seq != seq || h.length != n || memcmp(got, want, n) != 0) {
				fprintf(stderr, "relay-peer: echo of frame %u differs from what was sent\n", seq);
				exit(1);
			}
		} else
			EVP_DigestUpdate(md, got, h.length);
		have += h.length;
	}
	pthread_join(t, NULL);
	if (w.r < 0)
		die("write", w.r);
	double secs = (double)(now_monotonic_usec() - start) / 1e6;
	uint8_t d[32];
	char hs[65], hr[65];
	EVP_DigestFinal_ex(md, d, NULL);
	EVP_MD_CTX_free(md);
	hex_encode(w.digest, 32, hs);
	hex_encode(d, 32, hr);
	if (fast)
		printf("sent %" PRIu64 " recv %" PRIu64 " identical\n", bytes, have);
	else
		printf("sent %" PRIu64 " sha256 %s\nrecv %" PRIu64 " sha256 %s\n", bytes, hs, have, hr);
	printf("%.1f MiB/s\n", (double)bytes / (1 << 20) / secs);
	free(pattern), free(want), free(got);
	close(fd);
	return fast || strcmp(hs, hr) == 0 ? 0 : 1;
}

static int round_trip(int fd, uint32_t seq) {
	struct frame_header h;
	uint8_t *p = NULL;
	int r = send_frame(fd, FRAME_HELLO, seq, "hello", 5);
	if (r >= 0)
		r = frame_read(fd, 0, &h, &p);
	if (r >= 0 && (h.type != FRAME_RESPONSE || h.seq != seq || h.length != 5 || memcmp(p, "hello", 5) != 0))
		r = -EBADMSG;
	free(p);
	return r;
}

static void bump_nofile(void) {
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int cmd_hold(const char *addr, unsigned n) {
	int *fds = calloc(n, sizeof(int));
	for (unsigned i = 0; i < n; i++) {
		fds[i] = dial(addr, 5000000);
		if (fds[i] < 0)
			die("connect", fds[i]);
		int r = round_trip(fds[i], i);
		if (r < 0) {
			fprintf(stderr, "relay-peer: session %u: %s\n", i, strerror(-r));
			exit(1);
		}
	}
	for (unsigned i = 0; i < n; i++) { /* every one still alive with all the others open */
		int r = round_trip(fds[i], n + i);
		if (r < 0) {
			fprintf(stderr, "relay-peer: session %u (second round): %s\n", i, strerror(-r));
			exit(1);
		}
	}
	printf("held %u\n", n);
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	return 0;
}

static int cmd_open(const char *addr, unsigned n, unsigned secs) {
	for (unsigned i = 0; i < n; i++)
		if (dial(addr, 2000000) < 0)
			break; /* left open until exit */
	sleep(secs);
	return 0;
}

/* A DNS responder (RFC 1035, UDP) for one zone file of "NAME IPV4 TTL" lines, re-read at every query: A
 * queries get the listed address, other types an empty NOERROR answer, unknown names NXDOMAIN. */
static int cmd_dns(const char *addr, const char *zone) {
	struct eml_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	int r = addr_parse(addr, &a);
	if (r < 0 || (r = addr_to_sockaddr(&a, &ss, &sl)) < 0)
		die("address", r);
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) < 0)
		die("bind", negerrno());
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		uint8_t q[512], out[600];
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
		if (n < 17)
			continue;
		char name[256];
		size_t off = 12, nl = 0;
		while (off < (size_t)n && q[off] != 0 && q[off] < 64 && off + 1 + q[off] < (size_t)n && nl + q[off] + 1 < sizeof(name)) {
			if (nl)
				name[nl++] = '.';
			memcpy(name + nl, q + off + 1, q[off]);
			nl += q[off];
			off += 1 + (size_t)q[off];
		}
		if (off + 5 > (size_t)n || q[off] != 0)
			continue;
		name[nl] = 0;
		off++;
		uint16_t qtype = (uint16_t)(q[off] << 8 | q[off + 1]);
		off += 4;
		char line[512], zname[256], ip[64];
		unsigned ttl = 0;
		bool found = false;
		uint8_t ip4[4];
		FILE *f = fopen(zone, "re");
		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "%255s %63s %u", zname, ip, &ttl) == 3 && strcasecmp(zname, name) == 0 &&
			    inet_pton(AF_INET, ip, ip4) == 1) {
				found = true;
				break;
			}
		if (f)
			fclose(f);
		memcpy(out, q, off);
		out[2] = 0x80 | (q[2] & 0x01); /* response, echo RD */
		out[3] = found ? 0x80 : 0x83;  /* RA; NOERROR or NXDOMAIN */
		out[4] = 0, out[5] = 1;
		out[6] = 0, out[7] = found && qtype == 1;
		memset(out + 8, 0, 4);
		size_t o = off;
		if (found && qtype == 1) {
			const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, (uint8_t)(ttl >> 24), (uint8_t)(ttl >> 16),
					      (uint8_t)(ttl >> 8), (uint8_t)ttl, 0, 4};
			memcpy(out + o, rr, sizeof(rr));
			o += sizeof(rr);
			memcpy(out + o, ip4, 4);
			o += 4;
		}
		sendto(fd, out, o, 0, (struct sockaddr *)&from, fl);
	}
}

static int cmd_partial(const char *addr) {
	int fd = dial(addr, 5000000);
	if (fd < 0)
		die("connect", fd);
	uint8_t hdr[FRAME_HEADER_SIZE], half[10] = {0};
	frame_header_encode(&(struct frame_header){.type = FRAME_REQUEST, .seq = 0, .length = 1000}, hdr);
	write_all(fd, hdr, sizeof(hdr));
	write_all(fd, half, sizeof(half));
	close(fd);
	return 0;
}

static int cmd_expect_error(const char *addr, uint64_t ms, const char *mode) {
	bool oversize = mode && strcmp(mode, "oversize") == 0, idle = mode && strcmp(mode, "idle") == 0;
	bool garbage = mode && strcmp(mode, "garbage") == 0;
	uint64_t start = now_monotonic_usec();
	int fd = dial(addr, ms * 1000);
	if (fd < 0)
		die("connect", fd);
	if (oversize) {
		uint8_t hdr[FRAME_HEADER_SIZE];
		frame_header_encode(&(struct frame_header){.type = FRAME_REQUEST, .seq = 3, .length = 0}, hdr);
		uint32_t big = htobe32(FRAME_MAX_PAYLOAD + 1);
		memcpy(hdr + 8, &big, 4);
		write_all(fd, hdr, sizeof(hdr));
	} else if (garbage) {
		write_all(fd, "XX\x01\x03\0\0\0\0\0\0\0\0", FRAME_HEADER_SIZE);
	} else if (idle) { /* one good round trip, then silence until the relay gives up */
		int r = round_trip(fd, 0);
		if (r < 0)
			die("round trip", r);
	} else
		send_frame(fd, FRAME_HELLO, 0, "hello", 5);
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct frame_header h;
	uint8_t *p = NULL, b;
	int r = frame_read(fd, 0, &h, &p);
	if (r < 0)
		die("read ERROR frame", r);
	if (h.type != FRAME_ERROR) {
		fprintf(stderr, "relay-peer: got %s, not ERROR\n", frame_type_name(h.type));
		return 1;
	}
	/* eml-protocol(7): seq 0, deterministic CBOR {"code": tstr, "message": tstr}, at most 512 bytes, decoded as
	 * strictly as lib/session does */
	const struct ecbor_limits lim = {.max_size = 512, .max_depth = 1, .max_items = 5, .max_string = 256,
					 .deterministic = true};
	cbor_item_t *m = NULL;
	const char *code, *msg;
	size_t cl, ml;
	if (h.seq != 0 || ecbor_decode(p, h.length, &lim, &m) < 0 || !cbor_isa_map(m) || cbor_map_size(m) != 2 ||
	    ecbor_map_text_tstr(m, "code", &code, &cl) < 0 || ecbor_map_text_tstr(m, "message", &msg, &ml) < 0) {
		fprintf(stderr, "relay-peer: malformed ERROR frame (seq %u, %u bytes)\n", h.seq, h.length);
		return 1;
	}
	printf("error %.*s: %.*s\n", (int)cl, code, (int)ml, msg);
	cbor_decref(&m);
	free(p);
	ssize_t n = read(fd, &b, 1);
	uint64_t el = (now_monotonic_usec() - start) / 1000;
	printf("closed %s after %" PRIu64 " ms\n", n == 0 ? "cleanly" : "with error", el);
	return n == 0 && el <= ms ? 0 : 1;
}

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* addrs: one address, or several separated by commas, taken in turns of RR_BLOCK round trips each, so that
 * the figures of several paths are taken under the same load, interleaved, rather than one after the other;
 * a turn is long enough that each path is measured busy, as a lone client sees it (one round trip per turn
 * measured how fast an idle proxy wakes up). One "p50 p99" line per address. */
#define RR_BLOCK 100
static int cmd_rr(const char *addrs, size_t size, unsigned count) {
	enum { MAX_PATHS = 8 };
	char *list = strdup(addrs), *save = NULL;
	int fds[MAX_PATHS];
	unsigned n = 0;
	for (char *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
		if (n == MAX_PATHS)
			die("rr: too many addresses", -E2BIG);
		if ((fds[n] = dial(a, 5000000)) < 0)
			die("connect", fds[n]);
		n++;
	}
	free(list);
	uint8_t *buf = calloc(1, size);
	uint64_t *lat = calloc((size_t)count * n, sizeof(uint64_t));
	for (unsigned b = 0; b < count + 100; b += RR_BLOCK) /* the first 100 warm up */
		for (unsigned c = 0; c < n; c++)
			for (unsigned i = b; i < MIN(b + RR_BLOCK, count + 100); i++) {
				struct frame_header h;
				uint8_t *p = NULL;
				uint64_t t = now_monotonic_usec();
				int r = send_frame(fds[c], FRAME_REQUEST, i, buf, size);
				if (r >= 0)
					r = frame_read(fds[c], 0, &h, &p);
				if (r < 0)
					die("round trip", r);
				free(p);
				if (i >= 100)
					lat[(size_t)c * count + i - 100] = now_monotonic_usec() - t;
			}
	for (unsigned c = 0; c < n; c++) {
		uint64_t *l = lat + (size_t)c * count;
		qsort(l, count, sizeof(uint64_t), cmp_u64);
		printf("p50 %" PRIu64 " p99 %" PRIu64 "\n", l[count / 2], l[count * 99 / 100]);
		close(fds[c]);
	}
	free(lat);
	free(buf);
	return 0;
}

static int cmd_raw(const char *addr, const char *send_s, const char *expect, uint64_t ms, bool half) {
	uint64_t start = now_monotonic_usec();
	int fd = dial(addr, ms * 1000);
	if (fd < 0)
		die("connect", fd);
	write_all(fd, send_s, strlen(send_s));
	if (half)
		shutdown(fd, SHUT_WR);
	size_t want = strlen(expect), have = 0;
	char *got = calloc(1, want + 1);
	while (have < want) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		uint64_t el = (now_monotonic_usec() - start) / 1000;
		if (el >= ms || poll(&pfd, 1, (int)(ms - el)) <= 0)
			break;
		ssize_t n = read(fd, got + have, want - have);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	printf("got '%s' after %" PRIu64 " ms\n", got, (now_monotonic_usec() - start) / 1000);
	int ok = have == want && memcmp(got, expect, want) == 0;
	free(got);
	close(fd);
	return ok ? 0 : 1;
}

static int cmd_blackhole(const char *addr) {
	struct eml_addr a;
	int fd, r = addr_parse(addr, &a);
	if (r < 0 || (r = socket_listen(&a, 0, &fd)) < 0)
		die("listen", r);
	if (listen(fd, 0) < 0) /* socket_listen takes 0 as "default"; say it again */
		die("listen", negerrno());
	/* Fill the accept queue (backlog 0 still queues one or two): later SYNs are dropped, connects hang. */
	for (int i = 0; i < 4; i++) {
		int c;
		if (socket_connect_deadline(&a, 200000, &c) < 0)
			break;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}

static int cmd_notify(const char *path, const char *out) {
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		die("socket", -EINVAL);
	strcpy(sa.sun_path, path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind", negerrno());
	FILE *f = fopen(out, "ae");
	if (!f)
		die(out, negerrno());
	for (;;) {
		char b[4096];
		ssize_t n = recv(fd, b, sizeof(b) - 1, 0);
		if (n < 0)
			continue;
		for (ssize_t i = 0; i < n; i++)
			if (b[i] == '\n')
				b[i] = ' ';
		b[n] = 0;
		fprintf(f, "%s\n", b);
		fflush(f);
	}
}

int main(int argc, char **argv) {
	uint64_t a, b;
	signal(SIGPIPE, SIG_IGN);
	bump_nofile();
	if (argc >= 3 && strcmp(argv[1], "server") == 0) {
		for (int i = 3; i < argc; i++) {
			if (strcmp(argv[i], "--audit") == 0)
				opt_audit = true;
			else if (strcmp(argv[i], "--raw") == 0)
				opt_raw = true;
			else if (strcmp(argv[i], "--hold") == 0)
				opt_hold = true;
			else if (strcmp(argv[i], "--quit-after") == 0 && i + 1 < argc &&
				 parse_u64(argv[i + 1], UINT32_MAX, &opt_quit_after) == 0)
				i++;
			else if (strcmp(argv[i], "--echo-at-eof") == 0)
				opt_echo_at_eof = true;
			else if (strcmp(argv[i], "--slow-ms") == 0 && i + 1 < argc && parse_u64(argv[i + 1], 600000, &opt_slow_ms) == 0)
				i++;
			else if (strcmp(argv[i], "--hello") == 0 && i + 1 < argc)
				opt_hello = argv[++i];
			else
				die(argv[i], -EINVAL);
		}
		return cmd_server(argv[2]);
	}
	if ((argc == 5 || (argc == 6 && strcmp(argv[5], "--fast") == 0)) && strcmp(argv[1], "stream") == 0 &&
	    parse_u64(argv[3], UINT64_MAX, &a) == 0 && parse_u64(argv[4], FRAME_MAX_PAYLOAD, &b) == 0 && b > 0)
		return cmd_stream(argv[2], a, (size_t)b, argc == 6);
	if (argc == 4 && strcmp(argv[1], "hold") == 0 && parse_u64(argv[3], 100000, &a) == 0)
		return cmd_hold(argv[2], (unsigned)a);
	if (argc == 5 && strcmp(argv[1], "open") == 0 && parse_u64(argv[3], 100000, &a) == 0 &&
	    parse_u64(argv[4], 3600, &b) == 0)
		return cmd_open(argv[2], (unsigned)a, (unsigned)b);
	if (argc == 4 && strcmp(argv[1], "dns") == 0)
		return cmd_dns(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "partial") == 0)
		return cmd_partial(argv[2]);
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "expect-error") == 0 && parse_u64(argv[3], 600000, &a) == 0)
		return cmd_expect_error(argv[2], a, argc == 5 ? argv[4] : NULL);
	if (argc == 5 && strcmp(argv[1], "rr") == 0 && parse_u64(argv[3], FRAME_MAX_PAYLOAD, &a) == 0 &&
	    parse_u64(argv[4], 10000000, &b) == 0 && b > 0)
		return cmd_rr(argv[2], (size_t)a, (unsigned)b);
	if ((argc == 6 || argc == 7) && strcmp(argv[1], "raw") == 0 && parse_u64(argv[5], 600000, &a) == 0)
		return cmd_raw(argv[2], argv[3], argv[4], a, argc == 7 && strcmp(argv[6], "half") == 0);
	if (argc == 2 && strcmp(argv[1], "free-port") == 0) {
		/* The kernel picks a port nobody uses; the caller binds it right after (a small race). */
		struct eml_addr any;
		char buf[ADDR_STRING_MAX];
		int fd;
		if (addr_parse("tcp:127.0.0.1:0", &any) < 0 || socket_listen(&any, 1, &fd) < 0 ||
		    socket_local_address(fd, buf, sizeof(buf)) < 0)
			die("free-port", -EIO);
		printf("%s\n", strrchr(buf, ':') + 1);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "blackhole") == 0)
		return cmd_blackhole(argv[2]);
	if (argc == 4 && strcmp(argv[1], "notify") == 0)
		return cmd_notify(argv[2], argv[3]);
	fprintf(stderr, "usage: see the comment at the top of tests/integration/relay-peer.c\n");
	return 2;
}
