#include "log_source.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gzip.h"
#include "storage.h"

/* Tiles are ≤ a few MB; anything bigger than this is not a log object. */
#define MAX_OBJECT_BYTES (64u << 20)

struct log_source {
    char *base; /* directory path, or URL prefix ending in '/' */
    CURL *curl; /* NULL for directories; reused so connections are kept alive */
    storage *store; /* s3:// buckets, read through the storage layer (signed requests) */
};

static bool is_http(const char *url)
{
    return strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
}

log_source *log_source_open(const char *url, error *err)
{
    log_source *src = calloc(1, sizeof *src);
    if (!src) {
        error_set(err, "out of memory");
        return NULL;
    }
    if (strncmp(url, "s3://", 5) == 0) {
        /* The bucket may be private: only the storage layer signs its requests. */
        src->store = storage_open(url, err);
        if (!src->store) {
            log_source_close(src);
            return NULL;
        }
        return src;
    }
    if (is_http(url)) {
        size_t n = strlen(url);
        src->base = malloc(n + 2);
        src->curl = curl_easy_init();
        if (!src->base || !src->curl) {
            log_source_close(src);
            error_set(err, "cannot initialise HTTP client");
            return NULL;
        }
        memcpy(src->base, url, n + 1);
        if (n == 0 || url[n - 1] != '/')
            strcat(src->base, "/");
        return src;
    }
    const char *dir = strncmp(url, "file://", 7) == 0 ? url + 7 : url;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        log_source_close(src);
        error_set(err, "%s: not a directory, http(s) or s3 URL", url);
        return NULL;
    }
    src->base = strdup(dir);
    return src;
}

void log_source_close(log_source *src)
{
    if (!src)
        return;
    if (src->curl)
        curl_easy_cleanup(src->curl);
    if (src->store)
        storage_close(src->store);
    free(src->base);
    free(src);
}

static int read_file(const char *path, buffer *out, error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return LOG_SOURCE_NOT_FOUND;
        return error_set(err, "%s: %s", path, strerror(errno));
    }
    int rc = 0;
    for (;;) {
        if (out->len > MAX_OBJECT_BYTES || buffer_reserve(out, 65536) != 0) {
            rc = error_set(err, "%s: too large", path);
            break;
        }
        ssize_t n = read(fd, out->data + out->len, 65536);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = error_set(err, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        out->len += (size_t)n;
    }
    close(fd);
    return rc;
}

static size_t collect(char *data, size_t size, size_t nmemb, void *userdata)
{
    buffer *out = userdata;
    size_t n = size * nmemb;
    if (out->len + n > MAX_OBJECT_BYTES || buffer_append(out, data, n) != 0)
        return 0;
    return n;
}

static int fetch_http(log_source *src, const char *key, buffer *out, error *err)
{
    char url[4096];
    if ((size_t)snprintf(url, sizeof url, "%s%s", src->base, key) >= sizeof url)
        return error_set(err, "URL too long");
    CURL *c = src->curl;
    struct curl_slist *headers = curl_slist_append(NULL, "Accept-Encoding: gzip, identity");
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode res = curl_easy_perform(c);
    curl_slist_free_all(headers);
    if (res != CURLE_OK)
        return error_set(err, "GET %s: %s", url, curl_easy_strerror(res));
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status == 404)
        return LOG_SOURCE_NOT_FOUND;
    if (status != 200)
        return error_set(err, "GET %s: HTTP %ld", url, status);
    return 0;
}

int log_source_get(log_source *src, const char *key, buffer *out, error *err)
{
    buffer_reset(out);
    int rc;
    if (src->store) {
        rc = storage_get(src->store, key, MAX_OBJECT_BYTES, out, err);
        if (rc == STORAGE_NOT_FOUND)
            rc = LOG_SOURCE_NOT_FOUND;
        else if (rc != 0)
            rc = -1;
    } else if (src->curl) {
        rc = fetch_http(src, key, out, err);
    } else {
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", src->base, key) >= sizeof path)
            return error_set(err, "path too long");
        rc = read_file(path, out, err);
    }
    if (rc != 0 || !gzip_is_gzip(out->data, out->len))
        return rc;
    /* Data tiles are stored and served gzip'd; a client must accept that unasked. */
    buffer plain = {0};
    if (gzip_decompress(out->data, out->len, MAX_OBJECT_BYTES, &plain, err) != 0) {
        buffer_free(&plain);
        return error_wrap(err, "%s", key);
    }
    buffer_free(out);
    *out = plain;
    return 0;
}
