/* safetensors.h: strict reader (and a small writer) for the safetensors tensor file format: an 8-byte
 * little-endian header length, a JSON header naming each tensor's dtype, shape and byte range, then raw data.
 * Owns header validation (size limits, dtypes, shapes, offsets inside the data and non-overlapping), tensor
 * name lookup with or without a "bert." prefix, and conversion of F32/F16/BF16 data to float.
 * The data is never copied: it lives in the caller's buffer or in a read-only mapping of the file. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SAFETENSORS_MAX_HEADER (16u << 20) /* bytes of JSON header */
#define SAFETENSORS_MAX_TENSORS 65536u
#define SAFETENSORS_MAX_DIMS 8u
#define SAFETENSORS_MAX_NAME 512u

enum safetensors_dtype {
	ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32, ST_F32, ST_I64, ST_U64, ST_F64,
	_ST_DTYPE_MAX,
};

struct safetensors_tensor {
	char *name;                /* as stored, with any "bert." prefix removed */
	enum safetensors_dtype dtype;
	unsigned ndim;
	uint64_t shape[SAFETENSORS_MAX_DIMS];
	uint64_t count;            /* product of shape */
	uint64_t begin, end;       /* byte range relative to the start of the data section */
};

struct safetensors {
	struct safetensors_tensor *tensors;
	size_t n_tensors;
	const uint8_t *data;  /* start of the data section (NULL when parsed header-only without data) */
	uint64_t data_len;    /* bytes the header's tensors need */
	void *map;            /* our mapping of the file, if opened from a path */
	size_t map_len;
	bool discard;         /* SAFETENSORS_DISCARD: drop the caller's pages as tensors are read */
};

/* Flag for safetensors_parse(): the buffer is only the header; tensor data need not follow. */
#define SAFETENSORS_HEADER_ONLY 1u
/* Flag for safetensors_parse(): buf is private anonymous memory (mmap) that nobody reads after the tensors are
 * read once: its pages are dropped as they are copied out (they read back as zeros), so a model handed over in
 * memory is never resident twice. Each tensor must be read at most once. */
#define SAFETENSORS_DISCARD 2u

/* Parse buf (len bytes: header length, JSON header, data). buf must outlive the result. On failure returns a
 * negative errno and, when err is not NULL, a one-line reason in err. -ENODATA: the header is valid but the
 * buffer ends before the data it describes. */
int safetensors_parse(const void *buf, size_t len, unsigned flags, struct safetensors **ret, char *err,
		      size_t errsz);
/* Map the file read-only and parse it. */
int safetensors_open(const char *path, struct safetensors **ret, char *err, size_t errsz);
void safetensors_free(struct safetensors *st);

const char *safetensors_dtype_name(enum safetensors_dtype d);
size_t safetensors_dtype_size(enum safetensors_dtype d);

/* Find a tensor by name; "bert.X" and "X" name the same tensor. NULL when absent. */
const struct safetensors_tensor *safetensors_find(const struct safetensors *st, const char *name);
/* Convert a F32/F16/BF16 tensor of exactly count elements to float. -EMEDIUMTYPE for other dtypes, -EBADMSG
 * on a count mismatch, -ENODATA for a header-only parse. From a mapped file, the pages copied are dropped as
 * the copy proceeds (they are re-read from the file if touched again). */
int safetensors_read_f32(const struct safetensors *st, const struct safetensors_tensor *t, float *out,
			 size_t count);
/* Tell the kernel we are done with a tensor's pages (mapped files only), so loading does not hold two copies
 * of the weights resident. No-op for memory buffers. */
void safetensors_release(const struct safetensors *st, const struct safetensors_tensor *t);
/* The same for the whole mapping: also catches pages the kernel mapped around small reads (fault-around). */
void safetensors_release_all(const struct safetensors *st);

/* Writer: tensors are written in the order given, data contiguous. */
struct safetensors_out {
	const char *name;
	enum safetensors_dtype dtype;
	unsigned ndim;
	uint64_t shape[SAFETENSORS_MAX_DIMS];
	const void *data; /* product(shape) * dtype size bytes, little-endian */
};
int safetensors_write(const char *path, const struct safetensors_out *t, size_t n);

/* Half-precision helpers (round to nearest even on the way down). */
float safetensors_f16_to_f32(uint16_t h);
float safetensors_bf16_to_f32(uint16_t h);
