#include "x509chain.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "der.h"
#include "pem.h"
#include "x509_issuer_cache.h"
#include "x509_leaf.h"

/* ------------------------------------------------------------------------------------------ */
/* Exact DER walking. OpenSSL tolerates some BER; the framing we rely on for fingerprints and
 * the issuer SPKI must be DER, so it is checked here byte by byte. */

/* The subject Name and SubjectPublicKeyInfo TLVs of a DER certificate. */
static int cert_subject_and_spki(const uint8_t *der, size_t len, x509_span *subject,
                                 x509_span *spki)
{
    der_reader r;
    der_tlv cert, tbs, field;
    der_reader_init(&r, der, len);
    if (der_read_expect(&r, DER_SEQUENCE, &cert, NULL) != 0)
        return -1;
    der_reader_of(&r, &cert);
    if (der_read_expect(&r, DER_SEQUENCE, &tbs, NULL) != 0)
        return -1;
    der_reader_of(&r, &tbs);
    if (der_read_optional(&r, DER_CONTEXT_CONSTRUCTED(0), &field, NULL) < 0)
        return -1;
    /* serialNumber, signature, issuer, validity, subject, SPKI. */
    static const uint8_t expected[] = {DER_INTEGER, DER_SEQUENCE, DER_SEQUENCE, DER_SEQUENCE,
                                       DER_SEQUENCE, DER_SEQUENCE};
    for (size_t i = 0; i < sizeof expected; i++) {
        if (der_read_expect(&r, expected[i], &field, NULL) != 0)
            return -1;
        if (i == 4 && subject) {
            subject->data = field.start;
            subject->len = field.total_len;
        }
    }
    spki->data = field.start;
    spki->len = field.total_len;
    return 0;
}

int x509_cert_spki(const uint8_t *der, size_t len, x509_span *out)
{
    return cert_subject_and_spki(der, len, NULL, out);
}

/* ------------------------------------------------------------------------------------------ */
/* Small helpers. */

/* Reasons end up in HTTP bodies: keep them printable ASCII without quotes. */
static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e || *s == '"')
            *s = '?';
}

static void name_text(const X509_NAME *name, char *out, size_t cap)
{
    out[0] = '\0';
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        return;
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(bio, out, (int)cap - 1);
        out[n > 0 ? n : 0] = '\0';
    }
    BIO_free(bio);
    sanitize(out);
}

static void time_text(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%lld", (long long)t);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int asn1_time_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    int64_t days = days_from_civil((int64_t)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    *out = days * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
    return 0;
}

/* Parses exact DER into an X509: outer framing, no trailing bytes, and the outer signature
 * algorithm identical to the TBS one (as X509_verify also insists; checked here so that a
 * root or an unverified leaf cannot carry the mismatch either). */
static X509 *parse_cert(const uint8_t *der, size_t len, const char *what, error *err)
{
    der_tlv outer;
    if (len == 0) {
        error_set(err, "%s is empty", what);
        return NULL;
    }
    if (len > X509_CERT_MAX_DER) {
        error_set(err, "%s is %zu bytes, more than the %d accepted", what, len, X509_CERT_MAX_DER);
        return NULL;
    }
    der_reader r;
    der_reader_init(&r, der, len);
    if (der_read_expect(&r, DER_SEQUENCE, &outer, NULL) != 0) {
        error_set(err, "%s is not a DER X.509 certificate (bad outer SEQUENCE)", what);
        return NULL;
    }
    size_t used = outer.total_len;
    if (used != len) {
        error_set(err, "%s has %zu trailing bytes after the certificate", what, len - used);
        return NULL;
    }
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)len);
    if (!cert || p != der + len) {
        X509_free(cert);
        ERR_clear_error();
        error_set(err, "%s is not a valid DER X.509 certificate", what);
        return NULL;
    }
    const X509_ALGOR *outer_alg = NULL;
    X509_get0_signature(NULL, &outer_alg, cert);
    if (!outer_alg || X509_ALGOR_cmp(outer_alg, X509_get0_tbs_sigalg(cert)) != 0) {
        X509_free(cert);
        error_set(err, "%s has a signature algorithm that differs from the one in its "
                  "TBSCertificate", what);
        return NULL;
    }
    x509_span spki;
    if (x509_cert_spki(der, len, &spki) != 0) {
        X509_free(cert);
        error_set(err, "%s is not a DER X.509 certificate (bad TBSCertificate framing)", what);
        return NULL;
    }
    return cert;
}

/* basicConstraints: 1 = CA, 0 = not a CA or absent, -1 = malformed or repeated.
 * path_len is -1 when unconstrained. */
static int basic_constraints(X509 *cert, int64_t *path_len)
{
    int crit = 0;
    *path_len = -1;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(cert, NID_basic_constraints, &crit, NULL);
    if (!bc) {
        ERR_clear_error();
        return crit == -1 ? 0 : -1;
    }
    int rc = bc->ca ? 1 : 0;
    if (bc->pathlen) {
        int64_t v;
        if (!bc->ca || ASN1_INTEGER_get_int64(&v, bc->pathlen) != 1 || v < 0)
            rc = -1;
        else
            *path_len = v;
    }
    BASIC_CONSTRAINTS_free(bc);
    return rc;
}

/* Extended key usage: sets *has_eku and whether it lists the given NIDs. -1 if malformed. */
static int eku_lookup(X509 *cert, bool *has_eku, bool *server_auth, bool *precert_signer)
{
    int crit = 0;
    *has_eku = *server_auth = *precert_signer = false;
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(cert, NID_ext_key_usage, &crit, NULL);
    if (!eku) {
        ERR_clear_error();
        return crit == -1 ? 0 : -1;
    }
    *has_eku = true;
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku); i++) {
        int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i));
        /* anyExtendedKeyUsage satisfies serverAuth, as in Go's x509 (ctfe, Sunlight). */
        if (nid == NID_server_auth || nid == NID_anyExtendedKeyUsage)
            *server_auth = true;
        if (nid == NID_ct_precert_signer)
            *precert_signer = true;
    }
    EXTENDED_KEY_USAGE_free(eku);
    return 0;
}

/* A Precertificate Signing Certificate carries the CT precert-signer OID as an EKU (RFC 6962
 * §3.1). Some test PKIs (TesseraCT's) put the same OID in as an extension of its own; a CA
 * that declares itself that way is one too. */
static bool is_precert_signing_cert(X509 *cert)
{
    bool has_eku, server_auth, precert_signer;
    if (eku_lookup(cert, &has_eku, &server_auth, &precert_signer) == 0 && precert_signer)
        return true;
    return X509_get_ext_by_NID(cert, NID_ct_precert_signer, -1) >= 0;
}

/* What the leaf rules look at, read either by x509_leaf or from OpenSSL's parse. */
typedef struct leaf_facts {
    int poison_count;       /* occurrences of the CT poison; the flags are the first one's */
    bool poison_critical;
    bool poison_null;
    bool eku_malformed;     /* undecodable or repeated EKU */
    bool has_eku;
    bool eku_server_auth;   /* serverAuth or anyExtendedKeyUsage */
    bool not_after_valid;
    int64_t not_after;
} leaf_facts;

static void leaf_facts_from_view(const x509_leaf *view, leaf_facts *f)
{
    memset(f, 0, sizeof *f);
    f->poison_count = view->poison_count;
    f->poison_critical = view->poison_critical;
    f->poison_null = view->poison_null;
    f->has_eku = view->has_eku;
    f->eku_server_auth = view->eku_server_auth;
    f->not_after_valid = true;
    f->not_after = view->not_after;
}

static void leaf_facts_from_cert(X509 *leaf, leaf_facts *f)
{
    static const uint8_t asn1_null[] = {0x05, 0x00};
    memset(f, 0, sizeof *f);
    int pos = -1;
    while ((pos = X509_get_ext_by_NID(leaf, NID_ct_precert_poison, pos)) >= 0) {
        if (f->poison_count++ > 0)
            continue;
        X509_EXTENSION *ext = X509_get_ext(leaf, pos);
        const ASN1_OCTET_STRING *value = X509_EXTENSION_get_data(ext);
        f->poison_critical = X509_EXTENSION_get_critical(ext) != 0;
        f->poison_null = value && ASN1_STRING_length(value) == (int)sizeof asn1_null &&
                         memcmp(ASN1_STRING_get0_data(value), asn1_null, sizeof asn1_null) == 0;
    }
    bool precert_signer;
    f->eku_malformed = eku_lookup(leaf, &f->has_eku, &f->eku_server_auth, &precert_signer) != 0;
    f->not_after_valid = asn1_time_unix(X509_get0_notAfter(leaf), &f->not_after) == 0;
    ERR_clear_error();
}

/* Poison: 1 = present and well-formed, 0 = absent, -1 = malformed (reason set). */
static int poison_state(const leaf_facts *f, error *err)
{
    if (f->poison_count == 0)
        return 0;
    if (f->poison_count > 1)
        return error_set(err, "precertificate poison extension (1.3.6.1.4.1.11129.2.4.3) "
                         "appears %d times; exactly one is allowed", f->poison_count);
    if (!f->poison_critical)
        return error_set(err, "precertificate poison extension (1.3.6.1.4.1.11129.2.4.3) is "
                         "not marked critical");
    if (!f->poison_null)
        return error_set(err, "precertificate poison extension (1.3.6.1.4.1.11129.2.4.3) "
                         "value is not ASN.1 NULL (05 00)");
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Issuers: a CA certificate parsed once, with what validation asks of it computed up front. */

static x509_key_kind key_kind(EVP_PKEY *key)
{
    /* The same test X509_verify makes of a key against the algorithm's key type. */
    if (!key)
        return X509_KEY_OTHER;
    if (EVP_PKEY_is_a(key, "id-ecPublicKey"))
        return X509_KEY_EC;
    if (EVP_PKEY_is_a(key, "rsaEncryption"))
        return X509_KEY_RSA;
    return X509_KEY_OTHER;
}

/* Parses der (reasons as parse_cert words them) into an issuer holding one reference. */
static x509_issuer *issuer_build(const uint8_t *der, size_t len, const uint8_t *fp,
                                 const char *what, error *err)
{
    X509 *cert = parse_cert(der, len, what, err);
    if (!cert)
        return NULL;
    x509_span subject, spki;
    x509_issuer *is = x509_issuer_new();
    if (!is || cert_subject_and_spki(der, len, &subject, &spki) != 0 ||
        !(is->subject = malloc(subject.len))) {
        X509_free(cert);
        x509_issuer_unref(is);
        error_set(err, "out of memory parsing %s", what);
        return NULL;
    }
    memcpy(is->subject, subject.data, subject.len);
    is->subject_len = subject.len;
    memcpy(is->fingerprint, fp, SHA256_LEN);
    is->der_len = len;
    is->cert = cert;
    /* Fill OpenSSL's lazily computed extension cache now, while the certificate is private:
     * shared, it is only ever read. */
    X509_get_extension_flags(cert);
    is->key = X509_get0_pubkey(cert);
    is->key_kind = key_kind(is->key);
    is->ca = basic_constraints(cert, &is->path_len);
    is->precert_signer = is_precert_signing_cert(cert);
    sha256(spki.data, spki.len, is->spki_hash);
    ERR_clear_error();
    return is;
}

/* ------------------------------------------------------------------------------------------ */
/* Root set. */

typedef struct root_entry {
    uint8_t *der;
    size_t len;
    x509_issuer *issuer;    /* owned reference; fingerprint, cert, key, path length */
} root_entry;

struct x509_root_set {
    root_entry *roots;      /* insertion order */
    size_t count, cap;
    size_t *by_fingerprint; /* indices sorted by fingerprint */
    size_t *by_subject;     /* indices sorted by X509_NAME_cmp of subject */
};

x509_root_set *x509_root_set_new(void)
{
    return calloc(1, sizeof(x509_root_set));
}

void x509_root_set_free(x509_root_set *roots)
{
    if (!roots)
        return;
    for (size_t i = 0; i < roots->count; i++) {
        free(roots->roots[i].der);
        x509_issuer_unref(roots->roots[i].issuer);
    }
    free(roots->roots);
    free(roots->by_fingerprint);
    free(roots->by_subject);
    free(roots);
}

static const x509_issuer *root_issuer(const x509_root_set *roots, size_t index)
{
    return roots->roots[index].issuer;
}

/* First position in by_fingerprint whose fingerprint is >= fp. */
static size_t fingerprint_lower_bound(const x509_root_set *roots, const uint8_t *fp)
{
    size_t lo = 0, hi = roots->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(root_issuer(roots, roots->by_fingerprint[mid])->fingerprint, fp,
                   SHA256_LEN) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First position in by_subject whose subject is >= name (<= with upper). */
static size_t subject_bound(const x509_root_set *roots, const X509_NAME *name, bool upper)
{
    size_t lo = 0, hi = roots->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = X509_NAME_cmp(X509_get_subject_name(root_issuer(roots,
                                                                roots->by_subject[mid])->cert),
                              name);
        if (c < 0 || (upper && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long x509_root_set_find(const x509_root_set *roots, const uint8_t fingerprint[SHA256_LEN])
{
    size_t pos = fingerprint_lower_bound(roots, fingerprint);
    if (pos < roots->count &&
        memcmp(root_issuer(roots, roots->by_fingerprint[pos])->fingerprint, fingerprint,
               SHA256_LEN) == 0)
        return (long)roots->by_fingerprint[pos];
    return -1;
}

static void insert_index(size_t *index, size_t count, size_t pos, size_t value)
{
    memmove(index + pos + 1, index + pos, (count - pos) * sizeof *index);
    index[pos] = value;
}

int x509_root_set_add_der(x509_root_set *roots, const uint8_t *der, size_t len, error *err)
{
    uint8_t fp[SHA256_LEN];
    if (der && len <= X509_CERT_MAX_DER)
        sha256(der, len, fp);
    else
        memset(fp, 0, sizeof fp); /* parse_cert refuses it before the hash matters */
    x509_issuer *is = issuer_build(der, len, fp, "root certificate", err);
    if (!is)
        return -1;
    if (x509_root_set_find(roots, fp) >= 0) {
        x509_issuer_unref(is);
        return 0;
    }
    if (roots->count >= X509_ROOTS_MAX) {
        x509_issuer_unref(is);
        return error_set(err, "more than %d roots", X509_ROOTS_MAX);
    }
    if (is->ca < 0) {
        x509_issuer_unref(is);
        return error_set(err, "root certificate has a malformed basicConstraints extension");
    }
    if (roots->count == roots->cap) {
        size_t cap = roots->cap ? roots->cap * 2 : 16;
        root_entry *r = realloc(roots->roots, cap * sizeof *r);
        if (r)
            roots->roots = r;
        size_t *f = r ? realloc(roots->by_fingerprint, cap * sizeof *f) : NULL;
        if (f)
            roots->by_fingerprint = f;
        size_t *s = f ? realloc(roots->by_subject, cap * sizeof *s) : NULL;
        if (s)
            roots->by_subject = s;
        if (!s) {
            x509_issuer_unref(is);
            return error_set(err, "out of memory adding a root");
        }
        roots->cap = cap;
    }
    uint8_t *copy = malloc(len);
    if (!copy) {
        x509_issuer_unref(is);
        return error_set(err, "out of memory adding a root");
    }
    memcpy(copy, der, len);
    size_t idx = roots->count;
    root_entry *e = &roots->roots[idx];
    e->der = copy;
    e->len = len;
    e->issuer = is;
    insert_index(roots->by_fingerprint, roots->count, fingerprint_lower_bound(roots, fp), idx);
    insert_index(roots->by_subject, roots->count,
                 subject_bound(roots, X509_get_subject_name(is->cert), true), idx);
    roots->count++;
    ERR_clear_error();
    return 0;
}

int x509_root_set_add_pem(x509_root_set *roots, const char *text, size_t len, error *err)
{
    pem_list list = {0};
    if (pem_parse_certificates(text, len, X509_ROOTS_MAX, &list, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < list.count && rc == 0; i++) {
        rc = x509_root_set_add_der(roots, list.items[i].data, list.items[i].len, err);
        if (rc != 0)
            error_wrap(err, "PEM block %zu", i + 1);
    }
    pem_list_free(&list);
    return rc;
}

int x509_root_set_add_pem_file(x509_root_set *roots, const char *path, error *err)
{
    pem_list list = {0};
    if (pem_read_certificates_file(path, X509_ROOTS_MAX, &list, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < list.count && rc == 0; i++) {
        rc = x509_root_set_add_der(roots, list.items[i].data, list.items[i].len, err);
        if (rc != 0)
            error_wrap(err, "%s: PEM block %zu", path, i + 1);
    }
    pem_list_free(&list);
    return rc;
}

size_t x509_root_set_count(const x509_root_set *roots)
{
    return roots->count;
}

x509_span x509_root_set_der(const x509_root_set *roots, size_t index)
{
    x509_span s = {NULL, 0};
    if (index < roots->count) {
        s.data = roots->roots[index].der;
        s.len = roots->roots[index].len;
    }
    return s;
}

const uint8_t *x509_root_set_fingerprint(const x509_root_set *roots, size_t index)
{
    return index < roots->count ? roots->roots[index].issuer->fingerprint : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Link cache: a set-associative table of verified (child, parent) fingerprint pairs with LRU
 * replacement inside each set, and striped locks so threads rarely meet. Only positive results
 * are stored; a fingerprint pins the exact DER, so a cached pair stays verified forever. */

#define LINK_WAYS 4
#define LINK_LOCK_STRIPES 64

typedef struct link_entry {
    uint8_t child[SHA256_LEN];
    uint8_t parent[SHA256_LEN];
    uint32_t last_used;
    bool used;
} link_entry;

typedef struct link_set {
    uint32_t clock;
    link_entry way[LINK_WAYS];
} link_set;

typedef struct link_cache {
    link_set *sets;
    size_t set_count;       /* power of two */
    size_t stripe_count;
    pthread_mutex_t *stripes;
    atomic_size_t entries;
    atomic_uint_fast64_t hits;
    atomic_uint_fast64_t evictions;
} link_cache;

static int link_cache_init(link_cache *c, size_t capacity)
{
    if (capacity == 0)
        capacity = X509_LINK_CACHE_DEFAULT;
    if (capacity > X509_LINK_CACHE_MAX)
        capacity = X509_LINK_CACHE_MAX;
    size_t sets = 1;
    while (sets * LINK_WAYS < capacity)
        sets *= 2;
    c->set_count = sets;
    c->stripe_count = sets < LINK_LOCK_STRIPES ? sets : LINK_LOCK_STRIPES;
    c->sets = calloc(sets, sizeof *c->sets);
    c->stripes = calloc(c->stripe_count, sizeof *c->stripes);
    if (!c->sets || !c->stripes) {
        free(c->sets);
        free(c->stripes);
        return -1;
    }
    for (size_t i = 0; i < c->stripe_count; i++)
        pthread_mutex_init(&c->stripes[i], NULL);
    atomic_init(&c->entries, 0);
    atomic_init(&c->hits, 0);
    atomic_init(&c->evictions, 0);
    return 0;
}

static void link_cache_destroy(link_cache *c)
{
    for (size_t i = 0; i < c->stripe_count; i++)
        pthread_mutex_destroy(&c->stripes[i]);
    free(c->stripes);
    free(c->sets);
}

static size_t link_set_index(const link_cache *c, const uint8_t *child, const uint8_t *parent)
{
    uint64_t a, b;
    memcpy(&a, child, sizeof a);
    memcpy(&b, parent, sizeof b);
    return (size_t)((a ^ (b * 0x9e3779b97f4a7c15ULL)) & (c->set_count - 1));
}

static bool link_cache_has(link_cache *c, const uint8_t *child, const uint8_t *parent)
{
    size_t s = link_set_index(c, child, parent);
    link_set *set = &c->sets[s];
    bool found = false;
    pthread_mutex_lock(&c->stripes[s % c->stripe_count]);
    for (int i = 0; i < LINK_WAYS; i++) {
        link_entry *e = &set->way[i];
        if (e->used && memcmp(e->child, child, SHA256_LEN) == 0 &&
            memcmp(e->parent, parent, SHA256_LEN) == 0) {
            e->last_used = ++set->clock;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&c->stripes[s % c->stripe_count]);
    if (found)
        atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
    return found;
}

static void link_cache_put(link_cache *c, const uint8_t *child, const uint8_t *parent)
{
    size_t s = link_set_index(c, child, parent);
    link_set *set = &c->sets[s];
    pthread_mutex_lock(&c->stripes[s % c->stripe_count]);
    link_entry *victim = NULL;
    uint32_t victim_age = 0;
    for (int i = 0; i < LINK_WAYS; i++) {
        link_entry *e = &set->way[i];
        if (!e->used) {
            if (!victim || victim->used)
                victim = e;
            continue;
        }
        if (memcmp(e->child, child, SHA256_LEN) == 0 &&
            memcmp(e->parent, parent, SHA256_LEN) == 0)
            goto unlock; /* another thread stored it meanwhile */
        if (victim && !victim->used)
            continue;
        /* Unsigned difference from the clock ages entries correctly across wrap-around. */
        uint32_t age = set->clock - e->last_used;
        if (!victim || age > victim_age) {
            victim = e;
            victim_age = age;
        }
    }
    if (victim->used)
        atomic_fetch_add_explicit(&c->evictions, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&c->entries, 1, memory_order_relaxed);
    memcpy(victim->child, child, SHA256_LEN);
    memcpy(victim->parent, parent, SHA256_LEN);
    victim->used = true;
    victim->last_used = ++set->clock;
unlock:
    pthread_mutex_unlock(&c->stripes[s % c->stripe_count]);
}

/* ------------------------------------------------------------------------------------------ */
/* Validator. */

struct x509_validator {
    const x509_root_set *roots;
    int64_t not_after_start;
    int64_t not_after_limit;
    bool require_server_auth_eku;
    bool reference_path_only;
    link_cache cache;
    x509_issuer_cache *issuers;
    atomic_uint_fast64_t verifications;
    atomic_uint_fast64_t leaf_openssl_parses;
};

x509_validator *x509_validator_new(const x509_validator_config *config, error *err)
{
    if (!config->roots) {
        error_set(err, "chain validator needs a root set");
        return NULL;
    }
    if (config->not_after_start >= config->not_after_limit) {
        error_set(err, "notAfter window is empty (start %lld >= limit %lld)",
                  (long long)config->not_after_start, (long long)config->not_after_limit);
        return NULL;
    }
    x509_validator *v = calloc(1, sizeof *v);
    if (!v || link_cache_init(&v->cache, config->link_cache_capacity) != 0) {
        free(v);
        error_set(err, "out of memory creating the chain validator");
        return NULL;
    }
    v->issuers = x509_issuer_cache_new(config->issuer_cache_capacity);
    if (!v->issuers) {
        link_cache_destroy(&v->cache);
        free(v);
        error_set(err, "out of memory creating the chain validator");
        return NULL;
    }
    v->roots = config->roots;
    v->not_after_start = config->not_after_start;
    v->not_after_limit = config->not_after_limit;
    v->require_server_auth_eku = config->require_server_auth_eku;
    v->reference_path_only = config->reference_path_only;
    atomic_init(&v->verifications, 0);
    atomic_init(&v->leaf_openssl_parses, 0);
    return v;
}

void x509_validator_free(x509_validator *v)
{
    if (!v)
        return;
    link_cache_destroy(&v->cache);
    x509_issuer_cache_free(v->issuers);
    free(v);
}

void x509_validator_stats_get(x509_validator *v, x509_validator_stats *out)
{
    out->signature_verifications = atomic_load(&v->verifications);
    out->link_cache_hits = atomic_load(&v->cache.hits);
    out->link_cache_evictions = atomic_load(&v->cache.evictions);
    out->link_cache_entries = atomic_load(&v->cache.entries);
    out->link_cache_capacity = v->cache.set_count * LINK_WAYS;
    x509_issuer_cache_stats is;
    x509_issuer_cache_stats_get(v->issuers, &is);
    out->issuer_cache_hits = is.hits;
    out->issuer_cache_misses = is.misses;
    out->issuer_cache_evictions = is.evictions;
    out->issuer_cache_entries = is.entries;
    out->issuer_cache_capacity = is.capacity;
    out->leaf_openssl_parses = atomic_load(&v->leaf_openssl_parses);
}

static bool signature_ok(x509_validator *v, X509 *child, const x509_issuer *parent)
{
    if (!parent->key)
        return false;
    atomic_fetch_add_explicit(&v->verifications, 1, memory_order_relaxed);
    return X509_verify(child, parent->key) == 1;
}

/* Whether parent signed child, through the cache when the child is itself an issuer. */
static bool link_ok(x509_validator *v, X509 *child, const uint8_t *child_fp,
                    const x509_issuer *parent, bool cacheable)
{
    if (cacheable && link_cache_has(&v->cache, child_fp, parent->fingerprint))
        return true;
    if (!signature_ok(v, child, parent))
        return false;
    if (cacheable)
        link_cache_put(&v->cache, child_fp, parent->fingerprint);
    return true;
}

/* The leaf's signature over its raw TBSCertificate bytes, as X509_verify computes it for these
 * algorithms (digest and key type from the signature algorithm, then EVP_DigestVerify), without
 * an X509 object. 1 = verified, 0 = not, -1 = not an algorithm/key handled here. */
static int leaf_verify_direct(x509_validator *v, const x509_leaf *leaf,
                              const x509_issuer *parent)
{
    const EVP_MD *md;
    x509_key_kind kind;
    switch (leaf->sig_alg) {
    case X509_SIG_ECDSA_SHA256: md = EVP_sha256(), kind = X509_KEY_EC; break;
    case X509_SIG_ECDSA_SHA384: md = EVP_sha384(), kind = X509_KEY_EC; break;
    case X509_SIG_ECDSA_SHA512: md = EVP_sha512(), kind = X509_KEY_EC; break;
    case X509_SIG_RSA_SHA1: md = EVP_sha1(), kind = X509_KEY_RSA; break;
    case X509_SIG_RSA_SHA256: md = EVP_sha256(), kind = X509_KEY_RSA; break;
    case X509_SIG_RSA_SHA384: md = EVP_sha384(), kind = X509_KEY_RSA; break;
    case X509_SIG_RSA_SHA512: md = EVP_sha512(), kind = X509_KEY_RSA; break;
    default: return -1;
    }
    if (!parent->key || parent->key_kind != kind)
        return -1;
    /* A fresh context each time: keeping one per thread measured no faster (the cost is in
     * the provider operation set up by the init, which a kept context redoes anyway). */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = -1;
    if (ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, parent->key) == 1) {
        atomic_fetch_add_explicit(&v->verifications, 1, memory_order_relaxed);
        rc = EVP_DigestVerify(ctx, leaf->signature.data, leaf->signature.len, leaf->tbs.data,
                              leaf->tbs.len) == 1;
    }
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

/* The fast path gives up: run the whole validation again on OpenSSL's parse of the leaf. */
#define RETRY_WITH_OPENSSL 2

typedef struct chain_state {
    x509_validator *v;
    x509_span leaf_der;
    bool direct;                        /* leaf read by x509_leaf, not parsed by OpenSSL */
    x509_leaf view;                     /* when direct */
    X509 *leaf;                         /* OpenSSL's parse: reference path, or late for
                                         * X509_verify of an algorithm not handled directly */
    X509_NAME *leaf_issuer_name;        /* direct: the issuer Name decoded, when needed */
    x509_issuer *issuers[X509_CHAIN_MAX];   /* [1, n): chain[i] parsed */
    bool owned[X509_CHAIN_MAX];         /* issuers[i] holds a reference (not a root's) */
    bool fresh[X509_CHAIN_MAX];         /* parsed by this request, not from the cache */
    uint8_t fps[X509_CHAIN_MAX][SHA256_LEN];
} chain_state;

static void chain_state_release(chain_state *st, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (st->owned[i])
            x509_issuer_unref(st->issuers[i]);
    X509_free(st->leaf);
    X509_NAME_free(st->leaf_issuer_name);
}

static X509 *parse_leaf(chain_state *st, error *err)
{
    atomic_fetch_add_explicit(&st->v->leaf_openssl_parses, 1, memory_order_relaxed);
    return parse_cert(st->leaf_der.data, st->leaf_der.len, "chain[0]", err);
}

static X509_NAME *decode_name(x509_span name)
{
    const unsigned char *p = name.data;
    X509_NAME *decoded = d2i_X509_NAME(NULL, &p, (long)name.len);
    if (decoded && p != name.data + name.len) {
        X509_NAME_free(decoded);
        decoded = NULL;
    }
    ERR_clear_error();
    return decoded;
}

/* Reads the leaf without d2i_X509. Besides x509_leaf's subset, both Names must decode as
 * d2i_X509 would decode them (it rejects certificates whose names it cannot canonicalise).
 * The issuer Name is checked later, when it may turn out to be the bytes of chain[1]'s
 * subject, which OpenSSL has already decoded. */
static bool leaf_read_direct(chain_state *st)
{
    if (x509_leaf_read(st->leaf_der.data, st->leaf_der.len, &st->view) != 0)
        return false;
    X509_NAME *subject = decode_name(st->view.subject);
    X509_NAME_free(subject);
    return subject != NULL;
}

static bool span_equal(x509_span a, const uint8_t *b, size_t b_len)
{
    return a.len == b_len && memcmp(a.data, b, b_len) == 0;
}

/* Whether the leaf names parent as its issuer (X509_NAME_cmp: canonical forms equal). Equal
 * encodings are equal names; different ones are compared canonically. */
static bool leaf_issued_by_name(const chain_state *st, const x509_issuer *parent)
{
    const X509_NAME *subject = X509_get_subject_name(parent->cert);
    if (!st->direct)
        return X509_NAME_cmp(X509_get_issuer_name(st->leaf), subject) == 0;
    if (span_equal(st->view.issuer, parent->subject, parent->subject_len))
        return true;
    return X509_NAME_cmp(st->leaf_issuer_name, subject) == 0;
}

static const X509_NAME *leaf_issuer_name(const chain_state *st)
{
    return st->direct ? st->leaf_issuer_name : X509_get_issuer_name(st->leaf);
}

/* Whether parent signed the leaf: 1, 0, or RETRY_WITH_OPENSSL. */
static int leaf_signed_by(chain_state *st, const x509_issuer *parent)
{
    if (st->direct) {
        int rc = leaf_verify_direct(st->v, &st->view, parent);
        if (rc >= 0)
            return rc;
        if (!st->leaf && !(st->leaf = parse_leaf(st, NULL)))
            return RETRY_WITH_OPENSSL; /* outside what x509_leaf promises: let OpenSSL judge */
    }
    return signature_ok(st->v, st->leaf, parent) ? 1 : 0;
}

/* One validation attempt; direct says whether the leaf may be read without d2i_X509. Returns 0,
 * -1 with a reason, or RETRY_WITH_OPENSSL (only when direct) when the direct reading cannot
 * settle the outcome exactly as OpenSSL's would. */
static int validate(x509_validator *v, const x509_span *chain, size_t n, x509_endpoint endpoint,
                    bool direct, x509_chain_result *out, error *err)
{
    chain_state st_storage;
    chain_state *st = &st_storage;
    memset(st, 0, sizeof *st);
    st->v = v;
    st->leaf_der = chain[0];
    uint8_t (*fps)[SHA256_LEN] = st->fps;
    x509_issuer **issuers = st->issuers;
    int rc = -1;
    char what[32], what2[32];

    /* Parse everything first: a chain with any bad certificate is rejected outright, and the
     * first bad one in chain order is the one named. When the leaf was read directly, any
     * failure here goes to the OpenSSL attempt: only it knows whether d2i_X509 would have
     * refused the leaf first. */
#define FAIL_PARSE()                                                                             \
    do {                                                                                         \
        rc = st->direct ? RETRY_WITH_OPENSSL : -1;                                               \
        goto done;                                                                               \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        snprintf(what, sizeof what, "chain[%zu]", i);
        if (!chain[i].data && chain[i].len) {
            error_set(err, "%s is missing", what);
            FAIL_PARSE();
        }
        if (i == 0) {
            st->direct = direct && leaf_read_direct(st);
            if (!st->direct && !(st->leaf = parse_leaf(st, err)))
                FAIL_PARSE();
            sha256(chain[0].data, chain[0].len, fps[0]);
            continue;
        }
        if (chain[i].len > X509_CERT_MAX_DER) {
            error_set(err, "%s is %zu bytes, more than the %d accepted", what, chain[i].len,
                      X509_CERT_MAX_DER);
            FAIL_PARSE();
        }
        sha256(chain[i].data, chain[i].len, fps[i]);
        long root = x509_root_set_find(v->roots, fps[i]);
        if (root >= 0) {
            issuers[i] = v->roots->roots[root].issuer;
            continue;
        }
        issuers[i] = x509_issuer_cache_get(v->issuers, fps[i], chain[i].len);
        if (!issuers[i]) {
            issuers[i] = issuer_build(chain[i].data, chain[i].len, fps[i], what, err);
            if (!issuers[i])
                FAIL_PARSE();
            st->fresh[i] = true;
        }
        st->owned[i] = true;
    }
    if (st->direct && !(n >= 2 && span_equal(st->view.issuer, issuers[1]->subject,
                                              issuers[1]->subject_len))) {
        st->leaf_issuer_name = decode_name(st->view.issuer);
        if (!st->leaf_issuer_name)
            FAIL_PARSE();
    }
#undef FAIL_PARSE
    leaf_facts facts;
    if (st->direct)
        leaf_facts_from_view(&st->view, &facts);
    else
        leaf_facts_from_cert(st->leaf, &facts);

    /* A repeated certificate is a cycle (a self-signed root "signs" itself), not a path. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (memcmp(fps[i], fps[j], SHA256_LEN) == 0) {
                error_set(err, "chain[%zu] repeats chain[%zu]; each certificate may appear once",
                          i, j);
                goto done;
            }

    /* Cheap policy checks before any signature work. */
    if (n >= 2 && issuers[1]->precert_signer) {
        error_set(err, "chain[1] is a Precertificate Signing Certificate (EKU "
                  "1.3.6.1.4.1.11129.2.4.4); this log does not accept chains through one "
                  "(CA/B Forum ballot SC-092)");
        goto done;
    }
    int poison = poison_state(&facts, err);
    if (poison < 0)
        goto done;
    bool is_precert = poison == 1;
    if (endpoint == X509_ADD_CHAIN && is_precert) {
        error_set(err, "add-chain received a precertificate (it has the CT poison extension); "
                  "submit it to add-pre-chain");
        goto done;
    }
    if (endpoint == X509_ADD_PRE_CHAIN && !is_precert) {
        error_set(err, "add-pre-chain received a certificate without the CT poison extension; "
                  "submit it to add-chain");
        goto done;
    }

    if (facts.eku_malformed) {
        error_set(err, "leaf extended key usage extension is malformed or repeated");
        goto done;
    }
    if (facts.has_eku && !facts.eku_server_auth) {
        error_set(err, "leaf extended key usage does not include serverAuth");
        goto done;
    }
    if (!facts.has_eku && v->require_server_auth_eku) {
        error_set(err, "leaf has no extended key usage extension; serverAuth is required");
        goto done;
    }

    if (!facts.not_after_valid) {
        error_set(err, "leaf notAfter is not a valid time");
        goto done;
    }
    int64_t not_after = facts.not_after;
    if (not_after < v->not_after_start || not_after >= v->not_after_limit) {
        char t[32], lo[32], hi[32];
        time_text(not_after, t, sizeof t);
        time_text(v->not_after_start, lo, sizeof lo);
        time_text(v->not_after_limit, hi, sizeof hi);
        error_set(err, "leaf notAfter %s is outside this log's window [%s, %s): %s", t, lo, hi,
                  not_after < v->not_after_start ? "before the start" : "at or after the end");
        goto done;
    }

    /* Structure: each issuer is named by, and a CA for, the certificate below it. The last
     * submitted certificate is exempt from the CA rule when it is itself an accepted root. */
    long last_root = x509_root_set_find(v->roots, fps[n - 1]);
    for (size_t i = 1; i < n; i++) {
        snprintf(what, sizeof what, "chain[%zu]", i);
        snprintf(what2, sizeof what2, "chain[%zu]", i - 1);
        bool named = i == 1 ? leaf_issued_by_name(st, issuers[1])
                            : X509_NAME_cmp(X509_get_issuer_name(issuers[i - 1]->cert),
                                            X509_get_subject_name(issuers[i]->cert)) == 0;
        if (!named) {
            error_set(err, "%s is not the issuer of %s (its subject differs from %s's issuer): "
                      "the chain must be in order, leaf first, with no missing or extra "
                      "certificates", what, what2, what2);
            goto done;
        }
        int ca = issuers[i]->ca;
        int64_t path_len = issuers[i]->path_len;
        if (ca < 0) {
            error_set(err, "%s has a malformed or repeated basicConstraints extension", what);
            goto done;
        }
        if (ca == 0 && !(i == n - 1 && last_root >= 0)) {
            error_set(err, "%s is not a CA certificate (basicConstraints cA is not true) but "
                      "is used as the issuer of %s", what, what2);
            goto done;
        }
        if (path_len >= 0 && (int64_t)(i - 1) > path_len) {
            error_set(err, "%s has path length constraint %lld but %zu intermediates follow it",
                      what, (long long)path_len, i - 1);
            goto done;
        }
    }

    /* Candidate roots for the last certificate, when it is not a root itself. */
    size_t cand_lo = 0, cand_hi = 0;
    const X509_NAME *last_issuer =
        n == 1 ? leaf_issuer_name(st) : X509_get_issuer_name(issuers[n - 1]->cert);
    if (last_root < 0) {
        cand_lo = subject_bound(v->roots, last_issuer, false);
        cand_hi = subject_bound(v->roots, last_issuer, true);
        if (cand_lo == cand_hi) {
            char name[160];
            name_text(last_issuer, name, sizeof name);
            error_set(err, "no path to an accepted root: chain[%zu] is not an accepted root "
                      "and no accepted root is named %s", n - 1, name);
            goto done;
        }
    }

    /* Signatures, leaf first. */
    for (size_t i = 0; i + 1 < n; i++) {
        int ok;
        if (i == 0) {
            ok = leaf_signed_by(st, issuers[1]);
            if (ok == RETRY_WITH_OPENSSL) {
                rc = RETRY_WITH_OPENSSL;
                goto done;
            }
        } else {
            ok = link_ok(v, issuers[i]->cert, fps[i], issuers[i + 1], true);
        }
        if (!ok) {
            error_set(err, "chain[%zu] did not sign chain[%zu]: the signature does not verify "
                      "with chain[%zu]'s key", i + 1, i, i + 1);
            goto done;
        }
    }
    const root_entry *appended = NULL;
    if (last_root < 0) {
        bool path_len_blocked = false;
        for (size_t k = cand_lo; k < cand_hi && !appended; k++) {
            const root_entry *r = &v->roots->roots[v->roots->by_subject[k]];
            if (r->issuer->path_len >= 0 && (int64_t)(n - 1) > r->issuer->path_len) {
                path_len_blocked = true;
                continue;
            }
            int ok;
            if (n == 1) {
                ok = leaf_signed_by(st, r->issuer);
                if (ok == RETRY_WITH_OPENSSL) {
                    rc = RETRY_WITH_OPENSSL;
                    goto done;
                }
            } else {
                ok = link_ok(v, issuers[n - 1]->cert, fps[n - 1], r->issuer, true);
            }
            if (ok)
                appended = r;
        }
        if (!appended) {
            char name[160];
            name_text(last_issuer, name, sizeof name);
            error_set(err, "no path to an accepted root: no accepted root named %s %s chain[%zu]",
                      name, path_len_blocked ? "allows this many intermediates and signed"
                                             : "signed", n - 1);
            goto done;
        }
        if (n == 1 && appended->issuer->precert_signer) {
            error_set(err, "the leaf's issuer is a Precertificate Signing Certificate; this log "
                      "does not accept chains through one (CA/B Forum ballot SC-092)");
            goto done;
        }
    }

    const x509_issuer *first_issuer = n >= 2 ? issuers[1] : appended ? appended->issuer : NULL;
    if (!first_issuer && is_precert) {
        error_set(err, "a precertificate needs its issuer in the chain");
        goto done;
    }
    out->is_precert = is_precert;
    out->leaf = chain[0];
    for (size_t i = 1; i < n; i++) {
        out->issuers[out->issuer_count] = chain[i];
        memcpy(out->fingerprints[out->issuer_count], fps[i], SHA256_LEN);
        out->issuer_count++;
    }
    if (appended) {
        out->issuers[out->issuer_count].data = appended->der;
        out->issuers[out->issuer_count].len = appended->len;
        memcpy(out->fingerprints[out->issuer_count], appended->issuer->fingerprint, SHA256_LEN);
        out->issuer_count++;
        out->root_appended = true;
    }
    if (first_issuer) {
        out->issuer = out->issuers[0];
        memcpy(out->issuer_key_hash, first_issuer->spki_hash, SHA256_LEN);
    }
    /* Only certificates of accepted chains enter the cache: a stream of junk intermediates
     * cannot evict the real ones. */
    for (size_t i = 1; i < n; i++)
        if (st->fresh[i])
            x509_issuer_cache_put(v->issuers, issuers[i]);
    rc = 0;

done:
    chain_state_release(st, n);
    ERR_clear_error();
    return rc;
}

int x509_validate_chain(x509_validator *v, const x509_span *chain, size_t n,
                        x509_endpoint endpoint, x509_chain_result *out, error *err)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return error_set(err, "empty chain: at least the end-entity certificate is required");
    if (n > X509_CHAIN_MAX)
        return error_set(err, "chain has %zu certificates; at most %d are accepted", n,
                         X509_CHAIN_MAX);
    int rc = validate(v, chain, n, endpoint, !v->reference_path_only, out, err);
    if (rc == RETRY_WITH_OPENSSL) {
        memset(out, 0, sizeof *out);
        if (err)
            err->msg[0] = '\0';
        rc = validate(v, chain, n, endpoint, false, out, err);
    }
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}
