#include "certgen.h"

#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base64.h"
#include "sha256.h"

#define DAY_SECONDS 86400L
#define LEAF_DEFAULT_LIFETIME (90 * DAY_SECONDS)
/* Certificates start an hour in the past so a verifier with a slightly slow clock accepts
 * them at once. */
#define BACKDATE_SECONDS 3600L
#define ROOT_LIFETIME (20 * 365 * DAY_SECONDS)
#define INTERMEDIATE_LIFETIME (10 * 365 * DAY_SECONDS)
#define CN_MAX_LEN 64   /* RFC 5280 ub-common-name */
#define DNS_NAME_MAX_LEN 253

/* Turns the newest OpenSSL error into a reason and empties the queue, so a later failure is
 * not blamed on an old error. */
static int openssl_fail(error *err, const char *what)
{
    unsigned long code = ERR_peek_last_error();
    const char *reason = code ? ERR_reason_error_string(code) : NULL;
    int rc;
    if (reason)
        rc = error_set(err, "%s: %s", what, reason);
    else if (code)
        rc = error_set(err, "%s: OpenSSL error %#lx", what, code);
    else
        rc = error_set(err, "%s failed", what);
    ERR_clear_error();
    return rc;
}

int certgen_key_type_parse(const char *name, certgen_key_type *out)
{
    if (strcasecmp(name, "p256") == 0 || strcasecmp(name, "p-256") == 0 ||
        strcasecmp(name, "ec") == 0) {
        *out = CERTGEN_KEY_P256;
        return 0;
    }
    if (strcasecmp(name, "rsa2048") == 0 || strcasecmp(name, "rsa-2048") == 0 ||
        strcasecmp(name, "rsa") == 0) {
        *out = CERTGEN_KEY_RSA2048;
        return 0;
    }
    return -1;
}

const char *certgen_key_type_name(certgen_key_type type)
{
    return type == CERTGEN_KEY_RSA2048 ? "RSA-2048" : "P-256";
}

/* ---- keys and files ---- */

EVP_PKEY *certgen_key_generate(certgen_key_type type, error *err)
{
    EVP_PKEY *key = type == CERTGEN_KEY_RSA2048 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    if (!key)
        openssl_fail(err, "generating a key");
    return key;
}

/* Copies a memory BIO's contents to out. */
static int append_bio(BIO *bio, buffer *out, error *err)
{
    BUF_MEM *mem = NULL;
    BIO_get_mem_ptr(bio, &mem);
    if (!mem || buffer_append(out, mem->data, mem->length) != 0 || buffer_terminate(out) != 0)
        return error_set(err, "out of memory");
    return 0;
}

int certgen_private_key_pem(EVP_PKEY *key, buffer *out, error *err)
{
    /* A secure-memory BIO wipes what it held, including while it grows. */
    BIO *bio = BIO_new(BIO_s_secmem());
    if (!bio)
        return openssl_fail(err, "allocating a BIO");
    int rc = 0;
    if (!PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
        rc = openssl_fail(err, "encoding the private key");
    else
        rc = append_bio(bio, out, err);
    BIO_free(bio);
    return rc;
}

void certgen_buffer_cleanse(buffer *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->cap);
    buffer_free(b);
}

/* Passphrase callback that refuses: a CLI must never block on a hidden prompt. */
static int no_passphrase(char *buf, int size, int rwflag, void *user)
{
    (void)buf, (void)size, (void)rwflag, (void)user;
    return -1;
}

EVP_PKEY *certgen_key_read(const char *path, bool allow_public, bool *is_private, error *err)
{
    if (is_private)
        *is_private = false;
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_set(err, "opening %s: %s", path, strerror(errno));
        return NULL;
    }
    BIO *bio = BIO_new_fp(f, BIO_CLOSE);
    if (!bio) {
        fclose(f);
        openssl_fail(err, "allocating a BIO");
        return NULL;
    }
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (key && is_private)
        *is_private = true;
    if (!key && allow_public && BIO_seek(bio, 0) == 0) {
        ERR_clear_error();
        key = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    }
    if (!key) {
        char what[PATH_MAX + 64];
        snprintf(what, sizeof what, "no usable unencrypted PEM %skey in %s",
                 allow_public ? "private or public " : "private ", path);
        openssl_fail(err, what);
    }
    BIO_free(bio);
    return key;
}

int certgen_spki_der(EVP_PKEY *key, buffer *out, error *err)
{
    int len = i2d_PUBKEY(key, NULL);
    if (len <= 0)
        return openssl_fail(err, "encoding the public key");
    if (buffer_reserve(out, (size_t)len) != 0)
        return error_set(err, "out of memory");
    unsigned char *p = out->data + out->len;
    if (i2d_PUBKEY(key, &p) != len)
        return openssl_fail(err, "encoding the public key");
    out->len += (size_t)len;
    return 0;
}

int certgen_public_key_pem(EVP_PKEY *key, buffer *out, error *err)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        return openssl_fail(err, "allocating a BIO");
    int rc;
    if (!PEM_write_bio_PUBKEY(bio, key))
        rc = openssl_fail(err, "encoding the public key");
    else
        rc = append_bio(bio, out, err);
    BIO_free(bio);
    return rc;
}

int certgen_write_file(const char *path, const void *data, size_t len, mode_t mode, bool replace,
                       error *err)
{
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= sizeof tmp)
        return error_set(err, "path too long: %s", path);
    /* mkostemp creates the file 0600, so a key is never readable by others, not even
     * for a moment. */
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return error_set(err, "creating a file next to %s: %s", path, strerror(errno));
    if (fchmod(fd, mode) != 0 || fd_write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        error_set(err, "writing %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (close(fd) != 0) {
        error_set(err, "writing %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    /* link(2) fails if path exists, so "do not overwrite" holds even against a race. */
    int rc = replace ? rename(tmp, path) : link(tmp, path);
    if (rc != 0) {
        int saved = errno;
        unlink(tmp);
        if (saved == EEXIST)
            return error_set(err, "%s already exists; refusing to overwrite it", path);
        return error_set(err, "creating %s: %s", path, strerror(saved));
    }
    if (!replace)
        unlink(tmp);
    return 0;
}

/* ---- certificate building blocks ---- */

/* 16 bytes with the top bits fixed to 01: a positive INTEGER of constant length carrying
 * 126 random bits, so a repeated serial is practically impossible. */
static int random_serial(uint8_t serial[16], error *err)
{
    if (RAND_bytes(serial, 16) != 1)
        return openssl_fail(err, "generating a serial number");
    serial[0] = (uint8_t)((serial[0] & 0x3f) | 0x40);
    return 0;
}

static int set_random_serial(X509 *cert, error *err)
{
    uint8_t serial[16];
    if (random_serial(serial, err) != 0)
        return -1;
    if (!ASN1_STRING_set(X509_get_serialNumber(cert), serial, sizeof serial))
        return openssl_fail(err, "setting the serial number");
    return 0;
}

static int add_conf_extension(X509 *cert, X509V3_CTX *ctx, int nid, const char *value, error *err)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!ext || !X509_add_ext(cert, ext, -1)) {
        X509_EXTENSION_free(ext);
        return openssl_fail(err, "adding an extension");
    }
    X509_EXTENSION_free(ext);
    return 0;
}

static int append_der(buffer *out, X509 *cert, error *err)
{
    int len = i2d_X509(cert, NULL);
    if (len <= 0)
        return openssl_fail(err, "encoding a certificate");
    if (buffer_reserve(out, (size_t)len) != 0)
        return error_set(err, "out of memory");
    unsigned char *p = out->data + out->len;
    if (i2d_X509(cert, &p) != len)
        return openssl_fail(err, "encoding a certificate");
    out->len += (size_t)len;
    return 0;
}

/* PEM by hand (64-column base64 lines), so minting needs no BIO per chain. */
static int append_pem(buffer *out, const char *label, const uint8_t *der, size_t len)
{
    size_t b64_len = base64_encoded_len(len);
    if (buffer_printf(out, "-----BEGIN %s-----\n", label) != 0 ||
        buffer_reserve(out, b64_len + b64_len / 64 + 2) != 0)
        return -1;
    char *b64 = (char *)out->data + out->len;
    base64_encode_to(b64, der, len);
    /* Spread the encoding into lines from the back so it can be done in place. */
    size_t lines = (b64_len + 63) / 64;
    size_t total = b64_len + lines;
    for (size_t line = lines; line-- > 0;) {
        size_t start = line * 64;
        size_t n = b64_len - start < 64 ? b64_len - start : 64;
        memmove(b64 + start + line, b64 + start, n);
        b64[start + line + n] = '\n';
    }
    out->len += total;
    return buffer_printf(out, "-----END %s-----\n", label);
}

/* A test CA certificate: root when issuer is NULL (self-signed), else an intermediate with
 * pathlen 0 signed by issuer_key. */
static X509 *make_ca_cert(EVP_PKEY *key, const char *common_name, X509 *issuer,
                          EVP_PKEY *issuer_key, error *err)
{
    X509 *cert = X509_new();
    X509_NAME *name = X509_NAME_new();
    if (!cert || !name) {
        openssl_fail(err, "allocating a certificate");
        goto fail;
    }
    if (!X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_ASC,
                                    (const unsigned char *)"tegula test", -1, -1, 0) ||
        !X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
                                    (const unsigned char *)common_name, -1, -1, 0)) {
        openssl_fail(err, "building a CA name");
        goto fail;
    }
    if (!X509_set_version(cert, X509_VERSION_3) || set_random_serial(cert, err) != 0 ||
        !X509_set_subject_name(cert, name) ||
        !X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name) ||
        !X509_gmtime_adj(X509_getm_notBefore(cert), -BACKDATE_SECONDS) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert),
                         issuer ? INTERMEDIATE_LIFETIME : ROOT_LIFETIME) ||
        !X509_set_pubkey(cert, key)) {
        if (!error_is_set(err))
            openssl_fail(err, "building a CA certificate");
        goto fail;
    }
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
    if (add_conf_extension(cert, &ctx, NID_basic_constraints,
                           issuer ? "critical,CA:TRUE,pathlen:0" : "critical,CA:TRUE", err) ||
        add_conf_extension(cert, &ctx, NID_key_usage,
                           "critical,digitalSignature,keyCertSign,cRLSign", err) ||
        add_conf_extension(cert, &ctx, NID_subject_key_identifier, "hash", err) ||
        (issuer && add_conf_extension(cert, &ctx, NID_authority_key_identifier,
                                      "keyid:always", err)))
        goto fail;
    if (X509_sign(cert, issuer ? issuer_key : key, EVP_sha256()) <= 0) {
        openssl_fail(err, "signing a CA certificate");
        goto fail;
    }
    X509_NAME_free(name);
    return cert;
fail:
    X509_NAME_free(name);
    X509_free(cert);
    return NULL;
}

/* ---- test CA ---- */

struct certgen_ca {
    X509 *root;
    X509 *intermediate;
    EVP_PKEY *intermediate_key;
};

enum { CA_ROOT_CERT, CA_ROOT_KEY, CA_INTERMEDIATE_CERT, CA_INTERMEDIATE_KEY, CA_FILE_COUNT };
static const char *const ca_file_names[CA_FILE_COUNT] = {"root.pem", "root.key",
                                                         "intermediate.pem", "intermediate.key"};

static int ca_path(char *out, size_t cap, const char *dir, int file, error *err)
{
    if ((size_t)snprintf(out, cap, "%s/%s", dir, ca_file_names[file]) >= cap)
        return error_set(err, "path too long: %s", dir);
    return 0;
}

/* mkdir -p: the CA directory holds private keys, so what it creates is 0700. */
static int make_dirs(const char *dir, error *err)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path)
        return error_set(err, "bad directory name '%s'", dir);
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != 0)
            continue;
        char saved = path[i];
        path[i] = 0;
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return error_set(err, "creating directory %s: %s", path, strerror(errno));
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return error_set(err, "%s is not a directory", dir);
    return 0;
}

static int append_cert_pem(buffer *out, X509 *cert, error *err)
{
    buffer der = {0};
    int rc = append_der(&der, cert, err);
    if (rc == 0 && append_pem(out, "CERTIFICATE", der.data, der.len) != 0)
        rc = error_set(err, "out of memory");
    buffer_free(&der);
    return rc;
}

int certgen_ca_create(const char *dir, certgen_key_type type, error *err)
{
    char paths[CA_FILE_COUNT][PATH_MAX];
    for (int i = 0; i < CA_FILE_COUNT; i++)
        if (ca_path(paths[i], sizeof paths[i], dir, i, err) != 0)
            return -1;
    if (make_dirs(dir, err) != 0)
        return -1;
    for (int i = 0; i < CA_FILE_COUNT; i++)
        if (access(paths[i], F_OK) == 0)
            return error_set(err, "%s already exists; refusing to overwrite an existing CA",
                             paths[i]);

    /* A random tag in both names keeps two test CAs apart in a log's root pool and in
     * chain building by name. */
    uint8_t tag_bytes[4];
    char tag[9], root_cn[64], intermediate_cn[64];
    if (RAND_bytes(tag_bytes, sizeof tag_bytes) != 1)
        return openssl_fail(err, "generating a CA tag");
    hex_encode(tag, tag_bytes, sizeof tag_bytes);
    snprintf(root_cn, sizeof root_cn, "tegula test root %s %s", certgen_key_type_name(type), tag);
    snprintf(intermediate_cn, sizeof intermediate_cn, "tegula test intermediate %s %s",
             certgen_key_type_name(type), tag);

    int rc = -1;
    int written = 0;
    EVP_PKEY *root_key = NULL, *intermediate_key = NULL;
    X509 *root = NULL, *intermediate = NULL;
    buffer contents[CA_FILE_COUNT] = {{0}};
    if (!(root_key = certgen_key_generate(type, err)) ||
        !(intermediate_key = certgen_key_generate(type, err)) ||
        !(root = make_ca_cert(root_key, root_cn, NULL, NULL, err)) ||
        !(intermediate = make_ca_cert(intermediate_key, intermediate_cn, root, root_key, err)))
        goto done;
    if (append_cert_pem(&contents[CA_ROOT_CERT], root, err) != 0 ||
        append_cert_pem(&contents[CA_INTERMEDIATE_CERT], intermediate, err) != 0 ||
        certgen_private_key_pem(root_key, &contents[CA_ROOT_KEY], err) != 0 ||
        certgen_private_key_pem(intermediate_key, &contents[CA_INTERMEDIATE_KEY], err) != 0)
        goto done;
    for (written = 0; written < CA_FILE_COUNT; written++) {
        bool secret = written == CA_ROOT_KEY || written == CA_INTERMEDIATE_KEY;
        if (certgen_write_file(paths[written], contents[written].data, contents[written].len,
                               secret ? 0600 : 0644, false, err) != 0)
            goto done;
    }
    rc = 0;
done:
    /* Never leave half a CA behind: a later --init must not trip over it. */
    if (rc != 0)
        for (int i = 0; i < written; i++)
            unlink(paths[i]);
    for (int i = 0; i < CA_FILE_COUNT; i++)
        certgen_buffer_cleanse(&contents[i]);
    X509_free(root);
    X509_free(intermediate);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(intermediate_key);
    return rc;
}

static X509 *read_cert(const char *path, error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_set(err, "opening %s: %s", path, strerror(errno));
        return NULL;
    }
    X509 *cert = PEM_read_X509(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (!cert) {
        char what[PATH_MAX + 32];
        snprintf(what, sizeof what, "no PEM certificate in %s", path);
        openssl_fail(err, what);
    }
    return cert;
}

certgen_ca *certgen_ca_load(const char *dir, error *err)
{
    char path[PATH_MAX];
    certgen_ca *ca = calloc(1, sizeof *ca);
    if (!ca) {
        error_set(err, "out of memory");
        return NULL;
    }
    if (ca_path(path, sizeof path, dir, CA_ROOT_CERT, err) != 0 ||
        !(ca->root = read_cert(path, err)) ||
        ca_path(path, sizeof path, dir, CA_INTERMEDIATE_CERT, err) != 0 ||
        !(ca->intermediate = read_cert(path, err)) ||
        ca_path(path, sizeof path, dir, CA_INTERMEDIATE_KEY, err) != 0 ||
        !(ca->intermediate_key = certgen_key_read(path, false, NULL, err)))
        goto fail;
    if (!X509_check_private_key(ca->intermediate, ca->intermediate_key)) {
        ERR_clear_error();
        error_set(err, "%s does not match %s/intermediate.pem", path, dir);
        goto fail;
    }
    if (X509_check_issued(ca->root, ca->intermediate) != X509_V_OK) {
        error_set(err, "%s/intermediate.pem was not issued by %s/root.pem", dir, dir);
        goto fail;
    }
    return ca;
fail:
    certgen_ca_free(ca);
    return NULL;
}

void certgen_ca_free(certgen_ca *ca)
{
    if (!ca)
        return;
    X509_free(ca->root);
    X509_free(ca->intermediate);
    EVP_PKEY_free(ca->intermediate_key);
    free(ca);
}

/* ---- minting ----
 *
 * A leaf is assembled directly in DER around pre-encoded constant parts (issuer name, leaf
 * SubjectPublicKeyInfo, fixed extensions, signature algorithm), and its TBSCertificate is
 * signed with a reused EVP_PKEY_CTX: building it through the X509 object API costs about
 * ten times more per certificate in OpenSSL 3.0 (key re-encoding and algorithm fetches on
 * every call), which would make the load generator measure itself. certgen_new checks one
 * minted certificate with OpenSSL's own parser and verifier. */

#define DER_INTEGER 0x02
#define DER_BIT_STRING 0x03
#define DER_OCTET_STRING 0x04
#define DER_OID 0x06
#define DER_UTF8_STRING 0x0c
#define DER_UTC_TIME 0x17
#define DER_GENERALIZED_TIME 0x18
#define DER_SEQUENCE 0x30
#define DER_SET 0x31
#define DER_CONTEXT_0 0xa0
#define DER_CONTEXT_3 0xa3
#define DER_SAN_DNS 0x82 /* GeneralName dNSName [2] IMPLICIT IA5String */

struct certgen {
    EVP_PKEY_CTX *sign_ctx;  /* the intermediate's key, initialised for signing SHA-256 */
    buffer signature_algorithm;   /* DER AlgorithmIdentifier */
    buffer issuer_name;           /* DER Name */
    buffer leaf_spki;             /* DER SubjectPublicKeyInfo of the shared leaf key */
    buffer constant_extensions;   /* DER basicConstraints, keyUsage, EKU, SKI, AKI */
    buffer poison_extension;      /* DER Extension */
    size_t max_signature_len;
    uint8_t *signature;
    buffer tbs;                   /* scratch, reused between mints */
    buffer intermediate_der, root_der;
    buffer intermediate_b64, root_b64; /* NUL-terminated */
    buffer intermediate_pem, root_pem;
    uint8_t issuer_key_hash[SHA256_LEN];
};

/* Starts a DER element whose length is not known yet; der_close patches it. */
static int der_open(buffer *b, uint8_t tag, size_t *mark)
{
    if (buffer_append_byte(b, tag) != 0 || buffer_append_byte(b, 0) != 0)
        return -1;
    *mark = b->len;
    return 0;
}

/* Writes the definite length of the element opened at mark, moving its contents up when
 * the length needs more than the one byte reserved. */
static int der_close(buffer *b, size_t mark)
{
    size_t len = b->len - mark;
    uint8_t head[4];
    size_t extra;
    if (len < 0x80) {
        b->data[mark - 1] = (uint8_t)len;
        return 0;
    } else if (len <= 0xff) {
        head[0] = 0x81, head[1] = (uint8_t)len, extra = 1;
    } else if (len <= 0xffff) {
        head[0] = 0x82, head[1] = (uint8_t)(len >> 8), head[2] = (uint8_t)len, extra = 2;
    } else {
        return -1; /* nothing certgen builds comes near 64 KiB */
    }
    if (buffer_reserve(b, extra) != 0)
        return -1;
    memmove(b->data + mark + extra, b->data + mark, len);
    memcpy(b->data + mark - 1, head, extra + 1);
    b->len += extra;
    return 0;
}

static int der_put(buffer *b, uint8_t tag, const void *content, size_t len)
{
    size_t mark;
    if (der_open(b, tag, &mark) != 0 || buffer_append(b, content, len) != 0)
        return -1;
    return der_close(b, mark);
}

/* RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
static int der_put_time(buffer *b, time_t when)
{
    struct tm tm;
    char text[32];
    if (!gmtime_r(&when, &tm) || tm.tm_year + 1900 < 1950 || tm.tm_year + 1900 > 9999)
        return -1;
    if (tm.tm_year + 1900 < 2050) {
        snprintf(text, sizeof text, "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        return der_put(b, DER_UTC_TIME, text, 13);
    }
    snprintf(text, sizeof text, "%04d%02d%02d%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return der_put(b, DER_GENERALIZED_TIME, text, 15);
}

/* Extension { subjectAltName, OCTET STRING { GeneralNames } }, not critical: the subject
 * has a CN. */
static int der_put_san_extension(buffer *b, const certgen_leaf *leaf)
{
    static const uint8_t oid_san[] = {0x55, 0x1d, 0x11};
    size_t ext, value, names;
    if (der_open(b, DER_SEQUENCE, &ext) != 0 || der_put(b, DER_OID, oid_san, sizeof oid_san) != 0 ||
        der_open(b, DER_OCTET_STRING, &value) != 0 || der_open(b, DER_SEQUENCE, &names) != 0)
        return -1;
    for (size_t i = 0; i < leaf->san_count; i++)
        if (der_put(b, DER_SAN_DNS, leaf->sans[i], strlen(leaf->sans[i])) != 0)
            return -1;
    if (der_close(b, names) != 0 || der_close(b, value) != 0)
        return -1;
    return der_close(b, ext);
}

/* Name { SET { AttributeTypeAndValue { commonName, UTF8String } } } */
static int der_put_cn_name(buffer *b, const char *common_name)
{
    static const uint8_t oid_cn[] = {0x55, 0x04, 0x03};
    size_t name, set, attribute;
    if (der_open(b, DER_SEQUENCE, &name) != 0 || der_open(b, DER_SET, &set) != 0 ||
        der_open(b, DER_SEQUENCE, &attribute) != 0 ||
        der_put(b, DER_OID, oid_cn, sizeof oid_cn) != 0 ||
        der_put(b, DER_UTF8_STRING, common_name, strlen(common_name)) != 0 ||
        der_close(b, attribute) != 0 || der_close(b, set) != 0)
        return -1;
    return der_close(b, name);
}

static int build_tbs(certgen *gen, const certgen_leaf *leaf, time_t not_before,
                     time_t not_after, const uint8_t serial[16], buffer *b)
{
    static const uint8_t version_v3[] = {0x02, 0x01, 0x02};
    size_t tbs, validity, extensions_tag, extensions;
    if (der_open(b, DER_SEQUENCE, &tbs) != 0 ||
        der_put(b, DER_CONTEXT_0, version_v3, sizeof version_v3) != 0 ||
        der_put(b, DER_INTEGER, serial, 16) != 0 ||
        buffer_append(b, gen->signature_algorithm.data, gen->signature_algorithm.len) != 0 ||
        buffer_append(b, gen->issuer_name.data, gen->issuer_name.len) != 0 ||
        der_open(b, DER_SEQUENCE, &validity) != 0 || der_put_time(b, not_before) != 0 ||
        der_put_time(b, not_after) != 0 || der_close(b, validity) != 0 ||
        der_put_cn_name(b, leaf->sans[0]) != 0 ||
        buffer_append(b, gen->leaf_spki.data, gen->leaf_spki.len) != 0 ||
        der_open(b, DER_CONTEXT_3, &extensions_tag) != 0 ||
        der_open(b, DER_SEQUENCE, &extensions) != 0 ||
        buffer_append(b, gen->constant_extensions.data, gen->constant_extensions.len) != 0 ||
        der_put_san_extension(b, leaf) != 0)
        return -1;
    if (leaf->precert &&
        buffer_append(b, gen->poison_extension.data, gen->poison_extension.len) != 0)
        return -1;
    if (der_close(b, extensions) != 0 || der_close(b, extensions_tag) != 0)
        return -1;
    return der_close(b, tbs);
}

void certgen_free(certgen *gen)
{
    if (!gen)
        return;
    EVP_PKEY_CTX_free(gen->sign_ctx);
    buffer_free(&gen->signature_algorithm);
    buffer_free(&gen->issuer_name);
    buffer_free(&gen->leaf_spki);
    buffer_free(&gen->constant_extensions);
    buffer_free(&gen->poison_extension);
    free(gen->signature);
    buffer_free(&gen->tbs);
    buffer_free(&gen->intermediate_der);
    buffer_free(&gen->root_der);
    buffer_free(&gen->intermediate_b64);
    buffer_free(&gen->root_b64);
    buffer_free(&gen->intermediate_pem);
    buffer_free(&gen->root_pem);
    free(gen);
}

/* Appends the DER of an extension, built by OpenSSL from its config syntax (or, for the
 * poison, from its value: DER NULL, 05 00, critical per RFC 6962 §3.1). */
static int append_extension(buffer *out, X509V3_CTX *ctx, int nid, const char *value, error *err)
{
    X509_EXTENSION *ext = NULL;
    if (nid == NID_ct_precert_poison) {
        static const uint8_t der_null[] = {0x05, 0x00};
        ASN1_OCTET_STRING *octets = ASN1_OCTET_STRING_new();
        if (octets && ASN1_OCTET_STRING_set(octets, der_null, sizeof der_null))
            ext = X509_EXTENSION_create_by_NID(NULL, nid, 1, octets);
        ASN1_OCTET_STRING_free(octets);
    } else {
        ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    }
    int len = ext ? i2d_X509_EXTENSION(ext, NULL) : -1;
    if (len <= 0 || buffer_reserve(out, (size_t)len) != 0) {
        X509_EXTENSION_free(ext);
        return openssl_fail(err, "building an extension");
    }
    unsigned char *p = out->data + out->len;
    out->len += (size_t)i2d_X509_EXTENSION(ext, &p);
    X509_EXTENSION_free(ext);
    return 0;
}

static int prepare_signing(certgen *gen, EVP_PKEY *issuer_key, error *err)
{
    static const uint8_t ecdsa_with_sha256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                                0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
    static const uint8_t sha256_with_rsa[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                              0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00};
    int id = EVP_PKEY_get_base_id(issuer_key);
    const uint8_t *algorithm = id == EVP_PKEY_EC ? ecdsa_with_sha256
                               : id == EVP_PKEY_RSA ? sha256_with_rsa : NULL;
    if (!algorithm)
        return error_set(err, "the intermediate key must be ECDSA or RSA");
    size_t algorithm_len = id == EVP_PKEY_EC ? sizeof ecdsa_with_sha256 : sizeof sha256_with_rsa;
    if (buffer_append(&gen->signature_algorithm, algorithm, algorithm_len) != 0)
        return error_set(err, "out of memory");
    /* EVP_PKEY_sign over our own SHA-256: the context is initialised once and reused. For
     * RSA it adds the PKCS#1 v1.5 DigestInfo for the digest named here. */
    gen->sign_ctx = EVP_PKEY_CTX_new_from_pkey(NULL, issuer_key, NULL);
    if (!gen->sign_ctx || EVP_PKEY_sign_init(gen->sign_ctx) <= 0 ||
        EVP_PKEY_CTX_set_signature_md(gen->sign_ctx, EVP_sha256()) <= 0 ||
        (id == EVP_PKEY_RSA &&
         EVP_PKEY_CTX_set_rsa_padding(gen->sign_ctx, RSA_PKCS1_PADDING) <= 0))
        return openssl_fail(err, "preparing to sign");
    gen->max_signature_len = (size_t)EVP_PKEY_get_size(issuer_key);
    if (!(gen->signature = malloc(gen->max_signature_len)))
        return error_set(err, "out of memory");
    return 0;
}

static int append_name_der(buffer *out, const X509_NAME *name, error *err)
{
    int len = i2d_X509_NAME(name, NULL);
    if (len <= 0 || buffer_reserve(out, (size_t)len) != 0)
        return openssl_fail(err, "encoding the issuer name");
    unsigned char *p = out->data + out->len;
    out->len += (size_t)i2d_X509_NAME(name, &p);
    return 0;
}

static int prepare_ca_copies(certgen *gen, const certgen_ca *ca, error *err)
{
    if (append_der(&gen->intermediate_der, ca->intermediate, err) != 0 ||
        append_der(&gen->root_der, ca->root, err) != 0 ||
        append_name_der(&gen->issuer_name, X509_get_subject_name(ca->intermediate), err) != 0)
        return -1;
    if (base64_encode(&gen->intermediate_b64, gen->intermediate_der.data,
                      gen->intermediate_der.len) != 0 ||
        base64_encode(&gen->root_b64, gen->root_der.data, gen->root_der.len) != 0 ||
        append_pem(&gen->intermediate_pem, "CERTIFICATE", gen->intermediate_der.data,
                   gen->intermediate_der.len) != 0 ||
        append_pem(&gen->root_pem, "CERTIFICATE", gen->root_der.data, gen->root_der.len) != 0)
        return error_set(err, "out of memory");
    buffer spki = {0};
    if (certgen_spki_der(ca->intermediate_key, &spki, err) != 0) {
        buffer_free(&spki);
        return -1;
    }
    sha256(spki.data, spki.len, gen->issuer_key_hash);
    buffer_free(&spki);
    return 0;
}

/* Mints one precertificate and has OpenSSL parse it, check the poison and verify the
 * intermediate's signature, so a DER mistake shows at startup, not in a log's replies. */
static int self_check(certgen *gen, const certgen_ca *ca, error *err)
{
    const char *sans[] = {"self-check.tegula.test", "second.tegula.test"};
    certgen_leaf leaf = {.precert = true, .sans = sans, .san_count = 2};
    buffer der = {0};
    if (certgen_mint(gen, &leaf, &der, err) != 0)
        return -1;
    const unsigned char *p = der.data;
    X509 *cert = d2i_X509(NULL, &p, (long)der.len);
    bool ok = cert && p == der.data + der.len &&
              X509_verify(cert, X509_get0_pubkey(ca->intermediate)) == 1 &&
              X509_get_ext_by_NID(cert, NID_ct_precert_poison, -1) >= 0 &&
              X509_check_issued(ca->intermediate, cert) == X509_V_OK;
    X509_free(cert);
    buffer_free(&der);
    if (!ok)
        return openssl_fail(err, "self-check of a minted certificate failed");
    return 0;
}

certgen *certgen_new(const certgen_ca *ca, certgen_key_type leaf_type, error *err)
{
    certgen *gen = calloc(1, sizeof *gen);
    EVP_PKEY *leaf_key = NULL;
    X509 *key_holder = NULL;
    if (!gen) {
        error_set(err, "out of memory");
        return NULL;
    }
    if (prepare_signing(gen, ca->intermediate_key, err) != 0 ||
        prepare_ca_copies(gen, ca, err) != 0 ||
        !(leaf_key = certgen_key_generate(leaf_type, err)) ||
        certgen_spki_der(leaf_key, &gen->leaf_spki, err) != 0)
        goto fail;
    /* The key identifiers follow OpenSSL's rules (SHA-1 of the key bits; the issuer's SKI),
     * which need a certificate holding the leaf key to compute from. */
    if (!(key_holder = X509_new()) || !X509_set_pubkey(key_holder, leaf_key)) {
        openssl_fail(err, "preparing the leaf key");
        goto fail;
    }
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca->intermediate, key_holder, NULL, NULL, 0);
    buffer *fixed = &gen->constant_extensions;
    if (append_extension(fixed, &ctx, NID_basic_constraints, "critical,CA:FALSE", err) ||
        append_extension(fixed, &ctx, NID_key_usage, "critical,digitalSignature", err) ||
        append_extension(fixed, &ctx, NID_ext_key_usage, "serverAuth", err) ||
        append_extension(fixed, &ctx, NID_subject_key_identifier, "hash", err) ||
        append_extension(fixed, &ctx, NID_authority_key_identifier, "keyid:always", err) ||
        append_extension(&gen->poison_extension, &ctx, NID_ct_precert_poison, NULL, err) ||
        self_check(gen, ca, err) != 0)
        goto fail;
    X509_free(key_holder);
    EVP_PKEY_free(leaf_key);
    return gen;
fail:
    X509_free(key_holder);
    EVP_PKEY_free(leaf_key);
    certgen_free(gen);
    return NULL;
}

void certgen_issuer_key_hash(const certgen *gen, uint8_t out[32])
{
    memcpy(out, gen->issuer_key_hash, SHA256_LEN);
}

/* LDH labels plus '*' (wildcards) and '_' (seen in the wild): IA5 text that needs no
 * escaping anywhere the name travels. */
static int check_dns_name(const char *name, error *err)
{
    size_t len = strlen(name);
    if (len == 0 || len > DNS_NAME_MAX_LEN)
        return error_set(err, "SAN '%s': a DNS name must be 1 to %d characters", name,
                         DNS_NAME_MAX_LEN);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '*' || c == '_';
        if (!ok)
            return error_set(err, "SAN '%s': character '%c' is not allowed in a DNS name",
                             name, c);
    }
    return 0;
}

int certgen_mint(certgen *gen, const certgen_leaf *leaf, buffer *der, error *err)
{
    if (leaf->san_count == 0 || !leaf->sans)
        return error_set(err, "a leaf needs at least one SAN");
    if (leaf->san_count > CERTGEN_MAX_SANS)
        return error_set(err, "at most %d SANs", CERTGEN_MAX_SANS);
    for (size_t i = 0; i < leaf->san_count; i++)
        if (check_dns_name(leaf->sans[i], err) != 0)
            return -1;
    if (strlen(leaf->sans[0]) > CN_MAX_LEN)
        return error_set(err, "first SAN '%s' is longer than %d characters, too long for the "
                              "subject CN; put a shorter name first",
                         leaf->sans[0], CN_MAX_LEN);
    time_t now = time(NULL);
    time_t not_after = leaf->not_after ? leaf->not_after : now + LEAF_DEFAULT_LIFETIME;
    time_t not_before = now - BACKDATE_SECONDS;
    /* An already-expired leaf (for testing a log's notAfter window) still needs
     * notBefore < notAfter. */
    if (not_after <= not_before)
        not_before = not_after - LEAF_DEFAULT_LIFETIME;

    uint8_t serial[16];
    if (random_serial(serial, err) != 0)
        return -1;

    buffer *tbs = &gen->tbs;
    tbs->len = 0;
    if (build_tbs(gen, leaf, not_before, not_after, serial, tbs) != 0)
        return error_set(err, "encoding the certificate (dates must be in 1950-9999)");
    uint8_t digest[SHA256_LEN];
    sha256(tbs->data, tbs->len, digest);
    size_t signature_len = gen->max_signature_len;
    if (EVP_PKEY_sign(gen->sign_ctx, gen->signature, &signature_len, digest, sizeof digest) <= 0)
        return openssl_fail(err, "signing the certificate");

    size_t start = der->len, certificate, bits;
    if (der_open(der, DER_SEQUENCE, &certificate) != 0 ||
        buffer_append(der, tbs->data, tbs->len) != 0 ||
        buffer_append(der, gen->signature_algorithm.data, gen->signature_algorithm.len) != 0 ||
        der_open(der, DER_BIT_STRING, &bits) != 0 || buffer_append_byte(der, 0) != 0 ||
        buffer_append(der, gen->signature, signature_len) != 0 || der_close(der, bits) != 0 ||
        der_close(der, certificate) != 0) {
        der->len = start;
        return error_set(err, "out of memory");
    }
    return 0;
}

int certgen_chain_json(const certgen *gen, const uint8_t *leaf, size_t leaf_len, bool with_root,
                       buffer *out)
{
    if (buffer_append_str(out, "{\"chain\":[\"") != 0 || base64_encode(out, leaf, leaf_len) != 0 ||
        buffer_append_str(out, "\",\"") != 0 ||
        buffer_append(out, gen->intermediate_b64.data, gen->intermediate_b64.len) != 0)
        return -1;
    if (with_root && (buffer_append_str(out, "\",\"") != 0 ||
                      buffer_append(out, gen->root_b64.data, gen->root_b64.len) != 0))
        return -1;
    if (buffer_append_str(out, "\"]}") != 0)
        return -1;
    return buffer_terminate(out);
}

int certgen_chain_pem(const certgen *gen, const uint8_t *leaf, size_t leaf_len, bool with_root,
                      buffer *out)
{
    if (append_pem(out, "CERTIFICATE", leaf, leaf_len) != 0 ||
        buffer_append(out, gen->intermediate_pem.data, gen->intermediate_pem.len) != 0)
        return -1;
    if (with_root && buffer_append(out, gen->root_pem.data, gen->root_pem.len) != 0)
        return -1;
    return buffer_terminate(out);
}

/* ---- RFC 3339 ---- */

/* Reads exactly n digits. */
static bool read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool read_char(const char **p, const char *allowed)
{
    if (**p == 0 || !strchr(allowed, **p))
        return false;
    (*p)++;
    return true;
}

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

int certgen_parse_rfc3339(const char *text, time_t *out, error *err)
{
    const char *p = text;
    int year, month, day, hour, minute, second, offset_hours = 0, offset_minutes = 0;
    int offset_sign = 0;
    if (!read_digits(&p, 4, &year) || !read_char(&p, "-") || !read_digits(&p, 2, &month) ||
        !read_char(&p, "-") || !read_digits(&p, 2, &day) || !read_char(&p, "Tt ") ||
        !read_digits(&p, 2, &hour) || !read_char(&p, ":") || !read_digits(&p, 2, &minute) ||
        !read_char(&p, ":") || !read_digits(&p, 2, &second))
        goto bad;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            goto bad;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (read_char(&p, "Zz")) {
        offset_sign = 0;
    } else if (*p == '+' || *p == '-') {
        offset_sign = *p == '+' ? 1 : -1;
        p++;
        if (!read_digits(&p, 2, &offset_hours) || !read_char(&p, ":") ||
            !read_digits(&p, 2, &offset_minutes) || offset_hours > 23 || offset_minutes > 59)
            goto bad;
    } else {
        goto bad;
    }
    if (*p != 0)
        goto bad;
    if (year < 1950 || month < 1 || month > 12 || day < 1 ||
        day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60)
        return error_set(err, "'%s' is not a valid date and time (years 1950-9999)", text);
    struct tm tm = {
        .tm_year = year - 1900,
        .tm_mon = month - 1,
        .tm_mday = day,
        .tm_hour = hour,
        .tm_min = minute,
        .tm_sec = second == 60 ? 59 : second, /* a leap second maps to the second before */
    };
    time_t t = timegm(&tm);
    *out = t - offset_sign * (offset_hours * 3600 + offset_minutes * 60);
    return 0;
bad:
    return error_set(err, "'%s' is not an RFC 3339 date-time like 2026-06-01T00:00:00Z", text);
}
