#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <unistd.h>

/* Large writes go in chunks so one call never asks the kernel for gigabytes at once. */
#define WRITE_CHUNK (1u << 20)

static atomic_uint_fast64_t temp_counter;

int fd_write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len < WRITE_CHUNK ? len : WRITE_CHUNK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void temp_name_make(char name[TEMP_NAME_MAX], const char *prefix)
{
    uint64_t counter = atomic_fetch_add(&temp_counter, 1);
    uint32_t salt = 0;
    /* The salt keeps names apart across pid namespaces sharing one volume; O_EXCL makes a
     * collision a retry, not a clash, so a failed getrandom is harmless. */
    if (getrandom(&salt, sizeof salt, GRND_NONBLOCK) != (ssize_t)sizeof salt)
        salt = 0;
    snprintf(name, TEMP_NAME_MAX, "%.40s.tmp-%ld-%" PRIu64 "-%08" PRIx32, prefix, (long)getpid(),
             counter, salt);
}

int temp_file_write_synced(int dir_fd, const char *prefix, mode_t mode, const void *data,
                           size_t len, char name[TEMP_NAME_MAX], const char **step)
{
    int fd = -1;
    for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
        temp_name_make(name, prefix);
        fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        *step = "creating";
        return -1;
    }
    *step = "writing";
    if (fd_write_all(fd, data, len) != 0)
        goto fail;
    *step = "syncing";
    if (fsync(fd) != 0)
        goto fail;
    *step = "closing";
    int closed = close(fd);
    fd = -1;
    if (closed != 0)
        goto fail;
    return 0;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlinkat(dir_fd, name, 0);
    errno = e;
    return -1;
}

int directories_create(const char *path, size_t len, error *err)
{
    char dir[4096];
    if (len == 0 || len >= sizeof dir)
        return error_set(err, "directory path of %zu bytes", len);
    memcpy(dir, path, len);
    dir[len] = 0;
    for (size_t i = 1; i <= len; i++) {
        if (dir[i] != '/' && dir[i] != 0)
            continue;
        char saved = dir[i];
        dir[i] = 0;
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return error_set(err, "creating directory %s: %s", dir, strerror(errno));
        dir[i] = saved;
    }
    return 0;
}
