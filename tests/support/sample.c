/* sample.c - schema-driven sample messages; see sample.h. */
#include <stdlib.h>
#include <string.h>

#include "tests/support/sample.h"

static uint8_t blob_bytes[API_PACKET_MAX];

/* A length in [min, max] chosen by mode and seed, kept short by default so
 * frames of many fields stay readable in failures. */
static size_t
pick_len(uint64_t min, uint64_t max, unsigned seed, enum tv_sample_mode mode)
{
    uint64_t span, len;

    if (mode == TV_SAMPLE_MAX)
        return (size_t)max;
    if (mode == TV_SAMPLE_MIN)
        return (size_t)min;
    span = max - min + 1;
    len = min + (span > 12 ? seed % 12 : seed % span);
    return (size_t)len;
}

static uint64_t
pick_num(uint64_t min, uint64_t max, unsigned seed, enum tv_sample_mode mode)
{
    if (mode == TV_SAMPLE_MAX)
        return max;
    if (mode == TV_SAMPLE_MIN)
        return min;
    if (max - min < 1000)
        return min + seed % (max - min + 1);
    return min + 1000 + seed;
}

/* Text with a two-byte UTF-8 character when there is room, so the decoder's
 * UTF-8 path is always exercised. Fills exactly |len| bytes. */
static void
fill_text(char *out, size_t len, unsigned seed)
{
    size_t i = 0;

    if (len >= 2) {
        out[i++] = (char)0xC3; /* U+00E9 */
        out[i++] = (char)0xA9;
    }
    for (; i < len; i++)
        out[i] = (char)('a' + (seed + i) % 26);
    out[len] = '\0';
}

static int
fill_field(const struct api_field *f, const struct api_tag_info *info, uint8_t *base,
           unsigned seed, enum tv_sample_mode mode)
{
    uint8_t *m = base + f->off;
    size_t len;
    uint64_t x;

    switch (info->type) {
    case API_T_BOOL:
        *(bool *)m = (seed & 1) != 0;
        return 0;
    case API_T_U8:
    case API_T_ENUM:
        *m = (uint8_t)pick_num(info->min, info->max, seed, mode);
        return 0;
    case API_T_U16:
        *(uint16_t *)m = (uint16_t)pick_num(info->min, info->max, seed, mode);
        return 0;
    case API_T_U32:
        *(uint32_t *)m = (uint32_t)pick_num(info->min, info->max, seed, mode);
        return 0;
    case API_T_U64:
        x = pick_num(info->min, info->max, seed, mode);
        memcpy(m, &x, sizeof(x));
        return 0;
    case API_T_TEXT:
        fill_text((char *)m, pick_len(info->min, info->max, seed, mode), seed);
        return 0;
    case API_T_ID:
        len = pick_len(info->min, info->max, seed, mode);
        for (size_t i = 0; i < len; i++)
            m[i] = (uint8_t)("ABCdef-123_x.Z:9"[(seed + i) % 16]);
        m[len] = '\0';
        return 0;
    case API_T_DIGITS:
        len = pick_len(info->min, info->max, seed, mode);
        for (size_t i = 0; i < len; i++)
            m[i] = (uint8_t)('0' + (seed + i * 7) % 10);
        m[len] = '\0';
        return 0;
    case API_T_CURRENCY:
        memcpy(m, (seed & 1) ? "EUR" : "USD", 4);
        return 0;
    case API_T_DATE: {
        struct api_date *d = (struct api_date *)m;

        d->year = (uint16_t)(mode == TV_SAMPLE_MAX ? 9999 : mode == TV_SAMPLE_MIN ? 2000 : 2028);
        d->month = (uint8_t)(1 + seed % 12);
        d->day = (uint8_t)(1 + seed % 28);
        return 0;
    }
    case API_T_BYTES:
        len = pick_len(info->min, info->max, seed, mode);
        memcpy(m, &len, sizeof(len));
        for (size_t i = 0; i < len; i++)
            m[sizeof(size_t) + i] = (uint8_t)(seed * 31 + i);
        return 0;
    case API_T_BLOB: {
        struct api_slice *sl = (struct api_slice *)m;

        for (size_t i = 0; i < sizeof(blob_bytes); i++)
            blob_bytes[i] = (uint8_t)('{' + i % 3);
        sl->data = blob_bytes;
        sl->len = pick_len(info->min, info->max, seed, mode);
        return 0;
    }
    case API_T_LIST: {
        size_t n = mode == TV_SAMPLE_MAX ? 3 : 1 + seed % 3;
        uint8_t *items = calloc(n, f->item->size);

        if (items == NULL)
            return -1;
        memcpy(m, &items, sizeof(items));
        memcpy(base + f->aux, &n, sizeof(n));
        for (size_t i = 0; i < n; i++)
            if (tv_sample_fill(f->item, items + i * f->item->size, seed + (unsigned)i, mode) < 0)
                return -1;
        return 0;
    }
    }
    return -1;
}

int
tv_sample_fill(const struct api_schema *s, void *msg, unsigned seed, enum tv_sample_mode mode)
{
    uint8_t *base = msg;

    memset(msg, 0, s->size);
    for (size_t i = 0; i < s->num_fields; i++) {
        const struct api_field *f = &s->fields[i];
        const struct api_tag_info *info = api_tag_info(f->tag);

        if ((f->flags & API_FIELD_OPTIONAL) && mode == TV_SAMPLE_REQUIRED)
            continue;
        if (fill_field(f, info, base, seed + (unsigned)i, mode) < 0)
            return -1;
        /* A list's aux is its count, which the fill set (non-zero). */
        if ((f->flags & API_FIELD_OPTIONAL) && info->type != API_T_LIST)
            *(bool *)(base + f->aux) = true;
    }
    return 0;
}
