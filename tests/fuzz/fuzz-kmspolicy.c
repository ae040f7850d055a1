/* libFuzzer target: key-policy validation and evaluation on arbitrary text. */
#include <stdlib.h>
#include <string.h>

#include "kmspolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size > KMSPOLICY_MAX + 16) return 0;
	char *s = malloc(size + 1);
	if (!s) return 0;
	memcpy(s, data, size);
	s[size] = 0;
	const char *why;
	int valid = kmspolicy_validate(s, &why) == 0;
	json_object *ctx = json_tokener_parse("{\"m\":\"x\"}");
	struct kmspolicy_request r = {.action = "kms:Decrypt", .principal_arn = "arn:aws:iam::111122223333:root",
				      .account = "111122223333", .pcr = {"aa"}, .context = ctx};
	int allowed = kmspolicy_evaluate(s, &r);
	/* An invalid policy never allows. */
	if (!valid && allowed) __builtin_trap();
	json_object_put(ctx);
	free(s);
	return 0;
}
