/*
 * codec.c - the one decoder and the one encoder of message fields; see msg.h.
 *
 * The decoder reads through api_reader only (docs/PROTOCOL.md, "Decoding").
 * A first pass checks the framing of the whole body, field by field:
 *   1. fewer than 6 bytes left           TRAILING_BYTES
 *   2. value runs past the end           TRUNCATED
 *   3. more than API_FIELDS_MAX fields   TOO_MANY_FIELDS
 * then a second pass checks each field in order:
 *   4. tag not in this message           PROHIBITED_DATA for CVC/PIN/track/
 *                                        cryptogram tags, else UNKNOWN_FIELD
 *   5. tag seen before                   DUPLICATE_FIELD
 *   6. length wrong for type or limit    BAD_LENGTH
 *   7. value invalid for its type        BAD_VALUE
 * and, after the last field, a required field absent: MISSING_FIELD (the
 * first in schema order). A list's value is checked the same way: items'
 * framing and count first (TRAILING_BYTES, TRUNCATED, TOO_MANY_FIELDS; fewer
 * items than the tag's min, as an optional list sent empty, BAD_LENGTH), then
 * each item's fields.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api/msg.h"

/* A schema's "seen" set is a 64-bit mask; schemas are far smaller (tested). */
#define SCHEMA_FIELDS_MAX 64u

/* The bytes of an API_BYTES member start after its length. */
struct bytes_layout {
    size_t len;
    uint8_t data[1];
};
#define BYTES_DATA_OFF offsetof(struct bytes_layout, data)

static int
fail(struct api_field_error *err, unsigned status, uint16_t tag, const char *message)
{
    if (err != NULL) {
        err->status = status;
        err->tag = tag;
        err->message = message;
    }
    return -(int)status;
}

size_t
api_type_width(enum api_type type)
{
    switch (type) {
    case API_T_BOOL:
    case API_T_U8:
    case API_T_ENUM: return 1;
    case API_T_U16: return 2;
    case API_T_U32:
    case API_T_DATE: return 4;
    case API_T_U64: return 8;
    case API_T_CURRENCY: return API_CURRENCY_LEN;
    default: return 0;
    }
}

static uint64_t
be_value(const uint8_t *v, size_t len)
{
    uint64_t x = 0;

    for (size_t i = 0; i < len; i++)
        x = (x << 8) | v[i];
    return x;
}

/* RFC 3629 UTF-8, shortest form, no surrogates; and, because strings reach
 * logs and terminals, no C0 or C1 control character and no DEL. */
static int
text_ok(const uint8_t *v, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint32_t cp;
        size_t n;

        if (v[i] < 0x80) {
            cp = v[i];
            n = 1;
        } else if ((v[i] & 0xE0) == 0xC0) {
            cp = v[i] & 0x1Fu;
            n = 2;
        } else if ((v[i] & 0xF0) == 0xE0) {
            cp = v[i] & 0x0Fu;
            n = 3;
        } else if ((v[i] & 0xF8) == 0xF0) {
            cp = v[i] & 0x07u;
            n = 4;
        } else {
            return 0;
        }
        if (n > len - i)
            return 0;
        for (size_t k = 1; k < n; k++) {
            if ((v[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (v[i + k] & 0x3Fu);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
            return 0; /* overlong */
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
            return 0;
        i += n;
    }
    return 1;
}

static int
date_ok(const uint8_t *v)
{
    static const uint8_t days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned year = (unsigned)v[0] << 8 | v[1], month = v[2], day = v[3];
    unsigned max;
    int leap;

    if (year < 2000 || year > 9999 || month < 1 || month > 12 || day < 1)
        return 0;
    leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    max = days[month - 1] + (month == 2 && leap ? 1u : 0u);
    return day <= max;
}

int
api_field_check(const struct api_tag_info *info, const uint8_t *v, size_t len)
{
    size_t width = api_type_width(info->type);
    uint64_t x;

    if (width != 0) {
        if (len != width)
            return -API_STATUS_BAD_LENGTH;
    } else if (info->type != API_T_LIST && (len < info->min || len > info->max)) {
        return -API_STATUS_BAD_LENGTH;
    }
    switch (info->type) {
    case API_T_BOOL:
        return v[0] <= 1 ? 0 : -API_STATUS_BAD_VALUE;
    case API_T_U8:
    case API_T_U16:
    case API_T_U32:
    case API_T_U64:
    case API_T_ENUM:
        x = be_value(v, len);
        return x >= info->min && x <= info->max ? 0 : -API_STATUS_BAD_VALUE;
    case API_T_TEXT:
        return text_ok(v, len) ? 0 : -API_STATUS_BAD_VALUE;
    case API_T_ID:
        for (size_t i = 0; i < len; i++)
            if (v[i] < 0x21 || v[i] > 0x7E)
                return -API_STATUS_BAD_VALUE;
        return 0;
    case API_T_DIGITS:
        for (size_t i = 0; i < len; i++)
            if (v[i] < '0' || v[i] > '9')
                return -API_STATUS_BAD_VALUE;
        return 0;
    case API_T_CURRENCY:
        for (size_t i = 0; i < len; i++)
            if (v[i] < 'A' || v[i] > 'Z')
                return -API_STATUS_BAD_VALUE;
        return 0;
    case API_T_DATE:
        return date_ok(v) ? 0 : -API_STATUS_BAD_VALUE;
    case API_T_BYTES:
    case API_T_BLOB:
    case API_T_LIST:
        return 0;
    }
    return -API_STATUS_BAD_VALUE;
}

/* Stores a checked value into the struct member. The member's size was
 * checked against the type by the schema tests; the length is checked here
 * again so that a schema error can never become an overflow. */
static int
store(const struct api_field *f, const struct api_tag_info *info, const uint8_t *v, size_t len,
      uint8_t *base)
{
    uint8_t *m = base + f->off;
    uint64_t x;
    size_t *lenp;

    switch (info->type) {
    case API_T_BOOL:
        *(bool *)m = v[0] != 0;
        return 0;
    case API_T_U8:
    case API_T_ENUM:
        *m = v[0];
        return 0;
    case API_T_U16:
        *(uint16_t *)m = (uint16_t)be_value(v, 2);
        return 0;
    case API_T_U32:
        *(uint32_t *)m = (uint32_t)be_value(v, 4);
        return 0;
    case API_T_U64:
        x = be_value(v, 8);
        memcpy(m, &x, sizeof(x));
        return 0;
    case API_T_TEXT:
    case API_T_ID:
    case API_T_DIGITS:
    case API_T_CURRENCY:
        if (len >= f->size)
            return -API_STATUS_BAD_LENGTH;
        memcpy(m, v, len);
        m[len] = '\0';
        return 0;
    case API_T_DATE: {
        struct api_date *d = (struct api_date *)m;

        d->year = (uint16_t)be_value(v, 2);
        d->month = v[2];
        d->day = v[3];
        return 0;
    }
    case API_T_BYTES:
        if (len > f->size - BYTES_DATA_OFF)
            return -API_STATUS_BAD_LENGTH;
        lenp = (size_t *)m;
        *lenp = len;
        if (len > 0)
            memcpy(m + BYTES_DATA_OFF, v, len);
        return 0;
    case API_T_BLOB: {
        struct api_slice *s = (struct api_slice *)m;

        s->data = v;
        s->len = len;
        return 0;
    }
    case API_T_LIST:
        break;
    }
    return -API_STATUS_BAD_VALUE;
}

static int decode_fields(const struct api_schema *s, struct api_reader *r, uint8_t *base,
                         struct api_field_error *err, unsigned depth);

/* A list is a run of u32-prefixed items. The first pass counts them from the
 * bytes present (never from a declared count) and checks their framing; the
 * array is allocated for that count; the second pass decodes each item. */
static int
decode_list(const struct api_field *f, const struct api_tag_info *info, struct api_reader *value,
            uint8_t *base, struct api_field_error *err, unsigned depth)
{
    struct api_reader scan = *value, item;
    size_t n = 0, isize;
    uint8_t *items;

    if (depth >= API_LIST_DEPTH_MAX)
        return fail(err, API_STATUS_BAD_VALUE, f->tag, "lists do not nest");
    while (api_reader_len(&scan) > 0) {
        if (api_reader_len(&scan) < 4)
            return fail(err, API_STATUS_TRAILING_BYTES, f->tag, "bytes after the last list item");
        if (api_reader_get_u32_prefixed(&scan, &item) < 0)
            return fail(err, API_STATUS_TRUNCATED, f->tag, "list item runs past the field");
        if (++n > info->max)
            return fail(err, API_STATUS_TOO_MANY_FIELDS, f->tag, "too many list items");
    }
    /* An optional list has min 1: absent, never empty, so one message has
     * one encoding. */
    if (n < info->min)
        return fail(err, API_STATUS_BAD_LENGTH, f->tag, "fewer list items than the field's minimum");
    if (n == 0)
        return 0;
    isize = f->item->size;
    items = calloc(n, isize);
    if (items == NULL) {
        if (err != NULL) {
            err->status = API_STATUS_INTERNAL;
            err->tag = f->tag;
            err->message = "out of memory";
        }
        return API_ERR_NO_MEMORY;
    }
    /* Owned by the struct from here, so cleanup frees it on any failure. */
    memcpy(base + f->off, &items, sizeof(items));
    memcpy(base + f->aux, &n, sizeof(n));
    for (size_t i = 0; i < n; i++) {
        int rc;

        if (api_reader_get_u32_prefixed(value, &item) < 0)
            return fail(err, API_STATUS_TRUNCATED, f->tag, "list item runs past the field");
        rc = decode_fields(f->item, &item, items + i * isize, err, depth + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* First pass: the framing of every field, and the count, before any field is
 * looked at, so a frame of many fields costs no lookups and reports the bound
 * it broke rather than whatever its first field got wrong. */
static int
scan_fields(struct api_reader r, struct api_field_error *err)
{
    size_t count = 0;

    while (api_reader_len(&r) > 0) {
        struct api_reader value;
        uint16_t tag = 0;

        if (api_reader_len(&r) < API_FIELD_HEADER_LEN)
            return fail(err, API_STATUS_TRAILING_BYTES, 0, "bytes after the last field");
        if (api_reader_get_u16(&r, &tag) < 0 || api_reader_get_u32_prefixed(&r, &value) < 0)
            return fail(err, API_STATUS_TRUNCATED, tag, "field runs past the end of the frame");
        if (++count > API_FIELDS_MAX)
            return fail(err, API_STATUS_TOO_MANY_FIELDS, tag, "too many fields");
    }
    return 0;
}

static int
decode_fields(const struct api_schema *s, struct api_reader *r, uint8_t *base,
              struct api_field_error *err, unsigned depth)
{
    uint64_t seen = 0;
    int rc;

    if (s->num_fields > SCHEMA_FIELDS_MAX)
        return fail(err, API_STATUS_INTERNAL, 0, "schema too large");
    rc = scan_fields(*r, err);
    if (rc < 0)
        return rc;
    while (api_reader_len(r) > 0) {
        struct api_reader value;
        const struct api_tag_info *info;
        const struct api_field *f;
        uint16_t tag = 0;
        size_t idx;

        /* The scan proved both reads succeed. */
        if (api_reader_get_u16(r, &tag) < 0 || api_reader_get_u32_prefixed(r, &value) < 0)
            return fail(err, API_STATUS_TRUNCATED, tag, "field runs past the end of the frame");
        f = api_schema_field(s, tag);
        info = api_tag_info(tag);
        if (f == NULL || info == NULL) {
            if (info != NULL && (info->flags & API_TAG_NEVER_STORED))
                return fail(err, API_STATUS_PROHIBITED_DATA, tag,
                            "CVC, PIN block, track data or cryptogram not accepted here");
            return fail(err, API_STATUS_UNKNOWN_FIELD, tag, "field not defined for this message");
        }
        idx = (size_t)(f - s->fields);
        if (seen & (UINT64_C(1) << idx))
            return fail(err, API_STATUS_DUPLICATE_FIELD, tag, "field appears twice");
        seen |= UINT64_C(1) << idx;
        if (info->type == API_T_LIST) {
            rc = decode_list(f, info, &value, base, err, depth);
            if (rc < 0)
                return rc;
            continue;
        }
        rc = api_field_check(info, value.data, value.len);
        if (rc == 0)
            rc = store(f, info, value.data, value.len, base);
        if (rc < 0)
            return fail(err, (unsigned)-rc, tag,
                        rc == -API_STATUS_BAD_LENGTH ? "length wrong for the field's type or limit"
                                                     : "value invalid for the field's type");
        if (f->flags & API_FIELD_OPTIONAL)
            *(bool *)(base + f->aux) = true;
    }
    for (size_t i = 0; i < s->num_fields; i++)
        if ((s->fields[i].flags & API_FIELD_REQUIRED) && !(seen & (UINT64_C(1) << i)))
            return fail(err, API_STATUS_MISSING_FIELD, s->fields[i].tag, "required field absent");
    return 0;
}

int
api_msg_decode(const struct api_schema *s, struct api_reader *body, void *out,
               struct api_field_error *err)
{
    int rc;

    memset(out, 0, s->size);
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    rc = decode_fields(s, body, out, err, 0);
    if (rc < 0)
        api_msg_cleanup(s, out);
    return rc;
}

/* ---- encoding ----------------------------------------------------------------- */

bool
api_field_present(const struct api_field *f, const void *msg)
{
    const uint8_t *base = msg;
    size_t n;

    if (!(f->flags & API_FIELD_OPTIONAL))
        return true;
    if (f->item != NULL) {
        memcpy(&n, base + f->aux, sizeof(n));
        return n > 0;
    }
    return *(const bool *)(base + f->aux);
}

static int encode_fields(struct api_writer *w, const struct api_schema *s, const uint8_t *base,
                         struct api_field_error *err, unsigned depth);

/* Writes the value of one non-list field. */
static int
put_value(struct api_writer *w, const struct api_field *f, const struct api_tag_info *info,
          const uint8_t *m)
{
    size_t len;
    uint64_t x;

    switch (info->type) {
    case API_T_BOOL:
        return api_writer_put_u8(w, *(const bool *)m ? 1 : 0);
    case API_T_U8:
    case API_T_ENUM:
        return api_writer_put_u8(w, *m);
    case API_T_U16:
        return api_writer_put_u16(w, *(const uint16_t *)m);
    case API_T_U32:
        return api_writer_put_u32(w, *(const uint32_t *)m);
    case API_T_U64:
        memcpy(&x, m, sizeof(x));
        return api_writer_put_u64(w, x);
    case API_T_TEXT:
    case API_T_ID:
    case API_T_DIGITS:
    case API_T_CURRENCY:
        len = strnlen((const char *)m, f->size);
        if (len == f->size)
            return -API_STATUS_BAD_LENGTH; /* not terminated */
        return api_writer_put_bytes(w, m, len);
    case API_T_DATE: {
        const struct api_date *d = (const struct api_date *)m;
        int rc = api_writer_put_u16(w, d->year);

        if (rc == 0)
            rc = api_writer_put_u8(w, d->month);
        if (rc == 0)
            rc = api_writer_put_u8(w, d->day);
        return rc;
    }
    case API_T_BYTES:
        memcpy(&len, m, sizeof(len));
        if (len > f->size - BYTES_DATA_OFF)
            return -API_STATUS_BAD_LENGTH;
        return api_writer_put_bytes(w, m + BYTES_DATA_OFF, len);
    case API_T_BLOB: {
        const struct api_slice *sl = (const struct api_slice *)m;

        if (sl->len > 0 && sl->data == NULL)
            return -API_STATUS_BAD_VALUE;
        return api_writer_put_bytes(w, sl->data, sl->len);
    }
    case API_T_LIST:
        break;
    }
    return -API_STATUS_BAD_VALUE;
}

static int
encode_list(struct api_writer *w, const struct api_field *f, const struct api_tag_info *info,
            const uint8_t *base, struct api_field_error *err, unsigned depth)
{
    const uint8_t *items;
    size_t n;

    memcpy(&items, base + f->off, sizeof(items));
    memcpy(&n, base + f->aux, sizeof(n));
    if (depth >= API_LIST_DEPTH_MAX)
        return fail(err, API_STATUS_BAD_VALUE, f->tag, "lists do not nest");
    if (n > info->max)
        return fail(err, API_STATUS_TOO_MANY_FIELDS, f->tag, "too many list items");
    if (n < info->min)
        return fail(err, API_STATUS_BAD_LENGTH, f->tag, "fewer list items than the field's minimum");
    if (n > 0 && items == NULL)
        return fail(err, API_STATUS_BAD_VALUE, f->tag, "list items missing");
    for (size_t i = 0; i < n; i++) {
        size_t mark;
        int rc = api_writer_begin_u32(w, &mark);

        if (rc == 0)
            rc = encode_fields(w, f->item, items + i * f->item->size, err, depth + 1);
        if (rc == 0)
            rc = api_writer_end_u32(w, mark);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int
encode_fields(struct api_writer *w, const struct api_schema *s, const uint8_t *base,
              struct api_field_error *err, unsigned depth)
{
    size_t count = 0;

    for (size_t i = 0; i < s->num_fields; i++) {
        const struct api_field *f = &s->fields[i];
        const struct api_tag_info *info = api_tag_info(f->tag);
        size_t mark, start;
        int rc;

        if (info == NULL)
            return fail(err, API_STATUS_INTERNAL, f->tag, "schema names an undefined tag");
        if (!api_field_present(f, base))
            continue;
        if (++count > API_FIELDS_MAX)
            return fail(err, API_STATUS_TOO_MANY_FIELDS, f->tag, "too many fields");
        rc = api_writer_put_u16(w, f->tag);
        if (rc == 0)
            rc = api_writer_begin_u32(w, &mark);
        if (rc != 0) /* 0 or a negative status: mark is set only on 0 */
            return rc;
        start = api_writer_len(w);
        if (info->type == API_T_LIST) {
            rc = encode_list(w, f, info, base, err, depth);
        } else {
            rc = put_value(w, f, info, base + f->off);
            /* The decoder's own rules, applied to the bytes just written. */
            if (rc == 0)
                rc = api_field_check(info, api_writer_data(w) + start, api_writer_len(w) - start);
            if (rc == -API_STATUS_BAD_LENGTH || rc == -API_STATUS_BAD_VALUE)
                return fail(err, (unsigned)-rc, f->tag,
                            rc == -API_STATUS_BAD_LENGTH ? "length wrong for the field's type or limit"
                                                         : "value invalid for the field's type");
        }
        if (rc == 0)
            rc = api_writer_end_u32(w, mark);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int
api_msg_encode(struct api_writer *w, const struct api_schema *s, const void *msg,
               struct api_field_error *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    return encode_fields(w, s, msg, err, 0);
}

void
api_msg_cleanup(const struct api_schema *s, void *msg)
{
    uint8_t *base = msg;

    if (s == NULL || msg == NULL)
        return;
    for (size_t i = 0; i < s->num_fields; i++) {
        const struct api_field *f = &s->fields[i];
        uint8_t *items;
        size_t n;

        if (f->item == NULL)
            continue;
        memcpy(&items, base + f->off, sizeof(items));
        memcpy(&n, base + f->aux, sizeof(n));
        if (items == NULL)
            continue;
        for (size_t k = 0; k < n; k++)
            api_msg_cleanup(f->item, items + k * f->item->size);
        free(items);
    }
    OPENSSL_cleanse(msg, s->size);
}
