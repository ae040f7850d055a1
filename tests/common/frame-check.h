/* frame-check.h: test-only invariant for fuzz targets: a byte stream must parse as a sequence of complete,
 * well-formed frames (lib/frame), else abort() so that the fuzzer reports it. Header-only (see session-stub.h). */
#pragma once

#include <stdint.h>
#include <stdlib.h>

#include "frame.h"

static inline void abort_unless_whole_frames(const uint8_t *p, size_t n) {
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	size_t off = 0;
	while (off < n) {
		size_t used;
		int r = frame_decoder_feed(&d, p + off, n - off, &used);
		if (r < 0) abort();
		off += used;
		if (r == 1) {
			struct frame_header h;
			uint8_t *pl;
			if (frame_decoder_take(&d, &h, &pl) < 0) abort();
			free(pl);
		}
	}
	if (frame_decoder_finish(&d) != 0) abort();
	frame_decoder_free(&d);
}
