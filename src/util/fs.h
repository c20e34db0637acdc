/* fs.h - the local filesystem helpers every writer of table files shares:
 * mkdir -p and fsync of a directory (so a new file's name is durable before
 * a commit names it). */
#ifndef CF_FS_H
#define CF_FS_H

#include <stddef.h>
#include "util/err.h"

/* Create `path` and its missing parents (mode 0777 less the umask).  0, or -1 with
 * CF_E_IO naming the directory that could not be made (CF_E_ARG: too long). */
int cf_fs_mkdirs(const char *path, cf_err *err);
/* fsync the directory `dir`.  -1 with CF_E_IO on failure. */
int cf_fs_fsync_dir(const char *dir, cf_err *err);
/* fsync the directory holding `path`. */
int cf_fs_fsync_parent(const char *path, cf_err *err);
/* fsync every directory from the one holding each of paths[0..n) up to
 * and including `root` (each once), so that new files and the directories
 * made for them are named durably.  Paths outside root: their directory
 * only. */
/* write(2) all n bytes, going on after EINTR and short writes.  0, or -1
 * with errno set. */
int cf_fs_write_all(int fd, const void *p, size_t n);
int cf_fs_fsync_dirs_up_to(const char *root, char *const *paths, size_t n, cf_err *err);

#endif
