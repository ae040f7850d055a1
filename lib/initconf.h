/* initconf.h: eml-init's configuration (/etc/eml/init.conf): a small strict key=value format, described in
 * eml-init(8). This module owns parsing and validation only; eml-init acts on the result. It pulls in nothing
 * beyond libc and util, so eml-init can link statically. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INIT_CONF_MAX_SIZE 65536
#define INIT_CONF_MAX_LINE 4096
#define INIT_CONF_MAX_ARGS 64
#define INIT_CONF_MAX_ENV 64

enum init_restart {
	INIT_RESTART_NO,
	INIT_RESTART_ON_FAILURE,
	INIT_RESTART_ALWAYS,
};

struct init_conf {
	char **argv;            /* command, NULL-terminated; argv[0] is an absolute path */
	size_t argc;
	char **env;             /* "NAME=VALUE", NULL-terminated (possibly empty) */
	size_t n_env;
	enum init_restart restart;
	uint64_t restart_delay_ms;     /* first delay; doubled on each restart ... */
	uint64_t restart_delay_max_ms; /* ... up to this */
	uint64_t restart_limit;        /* restarts allowed before giving up (then power off) */
	uint64_t stop_timeout_ms;      /* after forwarding SIGTERM, SIGKILL when the command outlives this */
	bool heartbeat;                /* send the 0xB7 heartbeat to vsock 3:9000 when PID 1 */
};

/* Parses text (len bytes, need not be NUL-terminated). On error returns -EINVAL (or -EFBIG/-ENOMEM) and writes
 * "line N: reason" into err (errlen bytes) when given. */
int init_conf_parse(const char *text, size_t len, struct init_conf *ret, char *err, size_t errlen);
/* Reads and parses a file. */
int init_conf_load(const char *path, struct init_conf *ret, char *err, size_t errlen);
/* Frees what a successful parse allocated (safe on a zeroed or already freed struct). */
void init_conf_done(struct init_conf *c);

const char *init_restart_to_string(enum init_restart r);
