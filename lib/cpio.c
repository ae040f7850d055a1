/* cpio.c: deterministic newc cpio writer (see cpio.h). */
#include "cpio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "util.h"

#define CPIO_HEADER_SIZE 110
#define CPIO_TREE_MAX_DEPTH 64
#define CPIO_TREE_MAX_ENTRIES 100000

struct cpio_writer {
	int fd;
	uint64_t offset;
	uint32_t next_ino;
	bool finished;
};

int cpio_writer_new(int fd, cpio_writer **ret) {
	if (fd < 0 || !ret) return -EINVAL;
	cpio_writer *w = calloc(1, sizeof *w);
	if (!w) return -ENOMEM;
	w->fd = fd;
	w->next_ino = 1;
	*ret = w;
	return 0;
}

void cpio_writer_free(cpio_writer *w) { free(w); }

static int emit(cpio_writer *w, const void *p, size_t len) {
	int r = write_all(w->fd, p, len);
	if (r < 0) return r;
	w->offset += len;
	return 0;
}

static int pad4(cpio_writer *w) {
	static const uint8_t zeros[4];
	size_t n = (size_t)((4 - (w->offset & 3)) & 3);
	return n ? emit(w, zeros, n) : 0;
}

/* The trailer is the one name that may not follow the path rules. */
static bool path_valid(const char *path) {
	size_t len = strnlen(path, CPIO_PATH_MAX);
	if (len == 0 || len >= CPIO_PATH_MAX || path[0] == '/' || path[len - 1] == '/') return false;
	const char *p = path;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 0) return false; /* "//" */
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return false;
		p += n;
		if (*p == '/') p++;
	}
	return true;
}

static int write_header(cpio_writer *w, const char *name, uint32_t mode, uint32_t nlink, uint64_t size,
			unsigned rmajor, unsigned rminor) {
	if (w->finished) return -EBADF;
	if (size > UINT32_MAX) return -EFBIG; /* newc stores the size in 8 hex digits */
	size_t namesize = strlen(name) + 1;
	char hdr[CPIO_HEADER_SIZE + 1];
	int n = snprintf(hdr, sizeof hdr, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			 w->next_ino, mode, 0u, 0u, nlink, 0u, (uint32_t)size, 0u, 0u, rmajor, rminor,
			 (uint32_t)namesize, 0u);
	if (n != CPIO_HEADER_SIZE) return -EINVAL;
	w->next_ino++;
	int r = emit(w, hdr, CPIO_HEADER_SIZE);
	if (r < 0) return r;
	r = emit(w, name, namesize);
	if (r < 0) return r;
	return pad4(w);
}

int cpio_add_dir(cpio_writer *w, const char *path, mode_t mode) {
	if (!w || !path || !path_valid(path)) return -EINVAL;
	return write_header(w, path, S_IFDIR | (mode & 07777), 2, 0, 0, 0);
}

int cpio_add_file(cpio_writer *w, const char *path, mode_t mode, const void *data, size_t len) {
	if (!w || !path || !path_valid(path) || (len && !data)) return -EINVAL;
	int r = write_header(w, path, S_IFREG | (mode & 07777), 1, len, 0, 0);
	if (r < 0) return r;
	if (len) {
		r = emit(w, data, len);
		if (r < 0) return r;
	}
	return pad4(w);
}

int cpio_add_file_fd(cpio_writer *w, const char *path, mode_t mode, int fd, uint64_t len) {
	if (!w || !path || !path_valid(path) || fd < 0) return -EINVAL;
	int r = write_header(w, path, S_IFREG | (mode & 07777), 1, len, 0, 0);
	if (r < 0) return r;
	uint8_t buf[65536];
	uint64_t left = len;
	while (left > 0) {
		ssize_t n = read(fd, buf, (size_t)MIN(left, (uint64_t)sizeof buf));
		if (n < 0) {
			if (errno == EINTR) continue;
			return negerrno();
		}
		if (n == 0) return -EPIPE; /* the file shrank under us: the header already promised len bytes */
		r = emit(w, buf, (size_t)n);
		if (r < 0) return r;
		left -= (uint64_t)n;
	}
	return pad4(w);
}

int cpio_add_symlink(cpio_writer *w, const char *path, const char *target) {
	if (!w || !path || !target || !path_valid(path)) return -EINVAL;
	size_t len = strnlen(target, CPIO_PATH_MAX);
	if (len == 0 || len >= CPIO_PATH_MAX) return -EINVAL;
	int r = write_header(w, path, S_IFLNK | 0777, 1, len, 0, 0);
	if (r < 0) return r;
	r = emit(w, target, len);
	if (r < 0) return r;
	return pad4(w);
}

int cpio_add_node(cpio_writer *w, const char *path, mode_t type_and_mode, unsigned major, unsigned minor) {
	if (!w || !path || !path_valid(path)) return -EINVAL;
	mode_t type = type_and_mode & S_IFMT;
	if (type != S_IFCHR && type != S_IFBLK) return -EINVAL;
	return write_header(w, path, type | (type_and_mode & 07777), 1, 0, major, minor);
}

int64_t cpio_finish(cpio_writer *w) {
	if (!w) return -EINVAL;
	/* The trailer conventionally has inode 0 like GNU cpio writes it; nothing reads it. */
	uint32_t saved = w->next_ino;
	w->next_ino = 0;
	int r = write_header(w, "TRAILER!!!", 0, 1, 0, 0, 0);
	w->next_ino = saved;
	if (r < 0) return r;
	w->finished = true;
	return (int64_t)w->offset;
}

/* --- directory trees --- */

struct tree_entry {
	char *path; /* relative to the root */
	mode_t type;
	bool exec;
	uint64_t size;
};

struct tree {
	struct tree_entry *entries;
	size_t n, cap;
};

static void tree_done(struct tree *t) {
	for (size_t i = 0; i < t->n; i++) free(t->entries[i].path);
	free(t->entries);
}

static int tree_add(struct tree *t, char *path, const struct stat *st) {
	if (t->n >= CPIO_TREE_MAX_ENTRIES) return -E2BIG;
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 64;
		struct tree_entry *ne = realloc(t->entries, ncap * sizeof *ne);
		if (!ne) return -ENOMEM;
		t->entries = ne;
		t->cap = ncap;
	}
	t->entries[t->n++] = (struct tree_entry){
		.path = path,
		.type = st->st_mode & S_IFMT,
		.exec = (st->st_mode & 0111) != 0,
		.size = (uint64_t)st->st_size,
	};
	return 0;
}

static int walk(int rootfd, const char *rel, int depth, struct tree *t) {
	if (depth > CPIO_TREE_MAX_DEPTH) return -ELOOP;
	int dfd = rel ? openat(rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
		      : openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) return negerrno();
	DIR *d = fdopendir(dfd);
	if (!d) {
		int r = negerrno();
		close(dfd);
		return r;
	}
	int r = 0;
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = negerrno();
			break;
		}
		char *path = NULL;
		if (asprintf(&path, "%s%s%s", rel ? rel : "", rel ? "/" : "", de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		mode_t type = st.st_mode & S_IFMT;
		if ((type != S_IFDIR && type != S_IFREG && type != S_IFLNK) || !path_valid(path)) {
			free(path);
			r = -EINVAL;
			break;
		}
		r = tree_add(t, path, &st);
		if (r < 0) {
			free(path);
			break;
		}
		if (type == S_IFDIR) {
			r = walk(rootfd, path, depth + 1, t);
			if (r < 0) break;
		}
	}
	if (r == 0 && errno != 0) r = negerrno();
	closedir(d);
	return r;
}

static int entry_cmp(const void *a, const void *b) {
	return strcmp(((const struct tree_entry *)a)->path, ((const struct tree_entry *)b)->path);
}

static int write_entry(cpio_writer *w, int rootfd, const struct tree_entry *e) {
	switch (e->type) {
	case S_IFDIR:
		return cpio_add_dir(w, e->path, 0755);
	case S_IFLNK: {
		char target[CPIO_PATH_MAX];
		ssize_t n = readlinkat(rootfd, e->path, target, sizeof target);
		if (n < 0) return negerrno();
		if ((size_t)n >= sizeof target) return -ENAMETOOLONG;
		target[n] = 0;
		return cpio_add_symlink(w, e->path, target);
	}
	default: {
		_cleanup_close_ int fd = openat(rootfd, e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) return negerrno();
		struct stat st;
		if (fstat(fd, &st) < 0) return negerrno();
		if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size) return -ESTALE; /* changed while walking */
		return cpio_add_file_fd(w, e->path, e->exec ? 0755 : 0644, fd, e->size);
	}
	}
}

int cpio_write_tree(const char *dir, int fd) {
	if (!dir || fd < 0) return -EINVAL;
	_cleanup_close_ int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) return negerrno();
	_cleanup_cpio_writer_ cpio_writer *w = NULL;
	struct tree t = {0};
	int r = walk(rootfd, NULL, 0, &t);
	if (r < 0) goto done;
	if (t.n) qsort(t.entries, t.n, sizeof *t.entries, entry_cmp);
	r = cpio_writer_new(fd, &w);
	if (r < 0) goto done;
	for (size_t i = 0; i < t.n && r == 0; i++) r = write_entry(w, rootfd, &t.entries[i]);
	if (r == 0) {
		int64_t total = cpio_finish(w);
		if (total < 0) r = (int)total;
	}
done:
	tree_done(&t);
	return r;
}
