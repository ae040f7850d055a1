/* log.c: structured logging to the journal or to stderr as KEY=VALUE lines (see log.h). */
#include "log.h"

#include <errno.h>
#include <printf.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef EML_NO_JOURNAL
#include <systemd/sd-journal.h>
#endif

#define LOG_FIELDS_MAX 16
#define LOG_FIELD_MAX 1024

static char log_ident[64] = "eml";
static int log_target_journal = -1; /* -1 = not decided yet */
static int log_max_level = LOG_INFO;

static bool journal_stream_is_stderr(void) {
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2) return false;
	if (fstat(STDERR_FILENO, &st) < 0) return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static int level_from_name(const char *s) {
	static const char *const names[] = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"};
	for (int i = 0; i < 8; i++)
		if (strcmp(s, names[i]) == 0) return i;
	return -1;
}

void log_setup(const char *ident) {
	if (ident) snprintf(log_ident, sizeof log_ident, "%s", ident);
	const char *t = getenv("EML_LOG_TARGET");
	if (t && strcmp(t, "stderr") == 0)
		log_target_journal = 0;
	else if (t && strcmp(t, "journal") == 0)
		log_target_journal = 1;
	else
		log_target_journal = journal_stream_is_stderr();
#ifdef EML_NO_JOURNAL
	log_target_journal = 0;
#endif
	const char *l = getenv("EML_LOG_LEVEL");
	if (l && level_from_name(l) >= 0) log_max_level = level_from_name(l);
}

void log_set_max_level(int prio) { log_max_level = prio; }

bool log_to_journal(void) {
	if (log_target_journal < 0) log_setup(NULL);
	return log_target_journal == 1;
}

/* Skip the arguments that format consumed, so the next "FIELD=fmt" finds its own (glibc's printf parser). */
static int va_skip(const char *format, va_list *ap) {
	int types[32];
	size_t n = parse_printf_format(format, 32, types);
	if (n > 32) return -E2BIG;
	for (size_t i = 0; i < n; i++) {
		int t = types[i];
		if (t & PA_FLAG_PTR) {
			(void)va_arg(*ap, void *);
			continue;
		}
		switch (t & ~PA_FLAG_MASK) {
		case PA_INT:
		case PA_CHAR:
			if (t & PA_FLAG_LONG_LONG) (void)va_arg(*ap, long long);
			else if (t & PA_FLAG_LONG) (void)va_arg(*ap, long);
			else (void)va_arg(*ap, int);
			break;
		case PA_WCHAR: (void)va_arg(*ap, int); break;
		case PA_STRING:
		case PA_WSTRING:
		case PA_POINTER: (void)va_arg(*ap, void *); break;
		case PA_FLOAT:
		case PA_DOUBLE:
			if (t & PA_FLAG_LONG_DOUBLE) (void)va_arg(*ap, long double);
			else (void)va_arg(*ap, double);
			break;
		default: return -EINVAL;
		}
	}
	return 0;
}

/* Append value to line, quoted and escaped when needed. */
static size_t append_value(char *line, size_t pos, size_t cap, const char *v) {
	bool quote = *v == 0;
	for (const char *p = v; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f) quote = true;
	if (!quote) {
		size_t n = strlen(v);
		if (pos + n < cap) {
			memcpy(line + pos, v, n);
			pos += n;
		}
		return pos;
	}
	if (pos + 1 < cap) line[pos++] = '"';
	for (const char *p = v; *p && pos + 4 < cap; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			line[pos++] = '\\';
			line[pos++] = (char)c;
		} else if (c == '\n') {
			line[pos++] = '\\';
			line[pos++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			pos += (size_t)snprintf(line + pos, cap - pos, "\\x%02x", c);
		} else
			line[pos++] = (char)c;
	}
	if (pos + 1 < cap) line[pos++] = '"';
	return pos;
}

static int emit(int prio, const char *message_id, char fields[][LOG_FIELD_MAX], size_t n) {
	char prio_field[16], id_field[48], ident_field[96];
	snprintf(prio_field, sizeof prio_field, "PRIORITY=%d", prio);
	snprintf(ident_field, sizeof ident_field, "SYSLOG_IDENTIFIER=%s", log_ident);
	if (message_id) snprintf(id_field, sizeof id_field, "MESSAGE_ID=%s", message_id);
#ifndef EML_NO_JOURNAL
	if (log_to_journal()) {
		struct iovec iov[LOG_FIELDS_MAX + 3];
		size_t k = 0;
		for (size_t i = 0; i < n; i++) iov[k++] = (struct iovec){fields[i], strlen(fields[i])};
		iov[k++] = (struct iovec){prio_field, strlen(prio_field)};
		iov[k++] = (struct iovec){ident_field, strlen(ident_field)};
		if (message_id) iov[k++] = (struct iovec){id_field, strlen(id_field)};
		int r = sd_journal_sendv(iov, (int)k);
		if (r >= 0) return 0;
		/* fall through to stderr so the entry is not lost */
	}
#endif
	/* MESSAGE first, then the fixed fields, then the rest in the caller's order. */
	char line[8192];
	size_t pos = 0, cap = sizeof line - 1;
	const char *fixed[3] = {prio_field, ident_field, message_id ? id_field : NULL};
	for (int pass = 0; pass < 3; pass++) {
		if (pass == 1) {
			for (int i = 0; i < 3; i++) {
				if (!fixed[i]) continue;
				size_t l = strlen(fixed[i]);
				if (pos && pos < cap) line[pos++] = ' ';
				if (pos + l < cap) {
					memcpy(line + pos, fixed[i], l);
					pos += l;
				}
			}
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			bool is_msg = strncmp(fields[i], "MESSAGE=", 8) == 0;
			if ((pass == 0) != is_msg) continue;
			char *eq = strchr(fields[i], '=');
			if (!eq) continue;
			size_t kl = (size_t)(eq - fields[i]) + 1;
			if (pos && pos < cap) line[pos++] = ' ';
			if (pos + kl < cap) {
				memcpy(line + pos, fields[i], kl);
				pos += kl;
			}
			pos = append_value(line, pos, cap, eq + 1);
		}
	}
	line[pos++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, pos);
	return w == (ssize_t)pos ? 0 : -EIO;
}

static int log_structv(int prio, const char *message_id, const char *format, va_list ap) {
	char fields[LOG_FIELDS_MAX][LOG_FIELD_MAX];
	size_t n = 0;
	if (prio > log_max_level) return 0;
	va_list aq;
	va_copy(aq, ap);
	for (const char *f = format; f && n < LOG_FIELDS_MAX; f = va_arg(aq, const char *)) {
		va_list one;
		va_copy(one, aq);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		/* f is the caller's literal "FIELD=fmt"; the compiler checked nothing, glibc's parser skips it */
		vsnprintf(fields[n], LOG_FIELD_MAX, f, one);
#pragma GCC diagnostic pop
		va_end(one);
		if (va_skip(f, &aq) < 0) break;
		/* journal field names: upper case, digits, underscore; drop anything else rather than mis-log */
		char *eq = strchr(fields[n], '=');
		if (!eq || eq == fields[n]) continue;
		n++;
	}
	va_end(aq);
	return emit(prio, message_id, fields, n);
}

int log_struct(int prio, const char *message_id, const char *format, ...) {
	va_list ap;
	va_start(ap, format);
	int r = log_structv(prio, message_id, format, ap);
	va_end(ap);
	return r;
}

void log_msg(int prio, const char *format, ...) {
	if (prio > log_max_level) return;
	char msg[LOG_FIELD_MAX];
	int n = snprintf(msg, sizeof msg, "MESSAGE=");
	va_list ap;
	va_start(ap, format);
	vsnprintf(msg + n, sizeof msg - (size_t)n, format, ap);
	va_end(ap);
	log_struct(prio, NULL, "%s", msg, NULL);
}

void fatal(const char *format, ...) {
	char msg[LOG_FIELD_MAX];
	va_list ap;
	va_start(ap, format);
	vsnprintf(msg, sizeof msg, format, ap);
	va_end(ap);
	log_struct(LOG_CRIT, EML_MSG_STOPPING, "MESSAGE=%s", msg, NULL);
	exit(1);
}
