/* initconf.c: parser for eml-init's key=value configuration (see initconf.h). */
#include "initconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "util.h"

static const char *const restart_names[] = {
	[INIT_RESTART_NO] = "no",
	[INIT_RESTART_ON_FAILURE] = "on-failure",
	[INIT_RESTART_ALWAYS] = "always",
};

const char *init_restart_to_string(enum init_restart r) {
	return (size_t)r < ARRAY_SIZE(restart_names) ? restart_names[r] : NULL;
}

void init_conf_done(struct init_conf *c) {
	if (!c) return;
	if (c->argv)
		for (size_t i = 0; i < c->argc; i++) free(c->argv[i]);
	if (c->env)
		for (size_t i = 0; i < c->n_env; i++) free(c->env[i]);
	free(c->argv);
	free(c->env);
	c->argv = c->env = NULL;
	c->argc = c->n_env = 0;
}

_printf_(4, 5) static int fail(char *err, size_t errlen, unsigned line, const char *fmt, ...) {
	if (err && errlen) {
		int n = snprintf(err, errlen, "line %u: ", line);
		if (n >= 0 && (size_t)n < errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return -EINVAL;
}

static bool env_name_valid(const char *s, size_t n) {
	if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_'))
			return false;
	return true;
}

/* Splits on runs of spaces (tabs never get here: control characters are refused); no quoting, so arguments
 * cannot contain spaces (documented). */
static int split_command(const char *v, struct init_conf *c, char *err, size_t errlen, unsigned line) {
	c->argv = calloc(INIT_CONF_MAX_ARGS + 1, sizeof *c->argv);
	if (!c->argv) return -ENOMEM;
	const char *p = v;
	for (;;) {
		p += strspn(p, " \t");
		if (!*p) break;
		size_t n = strcspn(p, " \t");
		if (c->argc >= INIT_CONF_MAX_ARGS) return fail(err, errlen, line, "more than %d arguments", INIT_CONF_MAX_ARGS);
		c->argv[c->argc] = strndup(p, n);
		if (!c->argv[c->argc]) return -ENOMEM;
		c->argc++;
		p += n;
	}
	if (c->argc == 0) return fail(err, errlen, line, "empty command");
	if (c->argv[0][0] != '/') return fail(err, errlen, line, "command must start with an absolute path");
	return 0;
}

static int add_env(const char *v, struct init_conf *c, char *err, size_t errlen, unsigned line) {
	const char *eq = strchr(v, '=');
	if (!eq || !env_name_valid(v, (size_t)(eq - v)))
		return fail(err, errlen, line, "env wants NAME=VALUE with NAME of [A-Za-z_][A-Za-z0-9_]*");
	size_t nlen = (size_t)(eq - v) + 1;
	for (size_t i = 0; i < c->n_env; i++)
		if (strncmp(c->env[i], v, nlen) == 0) return fail(err, errlen, line, "duplicate env %.*s", (int)(nlen - 1), v);
	if (c->n_env >= INIT_CONF_MAX_ENV) return fail(err, errlen, line, "more than %d env entries", INIT_CONF_MAX_ENV);
	c->env[c->n_env] = strdup(v);
	if (!c->env[c->n_env]) return -ENOMEM;
	c->n_env++;
	return 0;
}

static int parse_ms(const char *v, uint64_t min, uint64_t max, uint64_t *ret, char *err, size_t errlen, unsigned line,
		    const char *key) {
	uint64_t x;
	if (parse_u64(v, max, &x) < 0 || x < min)
		return fail(err, errlen, line, "%s wants an integer in %llu..%llu", key, (unsigned long long)min,
			    (unsigned long long)max);
	*ret = x;
	return 0;
}

enum { K_COMMAND, K_ENV, K_RESTART, K_DELAY, K_DELAY_MAX, K_LIMIT, K_STOP, K_HEARTBEAT, K_COUNT };
static const char *const keys[K_COUNT] = {
	[K_COMMAND] = "command",     [K_ENV] = "env",
	[K_RESTART] = "restart",     [K_DELAY] = "restart-delay-ms",
	[K_DELAY_MAX] = "restart-delay-max-ms", [K_LIMIT] = "restart-limit",
	[K_STOP] = "stop-timeout-ms", [K_HEARTBEAT] = "heartbeat",
};

static int parse_line(char *s, unsigned line, struct init_conf *c, bool seen[K_COUNT], char *err, size_t errlen) {
	char *eq = strchr(s, '=');
	if (!eq) return fail(err, errlen, line, "expected key=value");
	*eq = 0;
	const char *v = eq + 1;
	if (eq > s && eq[-1] == ' ') return fail(err, errlen, line, "space before '='");
	if (*v == ' ') return fail(err, errlen, line, "space after '='");
	int k = -1;
	for (int i = 0; i < K_COUNT; i++)
		if (strcmp(s, keys[i]) == 0) k = i;
	if (k < 0) return fail(err, errlen, line, "unknown key '%.64s'", s);
	if (k != K_ENV && seen[k]) return fail(err, errlen, line, "duplicate key %s", keys[k]);
	seen[k] = true;
	switch (k) {
	case K_COMMAND: return split_command(v, c, err, errlen, line);
	case K_ENV: return add_env(v, c, err, errlen, line);
	case K_RESTART:
		for (size_t i = 0; i < ARRAY_SIZE(restart_names); i++)
			if (strcmp(v, restart_names[i]) == 0) {
				c->restart = (enum init_restart)i;
				return 0;
			}
		return fail(err, errlen, line, "restart wants no, on-failure or always");
	case K_DELAY: return parse_ms(v, 1, 3600000, &c->restart_delay_ms, err, errlen, line, keys[k]);
	case K_DELAY_MAX: return parse_ms(v, 1, 3600000, &c->restart_delay_max_ms, err, errlen, line, keys[k]);
	case K_LIMIT: return parse_ms(v, 0, 1000, &c->restart_limit, err, errlen, line, keys[k]);
	case K_STOP: return parse_ms(v, 1, 600000, &c->stop_timeout_ms, err, errlen, line, keys[k]);
	case K_HEARTBEAT:
		if (strcmp(v, "yes") == 0) c->heartbeat = true;
		else if (strcmp(v, "no") == 0) c->heartbeat = false;
		else return fail(err, errlen, line, "heartbeat wants yes or no");
		return 0;
	}
	return -EINVAL;
}

int init_conf_parse(const char *text, size_t len, struct init_conf *ret, char *err, size_t errlen) {
	if (!text || !ret) return -EINVAL;
	if (err && errlen) err[0] = 0;
	if (len > INIT_CONF_MAX_SIZE) {
		if (err && errlen) snprintf(err, errlen, "larger than %d bytes", INIT_CONF_MAX_SIZE);
		return -EFBIG;
	}
	struct init_conf c = {
		.restart = INIT_RESTART_ON_FAILURE,
		.restart_delay_ms = 100,
		.restart_delay_max_ms = 5000,
		.restart_limit = 5,
		.stop_timeout_ms = 5000,
		.heartbeat = true,
	};
	bool seen[K_COUNT] = {0};
	char buf[INIT_CONF_MAX_LINE + 1];
	int r = 0;
	c.env = calloc(INIT_CONF_MAX_ENV + 1, sizeof *c.env);
	if (!c.env) return -ENOMEM;
	size_t pos = 0;
	unsigned line = 0;
	while (pos < len && r == 0) {
		line++;
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		if (n > INIT_CONF_MAX_LINE) {
			r = fail(err, errlen, line, "longer than %d bytes", INIT_CONF_MAX_LINE);
			break;
		}
		memcpy(buf, text + pos, n);
		buf[n] = 0;
		pos += n + (nl ? 1 : 0);
		for (size_t i = 0; i < n && r == 0; i++)
			if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) r = fail(err, errlen, line, "control character");
		if (r < 0) break;
		if (n == 0 || buf[0] == '#') continue;
		if (buf[0] == ' ' || buf[0] == '\t' || buf[n - 1] == ' ')
			r = fail(err, errlen, line, "leading or trailing whitespace");
		else
			r = parse_line(buf, line, &c, seen, err, errlen);
	}
	if (r == 0 && !seen[K_COMMAND]) r = fail(err, errlen, line, "no command= line");
	if (r == 0 && c.restart_delay_max_ms < c.restart_delay_ms)
		r = fail(err, errlen, line, "restart-delay-max-ms is below restart-delay-ms");
	if (r < 0) {
		init_conf_done(&c);
		return r;
	}
	*ret = c;
	return 0;
}

int init_conf_load(const char *path, struct init_conf *ret, char *err, size_t errlen) {
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;
	int r = read_file(path, INIT_CONF_MAX_SIZE, &data, &len);
	if (r < 0) {
		if (err && errlen) snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	return init_conf_parse((const char *)data, len, ret, err, errlen);
}
