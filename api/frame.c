/* frame.c - frame header and whole-frame codec; see frame.h. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api/frame.h"

int
api_frame_length(const uint8_t prefix[API_LEN_PREFIX], uint32_t *out)
{
    uint32_t len = (uint32_t)prefix[0] << 24 | (uint32_t)prefix[1] << 16 |
                   (uint32_t)prefix[2] << 8 | prefix[3];

    if (len > API_FRAME_MAX)
        return -API_STATUS_TOO_LARGE;
    if (len < API_HEADER_LEN)
        return -API_STATUS_BAD_REQUEST;
    *out = len;
    return 0;
}

int
api_frame_parse_header(struct api_reader *r, enum api_direction dir, struct api_header *out)
{
    struct api_header h;
    uint16_t magic;

    memset(&h, 0, sizeof(h)); /* padding too: headers are compared and copied whole */
    memset(out, 0, sizeof(*out));
    if (api_reader_get_u16(r, &magic) < 0 || api_reader_get_u8(r, &h.version) < 0 ||
        api_reader_get_u8(r, &h.flags) < 0 || api_reader_get_u16(r, &h.opcode) < 0 ||
        api_reader_get_u16(r, &h.status) < 0 || api_reader_get_u64(r, &h.request_id) < 0)
        return -API_STATUS_TRUNCATED;
    *out = h;
    if (magic != API_MAGIC)
        return -API_STATUS_BAD_REQUEST;
    if (h.version != API_VERSION)
        return -API_STATUS_UNSUPPORTED_VERSION;
    if (h.flags & ~API_FLAGS_KNOWN)
        return -API_STATUS_BAD_REQUEST;
    if (dir == API_DIR_REQUEST && ((h.flags & API_FLAG_RESPONSE) || h.status != 0))
        return -API_STATUS_BAD_REQUEST;
    if (dir == API_DIR_RESPONSE &&
        (!(h.flags & API_FLAG_RESPONSE) || api_status_name(h.status) == NULL))
        return -API_STATUS_BAD_REQUEST;
    /* An error response carries the error body whatever its opcode: the
     * answer to a frame whose opcode was unknown or unreadable (0). */
    if (api_schema_request(h.opcode) == NULL &&
        !(dir == API_DIR_RESPONSE && h.status != API_STATUS_OK))
        return -API_STATUS_UNKNOWN_OPCODE;
    return 0;
}

int
api_frame_decode(struct api_frame *out, const uint8_t *data, size_t len, enum api_direction dir,
                 struct api_field_error *err)
{
    struct api_reader r;
    const struct api_schema *s;
    void *msg;
    int rc;

    memset(out, 0, sizeof(*out));
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    if (len > API_FRAME_MAX)
        rc = -API_STATUS_TOO_LARGE;
    else {
        api_reader_init(&r, data, len);
        rc = api_frame_parse_header(&r, dir, &out->hdr);
    }
    if (rc < 0) {
        if (err != NULL) {
            err->status = (unsigned)-rc;
            err->message = "frame header refused";
        }
        return rc;
    }
    if (dir == API_DIR_REQUEST)
        s = api_schema_request(out->hdr.opcode);
    else if (out->hdr.status == API_STATUS_OK)
        s = api_schema_response(out->hdr.opcode);
    else
        s = api_schema_error();
    msg = malloc(s->size);
    if (msg == NULL) {
        if (err != NULL) {
            err->status = API_STATUS_INTERNAL;
            err->message = "out of memory";
        }
        return API_ERR_NO_MEMORY;
    }
    rc = api_msg_decode(s, &r, msg, err);
    if (rc < 0) {
        free(msg);
        return rc;
    }
    out->schema = s;
    out->msg = msg;
    return 0;
}

void
api_frame_cleanup(struct api_frame *f)
{
    if (f == NULL)
        return;
    if (f->msg != NULL) {
        api_msg_cleanup(f->schema, f->msg);
        free(f->msg);
    }
    f->msg = NULL;
    f->schema = NULL;
}

int
api_frame_write(struct api_writer *w, const struct api_header *h, const struct api_schema *s,
                const void *msg, struct api_field_error *err)
{
    size_t start = api_writer_len(w), mark;
    bool response = (h->flags & API_FLAG_RESPONSE) != 0;
    int rc;

    if (err != NULL)
        memset(err, 0, sizeof(*err));
    /* The header is checked by the decoder's rules too: what this writes,
     * api_frame_parse_header accepts. */
    if (h->version != API_VERSION || (h->flags & ~API_FLAGS_KNOWN) ||
        (!response && h->status != 0) || api_status_name(h->status) == NULL ||
        (api_schema_request(h->opcode) == NULL && !(response && h->status != API_STATUS_OK)))
        return API_ERR_INVALID_ARG;
    rc = api_writer_begin_u32(w, &mark);
    if (rc == 0)
        rc = api_writer_put_u16(w, API_MAGIC);
    if (rc == 0)
        rc = api_writer_put_u8(w, h->version);
    if (rc == 0)
        rc = api_writer_put_u8(w, h->flags);
    if (rc == 0)
        rc = api_writer_put_u16(w, h->opcode);
    if (rc == 0)
        rc = api_writer_put_u16(w, h->status);
    if (rc == 0)
        rc = api_writer_put_u64(w, h->request_id);
    if (rc == 0 && s != NULL)
        rc = api_msg_encode(w, s, msg, err);
    if (rc == 0 && api_writer_len(w) - mark - API_LEN_PREFIX > API_FRAME_MAX)
        rc = -API_STATUS_TOO_LARGE;
    if (rc == 0)
        rc = api_writer_end_u32(w, mark);
    if (rc < 0)
        api_writer_truncate(w, start);
    return rc;
}

int
api_frame_write_error(struct api_writer *w, const struct api_header *req, unsigned status,
                      uint16_t tag, const char *message)
{
    struct api_header h = *req;
    struct api_error_resp e;
    size_t len;

    if (status == API_STATUS_OK || api_status_name(status) == NULL)
        return API_ERR_INVALID_ARG;
    memset(&e, 0, sizeof(e));
    h.version = API_VERSION;
    h.flags = API_FLAG_RESPONSE;
    h.status = (uint16_t)status;
    if (message == NULL || message[0] == '\0')
        message = api_status_description(status);
    if (message == NULL)
        message = "error";
    len = strnlen(message, API_MESSAGE_MAX + 1);
    if (len > API_MESSAGE_MAX) {
        /* Cut at a character boundary: half a UTF-8 sequence would make the
         * encoder refuse the message, and the error could not be sent. */
        len = API_MESSAGE_MAX;
        while (len > 0 && ((unsigned char)message[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(e.message, message, len);
    if (tag != 0) {
        e.has_error_tag = true;
        e.error_tag = tag;
    }
    return api_frame_write(w, &h, api_schema_error(), &e, NULL);
}
