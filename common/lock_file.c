/* file:// lock: the content lives in one small file that is only ever replaced whole
 * (temporary file, fsync, rename, fsync directory), so a reader always sees one complete
 * version. Writers serialize on flock(2) of a sidecar "<lock>.flock": the lock file itself
 * cannot carry the flock because every write replaces its inode. flock is per open file
 * description, so each operation opens the sidecar afresh: that serializes threads of one
 * process as well as processes.
 *
 * The holder claim is a second sidecar "<lock>.holder", flocked for the life of the handle.
 * The kernel drops it when the process dies, so a crashed sequencer never leaves it stale. */
#include "lock.h"

#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base64.h"
#include "log.h"
#include "sha256.h"

typedef struct file_lock {
    lock base;
    char *path;  /* for messages */
    char *leaf;  /* the lock file's name in dir_fd */
    char *serial_name;
    char *holder_name;
    int dir_fd;
    pthread_mutex_t claim_mutex;
    int holder_fd; /* -1 until claimed */
} file_lock;

static void version_of(const void *data, size_t len, char version[LOCK_VERSION_MAX])
{
    uint8_t digest[SHA256_LEN];
    sha256(data, len, digest);
    hex_encode(version, digest, sizeof digest);
}

static int serial_acquire(file_lock *fl, int *fd_out, error *err)
{
    int fd = openat(fl->dir_fd, fl->serial_name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return error_status(err, LOCK_ERROR, "opening %s.flock: %s", fl->path, strerror(errno));
    while (flock(fd, LOCK_EX) != 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        close(fd);
        return error_status(err, LOCK_ERROR, "locking %s.flock: %s", fl->path, strerror(e));
    }
    *fd_out = fd;
    return LOCK_OK;
}

static void serial_release(int fd)
{
    close(fd); /* drops the flock */
}

static int read_current(file_lock *fl, buffer *content, char version[LOCK_VERSION_MAX],
                        error *err)
{
    int fd = openat(fl->dir_fd, fl->leaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return error_status(err, LOCK_NOT_FOUND, "lock %s does not exist", fl->path);
        return error_status(err, LOCK_ERROR, "opening lock %s: %s", fl->path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > LOCK_CONTENT_MAX) {
        close(fd);
        return error_status(err, LOCK_ERROR, "lock %s is not a regular file of at most %u bytes",
                            fl->path, LOCK_CONTENT_MAX);
    }
    buffer_reset(content);
    /* One byte of slack to notice a file larger than it claimed. */
    if (buffer_reserve(content, (size_t)st.st_size + 1) != 0) {
        close(fd);
        return error_status(err, LOCK_ERROR, "reading lock %s: out of memory", fl->path);
    }
    for (;;) {
        size_t room = (size_t)st.st_size + 1 - content->len;
        if (room == 0) {
            close(fd);
            return error_status(err, LOCK_ERROR, "lock %s changed size while read", fl->path);
        }
        ssize_t n = read(fd, content->data + content->len, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return error_status(err, LOCK_ERROR, "reading lock %s: %s", fl->path, strerror(e));
        }
        if (n == 0)
            break;
        content->len += (size_t)n;
    }
    close(fd);
    if (version)
        version_of(content->data, content->len, version);
    return LOCK_OK;
}

/* Writes a fsynced temporary file beside the lock; its name goes to temp. */
static int temp_write(file_lock *fl, const void *data, size_t len, char temp[TEMP_NAME_MAX],
                      error *err)
{
    const char *step;
    if (temp_file_write_synced(fl->dir_fd, fl->leaf, 0644, data, len, temp, &step) != 0)
        return error_status(err, LOCK_ERROR, "%s temporary file for lock %s: %s", step, fl->path,
                            strerror(errno));
    return LOCK_OK;
}

static int sync_dir(file_lock *fl, error *err)
{
    if (fsync(fl->dir_fd) != 0)
        return error_status(err, LOCK_ERROR,
                            "syncing the directory of lock %s: %s (the write may be lost)",
                            fl->path, strerror(errno));
    return LOCK_OK;
}

static int file_lock_create(lock *l, const void *data, size_t len,
                            char version[LOCK_VERSION_MAX], error *err)
{
    file_lock *fl = (file_lock *)l;
    int serial = -1;
    int rc = serial_acquire(fl, &serial, err);
    if (rc != LOCK_OK)
        return rc;
    char temp[TEMP_NAME_MAX];
    rc = temp_write(fl, data, len, temp, err);
    if (rc == LOCK_OK) {
        /* link() rather than rename(): it cannot replace a lock that appeared meanwhile,
         * even one written by something that ignores our flock. */
        if (linkat(fl->dir_fd, temp, fl->dir_fd, fl->leaf, 0) != 0) {
            if (errno == EEXIST)
                rc = error_status(err, LOCK_CONFLICT, "lock %s already exists", fl->path);
            else
                rc = error_status(err, LOCK_ERROR, "creating lock %s: %s", fl->path,
                                  strerror(errno));
        }
        unlinkat(fl->dir_fd, temp, 0);
        if (rc == LOCK_OK)
            rc = sync_dir(fl, err);
    }
    serial_release(serial);
    if (rc == LOCK_OK && version)
        version_of(data, len, version);
    return rc;
}

static int file_lock_cas(lock *l, const char *expected, const void *data, size_t len,
                         char new_version[LOCK_VERSION_MAX], error *err)
{
    file_lock *fl = (file_lock *)l;
    int serial = -1;
    int rc = serial_acquire(fl, &serial, err);
    if (rc != LOCK_OK)
        return rc;
    buffer current = {0};
    char version[LOCK_VERSION_MAX];
    rc = read_current(fl, &current, version, err);
    buffer_free(&current);
    if (rc == LOCK_OK && strcmp(version, expected) != 0)
        rc = error_status(err, LOCK_CONFLICT,
                          "lock %s changed: stored version %.16s..., expected %.16s...", fl->path,
                          version, expected);
    if (rc == LOCK_OK) {
        char temp[TEMP_NAME_MAX];
        rc = temp_write(fl, data, len, temp, err);
        if (rc == LOCK_OK && renameat(fl->dir_fd, temp, fl->dir_fd, fl->leaf) != 0) {
            rc = error_status(err, LOCK_ERROR, "replacing lock %s: %s", fl->path,
                              strerror(errno));
            unlinkat(fl->dir_fd, temp, 0);
        }
        if (rc == LOCK_OK)
            rc = sync_dir(fl, err);
    }
    serial_release(serial);
    if (rc == LOCK_OK && new_version)
        version_of(data, len, new_version);
    return rc;
}

static int file_lock_read(lock *l, buffer *content, char version[LOCK_VERSION_MAX], error *err)
{
    /* No flock: writers replace the file by rename, so any open sees one whole version. */
    return read_current((file_lock *)l, content, version, err);
}

static int file_lock_claim(lock *l, error *err)
{
    file_lock *fl = (file_lock *)l;
    pthread_mutex_lock(&fl->claim_mutex);
    int rc = LOCK_OK;
    if (fl->holder_fd >= 0)
        goto done;
    int fd = openat(fl->dir_fd, fl->holder_name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = error_status(err, LOCK_ERROR, "opening %s.holder: %s", fl->path, strerror(errno));
        goto done;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        if (e == EWOULDBLOCK) {
            char pid[32] = {0};
            ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
            size_t end = n > 0 ? (size_t)n : 0;
            while (end > 0 && (pid[end - 1] == '\n' || pid[end - 1] == ' '))
                end--;
            pid[end] = 0;
            rc = error_status(err, LOCK_HELD,
                              "lock %s is held by another sequencer (pid %s); refusing to run "
                              "a second one",
                              fl->path, end ? pid : "unknown");
        } else {
            rc = error_status(err, LOCK_ERROR, "claiming %s.holder: %s", fl->path, strerror(e));
        }
        close(fd);
        goto done;
    }
    /* The pid is only for the refusal message above, so it is not fsynced. */
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        log_warn("lock holder pid not recorded; the claim still holds", "path=%s error=\"%s\"",
                 fl->path, strerror(errno));
    fl->holder_fd = fd;
done:
    pthread_mutex_unlock(&fl->claim_mutex);
    return rc;
}

static void file_lock_close(lock *l)
{
    file_lock *fl = (file_lock *)l;
    if (fl->holder_fd >= 0)
        close(fl->holder_fd);
    close(fl->dir_fd);
    pthread_mutex_destroy(&fl->claim_mutex);
    free(fl->path);
    free(fl->serial_name);
    free(fl->holder_name);
    free(fl);
}

static const lock_backend file_lock_backend = {
    .scheme = "file",
    .claim = file_lock_claim,
    .read = file_lock_read,
    .create = file_lock_create,
    .cas = file_lock_cas,
    .close = file_lock_close,
};

static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

lock *lock_file_open(const char *path, error *err)
{
    if (!path || path[0] != '/')
        return error_set(err, "file lock needs an absolute path"), NULL;
    size_t len = strlen(path);
    const char *slash = strrchr(path, '/');
    const char *leaf = slash + 1;
    /* Room for the longest sidecar or temporary-name suffix. */
    if (leaf[0] == 0 || strcmp(leaf, ".") == 0 || strcmp(leaf, "..") == 0 ||
        strlen(leaf) > NAME_MAX - 32 || len >= 4000)
        return error_set(err, "file lock path %s does not name a file", path), NULL;
    size_t dir_len = (size_t)(slash - path);
    if (dir_len > 0 && directories_create(path, dir_len, err) != 0)
        return NULL;
    char dir[4096];
    memcpy(dir, path, dir_len);
    dir[dir_len] = 0;
    int dir_fd = open(dir_len ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return error_set(err, "opening lock directory %s: %s", dir_len ? dir : "/",
                         strerror(errno)),
               NULL;
    file_lock *fl = calloc(1, sizeof *fl);
    if (!fl) {
        close(dir_fd);
        return error_set(err, "out of memory"), NULL;
    }
    fl->base.backend = &file_lock_backend;
    fl->dir_fd = dir_fd;
    fl->holder_fd = -1;
    fl->path = strdup(path);
    fl->serial_name = concat(leaf, ".flock");
    fl->holder_name = concat(leaf, ".holder");
    if (!fl->path || !fl->serial_name || !fl->holder_name ||
        pthread_mutex_init(&fl->claim_mutex, NULL) != 0) {
        close(dir_fd);
        free(fl->path);
        free(fl->serial_name);
        free(fl->holder_name);
        free(fl);
        return error_set(err, "out of memory"), NULL;
    }
    fl->leaf = fl->path + (leaf - path);
    return &fl->base;
}
