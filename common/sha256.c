#include "sha256.h"

#include <pthread.h>
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
    SHA256(data, len, out);
}

/* One EVP_MD_CTX per thread: allocating one per hash costs more than hashing a node. The
 * pthread key frees it when its thread exits, so worker threads do not leak. */
static pthread_key_t ctx_key;
static pthread_once_t ctx_key_once = PTHREAD_ONCE_INIT;

static void free_ctx(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void make_ctx_key(void)
{
    pthread_key_create(&ctx_key, free_ctx);
}

static EVP_MD_CTX *thread_ctx(void)
{
    pthread_once(&ctx_key_once, make_ctx_key);
    EVP_MD_CTX *ctx = pthread_getspecific(ctx_key);
    if (!ctx) {
        ctx = EVP_MD_CTX_new();
        if (ctx)
            pthread_setspecific(ctx_key, ctx);
    }
    return ctx;
}

void sha256_parts(uint8_t out[SHA256_LEN], int n, const void *const *parts, const size_t *lens)
{
    EVP_MD_CTX *ctx = thread_ctx();
    if (!ctx)
        abort(); /* out of memory for a 200-byte context: nothing sensible remains */
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (int i = 0; i < n; i++)
        EVP_DigestUpdate(ctx, parts[i], lens[i]);
    EVP_DigestFinal_ex(ctx, out, NULL);
}
