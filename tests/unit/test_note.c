/* note: real static-ct checkpoints verify (and stop verifying when any byte changes), unknown
 * and grease lines are ignored, Ed25519 note signatures, signing round trips, malformed notes. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base64.h"
#include "keys.h"
#include "note.h"
#include "sha256.h"

typedef struct fixture {
    buffer text;     /* the checkpoint file */
    char origin[256];
    EVP_PKEY *key;
} fixture;

static void load_fixture(fixture *f, const char *name)
{
    char rel[256];
    memset(f, 0, sizeof *f);
    snprintf(rel, sizeof rel, "checkpoints/%s.checkpoint", name);
    read_file_or_fail(testdata_path(rel), &f->text);
    size_t n = strcspn((const char *)f->text.data, "\n");
    assert_true(n < sizeof f->origin);
    memcpy(f->origin, f->text.data, n);
    f->origin[n] = 0;
    snprintf(rel, sizeof rel, "checkpoints/%s.pub.pem", name);
    error err = {0};
    f->key = public_key_load_pem(testdata_path(rel), &err);
    if (!f->key)
        fail_msg("%s", err.msg);
}

static void free_fixture(fixture *f)
{
    buffer_free(&f->text);
    EVP_PKEY_free(f->key);
}

static int verify_fixture_text(const fixture *f, const uint8_t *data, size_t len,
                               signed_checkpoint *out, error *err)
{
    return checkpoint_verify((const char *)data, len, f->origin, f->key, out, err);
}

static void test_real_checkpoints_verify(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint64_t size, timestamp;
    } cases[] = {
        {"willow2025h1b", 1237717073, 1737664033545ULL},
        {"rome2026h1", 300, 1767139200000ULL},
        {"dev2024h2b", 5, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture f;
        load_fixture(&f, cases[i].name);
        signed_checkpoint sc;
        error err = {0};
        if (verify_fixture_text(&f, f.text.data, f.text.len, &sc, &err) != 0)
            fail_msg("%s: %s", cases[i].name, err.msg);
        assert_string_equal(sc.cp.origin, f.origin);
        assert_true(sc.cp.size == cases[i].size);
        if (cases[i].timestamp)
            assert_true(sc.timestamp == cases[i].timestamp);
        assert_int_equal(sc.cp.extension_lines, 0);

        /* The returned tree_head_signature is the get-sth field: it verifies over the
         * TreeHeadSignature, and rebuilding the note from it yields a verifying checkpoint. */
        digitally_signed ds;
        assert_int_equal(digitally_signed_parse(sc.tree_head_signature, sc.tree_head_signature_len, &ds, &err), 0);
        assert_int_equal(ds.hash_alg, DS_HASH_SHA256);
        assert_int_equal(ds.sig_alg, DS_SIG_ECDSA);
        uint8_t input[TREE_HEAD_SIGNATURE_INPUT_LEN];
        tree_head_signature_input(input, sc.timestamp, sc.cp.size, sc.cp.root);
        assert_int_equal(digitally_signed_verify(f.key, input, sizeof input, &ds, &err), 0);

        uint8_t log_id[LOG_ID_LEN];
        assert_int_equal(public_key_log_id(f.key, log_id, &err), 0);
        buffer rebuilt = {0};
        assert_int_equal(checkpoint_from_sth(&rebuilt, f.origin, log_id, sc.cp.size, sc.cp.root,
                                             sc.timestamp, sc.tree_head_signature,
                                             sc.tree_head_signature_len, &err), 0);
        signed_checkpoint again;
        assert_int_equal(verify_fixture_text(&f, rebuilt.data, rebuilt.len, &again, &err), 0);
        assert_true(again.timestamp == sc.timestamp);
        if (strcmp(cases[i].name, "rome2026h1") == 0) {
            /* Its only line is the log's: the rebuilt note is the file, byte for byte. */
            assert_int_equal(rebuilt.len, f.text.len);
            assert_memory_equal(rebuilt.data, f.text.data, f.text.len);
            assert_int_equal(sc.tree_head_signature_len, 4 + 71);
            uint8_t root[32];
            assert_int_equal(base64_decode_exact(root, 32, "lCkHUpkmVBEms2r2T1K6Og69+wUuuN3MIEW1/ezu2v0=", 44), 0);
            assert_memory_equal(sc.cp.root, root, 32);
            assert_int_equal(note_key_id(f.origin, NOTE_SIG_RFC6962, log_id, LOG_ID_LEN), 0x91507526);
            note n;
            assert_int_equal(note_parse(&n, (const char *)f.text.data, f.text.len, &err), 0);
            assert_int_equal(n.n_sigs, 1);
            assert_int_equal(n.sigs[0].key_id, 0x91507526);
            note_free(&n);
        }
        buffer_free(&rebuilt);
        free_fixture(&f);
    }
}

static void test_note_format_reproduces_real_notes(void **state)
{
    (void)state;
    const char *names[] = {"willow2025h1b", "rome2026h1", "dev2024h2b"};
    for (size_t i = 0; i < 3; i++) {
        fixture f;
        load_fixture(&f, names[i]);
        note n;
        error err = {0};
        assert_int_equal(note_parse(&n, (const char *)f.text.data, f.text.len, &err), 0);
        buffer out = {0};
        assert_int_equal(note_format(&out, &n, &err), 0);
        assert_int_equal(out.len, f.text.len);
        assert_memory_equal(out.data, f.text.data, f.text.len);
        buffer_free(&out);
        note_free(&n);
        free_fixture(&f);
    }
}

static void test_dev2024h2b_ed25519_line(void **state)
{
    (void)state;
    fixture f;
    load_fixture(&f, "dev2024h2b");
    error err = {0};
    EVP_PKEY *ed = public_key_load_pem(testdata_path("checkpoints/dev2024h2b.ed25519.pub.pem"), &err);
    assert_non_null(ed);
    note n;
    assert_int_equal(note_parse(&n, (const char *)f.text.data, f.text.len, &err), 0);
    assert_int_equal(n.n_sigs, 4);

    note_verifier v[2];
    assert_int_equal(note_verifier_init(&v[0], f.origin, NOTE_SIG_ED25519, ed, &err), 0);
    assert_int_equal(note_verifier_init(&v[1], f.origin, NOTE_SIG_RFC6962, f.key, &err), 0);
    bool verified[2];
    assert_int_equal(note_verify(&n, v, 1, verified, &err), 0);
    assert_true(verified[0]);
    assert_int_equal(note_verify(&n, v, 2, verified, &err), 0);
    assert_true(verified[0] && verified[1]);
    /* The Ed25519 line is the 68-byte one. */
    size_t found = 0;
    for (size_t i = 0; i < n.n_sigs; i++)
        if (n.sigs[i].key_id == v[0].key_id) {
            assert_int_equal(n.sigs[i].sig_len, 64);
            found++;
        }
    assert_int_equal(found, 1);

    /* The same key under another name is unknown to this verifier. */
    note_verifier other;
    assert_int_equal(note_verifier_init(&other, "example.com/other", NOTE_SIG_ED25519, ed, &err), 0);
    assert_int_equal(note_verify(&n, &other, 1, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no signature from a known key"));
    /* A flipped text byte breaks the Ed25519 signature. */
    n.text[3] ^= 0x20;
    assert_int_equal(note_verify(&n, v, 1, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "Ed25519"));

    note_free(&n);
    EVP_PKEY_free(ed);
    free_fixture(&f);
}

/* Flip every byte of the checkpoint body, and every byte of the decoded 0x05 signature
 * (key ID, timestamp, DigitallySigned): nothing verifies any more. */
static void test_any_changed_byte_fails(void **state)
{
    (void)state;
    const char *names[] = {"willow2025h1b", "rome2026h1", "dev2024h2b"};
    for (size_t c = 0; c < 3; c++) {
        fixture f;
        load_fixture(&f, names[c]);
        error err = {0};
        note n;
        assert_int_equal(note_parse(&n, (const char *)f.text.data, f.text.len, &err), 0);

        for (size_t i = 0; i < n.text_len; i++) {
            for (int bit = 0; bit < 8; bit += 5) {
                f.text.data[i] ^= (uint8_t)(1u << bit);
                if (verify_fixture_text(&f, f.text.data, f.text.len, NULL, &err) == 0)
                    fail_msg("%s: body byte %zu bit %d flipped still verifies", names[c], i, bit);
                f.text.data[i] ^= (uint8_t)(1u << bit);
            }
        }

        note_verifier v;
        assert_int_equal(note_verifier_init(&v, f.origin, NOTE_SIG_RFC6962, f.key, &err), 0);
        size_t line = n.n_sigs;
        for (size_t i = 0; i < n.n_sigs; i++)
            if (n.sigs[i].key_id == v.key_id && strcmp(n.sigs[i].name, f.origin) == 0)
                line = i;
        assert_true(line < n.n_sigs);
        note_signature *s = &n.sigs[line];
        uint32_t key_id = s->key_id;
        for (size_t i = 0; i < 4 + s->sig_len; i++) {
            for (int bit = 0; bit < 8; bit += 3) {
                if (i < 4)
                    s->key_id = key_id ^ (1u << (8 * (3 - i) + (unsigned)bit));
                else
                    s->sig[i - 4] ^= (uint8_t)(1u << bit);
                buffer out = {0};
                assert_int_equal(note_format(&out, &n, &err), 0);
                if (verify_fixture_text(&f, out.data, out.len, NULL, &err) == 0)
                    fail_msg("%s: signature byte %zu bit %d flipped still verifies", names[c], i, bit);
                buffer_free(&out);
                if (i < 4)
                    s->key_id = key_id;
                else
                    s->sig[i - 4] ^= (uint8_t)(1u << bit);
            }
        }
        /* Unchanged, it still verifies after the round trip through note_format. */
        buffer out = {0};
        assert_int_equal(note_format(&out, &n, &err), 0);
        assert_int_equal(verify_fixture_text(&f, out.data, out.len, NULL, &err), 0);
        buffer_free(&out);
        note_free(&n);
        free_fixture(&f);
    }
}

static void append_random_line(buffer *b, const char *name, uint32_t key_id, size_t sig_len)
{
    uint8_t sig[128];
    assert_true(sig_len <= sizeof sig);
    assert_int_equal(RAND_bytes(sig, (int)sig_len), 1);
    assert_int_equal(note_signature_line(b, name, key_id, sig, sig_len, NULL), 0);
}

static void test_unknown_and_grease_lines_are_ignored(void **state)
{
    (void)state;
    fixture f;
    load_fixture(&f, "rome2026h1");
    error err = {0};
    note n;
    assert_int_equal(note_parse(&n, (const char *)f.text.data, f.text.len, &err), 0);
    uint32_t key_id = n.sigs[0].key_id;

    /* Grease before and after the real line; a known name with another ID; a known ID with
     * another name. */
    buffer b = {0};
    assert_int_equal(buffer_append(&b, n.text, n.text_len), 0);
    assert_int_equal(buffer_append_byte(&b, '\n'), 0);
    append_random_line(&b, "grease.invalid", 0x0cb8d048, 33);
    append_random_line(&b, f.origin, key_id ^ 0x80000000u, 79);
    assert_int_equal(note_signature_line(&b, f.origin, key_id, n.sigs[0].sig, n.sigs[0].sig_len, &err), 0);
    append_random_line(&b, "rome2026h1.example.org/other", key_id, 79);
    append_random_line(&b, f.origin, 0x12345678, 64);
    signed_checkpoint sc;
    if (verify_fixture_text(&f, b.data, b.len, &sc, &err) != 0)
        fail_msg("%s", err.msg);
    assert_true(sc.cp.size == 300);
    assert_true(sc.timestamp == 1767139200000ULL);

    /* A second line claiming the known (name, key ID) but with a bad signature rejects. */
    uint8_t bad[128];
    memcpy(bad, n.sigs[0].sig, n.sigs[0].sig_len);
    bad[20] ^= 1;
    assert_int_equal(note_signature_line(&b, f.origin, key_id, bad, n.sigs[0].sig_len, &err), 0);
    assert_int_equal(verify_fixture_text(&f, b.data, b.len, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "known key"));

    /* Only unknown lines: rejected. */
    buffer only = {0};
    assert_int_equal(buffer_append(&only, n.text, n.text_len), 0);
    assert_int_equal(buffer_append_byte(&only, '\n'), 0);
    append_random_line(&only, "grease.invalid", 1, 40);
    append_random_line(&only, f.origin, key_id + 1, 79);
    assert_int_equal(verify_fixture_text(&f, only.data, only.len, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no signature from a known key"));

    buffer_free(&only);
    buffer_free(&b);
    note_free(&n);
    free_fixture(&f);
}

static void test_wrong_origin_fails(void **state)
{
    (void)state;
    fixture f;
    load_fixture(&f, "willow2025h1b");
    error err = {0};
    assert_int_equal(checkpoint_verify((const char *)f.text.data, f.text.len,
                                       "willow.ct.letsencrypt.org/2025h2b", f.key, NULL, &err), -1);
    assert_int_equal(checkpoint_verify((const char *)f.text.data, f.text.len,
                                       "https://willow.ct.letsencrypt.org/2025h1b", f.key, NULL, &err), -1);
    free_fixture(&f);

    /* rome's signature line kept, but the body names another origin. The TreeHeadSignature
     * does not cover the origin, so only the origin check can catch this. */
    load_fixture(&f, "rome2026h1");
    note n;
    assert_int_equal(note_parse(&n, (const char *)f.text.data, f.text.len, &err), 0);
    buffer b = {0};
    assert_int_equal(buffer_append_str(&b, "evil.example.org"), 0);
    assert_int_equal(buffer_append(&b, n.text + strlen(f.origin), n.text_len - strlen(f.origin)), 0);
    assert_int_equal(buffer_append_byte(&b, '\n'), 0);
    assert_int_equal(note_signature_line(&b, n.sigs[0].name, n.sigs[0].key_id, n.sigs[0].sig,
                                         n.sigs[0].sig_len, &err), 0);
    assert_int_equal(verify_fixture_text(&f, b.data, b.len, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "origin"));
    buffer_free(&b);
    note_free(&n);

    /* A different key for the right origin: its key ID differs, so nothing is known. */
    EVP_PKEY *other = public_key_load_pem(testdata_path("checkpoints/willow2025h1b.pub.pem"), &err);
    assert_int_equal(checkpoint_verify((const char *)f.text.data, f.text.len, f.origin, other, NULL, &err), -1);
    EVP_PKEY_free(other);
    free_fixture(&f);
}

static void test_extension_lines_rejected_for_rfc6962(void **state)
{
    (void)state;
    fixture f;
    load_fixture(&f, "rome2026h1");
    error err = {0};
    note n;
    assert_int_equal(note_parse(&n, (const char *)f.text.data, f.text.len, &err), 0);
    buffer b = {0};
    assert_int_equal(buffer_append(&b, n.text, n.text_len), 0);
    assert_int_equal(buffer_append_str(&b, "some extension\n\n"), 0);
    assert_int_equal(note_signature_line(&b, n.sigs[0].name, n.sigs[0].key_id, n.sigs[0].sig,
                                         n.sigs[0].sig_len, &err), 0);
    assert_int_equal(verify_fixture_text(&f, b.data, b.len, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "extension"));

    checkpoint cp;
    assert_int_equal(checkpoint_body_parse(&cp, (const char *)b.data, n.text_len + strlen("some extension\n"), &err), 0);
    assert_int_equal(cp.extension_lines, 1);
    buffer_free(&b);
    note_free(&n);
    free_fixture(&f);
}

static void test_sign_verify_round_trip(void **state)
{
    (void)state;
    error err = {0};
    EVP_PKEY *key = private_key_generate(KEY_KIND_EC_P256, &err);
    log_signer *signer = log_signer_new(key, &err);
    assert_non_null(signer);
    const char *origin = "log.example.com/2026h1";
    uint8_t root[32];
    sha256("", 0, root);

    for (uint64_t size = 0; size < 3; size++) {
        uint64_t ts = 1767139200000ULL + size;
        buffer a = {0}, b = {0};
        assert_int_equal(checkpoint_sign(&a, signer, origin, size, root, ts, &err), 0);
        assert_int_equal(checkpoint_sign(&b, signer, origin, size, root, ts, &err), 0);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        char want_head[128];
        snprintf(want_head, sizeof want_head,
                 "%s\n%llu\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n\xe2\x80\x94 %s ",
                 origin, (unsigned long long)size, origin);
        assert_true(a.len > strlen(want_head));
        assert_memory_equal(a.data, want_head, strlen(want_head));

        signed_checkpoint sc;
        if (checkpoint_verify((const char *)a.data, a.len, origin, log_signer_public_key(signer), &sc, &err) != 0)
            fail_msg("%s", err.msg);
        assert_true(sc.cp.size == size);
        assert_true(sc.timestamp == ts);
        assert_memory_equal(sc.cp.root, root, 32);
        /* The tree_head_signature is exactly what the signer makes for the 50-byte input. */
        uint8_t input[TREE_HEAD_SIGNATURE_INPUT_LEN];
        tree_head_signature_input(input, ts, size, root);
        static const uint8_t prefix[] = {0, 1};
        assert_memory_equal(input, prefix, 2);
        buffer ths = {0};
        assert_int_equal(log_signer_sign(signer, input, sizeof input, &ths, &err), 0);
        assert_int_equal(sc.tree_head_signature_len, ths.len);
        assert_memory_equal(sc.tree_head_signature, ths.data, ths.len);
        /* get-sth -> checkpoint gives the same note. */
        buffer c = {0};
        assert_int_equal(checkpoint_from_sth(&c, origin, log_signer_log_id(signer), size, root, ts,
                                             ths.data, ths.len, &err), 0);
        assert_int_equal(c.len, a.len);
        assert_memory_equal(c.data, a.data, a.len);
        buffer_free(&c);
        buffer_free(&ths);
        buffer_free(&a);
        buffer_free(&b);
    }
    /* Origins that cannot be key names are refused. */
    buffer x = {0};
    assert_int_equal(checkpoint_sign(&x, signer, "has space", 1, root, 1, &err), -1);
    assert_int_equal(checkpoint_sign(&x, signer, "a+b", 1, root, 1, &err), -1);
    assert_int_equal(checkpoint_sign(&x, signer, "", 1, root, 1, &err), -1);
    assert_int_equal(x.len, 0);
    uint8_t bogus[3] = {4, 3, 0};
    assert_int_equal(checkpoint_from_sth(&x, origin, log_signer_log_id(signer), 1, root, 1, bogus, 3, &err), -1);
    log_signer_free(signer);
    EVP_PKEY_free(key);
}

static void test_ed25519_sign_and_spec_example(void **state)
{
    (void)state;
    error err = {0};
    /* c2sp signed-note example vkey and note. */
    uint8_t vkey[33];
    assert_int_equal(base64_decode_exact(vkey, 33, "AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", 44), 0);
    assert_int_equal(vkey[0], NOTE_SIG_ED25519);
    assert_int_equal(note_key_id("example.com/foo", NOTE_SIG_ED25519, vkey + 1, 32), 0x530d903a);
    EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, vkey + 1, 32);
    assert_non_null(pub);
    static const char example[] =
        "This is an example message.\n\n"
        "\xe2\x80\x94 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
    note n;
    assert_int_equal(note_parse(&n, example, strlen(example), &err), 0);
    assert_string_equal(n.text, "This is an example message.\n");
    note_verifier v;
    assert_int_equal(note_verifier_init(&v, "example.com/foo", NOTE_SIG_ED25519, pub, &err), 0);
    assert_int_equal(v.key_id, 0x530d903a);
    assert_int_equal(note_verify(&n, &v, 1, NULL, &err), 0);
    note_free(&n);
    EVP_PKEY_free(pub);

    /* Sign a checkpoint with both the log key and an Ed25519 note key; both verify. */
    EVP_PKEY *log_key = private_key_generate(KEY_KIND_EC_P256, &err);
    EVP_PKEY *ed = private_key_generate(KEY_KIND_ED25519, &err);
    log_signer *signer = log_signer_new(log_key, &err);
    assert_non_null(signer);
    assert_non_null(ed);
    const char *origin = "log.example.com/2026h1";
    uint8_t root[32] = {1, 2, 3};
    buffer cp = {0}, body = {0};
    assert_int_equal(checkpoint_sign(&cp, signer, origin, 42, root, 1000, &err), 0);
    assert_int_equal(checkpoint_body_format(&body, origin, 42, root, &err), 0);
    size_t before = cp.len;
    assert_int_equal(note_sign_ed25519_line(&cp, origin, ed, (const char *)body.data, body.len, &err), 0);
    /* Ed25519 is deterministic too. */
    buffer line = {0};
    assert_int_equal(note_sign_ed25519_line(&line, origin, ed, (const char *)body.data, body.len, &err), 0);
    assert_int_equal(line.len, cp.len - before);
    assert_memory_equal(line.data, cp.data + before, line.len);
    assert_int_equal(line.len, 4 + strlen(origin) + 1 + 92 + 1);

    assert_int_equal(note_parse(&n, (const char *)cp.data, cp.len, &err), 0);
    note_verifier vs[2];
    assert_int_equal(note_verifier_init(&vs[0], origin, NOTE_SIG_RFC6962, log_signer_public_key(signer), &err), 0);
    assert_int_equal(note_verifier_init(&vs[1], origin, NOTE_SIG_ED25519, ed, &err), 0);
    bool verified[2];
    assert_int_equal(note_verify(&n, vs, 2, verified, &err), 0);
    assert_true(verified[0] && verified[1]);
    note_free(&n);
    /* Still a valid 0x05 checkpoint for clients that only know the log key. */
    assert_int_equal(checkpoint_verify((const char *)cp.data, cp.len, origin, log_signer_public_key(signer), NULL, &err), 0);
    /* Wrong key types for a verifier type are refused. */
    assert_int_equal(note_verifier_init(&v, origin, NOTE_SIG_ED25519, log_key, &err), -1);
    assert_int_equal(note_verifier_init(&v, origin, NOTE_SIG_RFC6962, ed, &err), -1);
    assert_int_equal(note_verifier_init(&v, origin, 0x04, ed, &err), -1);

    buffer_free(&line);
    buffer_free(&cp);
    buffer_free(&body);
    log_signer_free(signer);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(log_key);
}

static void test_malformed_notes_are_rejected(void **state)
{
    (void)state;
    /* A valid signature payload: key ID + 4 bytes. */
    static const struct {
        const char *note, *reason;
    } cases[] = {
        {"text\n\xe2\x80\x94 k AAAAAAAAAAA=\n", "no empty line"},
        {"text\n\n", "no signatures"},
        {"text\n\n\xe2\x80\x94 k AAAAAAAAAAA=", "newline"},
        {"te\xffxt\n\n\xe2\x80\x94 k AAAAAAAAAAA=\n", "UTF-8"},
        {"te\xc0\xafxt\n\n\xe2\x80\x94 k AAAAAAAAAAA=\n", "UTF-8"},       /* overlong '/' */
        {"te\xed\xa0\x80xt\n\n\xe2\x80\x94 k AAAAAAAAAAA=\n", "UTF-8"},   /* surrogate */
        {"te\xe2\x80xt\n\n\xe2\x80\x94 k AAAAAAAAAAA=\n", "UTF-8"},       /* truncated */
        {"text\r\n\n\xe2\x80\x94 k AAAAAAAAAAA=\n", "control character"},
        {"te\txt\n\n\xe2\x80\x94 k AAAAAAAAAAA=\n", "control character"},
        {"text\n\n\xe2\x80\x94 k AAAAAAAAAAA=\x01\n", "control character"},
        {"text\n\n\xe2\x80\x94 k AAAAAAAAAA*=\n", "base64"},
        {"text\n\n\xe2\x80\x94 k AAAAAAAAAAA\n", "base64"},                /* no padding */
        {"text\n\n\xe2\x80\x94 k AAAAAAAAAAB=\n", "base64"},               /* non-zero pad bits */
        {"text\n\n\xe2\x80\x94 k \n", "base64"},
        {"text\n\n\xe2\x80\x94 k AAAAAA==\n", "shorter"},                  /* 4 bytes: ID only */
        {"text\n\n\xe2\x80\x94 k\n", "no signature after"},
        {"text\n\n- k AAAAAAAAAAA=\n", "em dash"},
        {"text\n\n\xe2\x80\x94k AAAAAAAAAAA=\n", "em dash"},               /* no space after — */
        {"text\n\n\xe2\x80\x94  AAAAAAAAAAA=\n", "key name"},              /* empty name */
        {"text\n\n\xe2\x80\x94 a+b AAAAAAAAAAA=\n", "key name"},
        {"text\n\n\xe2\x80\x94 a\xc2\xa0" "b AAAAAAAAAAA=\n", "key name"},   /* NBSP in name */
        {"text\n\n\xe2\x80\x94 k AAAAAAAAAAA=\n\xe2\x80\x94 k AAAAAAAAAAA= extra\n", "base64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        note n;
        error err = {0};
        if (note_parse(&n, cases[i].note, strlen(cases[i].note), &err) == 0)
            fail_msg("case %zu parsed", i);
        if (!strstr(err.msg, cases[i].reason))
            fail_msg("case %zu: reason \"%s\" lacks \"%s\"", i, err.msg, cases[i].reason);
    }
    /* NUL bytes count as control characters too. */
    static const char with_nul[] = "te\0xt\n\n\xe2\x80\x94 k AAAAAAAAAAA=\n";
    note n;
    error err = {0};
    assert_int_equal(note_parse(&n, with_nul, sizeof with_nul - 1, &err), -1);
    assert_non_null(strstr(err.msg, "control"));

    /* Accepted: empty lines inside the text (split at the last one), DEL, non-ASCII. */
    static const char ok[] = "a\n\nb \x7f \xe2\x82\xac\n\n\n\xe2\x80\x94 k\xc3\xa9/x AAAAAAAAAAA=\n";
    assert_int_equal(note_parse(&n, ok, strlen(ok), &err), 0);
    assert_string_equal(n.text, "a\n\nb \x7f \xe2\x82\xac\n\n");
    assert_int_equal(n.n_sigs, 1);
    assert_string_equal(n.sigs[0].name, "k\xc3\xa9/x");
    assert_int_equal(n.sigs[0].key_id, 0);
    assert_int_equal(n.sigs[0].sig_len, 4);
    buffer out = {0};
    assert_int_equal(note_format(&out, &n, &err), 0);
    assert_int_equal(out.len, strlen(ok));
    assert_memory_equal(out.data, ok, out.len);
    buffer_free(&out);
    note_free(&n);
}

static void test_signature_count_and_size_bounds(void **state)
{
    (void)state;
    fixture f;
    load_fixture(&f, "rome2026h1");
    error err = {0};
    /* 16 and 100 signatures are accepted (the real one last), 101 are not. */
    const size_t counts[] = {16, 100, 101};
    for (size_t c = 0; c < 3; c++) {
        buffer b = {0};
        assert_int_equal(buffer_append(&b, f.text.data, f.text.len), 0);
        for (size_t i = 1; i < counts[c]; i++)
            append_random_line(&b, "grease.invalid", (uint32_t)i, 40);
        int ret = verify_fixture_text(&f, b.data, b.len, NULL, &err);
        if (counts[c] <= NOTE_MAX_SIGNATURES)
            assert_int_equal(ret, 0);
        else {
            assert_int_equal(ret, -1);
            assert_non_null(strstr(err.msg, "more than 100 signatures"));
        }
        buffer_free(&b);
    }
    /* A note over 1 MiB is refused before anything else. */
    buffer big = {0};
    assert_int_equal(buffer_reserve(&big, NOTE_MAX_SIZE + 100), 0);
    memset(big.data, 'a', NOTE_MAX_SIZE);
    big.len = NOTE_MAX_SIZE;
    assert_int_equal(buffer_append(&big, f.text.data, f.text.len), 0);
    note n;
    assert_int_equal(note_parse(&n, (const char *)big.data, big.len, &err), -1);
    assert_non_null(strstr(err.msg, "larger than"));
    buffer_free(&big);
    free_fixture(&f);
}

static void test_checkpoint_body_parse(void **state)
{
    (void)state;
    static const char root[] = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    static const struct {
        const char *size;
        int ok;
        uint64_t want;
    } sizes[] = {
        {"0", 1, 0}, {"1", 1, 1}, {"300", 1, 300},
        {"18446744073709551615", 1, UINT64_MAX},
        {"18446744073709551616", 0, 0}, {"00", 0, 0}, {"0300", 0, 0}, {"", 0, 0},
        {"+1", 0, 0}, {"-1", 0, 0}, {"1 ", 0, 0}, {"0x10", 0, 0}, {"99999999999999999999", 0, 0},
    };
    char text[512];
    checkpoint cp;
    error err = {0};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(text, sizeof text, "o.example\n%s\n%s\n", sizes[i].size, root);
        int ret = checkpoint_body_parse(&cp, text, strlen(text), &err);
        if (sizes[i].ok) {
            assert_int_equal(ret, 0);
            assert_true(cp.size == sizes[i].want);
        } else if (ret == 0) {
            fail_msg("size \"%s\" accepted", sizes[i].size);
        }
    }
    static const char *bad[] = {
        "", "o\n", "o\n1\n", "o\n1\n" "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF==\n",       /* 31 bytes */
        "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n",        /* no padding */
        "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\next\n", /* empty extension */
        "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (checkpoint_body_parse(&cp, bad[i], strlen(bad[i]), &err) == 0)
            fail_msg("bad checkpoint %zu accepted", i);
    /* Extensions are counted. */
    snprintf(text, sizeof text, "o\n7\n%s\nx\ny z\n", root);
    assert_int_equal(checkpoint_body_parse(&cp, text, strlen(text), &err), 0);
    assert_int_equal(cp.extension_lines, 2);
    /* Format and parse agree. */
    buffer b = {0};
    uint8_t r[32];
    for (int i = 0; i < 32; i++)
        r[i] = (uint8_t)(i * 7);
    assert_int_equal(checkpoint_body_format(&b, "rome.ct.example.com/2024h1", 1237717073, r, &err), 0);
    assert_int_equal(checkpoint_body_parse(&cp, (const char *)b.data, b.len, &err), 0);
    assert_string_equal(cp.origin, "rome.ct.example.com/2024h1");
    assert_true(cp.size == 1237717073);
    assert_memory_equal(cp.root, r, 32);
    buffer_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_checkpoints_verify),
        cmocka_unit_test(test_note_format_reproduces_real_notes),
        cmocka_unit_test(test_dev2024h2b_ed25519_line),
        cmocka_unit_test(test_any_changed_byte_fails),
        cmocka_unit_test(test_unknown_and_grease_lines_are_ignored),
        cmocka_unit_test(test_wrong_origin_fails),
        cmocka_unit_test(test_extension_lines_rejected_for_rfc6962),
        cmocka_unit_test(test_sign_verify_round_trip),
        cmocka_unit_test(test_ed25519_sign_and_spec_example),
        cmocka_unit_test(test_malformed_notes_are_rejected),
        cmocka_unit_test(test_signature_count_and_size_bounds),
        cmocka_unit_test(test_checkpoint_body_parse),
    };
    return cmocka_run_group_tests_name("note", tests, NULL, NULL);
}
