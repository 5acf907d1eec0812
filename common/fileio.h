/* fileio: the POSIX steps every durable writer repeats (storage, lock, key and CA files):
 * writing a whole buffer through short writes and EINTR, and writing a fresh temporary file
 * that is fsynced before it is renamed or linked into place. */
#ifndef TEGULA_FILEIO_H
#define TEGULA_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

#define TEMP_NAME_MAX 96

/* Writes all of data to fd. Returns 0, or -1 with errno set. */
int fd_write_all(int fd, const void *data, size_t len);

/* Creates a new file `<prefix>.tmp-<pid>-<counter>-<random>` in dir_fd (O_EXCL, never through
 * a symlink) with the given mode, writes data, fsyncs and closes it. Its name goes to `name`.
 * Returns 0, or -1 with errno set and *step naming what failed ("creating", "writing",
 * "syncing", "closing"); on failure nothing is left behind. An empty prefix gives names that
 * start with '.', which storage keys can never address. */
int temp_file_write_synced(int dir_fd, const char *prefix, mode_t mode, const void *data,
                           size_t len, char name[TEMP_NAME_MAX], const char **step);

/* mkdir -p of path[0, len): every missing component is created (mode 0755). */
int directories_create(const char *path, size_t len, error *err);

#endif
