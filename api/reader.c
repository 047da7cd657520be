/* reader.c - the bounds-checked cursor; see reader.h. */
#include "api/reader.h"

#include <string.h>

void
api_reader_init(struct api_reader *r, const uint8_t *data, size_t len)
{
    r->data = data;
    r->len = len;
}

size_t
api_reader_len(const struct api_reader *r)
{
    return r->len;
}

/* The one bounds check: |len| is compared with what is left, never added to a
 * position, so no sum can wrap. */
int
api_reader_get_bytes(struct api_reader *r, struct api_reader *out, size_t len)
{
    if (len > r->len)
        return -API_STATUS_TRUNCATED;
    api_reader_init(out, r->data, len);
    r->data += len;
    r->len -= len;
    return 0;
}

int
api_reader_skip(struct api_reader *r, size_t len)
{
    struct api_reader unused;

    return api_reader_get_bytes(r, &unused, len);
}

/* Reads |width| bytes as a big-endian number. */
static int
get_be(struct api_reader *r, size_t width, uint64_t *out)
{
    struct api_reader num;
    uint64_t v = 0;
    int rc = api_reader_get_bytes(r, &num, width);

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < width; i++)
        v = (v << 8) | num.data[i];
    *out = v;
    return 0;
}

int
api_reader_get_u8(struct api_reader *r, uint8_t *out)
{
    uint64_t v;
    int rc = get_be(r, 1, &v);

    if (rc == 0)
        *out = (uint8_t)v;
    return rc;
}

int
api_reader_get_u16(struct api_reader *r, uint16_t *out)
{
    uint64_t v;
    int rc = get_be(r, 2, &v);

    if (rc == 0)
        *out = (uint16_t)v;
    return rc;
}

int
api_reader_get_u32(struct api_reader *r, uint32_t *out)
{
    uint64_t v;
    int rc = get_be(r, 4, &v);

    if (rc == 0)
        *out = (uint32_t)v;
    return rc;
}

int
api_reader_get_u64(struct api_reader *r, uint64_t *out)
{
    return get_be(r, 8, out);
}

int
api_reader_get_u32_prefixed(struct api_reader *r, struct api_reader *out)
{
    struct api_reader save = *r;
    uint32_t len;
    int rc = api_reader_get_u32(r, &len);

    if (rc == 0)
        rc = api_reader_get_bytes(r, out, len);
    if (rc < 0)
        *r = save;
    return rc;
}

int
api_reader_get_str8(struct api_reader *r, char *out, size_t cap, size_t min, size_t max)
{
    struct api_reader save = *r, v;
    uint8_t len;
    int rc = api_reader_get_u8(r, &len);

    if (rc == 0)
        rc = api_reader_get_bytes(r, &v, len);
    if (rc == 0 && (len < min || len > max || max >= cap || memchr(v.data, 0, len) != NULL))
        rc = -API_STATUS_BAD_VALUE;
    if (rc < 0) {
        *r = save;
        return rc;
    }
    memcpy(out, v.data, len);
    out[len] = '\0';
    return 0;
}
