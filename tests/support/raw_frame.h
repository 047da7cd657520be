/*
 * raw_frame.h - request frames built field by field, for the frames the
 * client library will not build (a field left out, too long, repeated, of a
 * wrong width), sent to the test daemon over their own TLS connection.
 * The daemon tests assert the exact status and errorTag of each.
 */
#ifndef TOKENVAULT_TESTS_SUPPORT_RAW_FRAME_H
#define TOKENVAULT_TESTS_SUPPORT_RAW_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "api/frame.h"
#include "api/writer.h"
#include "tests/support/daemon.h"

struct tv_raw {
    struct api_writer w;
    size_t mark;
};

/* Starts a request frame of |opcode| with request id |rid| (length prefix
 * and header); fields follow with the calls below. */
void tv_raw_begin(struct tv_raw *f, uint16_t opcode, uint64_t rid);
/* One field: tag, u32 length, |len| bytes (any length: that is the point). */
void tv_raw_field(struct tv_raw *f, uint16_t tag, const void *v, size_t len);
void tv_raw_str(struct tv_raw *f, uint16_t tag, const char *s);
void tv_raw_u8(struct tv_raw *f, uint16_t tag, uint8_t v);
void tv_raw_u16(struct tv_raw *f, uint16_t tag, uint16_t v);
void tv_raw_u64(struct tv_raw *f, uint16_t tag, uint64_t v);

/* tv_raw_read reads one response frame from |ssl| into |buf| and decodes
 * it into *out (api_frame_cleanup it). 0, or -1 when the connection ends
 * first or the frame does not decode. */
int tv_raw_read(struct ssl_st *ssl, uint8_t *buf, size_t cap, struct api_frame *out);

/* tv_raw_send finishes |f|, sends it to |d| as the client |who| on a new
 * TLS connection, and gives the answer's status and errorTag (0 when
 * none). The frame is cleaned up; the cmocka test fails on any I/O error. */
void tv_raw_send(const struct tv_daemon *d, const char *who, struct tv_raw *f,
                 unsigned *out_status, uint16_t *out_tag);

#endif
