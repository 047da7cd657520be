/*
 * reader.h - a bounds-checked cursor over untrusted bytes (BoringSSL CBS style).
 *
 * A reader borrows the bytes it reads; it never copies or allocates. Every read
 * goes through one bounds check (api_reader_get_bytes), which cannot overflow.
 * A failed read returns an error and leaves the reader unchanged, so a parser
 * can report exactly where it stopped. Length-prefixed fields become
 * sub-readers, and a parser ends with api_reader_len() == 0: trailing bytes are
 * an error, never ignored.
 *
 * Not thread-safe per reader; readers are small values meant for the stack.
 */
#ifndef TOKENVAULT_API_READER_H
#define TOKENVAULT_API_READER_H

#include <stddef.h>
#include <stdint.h>

#include "api/proto.h"

struct api_reader {
    const uint8_t *data;
    size_t len;
};

/* api_reader_init points |r| at |len| bytes at |data| (borrowed; they must
 * outlive the reader and every sub-reader taken from it). */
void api_reader_init(struct api_reader *r, const uint8_t *data, size_t len);

/* Bytes left. */
size_t api_reader_len(const struct api_reader *r);

/* api_reader_get_bytes takes the next |len| bytes as a sub-reader in |out|.
 * Returns 0, or -API_STATUS_TRUNCATED if fewer than |len| bytes are left. */
API_WUR int api_reader_get_bytes(struct api_reader *r, struct api_reader *out, size_t len);

/* api_reader_skip drops |len| bytes. 0 or -API_STATUS_TRUNCATED. */
API_WUR int api_reader_skip(struct api_reader *r, size_t len);

/* Big-endian unsigned integers. 0 or -API_STATUS_TRUNCATED; |out| written only
 * on success. */
API_WUR int api_reader_get_u8(struct api_reader *r, uint8_t *out);
API_WUR int api_reader_get_u16(struct api_reader *r, uint16_t *out);
API_WUR int api_reader_get_u32(struct api_reader *r, uint32_t *out);
API_WUR int api_reader_get_u64(struct api_reader *r, uint64_t *out);

/* api_reader_get_u32_prefixed reads a u32 length and takes that many bytes as
 * a sub-reader. 0 or -API_STATUS_TRUNCATED (the reader is unchanged then). */
API_WUR int api_reader_get_u32_prefixed(struct api_reader *r, struct api_reader *out);

/* api_reader_get_str8 reads a u8 length and that many bytes as a string
 * into |out| (capacity |cap|, NUL-terminated): the length must be
 * |min|..|max| (max < cap) and no byte may be NUL. The vault's own records
 * use it; a wire field never does. 0, -API_STATUS_TRUNCATED, or
 * -API_STATUS_BAD_VALUE; the reader is unchanged on failure. */
API_WUR int api_reader_get_str8(struct api_reader *r, char *out, size_t cap, size_t min,
                                size_t max);

#endif
