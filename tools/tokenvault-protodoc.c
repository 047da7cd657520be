/*
 * tokenvault-protodoc - the generated parts of docs/PROTOCOL.md.
 *
 *   tokenvault-protodoc                 print every generated section
 *   tokenvault-protodoc --update FILE   replace the generated sections in FILE
 *   tokenvault-protodoc --check FILE    exit 1 if a section in FILE differs
 *
 * Every table comes from the X-macro lists of api/proto.h and the schemas of
 * api/msg.h, and every example frame is encoded by api_frame_write, so the
 * specification cannot drift from the code: CI runs --check (ctest
 * test_protocol_doc). A section sits between the lines
 *   <!-- generated:NAME begin -->
 *   <!-- generated:NAME end -->
 * and everything outside them is hand-written prose that this tool never
 * touches.
 *
 * Exit status: 0 done (or up to date), 1 a section differs (--check), 2 usage,
 * I/O error, or a codec behaviour the examples rely on has changed.
 */
#include <err.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/frame.h"

#define EXIT_DIFFERS 1
#define EXIT_TROUBLE 2

/* Bytes shown per line of an annotated dump, and hex digits per line of the
 * contiguous dump. */
#define DUMP_BYTES_PER_LINE 16u
#define HEX_CHARS_PER_LINE 64u
/* Longest marker name; the names are ours ("op-wallet_decrypt"). */
#define SECTION_NAME_MAX 48u
/* Most generated sections: the fixed ones and one per operation. */
#define SECTIONS_MAX 64u
/* Largest documentation file --update and --check read. */
#define DOC_FILE_MAX (4u * 1024u * 1024u)

/* ---- a growing text buffer ------------------------------------------------ */

struct text {
    char *p;
    size_t len;
    size_t cap;
};

static void
text_add(struct text *t, const char *s, size_t n)
{
    if (t->p == NULL || n >= t->cap - t->len) {
        size_t cap = t->cap != 0 ? t->cap : 256;

        while (cap - t->len <= n)
            cap *= 2;
        t->p = realloc(t->p, cap);
        if (t->p == NULL)
            err(EXIT_TROUBLE, "out of memory");
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void __attribute__((format(printf, 2, 3)))
text_printf(struct text *t, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        errx(EXIT_TROUBLE, "formatting failed");
    if ((size_t)n < sizeof(small)) {
        text_add(t, small, (size_t)n);
        return;
    }
    {
        char *big = malloc((size_t)n + 1);

        if (big == NULL)
            err(EXIT_TROUBLE, "out of memory");
        va_start(ap, fmt);
        (void)vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        text_add(t, big, (size_t)n);
        free(big);
    }
}

static void
text_free(struct text *t)
{
    free(t->p);
    memset(t, 0, sizeof(*t));
}

/* A Markdown table cell: '|' would end the cell. */
static void
text_cell(struct text *t, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '|')
            text_add(t, "\\|", 2);
        else
            text_add(t, s, 1);
    }
}

/* ---- what the code says ----------------------------------------------------- */

/* Status rows with the class as written in API_STATUS_LIST. */
struct status_row {
    unsigned num;
    const char *name;
    const char *cls;
    const char *description;
};

static const struct status_row status_rows[] = {
#define STATUS_ROW(name, num, cls, desc) {num, #name, #cls, desc},
    API_STATUS_LIST(STATUS_ROW)
#undef STATUS_ROW
};

/* Operations: API_OP_LIST joined with API_MSG_LIST by opcode. */
struct op_row {
    uint16_t opcode;
    const char *name;
    const char *area;
    const char *verb;
    enum api_role role;
    const char *lower;
    const char *summary;
};

static const struct op_row op_rows[] = {
#define OP_ROW(name, num, area, verb, role, lower, summary) \
    {num, #name, area, verb, API_ROLE_##role, #lower, summary},
    API_OP_LIST(OP_ROW)
#undef OP_ROW
};

struct msg_row {
    uint16_t opcode;
    const char *lower;
    const char *req;
    const char *resp;
};

static const struct msg_row msg_rows[] = {
#define MSG_ROW(op, lower, req, resp) {API_OP_##op, #lower, #req, #resp},
    API_MSG_LIST(MSG_ROW)
#undef MSG_ROW
};

/* Tags with their limits as spelled in API_TAG_LIST ("API_ID_MAX"), so the
 * tables name the constant and give its value. */
struct tag_spelling {
    uint16_t tag;
    const char *min;
    const char *max;
};

static const struct tag_spelling tag_spellings[] = {
#define TAG_SPELLING(name, num, type, min, max, flags, enums, wire) {num, #min, #max},
    API_TAG_LIST(TAG_SPELLING)
#undef TAG_SPELLING
};

/* Framing constants and limits with a line each on what they bound. The
 * values are the macros themselves; only the words are written here. */
struct constant_row {
    const char *name;
    uint64_t value;
    bool hex;
    const char *what;
};

#define CONSTANT(name, hex, what) {#name, (uint64_t)(name), hex, what}
static const struct constant_row framing_rows[] = {
    CONSTANT(API_LEN_PREFIX, false, "bytes of the big-endian length prefix before every frame"),
    CONSTANT(API_HEADER_LEN, false, "bytes of the fixed header after the length prefix"),
    CONSTANT(API_MAGIC, true, "first two header bytes, ASCII \"TV\""),
    CONSTANT(API_VERSION, false, "protocol version this document specifies"),
    CONSTANT(API_FLAG_RESPONSE, true, "flags bit set in every response, clear in every request"),
    CONSTANT(API_FLAGS_KNOWN, true, "flags bits with a meaning; any other bit set is BAD_REQUEST"),
    CONSTANT(API_FIELD_HEADER_LEN, false, "bytes before a field's value: u16 tag, u32 length"),
};

static const struct constant_row limit_rows[] = {
    CONSTANT(API_FRAME_MAX, false, "largest length prefix value (header + fields)"),
    CONSTANT(API_FIELDS_MAX, false, "most fields in one message or in one list item"),
    CONSTANT(API_LIST_ITEMS_MAX, false, "most items in one list field"),
    CONSTANT(API_LIST_DEPTH_MAX, false, "list nesting depth: an item never contains a list"),
    CONSTANT(API_CARD_MAPPINGS_MAX, false, "clientCardIds mapped to one card (CARD_MAP); CARD_GET lists them all"),
    CONSTANT(API_MESSAGE_MAX, false, "error message text, bytes"),
    CONSTANT(API_ID_MAX, false, "merchant, token and other identifiers, bytes"),
    CONSTANT(API_CUSTOMER_NUMBER_MAX, false, "CustomerNumber, bytes (seed 003: 32 characters)"),
    CONSTANT(API_RULE_MAX, false, "name of a mandate rule in an error, bytes"),
    CONSTANT(API_ECHO_MAX, false, "PING echo, bytes"),
    CONSTANT(API_VERSION_TEXT_MAX, false, "service version text, bytes"),
    CONSTANT(API_PAN_MIN, false, "shortest PAN, digits (ISO/IEC 7812)"),
    CONSTANT(API_PAN_MAX, false, "longest PAN, digits"),
    CONSTANT(API_HOLDER_MAX, false, "card holder name, bytes of UTF-8"),
    CONSTANT(API_EMAIL_MIN, false, "shortest e-mail address, bytes"),
    CONSTANT(API_EMAIL_MAX, false, "longest e-mail address, bytes (RFC 5321 path)"),
    CONSTANT(API_BIN_MIN, false, "shortest BIN, digits"),
    CONSTANT(API_BIN_MAX, false, "longest BIN, digits"),
    CONSTANT(API_LAST4_LEN, false, "last digits of the PAN shown, digits"),
    CONSTANT(API_CVC_MIN, false, "shortest CVC, digits"),
    CONSTANT(API_CVC_MAX, false, "longest CVC, digits"),
    CONSTANT(API_PIN_BLOCK_MIN, false, "shortest PIN block, bytes (never accepted)"),
    CONSTANT(API_PIN_BLOCK_MAX, false, "longest PIN block, bytes (never accepted)"),
    CONSTANT(API_TRACK_MAX, false, "track data, bytes (never accepted)"),
    CONSTANT(API_PACKET_MAX, false, "wallet packet (JSON or JWE text), bytes"),
    CONSTANT(API_WALLET_VERSION_MAX, false, "wallet packet version, bytes"),
    CONSTANT(API_CRYPTOGRAM_MAX, false, "base64 online cryptogram, bytes"),
    CONSTANT(API_ECI_MAX, false, "ECI, digits"),
    CONSTANT(API_TRANSACTION_ID_MAX, false, "wallet transaction id, bytes"),
    CONSTANT(API_HASH_LEN, false, "SHA-256 of the accessToken, bytes"),
    CONSTANT(API_DEVICE_DATA_MAX, false, "device data of a mobile sale, bytes"),
    CONSTANT(API_NONCE_MIN, false, "shortest session nonce, bytes"),
    CONSTANT(API_NONCE_MAX, false, "longest session nonce, bytes"),
    CONSTANT(API_SIGNATURE_LEN, false, "session signature (HMAC-SHA256), bytes"),
    CONSTANT(API_QR_TOKEN_MAX, false, "QR payment request token, bytes"),
    CONSTANT(API_SHARE_MIN, false, "shortest unseal share (index byte + secret), bytes"),
    CONSTANT(API_SHARE_MAX, false, "longest unseal share, bytes"),
    CONSTANT(API_KCV_MIN, false, "shortest key check value, bytes"),
    CONSTANT(API_KCV_MAX, false, "longest key check value, bytes"),
    CONSTANT(API_CURRENCY_LEN, false, "ISO 4217 alphabetic currency code, bytes"),
    CONSTANT(API_AMOUNT_MAX, false, "largest amount, minor units (seed 003: 15 digits)"),
    CONSTANT(API_RECURRING_COUNT_MAX, false, "largest RecurringCount, days (seed 003: 3 digits)"),
    CONSTANT(API_LIFETIME_MAX, false, "longest session or QR request lifetime, seconds (30 days)"),
    CONSTANT(API_RETRY_AFTER_MAX, false, "largest retryAfterMs, milliseconds"),
};
#undef CONSTANT

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool
is_integer(enum api_type type)
{
    return type == API_T_U8 || type == API_T_U16 || type == API_T_U32 || type == API_T_U64;
}

static const struct tag_spelling *
tag_spelling(uint16_t tag)
{
    for (size_t i = 0; i < COUNT(tag_spellings); i++)
        if (tag_spellings[i].tag == tag)
            return &tag_spellings[i];
    errx(EXIT_TROUBLE, "tag 0x%04x has no row in API_TAG_LIST", tag);
}

static const struct msg_row *
msg_row(uint16_t opcode)
{
    for (size_t i = 0; i < COUNT(msg_rows); i++)
        if (msg_rows[i].opcode == opcode)
            return &msg_rows[i];
    errx(EXIT_TROUBLE, "opcode 0x%04x has no row in API_MSG_LIST", opcode);
}

static const struct op_row *
op_row(uint16_t opcode)
{
    for (size_t i = 0; i < COUNT(op_rows); i++)
        if (op_rows[i].opcode == opcode)
            return &op_rows[i];
    return NULL;
}

/* A bound as written and as a number: "API_ID_MAX (64)", "12", "UINT64_MAX". */
static void
text_bound(struct text *t, const char *spelling, uint64_t value)
{
    bool literal = true;

    for (const char *c = spelling; *c != '\0'; c++)
        if (*c < '0' || *c > '9')
            literal = false;
    if (literal || strncmp(spelling, "UINT", 4) == 0)
        text_printf(t, "%s", spelling);
    else
        text_printf(t, "%s (%llu)", spelling, (unsigned long long)value);
}

/* ---- sections ------------------------------------------------------------- */

static void
gen_framing(struct text *t)
{
    text_printf(t, "| constant | value | meaning |\n|---|---|---|\n");
    for (size_t i = 0; i < COUNT(framing_rows); i++) {
        const struct constant_row *c = &framing_rows[i];

        if (c->hex)
            text_printf(t, "| `%s` | `0x%04llx` | ", c->name, (unsigned long long)c->value);
        else
            text_printf(t, "| `%s` | %llu | ", c->name, (unsigned long long)c->value);
        text_cell(t, c->what);
        text_printf(t, " |\n");
    }
}

static void
gen_limits(struct text *t)
{
    text_printf(t, "| constant | value | bounds |\n|---|---:|---|\n");
    for (size_t i = 0; i < COUNT(limit_rows); i++) {
        text_printf(t, "| `%s` | %llu | ", limit_rows[i].name,
                    (unsigned long long)limit_rows[i].value);
        text_cell(t, limit_rows[i].what);
        text_printf(t, " |\n");
    }
}

static void
gen_status(struct text *t)
{
    text_printf(t, "| number | name | class | description |\n|---:|---|---|---|\n");
    for (size_t i = 0; i < COUNT(status_rows); i++) {
        text_printf(t, "| %u | `%s` | %s | ", status_rows[i].num, status_rows[i].name,
                    status_rows[i].cls);
        text_cell(t, status_rows[i].description);
        text_printf(t, " |\n");
    }
}

static void
gen_roles(struct text *t)
{
    text_printf(t, "| role | operations that need it |\n|---|---|\n");
    for (int role = 0; role < (int)API_ROLE_COUNT_; role++) {
        bool first = true;

        text_printf(t, "| `%s` | ", api_role_name((enum api_role)role));
        for (size_t i = 0; i < COUNT(op_rows); i++) {
            if ((int)op_rows[i].role != role)
                continue;
            text_printf(t, "%s`%s`", first ? "" : ", ", op_rows[i].name);
            first = false;
        }
        if (first)
            text_printf(t, "(none in version %u)", API_VERSION);
        text_printf(t, " |\n");
    }
}

static void
text_flags(struct text *t, uint8_t flags)
{
    if ((flags & API_TAG_SECRET) && (flags & API_TAG_NEVER_STORED))
        text_printf(t, "secret, never stored");
    else if (flags & API_TAG_SECRET)
        text_printf(t, "secret");
    else if (flags & API_TAG_NEVER_STORED)
        text_printf(t, "never stored");
}

static void
gen_tags(struct text *t)
{
    size_t num = 0;
    const struct api_tag_info *tags = api_tag_all(&num);

    text_printf(t, "| tag | name | wire name | type | length (bytes) | value range | flags | "
                   "values |\n|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < num; i++) {
        const struct api_tag_info *info = &tags[i];
        const struct tag_spelling *sp = tag_spelling(info->tag);
        size_t width = api_type_width(info->type);

        text_printf(t, "| `0x%04x` | `%s` | `%s` | %s | ", info->tag, info->name, info->wire,
                    api_type_name(info->type));
        /* length */
        if (width != 0) {
            text_printf(t, "%zu", width);
        } else if (info->type == API_T_LIST) {
            text_printf(t, "items, u32-prefixed");
        } else if (info->min == info->max) {
            text_bound(t, sp->max, info->max);
        } else {
            text_bound(t, sp->min, info->min);
            text_printf(t, "..");
            text_bound(t, sp->max, info->max);
        }
        text_printf(t, " | ");
        /* value range */
        if (info->type == API_T_BOOL) {
            text_printf(t, "0 or 1");
        } else if (is_integer(info->type)) {
            text_bound(t, sp->min, info->min);
            text_printf(t, "..");
            text_bound(t, sp->max, info->max);
        } else if (info->type == API_T_ENUM) {
            text_printf(t, "1..%llu", (unsigned long long)info->max);
        } else if (info->type == API_T_LIST) {
            text_bound(t, sp->min, info->min);
            text_printf(t, "..");
            text_bound(t, sp->max, info->max);
            text_printf(t, " items");
        }
        text_printf(t, " | ");
        text_flags(t, info->flags);
        text_printf(t, " | ");
        if (info->type == API_T_ENUM)
            for (unsigned v = 1; v <= info->max; v++)
                text_printf(t, "%s%u `%s`", v > 1 ? ", " : "", v, info->enum_names[v]);
        text_printf(t, " |\n");
    }
}

static void
gen_operations(struct text *t)
{
    text_printf(t, "| opcode | operation | CLI | role | request | response | summary |\n"
                   "|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < COUNT(op_rows); i++) {
        const struct op_row *op = &op_rows[i];
        const struct msg_row *m = msg_row(op->opcode);

        text_printf(t, "| `0x%04x` | `%s` | `tokenvault %s %s` | `%s` | `%s` | `%s` | ", op->opcode,
                    op->name, op->area, op->verb, api_role_name(op->role), m->req, m->resp);
        text_cell(t, op->summary);
        text_printf(t, " |\n");
    }
}

static void
text_field_rows(struct text *t, const struct api_schema *s, const char *indent)
{
    for (size_t i = 0; i < s->num_fields; i++) {
        const struct api_field *f = &s->fields[i];
        const struct api_tag_info *info = api_tag_info(f->tag);

        if (info == NULL)
            errx(EXIT_TROUBLE, "schema %s names undefined tag 0x%04x", s->name, f->tag);
        text_printf(t, "| %s`0x%04x` | `%s` | `%s` | ", indent, f->tag, info->name, info->wire);
        if (info->type == API_T_LIST)
            text_printf(t, "list of `%s` | %s (%llu..%llu items) |\n", f->item->name,
                        (f->flags & API_FIELD_OPTIONAL) ? "optional" : "required",
                        (unsigned long long)info->min, (unsigned long long)info->max);
        else
            text_printf(t, "%s | %s |\n", api_type_name(info->type),
                        (f->flags & API_FIELD_OPTIONAL) ? "optional" : "required");
        if (f->item != NULL)
            text_field_rows(t, f->item, "↳ ");
    }
}

static void
text_schema(struct text *t, const char *what, const struct api_schema *s)
{
    if (s->num_fields == 0) {
        text_printf(t, "%s (`%s`): no fields.\n", what, s->name);
        return;
    }
    text_printf(t, "%s (`%s`):\n\n", what, s->name);
    text_printf(t, "| tag | name | wire name | type | presence |\n|---|---|---|---|---|\n");
    text_field_rows(t, s, "");
}

static void
gen_op(struct text *t, const struct op_row *op)
{
    text_printf(t, "### `0x%04x` %s\n\n", op->opcode, op->name);
    text_printf(t, "CLI: `tokenvault %s %s`. Role: `%s`. Summary: %s.\n\n", op->area, op->verb,
                api_role_name(op->role), op->summary);
    text_schema(t, "Request", api_schema_request(op->opcode));
    text_printf(t, "\n");
    text_schema(t, "Response", api_schema_response(op->opcode));
}

static void
gen_error_body(struct text *t)
{
    text_schema(t, "Error body, every response with a status other than OK", api_schema_error());
}

/* ---- example frames ----------------------------------------------------------- */

struct dump {
    struct text *t;
    const uint8_t *base; /* the whole frame, for offsets */
};

/* One annotated line: offset, up to DUMP_BYTES_PER_LINE bytes, meaning; more
 * bytes continue on lines of their own. */
static void
dump_line(struct dump *d, const struct api_reader *bytes, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
dump_line(struct dump *d, const struct api_reader *bytes, const char *fmt, ...)
{
    size_t off = (size_t)(bytes->data - d->base);
    char meaning[512];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(meaning, sizeof(meaning), fmt, ap);
    va_end(ap);
    for (size_t line = 0; line == 0 || line * DUMP_BYTES_PER_LINE < bytes->len; line++) {
        size_t start = line * DUMP_BYTES_PER_LINE, n = bytes->len - start;
        size_t col = 0;

        if (n > DUMP_BYTES_PER_LINE)
            n = DUMP_BYTES_PER_LINE;
        text_printf(d->t, "%06zx  ", off + start);
        for (size_t i = 0; i < n; i++) {
            text_printf(d->t, "%s%02x", i > 0 ? " " : "", bytes->data[start + i]);
            col += i > 0 ? 3 : 2;
        }
        if (line == 0) {
            text_printf(d->t, "%*s  %s", (int)(DUMP_BYTES_PER_LINE * 3 - 1 - col), "", meaning);
        }
        /* no trailing blanks on continuation lines */
        text_printf(d->t, "\n");
    }
}

/* The value of a field as the tables describe it. */
static void
describe_value(char *out, size_t out_len, const struct api_tag_info *info, const uint8_t *v,
               size_t len)
{
    uint64_t x = 0;
    size_t n = 0;

    if (api_type_width(info->type) != 0 && info->type != API_T_CURRENCY)
        for (size_t i = 0; i < len; i++)
            x = x << 8 | v[i];
    switch (info->type) {
    case API_T_BOOL:
        snprintf(out, out_len, "%s", x ? "true" : "false");
        return;
    case API_T_ENUM:
        snprintf(out, out_len, "%llu (%s)", (unsigned long long)x,
                 api_enum_name(info->tag, (unsigned)x) != NULL
                     ? api_enum_name(info->tag, (unsigned)x)
                     : "?");
        return;
    case API_T_U8:
    case API_T_U16:
    case API_T_U32:
    case API_T_U64:
        snprintf(out, out_len, "%llu", (unsigned long long)x);
        return;
    case API_T_DATE:
        snprintf(out, out_len, "%04u-%02u-%02u", (unsigned)(x >> 16), (unsigned)(x >> 8 & 0xff),
                 (unsigned)(x & 0xff));
        return;
    case API_T_TEXT:
    case API_T_ID:
    case API_T_DIGITS:
    case API_T_CURRENCY:
        n = (size_t)snprintf(out, out_len, "\"");
        for (size_t i = 0; i < len && n + 5 < out_len; i++)
            out[n++] = (char)v[i];
        snprintf(out + n, out_len - n, "\"");
        return;
    default:
        snprintf(out, out_len, "%zu opaque bytes", len);
        return;
    }
}

/* Annotates one whole frame (length prefix included), read back through the
 * cursor reader: the bytes are the encoder's, the meanings the tables'. */
static void
dump_frame(struct text *t, const uint8_t *frame, size_t frame_len)
{
    struct dump d = {t, frame};
    struct api_reader r, part;
    uint32_t length = 0;
    uint16_t magic = 0, opcode = 0, status = 0;
    uint8_t version = 0, flags = 0;
    uint64_t id = 0;
    const struct op_row *op;

    api_reader_init(&r, frame, frame_len);
    text_printf(t, "```text\noffset  bytes%*s  meaning\n", (int)(DUMP_BYTES_PER_LINE * 3 - 6), "");
#define TAKE(n, getter, var)                                                   \
    do {                                                                       \
        struct api_reader tmp_ = r;                                            \
        if (api_reader_get_bytes(&r, &part, n) < 0 || getter(&tmp_, var) < 0) \
            errx(EXIT_TROUBLE, "example frame is shorter than its header");    \
    } while (0)
    TAKE(4, api_reader_get_u32, &length);
    dump_line(&d, &part, "length prefix: %u bytes follow", length);
    TAKE(2, api_reader_get_u16, &magic);
    dump_line(&d, &part, "magic 0x%04x \"%c%c\"", magic, magic >> 8, magic & 0xff);
    TAKE(1, api_reader_get_u8, &version);
    dump_line(&d, &part, "version %u", version);
    TAKE(1, api_reader_get_u8, &flags);
    dump_line(&d, &part, "flags 0x%02x: %s", flags,
              (flags & API_FLAG_RESPONSE) ? "RESPONSE" : "request");
    TAKE(2, api_reader_get_u16, &opcode);
    op = op_row(opcode);
    dump_line(&d, &part, "opcode 0x%04x %s", opcode, op != NULL ? op->name : "?");
    TAKE(2, api_reader_get_u16, &status);
    dump_line(&d, &part, "status %u %s", status,
              api_status_name(status) != NULL ? api_status_name(status) : "?");
    TAKE(8, api_reader_get_u64, &id);
    dump_line(&d, &part, "request id %llu", (unsigned long long)id);
#undef TAKE
    while (api_reader_len(&r) > 0) {
        struct api_reader field = r, value;
        const struct api_tag_info *info;
        uint16_t tag = 0;
        char meaning[300];

        if (api_reader_get_u16(&r, &tag) < 0 || api_reader_get_u32_prefixed(&r, &value) < 0)
            errx(EXIT_TROUBLE, "example frame has a truncated field");
        field.len = (size_t)(r.data - field.data);
        info = api_tag_info(tag);
        if (info == NULL)
            errx(EXIT_TROUBLE, "example frame has undefined tag 0x%04x", tag);
        if (tag == API_TAG_ERROR_TAG && value.len == 2) {
            uint16_t named = (uint16_t)(value.data[0] << 8 | value.data[1]);
            const struct api_tag_info *ni = api_tag_info(named);

            snprintf(meaning, sizeof(meaning), "0x%04x (%s)", named, ni != NULL ? ni->name : "?");
        } else {
            describe_value(meaning, sizeof(meaning), info, value.data, value.len);
        }
        dump_line(&d, &field, "tag 0x%04x %s, len %zu: %s", tag, info->wire, value.len, meaning);
    }
    text_printf(t, "```\n\nThe same frame as contiguous hex:\n\n```text\n");
    for (size_t i = 0; i < frame_len; i++) {
        text_printf(t, "%02x", frame[i]);
        if ((i + 1) * 2 % HEX_CHARS_PER_LINE == 0 || i + 1 == frame_len)
            text_printf(t, "\n");
    }
    text_printf(t, "```\n");
}

/* The three example frames, encoded once. */
struct examples {
    struct api_writer request;
    struct api_writer response;
    struct api_writer error;
};

/* Copies the frame in |in| without the field |drop|: a request as a client
 * that forgot a field would send it. */
static void
frame_without(struct api_writer *out, const struct api_writer *in, uint16_t drop)
{
    struct api_reader r, header, value;
    size_t mark;
    int rc;

    api_reader_init(&r, api_writer_data(in), api_writer_len(in));
    rc = api_writer_begin_u32(out, &mark);
    if (rc == 0 && (api_reader_skip(&r, API_LEN_PREFIX) < 0 ||
                    api_reader_get_bytes(&r, &header, API_HEADER_LEN) < 0))
        rc = -API_STATUS_TRUNCATED;
    if (rc == 0)
        rc = api_writer_put_bytes(out, header.data, header.len);
    while (rc == 0 && api_reader_len(&r) > 0) {
        uint16_t tag = 0;

        if (api_reader_get_u16(&r, &tag) < 0 || api_reader_get_u32_prefixed(&r, &value) < 0) {
            rc = -API_STATUS_TRUNCATED;
            break;
        }
        if (tag == drop)
            continue;
        rc = api_writer_put_u16(out, tag);
        if (rc == 0)
            rc = api_writer_put_u32(out, (uint32_t)value.len);
        if (rc == 0)
            rc = api_writer_put_bytes(out, value.data, value.len);
    }
    if (rc == 0)
        rc = api_writer_end_u32(out, mark);
    if (rc < 0)
        errx(EXIT_TROUBLE, "cannot rebuild the example frame: %s", api_strerror(rc));
}

static void
examples_encode(struct examples *ex)
{
    const struct api_header req_hdr = {API_VERSION, 0, API_OP_CARD_STORE, API_STATUS_OK, 7};
    const struct api_header resp_hdr = {API_VERSION, API_FLAG_RESPONSE, API_OP_CARD_STORE,
                                        API_STATUS_OK, 7};
    struct api_card_store_req req;
    struct api_card_store_resp resp;
    struct api_writer broken;
    struct api_frame frame;
    struct api_field_error ferr;
    int rc;

    memset(&req, 0, sizeof(req));
    memset(&resp, 0, sizeof(resp));
    /* A test PAN (Luhn-valid, issued to no one). */
    strcpy(req.merchant, "m-1001");
    strcpy(req.customer_number, "cust-42");
    strcpy(req.pan, "4111111111111111");
    req.exp_month = 12;
    req.exp_year = 2030;
    req.consent = true;
    req.verification = API_VERIFICATION_CVC2_3DS;

    strcpy(resp.token, "tv1_8Jq2ZxK4mP7wR3nB");
    resp.kind = API_CARD_KIND_CARD;
    strcpy(resp.bin, "411111");
    strcpy(resp.last4, "1111");
    resp.brand = API_BRAND_VISA;
    resp.exp_month = 12;
    resp.exp_year = 2030;
    resp.need_cvc = false;
    resp.active = true;
    resp.dedup = API_DEDUP_NEW;
    resp.created_at = 1795000000;

    api_writer_init(&ex->request, API_LEN_PREFIX + API_FRAME_MAX);
    api_writer_init(&ex->response, API_LEN_PREFIX + API_FRAME_MAX);
    api_writer_init(&ex->error, API_LEN_PREFIX + API_FRAME_MAX);
    api_writer_init(&broken, API_LEN_PREFIX + API_FRAME_MAX);
    rc = api_frame_write(&ex->request, &req_hdr, api_schema_request(API_OP_CARD_STORE), &req, &ferr);
    if (rc == 0)
        rc = api_frame_write(&ex->response, &resp_hdr, api_schema_response(API_OP_CARD_STORE),
                             &resp, &ferr);
    if (rc < 0)
        errx(EXIT_TROUBLE, "encoding the example failed: %s (tag 0x%04x)", api_strerror(rc),
             ferr.tag);

    /* The error example is the codec's own answer to the request without its
     * PAN, so the documented message is the one a server sends. */
    frame_without(&broken, &ex->request, API_TAG_PAN);
    rc = api_frame_decode(&frame, api_writer_data(&broken) + API_LEN_PREFIX,
                          api_writer_len(&broken) - API_LEN_PREFIX, API_DIR_REQUEST, &ferr);
    if (rc != -API_STATUS_MISSING_FIELD || ferr.tag != API_TAG_PAN)
        errx(EXIT_TROUBLE, "a CARD_STORE request without its PAN decoded as %s, not MISSING_FIELD",
             api_strerror(rc));
    rc = api_frame_write_error(&ex->error, &frame.hdr, ferr.status, ferr.tag, ferr.message);
    if (rc < 0)
        errx(EXIT_TROUBLE, "encoding the error example failed: %s", api_strerror(rc));
    api_frame_cleanup(&frame);
    api_writer_cleanup(&broken);
    api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &req);
    api_msg_cleanup(api_schema_response(API_OP_CARD_STORE), &resp);
}

static void
examples_cleanup(struct examples *ex)
{
    api_writer_cleanup(&ex->request);
    api_writer_cleanup(&ex->response);
    api_writer_cleanup(&ex->error);
}

/* ---- the section list ------------------------------------------------------- */

struct section {
    char name[SECTION_NAME_MAX + 1];
    struct text body;
};

struct sections {
    struct section s[SECTIONS_MAX];
    size_t num;
};

static struct text *
section_add(struct sections *all, const char *name)
{
    struct section *s;

    if (all->num == SECTIONS_MAX)
        errx(EXIT_TROUBLE, "more than %u sections", SECTIONS_MAX);
    s = &all->s[all->num++];
    memset(s, 0, sizeof(*s));
    if (snprintf(s->name, sizeof(s->name), "%s", name) >= (int)sizeof(s->name))
        errx(EXIT_TROUBLE, "section name %s too long", name);
    text_add(&s->body, "", 0);
    return &s->body;
}

static void
sections_build(struct sections *all)
{
    struct examples ex;

    for (size_t i = 0; i < COUNT(op_rows); i++)
        (void)msg_row(op_rows[i].opcode);
    if (COUNT(op_rows) != COUNT(msg_rows))
        errx(EXIT_TROUBLE, "API_OP_LIST and API_MSG_LIST have different rows");

    memset(all, 0, sizeof(*all));
    gen_framing(section_add(all, "framing"));
    gen_limits(section_add(all, "limits"));
    gen_status(section_add(all, "status-codes"));
    gen_tags(section_add(all, "tags"));
    gen_roles(section_add(all, "roles"));
    gen_operations(section_add(all, "operations"));
    for (size_t i = 0; i < COUNT(op_rows); i++) {
        char name[SECTION_NAME_MAX + 1];

        snprintf(name, sizeof(name), "op-%s", op_rows[i].lower);
        gen_op(section_add(all, name), &op_rows[i]);
    }
    gen_error_body(section_add(all, "error-body"));

    examples_encode(&ex);
    dump_frame(section_add(all, "example-card-store-request"), api_writer_data(&ex.request),
               api_writer_len(&ex.request));
    dump_frame(section_add(all, "example-card-store-response"), api_writer_data(&ex.response),
               api_writer_len(&ex.response));
    dump_frame(section_add(all, "example-error-response"), api_writer_data(&ex.error),
               api_writer_len(&ex.error));
    examples_cleanup(&ex);
}

static void
sections_free(struct sections *all)
{
    for (size_t i = 0; i < all->num; i++)
        text_free(&all->s[i].body);
    all->num = 0;
}

static const struct section *
section_find(const struct sections *all, const char *name, size_t len)
{
    for (size_t i = 0; i < all->num; i++)
        if (strlen(all->s[i].name) == len && memcmp(all->s[i].name, name, len) == 0)
            return &all->s[i];
    return NULL;
}

/* ---- markers in a document ---------------------------------------------------- */

#define MARK_OPEN "<!-- generated:"
#define MARK_BEGIN " begin -->"
#define MARK_END " end -->"

/* A line of the document. */
struct line {
    const char *p;
    size_t len; /* without the newline */
};

/* If |l| is a marker line, its name and whether it begins a section. */
static bool
marker(const struct line *l, const char **name, size_t *name_len, bool *begin)
{
    size_t open = strlen(MARK_OPEN), tail;
    const char *end;

    if (l->len <= open || memcmp(l->p, MARK_OPEN, open) != 0)
        return false;
    if (l->len > strlen(MARK_BEGIN) &&
        memcmp(l->p + l->len - strlen(MARK_BEGIN), MARK_BEGIN, strlen(MARK_BEGIN)) == 0) {
        *begin = true;
        tail = strlen(MARK_BEGIN);
    } else if (l->len > strlen(MARK_END) &&
               memcmp(l->p + l->len - strlen(MARK_END), MARK_END, strlen(MARK_END)) == 0) {
        *begin = false;
        tail = strlen(MARK_END);
    } else {
        return false;
    }
    if (l->len < open + tail + 1)
        return false;
    *name = l->p + open;
    end = l->p + l->len - tail;
    *name_len = (size_t)(end - *name);
    return true;
}

static bool
next_line(const char **pos, const char *end, struct line *out)
{
    const char *nl;

    if (*pos >= end)
        return false;
    nl = memchr(*pos, '\n', (size_t)(end - *pos));
    out->p = *pos;
    out->len = nl != NULL ? (size_t)(nl - *pos) : (size_t)(end - *pos);
    *pos = nl != NULL ? nl + 1 : end;
    return true;
}

/* ---- a small line diff for --check ------------------------------------------------ */

static size_t
split_lines(const char *p, size_t len, struct line **out)
{
    const char *pos = p, *end = p + len;
    size_t n = 0, cap = 16;
    struct line *lines = malloc(cap * sizeof(*lines)), l;

    if (lines == NULL)
        err(EXIT_TROUBLE, "out of memory");
    while (next_line(&pos, end, &l)) {
        if (n == cap) {
            cap *= 2;
            lines = realloc(lines, cap * sizeof(*lines));
            if (lines == NULL)
                err(EXIT_TROUBLE, "out of memory");
        }
        lines[n++] = l;
    }
    *out = lines;
    return n;
}

static bool
line_eq(const struct line *a, const struct line *b)
{
    return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* Prints the lines that differ, '-' as in the file, '+' as generated, by a
 * longest-common-subsequence walk (sections are at most a few hundred lines). */
static void
print_diff(const char *file, size_t first_line, const char *name, const char *old, size_t old_len,
           const char *gen, size_t gen_len)
{
    struct line *a = NULL, *b = NULL;
    size_t na = split_lines(old, old_len, &a), nb = split_lines(gen, gen_len, &b);
    size_t *lcs = calloc((na + 1) * (nb + 1), sizeof(*lcs));
    size_t i = 0, j = 0;
    bool in_hunk = false;

    if (lcs == NULL)
        err(EXIT_TROUBLE, "out of memory");
#define LCS(x, y) lcs[(x) * (nb + 1) + (y)]
    for (size_t x = na; x-- > 0;)
        for (size_t y = nb; y-- > 0;)
            LCS(x, y) = line_eq(&a[x], &b[y]) ? LCS(x + 1, y + 1) + 1
                        : LCS(x + 1, y) >= LCS(x, y + 1) ? LCS(x + 1, y)
                                                         : LCS(x, y + 1);
    printf("--- %s, section %s\n+++ generated from api/proto.h and api/msg.h\n", file, name);
    while (i < na || j < nb) {
        if (i < na && j < nb && line_eq(&a[i], &b[j])) {
            i++;
            j++;
            in_hunk = false;
            continue;
        }
        if (!in_hunk)
            printf("@@ line %zu @@\n", first_line + i);
        in_hunk = true;
        if (i < na && (j == nb || LCS(i + 1, j) >= LCS(i, j + 1))) {
            printf("-%.*s\n", (int)a[i].len, a[i].p);
            i++;
        } else {
            printf("+%.*s\n", (int)b[j].len, b[j].p);
            j++;
        }
    }
#undef LCS
    free(lcs);
    free(a);
    free(b);
}

/* ---- --update and --check ---------------------------------------------------- */

static char *
read_file(const char *path, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL)
        err(EXIT_TROUBLE, "%s", path);
    buf = malloc(DOC_FILE_MAX + 1);
    if (buf == NULL)
        err(EXIT_TROUBLE, "out of memory");
    n = fread(buf, 1, DOC_FILE_MAX + 1, f);
    if (ferror(f))
        err(EXIT_TROUBLE, "%s", path);
    fclose(f);
    if (n > DOC_FILE_MAX)
        errx(EXIT_TROUBLE, "%s: larger than %u bytes", path, DOC_FILE_MAX);
    buf[n] = '\0';
    *out_len = n;
    return buf;
}

/* Walks |doc|, copying it to |out| with every section body replaced by the
 * generated one, and reports each difference when |report| is set. Returns
 * the number of sections that differ; problems with the markers are fatal. */
static size_t
merge(const char *file, const char *doc, size_t doc_len, const struct sections *all,
      struct text *out, bool report, size_t *out_missing)
{
    const char *pos = doc, *end = doc + doc_len;
    bool seen[SECTIONS_MAX] = {false};
    size_t differ = 0, lineno = 0;
    struct line l;

    while (next_line(&pos, end, &l)) {
        const char *name, *body_start;
        size_t name_len, begin_line;
        bool begin;
        const struct section *s;

        lineno++;
        text_add(out, l.p, l.len);
        text_add(out, "\n", 1);
        if (!marker(&l, &name, &name_len, &begin))
            continue;
        if (!begin)
            errx(EXIT_TROUBLE, "%s:%zu: end marker without a begin", file, lineno);
        s = section_find(all, name, name_len);
        if (s == NULL)
            errx(EXIT_TROUBLE, "%s:%zu: unknown section %.*s", file, lineno, (int)name_len, name);
        if (seen[s - all->s])
            errx(EXIT_TROUBLE, "%s:%zu: section %s appears twice", file, lineno, s->name);
        seen[s - all->s] = true;
        begin_line = lineno + 1;
        body_start = pos;
        for (;;) {
            const char *line_start = pos;
            const char *n2;
            size_t n2_len;
            bool b2;

            if (!next_line(&pos, end, &l))
                errx(EXIT_TROUBLE, "%s: section %s has no end marker", file, s->name);
            lineno++;
            if (!marker(&l, &n2, &n2_len, &b2))
                continue;
            if (b2 || n2_len != strlen(s->name) || memcmp(n2, s->name, n2_len) != 0)
                errx(EXIT_TROUBLE, "%s:%zu: expected the end marker of %s", file, lineno, s->name);
            if ((size_t)(line_start - body_start) != s->body.len ||
                memcmp(body_start, s->body.p, s->body.len) != 0) {
                differ++;
                if (report)
                    print_diff(file, begin_line, s->name, body_start,
                               (size_t)(line_start - body_start), s->body.p, s->body.len);
            }
            text_add(out, s->body.p, s->body.len);
            text_add(out, l.p, l.len);
            text_add(out, "\n", 1);
            break;
        }
    }
    *out_missing = 0;
    for (size_t i = 0; i < all->num; i++) {
        if (seen[i])
            continue;
        differ++;
        (*out_missing)++;
        if (report)
            printf("--- %s: section %s is missing\n+++ add the lines\n"
                   "+%s%s%s\n+%s%s%s\n",
                   file, all->s[i].name, MARK_OPEN, all->s[i].name, MARK_BEGIN, MARK_OPEN,
                   all->s[i].name, MARK_END);
        else
            warnx("%s: section %s is missing; add its marker lines", file, all->s[i].name);
    }
    return differ;
}

/* Replaces |path| by |data| through a temporary file in the same directory,
 * keeping the file's mode. */
static void
write_file(const char *path, const char *data, size_t len)
{
    struct stat st;
    char tmp[4096];
    FILE *f;
    bool ok;
    int fd, e;

    if (stat(path, &st) < 0)
        err(EXIT_TROUBLE, "%s", path);
    if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
        errx(EXIT_TROUBLE, "%s: path too long", path);
    fd = mkstemp(tmp);
    if (fd < 0)
        err(EXIT_TROUBLE, "%s", tmp);
    if (fchmod(fd, st.st_mode & 07777) < 0 || (f = fdopen(fd, "wb")) == NULL) {
        e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        err(EXIT_TROUBLE, "%s", tmp);
    }
    /* One fclose on every path (err() does not return, which a checker
     * reading this file alone cannot know). */
    ok = fwrite(data, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    e = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        errno = e;
        err(EXIT_TROUBLE, "%s", tmp);
    }
    if (rename(tmp, path) < 0) {
        e = errno;
        unlink(tmp);
        errno = e;
        err(EXIT_TROUBLE, "%s", path);
    }
}

static void
usage(void)
{
    fprintf(stderr, "usage: tokenvault-protodoc [--update FILE | --check FILE]\n");
    exit(EXIT_TROUBLE);
}

int
main(int argc, char **argv)
{
    struct sections *all = calloc(1, sizeof(*all));
    struct text out = {NULL, 0, 0};
    char *doc = NULL;
    size_t doc_len = 0, differ, missing = 0;
    int r = 0;

    if (all == NULL)
        err(EXIT_TROUBLE, "out of memory");
    if (argc != 1 && argc != 3)
        usage();
    if (argc == 3 && strcmp(argv[1], "--update") != 0 && strcmp(argv[1], "--check") != 0)
        usage();
    sections_build(all);

    if (argc == 1) {
        for (size_t i = 0; i < all->num; i++)
            printf("%s%s%s\n%s%s%s%s\n%s", MARK_OPEN, all->s[i].name, MARK_BEGIN,
                   all->s[i].body.p, MARK_OPEN, all->s[i].name, MARK_END,
                   i + 1 < all->num ? "\n" : "");
        goto out;
    }
    doc = read_file(argv[2], &doc_len);
    if (strcmp(argv[1], "--check") == 0) {
        differ = merge(argv[2], doc, doc_len, all, &out, true, &missing);
        if (differ > 0) {
            printf("%s: %zu generated section(s) differ from the code; run scripts/protodoc\n",
                   argv[2], differ);
            r = EXIT_DIFFERS;
        }
        goto out;
    }
    (void)merge(argv[2], doc, doc_len, all, &out, false, &missing);
    /* An empty document leaves out.p NULL, which memcmp may not be given. */
    if (out.len != doc_len || (doc_len > 0 && memcmp(out.p, doc, doc_len) != 0)) {
        write_file(argv[2], out.p, out.len);
        printf("%s: updated\n", argv[2]);
    } else {
        printf("%s: up to date\n", argv[2]);
    }
    /* A section without markers cannot be filled in: say so by the status. */
    if (missing > 0)
        r = EXIT_DIFFERS;

out:
    if (fflush(stdout) != 0)
        r = EXIT_TROUBLE;
    text_free(&out);
    free(doc);
    sections_free(all);
    free(all);
    return r;
}
