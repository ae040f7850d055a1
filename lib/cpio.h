/* cpio.h: a deterministic writer of "newc" cpio archives (the format the Linux kernel unpacks as an initramfs).
 *
 * Determinism is the point: the archive bytes depend only on the paths, kinds, permission class and contents
 * of the entries, never on the build machine. Every entry gets mtime 0, uid/gid 0, device 0:0, nlink 1 (2 for
 * directories) and an inode number counted from 1 in write order; cpio_write_tree() also sorts entries by path
 * (bytewise) and normalises modes (directories 0755, files 0755 when any execute bit is set else 0644,
 * symlinks 0777). The writer streams to a file descriptor and never seeks. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Longest path accepted inside an archive (the kernel's own limit is PATH_MAX). */
#define CPIO_PATH_MAX 4096

typedef struct cpio_writer cpio_writer;

/* A writer appending to fd (not closed by the writer). */
int cpio_writer_new(int fd, cpio_writer **ret);
/* Frees the writer (NULL ok). Does not write the trailer: call cpio_finish() first. */
void cpio_writer_free(cpio_writer *w);

/* Entries. path is relative ("etc/eml", no leading "/", no "." or ".." components, no "//"); mode holds only
 * permission bits (07777), the type comes from the call. */
int cpio_add_dir(cpio_writer *w, const char *path, mode_t mode);
int cpio_add_file(cpio_writer *w, const char *path, mode_t mode, const void *data, size_t len);
/* Contents copied from fd (read to EOF, at most len bytes which must all be there). */
int cpio_add_file_fd(cpio_writer *w, const char *path, mode_t mode, int fd, uint64_t len);
int cpio_add_symlink(cpio_writer *w, const char *path, const char *target);
/* Character (S_IFCHR) or block (S_IFBLK) device node. */
int cpio_add_node(cpio_writer *w, const char *path, mode_t type_and_mode, unsigned major, unsigned minor);
/* Writes the TRAILER!!! entry. Further adds fail with -EBADF. Returns the total archive size or -errno. */
int64_t cpio_finish(cpio_writer *w);

/* Archives the tree under dir (its contents, not dir itself) into fd: sorted, normalised (see above), with a
 * trailer. Regular files, directories and symlinks only; anything else is -EINVAL. */
int cpio_write_tree(const char *dir, int fd);

static inline void cpio_writer_freep(cpio_writer **w) { cpio_writer_free(*w); }
#define _cleanup_cpio_writer_ _cleanup_(cpio_writer_freep)
