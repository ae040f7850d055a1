/* nitro-root.h: the pinned AWS Nitro Enclaves root certificate (G1), the default trust anchor of attestation
 * verification. Loading checks its SHA-256 against the published fingerprint, so a corrupted copy fails. */
#pragma once

#include "x509-chain.h"

#define NITRO_ROOT_G1_SHA256 "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"

int nitro_root_g1(X509Root **ret);
