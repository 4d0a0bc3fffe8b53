/*
 * fs.h: the file-system helpers every layer needs, written once: complete writes, mkdir -p,
 * rm -rf without following symlinks, atomic replacement of a file (temp beside it, fsync,
 * rename, fsync of the directory), and opening a path confined below a root directory (no
 * symlink, no `..`, so a hostile path can never write outside the root).
 * Role: base layer. Prerequisites: POSIX (openat family).
 */
#ifndef PB_FS_H
#define PB_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "plexburst/errors.h"

/** Writes all `n` bytes to `fd` (retrying short writes and EINTR); PB_EIO with `what`. */
int pb_fs_write_all(int fd, const void *data, size_t n, const char *what, pb_error *err);

/** mkdir -p with `mode` for the directories it creates. */
int pb_fs_mkdirs(const char *path, mode_t mode, pb_error *err);

/*
 * Ownership of what is written into a directory tree owned by someone else (a Plex data dir
 * written by root): every file or directory created or replaced there takes the owner, group
 * and permission bits of what it replaces, or of the directory it is created in (for a file
 * without the execute bits: a 0755 directory gives 0644). The owner is only changed when running
 * as root (another user cannot give a file away); the mode always.
 */

/** Gives the file or directory open at `fd` the owner, group and mode of `ref`: the stat of what
 * it replaces, or (`ref_is_parent`) of the directory it is created in, whose mode a file takes
 * without the execute bits. `what` names it in errors. */
int pb_fs_inherit_fd(int fd, const struct stat *ref, int ref_is_parent, const char *what,
                     pb_error *err);

/** pb_fs_inherit_fd for `path` (never through a symlink): `like` is the path it replaces; when
 * `like` does not exist, the directory holding `like` is the reference; `like` NULL: the
 * directory holding `path`. */
int pb_fs_inherit(const char *path, const char *like, pb_error *err);

/** mkdir -p where every directory it creates takes the owner, group and mode of its parent. */
int pb_fs_mkdirs_inherit(const char *path, pb_error *err);

/** rm -rf that never follows a symlink (a link is removed, not its target). 0, or -1 with
 * errno set; an absent path is not an error. */
int pb_fs_rmtree(const char *path);

/** 1 when `path` exists (lstat), else 0. */
int pb_fs_exists(const char *path);

/** The size of a regular file, 0 when it cannot be stat'ed. */
uint64_t pb_fs_size(const char *path);

/** fsyncs the directory `dir` (best effort: errors are ignored, as on file systems without
 * directory fsync). */
void pb_fs_sync_dir(const char *dir);

/**
 * An atomic replacement in progress: bytes go to `<path>.pb-tmp`, which pb_fs_atomic_commit
 * fsyncs and renames onto `path` (then fsyncs the directory); pb_fs_atomic_abort removes it.
 * Readers see the old file or the whole new one, never a part.
 */
typedef struct pb_fs_atomic {
    int fd;     /* write here */
    char *path; /* the final name */
    char *tmp;  /* the temporary name */
} pb_fs_atomic;

/** Creates the temporary file with `mode` (0600 for anything private). Release with commit or
 * abort, exactly once. */
int pb_fs_atomic_open(pb_fs_atomic *a, const char *path, mode_t mode, pb_error *err);
int pb_fs_atomic_commit(pb_fs_atomic *a, pb_error *err);
/** Removes the temporary file; accepts an atomic that was never opened (fd -1, NULL names). */
void pb_fs_atomic_abort(pb_fs_atomic *a);

/** Replaces `path` atomically with `n` bytes from memory. */
int pb_fs_write_file(const char *path, const void *data, size_t n, mode_t mode, pb_error *err);

/** Reads a whole small file (at most `max` bytes, else PB_ENOMEM) into a malloc'd,
 * NUL-terminated buffer; PB_ENOTFOUND when absent. */
int pb_fs_read_file(char **out, size_t *n, const char *path, size_t max, pb_error *err);

/** Copies `src` to `dst` atomically (dst replaced, mode 0600). */
int pb_fs_copy(const char *src, const char *dst, pb_error *err);

/**
 * Opens the directory that holds `path` (a relative '/'-separated path) below the directory fd
 * `root_fd`, component by component with O_NOFOLLOW, so that nothing outside the root is ever
 * reached. A missing component is created (0755) after `mkdir_cb(payload, its relative path)`
 * returns 0 (the caller journals what it creates); with no callback it is PB_ENOTFOUND.
 * @param out   OUT: an fd of the parent directory (caller closes).
 * @param name  OUT, optional: the last component of `path` (points into `path`).
 * @return 0; PB_EUNSAFE when a component is a symlink or empty; PB_ECONFLICT when one is not
 *         a directory; PB_ENOTFOUND; PB_EIO.
 */
int pb_fs_open_parent(int *out, const char **name, int root_fd, const char *path,
                      int (*mkdir_cb)(void *payload, const char *dir, pb_error *err), void *payload,
                      pb_error *err);

#endif
