/* command.h: how an `eml` subcommand registers itself. Each tools/eml/cmd-*.c file declares its commands with
 * EML_COMMAND(); main.c finds them through a linker section, so adding a command never edits a shared table.
 *
 *   static int verb_verify(int argc, char **argv) { ... }   // argv[0] is "attestation verify"
 *   EML_COMMAND(attestation_verify, "attestation verify", "DOC [--root PEM] ...", "verify an NSM document",
 *               verb_verify);
 *
 * A command returns a process exit code (0 ok, 1 failure, 2 usage). */
#pragma once

struct eml_command {
	const char *path;    /* words after `eml`, space separated: "attestation verify" */
	const char *usage;   /* argument synopsis */
	const char *summary; /* one line */
	int (*run)(int argc, char **argv);
};

#define EML_COMMAND(id, path_, usage_, summary_, fn)                                                   \
	static const struct eml_command eml_command_##id = {path_, usage_, summary_, fn};              \
	__attribute__((used, section("eml_commands"), aligned(sizeof(void *)))) static const struct eml_command \
		*const eml_command_ptr_##id = &eml_command_##id

/* Print "usage: eml PATH USAGE" for the running command; returns 2 for convenience. */
int command_usage(const char *path);

/* --kernels SET of the encoder commands: BERT_LOAD_* bits into *ret_flags, or an error message and -EINVAL. */
int command_kernels(const char *set, unsigned *ret_flags);
