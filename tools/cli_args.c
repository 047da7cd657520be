/* cli_args.c - command-line values into request structs; see cli_args.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api/hex.h"
#include "api/writer.h"
#include "tools/cli_args.h"

/* The bytes of an API_BYTES member start after its length (as in codec.c). */
struct bytes_layout {
    size_t len;
    uint8_t data[1];
};
#define BYTES_DATA_OFF offsetof(struct bytes_layout, data)

/* The "given" set is a 64-bit mask; every schema is smaller than
 * API_FIELDS_MAX (32), which is checked at init. */
#define GIVEN_BITS 64u

/* A DATE on the wire: u16 year, u8 month, u8 day. */
#define DATE_WIRE_LEN 4u
/* "YYYY-MM-DD" and "DD.MM.YYYY" are both ten characters. */
#define DATE_TEXT_LEN 10u

static const struct cli_op ops[] = {
#define OP_ROW(name, num, area, verb, role, lower, summary) \
    {num, area, verb, API_ROLE_##role, summary},
    API_OP_LIST(OP_ROW)
#undef OP_ROW
};

const char *
cli_strerror(int r)
{
    switch (r) {
    case 0: return "OK";
    case CLI_ERR_USAGE: return "CLI_ERR_USAGE";
    case CLI_ERR_NO_MEMORY: return "CLI_ERR_NO_MEMORY";
    default: return "CLI_ERR_UNKNOWN";
    }
}

const struct cli_op *
cli_op_all(size_t *out_num)
{
    *out_num = sizeof(ops) / sizeof(ops[0]);
    return ops;
}

const struct cli_op *
cli_op_find(const char *area, const char *verb)
{
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].area, area) == 0 && strcmp(ops[i].verb, verb) == 0)
            return &ops[i];
    return NULL;
}

bool
cli_area_exists(const char *area)
{
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].area, area) == 0)
            return true;
    return false;
}

int
cli_option_name(char out[CLI_OPTION_NAME_MAX], uint16_t tag)
{
    const struct api_tag_info *info = api_tag_info(tag);
    size_t n;

    if (info == NULL)
        return CLI_ERR_USAGE;
    n = strlen(info->name);
    if (n >= CLI_OPTION_NAME_MAX)
        return CLI_ERR_USAGE;
    for (size_t i = 0; i < n; i++) {
        char c = info->name[i];

        out[i] = c == '_' ? '-' : (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[n] = '\0';
    return 0;
}

const struct api_field *
cli_option_find(const struct api_schema *s, const char *name)
{
    char opt[CLI_OPTION_NAME_MAX];

    for (size_t i = 0; i < s->num_fields; i++) {
        const struct api_field *f = &s->fields[i];
        const struct api_tag_info *info = api_tag_info(f->tag);

        if (info == NULL || info->type == API_T_LIST || cli_option_name(opt, f->tag) < 0)
            continue;
        if (strcmp(opt, name) == 0)
            return f;
    }
    return NULL;
}

/* ---- values ------------------------------------------------------------------- */

/* Formats "--name: <rule>" into |why|; returns CLI_ERR_USAGE. */
static int
refuse(char why[CLI_WHY_MAX], const struct api_field *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
refuse(char why[CLI_WHY_MAX], const struct api_field *f, const char *fmt, ...)
{
    char opt[CLI_OPTION_NAME_MAX] = "?";
    va_list ap;
    int n;

    if (cli_option_name(opt, f->tag) < 0)
        snprintf(opt, sizeof(opt), "0x%04x", f->tag);
    n = snprintf(why, CLI_WHY_MAX, "--%s: ", opt);
    if (n < 0 || (size_t)n >= CLI_WHY_MAX)
        return CLI_ERR_USAGE;
    va_start(ap, fmt);
    (void)vsnprintf(why + n, CLI_WHY_MAX - (size_t)n, fmt, ap);
    va_end(ap);
    return CLI_ERR_USAGE;
}

/* Decimal digits only: no sign, no space, no base prefix, no overflow. */
static int
parse_u64(const char *s, uint64_t *out)
{
    uint64_t x = 0;

    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        unsigned d;

        if (*s < '0' || *s > '9')
            return -1;
        d = (unsigned)(*s - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

static int
parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "1"};
    static const char *const no[] = {"false", "no", "0"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* |n| decimal digits at |s| as a number; -1 unless all are digits. */
static int
digits_value(const char *s, size_t n, unsigned *out)
{
    unsigned x = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (unsigned)(s[i] - '0');
    }
    *out = x;
    return 0;
}

/* YYYY-MM-DD, or DD.MM.YYYY as seed 003 writes RecurringMaxDate, into the
 * four wire bytes; whether the date exists is api_field_check's to say. */
static int
parse_date(const char *s, uint8_t out[DATE_WIRE_LEN])
{
    unsigned y, m, d;

    if (strlen(s) != DATE_TEXT_LEN)
        return -1;
    if (s[4] == '-' && s[7] == '-') {
        if (digits_value(s, 4, &y) < 0 || digits_value(s + 5, 2, &m) < 0 ||
            digits_value(s + 8, 2, &d) < 0)
            return -1;
    } else if (s[2] == '.' && s[5] == '.') {
        if (digits_value(s, 2, &d) < 0 || digits_value(s + 3, 2, &m) < 0 ||
            digits_value(s + 6, 4, &y) < 0)
            return -1;
    } else {
        return -1;
    }
    out[0] = (uint8_t)(y >> 8);
    out[1] = (uint8_t)y;
    out[2] = (uint8_t)m;
    out[3] = (uint8_t)d;
    return 0;
}

/* Stores an integer of the tag's width; the range was checked. */
static void
store_uint(uint8_t *m, enum api_type type, uint64_t x)
{
    switch (type) {
    case API_T_U8:
    case API_T_ENUM: *m = (uint8_t)x; break;
    case API_T_U16: {
        uint16_t v = (uint16_t)x;

        memcpy(m, &v, sizeof(v));
        break;
    }
    case API_T_U32: {
        uint32_t v = (uint32_t)x;

        memcpy(m, &v, sizeof(v));
        break;
    }
    default: memcpy(m, &x, sizeof(x)); break;
    }
}

/* Size of the C member each integer type is stored in. */
static size_t
uint_size(enum api_type type)
{
    switch (type) {
    case API_T_U8:
    case API_T_ENUM: return 1;
    case API_T_U16: return 2;
    case API_T_U32: return 4;
    default: return 8;
    }
}

static int
parse_enum(const struct api_field *f, const struct api_tag_info *info, const char *text,
           uint8_t *m, char why[CLI_WHY_MAX])
{
    char names[CLI_WHY_MAX / 2] = "";
    size_t used = 0;
    int v = api_enum_from_name(f->tag, text);

    if (v > 0) {
        *m = (uint8_t)v;
        return 0;
    }
    for (unsigned i = 1; i <= info->max; i++) {
        int n = snprintf(names + used, sizeof(names) - used, "%s%s", i > 1 ? ", " : "",
                         info->enum_names[i]);

        if (n < 0 || (size_t)n >= sizeof(names) - used)
            break;
        used += (size_t)n;
    }
    return refuse(why, f, "not one of %s", names);
}

static int
parse_string(const struct api_field *f, const struct api_tag_info *info, const char *text,
             uint8_t *m, char why[CLI_WHY_MAX])
{
    size_t len = strlen(text);
    char up[API_CURRENCY_LEN + 1];

    if (info->type == API_T_CURRENCY && len == API_CURRENCY_LEN) {
        /* Accept "eur": the wire form is upper case. */
        for (size_t i = 0; i <= len; i++)
            up[i] = text[i] >= 'a' && text[i] <= 'z' ? (char)(text[i] - 'a' + 'A') : text[i];
        text = up;
    }
    if (len < info->min || len > info->max || len >= f->size) {
        if (info->min == info->max)
            return refuse(why, f, "must be %llu characters long", (unsigned long long)info->min);
        return refuse(why, f, "must be %llu..%llu bytes long", (unsigned long long)info->min,
                      (unsigned long long)info->max);
    }
    if (api_field_check(info, (const uint8_t *)text, len) < 0) {
        switch (info->type) {
        case API_T_DIGITS: return refuse(why, f, "only the digits 0-9 are allowed");
        case API_T_CURRENCY: return refuse(why, f, "must be 3 letters (ISO 4217)");
        case API_T_ID: return refuse(why, f, "only printable ASCII without spaces is allowed");
        default: return refuse(why, f, "must be UTF-8 without control characters");
        }
    }
    memcpy(m, text, len);
    m[len] = '\0';
    return 0;
}

static int
parse_bytes(const struct api_field *f, const struct api_tag_info *info, const char *text,
            uint8_t *m, char why[CLI_WHY_MAX])
{
    size_t hex_len = strlen(text), len = hex_len / 2;
    size_t cap = f->size > BYTES_DATA_OFF ? f->size - BYTES_DATA_OFF : 0;

    if (hex_len % 2 != 0)
        return refuse(why, f, "hex needs an even number of digits");
    if (len < info->min || len > info->max || len > cap) {
        if (info->min == info->max)
            return refuse(why, f, "must be %llu bytes (%llu hex digits)",
                          (unsigned long long)info->min, (unsigned long long)info->min * 2);
        return refuse(why, f, "must be %llu..%llu bytes as hex", (unsigned long long)info->min,
                      (unsigned long long)info->max);
    }
    if (hex_decode(m + BYTES_DATA_OFF, len, text) != 0) {
        OPENSSL_cleanse(m + BYTES_DATA_OFF, len);
        return refuse(why, f, "not hex");
    }
    memcpy(m, &len, sizeof(len));
    return 0;
}

/* Parses |text| into the member |m| of field |f|. */
static int
parse_value(const struct api_field *f, const struct api_tag_info *info, const char *text,
            uint8_t *m, char why[CLI_WHY_MAX])
{
    uint8_t date[DATE_WIRE_LEN];
    uint64_t x = 0;
    bool b = false;

    switch (info->type) {
    case API_T_BOOL:
        if (parse_bool(text, &b) < 0)
            return refuse(why, f, "must be true, false, yes, no, 1 or 0");
        *(bool *)m = b;
        return 0;
    case API_T_U8:
    case API_T_U16:
    case API_T_U32:
    case API_T_U64:
        if (parse_u64(text, &x) < 0 || x < info->min || x > info->max)
            return refuse(why, f, "must be a decimal integer in %llu..%llu%s",
                          (unsigned long long)info->min, (unsigned long long)info->max,
                          info->max == API_AMOUNT_MAX ? " (integer minor units)" : "");
        if (uint_size(info->type) > f->size)
            return refuse(why, f, "schema member too small");
        store_uint(m, info->type, x);
        return 0;
    case API_T_ENUM:
        return parse_enum(f, info, text, m, why);
    case API_T_TEXT:
    case API_T_ID:
    case API_T_DIGITS:
    case API_T_CURRENCY:
        return parse_string(f, info, text, m, why);
    case API_T_DATE:
        if (parse_date(text, date) < 0 || api_field_check(info, date, sizeof(date)) < 0)
            return refuse(why, f, "must be a real date as YYYY-MM-DD or DD.MM.YYYY, year 2000..9999");
        if (f->size < sizeof(struct api_date))
            return refuse(why, f, "schema member too small");
        {
            struct api_date d = {(uint16_t)(date[0] << 8 | date[1]), date[2], date[3]};

            memcpy(m, &d, sizeof(d));
        }
        return 0;
    case API_T_BYTES:
        return parse_bytes(f, info, text, m, why);
    case API_T_BLOB:
        return refuse(why, f, "is read from a file: give its path");
    case API_T_LIST:
        break;
    }
    return refuse(why, f, "cannot be given on the command line");
}

int
cli_request_init(struct cli_request *r, const struct cli_op *op)
{
    const struct api_schema *s = api_schema_request(op->opcode);

    memset(r, 0, sizeof(*r));
    if (s == NULL || s->num_fields > GIVEN_BITS)
        return CLI_ERR_USAGE;
    r->msg = calloc(1, s->size);
    if (r->msg == NULL)
        return CLI_ERR_NO_MEMORY;
    r->op = op;
    r->schema = s;
    return 0;
}

/* Index of |f| in the request's schema; |f| came from cli_option_find on it. */
static size_t
field_index(const struct cli_request *r, const struct api_field *f)
{
    return (size_t)(f - r->schema->fields);
}

static int
mark_given(struct cli_request *r, const struct api_field *f, char why[CLI_WHY_MAX])
{
    size_t i = field_index(r, f);

    if (i >= r->schema->num_fields)
        return refuse(why, f, "not an option of this command");
    if (r->given & (UINT64_C(1) << i))
        return refuse(why, f, "given twice");
    return 0;
}

static void
set_given(struct cli_request *r, const struct api_field *f)
{
    r->given |= UINT64_C(1) << field_index(r, f);
    if (f->flags & API_FIELD_OPTIONAL)
        *(bool *)((uint8_t *)r->msg + f->aux) = true;
}

int
cli_request_set(struct cli_request *r, const struct api_field *f, const char *text,
                enum cli_source src, char why[CLI_WHY_MAX])
{
    const struct api_tag_info *info = api_tag_info(f->tag);
    char opt[CLI_OPTION_NAME_MAX];
    int rc;

    if (info == NULL || cli_option_name(opt, f->tag) < 0)
        return refuse(why, f, "undefined tag");
    if (src == CLI_SRC_ARGV && (info->flags & API_TAG_SECRET))
        return refuse(why, f, "secret: never on the command line; give it on stdin or in "
                              "--secrets-file as a line %s=VALUE", opt);
    if (src == CLI_SRC_SECRET && !(info->flags & API_TAG_SECRET))
        return refuse(why, f, "not a secret: give it as an option");
    rc = mark_given(r, f, why);
    if (rc < 0)
        return rc;
    rc = parse_value(f, info, text, (uint8_t *)r->msg + f->off, why);
    if (rc < 0)
        return rc;
    set_given(r, f);
    return 0;
}

int
cli_request_set_blob(struct cli_request *r, const struct api_field *f, uint8_t *data,
                     size_t len, char why[CLI_WHY_MAX])
{
    const struct api_tag_info *info = api_tag_info(f->tag);
    struct api_slice sl = {data, len};
    int rc = 0;

    if (info == NULL || info->type != API_T_BLOB || f->size != sizeof(sl)) {
        rc = refuse(why, f, "not a file option");
        goto out;
    }
    if (len < info->min || len > info->max) {
        rc = refuse(why, f, "the file must hold %llu..%llu bytes", (unsigned long long)info->min,
                    (unsigned long long)info->max);
        goto out;
    }
    rc = mark_given(r, f, why);
    if (rc < 0)
        goto out;
    memcpy((uint8_t *)r->msg + f->off, &sl, sizeof(sl));
    r->blob = data;
    r->blob_len = len;
    data = NULL;
    set_given(r, f);
out:
    if (data != NULL) {
        OPENSSL_cleanse(data, len);
        free(data);
    }
    return rc;
}

int
cli_request_set_secrets(struct cli_request *r, const char *text, size_t len,
                        char why[CLI_WHY_MAX])
{
    /* A line holds a name and a value no longer than a share as hex. */
    char line[CLI_OPTION_NAME_MAX + 1 + 2 * API_SHARE_MAX + 2];
    size_t off = 0, lineno = 0;
    int rc = 0;

    if (len > CLI_SECRETS_MAX) {
        snprintf(why, CLI_WHY_MAX, "secrets: more than %u bytes", CLI_SECRETS_MAX);
        return CLI_ERR_USAGE;
    }
    while (off < len && rc == 0) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t n = nl != NULL ? (size_t)(nl - (text + off)) : len - off;
        const struct api_field *f;
        char *eq;

        lineno++;
        if (n > 0 && text[off + n - 1] == '\r')
            n--;
        if (n >= sizeof(line)) {
            snprintf(why, CLI_WHY_MAX, "secrets line %zu: too long", lineno);
            rc = CLI_ERR_USAGE;
            break;
        }
        memcpy(line, text + off, n);
        line[n] = '\0';
        off += nl != NULL ? (size_t)(nl - (text + off)) + 1 : len - off;
        if (n == 0 || line[0] == '#')
            continue;
        if (memchr(line, '\0', n) != NULL) {
            snprintf(why, CLI_WHY_MAX, "secrets line %zu: contains a NUL byte", lineno);
            rc = CLI_ERR_USAGE;
            break;
        }
        eq = strchr(line, '=');
        if (eq == NULL) {
            snprintf(why, CLI_WHY_MAX, "secrets line %zu: expected name=value", lineno);
            rc = CLI_ERR_USAGE;
            break;
        }
        *eq = '\0';
        f = cli_option_find(r->schema, line);
        if (f == NULL) {
            /* The name is not echoed: the line may be a secret pasted
             * with a stray '=' in front of its name. */
            snprintf(why, CLI_WHY_MAX, "secrets line %zu: not a field of %s %s", lineno,
                     r->op->area, r->op->verb);
            rc = CLI_ERR_USAGE;
            break;
        }
        rc = cli_request_set(r, f, eq + 1, CLI_SRC_SECRET, why);
    }
    OPENSSL_cleanse(line, sizeof(line));
    return rc;
}

bool
cli_request_has_secrets(const struct cli_request *r, bool *out_required)
{
    bool any = false, required = false;

    for (size_t i = 0; i < r->schema->num_fields; i++) {
        const struct api_field *f = &r->schema->fields[i];
        const struct api_tag_info *info = api_tag_info(f->tag);

        if (info == NULL || !(info->flags & API_TAG_SECRET))
            continue;
        any = true;
        if (f->flags & API_FIELD_REQUIRED)
            required = true;
    }
    if (out_required != NULL)
        *out_required = required;
    return any;
}

int
cli_request_check(struct cli_request *r, char why[CLI_WHY_MAX])
{
    struct api_writer w;
    struct api_field_error ferr = {0};
    int rc;

    for (size_t i = 0; i < r->schema->num_fields; i++) {
        const struct api_field *f = &r->schema->fields[i];
        const struct api_tag_info *info = api_tag_info(f->tag);
        char opt[CLI_OPTION_NAME_MAX];

        if (!(f->flags & API_FIELD_REQUIRED) || (r->given & (UINT64_C(1) << i)))
            continue;
        if (info == NULL || cli_option_name(opt, f->tag) < 0)
            return refuse(why, f, "required");
        if (info->flags & API_TAG_SECRET)
            return refuse(why, f, "required: give it on stdin or in --secrets-file as %s=VALUE",
                          opt);
        return refuse(why, f, "required option missing");
    }
    /* The encoder applies the decoder's rules to every value; a request it
     * refuses is refused here, before connecting. */
    api_writer_init(&w, API_FRAME_MAX);
    rc = api_msg_encode(&w, r->schema, r->msg, &ferr);
    api_writer_cleanup(&w);
    if (rc == API_ERR_NO_MEMORY)
        return CLI_ERR_NO_MEMORY;
    if (rc < 0) {
        const struct api_field *f = api_schema_field(r->schema, ferr.tag);

        if (f != NULL)
            return refuse(why, f, "%s", ferr.message != NULL ? ferr.message : api_strerror(rc));
        snprintf(why, CLI_WHY_MAX, "request refused by the encoder: %s", api_strerror(rc));
        return CLI_ERR_USAGE;
    }
    return 0;
}

void
cli_request_cleanup(struct cli_request *r)
{
    if (r == NULL)
        return;
    if (r->msg != NULL) {
        api_msg_cleanup(r->schema, r->msg);
        free(r->msg);
    }
    if (r->blob != NULL) {
        OPENSSL_cleanse(r->blob, r->blob_len);
        free(r->blob);
    }
    memset(r, 0, sizeof(*r));
}
