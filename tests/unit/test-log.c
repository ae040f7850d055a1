/* Tests for log.c: KEY=VALUE lines on stderr (quoting, field order, levels) and journal detection through
 * $JOURNAL_STREAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "log.h"
#include "util.h"

/* Run fn with stderr redirected to a pipe; return what it wrote. */
static char *capture(void (*fn)(void)) {
	int p[2];
	assert_int_equal(pipe(p), 0);
	int saved = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	close(p[1]);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	static char buf[16384];
	ssize_t n = read(p[0], buf, sizeof buf - 1);
	close(p[0]);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static void emit_struct(void) {
	log_struct(LOG_INFO, EML_MSG_CONN_CLOSE, "MESSAGE=connection from %s closed", "tcp:1.2.3.4:5",
		   "EML_PEER=%s", "tcp:1.2.3.4:5", "EML_BYTES_IN=%" PRIu64, (uint64_t)12345, "EML_RATIO=%.2f", 0.5,
		   "EML_NOTE=%s", "has \"quotes\" and\nnewline", "EML_COUNT=%d", 7, NULL);
}

static void test_stderr_line(void **state) {
	setenv("EML_LOG_TARGET", "stderr", 1);
	log_setup("test-log");
	char *out = capture(emit_struct);
	assert_string_equal(out, "MESSAGE=\"connection from tcp:1.2.3.4:5 closed\" PRIORITY=6 SYSLOG_IDENTIFIER=test-log "
				 "MESSAGE_ID=" EML_MSG_CONN_CLOSE " EML_PEER=tcp:1.2.3.4:5 EML_BYTES_IN=12345 "
				 "EML_RATIO=0.50 EML_NOTE=\"has \\\"quotes\\\" and\\nnewline\" EML_COUNT=7\n");
}

static void emit_levels(void) {
	log_debug("hidden %d", 1);
	log_info("shown %d", 2);
	log_error("error %s", "x");
}

static void test_levels(void **state) {
	setenv("EML_LOG_TARGET", "stderr", 1);
	log_setup("test-log");
	log_set_max_level(LOG_INFO);
	char *out = capture(emit_levels);
	assert_null(strstr(out, "hidden"));
	assert_non_null(strstr(out, "MESSAGE=\"shown 2\" PRIORITY=6 SYSLOG_IDENTIFIER=test-log\n"));
	assert_non_null(strstr(out, "MESSAGE=\"error x\" PRIORITY=3"));
	log_set_max_level(LOG_DEBUG);
	out = capture(emit_levels);
	assert_non_null(strstr(out, "hidden 1"));
	log_set_max_level(LOG_INFO);
}

static void test_journal_detection(void **state) {
	unsetenv("EML_LOG_TARGET");
	struct stat st;
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	char v[64];
	snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	log_setup("test-log");
	assert_true(log_to_journal());
	snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", v, 1);
	log_setup("test-log");
	assert_false(log_to_journal());
	setenv("JOURNAL_STREAM", "garbage", 1);
	log_setup("test-log");
	assert_false(log_to_journal());
	unsetenv("JOURNAL_STREAM");
	log_setup("test-log");
	assert_false(log_to_journal());
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stderr_line),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_journal_detection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
