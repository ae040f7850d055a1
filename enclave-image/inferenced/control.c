/* control.c: the control port (ctlproto.h, man/eml-inferenced.8): status, and loading a sealed model streamed
 * in CTL frames: manifest signature against the trusted owners, data key through KMS with an attested
 * recipient, chunks decrypted straight into per-file buffers, hashes checked, engine built, then the live model
 * swapped. The old model stays live on any failure; key material is wiped. */
#include <poll.h>
#include <sys/socket.h>

#include "frame.h"
#include "inferenced.h"
#include "log.h"
#include "messages.h"
#include "sealed.h"
#include "util.h"

struct ctl_conn {
	int fd;
	uint64_t idle_usec;
	struct frame_decoder dec;
	uint8_t buf[256 * 1024];
	size_t pos, len;
};

/* Refill the (empty) read buffer: 0, -EPIPE at the end of the stream, -ETIMEDOUT, or a read error. */
static int conn_fill(struct ctl_conn *c) {
	for (;;) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int n = poll(&p, 1, (int)(c->idle_usec / 1000));
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) return negerrno();
		if (n == 0) return -ETIMEDOUT;
		ssize_t k = read(c->fd, c->buf, sizeof c->buf);
		if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
		if (k < 0) return negerrno();
		if (k == 0) return -EPIPE;
		c->pos = 0, c->len = (size_t)k;
		return 0;
	}
}

static int conn_read_exact(struct ctl_conn *c, uint8_t *dst, size_t n) {
	while (n) {
		int r;
		if (c->pos == c->len && (r = conn_fill(c)) < 0) return r;
		size_t k = MIN(n, c->len - c->pos);
		memcpy(dst, c->buf + c->pos, k);
		c->pos += k, dst += k, n -= k;
	}
	return 0;
}

int ctl_conn_next(struct ctl_conn *c, uint8_t *ret_type, uint32_t *ret_seq, uint8_t **ret_payload,
		  uint32_t *ret_len) {
	for (;;) {
		if (c->pos < c->len) {
			size_t used = 0;
			int r = frame_decoder_feed(&c->dec, c->buf + c->pos, c->len - c->pos, &used);
			c->pos += used;
			if (r < 0) return r;
			if (r == 1) {
				struct frame_header h;
				if ((r = frame_decoder_take(&c->dec, &h, ret_payload)) < 0) return r;
				*ret_type = h.type, *ret_seq = h.seq, *ret_len = h.length;
				return 0;
			}
			continue;
		}
		int r = conn_fill(c);
		if (r == -EPIPE) return frame_decoder_finish(&c->dec) == 0 ? -EPIPE : FRAME_E_TRUNCATED;
		if (r < 0) return r;
	}
}

static void fill_status(struct daemon *d, struct ctl_reply *rep) {
	pthread_mutex_lock(&d->lock);
	if (d->live) {
		rep->has_model = true;
		snprintf(rep->model_id, sizeof rep->model_id, "%s", d->live->model_id);
		snprintf(rep->version, sizeof rep->version, "%s", d->live->version);
		memcpy(rep->manifest_sha256, d->live->manifest_sha256, 32);
	}
	rep->loads = d->loads;
	rep->load_failures = d->load_failures;
	rep->load_ms = d->last_load_ms;
	pthread_mutex_unlock(&d->lock);
	snprintf(rep->security_mode, sizeof rep->security_mode, "%s", d->production ? "production" : "evaluation");
}

static int send_reply(struct ctl_conn *c, uint32_t seq, const struct ctl_reply *rep) {
	_cleanup_free_ uint8_t *payload = NULL, *frame = NULL;
	size_t pl, fl;
	int r = ctl_reply_encode(rep, &payload, &pl);
	if (r < 0) return r;
	if ((r = frame_encode(FRAME_CTL, seq, payload, pl, &frame, &fl)) < 0) return r;
	return write_all(c->fd, frame, fl);
}

static void set_error(struct ctl_reply *rep, const char *code, const char *fmt, ...) _printf_(3, 4);
static void set_error(struct ctl_reply *rep, const char *code, const char *fmt, ...) {
	va_list ap;
	rep->ok = false;
	snprintf(rep->error, sizeof rep->error, "%s", code);
	va_start(ap, fmt);
	vsnprintf(rep->message, sizeof rep->message, fmt, ap);
	va_end(ap);
}

static const char *sealed_code(int r) {
	switch (r) {
	case -E2BIG: return CTL_E_TOO_LARGE;
	case -EKEYREJECTED: return CTL_E_UNTRUSTED;
	case -EBADE: return CTL_E_TAMPERED;
	case -EILSEQ: return CTL_E_HASH;
	case -EPIPE: return CTL_E_TRUNCATED;
	case -EBADMSG: return CTL_E_MALFORMED;
	default: return CTL_E_INTERNAL;
	}
}

static void model_free(struct live_model *m) {
	if (!m) return;
	embedder_free(m->emb);
	free(m);
}

void model_unref(struct live_model *m) {
	if (m && atomic_fetch_sub(&m->refs, 1) == 1) model_free(m);
}

struct live_model *daemon_model_ref(struct daemon *d) {
	pthread_mutex_lock(&d->lock);
	struct live_model *m = d->live;
	if (m) atomic_fetch_add(&m->refs, 1);
	pthread_mutex_unlock(&d->lock);
	return m;
}

/* The manifest is in: check who signed it, then fetch the data key. */
static int unlock_reader(struct daemon *d, struct sealed_reader *rd, struct ctl_reply *rep) {
	_cleanup_free_ CoseKey *keys = NULL;
	size_t nk = 0;
	int r = sealed_load_signers(d->cfg.signers_dir, &keys, &nk);
	if (r < 0) {
		set_error(rep, CTL_E_UNTRUSTED, "no trusted model signers in %s: %s", d->cfg.signers_dir, strerror(-r));
		return r;
	}
	if ((r = sealed_reader_verify(rd, keys, nk)) < 0) {
		set_error(rep, CTL_E_UNTRUSTED, "%s", sealed_strerror(r));
		return r;
	}
	uint8_t key[SEALED_KEY_LEN];
	const char *code;
	char msg[256] = "";
	r = kms_get_data_key(d, sealed_reader_manifest(rd), key, &code, msg, sizeof msg);
	if (r < 0) {
		wipe(key, sizeof key);
		set_error(rep, code, "%s", msg[0] ? msg : strerror(-r));
		return r;
	}
	r = sealed_reader_set_key(rd, key);
	wipe(key, sizeof key);
	if (r < 0) set_error(rep, sealed_code(r), "%s", sealed_strerror(r));
	return r;
}

static int build_model(struct sealed_reader *rd, struct live_model **ret, struct ctl_reply *rep) {
	static const char *const names[] = {"config.json", "vocab.txt", "model.safetensors"};
	const struct sealed_manifest *m = sealed_reader_manifest(rd);
	uint8_t *buf[3] = {};
	size_t len[3] = {};
	int r = 0;
	for (size_t i = 0; i < 3 && r == 0; i++) {
		int idx = sealed_manifest_find(m, names[i]);
		if (idx < 0) {
			set_error(rep, CTL_E_MODEL, "the sealed model has no %s", names[i]);
			r = -ENOENT;
		} else if ((r = sealed_reader_take_file(rd, (size_t)idx, &buf[i], &len[i])) < 0)
			set_error(rep, CTL_E_INTERNAL, "%s", sealed_strerror(r));
	}
	struct live_model *lm = NULL;
	if (r == 0 && !(lm = calloc(1, sizeof *lm))) {
		set_error(rep, CTL_E_INTERNAL, "out of memory");
		r = -ENOMEM;
	}
	if (r == 0) {
		char err[256] = "";
		r = embedder_load_mem((const char *)buf[0], len[0], (const char *)buf[1], len[1], buf[2], len[2],
				      EMBEDDER_LOAD_DISCARD, &lm->emb, err, sizeof err);
		if (r < 0) set_error(rep, CTL_E_MODEL, "%s", err[0] ? err : strerror(-r));
	}
	/* Weights now live in the engine (the safetensors pages were dropped as they were copied); the rest goes. */
	for (size_t i = 0; i < 3; i++) sealed_file_free(buf[i], len[i]);
	if (r < 0) {
		free(lm);
		return r;
	}
	atomic_init(&lm->refs, 1);
	snprintf(lm->model_id, sizeof lm->model_id, "%s", m->model_id);
	snprintf(lm->version, sizeof lm->version, "%s", m->version);
	memcpy(lm->manifest_sha256, sealed_reader_manifest_hash(rd), 32);
	*ret = lm;
	return 0;
}

void model_load(struct daemon *d, struct ctl_conn *c, uint64_t size, struct ctl_reply *rep) {
	uint64_t t0 = now_monotonic_usec();
	_cleanup_sealed_reader_ struct sealed_reader *rd = NULL;
	int r = sealed_reader_new(d->cfg.max_model_bytes, &rd);
	if (r < 0) {
		set_error(rep, CTL_E_INTERNAL, "out of memory");
		return;
	}
	rep->ok = true;
	uint64_t left = size, kms_us = 0, engine_us = 0;
	while (left > 0 && rep->ok) {
		/* Data frames are parsed here, header by header, and their payloads go from the read buffer straight
		 * into the reader: no per-frame allocation, no extra copy of the model. */
		uint8_t hdr[FRAME_HEADER_SIZE];
		struct frame_header h;
		if ((r = conn_read_exact(c, hdr, sizeof hdr)) < 0) {
			set_error(rep, CTL_E_TRUNCATED, "stream ended after %" PRIu64 " of %" PRIu64 " bytes: %s",
				  size - left, size, r == -ETIMEDOUT ? "idle timeout" : "connection closed");
			break;
		}
		if ((r = frame_header_decode(hdr, CTL_MAX_DATA, &h)) < 0 || h.type != FRAME_CTL || h.length == 0 ||
		    h.length > left) {
			set_error(rep, CTL_E_BAD_REQUEST, "expected a data frame of 1 to %" PRIu64 " bytes",
				  MIN(left, (uint64_t)CTL_MAX_DATA));
			break;
		}
		left -= h.length;
		for (size_t rest = h.length; rest > 0 && rep->ok;) {
			if (c->pos == c->len && (r = conn_fill(c)) < 0) {
				set_error(rep, CTL_E_TRUNCATED, "stream ended inside a data frame");
				break;
			}
			ssize_t k = sealed_reader_feed(rd, c->buf + c->pos, MIN(rest, c->len - c->pos));
			if (k < 0) {
				set_error(rep, sealed_code((int)k), "%s", sealed_strerror((int)k));
				break;
			}
			c->pos += (size_t)k, rest -= (size_t)k;
			if (sealed_reader_state(rd) == SEALED_NEED_KEY) {
				const struct sealed_manifest *m = sealed_reader_manifest(rd);
				log_info("loading sealed model %s version %s (%zu files)", m->model_id, m->version, m->n_files);
				uint64_t k0 = now_monotonic_usec();
				if (unlock_reader(d, rd, rep) < 0) break;
				kms_us = now_monotonic_usec() - k0;
			}
		}
	}
	if (rep->ok && (r = sealed_reader_finish(rd)) < 0) set_error(rep, sealed_code(r), "%s", sealed_strerror(r));
	struct live_model *lm = NULL;
	uint64_t e0 = now_monotonic_usec();
	if (rep->ok && build_model(rd, &lm, rep) < 0) lm = NULL;
	engine_us = now_monotonic_usec() - e0;
	uint64_t ms = (now_monotonic_usec() - t0) / 1000;
	struct live_model *old = NULL;
	pthread_mutex_lock(&d->lock);
	if (lm) {
		old = d->live; /* sessions holding a reference keep it until they are done */
		d->live = lm;
		d->loads++;
		d->last_load_ms = ms;
	} else
		d->load_failures++;
	pthread_mutex_unlock(&d->lock);
	model_unref(old);
	if (lm) {
		char hex[65];
		hex_encode(lm->manifest_sha256, 32, hex);
		log_struct(LOG_NOTICE, EML_MSG_MODEL_LOADED, "MESSAGE=model %s version %s is live (%" PRIu64 " ms)",
			   lm->model_id, lm->version, ms, "EML_MODEL_ID=%s", lm->model_id, "EML_MODEL_HASH=%s", hex,
			   "EML_LOAD_MS=%" PRIu64, ms, "EML_KMS_MS=%" PRIu64, kms_us / 1000,
			   "EML_ENGINE_MS=%" PRIu64, engine_us / 1000, NULL);
	} else
		log_struct(LOG_WARNING, EML_MSG_CONN_ERROR, "MESSAGE=model load failed: %s: %s", rep->error,
			   rep->message, "EML_ERROR=%s", rep->error, NULL);
}

/* After an error reply: stop reading the rest politely, so closing does not reset the connection before
 * the client has read our answer. */
static void linger_close(struct ctl_conn *c) {
	shutdown(c->fd, SHUT_WR);
	uint64_t end = now_monotonic_usec() + 2000000;
	for (;;) {
		uint64_t now = now_monotonic_usec();
		if (now >= end) break;
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		if (poll(&p, 1, (int)((end - now) / 1000)) <= 0) break;
		if (read(c->fd, c->buf, sizeof c->buf) <= 0) break;
	}
}

void control_serve(struct daemon *d, int fd) {
	struct ctl_conn *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->idle_usec = d->cfg.idle_usec;
	frame_decoder_init(&c->dec, CTL_MAX_REQUEST); /* requests only: data frames are parsed in model_load */
	for (;;) {
		uint8_t type;
		uint32_t seq, len;
		_cleanup_free_ uint8_t *p = NULL;
		int r = ctl_conn_next(c, &type, &seq, &p, &len);
		if (r < 0) break;
		struct ctl_reply rep = {.ok = true};
		struct ctl_request req;
		bool close_after = false;
		int dr = type == FRAME_CTL ? ctl_request_decode(p, len, &req) : -EBADMSG;
		if (dr == -E2BIG) {
			set_error(&rep, CTL_E_TOO_LARGE, "announced size above %llu bytes", (unsigned long long)CTL_MAX_MODEL_BYTES);
			close_after = true;
		} else if (dr < 0) {
			set_error(&rep, CTL_E_BAD_REQUEST, "expected a CTL request");
			close_after = true;
		} else if (req.op == CTL_OP_LOAD) {
			if (req.size > d->cfg.max_model_bytes + SEALED_MANIFEST_MAX + 12 + (d->cfg.max_model_bytes / SEALED_CHUNK_MIN + 16) * SEALED_TAG_LEN) {
				set_error(&rep, CTL_E_TOO_LARGE, "%" PRIu64 " bytes is above this enclave's limit", req.size);
				close_after = true;
			} else if (pthread_mutex_trylock(&d->load_lock) != 0) {
				set_error(&rep, CTL_E_BUSY, "another load is in progress");
				close_after = true;
			} else {
				model_load(d, c, req.size, &rep);
				pthread_mutex_unlock(&d->load_lock);
				recipient_key_prepare(d); /* the next load's key, made while nothing else runs */
				close_after = !rep.ok;
			}
		}
		fill_status(d, &rep);
		if (send_reply(c, seq, &rep) < 0) break;
		if (close_after) {
			linger_close(c);
			break;
		}
	}
	frame_decoder_free(&c->dec);
	close(c->fd);
	free(c);
}
