/* kmsproto.c: the enclave <-> eml-kms-relay payload codec and admission check (see kmsproto.h). */
#include "kmsproto.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "macro.h"

static const char *const TARGETS[] = {"TrentService.Decrypt", "TrentService.GenerateDataKey",
				      "TrentService.GenerateRandom"};

/* Strict parse: one JSON object, nothing after it, bounded nesting. */
static json_object *parse_object(const uint8_t *p, size_t len) {
	if (len == 0 || len > INT32_MAX) return NULL;
	json_tokener *tok = json_tokener_new_ex(16);
	if (!tok) return NULL;
	json_object *o = json_tokener_parse_ex(tok, (const char *)p, (int)len);
	bool ok = o && json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == len &&
		  json_object_is_type(o, json_type_object);
	json_tokener_free(tok);
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static char *to_text(json_object *o, size_t *ret_len) {
	size_t n;
	const char *t = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);
	char *c = t ? strndup(t, n) : NULL;
	if (c && ret_len) *ret_len = n;
	return c;
}

static int only_fields(json_object *o, const char *a, const char *b) {
	struct json_object_iter it;
	json_object_object_foreachC(o, it) {
		if (strcmp(it.key, a) != 0 && strcmp(it.key, b) != 0) return -EBADMSG;
	}
	return 0;
}

int kmsproto_request_decode(const uint8_t *payload, size_t len, const char **ret_target, char **ret_body,
			    char **ret_key_id, const char **ret_reason) {
	const char *dummy;
	if (!ret_reason) ret_reason = &dummy;
	if (len > KMSPROTO_MAX_PAYLOAD) return *ret_reason = "request larger than 64 KiB", -E2BIG;
	json_object *o = parse_object(payload, len), *t, *body, *rec, *v;
	int r = -EBADMSG;
	const char *target = NULL;
	char *text = NULL, *key_id = NULL;
	if (!o) {
		*ret_reason = "request is not a JSON object";
		goto fail;
	}
	if (only_fields(o, "target", "body") < 0 || !json_object_object_get_ex(o, "target", &t) ||
	    !json_object_is_type(t, json_type_string) || !json_object_object_get_ex(o, "body", &body) ||
	    !json_object_is_type(body, json_type_object)) {
		*ret_reason = "request must be {\"target\": string, \"body\": object}";
		goto fail;
	}
	for (size_t i = 0; i < ARRAY_SIZE(TARGETS); i++)
		if (strcmp(json_object_get_string(t), TARGETS[i]) == 0) target = TARGETS[i];
	if (!target) {
		*ret_reason = "target not allowed (Decrypt, GenerateDataKey, GenerateRandom only)";
		r = -EPERM;
		goto fail;
	}
	/* The key release only ever goes to the enclave: a Recipient is mandatory. */
	json_object *alg, *doc;
	if (!json_object_object_get_ex(body, "Recipient", &rec) || !json_object_is_type(rec, json_type_object) ||
	    !json_object_object_get_ex(rec, "KeyEncryptionAlgorithm", &alg) || !json_object_is_type(alg, json_type_string) ||
	    strcmp(json_object_get_string(alg), "RSAES_OAEP_SHA_256") != 0 ||
	    !json_object_object_get_ex(rec, "AttestationDocument", &doc) || !json_object_is_type(doc, json_type_string) ||
	    json_object_get_string_len(doc) == 0) {
		*ret_reason = "no Recipient with RSAES_OAEP_SHA_256 and an AttestationDocument: refused";
		r = -EACCES;
		goto fail;
	}
	size_t bl;
	if (!(text = to_text(body, &bl))) {
		r = -ENOMEM;
		*ret_reason = "out of memory";
		goto fail;
	}
	if (bl > KMSPROTO_MAX_BODY) {
		r = -E2BIG;
		*ret_reason = "body larger than 64 KiB";
		goto fail;
	}
	if (ret_key_id && json_object_object_get_ex(body, "KeyId", &v) && json_object_is_type(v, json_type_string) &&
	    !(key_id = strndup(json_object_get_string(v), 256))) {
		r = -ENOMEM;
		*ret_reason = "out of memory";
		goto fail;
	}
	json_object_put(o);
	*ret_target = target;
	*ret_body = text;
	if (ret_key_id) *ret_key_id = key_id;
	*ret_reason = NULL;
	return 0;
fail:
	free(text);
	free(key_id);
	json_object_put(o);
	return r;
}

static int emit(json_object *o, size_t max, uint8_t **ret, size_t *ret_len) {
	size_t n;
	char *t = o ? to_text(o, &n) : NULL;
	json_object_put(o);
	if (!t) return -ENOMEM;
	if (n > max) {
		free(t);
		return -E2BIG;
	}
	*ret = (uint8_t *)t;
	*ret_len = n;
	return 0;
}

int kmsproto_request_encode(const char *target, const char *body, uint8_t **ret, size_t *ret_len) {
	if (!target || !body) return -EINVAL;
	if (strlen(body) > KMSPROTO_MAX_BODY) return -E2BIG;
	json_object *b = parse_object((const uint8_t *)body, strlen(body));
	if (!b) return -EBADMSG;
	json_object *o = json_object_new_object();
	if (!o) {
		json_object_put(b);
		return -ENOMEM;
	}
	json_object_object_add(o, "target", json_object_new_string(target));
	json_object_object_add(o, "body", b);
	return emit(o, KMSPROTO_MAX_PAYLOAD, ret, ret_len);
}

int kmsproto_response_encode(int status, const char *body, size_t body_len, uint8_t **ret, size_t *ret_len) {
	json_object *b = body && body_len ? parse_object((const uint8_t *)body, body_len) : NULL;
	if (!b) b = json_object_new_object();
	json_object *o = json_object_new_object();
	if (!o || !b) {
		json_object_put(o);
		json_object_put(b);
		return -ENOMEM;
	}
	json_object_object_add(o, "status", json_object_new_int(status));
	json_object_object_add(o, "body", b);
	return emit(o, KMSPROTO_MAX_RESPONSE, ret, ret_len);
}

int kmsproto_response_decode(const uint8_t *payload, size_t len, int *ret_status, char **ret_body) {
	if (len > KMSPROTO_MAX_RESPONSE) return -E2BIG;
	json_object *o = parse_object(payload, len), *s, *b;
	int r = -EBADMSG;
	if (o && only_fields(o, "status", "body") == 0 && json_object_object_get_ex(o, "status", &s) &&
	    json_object_is_type(s, json_type_int) && json_object_object_get_ex(o, "body", &b) &&
	    json_object_is_type(b, json_type_object)) {
		int64_t st = json_object_get_int64(s);
		if (st >= 100 && st <= 599) {
			char *t = to_text(b, NULL);
			r = t ? 0 : -ENOMEM;
			if (t) {
				*ret_status = (int)st;
				*ret_body = t;
			}
		}
	}
	json_object_put(o);
	return r;
}

int kmsproto_error_encode(const char *error, const char *message, uint8_t **ret, size_t *ret_len) {
	json_object *o = json_object_new_object();
	if (!o) return -ENOMEM;
	json_object_object_add(o, "error", json_object_new_string(error));
	json_object_object_add(o, "message", json_object_new_string(message ? message : ""));
	return emit(o, KMSPROTO_MAX_RESPONSE, ret, ret_len);
}

int kmsproto_error_decode(const uint8_t *payload, size_t len, char **ret_error, char **ret_message) {
	if (len > KMSPROTO_MAX_RESPONSE) return -E2BIG;
	json_object *o = parse_object(payload, len), *e, *m;
	int r = -EBADMSG;
	if (o && only_fields(o, "error", "message") == 0 && json_object_object_get_ex(o, "error", &e) &&
	    json_object_is_type(e, json_type_string) && json_object_object_get_ex(o, "message", &m) &&
	    json_object_is_type(m, json_type_string)) {
		char *a = strndup(json_object_get_string(e), 64), *b = strndup(json_object_get_string(m), 1024);
		if (a && b) {
			*ret_error = a;
			*ret_message = b;
			r = 0;
		} else {
			free(a);
			free(b);
			r = -ENOMEM;
		}
	}
	json_object_put(o);
	return r;
}
