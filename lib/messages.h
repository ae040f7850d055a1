/* messages.h: every MESSAGE_ID the project logs with. Each one has an entry in units/eml.catalog (a test checks
 * that the two lists agree). Add new IDs here and in the catalog together; generate them with
 * `systemd-id128 new`. */
#pragma once

#define EML_MSG_STARTED       "f08a5a597e8249f0b199adfd67eca1dc" /* daemon ready to serve */
#define EML_MSG_STOPPING      "dc92dd30577d48469c03559ad7c255fa" /* daemon stopping (signal or fatal) */
#define EML_MSG_CONN_OPEN     "a06632f331bf4546887e713066a6a6c4" /* connection accepted and forwarded */
#define EML_MSG_CONN_CLOSE    "0a5c03f484a647f8ba3b3c1ccfa1be0d" /* connection closed, with byte counts */
#define EML_MSG_CONN_ERROR    "68614d3ffeed40068ef527e35474bfdc" /* connection ended by a protocol/peer error */
#define EML_MSG_AUDIT         "7e9d793478084f2483be8faa2728887d" /* enclave AUDIT record of one request */
#define EML_MSG_KMS_REQUEST   "210388c64f954778b17156c0e3e5c2c7" /* one KMS call relayed for the enclave */
#define EML_MSG_UPSTREAM_DOWN "f86215c7097d4ea6be2571a9d90d9bb0" /* upstream unreachable */
#define EML_MSG_ACCEPT_PAUSED "96b4c56539144ce388549ece95556bb3" /* connection cap or fd limit reached */
#define EML_MSG_CONFIG_ERROR  "5518cafef2264777a146c3407083d03e" /* bad configuration at start */
#define EML_MSG_MODEL_LOADED  "62353e53b36f4e0c96a58ed89a2849ac" /* a sealed model was loaded and made live */
#define EML_MSG_SESSION       "ec12e7f271b545a8b349116182a685da" /* attested session opened or ended */
#define EML_MSG_DNS_UPDATE    "34029914e39a4c7482f23d9d5fa93784" /* upstream name re-resolved to new addresses */
#define EML_MSG_ALLOWLIST_DENIED "ce1208a1d5884e4e894d6131d1acaf50" /* an address refused by the allow-list */
