#include "keys.h"

#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "rfc6979.h"
#include "sha256.h"

/* Key and PEM files are tiny; anything larger is not what we were asked to read. */
#define KEY_FILE_MAX (64 * 1024)

/* Sets err from OpenSSL's most recent error and empties the thread's error queue, so a stale
 * entry cannot be mistaken for a later failure by another library on this thread. */
static int crypto_error(error *err, const char *what)
{
    unsigned long code = ERR_peek_last_error();
    char reason[160] = "";
    if (code) {
        const char *r = ERR_reason_error_string(code);
        snprintf(reason, sizeof reason, "%s", r ? r : "unknown error");
    }
    ERR_clear_error();
    if (reason[0])
        return error_set(err, "%s: %s", what, reason);
    return error_set(err, "%s", what);
}

key_kind key_kind_of(const EVP_PKEY *key)
{
    if (!key)
        return KEY_KIND_UNSUPPORTED;
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC: {
        char name[64];
        size_t len = 0;
        if (EVP_PKEY_get_group_name(key, name, sizeof name, &len) != 1) {
            ERR_clear_error();
            return KEY_KIND_UNSUPPORTED;
        }
        int nid = OBJ_txt2nid(name);
        if (nid == NID_undef)
            nid = EC_curve_nist2nid(name);
        ERR_clear_error();
        return nid == NID_X9_62_prime256v1 ? KEY_KIND_EC_P256 : KEY_KIND_UNSUPPORTED;
    }
    case EVP_PKEY_RSA:
        return EVP_PKEY_get_bits(key) >= 2048 ? KEY_KIND_RSA : KEY_KIND_UNSUPPORTED;
    case EVP_PKEY_ED25519:
        return KEY_KIND_ED25519;
    default:
        return KEY_KIND_UNSUPPORTED;
    }
}

static int read_small_file(const char *path, buffer *out, error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return error_set(err, "cannot open %s: %s", path, strerror(errno));
    int ret = 0;
    for (;;) {
        if (buffer_reserve(out, 4096) != 0) {
            ret = error_set(err, "out of memory reading %s", path);
            break;
        }
        ssize_t n = read(fd, out->data + out->len, out->cap - out->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = error_set(err, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        out->len += (size_t)n;
        if (out->len > KEY_FILE_MAX) {
            ret = error_set(err, "%s is larger than %d bytes", path, KEY_FILE_MAX);
            break;
        }
    }
    close(fd);
    return ret;
}

/* Wipes a buffer that held key material before freeing it. */
static void buffer_wipe(buffer *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->cap);
    buffer_free(b);
}

/* --- private keys --- */

/* Refuses encrypted PEM instead of letting OpenSSL prompt on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

EVP_PKEY *private_key_parse_pem(const char *pem, size_t len, error *err)
{
    if (len > KEY_FILE_MAX) {
        error_set(err, "private key PEM too large");
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        error_set(err, "out of memory");
        return NULL;
    }
    EVP_PKEY *key = PEM_read_bio_PrivateKey_ex(bio, NULL, no_password, NULL, NULL, NULL);
    BIO_free(bio);
    if (!key) {
        crypto_error(err, "no usable private key in PEM (encrypted keys are not supported)");
        return NULL;
    }
    key_kind kind = key_kind_of(key);
    if (kind != KEY_KIND_EC_P256 && kind != KEY_KIND_ED25519) {
        EVP_PKEY_free(key);
        error_set(err, "private key is neither ECDSA P-256 nor Ed25519");
        return NULL;
    }
    return key;
}

EVP_PKEY *private_key_load_pem(const char *path, error *err)
{
    buffer pem = {0};
    EVP_PKEY *key = NULL;
    if (read_small_file(path, &pem, err) == 0) {
        key = private_key_parse_pem((const char *)pem.data, pem.len, err);
        if (!key)
            error_wrap(err, "%s", path);
    }
    buffer_wipe(&pem);
    return key;
}

EVP_PKEY *private_key_generate(key_kind kind, error *err)
{
    EVP_PKEY *key = NULL;
    if (kind == KEY_KIND_EC_P256)
        key = EVP_EC_gen("P-256");
    else if (kind == KEY_KIND_ED25519)
        key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    else {
        error_set(err, "can only generate P-256 and Ed25519 keys");
        return NULL;
    }
    if (!key)
        crypto_error(err, "key generation failed");
    return key;
}

int private_key_store_pem(const char *path, const EVP_PKEY *key, error *err)
{
    key_kind kind = key_kind_of(key);
    if (kind != KEY_KIND_EC_P256 && kind != KEY_KIND_ED25519)
        return error_set(err, "refusing to store a key that is neither P-256 nor Ed25519");
    /* Secure-heap memory BIO: the PEM text is the key. */
    BIO *bio = BIO_new(BIO_s_secmem());
    if (!bio)
        return error_set(err, "out of memory");
    if (PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
        BIO_free(bio);
        return crypto_error(err, "cannot encode the private key");
    }
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);

    int ret = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        ret = error_set(err, "cannot create %s: %s", path, strerror(errno));
    } else {
        /* The umask can only narrow 0600, but say exactly what we mean. */
        if (fchmod(fd, 0600) != 0 || fd_write_all(fd, (const uint8_t *)pem, (size_t)pem_len) != 0 ||
            fsync(fd) != 0)
            ret = error_set(err, "cannot write %s: %s", path, strerror(errno));
        if (close(fd) != 0 && ret == 0)
            ret = error_set(err, "cannot write %s: %s", path, strerror(errno));
        if (ret != 0) {
            unlink(path);
        } else {
            /* Make the new directory entry durable too. */
            char *copy = strdup(path);
            if (copy) {
                int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0) {
                    fsync(dfd);
                    close(dfd);
                }
                free(copy);
            }
        }
    }
    BIO_free(bio); /* secmem BIO wipes itself */
    return ret;
}

/* --- public keys --- */

static EVP_PKEY *check_public(EVP_PKEY *key, error *err)
{
    if (key && key_kind_of(key) == KEY_KIND_UNSUPPORTED) {
        EVP_PKEY_free(key);
        error_set(err, "public key is not ECDSA P-256, RSA >= 2048 bits or Ed25519");
        return NULL;
    }
    return key;
}

EVP_PKEY *public_key_parse_pem(const char *pem, size_t len, error *err)
{
    if (len > KEY_FILE_MAX) {
        error_set(err, "public key PEM too large");
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        error_set(err, "out of memory");
        return NULL;
    }
    EVP_PKEY *key = PEM_read_bio_PUBKEY_ex(bio, NULL, no_password, NULL, NULL, NULL);
    BIO_free(bio);
    if (!key) {
        crypto_error(err, "no PUBLIC KEY in PEM");
        return NULL;
    }
    return check_public(key, err);
}

EVP_PKEY *public_key_load_pem(const char *path, error *err)
{
    buffer pem = {0};
    EVP_PKEY *key = NULL;
    if (read_small_file(path, &pem, err) == 0) {
        key = public_key_parse_pem((const char *)pem.data, pem.len, err);
        if (!key)
            error_wrap(err, "%s", path);
    }
    buffer_free(&pem);
    return key;
}

EVP_PKEY *public_key_parse_spki(const uint8_t *der, size_t len, error *err)
{
    if (len == 0 || len > KEY_FILE_MAX) {
        error_set(err, "bad SubjectPublicKeyInfo length %zu", len);
        return NULL;
    }
    const unsigned char *p = der;
    EVP_PKEY *key = d2i_PUBKEY_ex(NULL, &p, (long)len, NULL, NULL);
    if (!key) {
        crypto_error(err, "bad SubjectPublicKeyInfo");
        return NULL;
    }
    if (p != der + len) {
        EVP_PKEY_free(key);
        error_set(err, "trailing bytes after SubjectPublicKeyInfo");
        return NULL;
    }
    return check_public(key, err);
}

int public_key_pem(buffer *out, const EVP_PKEY *key, error *err)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        return error_set(err, "out of memory");
    int ret = 0;
    char *pem = NULL;
    if (PEM_write_bio_PUBKEY(bio, key) != 1)
        ret = crypto_error(err, "cannot encode the public key");
    else {
        long n = BIO_get_mem_data(bio, &pem);
        if (buffer_append(out, pem, (size_t)n) != 0 || buffer_terminate(out) != 0)
            ret = error_set(err, "out of memory");
    }
    BIO_free(bio);
    return ret;
}

int public_key_spki(buffer *out, const EVP_PKEY *key, error *err)
{
    int n = i2d_PUBKEY(key, NULL);
    if (n <= 0)
        return crypto_error(err, "cannot encode the public key");
    if (buffer_reserve(out, (size_t)n) != 0)
        return error_set(err, "out of memory");
    unsigned char *p = out->data + out->len;
    if (i2d_PUBKEY(key, &p) != n)
        return crypto_error(err, "cannot encode the public key");
    out->len += (size_t)n;
    return 0;
}

int public_key_log_id(const EVP_PKEY *key, uint8_t out[LOG_ID_LEN], error *err)
{
    buffer spki = {0};
    int ret = public_key_spki(&spki, key, err);
    if (ret == 0)
        sha256(spki.data, spki.len, out);
    buffer_free(&spki);
    return ret;
}

int public_key_ed25519_raw(const EVP_PKEY *key, uint8_t out[ED25519_KEY_LEN], error *err)
{
    size_t len = ED25519_KEY_LEN;
    if (key_kind_of(key) != KEY_KIND_ED25519)
        return error_set(err, "not an Ed25519 key");
    if (EVP_PKEY_get_raw_public_key(key, out, &len) != 1 || len != ED25519_KEY_LEN)
        return crypto_error(err, "cannot read the Ed25519 public key");
    return 0;
}

/* --- DigitallySigned --- */

int digitally_signed_encode(buffer *out, const digitally_signed *ds)
{
    size_t start = out->len;
    if (tls_put_u8(out, ds->hash_alg) != 0 || tls_put_u8(out, ds->sig_alg) != 0 ||
        tls_put_vec(out, 2, ds->sig, ds->sig_len) != 0) {
        out->len = start;
        return -1;
    }
    return 0;
}

int digitally_signed_read(tls_reader *r, digitally_signed *out, error *err)
{
    tls_reader saved = *r;
    if (tls_get_u8(r, &out->hash_alg) != 0 || tls_get_u8(r, &out->sig_alg) != 0 ||
        tls_get_vec(r, 2, &out->sig, &out->sig_len) != 0) {
        *r = saved;
        return error_set(err, "truncated DigitallySigned");
    }
    return 0;
}

int digitally_signed_parse(const uint8_t *data, size_t len, digitally_signed *out, error *err)
{
    tls_reader r;
    tls_reader_init(&r, data, len);
    if (digitally_signed_read(&r, out, err) != 0)
        return -1;
    if (!tls_reader_empty(&r))
        return error_set(err, "trailing bytes after DigitallySigned");
    return 0;
}

int digitally_signed_verify(EVP_PKEY *key, const uint8_t *msg, size_t msg_len,
                            const digitally_signed *ds, error *err)
{
    if (ds->hash_alg != DS_HASH_SHA256)
        return error_set(err, "DigitallySigned hash algorithm %u is not SHA-256", ds->hash_alg);
    key_kind kind = key_kind_of(key);
    if (!((kind == KEY_KIND_EC_P256 && ds->sig_alg == DS_SIG_ECDSA) ||
          (kind == KEY_KIND_RSA && ds->sig_alg == DS_SIG_RSA)))
        return error_set(err, "DigitallySigned signature algorithm %u does not match the key",
                         ds->sig_alg);
    if (ds->sig_len == 0)
        return error_set(err, "empty signature");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return error_set(err, "out of memory");
    int ret = 0;
    /* For RSA keys the default padding is PKCS#1 v1.5, which RFC 6962 requires. OpenSSL's
     * ECDSA verify also insists on canonical DER, so the signature is not malleable. */
    if (EVP_DigestVerifyInit_ex(ctx, NULL, "SHA2-256", NULL, NULL, key, NULL) != 1)
        ret = crypto_error(err, "cannot set up signature verification");
    else if (EVP_DigestVerify(ctx, ds->sig, ds->sig_len, msg, msg_len) != 1) {
        ERR_clear_error();
        ret = error_set(err, "signature does not verify");
    }
    EVP_MD_CTX_free(ctx);
    return ret;
}

/* --- log_signer --- */

struct log_signer {
    rfc6979_key *det;
    EVP_PKEY *public_key;
    uint8_t log_id[LOG_ID_LEN];
    uint8_t *spki;
    size_t spki_len;
};

void log_signer_free(log_signer *signer)
{
    if (!signer)
        return;
    rfc6979_key_free(signer->det);
    EVP_PKEY_free(signer->public_key);
    free(signer->spki);
    free(signer);
}

log_signer *log_signer_new(EVP_PKEY *key, error *err)
{
    if (key_kind_of(key) != KEY_KIND_EC_P256) {
        error_set(err, "the log key must be ECDSA P-256");
        return NULL;
    }
    log_signer *signer = calloc(1, sizeof *signer);
    BIGNUM *d = NULL;
    EC_GROUP *group = NULL;
    buffer spki = {0}, probe = {0};
    if (!signer) {
        error_set(err, "out of memory");
        return NULL;
    }
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1) {
        crypto_error(err, "the log key has no private part");
        goto fail;
    }
    if (!(group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1))) {
        crypto_error(err, "cannot set up P-256");
        goto fail;
    }
    if (!(signer->det = rfc6979_key_new(group, d, err)))
        goto fail;
    if (public_key_spki(&spki, key, err) != 0)
        goto fail;
    signer->spki = buffer_steal(&spki, &signer->spki_len);
    sha256(signer->spki, signer->spki_len, signer->log_id);
    if (!(signer->public_key = public_key_parse_spki(signer->spki, signer->spki_len, err)))
        goto fail;

    /* A SEC1 file can carry a public key that does not belong to its private scalar; every
     * SCT would then fail to verify. One signature now catches that. */
    static const uint8_t self_test[] = "tegula log key self-test";
    digitally_signed ds;
    if (log_signer_sign(signer, self_test, sizeof self_test, &probe, err) != 0 ||
        digitally_signed_parse(probe.data, probe.len, &ds, err) != 0 ||
        digitally_signed_verify(signer->public_key, self_test, sizeof self_test, &ds, err) != 0) {
        error_wrap(err, "the private key does not match its public key");
        goto fail;
    }
    buffer_free(&probe);
    BN_clear_free(d);
    EC_GROUP_free(group);
    return signer;

fail:
    buffer_free(&spki);
    buffer_free(&probe);
    BN_clear_free(d);
    EC_GROUP_free(group);
    log_signer_free(signer);
    return NULL;
}

log_signer *log_signer_load(const char *path, error *err)
{
    EVP_PKEY *key = private_key_load_pem(path, err);
    if (!key)
        return NULL;
    log_signer *signer = log_signer_new(key, err);
    if (!signer)
        error_wrap(err, "%s", path);
    EVP_PKEY_free(key);
    return signer;
}

int log_signer_sign(const log_signer *signer, const uint8_t *msg, size_t len, buffer *out,
                    error *err)
{
    uint8_t digest[SHA256_LEN];
    size_t start = out->len, mark;
    sha256(msg, len, digest);
    if (tls_put_u8(out, DS_HASH_SHA256) != 0 || tls_put_u8(out, DS_SIG_ECDSA) != 0 ||
        tls_vec_begin(out, 2, &mark) != 0) {
        out->len = start;
        return error_set(err, "out of memory");
    }
    if (rfc6979_sign(signer->det, digest, sizeof digest, out, err) != 0 ||
        tls_vec_end(out, 2, mark) != 0) {
        out->len = start;
        return -1;
    }
    return 0;
}

const uint8_t *log_signer_log_id(const log_signer *signer)
{
    return signer->log_id;
}

const uint8_t *log_signer_spki(const log_signer *signer, size_t *len)
{
    *len = signer->spki_len;
    return signer->spki;
}

EVP_PKEY *log_signer_public_key(const log_signer *signer)
{
    return signer->public_key;
}
