/* log_source: read-only access to a published log's objects (checkpoint, tiles, issuers),
 * from a directory, an http(s) monitoring prefix or an s3:// bucket (signed reads through
 * the storage layer, credentials from the environment as for the log itself). Content stored or served gzip'd (data
 * tiles) is returned decompressed. Used by fsck and the load generator. */
#ifndef TEGULA_LOG_SOURCE_H
#define TEGULA_LOG_SOURCE_H

#include "buffer.h"
#include "error.h"

#define LOG_SOURCE_NOT_FOUND 1

typedef struct log_source log_source;

/* url: "http://…/", "https://…/", "s3://bucket/prefix?…" (as in storage.h), "file:///dir"
 * or a plain directory path. */
log_source *log_source_open(const char *url, error *err);
/* Replaces out's content with the object. Returns 0, LOG_SOURCE_NOT_FOUND or -1. */
int log_source_get(log_source *src, const char *key, buffer *out, error *err);
void log_source_close(log_source *src);

#endif
