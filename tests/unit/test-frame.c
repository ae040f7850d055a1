/* Tests for frame.c: encode/decode, the incremental decoder fed at every split point, every header field
 * corrupted, the size cap, truncation, and reading from a non-blocking socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/socket.h>

#include "frame.h"
#include "macro.h"
#include "util.h"

/* A stream of three frames: HELLO with payload, an empty CLOSE-like frame, and a REQUEST. */
static size_t make_stream(uint8_t *out) {
	size_t pos = 0;
	const char *p1 = "hello payload";
	uint8_t *f;
	size_t fl;
	assert_int_equal(frame_encode(FRAME_HELLO, 0, p1, strlen(p1), &f, &fl), 0);
	memcpy(out + pos, f, fl), pos += fl, free(f);
	assert_int_equal(frame_encode(FRAME_AUDIT, 7, NULL, 0, &f, &fl), 0);
	memcpy(out + pos, f, fl), pos += fl, free(f);
	uint8_t big[300];
	for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)i;
	assert_int_equal(frame_encode(FRAME_REQUEST, 0xdeadbeef, big, sizeof big, &f, &fl), 0);
	memcpy(out + pos, f, fl), pos += fl, free(f);
	return pos;
}

static void check_frames(struct frame_header *h, uint8_t **p, size_t n) {
	assert_int_equal(n, 3);
	assert_int_equal(h[0].type, FRAME_HELLO);
	assert_int_equal(h[0].length, 13);
	assert_memory_equal(p[0], "hello payload", 13);
	assert_int_equal(h[1].type, FRAME_AUDIT);
	assert_int_equal(h[1].seq, 7);
	assert_int_equal(h[1].length, 0);
	assert_null(p[1]);
	assert_int_equal(h[2].type, FRAME_REQUEST);
	assert_true(h[2].seq == 0xdeadbeef);
	assert_int_equal(h[2].length, 300);
	for (size_t i = 0; i < 300; i++) assert_int_equal(p[2][i], (uint8_t)i);
}

/* Feed the stream in two pieces split at `split`, then in pieces of `step` bytes. */
static void feed_all(const uint8_t *s, size_t len, size_t split, size_t step) {
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	struct frame_header h[4];
	uint8_t *p[4] = {0};
	size_t n = 0, pos = 0;
	while (pos < len) {
		size_t chunk = step ? MIN(step, len - pos) : (pos < split ? split - pos : len - pos);
		size_t off = 0;
		while (off < chunk) {
			size_t used;
			int r = frame_decoder_feed(&d, s + pos + off, chunk - off, &used);
			assert_true(r >= 0);
			off += used;
			if (r == 1) {
				assert_true(n < 4);
				assert_int_equal(frame_decoder_take(&d, &h[n], &p[n]), 0);
				n++;
			} else
				assert_int_equal(off, chunk);
		}
		pos += chunk;
	}
	assert_int_equal(frame_decoder_finish(&d), 0);
	check_frames(h, p, n);
	for (size_t i = 0; i < n; i++) free(p[i]);
	frame_decoder_free(&d);
}

static void test_every_split(void **state) {
	uint8_t s[1024];
	size_t len = make_stream(s);
	for (size_t split = 0; split <= len; split++) feed_all(s, len, split, 0);
	for (size_t step = 1; step <= 13; step++) feed_all(s, len, 0, step);
}

static void test_every_header_field_corrupted(void **state) {
	uint8_t good[FRAME_HEADER_SIZE];
	frame_header_encode(&(struct frame_header){.type = FRAME_REQUEST, .seq = 5, .length = 16}, good);
	struct frame_header h;
	assert_int_equal(frame_header_decode(good, 0, &h), 0);
	/* every value of every header byte: magic and version bytes must fail with their own code, type
	 * outside 1..8 with FRAME_E_TYPE, seq takes anything, length is checked against the cap */
	for (int i = 0; i < FRAME_HEADER_SIZE; i++) {
		for (int v = 0; v < 256; v++) {
			uint8_t b[FRAME_HEADER_SIZE];
			memcpy(b, good, sizeof b);
			b[i] = (uint8_t)v;
			int r = frame_header_decode(b, 0, &h);
			int want = 0;
			if (i < 2 && v != good[i]) want = FRAME_E_MAGIC;
			else if (i == 2 && v != FRAME_VERSION) want = FRAME_E_VERSION;
			else if (i == 3 && (v < 1 || v > 8)) want = FRAME_E_TYPE;
			else if (i == 8 && v != 0) want = FRAME_E_OVERSIZE; /* >= 16 MiB */
			if (r != want) fail_msg("byte %d value %d: got %d want %d", i, v, r, want);
			/* the incremental decoder agrees, whatever the split */
			struct frame_decoder d;
			frame_decoder_init(&d, 0);
			size_t used, off = 0;
			int dr = 0;
			while (off < sizeof b && dr == 0) {
				dr = frame_decoder_feed(&d, b + off, 1, &used);
				off += used;
			}
			assert_int_equal(dr < 0 ? dr : 0, want);
			frame_decoder_free(&d);
		}
	}
	/* distinct codes */
	assert_int_not_equal(FRAME_E_MAGIC, FRAME_E_VERSION);
	assert_int_not_equal(FRAME_E_OVERSIZE, FRAME_E_TRUNCATED);
	assert_int_not_equal(FRAME_E_TYPE, FRAME_E_MAGIC);
}

static void test_cap(void **state) {
	uint8_t b[FRAME_HEADER_SIZE];
	struct frame_header h;
	frame_header_encode(&(struct frame_header){.type = FRAME_REQUEST, .length = FRAME_MAX_PAYLOAD}, b);
	assert_int_equal(frame_header_decode(b, 0, &h), 0);
	frame_header_encode(&(struct frame_header){.type = FRAME_REQUEST, .length = FRAME_MAX_PAYLOAD + 1}, b);
	assert_int_equal(frame_header_decode(b, 0, &h), FRAME_E_OVERSIZE);
	frame_header_encode(&(struct frame_header){.type = FRAME_REQUEST, .length = UINT32_MAX}, b);
	assert_int_equal(frame_header_decode(b, 0, &h), FRAME_E_OVERSIZE);
	/* a smaller per-connection cap */
	frame_header_encode(&(struct frame_header){.type = FRAME_REQUEST, .length = 1025}, b);
	assert_int_equal(frame_header_decode(b, 1024, &h), FRAME_E_OVERSIZE);
	struct frame_decoder d;
	frame_decoder_init(&d, 1024);
	size_t used;
	assert_int_equal(frame_decoder_feed(&d, b, sizeof b, &used), FRAME_E_OVERSIZE);
	/* sticky */
	assert_int_equal(frame_decoder_feed(&d, b, sizeof b, &used), FRAME_E_OVERSIZE);
	frame_decoder_free(&d);
	uint8_t *f;
	size_t fl;
	assert_int_equal(frame_encode(FRAME_REQUEST, 0, b, (size_t)FRAME_MAX_PAYLOAD + 1, &f, &fl), FRAME_E_OVERSIZE);
}

static void test_truncation(void **state) {
	uint8_t s[1024];
	size_t len = make_stream(s);
	/* cut the stream at every point: the decoder reports truncation unless the cut is a frame boundary */
	size_t boundaries[] = {0, FRAME_HEADER_SIZE + 13, 2 * FRAME_HEADER_SIZE + 13, len};
	for (size_t cut = 0; cut <= len; cut++) {
		struct frame_decoder d;
		frame_decoder_init(&d, 0);
		size_t off = 0;
		while (off < cut) {
			size_t used;
			int r = frame_decoder_feed(&d, s + off, cut - off, &used);
			assert_true(r >= 0);
			off += used;
			if (r == 1) {
				struct frame_header h;
				uint8_t *p;
				frame_decoder_take(&d, &h, &p);
				free(p);
			}
		}
		bool boundary = false;
		for (size_t i = 0; i < ARRAY_SIZE(boundaries); i++) boundary |= cut == boundaries[i];
		assert_int_equal(frame_decoder_finish(&d), boundary ? 0 : FRAME_E_TRUNCATED);
		frame_decoder_free(&d);
	}
}

static void test_read_nonblocking(void **state) {
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	uint8_t s[1024];
	size_t len = make_stream(s);
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	assert_int_equal(frame_decoder_read(&d, sv[0]), 0); /* nothing yet: EAGAIN -> 0 */
	struct frame_header h[4];
	uint8_t *p[4];
	size_t n = 0;
	/* dribble the stream in 5-byte writes and read in between */
	for (size_t pos = 0; pos < len; pos += 5) {
		assert_int_equal(write_all(sv[1], s + pos, MIN(5, len - pos)), 0);
		int r;
		while ((r = frame_decoder_read(&d, sv[0])) != 0) {
			assert_int_equal(r, 1);
			frame_decoder_take(&d, &h[n], &p[n]);
			n++;
		}
	}
	check_frames(h, p, n);
	for (size_t i = 0; i < n; i++) free(p[i]);
	/* a clean end of stream */
	close(sv[1]);
	assert_int_equal(frame_decoder_read(&d, sv[0]), -EPIPE);
	frame_decoder_free(&d);
	close(sv[0]);

	/* end of stream inside a frame */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	frame_decoder_init(&d, 0);
	assert_int_equal(write_all(sv[1], s, 20), 0);
	close(sv[1]);
	int r;
	while ((r = frame_decoder_read(&d, sv[0])) == 0) {}
	assert_int_equal(r, FRAME_E_TRUNCATED);
	frame_decoder_free(&d);
	close(sv[0]);
}

static void test_blocking_helpers(void **state) {
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(frame_write(sv[1], FRAME_CTL, 3, "abc", 3), 0);
	struct frame_header h;
	uint8_t *p;
	assert_int_equal(frame_read(sv[0], 0, &h, &p), 0);
	assert_int_equal(h.type, FRAME_CTL);
	assert_int_equal(h.seq, 3);
	assert_memory_equal(p, "abc", 3);
	free(p);
	assert_int_equal(frame_write(sv[1], FRAME_CTL, 3, "abcdef", 6), 0);
	assert_int_equal(frame_read(sv[0], 4, &h, &p), FRAME_E_OVERSIZE);
	close(sv[0]);
	close(sv[1]);
	assert_string_equal(frame_type_name(FRAME_AUDIT), "AUDIT");
	assert_string_equal(frame_type_name(0), "UNKNOWN");
	assert_string_equal(frame_type_name(200), "UNKNOWN");
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_every_header_field_corrupted),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_read_nonblocking),
		cmocka_unit_test(test_blocking_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
