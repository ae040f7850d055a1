/* Tests for pump.c over socketpairs: frames of every size class pass unchanged (buffer and splice paths, headers
 * split across reads, large frames spliced across their boundaries), AUDIT frames are taken out and handed
 * over, the size cap and truncation are errors of the right side, a frame can be appended at a boundary only,
 * hold_eof, and raw mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/socket.h>

#include "frame.h"
#include "macro.h"
#include "pump.h"
#include "util.h"

struct rig {
	int in[2], out[2]; /* write in[0] -> pump reads in[1]; pump writes out[0] -> read out[1] */
	uint8_t *got;
	size_t got_len, got_cap;
	int audits;
	uint32_t audit_bytes;
	size_t chunk; /* bytes written per step */
};

static void rig_open(struct rig *g) {
	memset(g, 0, sizeof(*g));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, g->in), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, g->out), 0);
	g->got_cap = 8 << 20;
	g->got = malloc(g->got_cap);
	g->chunk = 7777; /* odd chunks split headers */
}

static void rig_close(struct rig *g) {
	for (int i = 0; i < 2; i++)
		close(g->in[i]), close(g->out[i]);
	free(g->got);
}

static int on_extract(const struct frame_header *h, const uint8_t *p, void *u) {
	struct rig *g = u;
	g->audits++;
	g->audit_bytes += h->length;
	for (uint32_t i = 0; i < h->length; i++)
		assert_int_equal(p[i], 0xA0 + (i % 16));
	return 0;
}

/* Feed data (closing the writer after it when eof), run the pump until it finishes or fails, collect output. */
static int run(struct rig *g, struct pump *p, const uint8_t *data, size_t len, bool eof) {
	size_t off = 0;
	int r = 0;
	for (int spins = 0; spins < 1000000; spins++) {
		if (off < len) {
			ssize_t n = write(g->in[0], data + off, MIN(len - off, g->chunk));
			if (n > 0)
				off += (size_t)n;
		} else if (eof) {
			shutdown(g->in[0], SHUT_WR);
			eof = false;
		}
		r = pump_run(p);
		ssize_t n = read(g->out[1], g->got + g->got_len, g->got_cap - g->got_len);
		if (n > 0)
			g->got_len += (size_t)n;
		if (r < 0 || r == PUMP_DONE || r == PUMP_EOF) {
			while ((n = read(g->out[1], g->got + g->got_len, g->got_cap - g->got_len)) > 0)
				g->got_len += (size_t)n;
			return r;
		}
		if (off == len && !eof && n <= 0 && r == PUMP_WANT_READ)
			return r;
	}
	fail_msg("pump did not settle");
	return -1;
}

static size_t add_frame(uint8_t *buf, size_t pos, uint8_t type, uint32_t seq, size_t len, uint8_t base) {
	struct frame_header h = {.type = type, .seq = seq, .length = (uint32_t)len};
	frame_header_encode(&h, buf + pos);
	for (size_t i = 0; i < len; i++)
		buf[pos + FRAME_HEADER_SIZE + i] = (uint8_t)(base + (type == FRAME_AUDIT ? i % 16 : i * 7));
	return pos + FRAME_HEADER_SIZE + len;
}

/* Run in through a pump that takes AUDIT frames out, to its end; what comes out must be want, byte for byte.
 * Returns the pump for the caller's own checks. */
static struct pump *pump_through(struct rig *g, const uint8_t *in, size_t il, const uint8_t *want, size_t wl) {
	struct pump_config c = {.mode = PUMP_FRAMES, .extract_type = FRAME_AUDIT, .extract_max = 1024,
				.on_extract = on_extract, .userdata = g};
	struct pump *p;
	assert_int_equal(pump_new(g->in[1], g->out[0], &c, &p), 0);
	assert_int_equal(run(g, p, in, il, true), PUMP_DONE);
	assert_int_equal(g->got_len, wl);
	assert_memory_equal(g->got, want, wl);
	assert_int_equal(pump_bytes(p), wl);
	return p;
}

static void test_frames_and_audit(void **state) {
	struct rig g;
	rig_open(&g);
	static const size_t sizes[] = {0, 5, 100000, 65536, 1, 300000, 12, 70000};
	uint8_t *in = malloc(4 << 20), *want = malloc(4 << 20);
	size_t il = 0, wl = 0;
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		size_t before = il;
		il = add_frame(in, il, FRAME_RESPONSE, (uint32_t)i, sizes[i], (uint8_t)i);
		memcpy(want + wl, in + before, il - before);
		wl += il - before;
		il = add_frame(in, il, FRAME_AUDIT, (uint32_t)i, 40, 0xA0); /* taken out */
	}
	struct pump *p = pump_through(&g, in, il, want, wl);
	assert_int_equal(g.audits, (int)ARRAY_SIZE(sizes));
	assert_int_equal(g.audit_bytes, 40 * ARRAY_SIZE(sizes));
	assert_int_equal(pump_last_seq(p), ARRAY_SIZE(sizes) - 1);
	pump_free(p);
	free(in), free(want);
	rig_close(&g);
}

/* Large frames back to back, written faster than the pump reads: the pump looks at each next header while the
 * pipe still holds the end of the frame before it and splices on across the boundary. AUDIT frames and small
 * frames between them still go through the buffer. */
static void test_large_frames_back_to_back(void **state) {
	static const struct {
		uint8_t type;
		size_t len;
	} frames[] = {{FRAME_RESPONSE, 300000}, {FRAME_RESPONSE, 65536}, {FRAME_RESPONSE, 200000}, {FRAME_AUDIT, 40},
		      {FRAME_RESPONSE, 100000}, {FRAME_RESPONSE, 7},     {FRAME_RESPONSE, 0},      {FRAME_RESPONSE, 500000},
		      {FRAME_RESPONSE, 70000},  {FRAME_AUDIT, 0},        {FRAME_RESPONSE, 65536}};
	uint8_t *in = malloc(4 << 20), *want = malloc(4 << 20);
	for (int pass = 0; pass < 2; pass++) {
		struct rig g;
		rig_open(&g);
		g.chunk = pass ? 4000 : 1 << 20;
		size_t il = 0, wl = 0;
		for (size_t i = 0; i < ARRAY_SIZE(frames); i++) {
			size_t before = il;
			il = add_frame(in, il, frames[i].type, (uint32_t)i, frames[i].len,
				       frames[i].type == FRAME_AUDIT ? 0xA0 : (uint8_t)i);
			if (frames[i].type != FRAME_AUDIT) {
				memcpy(want + wl, in + before, il - before);
				wl += il - before;
			}
		}
		struct pump *p = pump_through(&g, in, il, want, wl);
		assert_int_equal(g.audits, 2);
		assert_int_equal(g.audit_bytes, 40);
		assert_int_equal(pump_last_seq(p), ARRAY_SIZE(frames) - 1);
		pump_free(p);
		rig_close(&g);
	}
	free(in), free(want);
}

/* A bad header right behind a large frame: the frame before it is delivered whole, then the pump fails. */
static void test_bad_header_after_large_frame(void **state) {
	struct rig g;
	rig_open(&g);
	g.chunk = 1 << 20;
	uint8_t *in = malloc(1 << 20);
	size_t il = add_frame(in, 0, FRAME_REQUEST, 1, 200000, 3);
	il = add_frame(in, il, FRAME_REQUEST, 2, 100000, 4);
	size_t good = il;
	frame_header_encode(&(struct frame_header){.type = FRAME_REQUEST, .length = 300000}, in + il);
	il += FRAME_HEADER_SIZE;
	struct pump_config c = {.mode = PUMP_FRAMES, .max_payload = 250000};
	struct pump *p;
	assert_int_equal(pump_new(g.in[1], g.out[0], &c, &p), 0);
	assert_int_equal(run(&g, p, in, il, false), FRAME_E_OVERSIZE);
	assert_int_equal(pump_failure(p), PUMP_FAIL_PROTOCOL);
	assert_int_equal(g.got_len, good);
	assert_memory_equal(g.got, in, good);
	pump_free(p);
	free(in);
	rig_close(&g);
}

static void test_oversize_and_bad_header(void **state) {
	struct rig g;
	rig_open(&g);
	uint8_t h[FRAME_HEADER_SIZE];
	frame_header_encode(&(struct frame_header){.type = FRAME_REQUEST, .length = 1000}, h);
	struct pump_config c = {.mode = PUMP_FRAMES, .max_payload = 999};
	struct pump *p;
	assert_int_equal(pump_new(g.in[1], g.out[0], &c, &p), 0);
	assert_int_equal(run(&g, p, h, sizeof(h), false), FRAME_E_OVERSIZE);
	assert_int_equal(pump_failure(p), PUMP_FAIL_PROTOCOL);
	assert_int_equal(pump_run(p), FRAME_E_OVERSIZE); /* sticky */
	pump_free(p);
	rig_close(&g);

	rig_open(&g);
	h[0] = 'X';
	assert_int_equal(pump_new(g.in[1], g.out[0], &c, &p), 0);
	assert_int_equal(run(&g, p, h, sizeof(h), false), FRAME_E_MAGIC);
	assert_int_equal(g.got_len, 0); /* nothing of a bad header is forwarded */
	pump_free(p);
	rig_close(&g);

	/* an AUDIT frame above its own cap */
	rig_open(&g);
	frame_header_encode(&(struct frame_header){.type = FRAME_AUDIT, .length = 2000}, h);
	struct pump_config ca = {.mode = PUMP_FRAMES, .extract_type = FRAME_AUDIT, .extract_max = 1024};
	assert_int_equal(pump_new(g.in[1], g.out[0], &ca, &p), 0);
	assert_int_equal(run(&g, p, h, sizeof(h), false), FRAME_E_OVERSIZE);
	pump_free(p);
	rig_close(&g);
}

static void test_truncated(void **state) {
	struct rig g;
	rig_open(&g);
	uint8_t in[200];
	size_t il = add_frame(in, 0, FRAME_REQUEST, 1, 100, 0);
	struct pump_config c = {.mode = PUMP_FRAMES};
	struct pump *p;
	assert_int_equal(pump_new(g.in[1], g.out[0], &c, &p), 0);
	assert_int_equal(run(&g, p, in, il - 30, true), FRAME_E_TRUNCATED);
	assert_int_equal(pump_failure(p), PUMP_FAIL_SRC);
	pump_free(p);
	rig_close(&g);
}

static void test_finish_with_frame_and_hold_eof(void **state) {
	struct rig g;
	rig_open(&g);
	uint8_t in[200];
	size_t il = add_frame(in, 0, FRAME_RESPONSE, 4, 20, 0);
	struct pump_config c = {.mode = PUMP_FRAMES, .hold_eof = true};
	struct pump *p;
	assert_int_equal(pump_new(g.in[1], g.out[0], &c, &p), 0);
	/* half a frame in: no frame may be inserted */
	assert_int_equal(run(&g, p, in, 15, false), PUMP_WANT_READ);
	assert_false(pump_at_boundary(p));
	assert_int_equal(pump_finish_with_frame(p, FRAME_ERROR, 9, "x", 1), -EBUSY);
	/* the rest, then end of stream: held */
	assert_int_equal(run(&g, p, in + 15, il - 15, true), PUMP_EOF);
	assert_true(pump_at_boundary(p));
	assert_int_equal(pump_last_type(p), FRAME_RESPONSE);
	assert_int_equal(pump_finish_with_frame(p, FRAME_ERROR, 9, "oops", 4), 0);
	assert_int_equal(run(&g, p, NULL, 0, false), PUMP_DONE);
	assert_int_equal(g.got_len, il + FRAME_HEADER_SIZE + 4);
	assert_memory_equal(g.got, in, il);
	struct frame_header h;
	assert_int_equal(frame_header_decode(g.got + il, 0, &h), 0);
	assert_int_equal(h.type, FRAME_ERROR);
	assert_int_equal(h.seq, 9);
	assert_memory_equal(g.got + il + FRAME_HEADER_SIZE, "oops", 4);
	char b;
	assert_int_equal(read(g.out[1], &b, 1), 0); /* dst was shut down after it */
	pump_free(p);
	rig_close(&g);
}

static void test_raw(void **state) {
	struct rig g;
	rig_open(&g);
	size_t n = 1 << 20;
	uint8_t *in = malloc(n);
	for (size_t i = 0; i < n; i++)
		in[i] = (uint8_t)(i * 31 + (i >> 11));
	struct pump_config c = {.mode = PUMP_RAW};
	struct pump *p;
	assert_int_equal(pump_new(g.in[1], g.out[0], &c, &p), 0);
	assert_int_equal(run(&g, p, in, n, true), PUMP_DONE);
	assert_int_equal(g.got_len, n);
	assert_memory_equal(g.got, in, n);
	pump_free(p);
	free(in);
	rig_close(&g);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames_and_audit),
		cmocka_unit_test(test_large_frames_back_to_back),
		cmocka_unit_test(test_bad_header_after_large_frame),
		cmocka_unit_test(test_oversize_and_bad_header),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_finish_with_frame_and_hold_eof),
		cmocka_unit_test(test_raw),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
