/* log.h: one logging call for every daemon and tool. When stderr is connected to the journal ($JOURNAL_STREAM
 * names stderr's device and inode) each call becomes one structured journal entry (MESSAGE, PRIORITY,
 * MESSAGE_ID, SYSLOG_IDENTIFIER and EML_* fields); otherwise one line on stderr:
 *
 *   MESSAGE="connection closed" PRIORITY=6 SYSLOG_IDENTIFIER=eml-blind-relay MESSAGE_ID=0a5c... EML_PEER=...
 *
 * Values are quoted when they contain spaces, quotes, '=' or control characters ("\n", "\"", "\\" escaped).
 * Never pass a secret, a key, input text or a vector to these functions.
 *
 * The identity and target are process-wide (the one piece of global state in lib/). */
#pragma once

#include <stdbool.h>
#include <syslog.h>

#include "macro.h"
#include "messages.h"

/* Set SYSLOG_IDENTIFIER and pick the target (journal if $JOURNAL_STREAM matches stderr; EML_LOG_TARGET=stderr or
 * journal overrides; EML_LOG_LEVEL=debug|info|notice|warning|err sets the maximum priority). */
void log_setup(const char *ident);
void log_set_max_level(int prio);
bool log_to_journal(void);

/* Structured entry. Each variadic argument after message_id is a "FIELD=printf-format" string followed by its
 * arguments; the list ends with NULL. One of the fields should be MESSAGE=. message_id may be NULL.
 *   log_struct(LOG_INFO, EML_MSG_CONN_OPEN, "MESSAGE=connection from %s", peer, "EML_PEER=%s", peer, NULL);
 * Returns 0, or a negative errno when the entry could not be written. */
int log_struct(int prio, const char *message_id, const char *format, ...) _sentinel_;

/* Plain message (no MESSAGE_ID). */
void log_msg(int prio, const char *format, ...) _printf_(2, 3);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)

/* Log at LOG_CRIT and exit(1). For start-up failures, never for per-connection errors. */
_Noreturn void fatal(const char *format, ...) _printf_(1, 2);
