/* recovery: startup checks, staging replay and loading the right edge. */
#include "recovery.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "ct.h"
#include "gzip.h"
#include "log.h"
#include "merkle.h"
#include "staging.h"

#define SEQ_DATA_TILE_MAX_RAW ((size_t)1 << 30)

/* Tiles from the staging bundle first, then from storage. */
typedef struct overlay {
    const staging_bundle *bundle;
    storage *store;
} overlay;

static int overlay_fetch(void *ctx, const tile_id *t, buffer *out, error *err)
{
    overlay *o = ctx;
    char path[TILE_PATH_MAX];
    if (tile_path_format(t, path) < 0)
        return error_set(err, "invalid tile id");
    const staging_object *obj = o->bundle ? staging_find(o->bundle, path) : NULL;
    if (obj != NULL) {
        if (buffer_append(out, obj->data, obj->len) != 0)
            return error_set(err, "out of memory");
        return 0;
    }
    return seq_fetch_tile(o->store, t, out, err);
}

static int read_checkpoint(seq_log *log, const buffer *text, const char *what,
                           signed_checkpoint *out, error *err)
{
    if (checkpoint_verify((const char *)text->data, text->len, log->cfg.origin, log->public_key,
                          out, err) != 0)
        return error_wrap(err, "the %s checkpoint does not verify", what);
    return 0;
}

static int create_log(seq_log *log, uint64_t now_ms, error *err)
{
    uint8_t root[32];
    merkle_empty_root(root);
    buffer note = {0};
    int rc = -1;
    char version[LOCK_VERSION_MAX];
    if (checkpoint_sign(&note, log->cfg.signer, log->cfg.origin, 0, root, now_ms, err) != 0)
        goto out;
    int lrc = lock_create(log->cfg.lock, note.data, note.len, version, err);
    if (lrc != LOCK_OK) {
        if (lrc == LOCK_CONFLICT)
            error_set(err, "the lock was created meanwhile: refusing to create the log");
        else
            error_wrap(err, "creating the lock");
        goto out;
    }
    if (storage_put(log->cfg.store, "checkpoint", note.data, note.len, NULL, err) != STORAGE_OK) {
        error_wrap(err, "publishing the first checkpoint");
        goto out;
    }
    memcpy(log->lock_version, version, LOCK_VERSION_MAX);
    tile_edge_init(log->edge);
    memcpy(log->root, root, 32);
    log->last_timestamp = now_ms;
    buffer_reset(&log->data_tile);
    buffer_reset(&log->checkpoint);
    if (buffer_append(&log->checkpoint, note.data, note.len) != 0) {
        error_set(err, "out of memory");
        goto out;
    }
    log_info("created the log", "log=%s origin=%s", log->cfg.name ? log->cfg.name : "",
             log->cfg.origin);
    rc = 0;
out:
    buffer_free(&note);
    return rc;
}

/* L is ahead of P: finish the round that committed L. */
static int replay(seq_log *log, const signed_checkpoint *L, const signed_checkpoint *P,
                  bool have_p, error *err)
{
    char key[STAGING_KEY_MAX];
    staging_key(L->cp.size, L->cp.root, key);
    buffer raw = {0};
    staging_bundle bundle = {0};
    bool have_bundle = false;
    int rc = -1;
    int grc = storage_get(log->cfg.store, key, STAGING_MAX_BYTES, &raw, err);
    if (grc == STORAGE_OK) {
        if (staging_parse(&bundle, raw.data, raw.len, err) != 0) {
            error_wrap(err, "%s", key);
            goto out;
        }
        have_bundle = true;
    } else if (grc != STORAGE_NOT_FOUND) {
        error_wrap(err, "reading %s", key);
        goto out;
    }
    overlay ov = {have_bundle ? &bundle : NULL, log->cfg.store};
    uint8_t root[32];
    if (tile_tree_root(L->cp.size, overlay_fetch, &ov, root, err) != 0) {
        error_wrap(err, "the lock is at size %" PRIu64 " but its tiles are %s", L->cp.size,
                   have_bundle ? "incomplete" : "missing and there is no staging bundle");
        goto out;
    }
    if (memcmp(root, L->cp.root, 32) != 0) {
        error_set(err, "the tiles %s do not give the lock's root at size %" PRIu64,
                  have_bundle ? "of the staging bundle" : "in storage", L->cp.size);
        goto out;
    }
    if (have_p && P->cp.size > 0) {
        /* P's tree must be a prefix of L's: its root from L's tiles (a reader of L's size
         * answers every node that P's root needs, whatever P's partial tiles were). */
        tile_reader reader;
        tile_reader_init(&reader, L->cp.size, overlay_fetch, &ov);
        int mrc = merkle_root(tile_reader_get_node, &reader, P->cp.size, root, err);
        tile_reader_free(&reader);
        if (mrc != 0) {
            error_wrap(err, "reading the lock's tree at the public size %" PRIu64, P->cp.size);
            goto out;
        }
        if (memcmp(root, P->cp.root, 32) != 0) {
            error_set(err, "fork: the public checkpoint (size %" PRIu64 ") is not a prefix of "
                           "the lock's tree (size %" PRIu64 ")", P->cp.size, L->cp.size);
            goto out;
        }
    }
    if (have_bundle && bundle.count > 0) {
        storage_object *objs = calloc(bundle.count, sizeof *objs);
        if (objs == NULL) {
            error_set(err, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < bundle.count; i++)
            objs[i] = (storage_object){.key = bundle.objects[i].key,
                                       .data = bundle.objects[i].data,
                                       .len = bundle.objects[i].len, .mode = STORAGE_CREATE};
        int wrc = storage_write_batch(log->cfg.store, objs, bundle.count, NULL, err);
        free(objs);
        if (wrc != STORAGE_OK) {
            error_wrap(err, "replaying %s", key);
            goto out;
        }
    }
    log_info("replayed the committed round", "key=%s tiles=%zu size=%" PRIu64, key,
             have_bundle ? bundle.count : (size_t)0, L->cp.size);
    rc = 0;
out:
    staging_bundle_free(&bundle);
    buffer_free(&raw);
    if (rc == 0 && have_bundle) {
        error derr;
        if (storage_delete(log->cfg.store, key, &derr) != STORAGE_OK)
            log_warn("could not delete the staging bundle", "key=%s error=\"%s\"", key, derr.msg);
    }
    return rc;
}

/* Loads the committed edge and data tile of a tree of L's size and checks them. */
static int load_state(seq_log *log, const signed_checkpoint *L, error *err)
{
    uint64_t size = L->cp.size;
    if (tile_edge_load(log->edge, size, seq_fetch_tile, log->cfg.store, err) != 0)
        return error_wrap(err, "loading the right edge");
    uint8_t root[32];
    tile_edge_root(log->edge, root);
    if (memcmp(root, L->cp.root, 32) != 0)
        return error_set(err, "the right-edge tiles of size %" PRIu64 " do not hash to the "
                              "checkpoint root", size);
    buffer_reset(&log->data_tile);
    unsigned width = (unsigned)(size % TILE_WIDTH);
    if (width == 0)
        return 0;
    tile_id t = {.data = true, .index = size / TILE_WIDTH, .width = (uint16_t)width};
    char path[TILE_PATH_MAX];
    tile_path_format(&t, path);
    buffer gz = {0};
    int rc = storage_get(log->cfg.store, path, SEQ_DATA_TILE_MAX_RAW, &gz, err);
    if (rc != STORAGE_OK) {
        buffer_free(&gz);
        return error_wrap(err, "reading %s", path);
    }
    rc = gzip_decompress(gz.data, gz.len, SEQ_DATA_TILE_MAX_RAW, &log->data_tile, err);
    buffer_free(&gz);
    if (rc != 0)
        return error_wrap(err, "%s", path);
    ct_data_tile_iter it;
    ct_data_tile_iter_init(&it, log->data_tile.data, log->data_tile.len);
    uint64_t base = size - width;
    for (unsigned i = 0;; i++) {
        ct_entry e;
        int n = ct_data_tile_next(&it, &e, err);
        if (n < 0)
            return error_wrap(err, "%s entry %u", path, i);
        if (n == 0) {
            if (i != width)
                return error_set(err, "%s holds %u entries, not %u", path, i, width);
            break;
        }
        if (i >= width)
            return error_set(err, "%s holds more than %u entries", path, width);
        if (e.leaf_index != base + i)
            return error_set(err, "%s entry %u has leaf_index %" PRIu64, path, i, e.leaf_index);
        if (e.timestamp > L->timestamp)
            return error_set(err, "%s entry %u is newer than the checkpoint", path, i);
        uint8_t h[32];
        if (ct_leaf_hash(&e, h) != 0 || memcmp(h, log->edge->hashes[0][i], 32) != 0)
            return error_set(err, "%s entry %u does not hash to its level-0 hash", path, i);
    }
    return 0;
}

int recovery_run(seq_log *log, bool create, uint64_t now_ms, error *err)
{
    buffer lock_text = {0}, public_text = {0};
    char version[LOCK_VERSION_MAX];
    signed_checkpoint L, P;
    int rc = -1;
    int lrc = lock_read(log->cfg.lock, &lock_text, version, err);
    if (lrc != LOCK_OK && lrc != LOCK_NOT_FOUND) {
        error_wrap(err, "reading the lock");
        goto out;
    }
    int prc = storage_get(log->cfg.store, "checkpoint", NOTE_MAX_SIZE, &public_text, err);
    if (prc != STORAGE_OK && prc != STORAGE_NOT_FOUND) {
        error_wrap(err, "reading the public checkpoint");
        goto out;
    }
    bool have_l = lrc == LOCK_OK, have_p = prc == STORAGE_OK;

    if (!have_l) {
        if (have_p) {
            error_set(err, "storage has a checkpoint but the lock has none: refusing to %s",
                      create ? "create a log over it" : "start");
            goto out;
        }
        if (!create) {
            error_set(err, "the log does not exist (no checkpoint in the lock or storage); "
                           "start once with --create to create it");
            goto out;
        }
        rc = create_log(log, now_ms, err);
        if (rc == 0) {
            atomic_store(&log->public_size, 0);
            log->loaded = true;
            atomic_store(&log->ready, true);
        }
        goto out;
    }
    if (create) {
        error_set(err, "the log already exists (the lock holds a checkpoint): refusing --create");
        goto out;
    }
    if (read_checkpoint(log, &lock_text, "lock", &L, err) != 0)
        goto out;
    if (have_p && read_checkpoint(log, &public_text, "public", &P, err) != 0)
        goto out;

    if (have_p) {
        if (P.cp.size > L.cp.size) {
            error_set(err, "fork: the public checkpoint (size %" PRIu64 ") is ahead of the "
                           "lock (size %" PRIu64 ")", P.cp.size, L.cp.size);
            goto out;
        }
        if (P.cp.size == L.cp.size && memcmp(P.cp.root, L.cp.root, 32) != 0) {
            error_set(err, "fork: the public checkpoint and the lock differ at size %" PRIu64,
                      L.cp.size);
            goto out;
        }
        if (P.cp.size == L.cp.size && P.timestamp > L.timestamp) {
            error_set(err, "the public checkpoint is newer than the lock: another writer?");
            goto out;
        }
    }
    if (!have_p || P.cp.size < L.cp.size) {
        if (replay(log, &L, &P, have_p, err) != 0)
            goto out;
    } else {
        /* A process killed between its replies and deleting the bundle leaves it behind. */
        char key[STAGING_KEY_MAX];
        staging_key(L.cp.size, L.cp.root, key);
        error derr;
        if (storage_delete(log->cfg.store, key, &derr) != STORAGE_OK)
            log_warn("could not delete a leftover staging bundle", "key=%s error=\"%s\"", key,
                     derr.msg);
    }
    if (load_state(log, &L, err) != 0)
        goto out;
    bool same = have_p && public_text.len == lock_text.len &&
                memcmp(public_text.data, lock_text.data, lock_text.len) == 0;
    if (!same && storage_put(log->cfg.store, "checkpoint", lock_text.data, lock_text.len, NULL,
                             err) != STORAGE_OK) {
        error_wrap(err, "publishing the lock's checkpoint");
        goto out;
    }
    memcpy(log->lock_version, version, LOCK_VERSION_MAX);
    memcpy(log->root, L.cp.root, 32);
    log->last_timestamp = L.timestamp;
    buffer_reset(&log->checkpoint);
    if (buffer_append(&log->checkpoint, lock_text.data, lock_text.len) != 0) {
        error_set(err, "out of memory");
        goto out;
    }
    atomic_store(&log->public_size, L.cp.size);
    log->loaded = true;
    atomic_store(&log->ready, true);
    log_info("recovered the log", "log=%s size=%" PRIu64 " timestamp=%" PRIu64 " replayed=%s",
             log->cfg.name ? log->cfg.name : "", L.cp.size, L.timestamp,
             (!have_p || P.cp.size < L.cp.size) ? "yes" : "no");
    rc = 0;
out:
    buffer_free(&lock_text);
    buffer_free(&public_text);
    return rc;
}
