/* tokenizer.h: BERT uncased WordPiece tokenization as Hugging Face's BertTokenizer does it: text clean-up
 * (control characters dropped, whitespace unified), CJK characters split, lower-casing, accent stripping
 * (NFD, drop non-spacing marks), punctuation split, greedy longest-match WordPiece with "##" continuations,
 * words over 100 characters -> [UNK], [CLS] ... [SEP] and truncation. Owns the vocabulary (vocab.txt, one
 * token per line, id = line number). Unicode properties come from utf8proc. A loaded tokenizer is read-only
 * and may be shared between threads. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define TOKENIZER_MAX_VOCAB_BYTES (16u << 20)
#define TOKENIZER_MAX_VOCAB 1000000u
#define TOKENIZER_MAX_TOKEN_BYTES 256u
#define TOKENIZER_MAX_TEXT (1u << 20) /* bytes of input text per call */
#define TOKENIZER_MAX_WORD_CHARS 100u /* longer words become [UNK] */

struct tokenizer;

/* Build from vocab.txt contents. Needs [PAD], [UNK], [CLS], [SEP]. -EBADMSG with a reason in err. */
int tokenizer_new(const char *vocab, size_t len, struct tokenizer **ret, char *err, size_t errsz);
int tokenizer_load(const char *path, struct tokenizer **ret, char *err, size_t errsz);
void tokenizer_free(struct tokenizer *t);

size_t tokenizer_vocab_size(const struct tokenizer *t);
/* Id of a token, or -ENOENT. */
int tokenizer_lookup(const struct tokenizer *t, const char *token, size_t len);

/* Encode text (any bytes: invalid UTF-8 sequences count as U+FFFD and are dropped like HF drops it) into
 * [CLS] tokens... [SEP], at most max_tokens ids in all (>= 2; longer inputs are truncated before [SEP]).
 * *ret_ids is malloc'd. -E2BIG when text exceeds TOKENIZER_MAX_TEXT. */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, size_t max_tokens,
		     int32_t **ret_ids, size_t *ret_n);
