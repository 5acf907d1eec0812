/* sha256: the one hash of CT (leaf and node hashes, log IDs, fingerprints, dedup keys). */
#ifndef TEGULA_SHA256_H
#define TEGULA_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);
/* SHA-256 over the concatenation of n (pointer, length) parts, without copying. */
void sha256_parts(uint8_t out[SHA256_LEN], int n, const void *const *parts, const size_t *lens);

#endif
