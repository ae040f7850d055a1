/* kmspolicy.c: the subset of AWS key-policy JSON eml-kms-local understands (see kmspolicy.h): Statement (object or list) with Sid,
 * Effect Allow/Deny, Principal ("*" or {"AWS": account id, account root ARN or "*"}), Action (with '*'
 * wildcards), Resource "*", and Condition blocks StringEquals / StringEqualsIgnoreCase on
 * kms:RecipientAttestation:PCR0..PCR8, kms:RecipientAttestation:ImageSha384 and kms:EncryptionContext:KEY.
 * Anything else is refused when the policy is set, so nothing is silently ignored. Evaluation is AWS's:
 * an explicit Deny wins, otherwise some Allow must match, otherwise denied. */
#include <errno.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kmspolicy.h"
#include "macro.h"

#define PCR_PREFIX "kms:RecipientAttestation:PCR"
#define IMAGE_KEY "kms:RecipientAttestation:ImageSha384"
#define EC_PREFIX "kms:EncryptionContext:"

static bool is_string_or_strings(json_object *v) {
	if (json_object_is_type(v, json_type_string)) return true;
	if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0) return false;
	for (size_t i = 0; i < json_object_array_length(v); i++)
		if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string)) return false;
	return true;
}

/* PCR index of a condition key, or -1. */
static int pcr_index(const char *key) {
	size_t n = strlen(PCR_PREFIX);
	if (strncasecmp(key, PCR_PREFIX, n) != 0) return -1;
	const char *d = key + n;
	if (d[0] < '0' || d[0] > '8' || d[1]) return -1;
	return d[0] - '0';
}

static bool known_condition_key(const char *key) {
	if (pcr_index(key) >= 0 || strcasecmp(key, IMAGE_KEY) == 0) return true;
	return strncasecmp(key, EC_PREFIX, strlen(EC_PREFIX)) == 0 && key[strlen(EC_PREFIX)];
}

static bool known_operator(const char *op) {
	return strcmp(op, "StringEquals") == 0 || strcmp(op, "StringEqualsIgnoreCase") == 0;
}

static int validate_statement(json_object *st, const char **why) {
	if (!json_object_is_type(st, json_type_object)) return *why = "Statement is not an object", -EINVAL;
	bool effect = false, principal = false, action = false;
	json_object_object_foreach(st, key, v) {
		if (strcmp(key, "Sid") == 0) {
			if (!json_object_is_type(v, json_type_string)) return *why = "Sid is not a string", -EINVAL;
		} else if (strcmp(key, "Effect") == 0) {
			const char *e = json_object_get_string(v);
			if (!json_object_is_type(v, json_type_string) || (strcmp(e, "Allow") != 0 && strcmp(e, "Deny") != 0))
				return *why = "Effect must be Allow or Deny", -EINVAL;
			effect = true;
		} else if (strcmp(key, "Principal") == 0) {
			if (json_object_is_type(v, json_type_string)) {
				if (strcmp(json_object_get_string(v), "*") != 0)
					return *why = "Principal must be \"*\" or {\"AWS\": ...}", -EINVAL;
			} else if (json_object_is_type(v, json_type_object)) {
				json_object_object_foreach(v, pk, pv) {
					if (strcmp(pk, "AWS") != 0) return *why = "only AWS principals are supported", -EINVAL;
					if (!is_string_or_strings(pv)) return *why = "Principal AWS is not a string list", -EINVAL;
				}
			} else
				return *why = "Principal has the wrong type", -EINVAL;
			principal = true;
		} else if (strcmp(key, "Action") == 0) {
			if (!is_string_or_strings(v)) return *why = "Action is not a string list", -EINVAL;
			action = true;
		} else if (strcmp(key, "Resource") == 0) {
			if (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "*") != 0)
				return *why = "Resource must be \"*\" in a key policy", -EINVAL;
		} else if (strcmp(key, "Condition") == 0) {
			if (!json_object_is_type(v, json_type_object)) return *why = "Condition is not an object", -EINVAL;
			json_object_object_foreach(v, op, block) {
				if (!known_operator(op)) return *why = "unsupported condition operator", -EINVAL;
				if (!json_object_is_type(block, json_type_object) || json_object_object_length(block) == 0)
					return *why = "condition block is not an object", -EINVAL;
				json_object_object_foreach(block, ck, cv) {
					if (!known_condition_key(ck)) return *why = "unsupported condition key", -EINVAL;
					if (!is_string_or_strings(cv)) return *why = "condition value is not a string list", -EINVAL;
				}
			}
		} else
			return *why = "unsupported statement element (NotAction, NotPrincipal ...)", -EINVAL;
	}
	if (!effect || !principal || !action) return *why = "statement without Effect, Principal or Action", -EINVAL;
	return 0;
}

static int parse_validate(const char *policy, json_object **ret, const char **why) {
	const char *dummy;
	if (!why) why = &dummy;
	if (!policy || strlen(policy) > KMSPOLICY_MAX) return *why = "policy too large", -EINVAL;
	json_tokener *tok = json_tokener_new_ex(16);
	if (!tok) return -ENOMEM;
	json_object *o = json_tokener_parse_ex(tok, policy, (int)strlen(policy));
	bool complete = json_tokener_get_error(tok) == json_tokener_success &&
			json_tokener_get_parse_end(tok) == strlen(policy);
	json_tokener_free(tok);
	if (!o || !complete) {
		json_object_put(o);
		return *why = "policy is not valid JSON", -EINVAL;
	}
	int r = -EINVAL;
	json_object *st = NULL;
	if (!json_object_is_type(o, json_type_object)) {
		*why = "policy is not a JSON object";
		goto fail;
	}
	json_object_object_foreach(o, key, v) {
		if (strcmp(key, "Statement") == 0)
			st = v;
		else if (strcmp(key, "Version") != 0 && strcmp(key, "Id") != 0) {
			*why = "unsupported top-level policy element";
			goto fail;
		} else if (!json_object_is_type(v, json_type_string)) {
			*why = "Version/Id is not a string";
			goto fail;
		}
	}
	if (!st) {
		*why = "policy without Statement";
		goto fail;
	}
	if (json_object_is_type(st, json_type_array)) {
		if (json_object_array_length(st) == 0 || json_object_array_length(st) > 64) {
			*why = "Statement list empty or too long";
			goto fail;
		}
		for (size_t i = 0; i < json_object_array_length(st); i++)
			if ((r = validate_statement(json_object_array_get_idx(st, i), why)) < 0) goto fail;
	} else if ((r = validate_statement(st, why)) < 0)
		goto fail;
	*ret = o;
	return 0;
fail:
	json_object_put(o);
	return -EINVAL;
}

int kmspolicy_validate(const char *policy, const char **ret_reason) {
	json_object *o;
	int r = parse_validate(policy, &o, ret_reason);
	if (r == 0) json_object_put(o);
	return r;
}

/* Does any string of v (string or list) satisfy pred(s)? */
#define ANY_STRING(v, s, pred)                                                                             \
	({                                                                                                 \
		bool _m = false;                                                                           \
		if (json_object_is_type(v, json_type_string)) {                                            \
			const char *s = json_object_get_string(v);                                         \
			_m = (pred);                                                                       \
		} else                                                                                     \
			for (size_t _i = 0; !_m && _i < json_object_array_length(v); _i++) {               \
				const char *s = json_object_get_string(json_object_array_get_idx(v, _i));  \
				_m = (pred);                                                               \
			}                                                                                  \
		_m;                                                                                        \
	})

static bool principal_matches(json_object *p, const struct kmspolicy_request *req) {
	if (json_object_is_type(p, json_type_string)) return true; /* "*" (validated) */
	json_object *aws;
	if (!json_object_object_get_ex(p, "AWS", &aws)) return false;
	return ANY_STRING(aws, s, strcmp(s, "*") == 0 || strcmp(s, req->account) == 0 || strcmp(s, req->principal_arn) == 0);
}

/* The request's value for a condition key, or NULL when the request has none (then the condition fails). */
static const char *request_value(const char *key, const struct kmspolicy_request *req) {
	int i = pcr_index(key);
	if (i >= 0) return req->pcr[i] && req->pcr[i][0] ? req->pcr[i] : NULL;
	if (strcasecmp(key, IMAGE_KEY) == 0)
		/* For Nitro Enclaves ImageSha384 is the enclave image measurement, PCR0. */
		return req->pcr[0] && req->pcr[0][0] ? req->pcr[0] : NULL;
	json_object *v;
	if (req->context && json_object_object_get_ex(req->context, key + strlen(EC_PREFIX), &v))
		return json_object_get_string(v);
	return NULL;
}

static bool conditions_hold(json_object *cond, const struct kmspolicy_request *req) {
	json_object_object_foreach(cond, op, block) {
		bool icase = strcmp(op, "StringEqualsIgnoreCase") == 0;
		json_object_object_foreach(block, key, want) {
			const char *have = request_value(key, req);
			if (!have) return false;
			if (!ANY_STRING(want, s, icase ? strcasecmp(s, have) == 0 : strcmp(s, have) == 0)) return false;
		}
	}
	return true;
}

static bool statement_matches(json_object *st, const struct kmspolicy_request *req) {
	json_object *p, *a, *c;
	json_object_object_get_ex(st, "Principal", &p);
	json_object_object_get_ex(st, "Action", &a);
	if (!principal_matches(p, req)) return false;
	if (!ANY_STRING(a, s, fnmatch(s, req->action, FNM_CASEFOLD) == 0)) return false;
	if (json_object_object_get_ex(st, "Condition", &c) && !conditions_hold(c, req)) return false;
	return true;
}

int kmspolicy_evaluate(const char *policy, const struct kmspolicy_request *req) {
	json_object *o, *st;
	if (parse_validate(policy, &o, NULL) < 0) return 0;
	json_object_object_get_ex(o, "Statement", &st);
	size_t n = json_object_is_type(st, json_type_array) ? json_object_array_length(st) : 1;
	bool allowed = false, denied = false;
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_is_type(st, json_type_array) ? json_object_array_get_idx(st, i) : st, *e;
		json_object_object_get_ex(s, "Effect", &e);
		if (!statement_matches(s, req)) continue;
		if (strcmp(json_object_get_string(e), "Deny") == 0)
			denied = true;
		else
			allowed = true;
	}
	json_object_put(o);
	return allowed && !denied;
}

char *kmspolicy_default(const char *account) {
	char *p = NULL;
	if (asprintf(&p,
		     "{\"Version\":\"2012-10-17\",\"Id\":\"key-default-1\",\"Statement\":[{\"Sid\":\"Enable IAM User "
		     "Permissions\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::%s:root\"},\"Action\":"
		     "\"kms:*\",\"Resource\":\"*\"}]}",
		     account) < 0)
		return NULL;
	return p;
}
