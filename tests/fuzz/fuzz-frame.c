/* Fuzz the frame decoder: the input is a byte stream fed in pieces whose sizes come from the first byte. Every
 * decoded frame must respect the cap, and re-encoding it must give back the bytes that were consumed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size < 1) return 0;
	size_t step = (size_t)(data[0] % 17) + 1;
	data++, size--;
	struct frame_decoder d;
	frame_decoder_init(&d, 1u << 16);
	size_t pos = 0, frame_start = 0;
	while (pos < size) {
		size_t used;
		size_t n = size - pos < step ? size - pos : step;
		int r = frame_decoder_feed(&d, data + pos, n, &used);
		pos += used;
		if (r < 0) break;
		if (r == 1) {
			struct frame_header h;
			uint8_t *p;
			if (frame_decoder_take(&d, &h, &p) < 0) abort();
			if (h.length > (1u << 16) || h.type < 1 || h.type > 8) abort();
			uint8_t *enc;
			size_t enc_len;
			if (frame_encode(h.type, h.seq, p, h.length, &enc, &enc_len) < 0) abort();
			if (enc_len != pos - frame_start || memcmp(enc, data + frame_start, enc_len) != 0) abort();
			free(enc);
			free(p);
			frame_start = pos;
		} else if (used == 0)
			abort(); /* no progress without a frame or an error */
	}
	(void)frame_decoder_finish(&d);
	frame_decoder_free(&d);
	return 0;
}
