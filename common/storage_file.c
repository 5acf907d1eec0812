/* file:// storage: one file per object under a root directory.
 *
 * Every path is resolved from a descriptor of the root, one component at a time with
 * O_NOFOLLOW, so neither a planted symbolic link nor a racing rename can lead a read or a
 * write outside the root. Writes go to a temporary file in the object's own directory
 * (names starting with '.', which no valid key can address), are fsynced, and then appear
 * atomically: rename() for put, link() for create-if-absent (link fails when the name exists,
 * so of several concurrent creators exactly one publishes its bytes; the others compare). */
#include "storage.h"

#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct file_storage {
    storage base;
    int root_fd;
} file_storage;

/* Bounds a single read(2)/write(2) so huge objects make progress in sane steps. */
#define IO_CHUNK (1u << 20)


static int report_errno(int e, const char *what, const char *key, error *err)
{
    if (e == ENOENT || e == ENOTDIR)
        return error_status(err, STORAGE_NOT_FOUND, "object %s not found", key);
    if (e == ELOOP)
        return error_status(err, STORAGE_ERROR, "%s %s: refusing to follow a symbolic link",
                            what, key);
    return error_status(err, STORAGE_ERROR, "%s %s: %s", what, key, strerror(e));
}

/* Reads at most `limit` bytes; returns the count, or -1 with errno. */
static ssize_t read_up_to(int fd, uint8_t *data, size_t limit)
{
    size_t got = 0;
    while (got < limit) {
        size_t want = limit - got < IO_CHUNK ? limit - got : IO_CHUNK;
        ssize_t n = read(fd, data + got, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Opens the regular file `leaf` in dir_fd for reading, without following a link and without
 * blocking on a planted FIFO. */
static int open_regular(int dir_fd, const char *leaf, const char *key, struct stat *st,
                        int *fd_out, error *err)
{
    int fd = openat(dir_fd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return report_errno(errno, "opening", key, err);
    if (fstat(fd, st) != 0) {
        int e = errno;
        close(fd);
        return report_errno(e, "inspecting", key, err);
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        if (S_ISDIR(st->st_mode))
            return error_status(err, STORAGE_NOT_FOUND, "object %s not found (it is a directory)",
                                key);
        return error_status(err, STORAGE_ERROR, "object %s is not a regular file", key);
    }
    *fd_out = fd;
    return STORAGE_OK;
}

/* Walks to the directory holding `key` without creating anything. On success *dir_fd is
 * that directory (the root's descriptor itself, or one the caller closes) and *leaf points
 * into key at the object's own name. */
static int open_parent_readonly(const file_storage *fs, const char *key, int *dir_fd,
                                const char **leaf, error *err)
{
    int fd = fs->root_fd;
    const char *segment = key;
    for (;;) {
        const char *slash = strchr(segment, '/');
        if (!slash)
            break;
        char name[STORAGE_KEY_MAX + 1];
        size_t n = (size_t)(slash - segment);
        memcpy(name, segment, n);
        name[n] = 0;
        int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        if (fd != fs->root_fd)
            close(fd);
        if (next < 0)
            return report_errno(e, "opening directory of", key, err);
        fd = next;
        segment = slash + 1;
    }
    *dir_fd = fd;
    *leaf = segment;
    return STORAGE_OK;
}

static void close_dir(const file_storage *fs, int fd)
{
    if (fd >= 0 && fd != fs->root_fd)
        close(fd);
}

static int file_get(storage *s, const char *key, size_t max_len, buffer *out, error *err)
{
    file_storage *fs = (file_storage *)s;
    int dir_fd;
    const char *leaf;
    int rc = open_parent_readonly(fs, key, &dir_fd, &leaf, err);
    if (rc != STORAGE_OK)
        return rc;
    int fd;
    struct stat st;
    rc = open_regular(dir_fd, leaf, key, &st, &fd, err);
    close_dir(fs, dir_fd);
    if (rc != STORAGE_OK)
        return rc;
    if ((uint64_t)st.st_size > max_len) {
        close(fd);
        return error_status(err, STORAGE_ERROR,
                            "object %s is %" PRIu64 " bytes, over the %zu-byte limit", key,
                            (uint64_t)st.st_size, max_len);
    }
    /* Objects are replaced by rename, never grown in place; reading one byte past the
     * expected end still catches a file that changed under us. */
    size_t limit = (size_t)st.st_size + 1;
    if (buffer_reserve(out, limit) != 0) {
        close(fd);
        return error_status(err, STORAGE_ERROR, "reading %s: out of memory", key);
    }
    ssize_t n = read_up_to(fd, out->data, limit);
    int e = errno;
    close(fd);
    if (n < 0)
        return error_status(err, STORAGE_ERROR, "reading %s: %s", key, strerror(e));
    if ((size_t)n > max_len)
        return error_status(err, STORAGE_ERROR, "object %s grew over the %zu-byte limit while read",
                            key, max_len);
    out->len = (size_t)n;
    return STORAGE_OK;
}

static int file_remove(storage *s, const char *key, error *err)
{
    file_storage *fs = (file_storage *)s;
    int dir_fd;
    const char *leaf;
    int rc = open_parent_readonly(fs, key, &dir_fd, &leaf, err);
    if (rc == STORAGE_NOT_FOUND) {
        error_clear(err);
        return STORAGE_OK;
    }
    if (rc != STORAGE_OK)
        return rc;
    /* No directory fsync: deletes only drop staging bundles, and a bundle that comes back
     * after a crash is ignored by recovery unless the lock is ahead of the public tree. */
    if (unlinkat(dir_fd, leaf, 0) != 0 && errno != ENOENT) {
        int e = errno;
        close_dir(fs, dir_fd);
        return report_errno(e, "deleting", key, err);
    }
    close_dir(fs, dir_fd);
    return STORAGE_OK;
}

/* ---- batch writes ---- */

/* The directories one batch touches, opened once each and fsynced once each at the end. */
typedef struct dir_entry {
    const char *path; /* points into a key; the prefix of length path_len */
    size_t path_len;
    int fd;
    bool dirty; /* entries were added or renamed: fsync before reporting success */
} dir_entry;

typedef struct dir_set {
    dir_entry *items; /* items[0] is the root */
    size_t len, cap;
} dir_set;

static int dir_set_add(dir_set *set, const char *path, size_t path_len, int fd)
{
    if (set->len == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 16;
        dir_entry *items = realloc(set->items, cap * sizeof *items);
        if (!items)
            return -1;
        set->items = items;
        set->cap = cap;
    }
    set->items[set->len++] = (dir_entry){path, path_len, fd, false};
    return 0;
}

/* Index in set of the directory key[0, dir_len), creating it (and its parents) if missing. */
static int dir_set_open(dir_set *set, const char *key, size_t dir_len, size_t *index, error *err)
{
    for (size_t i = 0; i < set->len; i++) {
        if (set->items[i].path_len == dir_len && memcmp(set->items[i].path, key, dir_len) == 0) {
            *index = i;
            return STORAGE_OK;
        }
    }
    size_t parent_len = dir_len;
    while (parent_len > 0 && key[parent_len - 1] != '/')
        parent_len--;
    const char *segment = key + parent_len;
    size_t segment_len = dir_len - parent_len;
    if (parent_len > 0)
        parent_len--; /* drop the separator */
    size_t parent;
    int rc = dir_set_open(set, key, parent_len, &parent, err);
    if (rc != STORAGE_OK)
        return rc;
    char name[STORAGE_KEY_MAX + 1];
    memcpy(name, segment, segment_len);
    name[segment_len] = 0;
    int parent_fd = set->items[parent].fd;
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (mkdirat(parent_fd, name, 0755) == 0)
            set->items[parent].dirty = true; /* the new entry must survive a crash */
        else if (errno != EEXIST)
            return error_status(err, STORAGE_ERROR, "creating directory for %s: %s", key,
                                strerror(errno));
        fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            return error_status(err, STORAGE_ERROR,
                                "directory for %s: refusing to follow a symbolic link", key);
        if (e == ENOTDIR)
            return error_status(err, STORAGE_ERROR,
                                "directory for %s: a path component is not a directory", key);
        return error_status(err, STORAGE_ERROR, "opening directory for %s: %s", key, strerror(e));
    }
    if (dir_set_add(set, key, dir_len, fd) != 0) {
        close(fd);
        return error_status(err, STORAGE_ERROR, "out of memory");
    }
    *index = set->len - 1;
    return STORAGE_OK;
}

/* Writes data to a fresh temporary file in dir_fd and fsyncs it. */
static int temp_write(int dir_fd, char name[TEMP_NAME_MAX], const void *data, size_t len,
                      const char *key, error *err)
{
    const char *step;
    if (temp_file_write_synced(dir_fd, "", 0644, data, len, name, &step) != 0)
        return error_status(err, STORAGE_ERROR, "%s temporary file for %s: %s", step, key,
                            strerror(errno));
    return STORAGE_OK;
}

/* Compares the object already published at leaf with the bytes a creator wanted. */
static int compare_existing(int dir_fd, const char *leaf, const char *key, const void *data,
                            size_t len, error *err)
{
    int fd;
    struct stat st;
    int rc = open_regular(dir_fd, leaf, key, &st, &fd, err);
    if (rc != STORAGE_OK)
        return rc == STORAGE_NOT_FOUND ? STORAGE_ERROR : rc;
    if ((uint64_t)st.st_size != len) {
        close(fd);
        return error_status(err, STORAGE_CONFLICT,
                            "object %s already exists with different content", key);
    }
    uint8_t *chunk = malloc(len < IO_CHUNK ? (len ? len : 1) : IO_CHUNK);
    if (!chunk) {
        close(fd);
        return error_status(err, STORAGE_ERROR, "comparing %s: out of memory", key);
    }
    const uint8_t *want = data;
    size_t done = 0;
    rc = STORAGE_OK;
    while (rc == STORAGE_OK && done < len) {
        size_t step = len - done < IO_CHUNK ? len - done : IO_CHUNK;
        ssize_t n = read_up_to(fd, chunk, step);
        if (n < 0)
            rc = error_status(err, STORAGE_ERROR, "reading %s: %s", key, strerror(errno));
        else if ((size_t)n != step || memcmp(chunk, want + done, step) != 0)
            rc = error_status(err, STORAGE_CONFLICT,
                              "object %s already exists with different content", key);
        done += step;
    }
    free(chunk);
    close(fd);
    return rc;
}

/* Makes one fsynced temporary file visible under its key. */
static int publish(dir_entry *dir, const char *temp, const char *leaf, const storage_object *o,
                   error *err)
{
    int rc = STORAGE_OK;
    if (o->mode == STORAGE_PUT) {
        if (renameat(dir->fd, temp, dir->fd, leaf) != 0) {
            rc = error_status(err, STORAGE_ERROR, "renaming into %s: %s", o->key, strerror(errno));
            unlinkat(dir->fd, temp, 0);
        }
    } else {
        if (linkat(dir->fd, temp, dir->fd, leaf, 0) != 0) {
            if (errno == EEXIST)
                rc = compare_existing(dir->fd, leaf, o->key, o->data, o->len, err);
            else
                rc = error_status(err, STORAGE_ERROR, "linking %s: %s", o->key, strerror(errno));
        }
        unlinkat(dir->fd, temp, 0);
    }
    /* Also after an identical existing object: its creator may not have synced the
     * directory yet, and we are about to promise durability. */
    dir->dirty = true;
    return rc;
}

static int worse(int a, int b)
{
    if (a == STORAGE_ERROR || b == STORAGE_ERROR)
        return STORAGE_ERROR;
    return a != STORAGE_OK ? a : b;
}

typedef struct pending_write {
    size_t dir;
    const char *leaf;
    char temp[TEMP_NAME_MAX];
    bool temp_exists;
} pending_write;

static int file_write_batch(storage *s, const storage_object *objects, size_t count, int *results,
                            error *err)
{
    file_storage *fs = (file_storage *)s;
    dir_set dirs = {0};
    pending_write *pending = calloc(count, sizeof *pending);
    int *status = calloc(count, sizeof *status);
    int rc = STORAGE_OK;
    bool have_error = false;
    if (!pending || !status || dir_set_add(&dirs, "", 0, fs->root_fd) != 0) {
        rc = error_status(err, STORAGE_ERROR, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < count; i++)
        status[i] = STORAGE_ERROR;

    /* Phase 1: every object's bytes on disk, each file fsynced once. */
    for (size_t i = 0; i < count; i++) {
        const char *key = objects[i].key;
        const char *slash = strrchr(key, '/');
        size_t dir_len = slash ? (size_t)(slash - key) : 0;
        pending[i].leaf = slash ? slash + 1 : key;
        rc = dir_set_open(&dirs, key, dir_len, &pending[i].dir, err);
        if (rc == STORAGE_OK)
            rc = temp_write(dirs.items[pending[i].dir].fd, pending[i].temp, objects[i].data,
                            objects[i].len, key, err);
        if (rc != STORAGE_OK) {
            rc = STORAGE_ERROR;
            goto done;
        }
        pending[i].temp_exists = true;
    }

    /* Phase 2: publish. Objects are independent: a conflict on one does not stop the rest. */
    for (size_t i = 0; i < count; i++) {
        error one;
        error_clear(&one);
        status[i] = publish(&dirs.items[pending[i].dir], pending[i].temp, pending[i].leaf,
                            &objects[i], &one);
        pending[i].temp_exists = false;
        if (status[i] != STORAGE_OK && !have_error) {
            have_error = true;
            error_set(err, "%s", one.msg);
        }
        rc = worse(rc, status[i]);
    }

    /* Phase 3: each touched directory fsynced once makes every rename/link durable. */
    for (size_t d = 0; d < dirs.len; d++) {
        if (!dirs.items[d].dirty || fsync(dirs.items[d].fd) == 0)
            continue;
        int e = errno;
        if (!have_error)
            error_set(err, "syncing directory %.*s of the store: %s",
                      (int)dirs.items[d].path_len, dirs.items[d].path, strerror(e));
        have_error = true;
        rc = STORAGE_ERROR;
        for (size_t i = 0; i < count; i++)
            if (status[i] == STORAGE_OK)
                status[i] = STORAGE_ERROR;
    }

done:
    if (pending) {
        for (size_t i = 0; i < count; i++)
            if (pending[i].temp_exists)
                unlinkat(dirs.items[pending[i].dir].fd, pending[i].temp, 0);
    }
    for (size_t d = 1; d < dirs.len; d++)
        close(dirs.items[d].fd);
    if (results)
        for (size_t i = 0; i < count; i++)
            results[i] = status ? status[i] : STORAGE_ERROR;
    free(dirs.items);
    free(pending);
    free(status);
    return rc;
}

static void file_close(storage *s)
{
    file_storage *fs = (file_storage *)s;
    close(fs->root_fd);
    free(fs);
}

static const storage_backend file_backend = {
    .scheme = "file",
    .write_batch = file_write_batch,
    .get = file_get,
    .remove = file_remove,
    .close = file_close,
};

storage *storage_file_open(const char *path, error *err)
{
    if (!path || path[0] != '/')
        return error_set(err, "file storage needs an absolute directory path"), NULL;
    if (strlen(path) > 4000)
        return error_set(err, "file storage path too long"), NULL;
    if (directories_create(path, strlen(path), err) != 0)
        return NULL;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return error_set(err, "opening storage directory %s: %s", path, strerror(errno)), NULL;
    file_storage *fs = calloc(1, sizeof *fs);
    if (!fs) {
        close(fd);
        return error_set(err, "out of memory"), NULL;
    }
    fs->base.backend = &file_backend;
    fs->root_fd = fd;
    return &fs->base;
}
