/* Tests for initconf.c: eml-init's configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "initconf.h"
#include "macro.h"

static int parse(const char *s, struct init_conf *c, char *err) {
	return init_conf_parse(s, strlen(s), c, err, 128);
}

static void test_full(void **state) {
	struct init_conf c;
	char err[128];
	assert_int_equal(parse("# the enclave daemon\n\ncommand=/usr/bin/eml-inferenced  --listen vsock::5000\n"
			       "env=A=1\nenv=B_2=x=y\nrestart=always\nrestart-delay-ms=50\nrestart-delay-max-ms=400\n"
			       "restart-limit=7\nstop-timeout-ms=900\nheartbeat=no",
			       &c, err),
			 0);
	assert_int_equal(c.argc, 3);
	assert_string_equal(c.argv[0], "/usr/bin/eml-inferenced");
	assert_string_equal(c.argv[1], "--listen");
	assert_string_equal(c.argv[2], "vsock::5000");
	assert_null(c.argv[3]);
	assert_int_equal(c.n_env, 2);
	assert_string_equal(c.env[1], "B_2=x=y");
	assert_null(c.env[2]);
	assert_int_equal(c.restart, INIT_RESTART_ALWAYS);
	assert_int_equal(c.restart_delay_ms, 50);
	assert_int_equal(c.restart_delay_max_ms, 400);
	assert_int_equal(c.restart_limit, 7);
	assert_int_equal(c.stop_timeout_ms, 900);
	assert_false(c.heartbeat);
	init_conf_done(&c);
	init_conf_done(&c); /* idempotent */
}

static void test_defaults(void **state) {
	struct init_conf c;
	char err[128];
	assert_int_equal(parse("command=/bin/x\n", &c, err), 0);
	assert_int_equal(c.restart, INIT_RESTART_ON_FAILURE);
	assert_true(c.heartbeat);
	assert_int_equal(c.n_env, 0);
	assert_null(c.env[0]);
	assert_int_equal(c.restart_limit, 5);
	init_conf_done(&c);
}

static void test_errors(void **state) {
	struct init_conf c;
	char err[128];
	static const struct {
		const char *text, *why;
	} bad[] = {
		{"", "line 0: no command= line"},
		{"command=x\n", "line 1: command must start with an absolute path"},
		{"command=/x\ncommand=/y\n", "line 2: duplicate key command"},
		{"command=/x\r\n", "line 1: control character"},
		{" command=/x\n", "line 1: leading or trailing whitespace"},
		{"command=/x\nrestart=maybe\n", "line 2: restart wants no, on-failure or always"},
		{"command=/x\nrestart-limit=1001\n", "line 2: restart-limit wants an integer in 0..1000"},
		{"command=/x\nrestart-delay-ms=0\n", "line 2: restart-delay-ms wants an integer in 1..3600000"},
		{"command=/x\nenv=A=1\nenv=A=2\n", "line 3: duplicate env A"},
		{"command=/x\nenv=NOVALUE\n", "line 2: env wants NAME=VALUE with NAME of [A-Za-z_][A-Za-z0-9_]*"},
		{"command=/x\nfoo\n", "line 2: expected key=value"},
		{"command=/x\nheartbeat=on\n", "line 2: heartbeat wants yes or no"},
		{"command=/x\nrestart-delay-ms=500\nrestart-delay-max-ms=100\n",
		 "line 3: restart-delay-max-ms is below restart-delay-ms"},
		{"command=\n", "line 1: empty command"},
		{"command= /x\n", "line 1: space after '='"},
		{"command =/x\n", "line 1: space before '='"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(parse(bad[i].text, &c, err), -EINVAL);
		assert_string_equal(err, bad[i].why);
	}
	/* An embedded NUL is a control character, not the end of the file. */
	assert_int_equal(init_conf_parse("command=/x\0y\n", 13, &c, err, sizeof err), -EINVAL);
	/* Size limits. */
	char *big = malloc(INIT_CONF_MAX_SIZE + 2);
	memset(big, '#', INIT_CONF_MAX_SIZE + 1);
	assert_int_equal(init_conf_parse(big, INIT_CONF_MAX_SIZE + 1, &c, err, sizeof err), -EFBIG);
	memcpy(big, "command=/", 9);
	assert_int_equal(init_conf_parse(big, INIT_CONF_MAX_LINE + 1, &c, err, sizeof err), -EINVAL);
	assert_string_equal(err, "line 1: longer than 4096 bytes");
	free(big);
	/* Argument and env counts. */
	char many[1024] = "command=/x";
	for (int i = 0; i < INIT_CONF_MAX_ARGS; i++) strcat(many, " a");
	assert_int_equal(parse(many, &c, err), -EINVAL);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
