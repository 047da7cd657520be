/*
 * writer.h - builds a frame in a growing buffer (BoringSSL CBB style).
 *
 * The writer owns its buffer, grows it up to a fixed maximum and fills in
 * length prefixes itself: api_writer_begin_u32 reserves a u32 and
 * api_writer_end_u32 writes the number of bytes written since. Errors are
 * sticky: after the first failure every call returns that error and writes
 * nothing, so a builder may check only the last call, though it should check
 * each. The buffer may hold card data, so it is wiped whenever it is resized,
 * reset or freed.
 *
 * Not thread-safe per writer.
 */
#ifndef TOKENVAULT_API_WRITER_H
#define TOKENVAULT_API_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "api/proto.h"

struct api_writer {
    uint8_t *buf;
    size_t len;
    size_t cap;
    size_t max; /* the buffer never grows past this many bytes */
    int err;    /* first error, sticky */
};

/* api_writer_init prepares |w| to write at most |max| bytes. Allocates
 * nothing until the first write. Always succeeds. */
void api_writer_init(struct api_writer *w, size_t max);

/* api_writer_cleanup wipes and frees the buffer; |w| may be reused after
 * api_writer_init. Accepts a zeroed or cleaned-up writer. */
void api_writer_cleanup(struct api_writer *w);

/* api_writer_reset wipes what was written and clears the error, keeping the
 * buffer for the next frame. */
void api_writer_reset(struct api_writer *w);

/* api_writer_truncate drops (and wipes) everything after the first |len|
 * bytes and clears the sticky error: a caller rolls back a partial frame.
 * |len| larger than what was written is ignored. */
void api_writer_truncate(struct api_writer *w, size_t len);

/* Each returns 0, -API_STATUS_TOO_LARGE when the write would pass |max|, or
 * API_ERR_NO_MEMORY. */
API_WUR int api_writer_put_u8(struct api_writer *w, uint8_t v);
API_WUR int api_writer_put_u16(struct api_writer *w, uint16_t v);
API_WUR int api_writer_put_u32(struct api_writer *w, uint32_t v);
API_WUR int api_writer_put_u64(struct api_writer *w, uint64_t v);
API_WUR int api_writer_put_bytes(struct api_writer *w, const uint8_t *data, size_t len);

/* api_writer_put_str8 appends a u8 length and the bytes of the string |s|
 * (NULL writes an empty one). -API_STATUS_BAD_LENGTH when it is longer than
 * 255 bytes, else as the other puts. The counterpart of api_reader_get_str8. */
API_WUR int api_writer_put_str8(struct api_writer *w, const char *s);

/* api_writer_begin_u32 reserves a u32 length prefix; *out_mark identifies it
 * for api_writer_end_u32, which writes the number of bytes that follow the
 * prefix. Prefixes nest (end them innermost first). Both return 0 or the
 * sticky error; end also fails with API_ERR_INVALID_ARG for a bad mark. */
API_WUR int api_writer_begin_u32(struct api_writer *w, size_t *out_mark);
API_WUR int api_writer_end_u32(struct api_writer *w, size_t mark);

/* The bytes written so far (borrowed; valid until the next write, reset or
 * cleanup) and their count. */
const uint8_t *api_writer_data(const struct api_writer *w);
size_t api_writer_len(const struct api_writer *w);

#endif
