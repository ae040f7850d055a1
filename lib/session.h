/* session.h: the attested session of eml-protocol(7) as two state machines, client and server, that take
 * bytes and give bytes: no sockets, no threads, no sleeps. The caller moves bytes between the machine and its
 * connection, passes the current time (monotonic microseconds) in, and asks when the next deadline is.
 *
 * Owns: the message payloads of HELLO, ATTEST, ERROR and CLOSE, the attestation user_data, the key schedule
 * (HPKE base mode toward the attested X25519 key; responses under keys exported from that context), the
 * sequence rules (requests numbered 0, 1, 2... in order; a response answers one outstanding request), the
 * limits and the deadlines. Request and response plaintexts are opaque here.
 *
 *   client                              server
 *   session_client_new     -- HELLO ->  session_server_feed  -> make_attestation callback
 *   session_client_feed    <- ATTEST --                         (fresh X25519 key, nonce, user_data)
 *     verify_attestation callback, SetupBaseS
 *   session_client_request -- REQUEST n -> feed -> session_server_next_request (n, plaintext)
 *   session_client_next_response <- RESPONSE n -- session_server_respond(n, plaintext)
 *   session_*_close        -- CLOSE ->
 *
 * Any protocol violation (a bad frame, a frame that fails to open, a replayed or reordered one, a limit, a
 * timeout) fails the session: an ERROR frame {code, message} is queued for the peer, the machine keeps no
 * more secrets, and every later call returns -EPIPE. Once *_pending_output is drained after a failure or
 * close, the caller closes the connection. Every secret (X25519 private key, HPKE contexts, plaintexts
 * not yet taken) is wiped on free. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define SESSION_NONCE_LEN 32
#define SESSION_INFO_PREFIX "eml/1 session"
#define SESSION_LABEL_RESPONSE_KEY "eml/1 response key"
#define SESSION_LABEL_RESPONSE_NONCE "eml/1 response nonce"
#define SESSION_ERROR_MESSAGE_MAX 256 /* bytes of an ERROR message (longer ones are cut when sent) */
#define SESSION_ERROR_CODE_MAX 32

/* Stable ERROR codes: names never change meaning; new ones are appended. */
typedef enum SessionError {
	SESSION_OK = 0,
	SESSION_BAD_FRAME,      /* header malformed, unexpected type or seq, malformed ERROR/CLOSE/ATTEST */
	SESSION_BAD_HELLO,      /* HELLO payload not {v:1, nonce, aead?} or an AEAD we do not offer */
	SESSION_ATTEST_FAILED,  /* the attestation document was refused, or could not be made */
	SESSION_DECRYPT_FAILED, /* a REQUEST or RESPONSE did not open */
	SESSION_SEQ,            /* a sequence number out of order, replayed, or answering nothing */
	SESSION_LIMIT,          /* a size, count or pending limit */
	SESSION_TIMEOUT,        /* a deadline passed */
	SESSION_INTERNAL,       /* our own failure (memory, crypto library) */
	SESSION_BUSY,           /* the server takes no more sessions (for callers: session_server_fail) */
	SESSION_NO_MODEL,       /* no model loaded (for callers: session_server_fail) */
	SESSION_REMOTE,         /* not sent: the peer sent ERROR; see session_status.remote_code */
	_SESSION_ERROR_MAX,
} SessionError;

/* "BAD_FRAME", ... ("INTERNAL" for out-of-range values). */
const char *session_error_name(SessionError e);

typedef enum SessionState {
	SESSION_HANDSHAKE, /* before the first REQUEST can be sent / opened */
	SESSION_OPEN,
	SESSION_CLOSED, /* clean CLOSE, sent or received */
	SESSION_FAILED, /* see session_status */
} SessionState;

const char *session_state_name(SessionState s);

typedef struct SessionStatus {
	SessionState state;
	SessionError error;                          /* SESSION_OK unless FAILED */
	char remote_code[SESSION_ERROR_CODE_MAX + 1]; /* SESSION_REMOTE: the peer's code (sanitised) */
	char message[SESSION_ERROR_MESSAGE_MAX + 1];  /* ours, or the peer's (printable ASCII only) */
} SessionStatus;

/* The frame size cap each side enforces follows from these: a server accepts frames of at most
 * max_request + 48 bytes (enc and tag), a client of at most max_response + 16 (or an ATTEST). */
typedef struct SessionLimits {
	uint32_t max_request;           /* request plaintext bytes */
	uint32_t max_response;          /* response plaintext bytes */
	uint32_t max_requests;          /* requests per session */
	uint32_t max_pending;           /* requests received (sent) and not yet answered */
	uint64_t handshake_timeout_usec; /* server: HELLO to arrive; client: ATTEST to arrive */
	uint64_t idle_timeout_usec;     /* server: next frame while nothing is owed; client: a response owed */
} SessionLimits;

#define SESSION_LIMITS_DEFAULT                                                                             \
	((SessionLimits){.max_request = 1u << 20, .max_response = 4u << 20, .max_requests = 1u << 20,     \
			 .max_pending = 16, .handshake_timeout_usec = 10000000, .idle_timeout_usec = 60000000})

/* The user_data of the enclave's attestation document: deterministic CBOR
 * {"v": 1, "receipt_key": bstr .size 32, "model": bstr .size 32 / null}. */
typedef struct SessionUserData {
	uint8_t receipt_key[32]; /* Ed25519 public key the enclave signs AIR receipts with */
	bool has_model;
	uint8_t model_hash[32];  /* SHA-256 of the loaded model's manifest */
} SessionUserData;

int session_user_data_encode(const SessionUserData *u, uint8_t **ret, size_t *ret_len);
/* Strict: -EBADMSG unless exactly the shape above (deterministic, no other keys). */
int session_user_data_decode(const uint8_t *buf, size_t len, SessionUserData *ret);

/* ---- server ---------------------------------------------------------------------------------------- */

/* Produce an attestation document with exactly these nonce, public_key (32-byte X25519) and user_data
 * (NSM limits apply: each at most 512 / 1024 / 512 bytes). 0 and a malloc'ed *ret_doc, or a negative errno
 * (the session then fails with ATTEST_FAILED). */
typedef int (*session_make_attestation_t)(void *userdata, const uint8_t *nonce, size_t nonce_len,
					  const uint8_t *public_key, size_t public_key_len, const uint8_t *user_data,
					  size_t user_data_len, uint8_t **ret_doc, size_t *ret_len);

typedef struct SessionServerConfig {
	SessionLimits limits;                 /* zero fields take the default */
	SessionUserData user_data;
	session_make_attestation_t make_attestation;
	void *userdata;
} SessionServerConfig;

typedef struct SessionServer SessionServer;

int session_server_new(const SessionServerConfig *cfg, uint64_t now_usec, SessionServer **ret);
SessionServer *session_server_free(SessionServer *s);
static inline void session_server_freep(SessionServer **s) { session_server_free(*s); }
#define _cleanup_session_server_ _cleanup_(session_server_freep)

/* Consume all len bytes received. 0 while the session is alive or cleanly closed; a negative errno when it
 * failed (now or before: -EPIPE): then see session_server_status and send the pending output. */
int session_server_feed(SessionServer *s, const void *buf, size_t len, uint64_t now_usec);
/* The connection reached end of stream: fine after a CLOSE (sent or received) or a failure; otherwise the
 * session fails with BAD_FRAME (the stream ended inside a frame, or without CLOSE). */
int session_server_eof(SessionServer *s);
/* Take the next opened request: 1 and ownership of *ret_plaintext (free_secret(p, len); may be NULL for an
 * empty request), 0 when none is ready. */
int session_server_next_request(SessionServer *s, uint32_t *ret_seq, uint8_t **ret_plaintext, size_t *ret_len);
/* Answer request seq (taken and not yet answered; any order). -ESRCH if seq is not owed, -EMSGSIZE above
 * max_response, -EPIPE if the session is over. */
int session_server_respond(SessionServer *s, uint32_t seq, const void *plaintext, size_t len, uint64_t now_usec);
/* Queue an AUDIT frame (for the relay) about request seq. The payload must be an audit record (audit.h). */
int session_server_audit(SessionServer *s, uint32_t seq, const void *payload, size_t len);
/* Fail the session on purpose with code (e.g. SESSION_NO_MODEL, SESSION_BUSY) and a message for the peer. */
int session_server_fail(SessionServer *s, SessionError code, const char *message);
/* Queue CLOSE and end the session cleanly. */
int session_server_close(SessionServer *s);
/* Check deadlines; fails the session with TIMEOUT when one passed (returns -ETIMEDOUT then). */
int session_server_tick(SessionServer *s, uint64_t now_usec);
/* Absolute monotonic usec of the next deadline, UINT64_MAX when none. */
uint64_t session_server_next_deadline(const SessionServer *s);
/* Bytes to write to the peer (valid until the next call on s); mark n of them written with _advance. */
const uint8_t *session_server_pending_output(const SessionServer *s, size_t *ret_len);
void session_server_output_advance(SessionServer *s, size_t n);
const SessionStatus *session_server_status(const SessionServer *s);
/* SHA-256 of the attestation document sent (valid once OPEN): what receipts bind as attestation_doc_hash. */
const uint8_t *session_server_doc_sha256(const SessionServer *s);

/* ---- client ---------------------------------------------------------------------------------------- */

/* What the verifier hands back from a valid document: the document's public_key and user_data fields. */
typedef struct SessionAttested {
	uint8_t public_key[1024];
	size_t public_key_len;
	uint8_t user_data[512];
	size_t user_data_len;
	char reason[160]; /* on failure: why (sent to nobody; shown in the session status) */
} SessionAttested;

/* Verify doc (signature, chain, freshness, PCR policy, and that its nonce equals nonce). 0 and ret filled when
 * the document is acceptable; a negative errno otherwise (the session fails with ATTEST_FAILED). */
typedef int (*session_verify_attestation_t)(void *userdata, const uint8_t *doc, size_t len, const uint8_t *nonce,
					    size_t nonce_len, SessionAttested *ret);

typedef struct SessionClientConfig {
	SessionLimits limits;    /* zero fields take the default */
	uint16_t aead;           /* 0: ChaCha20-Poly1305 (3); or AES-256-GCM (2) */
	session_verify_attestation_t verify_attestation;
	void *userdata;
	const uint8_t *nonce;    /* tests only: a fixed HELLO nonce (32 bytes); NULL = random */
} SessionClientConfig;

typedef struct SessionClient SessionClient;

/* Creates the client and queues HELLO. */
int session_client_new(const SessionClientConfig *cfg, uint64_t now_usec, SessionClient **ret);
SessionClient *session_client_free(SessionClient *c);
static inline void session_client_freep(SessionClient **c) { session_client_free(*c); }
#define _cleanup_session_client_ _cleanup_(session_client_freep)

int session_client_feed(SessionClient *c, const void *buf, size_t len, uint64_t now_usec);
int session_client_eof(SessionClient *c);
/* Seal and queue a request: *ret_seq (may be NULL) is its number. -EAGAIN before the handshake completed,
 * -EMSGSIZE above max_request, -EBUSY with max_pending requests outstanding, -ERANGE past max_requests,
 * -EPIPE when the session is over. */
int session_client_request(SessionClient *c, const void *plaintext, size_t len, uint64_t now_usec,
			   uint32_t *ret_seq);
/* Take the next opened response (in arrival order): 1 and ownership of *ret_plaintext (free_secret), or 0. */
int session_client_next_response(SessionClient *c, uint32_t *ret_seq, uint8_t **ret_plaintext, size_t *ret_len);
int session_client_close(SessionClient *c);
int session_client_tick(SessionClient *c, uint64_t now_usec);
uint64_t session_client_next_deadline(const SessionClient *c);
const uint8_t *session_client_pending_output(const SessionClient *c, size_t *ret_len);
void session_client_output_advance(SessionClient *c, size_t n);
const SessionStatus *session_client_status(const SessionClient *c);
/* After the handshake: the decoded user_data (receipt key, model hash) and SHA-256 of the document. NULL
 * before. */
const SessionUserData *session_client_peer(const SessionClient *c);
const uint8_t *session_client_doc_sha256(const SessionClient *c);
/* The attestation document received (valid once OPEN), e.g. for printing verified PCRs. */
const uint8_t *session_client_doc(const SessionClient *c, size_t *ret_len);
/* The HELLO nonce (32 bytes). */
const uint8_t *session_client_nonce(const SessionClient *c);
