/* writer.c - the frame builder; see writer.h. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api/writer.h"

/* First allocation; most frames are a few hundred bytes. */
#define WRITER_INITIAL_CAP 512u

void
api_writer_init(struct api_writer *w, size_t max)
{
    memset(w, 0, sizeof(*w));
    w->max = max;
}

void
api_writer_cleanup(struct api_writer *w)
{
    if (w == NULL)
        return;
    if (w->buf != NULL) {
        OPENSSL_cleanse(w->buf, w->cap);
        free(w->buf);
    }
    memset(w, 0, sizeof(*w));
}

void
api_writer_reset(struct api_writer *w)
{
    if (w->buf != NULL)
        OPENSSL_cleanse(w->buf, w->len);
    w->len = 0;
    w->err = 0;
}

void
api_writer_truncate(struct api_writer *w, size_t len)
{
    if (len > w->len || w->buf == NULL)
        return;
    OPENSSL_cleanse(w->buf + len, w->len - len);
    w->len = len;
    w->err = 0;
}

/* Makes room for |len| more bytes and returns where they go, or NULL with the
 * sticky error set. The old buffer is wiped rather than realloc'd, because
 * realloc may leave a copy of card data in freed memory. */
static uint8_t *
reserve(struct api_writer *w, size_t len)
{
    size_t cap;
    uint8_t *nbuf;

    if (w->err != 0)
        return NULL;
    if (len > w->max - w->len) {
        w->err = -API_STATUS_TOO_LARGE;
        return NULL;
    }
    if (len > w->cap - w->len) {
        cap = w->cap != 0 ? w->cap : WRITER_INITIAL_CAP;
        while (cap - w->len < len)
            cap = cap > w->max / 2 ? w->max : cap * 2;
        nbuf = malloc(cap);
        if (nbuf == NULL) {
            w->err = API_ERR_NO_MEMORY;
            return NULL;
        }
        if (w->buf != NULL) {
            memcpy(nbuf, w->buf, w->len);
            OPENSSL_cleanse(w->buf, w->cap);
            free(w->buf);
        }
        w->buf = nbuf;
        w->cap = cap;
    }
    w->len += len;
    return w->buf + w->len - len;
}

static int
put_be(struct api_writer *w, uint64_t v, size_t width)
{
    uint8_t *p = reserve(w, width);

    if (p == NULL)
        return w->err;
    for (size_t i = width; i > 0; i--) {
        p[i - 1] = (uint8_t)v;
        v >>= 8;
    }
    return 0;
}

int
api_writer_put_u8(struct api_writer *w, uint8_t v)
{
    return put_be(w, v, 1);
}

int
api_writer_put_u16(struct api_writer *w, uint16_t v)
{
    return put_be(w, v, 2);
}

int
api_writer_put_u32(struct api_writer *w, uint32_t v)
{
    return put_be(w, v, 4);
}

int
api_writer_put_u64(struct api_writer *w, uint64_t v)
{
    return put_be(w, v, 8);
}

int
api_writer_put_bytes(struct api_writer *w, const uint8_t *data, size_t len)
{
    uint8_t *p;

    if (len == 0)
        return w->err;
    p = reserve(w, len);
    if (p == NULL)
        return w->err;
    memcpy(p, data, len);
    return 0;
}

int
api_writer_begin_u32(struct api_writer *w, size_t *out_mark)
{
    size_t mark = w->len;
    int rc = api_writer_put_u32(w, 0);

    if (rc == 0)
        *out_mark = mark;
    return rc;
}

int
api_writer_end_u32(struct api_writer *w, size_t mark)
{
    size_t body;

    if (w->err != 0)
        return w->err;
    if (mark > w->len || w->len - mark < 4) {
        w->err = API_ERR_INVALID_ARG;
        return w->err;
    }
    body = w->len - mark - 4;
    if (body > UINT32_MAX) {
        w->err = -API_STATUS_TOO_LARGE;
        return w->err;
    }
    w->buf[mark] = (uint8_t)(body >> 24);
    w->buf[mark + 1] = (uint8_t)(body >> 16);
    w->buf[mark + 2] = (uint8_t)(body >> 8);
    w->buf[mark + 3] = (uint8_t)body;
    return 0;
}

const uint8_t *
api_writer_data(const struct api_writer *w)
{
    return w->buf;
}

size_t
api_writer_len(const struct api_writer *w)
{
    return w->len;
}

int
api_writer_put_str8(struct api_writer *w, const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    int rc;

    if (w->err != 0)
        return w->err;
    if (len > UINT8_MAX)
        return -API_STATUS_BAD_LENGTH;
    if ((rc = api_writer_put_u8(w, (uint8_t)len)) != 0)
        return rc;
    return api_writer_put_bytes(w, (const uint8_t *)s, len);
}
