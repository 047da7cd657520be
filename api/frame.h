/*
 * frame.h - whole frames: the length prefix, the fixed header, and the body
 * decoded into its message struct.
 *
 *   u32 length | u16 magic "TV" | u8 version | u8 flags | u16 opcode |
 *   u16 status | u64 request id | fields...
 *
 * The length counts everything after itself: API_HEADER_LEN..API_FRAME_MAX.
 * Requests carry status 0 and no RESPONSE flag; responses carry the flag and
 * the request's opcode and id. A response whose status is not OK has the body
 * of struct api_error_resp, whatever its opcode.
 *
 * Pure: no I/O. Thread-safe.
 */
#ifndef TOKENVAULT_API_FRAME_H
#define TOKENVAULT_API_FRAME_H

#include <stdint.h>

#include "api/msg.h"

struct api_header {
    uint8_t version;
    uint8_t flags;
    uint16_t opcode;
    uint16_t status;
    uint64_t request_id;
};

/* Which side a decoder expects to read. */
enum api_direction {
    API_DIR_REQUEST,
    API_DIR_RESPONSE,
};

/* api_frame_length checks the 4-byte length prefix at |prefix| and sets *out
 * to the number of bytes that follow it. Returns 0, -API_STATUS_TOO_LARGE
 * (over API_FRAME_MAX) or -API_STATUS_BAD_REQUEST (shorter than a header). A
 * stream reader calls this first and never buffers more than API_FRAME_MAX. */
API_WUR int api_frame_length(const uint8_t prefix[API_LEN_PREFIX], uint32_t *out);

/* api_frame_parse_header reads the fixed header from |r| (the bytes after the
 * length prefix) and checks it for direction |dir|: magic, version, flags,
 * status 0 in a request, a known opcode (any opcode in an error response,
 * whose body is the error body). Returns 0, -API_STATUS_BAD_REQUEST,
 * -API_STATUS_UNSUPPORTED_VERSION, -API_STATUS_UNKNOWN_OPCODE or
 * -API_STATUS_TRUNCATED. *out is filled whenever the first 16 bytes could be
 * read, even on failure, so a server can answer with the request id. */
API_WUR int api_frame_parse_header(struct api_reader *r, enum api_direction dir,
                                   struct api_header *out);

/* A decoded frame: header, the schema chosen by opcode, direction and status,
 * and the message (allocated, schema->size bytes). */
struct api_frame {
    struct api_header hdr;
    const struct api_schema *schema;
    void *msg;
};

/* api_frame_decode decodes the frame whose bytes after the length prefix are
 * |data|/|len|. Returns 0 or a negated status; |err| says where (its status is
 * also set for header errors). On success |out| owns msg: release it with
 * api_frame_cleanup. On failure out->hdr is still filled when the header was
 * readable, and nothing is allocated. BLOB fields point into |data|. */
API_WUR int api_frame_decode(struct api_frame *out, const uint8_t *data, size_t len,
                             enum api_direction dir, struct api_field_error *err);

/* api_frame_cleanup wipes and frees the message. Accepts NULL and a frame
 * whose decode failed. */
void api_frame_cleanup(struct api_frame *f);

/* api_frame_write appends one whole frame to |w|: length prefix, header and
 * the fields of |msg| (schema |s|; NULL with |msg| NULL for no fields).
 * Returns 0, API_ERR_INVALID_ARG for a header the decoder would refuse
 * (version, reserved flags, a status in a request, an undefined status, an
 * unknown opcode outside an error response), or what api_msg_encode returns. On failure |w| is rolled back to
 * where it was, so frames already in it stay whole. */
API_WUR int api_frame_write(struct api_writer *w, const struct api_header *h,
                            const struct api_schema *s, const void *msg,
                            struct api_field_error *err);

/* api_frame_write_error appends an error response to |req|'s header: status
 * |status| (a defined status other than OK, else API_ERR_INVALID_ARG), a
 * fixed |message| (cut at a character boundary to API_MESSAGE_MAX bytes), and
 * the tag at fault when |tag| is not 0. Returns as api_frame_write. */
API_WUR int api_frame_write_error(struct api_writer *w, const struct api_header *req,
                                  unsigned status, uint16_t tag, const char *message);

#endif
