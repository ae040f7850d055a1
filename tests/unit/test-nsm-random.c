/* Tests for nsm-random.c: the hand decoder against hand-encoded CBOR (RFC 8949) and against replies encoded by
 * the general NSM codec (nsm.h, over libcbor); the fetch through a unix-socket NSM speaking nsm-transport's
 * framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "macro.h"
#include "nsm-random.h"
#include "nsm-transport.h"
#include "nsm.h"

static void test_parse_hand_encoded(void **state) {
	/* {"GetRandom":{"random":h'0102...20'}} */
	uint8_t resp[64] = {0xA1, 0x69, 'G', 'e', 't', 'R', 'a', 'n', 'd', 'o', 'm',
			    0xA1, 0x66, 'r', 'a', 'n', 'd', 'o', 'm', 0x58, 0x20};
	for (int i = 0; i < 32; i++) resp[21 + i] = (uint8_t)(i + 1);
	const uint8_t *data;
	size_t n;
	assert_int_equal(nsm_random_parse(resp, 53, &data, &n), 0);
	assert_int_equal(n, 32);
	assert_ptr_equal(data, resp + 21);
	assert_int_equal(nsm_random_parse(resp, 54, &data, &n), -EBADMSG); /* trailing byte */
	assert_int_equal(nsm_random_parse(resp, 52, &data, &n), -EBADMSG); /* truncated */
	assert_int_equal(nsm_random_parse(resp, 19, &data, &n), -EBADMSG);
	resp[13] = 'R';
	assert_int_equal(nsm_random_parse(resp, 53, &data, &n), -EBADMSG); /* wrong key */
	resp[13] = 'r';
	resp[19] = 0x5F;
	assert_int_equal(nsm_random_parse(resp, 53, &data, &n), -EBADMSG); /* indefinite length */
	resp[19] = 0x44;                                                    /* bstr(4), short form */
	assert_int_equal(nsm_random_parse(resp, 24, &data, &n), 0);
	assert_int_equal(n, 4);
	resp[19] = 0x40; /* empty: no randomness is not an answer */
	assert_int_equal(nsm_random_parse(resp, 20, &data, &n), -EBADMSG);
	static const uint8_t error[] = {0xA1, 0x65, 'E', 'r', 'r', 'o', 'r', 0x6F, 'I', 'n', 'v', 'a', 'l', 'i', 'd',
					'A', 'r', 'g', 'u', 'm', 'e', 'n', 't'};
	assert_int_equal(nsm_random_parse(error, sizeof error, &data, &n), -EPROTO);
	assert_int_equal(nsm_random_request[0], 0x60 + 9);
	assert_memory_equal(nsm_random_request + 1, "GetRandom", 9);
}

/* The general codec (another implementation) agrees on both the request and the reply. */
static void test_against_codec(void **state) {
	struct nsm_request req;
	assert_int_equal(nsm_request_decode(nsm_random_request, sizeof nsm_random_request, &req), 0);
	assert_int_equal(req.op, NSM_OP_GET_RANDOM);
	nsm_request_done(&req);

	for (size_t len = 1; len <= 256; len = len * 2 + 1) {
		uint8_t random[256];
		for (size_t i = 0; i < len; i++) random[i] = (uint8_t)(i * 7 + len);
		struct nsm_response resp = {.op = NSM_OP_GET_RANDOM, .data = random, .data_len = len};
		_cleanup_free_ uint8_t *buf = NULL;
		size_t buf_len;
		assert_int_equal(nsm_response_encode(&resp, &buf, &buf_len), 0);
		const uint8_t *data;
		size_t n;
		assert_int_equal(nsm_random_parse(buf, buf_len, &data, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(data, random, len);
	}
	struct nsm_response err = {.op = NSM_OP_ERROR, .error = NSM_E_INTERNAL_ERROR};
	_cleanup_free_ uint8_t *ebuf = NULL;
	size_t elen;
	assert_int_equal(nsm_response_encode(&err, &ebuf, &elen), 0);
	const uint8_t *data;
	size_t n;
	assert_int_equal(nsm_random_parse(ebuf, elen, &data, &n), -EPROTO);
}

struct fake_nsm {
	int listen_fd;
	uint8_t got[64];
	size_t got_len;
};

static void *serve_one(void *arg) {
	struct fake_nsm *f = arg;
	int fd = accept(f->listen_fd, NULL, NULL);
	if (fd < 0) return NULL;
	if (nsm_frame_read(fd, f->got, sizeof f->got, &f->got_len) == 0) {
		static const uint8_t reply[] = {0xA1, 0x69, 'G', 'e', 't', 'R', 'a', 'n', 'd', 'o', 'm', 0xA1, 0x66,
						'r',  'a',  'n', 'd', 'o', 'm', 0x43, 0xAA, 0xBB, 0xCC};
		nsm_frame_write(fd, reply, sizeof reply);
	}
	close(fd);
	return NULL;
}

static void test_fetch_unix(void **state) {
	struct fake_nsm f = {0};
	char path[64];
	snprintf(path, sizeof path, "/tmp/eml-test-nsm-%d", (int)getpid());
	unlink(path);
	f.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
	assert_int_equal(bind(f.listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(f.listen_fd, 1), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, serve_one, &f), 0);
	char dev[80];
	snprintf(dev, sizeof dev, "unix:%s", path);
	uint8_t buf[2];
	assert_int_equal(nsm_random_fetch(dev, buf, sizeof buf), 2); /* truncated to max */
	pthread_join(th, NULL);
	assert_int_equal(buf[0], 0xAA);
	assert_int_equal(buf[1], 0xBB);
	assert_int_equal(f.got_len, sizeof nsm_random_request);
	assert_memory_equal(f.got, nsm_random_request, sizeof nsm_random_request);
	close(f.listen_fd);
	unlink(path);
	assert_int_equal(nsm_random_fetch("/nonexistent/nsm", buf, sizeof buf), -ENOENT);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_hand_encoded),
		cmocka_unit_test(test_against_codec),
		cmocka_unit_test(test_fetch_unix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
