/*
 * raw_frame.c - request frames built field by field (raw_frame.h).
 */
#include "tests/support/raw_frame.h"

#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "api/msg.h"
#include "api/proto.h"

void
tv_raw_begin(struct tv_raw *f, uint16_t opcode, uint64_t rid)
{
    api_writer_init(&f->w, API_LEN_PREFIX + API_FRAME_MAX);
    assert_int_equal(api_writer_begin_u32(&f->w, &f->mark), 0);
    assert_int_equal(api_writer_put_u16(&f->w, API_MAGIC), 0);
    assert_int_equal(api_writer_put_u8(&f->w, API_VERSION), 0);
    assert_int_equal(api_writer_put_u8(&f->w, 0), 0);
    assert_int_equal(api_writer_put_u16(&f->w, opcode), 0);
    assert_int_equal(api_writer_put_u16(&f->w, 0), 0);
    assert_int_equal(api_writer_put_u64(&f->w, rid), 0);
}

void
tv_raw_field(struct tv_raw *f, uint16_t tag, const void *v, size_t len)
{
    assert_int_equal(api_writer_put_u16(&f->w, tag), 0);
    assert_int_equal(api_writer_put_u32(&f->w, (uint32_t)len), 0);
    assert_int_equal(api_writer_put_bytes(&f->w, v, len), 0);
}

void
tv_raw_str(struct tv_raw *f, uint16_t tag, const char *s)
{
    tv_raw_field(f, tag, s, strlen(s));
}

void
tv_raw_u8(struct tv_raw *f, uint16_t tag, uint8_t v)
{
    tv_raw_field(f, tag, &v, 1);
}

void
tv_raw_u16(struct tv_raw *f, uint16_t tag, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

    tv_raw_field(f, tag, b, sizeof(b));
}

void
tv_raw_u64(struct tv_raw *f, uint16_t tag, uint64_t v)
{
    uint8_t b[8];

    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
    tv_raw_field(f, tag, b, sizeof(b));
}

int
tv_raw_read(SSL *ssl, uint8_t *buf, size_t cap, struct api_frame *out)
{
    struct api_field_error fe;
    uint32_t len = 0;
    size_t got = 0;
    int n;

    while (got < API_LEN_PREFIX) {
        if ((n = SSL_read(ssl, buf + got, (int)(API_LEN_PREFIX - got))) <= 0)
            return -1;
        got += (size_t)n;
    }
    if (api_frame_length(buf, &len) != 0 || len > cap - API_LEN_PREFIX)
        return -1;
    while (got < API_LEN_PREFIX + len) {
        if ((n = SSL_read(ssl, buf + got, (int)(API_LEN_PREFIX + len - got))) <= 0)
            return -1;
        got += (size_t)n;
    }
    return api_frame_decode(out, buf + API_LEN_PREFIX, len, API_DIR_RESPONSE, &fe) == 0 ? 0 : -1;
}

void
tv_raw_send(const struct tv_daemon *d, const char *who, struct tv_raw *f, unsigned *out_status,
            uint16_t *out_tag)
{
    static uint8_t buf[API_LEN_PREFIX + API_FRAME_MAX];
    struct api_frame resp = {0};
    const struct api_error_resp *e;
    int fd = -1;
    SSL *ssl = tv_daemon_raw_tls(d, who, &fd);

    assert_non_null(ssl);
    assert_int_equal(api_writer_end_u32(&f->w, f->mark), 0);
    assert_int_equal(SSL_connect(ssl), 1);
    assert_int_equal(SSL_write(ssl, api_writer_data(&f->w), (int)api_writer_len(&f->w)),
                     (int)api_writer_len(&f->w));
    assert_int_equal(tv_raw_read(ssl, buf, sizeof(buf), &resp), 0);
    *out_status = resp.hdr.status;
    e = resp.msg;
    *out_tag = resp.hdr.status != 0 && e->has_error_tag ? e->error_tag : 0;
    api_frame_cleanup(&resp);
    SSL_free(ssl);
    close(fd);
    ERR_clear_error();
    api_writer_cleanup(&f->w);
}
