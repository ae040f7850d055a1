/* notify.h: the service manager protocol (sd_notify): READY, STATUS, STOPPING, RELOADING and the watchdog.
 * All calls are no-ops (returning 0) when $NOTIFY_SOCKET is unset. */
#pragma once

#include <stdint.h>

#include <systemd/sd-event.h>

#include "macro.h"

int notify_ready(void);
int notify_status(const char *format, ...) _printf_(1, 2);
/* READY=1 and STATUS= in one message. */
int notify_ready_status(const char *format, ...) _printf_(1, 2);
int notify_stopping(void);
/* RELOADING=1 with MONOTONIC_USEC= (what systemd >= 253 expects for Type=notify-reload); send notify_ready when
 * done. */
int notify_reloading(void);
int notify_watchdog(void);

/* The interval at which to ping: half the manager's WatchdogSec (sd_watchdog_enabled), or 0 if none is set. */
uint64_t notify_watchdog_interval_usec(void);

/* Add a timer to the event loop that sends WATCHDOG=1 every notify_watchdog_interval_usec(). No-op without a
 * watchdog. The source is floating (owned by the loop). */
int notify_watchdog_attach(sd_event *e);
