/* cmd-model.c: `eml model seal` (below) and `eml model random`: a deterministic random-weight BERT model with Hugging Face tensor names
 * and shapes (what tests and benchmarks use, since real weights cannot be shipped). */
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <libgen.h>
#include <math.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base64.h"
#include "bert.h"
#include "command.h"
#include "kms-http.h"
#include "macro.h"
#include "safetensors.h"
#include "sealed.h"
#include "util.h"

/* splitmix64: tiny, well-mixed, and reproducible everywhere. */
static uint64_t next(uint64_t *s) {
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double uniform(uint64_t *s) {
	return ((next(s) >> 11) + 0.5) * 0x1p-53; /* (0, 1) */
}

/* Each tensor's stream depends only on (seed, name), so adding or reordering tensors changes nothing else. */
static void fill(float *p, size_t n, uint64_t seed, const char *name, double mean, double std) {
	uint64_t s = seed;
	for (const char *c = name; *c; c++) s = (s ^ (uint8_t)*c) * 0x100000001b3ull;
	for (size_t i = 0; i < n; i += 2) { /* Box-Muller, both outputs */
		double u = uniform(&s), v = uniform(&s), r = sqrt(-2 * log(u));
		p[i] = (float)(mean + std * r * cos(2 * M_PI * v));
		if (i + 1 < n) p[i + 1] = (float)(mean + std * r * sin(2 * M_PI * v));
	}
}

struct spec {
	char name[96];
	size_t d0, d1;
};

static int verb_random(int argc, char **argv) {
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"seed", required_argument, NULL, 's'},
		{"output", required_argument, NULL, 'o'},
		{},
	};
	const char *config = NULL, *out = NULL;
	uint64_t seed = 0;
	int c;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) >= 0) switch (c) {
		case 'c':
			config = optarg;
			break;
		case 's':
			if (parse_u64(optarg, UINT64_MAX, &seed) < 0) return command_usage("model random");
			break;
		case 'o':
			out = optarg;
			break;
		default:
			return command_usage("model random");
		}
	if (!config || !out || optind != argc) return command_usage("model random");
	_cleanup_free_ uint8_t *js = NULL;
	size_t jl;
	char err[256];
	struct bert_config cfg;
	int r = read_file(config, 1u << 20, &js, &jl);
	if (r < 0) {
		fprintf(stderr, "error: %s: %s\n", config, strerror(-r));
		return 1;
	}
	if (bert_config_parse((const char *)js, jl, &cfg, err, sizeof err) < 0) {
		fprintf(stderr, "error: %s\n", err);
		return 1;
	}
	size_t H = cfg.hidden, I = cfg.intermediate;
	size_t n = 5 + 16 * cfg.layers + 2, k = 0;
	_cleanup_free_ struct spec *sp = calloc(n, sizeof *sp);
	if (!sp) return 1;
#define ADD(d0_, d1_, ...) (snprintf(sp[k].name, sizeof sp[k].name, __VA_ARGS__), sp[k].d0 = (d0_), sp[k++].d1 = (d1_))
	ADD(cfg.vocab_size, H, "embeddings.word_embeddings.weight");
	ADD(cfg.max_positions, H, "embeddings.position_embeddings.weight");
	ADD(cfg.type_vocab, H, "embeddings.token_type_embeddings.weight");
	ADD(H, 0, "embeddings.LayerNorm.weight");
	ADD(H, 0, "embeddings.LayerNorm.bias");
	for (unsigned l = 0; l < cfg.layers; l++) {
		static const char *const sq[] = {"attention.self.query", "attention.self.key", "attention.self.value",
						 "attention.output.dense"};
		for (int i = 0; i < 4; i++) {
			ADD(H, H, "encoder.layer.%u.%s.weight", l, sq[i]);
			ADD(H, 0, "encoder.layer.%u.%s.bias", l, sq[i]);
		}
		ADD(I, H, "encoder.layer.%u.intermediate.dense.weight", l);
		ADD(I, 0, "encoder.layer.%u.intermediate.dense.bias", l);
		ADD(H, I, "encoder.layer.%u.output.dense.weight", l);
		ADD(H, 0, "encoder.layer.%u.output.dense.bias", l);
		ADD(H, 0, "encoder.layer.%u.attention.output.LayerNorm.weight", l);
		ADD(H, 0, "encoder.layer.%u.attention.output.LayerNorm.bias", l);
		ADD(H, 0, "encoder.layer.%u.output.LayerNorm.weight", l);
		ADD(H, 0, "encoder.layer.%u.output.LayerNorm.bias", l);
	}
	ADD(H, H, "pooler.dense.weight");
	ADD(H, 0, "pooler.dense.bias");
#undef ADD
	/* The writer keeps our order: position_ids (I64) first, then names sorted, as the published file. */
	qsort(sp, k, sizeof *sp, (int (*)(const void *, const void *))strcmp);
	_cleanup_free_ struct safetensors_out *o = calloc(k + 1, sizeof *o);
	_cleanup_free_ int64_t *pos = malloc(cfg.max_positions * sizeof *pos);
	float **bufs = calloc(k, sizeof *bufs);
	if (!o || !pos || !bufs) return 1;
	for (unsigned i = 0; i < cfg.max_positions; i++) pos[i] = i;
	o[0] = (struct safetensors_out){"embeddings.position_ids", ST_I64, 2, {1, cfg.max_positions}, pos};
	int rc = 0;
	for (size_t i = 0; i < k; i++) {
		size_t cnt = sp[i].d1 ? sp[i].d0 * sp[i].d1 : sp[i].d0;
		bufs[i] = malloc(cnt * sizeof(float));
		if (!bufs[i]) {
			rc = 1;
			break;
		}
		/* Scales chosen so attention is far from uniform and every layer matters (std 0.05 on 384 inputs
		 * gives unit-scale query/key products); LayerNorm gains near 1. */
		const char *nm = sp[i].name;
		size_t L = strlen(nm);
		bool ln = strstr(nm, "LayerNorm") != NULL, bias = L > 5 && strcmp(nm + L - 5, ".bias") == 0;
		if (ln && !bias)
			fill(bufs[i], cnt, seed, nm, 1.0, 0.1);
		else if (bias)
			fill(bufs[i], cnt, seed, nm, 0.0, 0.05);
		else if (strncmp(nm, "embeddings.", 11) == 0)
			fill(bufs[i], cnt, seed, nm, 0.0, 0.5);
		else
			fill(bufs[i], cnt, seed, nm, 0.0, 0.05);
		o[i + 1] = (struct safetensors_out){.name = nm, .dtype = ST_F32, .ndim = sp[i].d1 ? 2 : 1,
						    .shape = {sp[i].d0, sp[i].d1}, .data = bufs[i]};
	}
	if (rc == 0 && (r = safetensors_write(out, o, k + 1)) < 0) {
		fprintf(stderr, "error: %s: %s\n", out, strerror(-r));
		rc = 1;
	}
	for (size_t i = 0; i < k; i++) free(bufs[i]);
	free(bufs);
	return rc;
}
EML_COMMAND(model_random, "model random", "--config config.json --seed N -o model.safetensors",
	    "write deterministic random BERT weights (Hugging Face names and shapes)", verb_random);

/* --- eml model seal ------------------------------------------------------------------------------------------
 * GenerateDataKey with the operator's credentials, files chunked and encrypted under the data key, manifest
 * signed by the model owner (eml-sealed-model(5)). The plaintext data key lives only in one buffer, wiped. */

static const char *const seal_files[] = {"config.json", "vocab.txt", "model.safetensors"};

static EVP_PKEY *load_ed25519_private(const char *path) {
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f) return NULL;
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	if (k && EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

/* The data key and blob from a GenerateDataKey answer; the JSON copy of the Plaintext is wiped in place. */
static int parse_data_key(const char *body, uint8_t key[SEALED_KEY_LEN], uint8_t **ret_blob, size_t *ret_blob_len,
			  char **ret_key_id) {
	json_object *j = json_tokener_parse(body), *pt, *blob, *kid;
	int r = -EBADMSG;
	if (!j) return r;
	if (json_object_object_get_ex(j, "Plaintext", &pt) && json_object_is_type(pt, json_type_string) &&
	    json_object_object_get_ex(j, "CiphertextBlob", &blob) && json_object_is_type(blob, json_type_string)) {
		uint8_t *plain = NULL;
		size_t pl = 0;
		r = base64_decode(json_object_get_string(pt), 64, &plain, &pl);
		wipe((void *)json_object_get_string(pt), (size_t)json_object_get_string_len(pt));
		if (r == 0 && pl == SEALED_KEY_LEN) memcpy(key, plain, SEALED_KEY_LEN);
		else if (r == 0) r = -EBADMSG;
		if (plain) free_secret(plain, pl);
		if (r == 0) r = base64_decode(json_object_get_string(blob), SEALED_EDK_MAX, ret_blob, ret_blob_len);
		if (r == 0 && json_object_object_get_ex(j, "KeyId", &kid) && json_object_is_type(kid, json_type_string) &&
		    !(*ret_key_id = strdup(json_object_get_string(kid))))
			r = -ENOMEM;
	}
	json_object_put(j);
	return r < 0 ? -EBADMSG : 0;
}

static int verb_seal(int argc, char **argv) {
	static const struct option opts[] = {
		{"model", required_argument, NULL, 'm'},        {"key-id", required_argument, NULL, 'k'},
		{"signing-key", required_argument, NULL, 's'},  {"output", required_argument, NULL, 'o'},
		{"kms-endpoint", required_argument, NULL, 'e'}, {"region", required_argument, NULL, 'r'},
		{"model-id", required_argument, NULL, 'i'},     {"version", required_argument, NULL, 'v'},
		{"chunk-size", required_argument, NULL, 'c'},   {"context", required_argument, NULL, 'x'},
		{},
	};
	const char *dir = NULL, *key_id = NULL, *signing = NULL, *out = NULL, *endpoint = NULL, *region = NULL,
		   *model_id = NULL, *version = "1";
	uint64_t chunk = SEALED_CHUNK_DEFAULT;
	struct sealed_pair ctx[SEALED_CONTEXT_MAX_PAIRS];
	size_t n_ctx = 0;
	int c;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) >= 0) switch (c) {
		case 'm': dir = optarg; break;
		case 'k': key_id = optarg; break;
		case 's': signing = optarg; break;
		case 'o': out = optarg; break;
		case 'e': endpoint = optarg; break;
		case 'r': region = optarg; break;
		case 'i': model_id = optarg; break;
		case 'v': version = optarg; break;
		case 'c':
			if (parse_u64(optarg, SEALED_CHUNK_MAX, &chunk) < 0 || chunk < SEALED_CHUNK_MIN) {
				fprintf(stderr, "error: --chunk-size must be %u to %u\n", SEALED_CHUNK_MIN, SEALED_CHUNK_MAX);
				return 2;
			}
			break;
		case 'x': {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg || n_ctx == SEALED_CONTEXT_MAX_PAIRS) {
				fprintf(stderr, "error: --context KEY=VALUE, at most %d\n", SEALED_CONTEXT_MAX_PAIRS);
				return 2;
			}
			*eq = 0;
			ctx[n_ctx++] = (struct sealed_pair){optarg, eq + 1};
			break;
		}
		default: return command_usage("model seal");
		}
	if (!dir || !key_id || !signing || !out || optind != argc) return command_usage("model seal");

	_cleanup_free_ char *dir_copy = strdup(dir);
	if (!dir_copy) return 1;
	if (!model_id) {
		char *d = dir_copy + strlen(dir_copy);
		while (d > dir_copy + 1 && d[-1] == '/') *--d = 0;
		model_id = basename(dir_copy);
	}
	if (n_ctx == 0) ctx[n_ctx++] = (struct sealed_pair){(char *)"eml:model", (char *)model_id};
	struct sigv4_credentials creds;
	if (kms_credentials_from_env(&creds) < 0) {
		fprintf(stderr, "error: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set (the operator's credentials)\n");
		return 1;
	}
	EVP_PKEY *signer = load_ed25519_private(signing);
	if (!signer) {
		fprintf(stderr, "error: %s: not a PEM Ed25519 private key\n", signing);
		return 1;
	}

	int rc = 1, r, fds[ARRAY_SIZE(seal_files)] = {-1, -1, -1};
	struct sealed_file files[ARRAY_SIZE(seal_files)] = {};
	struct sealed_source src[ARRAY_SIZE(seal_files)] = {};
	uint8_t data_key[SEALED_KEY_LEN], hash[32];
	bool have_key = false;
	_cleanup_free_ uint8_t *blob = NULL;
	_cleanup_free_ char *arn = NULL, *tmp = NULL, *req = NULL;
	size_t blob_len = 0;
	struct kms_response resp = {};
	struct kms_http *kms = NULL;
	int out_fd = -1;

	for (size_t i = 0; i < ARRAY_SIZE(seal_files); i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, seal_files[i]);
		if ((fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fds[i], &st) < 0 || !S_ISREG(st.st_mode)) {
			fprintf(stderr, "error: %s: %s\n", path, fds[i] < 0 ? strerror(errno) : "not a regular file");
			goto done;
		}
		files[i] = (struct sealed_file){.name = (char *)seal_files[i], .size = (uint64_t)st.st_size};
		src[i] = (struct sealed_source){.fd = fds[i], .size = (uint64_t)st.st_size};
		if ((r = sealed_source_sha256(&src[i], files[i].sha256)) < 0) {
			fprintf(stderr, "error: %s: %s\n", path, strerror(-r));
			goto done;
		}
	}

	/* GenerateDataKey {KeyId, KeySpec, EncryptionContext}. */
	json_object *jr = json_object_new_object(), *jc = json_object_new_object();
	json_object_object_add(jr, "KeyId", json_object_new_string(key_id));
	json_object_object_add(jr, "KeySpec", json_object_new_string("AES_256"));
	for (size_t i = 0; i < n_ctx; i++) json_object_object_add(jc, ctx[i].key, json_object_new_string(ctx[i].value));
	json_object_object_add(jr, "EncryptionContext", jc);
	req = strdup(json_object_to_json_string_ext(jr, JSON_C_TO_STRING_PLAIN));
	json_object_put(jr);
	if (!req) goto done;
	if ((r = kms_http_new(endpoint, region, 0, &kms)) < 0) {
		fprintf(stderr, "error: bad --kms-endpoint %s\n", endpoint ? endpoint : "");
		goto done;
	}
	char err[256] = "";
	r = kms_http_call(kms, &creds, "GenerateDataKey", req, strlen(req), &resp, err, sizeof err);
	if (r < 0) {
		fprintf(stderr, "error: KMS %s: %s\n", kms_http_endpoint(kms), err[0] ? err : strerror(-r));
		goto done;
	}
	if (resp.status != 200) {
		fprintf(stderr, "error: KMS GenerateDataKey: %s%s%s\n", resp.error_type, resp.error_message[0] ? ": " : "",
			resp.error_message);
		goto done;
	}
	if (parse_data_key(resp.body, data_key, &blob, &blob_len, &arn) < 0) {
		fprintf(stderr, "error: KMS GenerateDataKey: unexpected answer\n");
		goto done;
	}
	have_key = true;
	kms_response_done(&resp);

	struct sealed_manifest m = {.model_id = (char *)model_id, .version = (char *)version, .files = files,
				    .n_files = ARRAY_SIZE(seal_files), .kms_key_id = arn ? arn : (char *)key_id,
				    .encrypted_data_key = blob, .edk_len = blob_len, .context = ctx, .n_context = n_ctx,
				    .chunk_size = (uint32_t)chunk};
	if (asprintf(&tmp, "%s.tmp.%d", out, (int)getpid()) < 0) {
		tmp = NULL;
		goto done;
	}
	if ((out_fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
		fprintf(stderr, "error: %s: %s\n", tmp, strerror(errno));
		goto done;
	}
	r = sealed_write(out_fd, &m, src, data_key, signer, hash);
	if (r == 0 && fsync(out_fd) < 0) r = negerrno();
	if (r == 0 && rename(tmp, out) < 0) r = negerrno();
	if (r < 0) {
		fprintf(stderr, "error: sealing %s: %s\n", out, r == -EINVAL || r == -E2BIG || r == -EILSEQ
									   ? sealed_strerror(r) : strerror(-r));
		unlink(tmp);
		goto done;
	}
	char hex[65];
	hex_encode(hash, 32, hex);
	json_object *js = json_object_new_object(), *jf = json_object_new_array();
	json_object_object_add(js, "model_id", json_object_new_string(model_id));
	json_object_object_add(js, "version", json_object_new_string(version));
	json_object_object_add(js, "manifest_sha256", json_object_new_string(hex));
	json_object_object_add(js, "kms_key_id", json_object_new_string(m.kms_key_id));
	for (size_t i = 0; i < ARRAY_SIZE(seal_files); i++) {
		json_object *f = json_object_new_object();
		hex_encode(files[i].sha256, 32, hex);
		json_object_object_add(f, "name", json_object_new_string(files[i].name));
		json_object_object_add(f, "size", json_object_new_uint64(files[i].size));
		json_object_object_add(f, "sha256", json_object_new_string(hex));
		json_object_array_add(jf, f);
	}
	json_object_object_add(js, "files", jf);
	printf("%s\n", json_object_to_json_string_ext(js, JSON_C_TO_STRING_PLAIN));
	json_object_put(js);
	rc = 0;
done:
	if (have_key) wipe(data_key, sizeof data_key);
	kms_response_done(&resp);
	kms_http_free(kms);
	if (out_fd >= 0) close(out_fd);
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0) close(fds[i]);
	EVP_PKEY_free(signer);
	return rc;
}
EML_COMMAND(model_seal, "model seal",
	    "--model DIR --key-id ID --signing-key KEY.pem -o FILE.emodel [--kms-endpoint URL] [--region R] "
	    "[--model-id ID] [--version V] [--chunk-size N] [--context K=V]...",
	    "seal a model under a KMS data key, signed by its owner (eml-sealed-model(5))", verb_seal);

/* --- eml model inspect: the manifest of a sealed model as JSON, and optionally who signed it. Reads only the
 * header (the reader stops at the end of the signed manifest). */
static int verb_inspect(int argc, char **argv) {
	static const struct option opts[] = {{"signers", required_argument, NULL, 's'}, {}};
	const char *signers = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) switch (c) {
		case 's': signers = optarg; break;
		default: return command_usage("model inspect");
		}
	if (optind + 1 != argc) return command_usage("model inspect");
	const char *path = argv[optind];
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "error: %s: %s\n", path, strerror(errno));
		return 1;
	}
	_cleanup_sealed_reader_ struct sealed_reader *rd = NULL;
	if (sealed_reader_new(0, &rd) < 0) return 1;
	uint8_t buf[4096];
	int r = 0;
	while (sealed_reader_state(rd) == SEALED_READ_HEADER) {
		ssize_t n = read(fd, buf, sizeof buf), k;
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) {
			r = n < 0 ? negerrno() : -EPIPE;
			break;
		}
		if ((k = sealed_reader_feed(rd, buf, (size_t)n)) < 0) {
			r = (int)k;
			break;
		}
	}
	if (r < 0) {
		fprintf(stderr, "error: %s: %s\n", path, sealed_strerror(r));
		return 1;
	}
	const struct sealed_manifest *m = sealed_reader_manifest(rd);
	char hex[2 * SEALED_EDK_MAX + 1];
	json_object *js = json_object_new_object(), *jf = json_object_new_array(), *jc = json_object_new_object();
	json_object_object_add(js, "model_id", json_object_new_string(m->model_id));
	json_object_object_add(js, "version", json_object_new_string(m->version));
	hex_encode(sealed_reader_manifest_hash(rd), 32, hex);
	json_object_object_add(js, "manifest_sha256", json_object_new_string(hex));
	json_object_object_add(js, "kms_key_id", json_object_new_string(m->kms_key_id));
	hex_encode(m->encrypted_data_key, m->edk_len, hex);
	json_object_object_add(js, "encrypted_data_key", json_object_new_string(hex));
	for (size_t i = 0; i < m->n_context; i++)
		json_object_object_add(jc, m->context[i].key, json_object_new_string(m->context[i].value));
	json_object_object_add(js, "encryption_context", jc);
	json_object_object_add(js, "chunk_size", json_object_new_uint64(m->chunk_size));
	for (size_t i = 0; i < m->n_files; i++) {
		json_object *f = json_object_new_object();
		hex_encode(m->files[i].sha256, 32, hex);
		json_object_object_add(f, "name", json_object_new_string(m->files[i].name));
		json_object_object_add(f, "size", json_object_new_uint64(m->files[i].size));
		json_object_object_add(f, "sha256", json_object_new_string(hex));
		json_object_array_add(jf, f);
	}
	json_object_object_add(js, "files", jf);
	int rc = 0;
	if (signers) {
		CoseKey *keys = NULL;
		size_t nk = 0;
		r = sealed_load_signers(signers, &keys, &nk);
		if (r < 0) {
			fprintf(stderr, "error: %s: %s\n", signers, strerror(-r));
			json_object_put(js);
			return 1;
		}
		r = sealed_reader_verify(rd, keys, nk);
		free(keys);
		json_object_object_add(js, "signature", json_object_new_string(r >= 0 ? "valid" : "untrusted"));
		rc = r >= 0 ? 0 : 1;
	}
	printf("%s\n", json_object_to_json_string_ext(js, JSON_C_TO_STRING_PLAIN));
	json_object_put(js);
	if (rc) fprintf(stderr, "error: %s: %s\n", path, sealed_strerror(-EKEYREJECTED));
	return rc;
}
EML_COMMAND(model_inspect, "model inspect", "FILE.emodel [--signers DIR]",
	    "print a sealed model's manifest; with --signers, check who signed it", verb_inspect);
