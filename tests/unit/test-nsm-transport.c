/* Tests for nsm-transport.c: the length-prefixed unix framing and device string parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "macro.h"
#include "nsm-transport.h"
#include "util.h"

static void test_frames(void **state) {
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	uint8_t msg[] = {0x6b, 'D', 'e', 's', 'c', 'r', 'i', 'b', 'e', 'N', 'S', 'M'};
	assert_int_equal(nsm_frame_write(sv[0], msg, sizeof msg), 0);
	uint8_t hdr[4];
	assert_int_equal(read_all(sv[1], hdr, 4), 0);
	/* u32 big-endian length */
	assert_int_equal(hdr[0] | hdr[1] | hdr[2], 0);
	assert_int_equal(hdr[3], sizeof msg);
	uint8_t buf[64];
	assert_int_equal(read_all(sv[1], buf, sizeof msg), 0);
	assert_memory_equal(buf, msg, sizeof msg);

	size_t n = 0;
	assert_int_equal(nsm_frame_write(sv[0], msg, sizeof msg), 0);
	assert_int_equal(nsm_frame_read(sv[1], buf, sizeof buf, &n), 0);
	assert_int_equal(n, sizeof msg);
	/* announced length above the reader's limit */
	assert_int_equal(nsm_frame_write(sv[0], msg, sizeof msg), 0);
	assert_int_equal(nsm_frame_read(sv[1], buf, 4, &n), -EMSGSIZE);
	/* zero length is not a message */
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	uint8_t zero[4] = {0};
	assert_int_equal(write_all(sv[0], zero, 4), 0);
	assert_int_equal(nsm_frame_read(sv[1], buf, sizeof buf, &n), -EBADMSG);
	/* clean EOF vs truncated header */
	uint8_t half[2] = {0, 0};
	assert_int_equal(write_all(sv[0], half, 2), 0);
	close(sv[0]);
	assert_int_equal(nsm_frame_read(sv[1], buf, sizeof buf, &n), -EPIPE);
	assert_int_equal(nsm_frame_read(sv[1], buf, sizeof buf, &n), -ENODATA);
	close(sv[1]);
}

static void test_open(void **state) {
	NsmTransport *t = NULL;
	assert_int_equal(nsm_transport_open("", &t), -EINVAL);
	assert_int_equal(nsm_transport_open("tcp:1.2.3.4:5", &t), -EINVAL);
	assert_int_equal(nsm_transport_open("unix:", &t), -EINVAL);
	assert_int_equal(nsm_transport_open("unix:/nonexistent/nsm.sock", &t), -ENOENT);
	assert_int_equal(nsm_transport_open("/nonexistent/nsm", &t), -ENOENT);
	assert_null(nsm_transport_free(NULL));
	/* a character device that is not the NSM: the ioctl path reports the driver's refusal */
	_cleanup_(nsm_transport_freep) NsmTransport *dev = NULL;
	assert_int_equal(nsm_transport_open("/dev/null", &dev), 0);
	static uint8_t resp[NSM_RESPONSE_MAX];
	size_t n;
	assert_int_equal(nsm_transport_call(dev, (const uint8_t *)"\x69GetRandom", 10, resp, sizeof resp, &n), -ENOTTY);
}

/* A unix exchange against a one-shot echo peer on an abstract socket. */
static void test_unix_call(void **state) {
	char name[64];
	snprintf(name, sizeof name, "@eml-test-nsm-%d", (int)getpid());
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))), 0);
	assert_int_equal(listen(l, 1), 0);
	char dev[80];
	snprintf(dev, sizeof dev, "unix:%s", name);
	_cleanup_(nsm_transport_freep) NsmTransport *t = NULL;
	assert_int_equal(nsm_transport_open(dev, &t), 0);
	int c = accept(l, NULL, NULL);
	assert_true(c >= 0);
	static uint8_t big[NSM_REQUEST_MAX + 1];
	static uint8_t resp[NSM_RESPONSE_MAX];
	size_t n;
	assert_int_equal(nsm_transport_call(t, big, sizeof big, resp, sizeof resp, &n), -EMSGSIZE);
	assert_int_equal(nsm_transport_call(t, big, 10, resp, 100, &n), -ENOBUFS);
	/* answer before asking: the socket buffers it */
	uint8_t answer[3] = {1, 2, 3};
	assert_int_equal(nsm_frame_write(c, answer, 3), 0);
	assert_int_equal(nsm_transport_call(t, big, 10, resp, sizeof resp, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(resp, answer, 3);
	uint8_t req[16];
	size_t rn;
	assert_int_equal(nsm_frame_read(c, req, sizeof req, &rn), 0);
	assert_int_equal(rn, 10);
	close(c);
	assert_int_equal(nsm_transport_call(t, big, 10, resp, sizeof resp, &n) < 0, 1);
	close(l);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames),
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_unix_call),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
