#include "rfc6979.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define HLEN 32       /* HMAC-SHA256 output, the DRBG's V and K */
#define ROLEN_MAX 66  /* ceil(521 / 8) */

struct rfc6979_key {
    EC_GROUP *group;
    BIGNUM *order;
    BIGNUM *order_minus_2;   /* Fermat exponent: k^-1 = k^(q-2) mod q */
    BN_MONT_CTX *mont;       /* Montgomery context modulo q, read-only after creation */
    BIGNUM *d_mont;          /* d·R mod q, so r·d costs one Montgomery product */
    EVP_MD *sha256;          /* fetched once: implicit fetches per hash are slow in 3.0 */
    int qlen;                /* bit length of q */
    size_t rolen;            /* ceil(qlen / 8) */
    uint8_t q_octets[ROLEN_MAX];
    uint8_t x_octets[ROLEN_MAX]; /* int2octets(d), the DRBG seed's secret half */
};

void rfc6979_key_free(rfc6979_key *key)
{
    if (!key)
        return;
    EC_GROUP_free(key->group);
    BN_free(key->order);
    BN_free(key->order_minus_2);
    BN_MONT_CTX_free(key->mont);
    BN_clear_free(key->d_mont);
    EVP_MD_free(key->sha256);
    OPENSSL_cleanse(key->x_octets, sizeof key->x_octets);
    free(key);
}

rfc6979_key *rfc6979_key_new(const EC_GROUP *group, const BIGNUM *priv, error *err)
{
    rfc6979_key *key = calloc(1, sizeof *key);
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *d = BN_secure_new();
    if (!key || !ctx || !d)
        goto oom;
    key->group = EC_GROUP_dup(group);
    key->order = BN_new();
    key->order_minus_2 = BN_new();
    key->mont = BN_MONT_CTX_new();
    key->d_mont = BN_secure_new();
    key->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    if (!key->group || !key->order || !key->order_minus_2 || !key->mont || !key->d_mont ||
        !key->sha256)
        goto oom;
    if (!EC_GROUP_get_order(key->group, key->order, ctx))
        goto bad_group;
    key->qlen = BN_num_bits(key->order);
    if (key->qlen < 160 || key->qlen > 521 || !BN_is_odd(key->order))
        goto bad_group;
    key->rolen = (size_t)(key->qlen + 7) / 8;
    if (!BN_copy(key->order_minus_2, key->order) || !BN_sub_word(key->order_minus_2, 2) ||
        !BN_MONT_CTX_set(key->mont, key->order, ctx))
        goto oom;
    BN_bn2binpad(key->order, key->q_octets, (int)key->rolen);

    if (BN_is_negative(priv) || BN_is_zero(priv) || BN_cmp(priv, key->order) >= 0) {
        error_set(err, "private scalar out of range");
        goto fail;
    }
    if (!BN_copy(d, priv))
        goto oom;
    BN_set_flags(d, BN_FLG_CONSTTIME);
    if (BN_bn2binpad(d, key->x_octets, (int)key->rolen) != (int)key->rolen ||
        !BN_to_montgomery(key->d_mont, d, key->mont, ctx))
        goto oom;
    BN_set_flags(key->d_mont, BN_FLG_CONSTTIME);
    BN_clear_free(d);
    BN_CTX_free(ctx);
    return key;

bad_group:
    error_set(err, "unsupported elliptic curve group");
    goto fail;
oom:
    error_set(err, "out of memory setting up the signing key");
fail:
    BN_clear_free(d);
    BN_CTX_free(ctx);
    rfc6979_key_free(key);
    return NULL;
}

/* HMAC-DRBG state of RFC 6979 §3.2 for one signature. */
typedef struct drbg {
    EVP_MD_CTX *md_ctx;
    const EVP_MD *md;
    uint8_t v[HLEN];
    uint8_t k[HLEN];
    int started;
} drbg;

/* out = HMAC_K(parts...). out may alias d->k or d->v: both are read before out is written. */
static int hmac(drbg *d, uint8_t out[HLEN], int n, const void *const *parts, const size_t *lens)
{
    uint8_t pad[64], inner[HLEN];
    int ok = 1;
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = (uint8_t)((i < HLEN ? d->k[i] : 0) ^ 0x36);
    ok &= EVP_DigestInit_ex2(d->md_ctx, d->md, NULL);
    ok &= EVP_DigestUpdate(d->md_ctx, pad, sizeof pad);
    for (int i = 0; i < n; i++)
        ok &= EVP_DigestUpdate(d->md_ctx, parts[i], lens[i]);
    ok &= EVP_DigestFinal_ex(d->md_ctx, inner, NULL);
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] ^= 0x36 ^ 0x5c;
    ok &= EVP_DigestInit_ex2(d->md_ctx, d->md, NULL);
    ok &= EVP_DigestUpdate(d->md_ctx, pad, sizeof pad);
    ok &= EVP_DigestUpdate(d->md_ctx, inner, sizeof inner);
    ok &= EVP_DigestFinal_ex(d->md_ctx, out, NULL);
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(inner, sizeof inner);
    return ok ? 0 : -1;
}

/* K = HMAC_K(V || sep [|| x || h1]); V = HMAC_K(V). */
static int drbg_update(drbg *d, uint8_t sep, const uint8_t *x, const uint8_t *h1, size_t rolen)
{
    const void *parts[] = {d->v, &sep, x, h1};
    size_t lens[] = {HLEN, 1, rolen, rolen};
    if (hmac(d, d->k, x ? 4 : 2, parts, lens) != 0)
        return -1;
    const void *vp[] = {d->v};
    size_t vl[] = {HLEN};
    return hmac(d, d->v, 1, vp, vl);
}

/* Steps b-g of §3.2. */
static int drbg_init(drbg *d, const rfc6979_key *key, const uint8_t *h1_octets)
{
    memset(d->v, 0x01, HLEN);
    memset(d->k, 0x00, HLEN);
    d->started = 0;
    if (drbg_update(d, 0x00, key->x_octets, h1_octets, key->rolen) != 0 ||
        drbg_update(d, 0x01, key->x_octets, h1_octets, key->rolen) != 0)
        return -1;
    return 0;
}

/* 1 if a < b, compared without data-dependent branches (a candidate k is secret). */
static unsigned ct_less(const uint8_t *a, const uint8_t *b, size_t n)
{
    unsigned lt = 0, gt = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned x = a[i], y = b[i];
        unsigned decided = lt | gt;
        lt |= ((x - y) >> 8) & 1 & ~decided;
        gt |= ((y - x) >> 8) & 1 & ~decided;
    }
    return lt;
}

/* Step h: the next candidate k in [1, q-1], as rolen big-endian bytes. After the first call,
 * each call first performs the h.3 update, which is also how §3.4 asks for a fresh k when
 * r or s comes out zero. */
static int drbg_next_k(drbg *d, const rfc6979_key *key, uint8_t *k_octets)
{
    uint8_t t[ROLEN_MAX + HLEN];
    for (;;) {
        if (d->started && drbg_update(d, 0x00, NULL, NULL, 0) != 0)
            return -1;
        d->started = 1;
        size_t tlen = 0;
        while (tlen < key->rolen) {
            const void *vp[] = {d->v};
            size_t vl[] = {HLEN};
            if (hmac(d, d->v, 1, vp, vl) != 0)
                return -1;
            memcpy(t + tlen, d->v, HLEN);
            tlen += HLEN;
        }
        /* bits2int(T): the leftmost qlen bits of T. */
        memcpy(k_octets, t, key->rolen);
        int shift = (int)(8 * key->rolen) - key->qlen;
        if (shift > 0) {
            for (size_t i = key->rolen; i-- > 0;) {
                unsigned carry = i > 0 ? (unsigned)k_octets[i - 1] << (8 - shift) : 0;
                k_octets[i] = (uint8_t)((k_octets[i] >> shift) | carry);
            }
        }
        OPENSSL_cleanse(t, sizeof t);
        unsigned any = 0;
        for (size_t i = 0; i < key->rolen; i++)
            any |= k_octets[i];
        if ((any != 0) & ct_less(k_octets, key->q_octets, key->rolen))
            return 0;
    }
}

int rfc6979_sign_rs(const rfc6979_key *key, const uint8_t *h, size_t h_len, BIGNUM *r, BIGNUM *s,
                    BIGNUM *k_out, error *err)
{
    int ret = -1;
    uint8_t h1_octets[ROLEN_MAX], k_octets[ROLEN_MAX];
    drbg d = {.md = key->sha256};
    EC_POINT *point = NULL;
    BN_CTX *ctx = BN_CTX_new();
    if (!ctx || !(d.md_ctx = EVP_MD_CTX_new()) || !(point = EC_POINT_new(key->group))) {
        error_set(err, "out of memory signing");
        goto done;
    }
    BN_CTX_start(ctx);
    BIGNUM *z = BN_CTX_get(ctx), *k = BN_CTX_get(ctx), *x = BN_CTX_get(ctx);
    BIGNUM *kinv = BN_CTX_get(ctx), *rd = BN_CTX_get(ctx), *t = BN_CTX_get(ctx);
    if (!t || h_len == 0 || h_len > 1024) {
        error_set(err, h_len ? "out of memory signing" : "empty message hash");
        goto end;
    }

    /* z = bits2int(h) mod q: the ECDSA message representative and, as int2octets, the
     * bits2octets(h1) half of the DRBG seed. Public, so plain arithmetic is fine. */
    if (!BN_bin2bn(h, (int)h_len, z) ||
        (8 * h_len > (size_t)key->qlen && !BN_rshift(z, z, (int)(8 * h_len) - key->qlen)) ||
        !BN_nnmod(z, z, key->order, ctx))
        goto crypto_fail;
    BN_bn2binpad(z, h1_octets, (int)key->rolen);
    if (drbg_init(&d, key, h1_octets) != 0)
        goto crypto_fail;

    BN_set_flags(k, BN_FLG_CONSTTIME);
    BN_set_flags(kinv, BN_FLG_CONSTTIME);
    for (;;) {
        if (drbg_next_k(&d, key, k_octets) != 0 || !BN_bin2bn(k_octets, (int)key->rolen, k))
            goto crypto_fail;
        /* r = (k·G).x mod q */
        if (!EC_POINT_mul(key->group, point, k, NULL, NULL, ctx) ||
            !EC_POINT_get_affine_coordinates(key->group, point, x, NULL, ctx) ||
            !BN_nnmod(r, x, key->order, ctx))
            goto crypto_fail;
        if (BN_is_zero(r))
            continue;
        /* s = k^-1 · (z + r·d) mod q */
        if (!BN_mod_exp_mont_consttime(kinv, k, key->order_minus_2, key->order, ctx, key->mont) ||
            !BN_mod_mul_montgomery(rd, r, key->d_mont, key->mont, ctx) ||
            !BN_mod_add_quick(t, z, rd, key->order) ||
            !BN_to_montgomery(kinv, kinv, key->mont, ctx) ||
            !BN_mod_mul_montgomery(s, kinv, t, key->mont, ctx))
            goto crypto_fail;
        if (BN_is_zero(s))
            continue;
        break;
    }
    if (k_out && !BN_copy(k_out, k))
        goto crypto_fail;
    ret = 0;
    goto end;

crypto_fail:
    error_set(err, "ECDSA signing failed in the crypto library");
end:
    BN_clear(k);
    BN_clear(kinv);
    BN_clear(rd);
    BN_clear(t);
    BN_CTX_end(ctx);
done:
    OPENSSL_cleanse(&d.v, sizeof d.v);
    OPENSSL_cleanse(&d.k, sizeof d.k);
    OPENSSL_cleanse(k_octets, sizeof k_octets);
    EVP_MD_CTX_free(d.md_ctx);
    EC_POINT_clear_free(point);
    BN_CTX_free(ctx);
    return ret;
}

/* Writes a DER INTEGER (at most 2 + 1 + ROLEN_MAX bytes); returns its length, 0 if v does
 * not fit. */
static size_t der_integer(uint8_t *out, const BIGNUM *v)
{
    uint8_t bytes[1 + ROLEN_MAX];
    int n = BN_num_bytes(v);
    if (BN_is_negative(v) || n > ROLEN_MAX)
        return 0;
    bytes[0] = 0;
    BN_bn2bin(v, bytes + 1);
    /* Minimal encoding: one 00 for zero, and a leading 00 only when the top bit is set. */
    const uint8_t *start = bytes + 1;
    size_t len = (size_t)n;
    if (n == 0 || (bytes[1] & 0x80)) {
        start = bytes;
        len++;
    }
    out[0] = 0x02;
    out[1] = (uint8_t)len;
    memcpy(out + 2, start, len);
    return 2 + len;
}

int ecdsa_sig_der_encode(buffer *out, const BIGNUM *r, const BIGNUM *s)
{
    uint8_t body[2 * (3 + ROLEN_MAX)];
    size_t rn = der_integer(body, r);
    size_t sn = rn ? der_integer(body + rn, s) : 0;
    if (!sn)
        return -1;
    size_t len = rn + sn;
    uint8_t head[3] = {0x30, (uint8_t)len};
    size_t head_len = 2;
    if (len >= 128) {
        head[1] = 0x81;
        head[2] = (uint8_t)len;
        head_len = 3;
    }
    return buffer_append(out, head, head_len) || buffer_append(out, body, len) ? -1 : 0;
}

int rfc6979_sign(const rfc6979_key *key, const uint8_t *h, size_t h_len, buffer *der, error *err)
{
    BIGNUM *r = BN_new(), *s = BN_new();
    int ret = -1;
    if (!r || !s)
        error_set(err, "out of memory signing");
    else if (rfc6979_sign_rs(key, h, h_len, r, s, NULL, err) == 0) {
        ret = ecdsa_sig_der_encode(der, r, s);
        if (ret != 0)
            error_set(err, "out of memory encoding the signature");
    }
    BN_free(r);
    BN_free(s);
    return ret;
}
