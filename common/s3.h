/* s3: a small client for S3-compatible object stores (AWS S3, Cloudflare R2, Ceph RGW, MinIO),
 * the transport under the s3:// storage and lock backends.
 *
 * libcurl signs every request with its built-in AWS SigV4 (CURLOPT_AWS_SIGV4); the client adds
 * what libcurl 7.88 leaves out and S3 servers insist on: an x-amz-content-sha256 header with
 * the payload's hash on every request, and query strings that are already in canonical form
 * (parameters sorted by name, names and values percent-encoded), since libcurl signs the query
 * exactly as written.
 *
 * Transfers run through the curl multi interface, so a batch of requests (a round's tiles)
 * goes out in parallel over up to `connections` kept-alive connections. Connections are kept
 * in per-caller sessions (a multi handle each, never shared by two threads at once: libcurl
 * does not support one connection cache used by concurrent threads) that are pooled, so
 * later calls from any thread reuse warm connections.
 *
 * Failures that may be temporary (no response, 429, 5xx except 501) are retried with
 * exponential backoff and jitter until the retry time budget is spent; everything else (403
 * wrong credentials, 404, 412 failed precondition, ...) is final at once, so a wrong key costs
 * one request, not a storm. When the endpoint's name stops resolving, retries go to the
 * address that last answered (shared by every client of the process), so a DNS outage does
 * not stop a log whose object store is still there.
 *
 * Credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional
 * AWS_SESSION_TOKEN) or from an AWS shared-credentials file named in the URL, never from the
 * URL itself, and never appear in a log line or an error message.
 *
 * Every function is safe to call from several threads at once on one client. */
#ifndef TEGULA_S3_H
#define TEGULA_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "error.h"

#define S3_ETAG_MAX 128
#define S3_MAX_CONNECTIONS 64

typedef struct s3_client s3_client;

/* Opens a client from a URL (nothing is sent until the first request):
 *   s3://BUCKET[/PREFIX][?PARAMS]
 * PREFIX (optional) is put in front of every key ("PREFIX/key"); a lock uses it as the name
 * of its object. PARAMS (values may be percent-encoded):
 *   endpoint=http[s]://host[:port]  [https://s3.REGION.amazonaws.com]
 *   region=NAME                     the SigV4 signing region [us-east-1]
 *   path_style=true|false           http://host/BUCKET/key, or http://BUCKET.host/key [true]
 *   credentials=FILE                an AWS shared-credentials file (aws_access_key_id,
 *                                   aws_secret_access_key, aws_session_token) instead of
 *                                   the AWS_* environment variables
 *   profile=NAME                    the section of that file [default]
 *   connections=N                   parallel connections per batch, 1..64 [16]
 *   retry_time_ms=N                 how long to keep retrying one request [10000]
 *   timeout_ms=N                    one attempt, connecting included [30000]
 * Unknown parameters are refused (a typo must not silently change behaviour). */
s3_client *s3_client_open(const char *url, error *err);
void s3_client_free(s3_client *client);

/* "bucket" and "prefix" ("" when none) of the client, for log lines. */
const char *s3_client_bucket(const s3_client *client);
const char *s3_client_prefix(const s3_client *client);

/* One query parameter; the client sorts and encodes them. */
typedef struct s3_param {
    const char *name;
    const char *value; /* NULL is sent as an empty value ("name=") */
} s3_param;

typedef struct s3_request {
    const char *method;       /* "GET", "PUT", "DELETE" or "HEAD" */
    /* The object: "PREFIX/key", or the PREFIX itself when key is NULL; with neither (no
     * prefix and a NULL key) the request addresses the bucket (listing). Keys are sent
     * percent-encoded (all but unreserved characters and '/'). */
    const char *key;
    const s3_param *query;
    size_t query_count;
    const void *body;         /* PUT only; borrowed until s3_perform returns */
    size_t body_len;
    const char *content_type; /* PUT: NULL sends application/octet-stream */
    const char *content_encoding;
    const char *cache_control;
    const char *if_match;     /* an ETag, sent without quotes (what RGW compares) */
    bool if_none_match_any;   /* If-None-Match: * (create only if absent) */
    /* The most bytes a successful response body may have; more ends the transfer with
     * response.too_large (not retried). Error bodies are kept up to 4 KiB regardless. */
    size_t max_response_bytes;
} s3_request;

typedef struct s3_response {
    int status;        /* the final HTTP status; 0 when no response arrived (see reason) */
    bool too_large;    /* a successful body exceeded max_response_bytes; body is partial */
    unsigned attempts; /* requests sent, retries included */
    buffer body;
    /* Response headers, "" when absent. The ETag has its quotes (and any W/) removed. */
    char etag[S3_ETAG_MAX];
    char content_type[128];
    char content_encoding[64];
    char cache_control[128];
    char last_modified[64];
    /* Why, when status is 0 or not 2xx: the transport error, or the S3 error code and
     * message from the body ("403 SignatureDoesNotMatch: ..."). */
    char reason[192];
} s3_response;

/* Runs `count` requests in parallel (up to the client's connections at once), each retried
 * as described above, and fills responses[i] for requests[i] (initialise responses with
 * zeros or reuse them: bodies are replaced, free them with s3_response_free). Returns 0 once
 * every request has its final outcome, whatever its status; -1 (reason in err, responses
 * untouched) only for a malformed request or when out of memory. */
int s3_perform(s3_client *client, const s3_request *requests, s3_response *responses,
               size_t count, error *err);
void s3_response_free(s3_response *response);

/* Sets err to a clear sentence about a failed request ("S3 PUT bucket/prefix/key: HTTP 403
 * InvalidAccessKeyId: ...; check the credentials ...") and returns -1. */
int s3_error(error *err, const s3_client *client, const s3_request *request,
             const s3_response *response);

/* Lists the keys under PREFIX/key_prefix (ListObjectsV2, following continuation tokens)
 * and calls `each` with every key relative to the client's prefix, in the server's
 * (lexicographic) order. `each` returning non-zero stops the listing and that value is
 * returned. Returns 0, or -1 with a reason. */
int s3_list(s3_client *client, const char *key_prefix,
            int (*each)(const char *key, void *ctx), void *ctx, error *err);

/* Counters since the client was opened, for metrics and tests. */
typedef struct s3_stats {
    uint64_t requests; /* requests sent, retries included */
    uint64_t retries;
    uint64_t failures; /* requests whose final outcome was not a 2xx response */
    uint64_t stale_address_uses; /* attempts sent to the last working address (name failed) */
} s3_stats;
void s3_client_stats(const s3_client *client, s3_stats *out);

/* Writes `name=value&...` in canonical form (sorted by name then value, RFC 3986 encoding:
 * everything but A-Z a-z 0-9 - _ . ~ as %XX) into out, replacing its content. For tests
 * and for callers that build URLs themselves. Returns 0, or -1 when out of memory. */
int s3_canonical_query(const s3_param *params, size_t count, buffer *out);

#endif
