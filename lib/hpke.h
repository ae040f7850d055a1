/* hpke.h: Hybrid Public Key Encryption, RFC 9180, on OpenSSL 3.0 primitives (which has no HPKE API).
 *
 * One KEM, DHKEM(X25519, HKDF-SHA256) (0x0020), one KDF, HKDF-SHA256 (0x0001), and the AEADs AES-128-GCM (1),
 * AES-256-GCM (2), ChaCha20-Poly1305 (3) and export-only (0xFFFF); modes base, psk, auth and auth_psk.
 * Keys are raw 32-byte X25519 strings as RFC 7748 / RFC 9180 serialise them (enc is the ephemeral public key).
 *
 * A context is one direction of one session: the sender seals, the recipient opens, both export. Each Seal or
 * Open uses and advances the sequence number, so messages must be opened in the order sealed; a failed Open
 * does not advance it. The sequence number is 64-bit: after 2^64-1 messages the context refuses with
 * -EOVERFLOW (RFC 9180 allows up to 2^96-1; the narrower limit is still far beyond any session's life).
 * Contexts own their secrets and wipe them on free.
 *
 * Errors: -EINVAL bad arguments (lengths, PSK inputs inconsistent with the mode, unknown AEAD), -EBADMSG
 * authentication failure on Open, -EPERM wrong role (Seal on a recipient context, Seal/Open on export-only),
 * -EOVERFLOW sequence exhausted, -EKEYREJECTED a DH result of all zeros (small-order public key), -ENOMEM,
 * -EIO unexpected library failure. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HPKE_KEM_X25519_SHA256 0x0020
#define HPKE_KDF_HKDF_SHA256 0x0001
#define HPKE_AEAD_AES_128_GCM 0x0001
#define HPKE_AEAD_AES_256_GCM 0x0002
#define HPKE_AEAD_CHACHA20_POLY1305 0x0003
#define HPKE_AEAD_EXPORT_ONLY 0xFFFF

#define HPKE_KEY_LEN 32   /* Nsk = Npk = Nenc = Nsecret for X25519 */
#define HPKE_TAG_LEN 16   /* Nt of every supported AEAD */
#define HPKE_NONCE_LEN 12 /* Nn */
#define HPKE_MAX_EXPORT (255 * 32)

enum hpke_mode {
	HPKE_MODE_BASE = 0,
	HPKE_MODE_PSK = 1,
	HPKE_MODE_AUTH = 2,
	HPKE_MODE_AUTH_PSK = 3,
};

/* Everything of a setup besides the keys of the recipient. Pointers may be NULL when their length is 0. */
struct hpke_params {
	enum hpke_mode mode;
	uint16_t aead;
	const uint8_t *info;
	size_t info_len;
	const uint8_t *psk; /* psk modes: both psk and psk_id non-empty; other modes: both empty */
	size_t psk_len;
	const uint8_t *psk_id;
	size_t psk_id_len;
	const uint8_t *sk_s; /* auth modes, sender side: the sender's private key (32) */
	const uint8_t *pk_s; /* auth modes, recipient side: the sender's public key (32) */
};

struct hpke_ctx;

/* Key length Nk of an AEAD (0 for export-only), or -EINVAL if unsupported. */
int hpke_aead_key_len(uint16_t aead);

/* Fresh X25519 key pair from the OpenSSL RNG. */
int hpke_generate_key_pair(uint8_t ret_sk[HPKE_KEY_LEN], uint8_t ret_pk[HPKE_KEY_LEN]);
/* DeriveKeyPair (RFC 9180 7.1.3): deterministic key pair from ikm (at least 32 bytes recommended). */
int hpke_derive_key_pair(const uint8_t *ikm, size_t ikm_len, uint8_t ret_sk[HPKE_KEY_LEN],
			 uint8_t ret_pk[HPKE_KEY_LEN]);
/* Public key of a private key. */
int hpke_public_key(const uint8_t sk[HPKE_KEY_LEN], uint8_t ret_pk[HPKE_KEY_LEN]);

/* A loaded X25519 private key. Loading costs a scalar multiplication, so a recipient that keeps its key
 * loaded (hpke_setup_r_key) does one instead of two per setup. The public key is computed once. */
struct hpke_key;
int hpke_key_generate(struct hpke_key **ret);
int hpke_key_from_private(const uint8_t sk[HPKE_KEY_LEN], struct hpke_key **ret);
const uint8_t *hpke_key_public(const struct hpke_key *k); /* HPKE_KEY_LEN bytes, valid while k lives */
void hpke_key_free(struct hpke_key *k);
static inline void hpke_key_freep(struct hpke_key **k) { hpke_key_free(*k); }
#define _cleanup_hpke_key_ __attribute__((cleanup(hpke_key_freep)))

/* SetupS / SetupR for any mode. The sender gets enc (32 bytes) to send along. */
int hpke_setup_s(const struct hpke_params *p, const uint8_t pk_r[HPKE_KEY_LEN], uint8_t ret_enc[HPKE_KEY_LEN],
		 struct hpke_ctx **ret);
/* SetupS with the ephemeral key derived from ikm_e instead of random: for test vectors only. */
int hpke_setup_s_derand(const struct hpke_params *p, const uint8_t pk_r[HPKE_KEY_LEN], const uint8_t *ikm_e,
			size_t ikm_e_len, uint8_t ret_enc[HPKE_KEY_LEN], struct hpke_ctx **ret);
int hpke_setup_r(const struct hpke_params *p, const uint8_t enc[HPKE_KEY_LEN], const uint8_t sk_r[HPKE_KEY_LEN],
		 struct hpke_ctx **ret);
int hpke_setup_r_key(const struct hpke_params *p, const uint8_t enc[HPKE_KEY_LEN], const struct hpke_key *key_r,
		     struct hpke_ctx **ret);

/* A context from an explicit key and base nonce (e.g. a response channel keyed by Export, as OHTTP does).
 * sender selects Seal or Open. It cannot Export. For the session's responses (ARCHITECTURE section 4.5):
 *     hpke_export(req, "eml/1 response key", 18, key, Nk);  hpke_export(req, "eml/1 response nonce", 20, n, 12);
 *     hpke_ctx_new_from_key(aead, true (enclave) / false (client), key, Nk, n, &resp);
 *     hpke_ctx_set_seq(resp, frame_seq);  hpke_seal(resp, header, 12, ...)   -- nonce = n XOR seq */
int hpke_ctx_new_from_key(uint16_t aead, bool sender, const uint8_t *key, size_t key_len,
			  const uint8_t base_nonce[HPKE_NONCE_LEN], struct hpke_ctx **ret);

/* Seal: ct receives pt_len + HPKE_TAG_LEN bytes (ct may equal pt). Open: pt receives ct_len - HPKE_TAG_LEN
 * bytes (pt may equal ct); ct_len < HPKE_TAG_LEN is -EBADMSG. */
int hpke_seal(struct hpke_ctx *c, const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
	      uint8_t *ct);
int hpke_open(struct hpke_ctx *c, const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len,
	      uint8_t *pt);
/* Secret export: L bytes (1..HPKE_MAX_EXPORT) bound to exporter_context. */
int hpke_export(const struct hpke_ctx *c, const uint8_t *exporter_context, size_t exporter_context_len,
		uint8_t *out, size_t L);

/* Sequence number of the next Seal/Open; setting it exists for tests and for resuming a channel. */
uint64_t hpke_ctx_seq(const struct hpke_ctx *c);
void hpke_ctx_set_seq(struct hpke_ctx *c, uint64_t seq);

/* Wipes and frees; NULL is fine. */
void hpke_ctx_free(struct hpke_ctx *c);
static inline void hpke_ctx_freep(struct hpke_ctx **c) { hpke_ctx_free(*c); }
#define _cleanup_hpke_ctx_ __attribute__((cleanup(hpke_ctx_freep)))

/* Single-shot API (RFC 9180 6.1): setup + one Seal/Open with sequence 0. */
int hpke_seal_once(const struct hpke_params *p, const uint8_t pk_r[HPKE_KEY_LEN], const uint8_t *aad,
		   size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t ret_enc[HPKE_KEY_LEN], uint8_t *ct);
int hpke_open_once(const struct hpke_params *p, const uint8_t enc[HPKE_KEY_LEN], const uint8_t sk_r[HPKE_KEY_LEN],
		   const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len, uint8_t *pt);
