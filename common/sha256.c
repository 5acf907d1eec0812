#include "sha256.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
    SHA256(data, len, out);
}

void sha256_parts(uint8_t out[SHA256_LEN], int n, const void *const *parts, const size_t *lens)
{
    /* EVP_MD_CTX is reused per thread: allocating one per hash costs more than the hash. */
    static _Thread_local EVP_MD_CTX *ctx;
    if (!ctx)
        ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (int i = 0; i < n; i++)
        EVP_DigestUpdate(ctx, parts[i], lens[i]);
    EVP_DigestFinal_ex(ctx, out, NULL);
}
