/* keyfile.h: Ed25519 key files for signing keys held by people (policy signers, model owners): private keys
 * as PKCS#8 PEM ("BEGIN PRIVATE KEY", written 0600), public keys as SubjectPublicKeyInfo PEM ("BEGIN PUBLIC
 * KEY"), the formats `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` use. A public key may
 * also be given as 64 hex digits (the raw key), and a private key file wherever a public key is wanted. */
#pragma once

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#define KEYFILE_MAX 16384 /* bytes of a key file */

/* Generate a key pair and write PRIV (0600, refuses to overwrite: -EEXIST) and, if pub_path is set, PUB. */
int keyfile_generate(const char *priv_path, const char *pub_path, uint8_t ret_pub[32]);
/* Load an Ed25519 private key. -EBADMSG when the file is not one, -ENOENT/-EACCES ... when unreadable. */
int keyfile_load_private(const char *path, EVP_PKEY **ret);
/* Load an Ed25519 public key from 64 hex digits, a public key PEM or a private key PEM. */
int keyfile_load_public(const char *path_or_hex, uint8_t ret_pub[32]);
/* Raw public key of an Ed25519 EVP_PKEY. */
int keyfile_raw_public(EVP_PKEY *key, uint8_t ret_pub[32]);
