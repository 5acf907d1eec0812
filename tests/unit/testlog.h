/* A real static-ct log on disk for read-path tests, written with the library the way the
 * sequencer publishes one: entries from the ctgo test chains (x509 with 1–3 issuers and
 * precerts), gzip'd data tiles (partial ones rewritten as the log grows), hash tiles from
 * tile_edge, every issuer, and a checkpoint signed by a fresh P-256 key. */
#ifndef TEGULA_TESTLOG_H
#define TEGULA_TESTLOG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "ct.h"
#include "keys.h"
#include "storage.h"
#include "tiles.h"
#include "x509chain.h"

#define TEST_LOG_ORIGIN "read.test.example/2026h1"
#define TEST_LOG_MAX 4096

typedef struct test_log {
    char dir[PATH_MAX];         /* the log's storage directory */
    char url[PATH_MAX + 16];    /* file://<dir> */
    storage *storage;
    EVP_PKEY *key;
    log_signer *signer;
    tile_edge *edge;
    uint64_t size;
    uint64_t timestamp;         /* of the last checkpoint */
    uint8_t (*leaf_hashes)[32]; /* TEST_LOG_MAX of them */
} test_log;

/* Loads the chains once per test binary (cmocka group setup/teardown). */
int test_log_global_setup(void **state);
int test_log_global_teardown(void **state);

/* An empty log (no checkpoint yet) in a fresh directory named after `name`. */
void test_log_create(test_log *l, const char *name);
/* Appends entries up to new_size and publishes tiles, issuers and a new checkpoint. */
void test_log_grow(test_log *l, uint64_t new_size);
void test_log_free(test_log *l);

/* The entry at `index` (deterministic; pointers into static chain data). */
void test_log_entry(uint64_t index, ct_entry *e);
/* The validated chain the entry at `index` was built from. */
const x509_chain_result *test_log_chain(uint64_t index);
/* The root of the tree of the first `size` leaves, from the recorded leaf hashes. */
void test_log_root(const test_log *l, uint64_t size, uint8_t out[32]);

#endif
