/* cli_format.c - message structs as CLI text and JSON; see cli_format.h. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "tools/cli_args.h"
#include "tools/cli_format.h"

/* The bytes of an API_BYTES member start after its length (as in codec.c). */
struct bytes_layout {
    size_t len;
    uint8_t data[1];
};
#define BYTES_DATA_OFF offsetof(struct bytes_layout, data)

/* Room for a u64 in decimal, an enum name, a date or a help line's fixed
 * part: enum lists are the longest (brand: 10 names). */
#define SHORT_TEXT_MAX 256u

/* A malloc'd copy of the first |len| bytes at |s|, NUL-terminated. */
static int
dup_text(char **out, const char *s, size_t len)
{
    char *p = malloc(len + 1);

    if (p == NULL)
        return CLI_ERR_NO_MEMORY;
    memcpy(p, s, len);
    p[len] = '\0';
    *out = p;
    return 0;
}

static int
dup_printf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
dup_printf(char **out, const char *fmt, ...)
{
    char buf[SHORT_TEXT_MAX];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return CLI_ERR_NO_MEMORY;
    return dup_text(out, buf, (size_t)n);
}

static int
hex_text(char **out, const uint8_t *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *p;

    if (len > (SIZE_MAX - 1) / 2)
        return CLI_ERR_NO_MEMORY;
    p = malloc(2 * len + 1);
    if (p == NULL)
        return CLI_ERR_NO_MEMORY;
    for (size_t i = 0; i < len; i++) {
        p[2 * i] = digits[data[i] >> 4];
        p[2 * i + 1] = digits[data[i] & 0x0f];
    }
    p[2 * len] = '\0';
    *out = p;
    return 0;
}

/* The integer value of a U8..U64 or ENUM member. */
static uint64_t
uint_value(const uint8_t *m, enum api_type type)
{
    switch (type) {
    case API_T_U8:
    case API_T_ENUM: return *m;
    case API_T_U16: {
        uint16_t v;

        memcpy(&v, m, sizeof(v));
        return v;
    }
    case API_T_U32: {
        uint32_t v;

        memcpy(&v, m, sizeof(v));
        return v;
    }
    default: {
        uint64_t v;

        memcpy(&v, m, sizeof(v));
        return v;
    }
    }
}

int
cli_value_format(char **out, const struct api_field *f, const void *msg)
{
    const struct api_tag_info *info = api_tag_info(f->tag);
    const uint8_t *m = (const uint8_t *)msg + f->off;
    const char *name;
    size_t len;

    if (info == NULL)
        return CLI_ERR_USAGE;
    switch (info->type) {
    case API_T_BOOL:
        return dup_printf(out, "%s", *(const bool *)m ? "true" : "false");
    case API_T_U8:
    case API_T_U16:
    case API_T_U32:
    case API_T_U64:
        return dup_printf(out, "%" PRIu64, uint_value(m, info->type));
    case API_T_ENUM:
        name = api_enum_name(f->tag, *m);
        /* A decoded message holds only defined values; print a number rather
         * than nothing if that ever breaks. */
        return name != NULL ? dup_printf(out, "%s", name) : dup_printf(out, "%u", *m);
    case API_T_TEXT:
    case API_T_ID:
    case API_T_DIGITS:
    case API_T_CURRENCY:
        return dup_text(out, (const char *)m, strnlen((const char *)m, f->size));
    case API_T_DATE: {
        struct api_date d;

        memcpy(&d, m, sizeof(d));
        return dup_printf(out, "%04u-%02u-%02u", d.year, d.month, d.day);
    }
    case API_T_BYTES:
        memcpy(&len, m, sizeof(len));
        if (f->size < BYTES_DATA_OFF || len > f->size - BYTES_DATA_OFF)
            return CLI_ERR_USAGE;
        return hex_text(out, m + BYTES_DATA_OFF, len);
    case API_T_BLOB: {
        struct api_slice sl;

        memcpy(&sl, m, sizeof(sl));
        if (sl.len > 0 && sl.data == NULL)
            return CLI_ERR_USAGE;
        return hex_text(out, sl.data, sl.len);
    }
    case API_T_LIST:
        break;
    }
    return CLI_ERR_USAGE;
}

void
cli_text_free(char *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

/* ---- JSON ------------------------------------------------------------------------ */

static int
field_json(json_t **out, const struct api_field *f, const struct api_tag_info *info,
           const void *msg)
{
    const uint8_t *m = (const uint8_t *)msg + f->off;
    char *text = NULL;
    uint64_t x;
    int rc;

    switch (info->type) {
    case API_T_BOOL:
        *out = json_boolean(*(const bool *)m);
        return *out != NULL ? 0 : CLI_ERR_NO_MEMORY;
    case API_T_U8:
    case API_T_U16:
    case API_T_U32:
    case API_T_U64:
        x = uint_value(m, info->type);
        if (x <= (uint64_t)INT64_MAX) {
            *out = json_integer((json_int_t)x);
            return *out != NULL ? 0 : CLI_ERR_NO_MEMORY;
        }
        break;
    default:
        break;
    }
    rc = cli_value_format(&text, f, msg);
    if (rc < 0)
        return rc;
    *out = json_string(text);
    cli_text_free(text);
    return *out != NULL ? 0 : CLI_ERR_NO_MEMORY;
}

static int
list_json(json_t **out, const struct api_field *f, const void *msg)
{
    const uint8_t *items;
    size_t n;
    json_t *arr = json_array();
    int rc = 0;

    memcpy(&items, (const uint8_t *)msg + f->off, sizeof(items));
    memcpy(&n, (const uint8_t *)msg + f->aux, sizeof(n));
    if (arr == NULL)
        return CLI_ERR_NO_MEMORY;
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *item = NULL;

        if (items == NULL || f->item == NULL) {
            rc = CLI_ERR_USAGE;
            break;
        }
        rc = cli_msg_json(&item, f->item, items + i * f->item->size);
        if (rc == 0 && json_array_append_new(arr, item) < 0)
            rc = CLI_ERR_NO_MEMORY;
    }
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

int
cli_msg_json(json_t **out, const struct api_schema *s, const void *msg)
{
    json_t *obj = json_object();
    int rc = 0;

    if (obj == NULL)
        return CLI_ERR_NO_MEMORY;
    for (size_t i = 0; i < s->num_fields && rc == 0; i++) {
        const struct api_field *f = &s->fields[i];
        const struct api_tag_info *info = api_tag_info(f->tag);
        json_t *v = NULL;

        if (info == NULL) {
            rc = CLI_ERR_USAGE;
            break;
        }
        if (!api_field_present(f, msg))
            continue;
        rc = info->type == API_T_LIST ? list_json(&v, f, msg) : field_json(&v, f, info, msg);
        if (rc == 0 && json_object_set_new(obj, info->wire, v) < 0)
            rc = CLI_ERR_NO_MEMORY;
    }
    if (rc < 0) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

/* ---- lines ------------------------------------------------------------------------ */

static int
print_fields(FILE *out, const struct api_schema *s, const void *msg, const char *indent)
{
    for (size_t i = 0; i < s->num_fields; i++) {
        const struct api_field *f = &s->fields[i];
        const struct api_tag_info *info = api_tag_info(f->tag);
        char *text = NULL;
        int rc;

        if (info == NULL)
            return CLI_ERR_USAGE;
        if (!api_field_present(f, msg))
            continue;
        if (info->type == API_T_LIST) {
            const uint8_t *items;
            size_t n;

            memcpy(&items, (const uint8_t *)msg + f->off, sizeof(items));
            memcpy(&n, (const uint8_t *)msg + f->aux, sizeof(n));
            if (n == 0 && fprintf(out, "%s%s: none\n", indent, info->wire) < 0)
                return CLI_ERR_USAGE;
            for (size_t k = 0; k < n; k++) {
                /* Lists do not nest (API_LIST_DEPTH_MAX), so one level of
                 * indent is all there is. */
                if (items == NULL || f->item == NULL ||
                    fprintf(out, "%s%s[%zu]:\n", indent, info->wire, k + 1) < 0)
                    return CLI_ERR_USAGE;
                rc = print_fields(out, f->item, items + k * f->item->size, "  ");
                if (rc < 0)
                    return rc;
            }
            continue;
        }
        rc = cli_value_format(&text, f, msg);
        if (rc < 0)
            return rc;
        rc = fprintf(out, "%s%s: %s\n", indent, info->wire, text) < 0 ? CLI_ERR_USAGE : 0;
        cli_text_free(text);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int
cli_msg_print(FILE *f, const struct api_schema *s, const void *msg)
{
    return print_fields(f, s, msg, "");
}

/* ---- help -------------------------------------------------------------------------- */

int
cli_option_help(char **out, const struct api_field *f)
{
    const struct api_tag_info *info = api_tag_info(f->tag);
    unsigned long long lo, hi;
    char names[SHORT_TEXT_MAX] = "";
    size_t used = 0;

    if (info == NULL)
        return CLI_ERR_USAGE;
    lo = (unsigned long long)info->min;
    hi = (unsigned long long)info->max;
    switch (info->type) {
    case API_T_BOOL:
        return dup_printf(out, "bool: true|false|yes|no|1|0");
    case API_T_U8:
    case API_T_U16:
    case API_T_U32:
    case API_T_U64:
        return dup_printf(out, "integer %llu..%llu%s", lo, hi,
                          info->max == API_AMOUNT_MAX ? " (integer minor units)" : "");
    case API_T_ENUM:
        for (unsigned v = 1; v <= info->max; v++) {
            int n = snprintf(names + used, sizeof(names) - used, "%s%s", v > 1 ? " | " : "",
                             info->enum_names[v]);

            if (n < 0 || (size_t)n >= sizeof(names) - used)
                return CLI_ERR_NO_MEMORY;
            used += (size_t)n;
        }
        return dup_printf(out, "enum: %s", names);
    case API_T_TEXT:
        return dup_printf(out, "text: %llu..%llu bytes of UTF-8", lo, hi);
    case API_T_ID:
        return dup_printf(out, "id: %llu..%llu printable ASCII characters, no spaces", lo, hi);
    case API_T_DIGITS:
        if (lo == hi)
            return dup_printf(out, "digits: exactly %llu", lo);
        return dup_printf(out, "digits: %llu..%llu", lo, hi);
    case API_T_CURRENCY:
        return dup_printf(out, "currency: 3 letters (ISO 4217, e.g. EUR)");
    case API_T_DATE:
        return dup_printf(out, "date: YYYY-MM-DD or DD.MM.YYYY");
    case API_T_BYTES:
        if (lo == hi)
            return dup_printf(out, "bytes: exactly %llu, as %llu hex digits", lo, 2 * lo);
        return dup_printf(out, "bytes: %llu..%llu, as hex", lo, hi);
    case API_T_BLOB:
        return dup_printf(out, "FILE: %llu..%llu bytes read from FILE (- for stdin)", lo, hi);
    case API_T_LIST:
        return dup_printf(out, "list of up to %llu items", hi);
    }
    return CLI_ERR_USAGE;
}
