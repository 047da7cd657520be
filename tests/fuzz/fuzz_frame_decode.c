/*
 * fuzz_frame_decode - every byte of a frame body comes from the peer: the
 * server decodes requests from any authenticated client, the client decodes
 * responses from a server it may not trust to be well. Any input must give a
 * negated status or a message, never a crash, a read outside the buffer or a
 * leak.
 *
 * And the codec's round-trip invariant (docs/PROTOCOL.md, "Decoding"): a
 * message the decoder accepts, the encoder writes back; that encoding decodes
 * again; and encoding it once more gives the same bytes. The first encoding
 * may differ from the input (field order is free on the wire, encoders write
 * schema order), never the second from the first.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Encodes |f| into |w| (reset first); traps when the encoder refuses what the
 * decoder accepted. */
static void
encode(struct api_writer *w, const struct api_frame *f)
{
    struct api_field_error err;

    api_writer_reset(w);
    if (api_frame_write(w, &f->hdr, f->schema, f->msg, &err) != 0)
        __builtin_trap();
}

static void
round_trip(const uint8_t *body, size_t len, enum api_direction dir)
{
    struct api_frame first, second;
    struct api_field_error err;
    struct api_writer w1, w2;
    uint32_t framed = 0;
    int rc = api_frame_decode(&first, body, len, dir, &err);

    if (rc != 0) {
        /* A failure allocates nothing and names a status the wire knows. */
        if (first.msg != NULL)
            __builtin_trap();
        if (rc != API_ERR_NO_MEMORY &&
            (api_status_name((unsigned)-rc) == NULL || err.status != (unsigned)-rc))
            __builtin_trap();
        api_frame_cleanup(&first);
        return;
    }
    api_writer_init(&w1, API_LEN_PREFIX + API_FRAME_MAX);
    api_writer_init(&w2, API_LEN_PREFIX + API_FRAME_MAX);
    encode(&w1, &first);
    /* The encoding is a whole frame: its prefix passes the stream check and
     * counts exactly the bytes after it. */
    if (api_writer_len(&w1) < API_LEN_PREFIX ||
        api_frame_length(api_writer_data(&w1), &framed) != 0 ||
        framed != api_writer_len(&w1) - API_LEN_PREFIX)
        __builtin_trap();
    if (api_frame_decode(&second, api_writer_data(&w1) + API_LEN_PREFIX, framed, dir, &err) != 0)
        __builtin_trap();
    /* Member by member: the header struct has padding. */
    if (second.schema != first.schema || second.hdr.version != first.hdr.version ||
        second.hdr.flags != first.hdr.flags || second.hdr.opcode != first.hdr.opcode ||
        second.hdr.status != first.hdr.status || second.hdr.request_id != first.hdr.request_id)
        __builtin_trap();
    encode(&w2, &second);
    if (api_writer_len(&w1) != api_writer_len(&w2) ||
        memcmp(api_writer_data(&w1), api_writer_data(&w2), api_writer_len(&w1)) != 0)
        __builtin_trap();
    api_frame_cleanup(&second);
    api_frame_cleanup(&first);
    api_writer_cleanup(&w2);
    api_writer_cleanup(&w1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Copy to an exact-size heap buffer so ASan sees any over-read; BLOB
     * fields point into it until the frame is cleaned up. */
    uint8_t *body = malloc(size > 0 ? size : 1);
    uint32_t len = 0;

    if (body == NULL)
        return 0;
    memcpy(body, data, size);
    if (size >= API_LEN_PREFIX) {
        int rc = api_frame_length(body, &len);

        if (rc == 0 && (len < API_HEADER_LEN || len > API_FRAME_MAX))
            __builtin_trap();
        if (rc != 0 && rc != -API_STATUS_TOO_LARGE && rc != -API_STATUS_BAD_REQUEST)
            __builtin_trap();
    }
    round_trip(body, size, API_DIR_REQUEST);
    round_trip(body, size, API_DIR_RESPONSE);
    free(body);
    return 0;
}
