/* allowlist.c: strict parser of the vsock-proxy allow-list YAML; see allowlist.h. */
#include "allowlist.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <yaml.h>

#include "macro.h"
#include "util.h"

struct parser {
	yaml_parser_t p;
	yaml_event_t ev;
	bool have_ev;
	char *err;
	size_t errlen;
};

_printf_(2, 3) static int perr(struct parser *ps, const char *fmt, ...) {
	va_list ap;
	int n = snprintf(ps->err, ps->errlen, "line %zu: ", (size_t)ps->ev.start_mark.line + 1);
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < ps->errlen)
		vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int next(struct parser *ps) {
	if (ps->have_ev)
		yaml_event_delete(&ps->ev);
	ps->have_ev = false;
	if (!yaml_parser_parse(&ps->p, &ps->ev)) {
		snprintf(ps->err, ps->errlen, "line %zu: YAML syntax error: %s", (size_t)ps->p.problem_mark.line + 1,
			 ps->p.problem ? ps->p.problem : "unknown");
		return -EINVAL;
	}
	ps->have_ev = true;
	return 0;
}

static int expect(struct parser *ps, yaml_event_type_t t, const char *what) {
	int r = next(ps);
	if (r < 0)
		return r;
	if (ps->ev.type != t)
		return perr(ps, "expected %s", what);
	return 0;
}

static bool scalar_is(const yaml_event_t *ev, const char *s) {
	return ev->type == YAML_SCALAR_EVENT && ev->data.scalar.length == strlen(s) &&
	       memcmp(ev->data.scalar.value, s, ev->data.scalar.length) == 0;
}

static int parse_entry(struct parser *ps, struct allowlist_entry *e) {
	bool have_addr = false, have_port = false;
	for (;;) {
		int r = next(ps);
		if (r < 0)
			return r;
		if (ps->ev.type == YAML_MAPPING_END_EVENT)
			break;
		if (ps->ev.type != YAML_SCALAR_EVENT)
			return perr(ps, "expected 'address' or 'port'");
		bool is_addr = scalar_is(&ps->ev, "address"), is_port = scalar_is(&ps->ev, "port");
		if (!is_addr && !is_port)
			return perr(ps, "unknown key '%.*s' (allowed: address, port)", (int)MIN(ps->ev.data.scalar.length, 64),
				    (const char *)ps->ev.data.scalar.value);
		if ((is_addr && have_addr) || (is_port && have_port))
			return perr(ps, "duplicate key '%s'", is_addr ? "address" : "port");
		r = expect(ps, YAML_SCALAR_EVENT, is_addr ? "an address" : "a port number");
		if (r < 0)
			return r;
		const char *v = (const char *)ps->ev.data.scalar.value;
		size_t vl = ps->ev.data.scalar.length;
		if (is_addr) {
			if (vl == 0 || vl > ALLOWLIST_HOST_MAX || strlen(v) != vl)
				return perr(ps, "address must be 1-%d characters", ALLOWLIST_HOST_MAX);
			for (size_t i = 0; i < vl; i++)
				if (!(isalnum((unsigned char)v[i]) || strchr(".-_:", v[i])))
					return perr(ps, "address '%.*s' is not a host name or IP address", (int)MIN(vl, 64), v);
			memcpy(e->address, v, vl);
			e->address[vl] = 0;
			have_addr = true;
		} else {
			uint64_t port;
			if (strlen(v) != vl || parse_u64(v, 65535, &port) < 0 || port == 0)
				return perr(ps, "port must be a number 1-65535, not '%.*s'", (int)MIN(vl, 64), v);
			e->port = (uint16_t)port;
			have_port = true;
		}
	}
	if (!have_addr || !have_port)
		return perr(ps, "allow-list entry without '%s'", have_addr ? "port" : "address");
	return 0;
}

int allowlist_parse(const char *text, size_t len, struct allowlist *ret, char *err, size_t errlen) {
	struct parser ps = {.err = err, .errlen = errlen};
	struct allowlist a = {0};
	int r;

	snprintf(err, errlen, "ok");
	if (len > ALLOWLIST_MAX_SIZE) {
		snprintf(err, errlen, "file larger than %d bytes", ALLOWLIST_MAX_SIZE);
		return -EINVAL;
	}
	if (!yaml_parser_initialize(&ps.p))
		return -ENOMEM;
	yaml_parser_set_input_string(&ps.p, (const unsigned char *)text, len);
	if ((r = expect(&ps, YAML_STREAM_START_EVENT, "a YAML stream")) < 0)
		goto fail;
	if ((r = next(&ps)) < 0)
		goto fail;
	if (ps.ev.type != YAML_DOCUMENT_START_EVENT) {
		r = perr(&ps, "empty file: expected 'allowlist:'");
		goto fail;
	}
	if ((r = expect(&ps, YAML_MAPPING_START_EVENT, "a mapping with the key 'allowlist'")) < 0)
		goto fail;
	if ((r = next(&ps)) < 0)
		goto fail;
	if (!scalar_is(&ps.ev, "allowlist")) {
		r = perr(&ps, "expected the key 'allowlist'");
		goto fail;
	}
	if ((r = expect(&ps, YAML_SEQUENCE_START_EVENT, "a list of {address, port} under 'allowlist'")) < 0)
		goto fail;
	a.entries = calloc(ALLOWLIST_MAX_ENTRIES, sizeof(*a.entries));
	if (!a.entries) {
		r = -ENOMEM;
		goto fail;
	}
	for (;;) {
		if ((r = next(&ps)) < 0)
			goto fail;
		if (ps.ev.type == YAML_SEQUENCE_END_EVENT)
			break;
		if (ps.ev.type != YAML_MAPPING_START_EVENT) {
			r = perr(&ps, "expected an {address, port} entry");
			goto fail;
		}
		if (a.n >= ALLOWLIST_MAX_ENTRIES) {
			r = perr(&ps, "more than %d entries", ALLOWLIST_MAX_ENTRIES);
			goto fail;
		}
		if ((r = parse_entry(&ps, &a.entries[a.n++])) < 0)
			goto fail;
	}
	if ((r = next(&ps)) < 0)
		goto fail;
	if (ps.ev.type != YAML_MAPPING_END_EVENT) {
		r = perr(&ps, "unexpected key after 'allowlist' (only 'allowlist' is allowed)");
		goto fail;
	}
	if ((r = expect(&ps, YAML_DOCUMENT_END_EVENT, "the end of the document")) < 0)
		goto fail;
	if ((r = expect(&ps, YAML_STREAM_END_EVENT, "a single YAML document")) < 0)
		goto fail;
	if (ps.have_ev)
		yaml_event_delete(&ps.ev);
	yaml_parser_delete(&ps.p);
	snprintf(err, errlen, "ok");
	*ret = a;
	return 0;
fail:
	if (ps.have_ev)
		yaml_event_delete(&ps.ev);
	yaml_parser_delete(&ps.p);
	free(a.entries);
	return r;
}

int allowlist_load(const char *path, struct allowlist *ret, char *err, size_t errlen) {
	_cleanup_free_ uint8_t *text = NULL;
	size_t len;
	int r = read_file(path, ALLOWLIST_MAX_SIZE, &text, &len);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", path, r == -EFBIG ? "file too large" : strerror(-r));
		return r;
	}
	return allowlist_parse((const char *)text, len, ret, err, errlen);
}

void allowlist_free(struct allowlist *a) {
	if (!a)
		return;
	free(a->entries);
	a->entries = NULL;
	a->n = 0;
}
