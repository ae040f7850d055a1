/* notify.c: sd_notify helpers and a watchdog timer for sd-event (see notify.h). */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>

#include "util.h"

_printf_(2, 0) static int notify_fmt(const char *prefix, const char *format, va_list ap) {
	char buf[512];
	int n = snprintf(buf, sizeof buf, "%s", prefix);
	vsnprintf(buf + n, sizeof buf - (size_t)n, format, ap);
	int r = sd_notify(0, buf);
	return r < 0 ? r : 0;
}

int notify_ready(void) {
	int r = sd_notify(0, "READY=1");
	return r < 0 ? r : 0;
}

int notify_status(const char *format, ...) {
	va_list ap;
	va_start(ap, format);
	int r = notify_fmt("STATUS=", format, ap);
	va_end(ap);
	return r;
}

int notify_ready_status(const char *format, ...) {
	va_list ap;
	va_start(ap, format);
	int r = notify_fmt("READY=1\nSTATUS=", format, ap);
	va_end(ap);
	return r;
}

int notify_stopping(void) {
	int r = sd_notify(0, "STOPPING=1");
	return r < 0 ? r : 0;
}

int notify_reloading(void) {
	int r = sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)now_monotonic_usec());
	return r < 0 ? r : 0;
}

int notify_watchdog(void) {
	int r = sd_notify(0, "WATCHDOG=1");
	return r < 0 ? r : 0;
}

uint64_t notify_watchdog_interval_usec(void) {
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0) return 0;
	return usec / 2;
}

static int on_watchdog(sd_event_source *s, uint64_t usec, void *userdata) {
	uint64_t interval = (uint64_t)(uintptr_t)userdata;
	notify_watchdog();
	int r = sd_event_source_set_time(s, usec + interval);
	return r < 0 ? r : sd_event_source_set_enabled(s, SD_EVENT_ON);
}

int notify_watchdog_attach(sd_event *e) {
	uint64_t interval = notify_watchdog_interval_usec();
	if (interval == 0) return 0;
	uint64_t now;
	int r = sd_event_now(e, CLOCK_MONOTONIC, &now);
	if (r < 0) return r;
	notify_watchdog(); /* first ping right away */
	return sd_event_add_time(e, NULL, CLOCK_MONOTONIC, now + interval, interval / 10, on_watchdog,
				 (void *)(uintptr_t)interval);
}
