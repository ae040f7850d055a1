/* inferenced.h: shared state of eml-inferenced (the enclave daemon): configuration, the live model and its
 * reference counting, and the entry points of the control port and the model loader. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "air.h"
#include "cose.h"
#include "ctlproto.h"
#include "embedder.h"
#include "nsm.h"

struct live_model {
	atomic_uint refs;
	struct embedder *emb;
	char model_id[129];
	char version[65];
	uint8_t manifest_sha256[32];
};

struct config {
	const char *nsm_device;      /* /dev/nsm or unix:PATH (simulator) */
	const char *signers_dir;
	const char *kms_relay;       /* vsock:3:8001 */
	uint64_t max_model_bytes;
	uint64_t idle_usec;          /* control connection idle limit */
	unsigned max_control;        /* concurrent control connections */
	unsigned max_sessions;       /* concurrent sessions; more are answered BUSY */
	unsigned max_inputs;         /* texts per request */
	unsigned max_input_bytes;    /* bytes per text */
	uint64_t session_idle_usec;  /* a session with nothing owed may stay silent this long */
};

struct daemon {
	struct config cfg;
	bool production;             /* on /dev/nsm (security_mode "production"), else "evaluation" */
	pthread_mutex_t lock;        /* guards live and the counters */
	struct live_model *live;
	uint64_t loads, load_failures, last_load_ms;
	pthread_mutex_t load_lock;   /* one load at a time */
	atomic_uint control_conns;
	pthread_mutex_t key_lock;    /* the next KMS client (its RSA recipient key), made ahead */
	pthread_cond_t key_ready;
	struct prepared *next_kms;
	bool keygen_running, keygen_joinable;
	pthread_t keygen_tid;
	atomic_uint sessions;
	struct air_signer *receipt_signer; /* per-boot Ed25519 receipt key */
	bool has_pcr[AIR_PCR_SLOTS];       /* from DescribePCR at start */
	uint8_t pcr[AIR_PCR_SLOTS][48];
};

/* A reference to the live model (NULL when none); release with model_unref. */
struct live_model *daemon_model_ref(struct daemon *d);
void model_unref(struct live_model *m);

/* Read the PCRs (DescribePCR) and make the per-boot receipt key. */
int receipts_init(struct daemon *d);
/* Serve one session connection (closed here); refuse_busy answers BUSY and ends it. Runs on its own thread. */
void session_serve(struct daemon *d, int fd, bool refuse_busy);

/* Serve one control connection (blocking fd, closed here). Runs on its own thread. */
void control_serve(struct daemon *d, int fd);

/* Load a sealed model streamed by the control client: called after {"op":"load","size":N}. Fills rep (ok or
 * an error code and message); on success the new model is live. */
struct ctl_conn;
void model_load(struct daemon *d, struct ctl_conn *c, uint64_t size, struct ctl_reply *rep);

/* Next frame of a control connection (blocking, with the idle timeout). 0, -EPIPE at a clean end, -ETIMEDOUT,
 * or a frame error. *ret_payload is malloc'ed (NULL when empty). */
int ctl_conn_next(struct ctl_conn *c, uint8_t *ret_type, uint32_t *ret_seq, uint8_t **ret_payload,
		  uint32_t *ret_len);

/* Start making the next single-use KMS client (its RSA-2048 recipient key) in the background. */
void recipient_key_prepare(struct daemon *d);
/* Wait for a client being made and free the one ready (at exit). */
void recipient_key_drain(struct daemon *d);

/* The data key of a manifest through KMS Decrypt with an attested Recipient. On failure *code is a CTL_E_*. */
struct sealed_manifest;
int kms_get_data_key(struct daemon *d, const struct sealed_manifest *m, uint8_t key[32], const char **code,
		     char *msg, size_t msgsz);
