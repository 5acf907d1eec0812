/* sequencer rounds and recovery through real file:// storage and a file:// lock in a temp
 * directory: tiles read back to the checkpoint root across tile boundaries, checkpoints
 * verify, data tiles are gzip with the right leaf indices, timestamps strictly increase,
 * crash points recover, forks and a second writer are refused. */
#include "testutil.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "ct.h"
#include "gzip.h"
#include "keys.h"
#include "lock.h"
#include "log.h"
#include "merkle.h"
#include "note.h"
#include "sha256.h"
#include "storage.h"
#include "tiles.h"

#include "../../sequencer/pool.h"
#include "../../sequencer/recovery.h"
#include "../../sequencer/round.h"
#include "../../sequencer/staging.h"

#define ORIGIN "tegula.example/test2026h1"

/* ---- fixture: a log directory, a key, and what the test has sequenced so far ---- */

typedef struct fixture {
    char dir[PATH_MAX];
    char storage_url[PATH_MAX + 32], lock_url[PATH_MAX + 32];
    EVP_PKEY *key;
    log_signer *signer;
    storage *store; /* the test's own handle, for reading back */
    /* Every entry sequenced so far, by index: its leaf hash and the serial it was made from. */
    uint8_t (*leaf_hashes)[32];
    uint64_t *serials;
    size_t count, cap;
    uint64_t next_serial;
    uint64_t next_seq;
} fixture;

static int fixture_counter;

static int fixture_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    char name[64];
    snprintf(name, sizeof name, "sequencer_round_%d", ++fixture_counter);
    assert_non_null(realpath(test_tmpdir(name), f->dir));
    snprintf(f->storage_url, sizeof f->storage_url, "file://%s/storage", f->dir);
    snprintf(f->lock_url, sizeof f->lock_url, "file://%s/lock/checkpoint", f->dir);
    error err = {{0}};
    f->key = private_key_generate(KEY_KIND_EC_P256, &err);
    assert_non_null(f->key);
    f->signer = log_signer_new(f->key, &err);
    assert_non_null(f->signer);
    f->store = storage_open(f->storage_url, &err);
    assert_non_null(f->store);
    f->next_serial = 1;
    f->next_seq = 1000;
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture *f = *state;
    storage_close(f->store);
    log_signer_free(f->signer);
    EVP_PKEY_free(f->key);
    free(f->leaf_hashes);
    free(f->serials);
    free(f);
    return 0;
}

/* A sequencer instance: its own storage and lock handles, as a separate process has. */
typedef struct instance {
    storage *store;
    lock *lk;
    seq_log *log;
    pool *pool;
} instance;

static void instance_open(fixture *f, instance *in, round_stop_point stop, size_t pool_limit)
{
    error err = {{0}};
    memset(in, 0, sizeof *in);
    in->store = storage_open(f->storage_url, &err);
    assert_non_null(in->store);
    in->lk = lock_open(f->lock_url, &err);
    assert_non_null(in->lk);
    seq_log_config cfg = {.name = "test", .origin = ORIGIN, .signer = f->signer,
                          .store = in->store, .lock = in->lk, .stop_after = stop};
    in->log = seq_log_new(&cfg, &err);
    assert_non_null(in->log);
    pool_config pc = {.entry_limit = pool_limit ? pool_limit : 100000};
    in->pool = pool_new(&pc);
    assert_non_null(in->pool);
}

static void instance_close(instance *in)
{
    pool_free(in->pool);
    seq_log_free(in->log);
    lock_close(in->lk);
    storage_close(in->store);
}

static int instance_recover(instance *in, bool create, uint64_t now, error *err)
{
    return recovery_run(in->log, create, now, err);
}

/* ---- batches ---- */

static const char issuer_a[] = "\x30\x03issuer intermediate A (test bytes)";
static const char issuer_root[] = "\x30\x03root R (test bytes)";

typedef struct replies {
    int calls;
    uint64_t batch_seq;
    pool_result results[1024];
    size_t count;
} replies;

static void record_reply(void *ctx, uint64_t seq, const pool_result *res, size_t n)
{
    replies *r = ctx;
    r->calls++;
    r->batch_seq = seq;
    assert_true(n <= 1024);
    memcpy(r->results, res, n * sizeof *res);
    r->count = n;
}

static void release_batch(void *ctx)
{
    tegula__batch__free_unpacked(ctx, NULL);
}

/* Entry contents derived from a serial: varied sizes, alternating x509 and precert. */
static size_t entry_cert_len(uint64_t serial)
{
    return 300 + (size_t)((serial * 7919) % 1400);
}

static void fill_entry_bytes(uint8_t *out, size_t len, uint64_t serial, uint8_t salt)
{
    uint8_t seed[9];
    be_store(seed, serial, 8);
    seed[8] = salt;
    uint8_t block[32];
    for (size_t off = 0; off < len; off += 32) {
        uint8_t in[41];
        memcpy(in, seed, 9);
        be_store(in + 9, off, 8);
        sha256(in, 17, block);
        memcpy(out + off, block, len - off < 32 ? len - off : 32);
    }
}

/* Builds a batch of n fresh entries as the batcher would send it, through the wire format
 * (so the pool sees exactly what NNG would deliver). */
static Tegula__Batch *make_batch(const char *batcher, uint64_t seq, size_t n,
                                 uint64_t first_serial)
{
    Tegula__Batch b = TEGULA__BATCH__INIT;
    b.log = "test";
    b.batcher_id = (char *)batcher;
    b.batch_seq = seq;
    Tegula__BatchEntry *entries = calloc(n ? n : 1, sizeof *entries);
    Tegula__BatchEntry **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    uint8_t fp[2][32];
    sha256(issuer_a, sizeof issuer_a - 1, fp[0]);
    sha256(issuer_root, sizeof issuer_root - 1, fp[1]);
    ProtobufCBinaryData fps[2] = {{32, fp[0]}, {32, fp[1]}};
    ProtobufCBinaryData issuers[2] = {{sizeof issuer_a - 1, (uint8_t *)issuer_a},
                                      {sizeof issuer_root - 1, (uint8_t *)issuer_root}};
    static uint8_t ikh[32] = {0x11, 0x22, 0x33};
    for (size_t i = 0; i < n; i++) {
        uint64_t serial = first_serial + i;
        Tegula__BatchEntry *e = &entries[i];
        tegula__batch_entry__init(e);
        size_t len = entry_cert_len(serial);
        uint8_t *cert = malloc(len);
        fill_entry_bytes(cert, len, serial, 0);
        e->cert_or_tbs = (ProtobufCBinaryData){len, cert};
        if (serial % 2 == 0) {
            e->entry_type = TEGULA__ENTRY_TYPE__ENTRY_PRECERT;
            e->issuer_key_hash = (ProtobufCBinaryData){32, ikh};
            uint8_t *pre = malloc(len + 50);
            fill_entry_bytes(pre, len + 50, serial, 1);
            e->precert = (ProtobufCBinaryData){len + 50, pre};
        }
        e->n_chain_fps = 2;
        e->chain_fps = fps;
        ptrs[i] = e;
    }
    b.n_entries = n;
    b.entries = ptrs;
    b.n_issuers = 2;
    b.issuers = issuers;
    size_t packed_len = tegula__batch__get_packed_size(&b);
    uint8_t *packed = malloc(packed_len ? packed_len : 1);
    tegula__batch__pack(&b, packed);
    for (size_t i = 0; i < n; i++) {
        free(entries[i].cert_or_tbs.data);
        free(entries[i].precert.data);
    }
    free(entries);
    free(ptrs);
    Tegula__Batch *out = tegula__batch__unpack(NULL, packed_len, packed);
    free(packed);
    assert_non_null(out);
    return out;
}

static void add_batch(pool *p, Tegula__Batch *b, replies *r)
{
    pool_request req = {.batch = b, .release = release_batch, .release_ctx = b,
                        .reply = record_reply, .reply_ctx = r};
    pool_add(p, &req);
}

/* The ct_entry the log must have stored for a serial at an index and timestamp. */
static void expected_entry(uint64_t serial, uint64_t index, uint64_t ts, ct_entry *e,
                           uint8_t *cert, uint8_t *pre, uint8_t fps[64])
{
    static uint8_t ikh[32] = {0x11, 0x22, 0x33};
    memset(e, 0, sizeof *e);
    size_t len = entry_cert_len(serial);
    fill_entry_bytes(cert, len, serial, 0);
    e->cert_or_tbs = cert;
    e->cert_or_tbs_len = len;
    e->timestamp = ts;
    e->leaf_index = index;
    if (serial % 2 == 0) {
        e->entry_type = CT_ENTRY_PRECERT;
        memcpy(e->issuer_key_hash, ikh, 32);
        fill_entry_bytes(pre, len + 50, serial, 1);
        e->pre_certificate = pre;
        e->pre_certificate_len = len + 50;
    }
    sha256(issuer_a, sizeof issuer_a - 1, fps);
    sha256(issuer_root, sizeof issuer_root - 1, fps + 32);
    e->fingerprints = fps;
    e->fingerprint_count = 2;
}

static void remember(fixture *f, uint64_t serial, uint64_t index, uint64_t ts)
{
    if (f->count == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 1024;
        f->leaf_hashes = realloc(f->leaf_hashes, f->cap * 32);
        f->serials = realloc(f->serials, f->cap * sizeof *f->serials);
    }
    assert_int_equal(index, f->count);
    ct_entry e;
    uint8_t cert[2000], pre[2100], fps[64];
    expected_entry(serial, index, ts, &e, cert, pre, fps);
    assert_int_equal(ct_leaf_hash(&e, f->leaf_hashes[f->count]), 0);
    f->serials[f->count] = serial;
    f->count++;
}

/* ---- checks against storage ---- */

static void read_public(fixture *f, signed_checkpoint *out, buffer *text)
{
    error err = {{0}};
    buffer_reset(text);
    assert_int_equal(storage_get(f->store, "checkpoint", NOTE_MAX_SIZE, text, &err), 0);
    if (checkpoint_verify((const char *)text->data, text->len, ORIGIN, f->key, out, &err) != 0)
        fail_msg("checkpoint does not verify: %s", err.msg);
}

/* Everything a monitor would check at the published size. */
static void check_published(fixture *f, uint64_t want_size, uint64_t *ts_out)
{
    signed_checkpoint cp;
    buffer text = {0};
    read_public(f, &cp, &text);
    assert_int_equal(cp.cp.size, want_size);
    assert_int_equal(f->count, want_size);
    /* The stored tiles give the checkpoint root ... */
    uint8_t root[32];
    error err = {{0}};
    if (tile_tree_root(want_size, seq_fetch_tile, f->store, root, &err) != 0)
        fail_msg("tile_tree_root(%" PRIu64 "): %s", want_size, err.msg);
    assert_memory_equal(root, cp.cp.root, 32);
    /* ... which is the root of the entries the test submitted, computed independently. */
    merkle_leaves leaves = {(const uint8_t(*)[32])f->leaf_hashes, want_size};
    uint8_t expect[32];
    assert_int_equal(merkle_root(merkle_leaves_get_node, &leaves, want_size, expect, &err), 0);
    assert_memory_equal(expect, cp.cp.root, 32);
    /* The right-edge data tiles: gzip, every entry in place with its own leaf_index. */
    uint64_t first_tile = want_size >= 512 ? want_size / 256 - 1 : 0;
    for (uint64_t idx = first_tile; idx * 256 < want_size; idx++) {
        uint64_t width = want_size - idx * 256 >= 256 ? 0 : want_size % 256;
        tile_id t = {.data = true, .index = idx, .width = (uint16_t)width};
        char path[TILE_PATH_MAX];
        tile_path_format(&t, path);
        buffer gz = {0}, raw = {0};
        if (storage_get(f->store, path, 1 << 30, &gz, &err) != 0)
            fail_msg("%s: %s", path, err.msg);
        assert_true(gzip_is_gzip(gz.data, gz.len));
        assert_int_equal(gzip_decompress(gz.data, gz.len, 1 << 30, &raw, &err), 0);
        ct_data_tile_iter it;
        ct_data_tile_iter_init(&it, raw.data, raw.len);
        uint64_t n = 0;
        ct_entry e;
        while (ct_data_tile_next(&it, &e, &err) == 1) {
            uint64_t index = idx * 256 + n;
            assert_int_equal(e.leaf_index, index);
            uint8_t h[32];
            assert_int_equal(ct_leaf_hash(&e, h), 0);
            assert_memory_equal(h, f->leaf_hashes[index], 32);
            assert_int_equal(e.fingerprint_count, 2);
            n++;
        }
        assert_int_equal(n, width ? width : 256);
        /* Deterministic compression: recompressing gives the stored bytes. */
        buffer again = {0};
        assert_int_equal(gzip_compress(raw.data, raw.len, &again, &err), 0);
        assert_int_equal(again.len, gz.len);
        assert_memory_equal(again.data, gz.data, gz.len);
        buffer_free(&again);
        buffer_free(&gz);
        buffer_free(&raw);
    }
    /* Issuers resolve. */
    if (want_size > 0) {
        const char *iss[2] = {issuer_a, issuer_root};
        size_t lens[2] = {sizeof issuer_a - 1, sizeof issuer_root - 1};
        for (int i = 0; i < 2; i++) {
            uint8_t fp[32];
            char key[80] = "issuer/";
            sha256(iss[i], lens[i], fp);
            hex_encode(key + 7, fp, 32);
            buffer b = {0};
            assert_int_equal(storage_get(f->store, key, 1 << 20, &b, &err), 0);
            assert_int_equal(b.len, lens[i]);
            assert_memory_equal(b.data, iss[i], lens[i]);
            buffer_free(&b);
        }
    }
    /* The staging bundle is gone. */
    char skey[STAGING_KEY_MAX];
    staging_key(cp.cp.size, cp.cp.root, skey);
    buffer s = {0};
    assert_int_equal(storage_get(f->store, skey, STAGING_MAX_BYTES, &s, &err), STORAGE_NOT_FOUND);
    buffer_free(&s);
    if (ts_out)
        *ts_out = cp.timestamp;
    buffer_free(&text);
}

/* One round with `n` fresh entries in batches of at most 200; checks every reply. */
static round_status run_round(fixture *f, instance *in, size_t n, uint64_t now,
                              round_report *rep, bool expect_ok)
{
    size_t nb = (n + 199) / 200;
    replies *r = calloc(nb ? nb : 1, sizeof *r);
    uint64_t serial0 = f->next_serial;
    for (size_t b = 0; b < nb; b++) {
        size_t k = n - b * 200 < 200 ? n - b * 200 : 200;
        add_batch(in->pool, make_batch("batcher-1", f->next_seq++, k, f->next_serial), &r[b]);
        f->next_serial += k;
    }
    error err = {{0}};
    uint64_t size0 = seq_log_size(in->log);
    round_status st = round_run(in->log, in->pool, now, rep, &err);
    if (expect_ok && st != ROUND_OK)
        fail_msg("round failed (%d): %s", st, err.msg);
    size_t done = 0;
    for (size_t b = 0; b < nb; b++) {
        assert_int_equal(r[b].calls, 1);
        for (size_t i = 0; i < r[b].count; i++, done++) {
            if (st == ROUND_OK) {
                assert_int_equal(r[b].results[i].status, TEGULA__STATUS__STATUS_OK);
                assert_int_equal(r[b].results[i].leaf_index, size0 + done);
                assert_int_equal(r[b].results[i].timestamp, rep->timestamp);
                remember(f, serial0 + done, size0 + done, rep->timestamp);
            } else {
                assert_int_equal(r[b].results[i].status, TEGULA__STATUS__STATUS_UNAVAILABLE);
            }
        }
    }
    free(r);
    return st;
}

/* ---- tests ---- */

static void test_rounds_cross_tile_boundaries(void **state)
{
    fixture *f = *state;
    instance in;
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    error err = {{0}};
    uint64_t now = 1767225600000; /* 2026-01-01 */
    assert_int_equal(instance_recover(&in, true, now, &err), 0);
    uint64_t last_ts;
    check_published(f, 0, &last_ts);
    assert_int_equal(last_ts, now);

    /* Sizes 255, 256, 257, 511, 512, 513, then a jump over two tiles and a partial. */
    const size_t adds[] = {255, 1, 1, 254, 1, 1, 0, 700, 0, 3};
    uint64_t size = 0;
    for (size_t i = 0; i < sizeof adds / sizeof adds[0]; i++) {
        round_report rep;
        /* A clock that stands still: timestamps must still strictly increase. */
        run_round(f, &in, adds[i], now, &rep, true);
        size += adds[i];
        assert_int_equal(seq_log_size(in.log), size);
        assert_int_equal(seq_log_public_size(in.log), size);
        assert_int_equal(rep.size, size);
        uint64_t ts;
        check_published(f, size, &ts);
        assert_int_equal(ts, rep.timestamp);
        assert_true(ts > last_ts);
        assert_int_equal(ts, last_ts + 1);
        last_ts = ts;
    }
    /* A clock that moves on is used as it is. */
    round_report rep;
    run_round(f, &in, 2, now + 5000, &rep, true);
    assert_int_equal(rep.timestamp, now + 5000);
    check_published(f, size + 2, NULL);
    instance_close(&in);

    /* A restart recovers the same state and continues. */
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, false, now, &err), 0);
    assert_int_equal(seq_log_size(in.log), size + 2);
    assert_int_equal(seq_log_last_timestamp(in.log), now + 5000);
    run_round(f, &in, 300, now + 1, &rep, true);
    assert_int_equal(rep.timestamp, now + 5001);
    check_published(f, size + 302, NULL);
    instance_close(&in);
}

static void test_empty_rounds_refresh_checkpoint(void **state)
{
    fixture *f = *state;
    instance in;
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    error err = {{0}};
    uint64_t now = 1767225600000;
    assert_int_equal(instance_recover(&in, true, now, &err), 0);
    round_report rep;
    run_round(f, &in, 5, now + 10, &rep, true);
    uint64_t ts0;
    buffer t0 = {0}, t1 = {0};
    signed_checkpoint cp;
    read_public(f, &cp, &t0);
    ts0 = cp.timestamp;
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(run_round(f, &in, 0, now + 10 + 1000 * (uint64_t)i, &rep, true),
                         ROUND_OK);
        assert_int_equal(rep.tiles, 0);
        read_public(f, &cp, &t1);
        assert_int_equal(cp.cp.size, 5);
        assert_int_equal(cp.timestamp, ts0 + 1000 * (uint64_t)i);
        assert_false(t0.len == t1.len && memcmp(t0.data, t1.data, t0.len) == 0);
        /* The lock holds exactly the published checkpoint. */
        buffer lk = {0};
        assert_int_equal(lock_read(in.lk, &lk, NULL, &err), 0);
        assert_int_equal(lk.len, t1.len);
        assert_memory_equal(lk.data, t1.data, lk.len);
        buffer_free(&lk);
    }
    check_published(f, 5, NULL);
    buffer_free(&t0);
    buffer_free(&t1);
    instance_close(&in);
}

/* Crash points: each leaves storage as a killed process would; a restart must finish the
 * round (or drop it, when it never committed) and publish a consistent tree. */
static void crash_and_recover(fixture *f, round_stop_point stop, size_t n, bool committed)
{
    instance in;
    error err = {{0}};
    uint64_t now = 1767225600000 + f->count * 10;
    instance_open(f, &in, stop, 0);
    assert_int_equal(instance_recover(&in, false, now, &err), 0);
    uint64_t size0 = seq_log_size(in.log);
    uint64_t serial0 = f->next_serial;
    round_report rep;
    assert_int_equal(run_round(f, &in, n, now, &rep, false), ROUND_FATAL);
    signed_checkpoint pub;
    buffer text = {0};
    read_public(f, &pub, &text);
    assert_int_equal(pub.cp.size, size0); /* never published */
    buffer lk = {0};
    signed_checkpoint lcp;
    assert_int_equal(lock_read(in.lk, &lk, NULL, &err), 0);
    assert_int_equal(checkpoint_verify((const char *)lk.data, lk.len, ORIGIN, f->key, &lcp, &err),
                     0);
    assert_int_equal(lcp.cp.size, committed ? size0 + n : size0);
    if (committed) {
        /* The staging bundle is still there for recovery. */
        char skey[STAGING_KEY_MAX];
        staging_key(lcp.cp.size, lcp.cp.root, skey);
        buffer s = {0};
        assert_int_equal(storage_get(f->store, skey, STAGING_MAX_BYTES, &s, &err), 0);
        staging_bundle bundle;
        assert_int_equal(staging_parse(&bundle, s.data, s.len, &err), 0);
        assert_true(bundle.count >= 2);
        staging_bundle_free(&bundle);
        buffer_free(&s);
    }
    instance_close(&in);

    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    if (instance_recover(&in, false, now, &err) != 0)
        fail_msg("recovery: %s", err.msg);
    if (committed) {
        for (size_t i = 0; i < n; i++)
            remember(f, serial0 + i, size0 + i, lcp.timestamp);
    }
    assert_int_equal(seq_log_size(in.log), f->count);
    /* The public checkpoint is now the lock's. */
    read_public(f, &pub, &text);
    assert_int_equal(lk.len, text.len);
    if (committed)
        assert_memory_equal(lk.data, text.data, lk.len);
    check_published(f, f->count, NULL);
    /* And the log goes on from there. */
    run_round(f, &in, 17, now + 1, &rep, true);
    check_published(f, f->count, NULL);
    instance_close(&in);
    buffer_free(&lk);
    buffer_free(&text);
}

static void test_recovery_after_crashes(void **state)
{
    fixture *f = *state;
    instance in;
    error err = {{0}};
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, true, 1767225600000, &err), 0);
    round_report rep;
    run_round(f, &in, 250, 1767225600001, &rep, true);
    instance_close(&in);

    /* After the CAS, before any tile: lock ahead, staging present. Crosses 256. */
    crash_and_recover(f, ROUND_STOP_AFTER_CAS, 10, true);
    /* After the tiles, before the checkpoint. */
    crash_and_recover(f, ROUND_STOP_AFTER_TILES, 300, true);
    /* After staging, before the CAS: nothing committed, the stale bundle is ignored. */
    crash_and_recover(f, ROUND_STOP_AFTER_STAGING, 40, false);
    /* The lock ahead but with no staging bundle and no tiles: refuse. */
    instance_open(f, &in, ROUND_STOP_AFTER_CAS, 0);
    assert_int_equal(instance_recover(&in, false, 1767225700000, &err), 0);
    assert_int_equal(run_round(f, &in, 5, 1767225700000, &rep, false), ROUND_FATAL);
    buffer lk = {0};
    signed_checkpoint lcp;
    assert_int_equal(lock_read(in.lk, &lk, NULL, &err), 0);
    assert_int_equal(checkpoint_verify((const char *)lk.data, lk.len, ORIGIN, f->key, &lcp, &err),
                     0);
    char skey[STAGING_KEY_MAX];
    staging_key(lcp.cp.size, lcp.cp.root, skey);
    assert_int_equal(storage_delete(f->store, skey, &err), 0);
    instance_close(&in);
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, false, 1767225700000, &err), -1);
    assert_non_null(strstr(err.msg, "no staging bundle"));
    instance_close(&in);
    buffer_free(&lk);
}

/* Storage failures at the two non-fatal points: before the commit (issuers) the round is
 * dropped and the tree stays; at the checkpoint upload the entries fail but the tree has
 * advanced, and the next round publishes them. */
static void test_storage_failures(void **state)
{
    fixture *f = *state;
    instance in;
    error err = {{0}};
    uint64_t now = 1767225600000;
    char path[PATH_MAX + 64];
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, true, now, &err), 0);
    round_report rep;
    run_round(f, &in, 10, now + 1, &rep, true);
    instance_close(&in);

    /* A file where the issuer directory should be: the issuer upload fails. */
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, false, now, &err), 0);
    snprintf(path, sizeof path, "%s/storage/issuer", f->dir);
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "mv '%s' '%s/issuer.saved' && touch '%s'", path, f->dir, path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run_round(f, &in, 300, now + 2, &rep, false), ROUND_FAILED);
    assert_int_equal(seq_log_size(in.log), 10);
    assert_false(seq_log_ready(in.log));
    snprintf(cmd, sizeof cmd, "rm -f '%s' && mv '%s/issuer.saved' '%s'", path, f->dir, path);
    assert_int_equal(system(cmd), 0);
    check_published(f, 10, NULL);
    /* The same indices are handed out again, to the next round's entries. */
    run_round(f, &in, 300, now + 3, &rep, true);
    assert_true(seq_log_ready(in.log));
    check_published(f, 310, NULL);

    /* A directory where the checkpoint should be: the round commits but cannot publish. */
    snprintf(path, sizeof path, "%s/storage/checkpoint", f->dir);
    snprintf(cmd, sizeof cmd, "rm -f '%s' && mkdir '%s'", path, path);
    assert_int_equal(system(cmd), 0);
    uint64_t serial0 = f->next_serial;
    assert_int_equal(run_round(f, &in, 5, now + 4, &rep, false), ROUND_UNPUBLISHED);
    assert_int_equal(seq_log_size(in.log), 315);
    assert_int_equal(seq_log_public_size(in.log), 310);
    for (size_t i = 0; i < 5; i++)
        remember(f, serial0 + i, 310 + i, rep.timestamp);
    snprintf(cmd, sizeof cmd, "rmdir '%s'", path);
    assert_int_equal(system(cmd), 0);
    run_round(f, &in, 1, now + 5, &rep, true);
    check_published(f, 316, NULL);
    instance_close(&in);

    /* A bundle left behind (killed after replying, before deleting it) goes at startup. */
    signed_checkpoint cp;
    buffer text = {0};
    read_public(f, &cp, &text);
    char skey[STAGING_KEY_MAX];
    staging_key(cp.cp.size, cp.cp.root, skey);
    assert_int_equal(storage_put(f->store, skey, "", 0, NULL, &err), 0);
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, false, now, &err), 0);
    buffer s = {0};
    assert_int_equal(storage_get(f->store, skey, 100, &s, &err), STORAGE_NOT_FOUND);
    instance_close(&in);
    buffer_free(&text);
    buffer_free(&s);
}

/* Writes a checkpoint signed by the log's own key as the public one. */
static void put_public(fixture *f, uint64_t size, const uint8_t root[32], uint64_t ts)
{
    buffer note = {0};
    error err = {{0}};
    assert_int_equal(checkpoint_sign(&note, f->signer, ORIGIN, size, root, ts, &err), 0);
    assert_int_equal(storage_put(f->store, "checkpoint", note.data, note.len, NULL, &err), 0);
    buffer_free(&note);
}

static void test_fork_refused(void **state)
{
    fixture *f = *state;
    instance in;
    error err = {{0}};
    uint64_t now = 1767225600000;
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, true, now, &err), 0);
    round_report rep;
    run_round(f, &in, 20, now + 1, &rep, true);
    uint8_t root[32];
    seq_log_root(in.log, root);
    instance_close(&in);
    buffer good = {0};
    assert_int_equal(storage_get(f->store, "checkpoint", NOTE_MAX_SIZE, &good, &err), 0);

    /* Public ahead of the lock. */
    uint8_t other[32];
    memset(other, 0x5a, 32);
    put_public(f, 21, other, now + 2);
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, false, now, &err), -1);
    assert_non_null(strstr(err.msg, "fork"));
    instance_close(&in);

    /* Same size, other root. */
    put_public(f, 20, other, now + 1);
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, false, now, &err), -1);
    assert_non_null(strstr(err.msg, "fork"));
    instance_close(&in);

    /* Lock ahead, but the public tree is not a prefix of it. */
    assert_int_equal(storage_put(f->store, "checkpoint", good.data, good.len, NULL, &err), 0);
    instance_open(f, &in, ROUND_STOP_AFTER_CAS, 0);
    assert_int_equal(instance_recover(&in, false, now, &err), 0);
    assert_int_equal(run_round(f, &in, 8, now + 2, &rep, false), ROUND_FATAL);
    instance_close(&in);
    put_public(f, 10, other, now + 1);
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, false, now, &err), -1);
    assert_non_null(strstr(err.msg, "fork"));
    instance_close(&in);

    /* A public checkpoint under another key does not verify: refused too. */
    EVP_PKEY *k2 = private_key_generate(KEY_KIND_EC_P256, &err);
    log_signer *s2 = log_signer_new(k2, &err);
    buffer note = {0};
    assert_int_equal(checkpoint_sign(&note, s2, ORIGIN, 20, root, now + 1, &err), 0);
    assert_int_equal(storage_put(f->store, "checkpoint", note.data, note.len, NULL, &err), 0);
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, false, now, &err), -1);
    assert_non_null(strstr(err.msg, "does not verify"));
    instance_close(&in);
    buffer_free(&note);
    log_signer_free(s2);
    EVP_PKEY_free(k2);
    buffer_free(&good);
}

static void test_create_rules(void **state)
{
    fixture *f = *state;
    instance in;
    error err = {{0}};
    uint64_t now = 1767225600000;
    /* Nothing there and no --create: refuse. */
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, false, now, &err), -1);
    assert_non_null(strstr(err.msg, "--create"));
    assert_false(seq_log_ready(in.log));
    instance_close(&in);
    /* Only a public checkpoint (lost lock): refuse with and without --create. */
    uint8_t root[32];
    merkle_empty_root(root);
    put_public(f, 0, root, now);
    for (int create = 0; create <= 1; create++) {
        instance_open(f, &in, ROUND_STOP_NEVER, 0);
        assert_int_equal(instance_recover(&in, create, now, &err), -1);
        assert_non_null(strstr(err.msg, "lock has none"));
        instance_close(&in);
    }
    assert_int_equal(storage_delete(f->store, "checkpoint", &err), 0);
    /* Create, then --create again is refused, and a plain start works. */
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, true, now, &err), 0);
    assert_true(seq_log_ready(in.log));
    instance_close(&in);
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, true, now, &err), -1);
    assert_non_null(strstr(err.msg, "already exists"));
    instance_close(&in);
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, false, now, &err), 0);
    assert_int_equal(seq_log_size(in.log), 0);
    instance_close(&in);
    check_published(f, 0, NULL);
}

static void test_second_sequencer_loses_cas(void **state)
{
    fixture *f = *state;
    instance a, b;
    error err = {{0}};
    uint64_t now = 1767225600000;
    instance_open(f, &a, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&a, true, now, &err), 0);
    round_report rep;
    run_round(f, &a, 3, now + 1, &rep, true);
    /* B starts from the same state (no holder claim here: the CAS alone must stop it). */
    instance_open(f, &b, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&b, false, now, &err), 0);
    run_round(f, &a, 4, now + 2, &rep, true);
    replies r = {0};
    add_batch(b.pool, make_batch("batcher-2", 1, 6, 900000), &r);
    assert_int_equal(round_run(b.log, b.pool, now + 3, &rep, &err), ROUND_FATAL);
    assert_non_null(strstr(err.msg, "lost the lock"));
    assert_int_equal(r.calls, 1);
    for (size_t i = 0; i < r.count; i++)
        assert_int_equal(r.results[i].status, TEGULA__STATUS__STATUS_UNAVAILABLE);
    /* A's tree is what is published and A goes on. */
    check_published(f, 7, NULL);
    run_round(f, &a, 1, now + 4, &rep, true);
    check_published(f, 8, NULL);
    instance_close(&a);
    instance_close(&b);
}

static void test_batch_dedup_through_rounds(void **state)
{
    fixture *f = *state;
    instance in;
    error err = {{0}};
    uint64_t now = 1767225600000;
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, true, now, &err), 0);
    /* The same (batcher_id, batch_seq) three times before the round: sequenced once. */
    replies r1 = {0}, r2 = {0}, r3 = {0}, other = {0};
    uint64_t serial = f->next_serial;
    add_batch(in.pool, make_batch("b1", 7, 5, serial), &r1);
    add_batch(in.pool, make_batch("b1", 7, 5, serial), &r2);
    add_batch(in.pool, make_batch("b1", 7, 5, serial), &r3);
    /* Another batcher may use the same number. */
    add_batch(in.pool, make_batch("b2", 7, 2, serial + 5), &other);
    f->next_serial += 7;
    round_report rep;
    assert_int_equal(round_run(in.log, in.pool, now + 1, &rep, &err), ROUND_OK);
    assert_int_equal(rep.entries, 7);
    assert_int_equal(seq_log_size(in.log), 7);
    for (size_t i = 0; i < 7; i++)
        remember(f, serial + i, i, rep.timestamp);
    replies *all[3] = {&r1, &r2, &r3};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(all[k]->calls, 1);
        assert_int_equal(all[k]->batch_seq, 7);
        assert_int_equal(all[k]->count, 5);
        for (size_t i = 0; i < 5; i++) {
            assert_int_equal(all[k]->results[i].status, TEGULA__STATUS__STATUS_OK);
            assert_int_equal(all[k]->results[i].leaf_index, i);
        }
    }
    assert_int_equal(other.results[1].leaf_index, 6);
    /* After the round, a resend gets the same answer at once, and is not sequenced again. */
    replies late = {0};
    add_batch(in.pool, make_batch("b1", 7, 5, serial), &late);
    assert_int_equal(late.calls, 1);
    assert_int_equal(late.count, 5);
    assert_memory_equal(late.results, r1.results, 5 * sizeof r1.results[0]);
    assert_int_equal(round_run(in.log, in.pool, now + 2, &rep, &err), ROUND_OK);
    assert_int_equal(rep.entries, 0);
    check_published(f, 7, NULL);
    instance_close(&in);
}

static void test_pool_limit_overloaded(void **state)
{
    fixture *f = *state;
    instance in;
    error err = {{0}};
    uint64_t now = 1767225600000;
    instance_open(f, &in, ROUND_STOP_NEVER, 10);
    assert_int_equal(instance_recover(&in, true, now, &err), 0);
    replies r1 = {0}, r2 = {0}, r3 = {0};
    uint64_t serial = f->next_serial;
    add_batch(in.pool, make_batch("b1", 1, 7, serial), &r1);
    add_batch(in.pool, make_batch("b1", 2, 7, serial + 7), &r2);
    add_batch(in.pool, make_batch("b1", 3, 4, serial + 14), &r3);
    f->next_serial += 18;
    /* The third batch had no room at all: answered at once, all OVERLOADED. */
    assert_int_equal(r3.calls, 1);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(r3.results[i].status, TEGULA__STATUS__STATUS_OVERLOADED);
    assert_int_equal(r2.calls, 0);
    round_report rep;
    assert_int_equal(round_run(in.log, in.pool, now + 1, &rep, &err), ROUND_OK);
    assert_int_equal(rep.entries, 10);
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(r1.results[i].status, TEGULA__STATUS__STATUS_OK);
        remember(f, serial + i, i, rep.timestamp);
    }
    for (size_t i = 0; i < 7; i++) {
        if (i < 3) {
            assert_int_equal(r2.results[i].status, TEGULA__STATUS__STATUS_OK);
            assert_int_equal(r2.results[i].leaf_index, 7 + i);
            remember(f, serial + 7 + i, 7 + i, rep.timestamp);
        } else {
            assert_int_equal(r2.results[i].status, TEGULA__STATUS__STATUS_OVERLOADED);
        }
    }
    check_published(f, 10, NULL);
    /* The pool has room again after the round. */
    replies r4 = {0};
    add_batch(in.pool, make_batch("b1", 4, 4, serial + 100), &r4);
    assert_int_equal(round_run(in.log, in.pool, now + 2, &rep, &err), ROUND_OK);
    assert_int_equal(r4.results[3].status, TEGULA__STATUS__STATUS_OK);
    assert_int_equal(r4.results[3].leaf_index, 13);
    instance_close(&in);
}

/* Real entries from the navigli2025h2 data tiles, each made unique by its serial, so the
 * data tiles compress as real ones do. */
typedef struct templates {
    buffer raw[4];
    ct_entry entries[1024];
    size_t count;
} templates;

static void templates_load(templates *t)
{
    memset(t, 0, sizeof *t);
    error err = {{0}};
    for (int i = 0; i < 4; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "navigli2025h2/tile/data/%03d", i);
        read_file_or_fail(testdata_path(rel), &t->raw[i]);
        ct_data_tile_iter it;
        ct_data_tile_iter_init(&it, t->raw[i].data, t->raw[i].len);
        while (t->count < 1024 && ct_data_tile_next(&it, &t->entries[t->count], &err) == 1)
            t->count++;
    }
    assert_true(t->count >= 1000);
}

static Tegula__Batch *make_real_batch(const templates *t, uint64_t seq, size_t n,
                                      uint64_t first_serial)
{
    Tegula__Batch b = TEGULA__BATCH__INIT;
    b.log = "test";
    b.batcher_id = "batcher-real";
    b.batch_seq = seq;
    Tegula__BatchEntry *entries = calloc(n, sizeof *entries);
    Tegula__BatchEntry **ptrs = calloc(n, sizeof *ptrs);
    ProtobufCBinaryData *fps = calloc(n * 8, sizeof *fps);
    /* Issuers: stand-in DER per fingerprint, so every fingerprint resolves. */
    ProtobufCBinaryData issuers[2];
    uint8_t fp[2][32];
    const char *iss[2] = {issuer_a, issuer_root};
    for (int i = 0; i < 2; i++) {
        issuers[i] = (ProtobufCBinaryData){strlen(iss[i]), (uint8_t *)iss[i]};
        sha256(iss[i], strlen(iss[i]), fp[i]);
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t serial = first_serial + i;
        const ct_entry *src = &t->entries[serial % t->count];
        Tegula__BatchEntry *e = &entries[i];
        tegula__batch_entry__init(e);
        uint8_t *cert = malloc(src->cert_or_tbs_len);
        memcpy(cert, src->cert_or_tbs, src->cert_or_tbs_len);
        be_store(cert + src->cert_or_tbs_len / 2, serial, 8); /* unique, like a serial */
        e->cert_or_tbs = (ProtobufCBinaryData){src->cert_or_tbs_len, cert};
        if (src->entry_type == CT_ENTRY_PRECERT) {
            e->entry_type = TEGULA__ENTRY_TYPE__ENTRY_PRECERT;
            e->issuer_key_hash = (ProtobufCBinaryData){32, (uint8_t *)src->issuer_key_hash};
            uint8_t *pre = malloc(src->pre_certificate_len);
            memcpy(pre, src->pre_certificate, src->pre_certificate_len);
            be_store(pre + src->pre_certificate_len / 2, serial, 8);
            e->precert = (ProtobufCBinaryData){src->pre_certificate_len, pre};
        }
        e->n_chain_fps = 2;
        e->chain_fps = &fps[i * 8];
        fps[i * 8] = (ProtobufCBinaryData){32, fp[0]};
        fps[i * 8 + 1] = (ProtobufCBinaryData){32, fp[1]};
        ptrs[i] = e;
    }
    b.n_entries = n;
    b.entries = ptrs;
    b.n_issuers = 2;
    b.issuers = issuers;
    size_t len = tegula__batch__get_packed_size(&b);
    uint8_t *packed = malloc(len);
    tegula__batch__pack(&b, packed);
    for (size_t i = 0; i < n; i++) {
        free(entries[i].cert_or_tbs.data);
        free(entries[i].precert.data);
    }
    free(entries);
    free(ptrs);
    free(fps);
    Tegula__Batch *out = tegula__batch__unpack(NULL, len, packed);
    free(packed);
    assert_non_null(out);
    return out;
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Not an assertion on time: prints what rounds of a realistic size cost on this machine
 * (wall time per phase, and the process CPU time of the whole round). */
static void test_round_timing(void **state)
{
    fixture *f = *state;
    instance in;
    error err = {{0}};
    uint64_t now = 1767225600000;
    templates *t = malloc(sizeof *t);
    templates_load(t);
    instance_open(f, &in, ROUND_STOP_NEVER, 0);
    assert_int_equal(instance_recover(&in, true, now, &err), 0);
    const size_t sizes[] = {3000, 4000, 5000, 5000};
    uint64_t serial = 1, seq = 1, size = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        replies *r = calloc(sizes[i] / 250 + 1, sizeof *r);
        size_t nb = 0;
        for (size_t done = 0; done < sizes[i]; done += 250, nb++) {
            size_t k = sizes[i] - done < 250 ? sizes[i] - done : 250;
            add_batch(in.pool, make_real_batch(t, seq++, k, serial), &r[nb]);
            serial += k;
        }
        round_report rep;
        double c0 = cpu_ms();
        assert_int_equal(round_run(in.log, in.pool, now + 1 + i, &rep, &err), ROUND_OK);
        double cpu = cpu_ms() - c0;
        assert_int_equal(rep.entries, sizes[i]);
        size += sizes[i];
        for (size_t b = 0; b < nb; b++)
            assert_int_equal(r[b].results[0].status, TEGULA__STATUS__STATUS_OK);
        free(r);
        printf("  round of %zu real-sized entries: %.1f ms wall, %.1f ms CPU (build %.1f, "
               "issuers %.1f, staging %.1f, sign+cas %.1f, tiles %.1f, checkpoint %.1f), "
               "%zu tiles, %.1f MB\n",
               rep.entries, rep.ms_total, cpu, rep.ms_build, rep.ms_issuers, rep.ms_staging,
               rep.ms_commit, rep.ms_tiles, rep.ms_checkpoint, rep.tiles,
               (double)rep.tile_bytes / 1e6);
    }
    /* The result is a valid tree: its tiles give the published root. */
    signed_checkpoint cp;
    buffer text = {0};
    read_public(f, &cp, &text);
    assert_int_equal(cp.cp.size, size);
    uint8_t root[32];
    assert_int_equal(tile_tree_root(size, seq_fetch_tile, f->store, root, &err), 0);
    assert_memory_equal(root, cp.cp.root, 32);
    buffer_free(&text);
    instance_close(&in);
    for (int i = 0; i < 4; i++)
        buffer_free(&t->raw[i]);
    free(t);
}

#define WITH_FIXTURE(t) cmocka_unit_test_setup_teardown(t, fixture_setup, fixture_teardown)

int main(void)
{
    log_init("test", LOG_WARN);
    const struct CMUnitTest tests[] = {
        WITH_FIXTURE(test_rounds_cross_tile_boundaries),
        WITH_FIXTURE(test_empty_rounds_refresh_checkpoint),
        WITH_FIXTURE(test_recovery_after_crashes),
        WITH_FIXTURE(test_storage_failures),
        WITH_FIXTURE(test_fork_refused),
        WITH_FIXTURE(test_create_rules),
        WITH_FIXTURE(test_second_sequencer_loses_cas),
        WITH_FIXTURE(test_batch_dedup_through_rounds),
        WITH_FIXTURE(test_pool_limit_overloaded),
        WITH_FIXTURE(test_round_timing),
    };
    return cmocka_run_group_tests_name("sequencer_round", tests, NULL, NULL);
}
