/* session-io.h: blocking drivers of the session machines (lib/session) over a connected stream socket, for
 * simple clients (eml embed --endpoint, lib/eml_client) and tests. They poll the fd (blocking or not) with
 * the machine's own deadlines, so a silent peer ends in TIMEOUT rather than a hang. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "session.h"

/* Send HELLO and wait until the handshake completed (0) or the session failed (negative errno; the ERROR for
 * the peer has been sent; see session_client_status). */
int session_client_handshake_fd(SessionClient *c, int fd);
/* Send one request and wait for its response: 0 and *ret (free_secret(*ret, *ret_len)). */
int session_client_call_fd(SessionClient *c, int fd, const void *req, size_t len, uint8_t **ret, size_t *ret_len);
/* Send CLOSE (best effort). */
int session_client_close_fd(SessionClient *c, int fd);

/* Serve one session on fd until the peer closes or the session fails, answering each request in order with
 * handler (0 and a malloc'ed answer; a negative errno fails the session with INTERNAL). 0 after a clean
 * CLOSE, else a negative errno. */
typedef int (*session_handler_t)(void *userdata, uint32_t seq, const uint8_t *req, size_t len, uint8_t **ret,
				 size_t *ret_len);
int session_server_serve_fd(SessionServer *s, int fd, session_handler_t handler, void *userdata);
