/* kmspolicy.h: AWS KMS key policies as eml-kms-local evaluates them: the JSON shape (Version, Id, Statement
 * with Sid, Effect, Principal, Action, Resource, Condition) restricted to what can be evaluated here, and AWS's
 * evaluation (explicit Deny wins, else some Allow must match, else denied). Conditions: StringEquals and
 * StringEqualsIgnoreCase on kms:RecipientAttestation:PCR0..PCR8, kms:RecipientAttestation:ImageSha384 (PCR0
 * for an enclave) and kms:EncryptionContext:KEY. Anything else is refused by kmspolicy_validate, so nothing in a
 * policy is ever silently ignored. */
#pragma once

#include <json-c/json.h>

#define KMSPOLICY_MAX 32768 /* AWS: 32 KiB */
#define KMSPOLICY_PCRS 9

struct kmspolicy_request {
	const char *action;                 /* "kms:Decrypt" */
	const char *principal_arn;          /* "arn:aws:iam::111122223333:root" */
	const char *account;                /* "111122223333" */
	const char *pcr[KMSPOLICY_PCRS];    /* the Recipient's PCRs in hex; NULL or "" when absent (no Recipient) */
	json_object *context;               /* the encryption context (object of strings) or NULL */
};

/* 0, or -EINVAL with *ret_reason (static text; may be NULL) naming the problem. */
int kmspolicy_validate(const char *policy, const char **ret_reason);
/* 1 allowed, 0 denied. A policy that does not validate denies. */
int kmspolicy_evaluate(const char *policy, const struct kmspolicy_request *req);
/* AWS's default key policy for an account (the account root may do everything). malloc'ed; NULL on OOM. */
char *kmspolicy_default(const char *account);
