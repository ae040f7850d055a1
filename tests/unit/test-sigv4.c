/* Tests for sigv4.c against the AWS SigV4 test suite in tests/vectors/sigv4 (38 cases, each in the header form
 * and the presigned query form), plus the verifier's refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <json-c/json.h>

#include "macro.h"
#include "sigv4.h"
#include "util.h"

struct parsed_request {
	char *buf; /* owns every string below */
	char *method, *path, *query;
	struct sigv4_header headers[SIGV4_MAX_HEADERS];
	size_t n_headers;
	const uint8_t *body;
	size_t body_len;
};

/* request.txt: "METHOD URI HTTP/1.1", headers (a line starting with whitespace continues the previous one),
 * blank line, body. The URI may contain spaces, so the version is cut at the last space. */
static void parse_request(const char *file, struct parsed_request *pr) {
	uint8_t *data;
	size_t len;
	assert_int_equal(read_file(file, 1 << 16, &data, &len), 0);
	pr->buf = (char *)data;
	char *line_end = strchr(pr->buf, '\n');
	assert_non_null(line_end);
	*line_end = 0;
	char *sp = strchr(pr->buf, ' '), *last = strrchr(pr->buf, ' ');
	assert_true(sp && last && last > sp);
	*sp = 0;
	*last = 0;
	pr->method = pr->buf;
	pr->path = sp + 1;
	char *q = strchr(pr->path, '?');
	pr->query = NULL;
	if (q) {
		*q = 0;
		pr->query = q + 1;
	}
	char *p = line_end + 1;
	pr->n_headers = 0;
	pr->body = NULL;
	pr->body_len = 0;
	while (p < pr->buf + len) {
		char *e = strchr(p, '\n');
		if (!e) e = pr->buf + len;
		bool eof = *e == 0;
		*e = 0;
		if (*p == 0) { /* blank line: body follows */
			if (!eof) {
				pr->body = (uint8_t *)e + 1;
				pr->body_len = (size_t)(pr->buf + len - (e + 1));
			}
			break;
		}
		if ((*p == ' ' || *p == '\t') && pr->n_headers > 0) {
			/* Folded line: append to the previous value in place (the buffer only shrinks). */
			struct sigv4_header *h = &pr->headers[pr->n_headers - 1];
			char *v = (char *)h->value;
			size_t vl = strlen(v);
			v[vl] = ' ';
			memmove(v + vl + 1, p, strlen(p) + 1);
			p = eof ? e : e + 1;
			continue;
		}
		char *colon = strchr(p, ':');
		assert_non_null(colon);
		*colon = 0;
		assert_true(pr->n_headers < SIGV4_MAX_HEADERS);
		pr->headers[pr->n_headers++] = (struct sigv4_header){p, colon + 1};
		if (eof) break;
		p = e + 1;
	}
}

static char *read_text(const char *dir, const char *name) {
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	uint8_t *d;
	size_t l;
	assert_int_equal(read_file(path, 1 << 16, &d, &l), 0);
	return (char *)d;
}

static int run_case(const char *dir) {
	char path[4096];
	snprintf(path, sizeof path, "%s/context.json", dir);
	json_object *ctx = json_object_from_file(path);
	assert_non_null(ctx);
	json_object *creds, *o;
	assert_true(json_object_object_get_ex(ctx, "credentials", &creds));
	struct sigv4_credentials c = {};
	assert_true(json_object_object_get_ex(creds, "access_key_id", &o));
	c.access_key_id = json_object_get_string(o);
	assert_true(json_object_object_get_ex(creds, "secret_access_key", &o));
	c.secret_access_key = json_object_get_string(o);
	if (json_object_object_get_ex(creds, "token", &o)) c.session_token = json_object_get_string(o);
	struct sigv4_params p = {};
	assert_true(json_object_object_get_ex(ctx, "region", &o));
	p.region = json_object_get_string(o);
	assert_true(json_object_object_get_ex(ctx, "service", &o));
	p.service = json_object_get_string(o);
	assert_true(json_object_object_get_ex(ctx, "normalize", &o));
	p.normalize_path = json_object_get_boolean(o);
	assert_true(json_object_object_get_ex(ctx, "sign_body", &o));
	p.sign_body = json_object_get_boolean(o);
	if (json_object_object_get_ex(ctx, "omit_session_token", &o)) p.omit_session_token = json_object_get_boolean(o);
	assert_true(json_object_object_get_ex(ctx, "expiration_in_seconds", &o));
	p.expires = (uint64_t)json_object_get_int64(o);
	assert_true(json_object_object_get_ex(ctx, "timestamp", &o));
	struct tm tm = {};
	assert_non_null(strptime(json_object_get_string(o), "%Y-%m-%dT%H:%M:%SZ", &tm));
	p.timestamp = timegm(&tm);

	snprintf(path, sizeof path, "%s/request.txt", dir);
	struct parsed_request pr;
	parse_request(path, &pr);
	struct sigv4_request req = {pr.method, pr.path, pr.query, pr.headers, pr.n_headers, pr.body, pr.body_len};

	static const char *const forms[] = {"header", "query"};
	for (int f = 0; f < 2; f++) {
		struct sigv4_result res = {};
		int r = f == 0 ? sigv4_sign(&req, &c, &p, &res) : sigv4_presign(&req, &c, &p, &res);
		assert_int_equal(r, 0);
		char name[64];
		snprintf(name, sizeof name, "%s-canonical-request.txt", forms[f]);
		_cleanup_free_ char *want_cr = read_text(dir, name);
		snprintf(name, sizeof name, "%s-string-to-sign.txt", forms[f]);
		_cleanup_free_ char *want_sts = read_text(dir, name);
		snprintf(name, sizeof name, "%s-signature.txt", forms[f]);
		_cleanup_free_ char *want_sig = read_text(dir, name);
		if (strcmp(res.canonical_request, want_cr) != 0)
			print_message("%s (%s): canonical request\n--- got\n%s\n--- want\n%s\n", dir, forms[f],
				       res.canonical_request, want_cr);
		assert_string_equal(res.canonical_request, want_cr);
		assert_string_equal(res.string_to_sign, want_sts);
		assert_string_equal(res.signature, want_sig);
		if (f == 0) {
			/* The signed request's Authorization line carries our header value exactly. */
			_cleanup_free_ char *signed_req = read_text(dir, "header-signed-request.txt");
			char want_auth[2048];
			snprintf(want_auth, sizeof want_auth, "Authorization:%s\n", res.authorization);
			assert_non_null(strstr(signed_req, want_auth));
		}
		sigv4_result_done(&res);
	}
	free(pr.buf);
	json_object_put(ctx);
	return 0;
}

static void test_suite(void **state) {
	const char *src = getenv("EML_SRCDIR");
	char base[1024];
	snprintf(base, sizeof base, "%s/tests/vectors/sigv4", src ? src : ".");
	DIR *d = opendir(base);
	assert_non_null(d);
	int cases = 0;
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.') continue;
		char dir[2048];
		snprintf(dir, sizeof dir, "%s/%s", base, de->d_name);
		run_case(dir);
		cases++;
	}
	closedir(d);
	assert_int_equal(cases, 38);
}

/* ---- verifier ---- */

static const char *SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

static int lookup(void *ud, const char *akid, const char **ret_secret, const char **ret_token) {
	if (strcmp(akid, "AKIDEXAMPLE") != 0) return -ENOKEY;
	*ret_secret = SECRET;
	*ret_token = ud;
	return 0;
}

struct signed_req {
	struct sigv4_header h[8];
	struct sigv4_request req;
	struct sigv4_result res;
};

static void make_signed(struct signed_req *s, time_t t, const char *body, const char *token) {
	memset(s, 0, sizeof *s);
	s->h[0] = (struct sigv4_header){"Host", "kms.us-east-1.amazonaws.com"};
	s->h[1] = (struct sigv4_header){"Content-Type", "application/x-amz-json-1.1"};
	s->h[2] = (struct sigv4_header){"X-Amz-Target", "TrentService.Decrypt"};
	s->req = (struct sigv4_request){"POST", "/", NULL, s->h, 3, (const uint8_t *)body, strlen(body)};
	struct sigv4_credentials c = {"AKIDEXAMPLE", SECRET, token};
	struct sigv4_params p = {.region = "us-east-1", .service = "kms", .timestamp = t, .normalize_path = true};
	assert_int_equal(sigv4_sign(&s->req, &c, &p, &s->res), 0);
	size_t n = 3;
	s->h[n++] = (struct sigv4_header){"X-Amz-Date", s->res.amz_date};
	if (token) s->h[n++] = (struct sigv4_header){"X-Amz-Security-Token", token};
	s->h[n++] = (struct sigv4_header){"Authorization", s->res.authorization};
	s->req.n_headers = n;
}

static void test_verify(void **state) {
	const time_t t = 1700000000;
	struct sigv4_verify_params vp = {"us-east-1", "kms", t + 10, 900, lookup, NULL};
	struct signed_req s;
	char *akid = NULL;

	make_signed(&s, t, "{\"KeyId\":\"k\"}", NULL);
	assert_int_equal(sigv4_verify(&s.req, &vp, &akid), 0);
	assert_string_equal(akid, "AKIDEXAMPLE");
	free(akid);

	/* Body changed after signing. */
	s.req.body = (const uint8_t *)"{\"KeyId\":\"x\"}";
	assert_int_equal(sigv4_verify(&s.req, &vp, NULL), -EACCES);
	sigv4_result_done(&s.res);

	/* A signed header changed. */
	make_signed(&s, t, "{}", NULL);
	s.h[2].value = "TrentService.Encrypt";
	assert_int_equal(sigv4_verify(&s.req, &vp, NULL), -EACCES);
	sigv4_result_done(&s.res);

	/* Stale and future dates. */
	make_signed(&s, t - 3600, "{}", NULL);
	assert_int_equal(sigv4_verify(&s.req, &vp, NULL), -ETIME);
	sigv4_result_done(&s.res);
	make_signed(&s, t + 3600, "{}", NULL);
	assert_int_equal(sigv4_verify(&s.req, &vp, NULL), -ETIME);
	sigv4_result_done(&s.res);

	/* Wrong region or service in the scope. */
	make_signed(&s, t, "{}", NULL);
	struct sigv4_verify_params other = vp;
	other.region = "eu-west-1";
	assert_int_equal(sigv4_verify(&s.req, &other, NULL), -EDOM);
	other = vp;
	other.service = "s3";
	assert_int_equal(sigv4_verify(&s.req, &other, NULL), -EDOM);

	/* Session token required by the credentials but absent. */
	other = vp;
	other.userdata = (void *)"tok";
	assert_int_equal(sigv4_verify(&s.req, &other, NULL), -EPERM);
	sigv4_result_done(&s.res);
	make_signed(&s, t, "{}", "tok");
	assert_int_equal(sigv4_verify(&s.req, &other, NULL), 0);
	sigv4_result_done(&s.res);

	/* Malformed and unknown-key Authorization values. */
	make_signed(&s, t, "{}", NULL);
	struct sigv4_header *auth = &s.h[s.req.n_headers - 1];
	const char *bad[] = {
		"AWS4-HMAC-SHA256",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/kms/aws4_request",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/kms/aws4_request, SignedHeaders=x-amz-date;host, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, "
		"Signature=00",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date;x-missing, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		auth->value = bad[i];
		assert_int_equal(sigv4_verify(&s.req, &vp, NULL), -EBADMSG);
	}
	auth->value = "AWS4-HMAC-SHA1 Credential=AKIDEXAMPLE/20231114/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, "
		      "Signature=0000000000000000000000000000000000000000000000000000000000000000";
	assert_int_equal(sigv4_verify(&s.req, &vp, NULL), -EPROTONOSUPPORT);
	auth->value = "AWS4-HMAC-SHA256 Credential=AKIDOTHER/20231114/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, "
		      "Signature=0000000000000000000000000000000000000000000000000000000000000000";
	assert_int_equal(sigv4_verify(&s.req, &vp, NULL), -ENOKEY);
	sigv4_result_done(&s.res);
}

static void test_amz_date(void **state) {
	time_t t;
	char s[17];
	assert_int_equal(sigv4_parse_amz_date("20150830T123600Z", &t), 0);
	assert_int_equal((long long)t, 1440938160LL);
	sigv4_format_amz_date(t, s);
	assert_string_equal(s, "20150830T123600Z");
	assert_int_equal(sigv4_parse_amz_date("20150830T123600", &t), -EINVAL);
	assert_int_equal(sigv4_parse_amz_date("2015083OT123600Z", &t), -EINVAL);
	assert_int_equal(sigv4_parse_amz_date("20151330T123600Z", &t), -EINVAL);
}

static void test_bad_query(void **state) {
	struct sigv4_header h[] = {{"Host", "example.amazonaws.com"}};
	struct sigv4_credentials c = {"AKIDEXAMPLE", SECRET, NULL};
	struct sigv4_params p = {.region = "us-east-1", .service = "service", .timestamp = 0, .normalize_path = true};
	struct sigv4_result res;
	struct sigv4_request r = {"GET", "/", "a=%zz", h, 1, NULL, 0};
	assert_int_equal(sigv4_sign(&r, &c, &p, &res), -EINVAL);
	r.query = "a=%00";
	assert_int_equal(sigv4_sign(&r, &c, &p, &res), -EINVAL);
	r.query = "a=%4";
	assert_int_equal(sigv4_sign(&r, &c, &p, &res), -EINVAL);
	p.region = "us east";
	r.query = NULL;
	assert_int_equal(sigv4_sign(&r, &c, &p, &res), -EINVAL);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suite),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_amz_date),
		cmocka_unit_test(test_bad_query),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
