/* ctlproto.c: eml-inferenced control payloads (see ctlproto.h). */
#include "cbor.h"
#include "ctlproto.h"
#include "macro.h"

static const struct ecbor_limits request_limits = {
	.max_size = CTL_MAX_REQUEST, .max_depth = 2, .max_items = 16, .max_string = 64};
static const struct ecbor_limits reply_limits = {
	.max_size = CTL_MAX_REPLY, .max_depth = 3, .max_items = 64, .max_string = 1024};

int ctl_request_encode(const struct ctl_request *req, uint8_t **ret, size_t *ret_len) {
	if (!req || !ret || !ret_len) return -EINVAL;
	_cleanup_cbor_ cbor_item_t *m = ecbor_map();
	int r;
	switch (req->op) {
	case CTL_OP_STATUS: r = ecbor_map_put(m, ecbor_tstr("op"), ecbor_tstr("status")); break;
	case CTL_OP_LOAD:
		if (req->size == 0 || req->size > CTL_MAX_MODEL_BYTES) return -E2BIG;
		r = ecbor_map_put(m, ecbor_tstr("op"), ecbor_tstr("load"));
		if (r >= 0) r = ecbor_map_put(m, ecbor_tstr("size"), ecbor_uint(req->size));
		break;
	default: return -EINVAL;
	}
	if (r < 0) return r;
	return ecbor_encode(m, ret, ret_len);
}

int ctl_request_decode(const uint8_t *buf, size_t len, struct ctl_request *ret) {
	if (!buf || !ret) return -EINVAL;
	if (len > CTL_MAX_REQUEST) return -E2BIG;
	_cleanup_cbor_ cbor_item_t *m = NULL;
	int r = ecbor_decode(buf, len, &request_limits, &m);
	if (r == -ENOMEM) return r;
	if (r < 0 || !cbor_isa_map(m)) return -EBADMSG;
	cbor_item_t *op = ecbor_map_get_text(m, "op");
	*ret = (struct ctl_request){};
	if (ecbor_tstr_equal(op, "status") && cbor_map_size(m) == 1) {
		ret->op = CTL_OP_STATUS;
		return 0;
	}
	if (ecbor_tstr_equal(op, "load") && cbor_map_size(m) == 2) {
		if (ecbor_map_text_uint(m, "size", &ret->size) < 0) return -EBADMSG;
		if (ret->size == 0) return -EBADMSG;
		if (ret->size > CTL_MAX_MODEL_BYTES) return -E2BIG;
		ret->op = CTL_OP_LOAD;
		return 0;
	}
	return -EBADMSG;
}

int ctl_reply_encode(const struct ctl_reply *rep, uint8_t **ret, size_t *ret_len) {
	if (!rep || !ret || !ret_len) return -EINVAL;
	_cleanup_cbor_ cbor_item_t *m = ecbor_map();
	int r = ecbor_map_put(m, ecbor_tstr("ok"), ecbor_bool(rep->ok));
	if (r >= 0 && !rep->ok) {
		r = ecbor_map_put(m, ecbor_tstr("error"), ecbor_tstr(rep->error));
		if (r >= 0) r = ecbor_map_put(m, ecbor_tstr("message"), ecbor_tstr(rep->message));
	}
	if (r >= 0) {
		cbor_item_t *model = NULL;
		if (rep->has_model) {
			model = ecbor_map();
			r = ecbor_map_put(model, ecbor_tstr("model_id"), ecbor_tstr(rep->model_id));
			if (r >= 0) r = ecbor_map_put(model, ecbor_tstr("version"), ecbor_tstr(rep->version));
			if (r >= 0) r = ecbor_map_put(model, ecbor_tstr("manifest_sha256"), ecbor_bstr(rep->manifest_sha256, 32));
			if (r < 0) {
				if (model) cbor_decref(&model);
				return r;
			}
		} else
			model = ecbor_null();
		r = ecbor_map_put(m, ecbor_tstr("model"), model);
	}
	if (r >= 0) r = ecbor_map_put(m, ecbor_tstr("loads"), ecbor_uint(rep->loads));
	if (r >= 0) r = ecbor_map_put(m, ecbor_tstr("load_failures"), ecbor_uint(rep->load_failures));
	if (r >= 0) r = ecbor_map_put(m, ecbor_tstr("load_ms"), ecbor_uint(rep->load_ms));
	if (r >= 0) r = ecbor_map_put(m, ecbor_tstr("security_mode"), ecbor_tstr(rep->security_mode));
	if (r < 0) return r;
	return ecbor_encode(m, ret, ret_len);
}

static int get_str(const cbor_item_t *m, const char *key, char *out, size_t outsz) {
	const char *s;
	size_t n;
	if (ecbor_map_text_tstr(m, key, &s, &n) < 0) return -EBADMSG;
	n = MIN(n, outsz - 1);
	memcpy(out, s, n);
	out[n] = 0;
	for (char *c = out; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
	return 0;
}

int ctl_reply_decode(const uint8_t *buf, size_t len, struct ctl_reply *ret) {
	if (!buf || !ret) return -EINVAL;
	_cleanup_cbor_ cbor_item_t *m = NULL;
	int r = ecbor_decode(buf, len, &reply_limits, &m);
	if (r == -ENOMEM) return r;
	if (r < 0 || !cbor_isa_map(m)) return -EBADMSG;
	*ret = (struct ctl_reply){};
	if (ecbor_get_bool(ecbor_map_get_text(m, "ok"), &ret->ok) < 0) return -EBADMSG;
	if (!ret->ok && (get_str(m, "error", ret->error, sizeof ret->error) < 0 ||
			 get_str(m, "message", ret->message, sizeof ret->message) < 0))
		return -EBADMSG;
	cbor_item_t *model = ecbor_map_get_text(m, "model");
	if (!model) return -EBADMSG;
	if (!ecbor_is_null(model)) {
		const uint8_t *h;
		if (get_str(model, "model_id", ret->model_id, sizeof ret->model_id) < 0 ||
		    get_str(model, "version", ret->version, sizeof ret->version) < 0 ||
		    ecbor_get_bstr_len(ecbor_map_get_text(model, "manifest_sha256"), 32, &h) < 0)
			return -EBADMSG;
		memcpy(ret->manifest_sha256, h, 32);
		ret->has_model = true;
	}
	if (ecbor_map_text_uint(m, "loads", &ret->loads) < 0 ||
	    ecbor_map_text_uint(m, "load_failures", &ret->load_failures) < 0 ||
	    ecbor_map_text_uint(m, "load_ms", &ret->load_ms) < 0 ||
	    get_str(m, "security_mode", ret->security_mode, sizeof ret->security_mode) < 0)
		return -EBADMSG;
	return 0;
}
