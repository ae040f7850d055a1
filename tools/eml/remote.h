/* remote.h: entry points shared between eml command files. */
#pragma once

/* `eml embed --endpoint ADDR --policy FILE [--policy-key PUB]... TEXT...` (cmd-remote.c); cmd-embed.c hands its
 * argv over when --endpoint is given. */
int embed_remote(int argc, char **argv);
