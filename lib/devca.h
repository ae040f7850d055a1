/* devca.h: the development attestation CA that stands in for AWS's in dev mode: a P-384 root, a line of
 * intermediates (root first, as in a Nitro cabundle) and short-lived leaves (3 hours, like AWS's), all
 * ECDSA-with-SHA384 with AWS's extension profile. Owns the on-disk layout of a CA directory:
 *   DIR/root.pem        the root certificate: what a client pins with --root (public)
 *   DIR/bundle.pem      root then intermediates, in cabundle order (public)
 *   DIR/issuer.key      PKCS#8 PEM private key of the last intermediate (0600): issues leaves
 * The root's and the other intermediates' private keys are never written: they are only needed once. */
#pragma once

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "macro.h"
#include "x509-chain.h"

#define DEVCA_LEAF_LIFETIME_S (3 * 3600)
#define DEVCA_MAX_INTERMEDIATES 6

/* Create DIR (0700 if missing) and the files above, valid from now. -EEXIST if DIR/root.pem exists. */
int devca_init(const char *dir, unsigned n_intermediates, time_t now);

typedef struct DevCa DevCa;
/* Load a CA directory made by devca_init. -EBADMSG when a file does not parse or the key does not match. */
int devca_load(const char *dir, DevCa **ret);
DevCa *devca_free(DevCa *ca);
static inline void devca_freep(DevCa **c) { devca_free(*c); }
#define _cleanup_devca_ _cleanup_(devca_freep)

/* The cabundle (root first); pointers stay valid while ca lives. */
size_t devca_bundle(const DevCa *ca, const struct x509_der **ret);
/* Issue a leaf for a fresh P-384 key, valid [now - 60 s, now + 3 h - 60 s], subject CN=cn. */
int devca_issue_leaf(DevCa *ca, const char *cn, time_t now, EVP_PKEY **ret_key, uint8_t **ret_der,
		     size_t *ret_len);
