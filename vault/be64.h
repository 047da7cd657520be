/*
 * be64.h - u64 big-endian in fixed byte buffers: store keys and values that
 * must sort as numbers (audit sequence numbers, expiry times) and fixed-size
 * fields of the vault's own records. Variable-length encodings use
 * api/writer.h and api/reader.h instead.
 */
#ifndef TOKENVAULT_VAULT_BE64_H
#define TOKENVAULT_VAULT_BE64_H

#include <stdint.h>

static inline void
vault_put_be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

static inline uint64_t
vault_get_be64(const uint8_t in[8])
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | in[i];
    return v;
}

#endif
