/*
 * test_codec.c - every message survives encode/decode unchanged, and every
 * way a field can be wrong gets its own exact status, names the field, and
 * leaves the output struct untouched (zeroed).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/msg.h"
#include "tests/support/sample.h"

#define BODY_MAX (API_FRAME_MAX * 2)

/* Encodes |msg| of schema |s| into |w| (reset first); fails the test on error. */
static void
encode_ok(struct api_writer *w, const struct api_schema *s, const void *msg)
{
    struct api_field_error err;
    int rc;

    api_writer_reset(w);
    rc = api_msg_encode(w, s, msg, &err);
    if (rc != 0)
        fail_msg("%s: encode failed %s at tag 0x%04x (%s)", s->name, api_strerror(rc), err.tag,
                 err.message ? err.message : "");
}

static int
all_zero(const void *p, size_t len)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < len; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

/* Decodes |len| bytes with schema |s| and asserts the status and tag. On a
 * failure the struct must come back all zero. */
static void
expect_decode(const struct api_schema *s, const uint8_t *body, size_t len, int want,
              uint16_t want_tag)
{
    struct api_reader r;
    struct api_field_error err;
    void *out = malloc(s->size);
    int rc;

    assert_non_null(out);
    memset(out, 0xa5, s->size);
    api_reader_init(&r, body, len);
    rc = api_msg_decode(s, &r, out, &err);
    if (rc != want)
        fail_msg("%s: got %s, want %s (tag 0x%04x: %s)", s->name, api_strerror(rc),
                 api_strerror(want), err.tag, err.message ? err.message : "");
    if (want != 0) {
        assert_int_equal(err.status, (unsigned)-want);
        assert_int_equal(err.tag, want_tag);
        assert_non_null(err.message);
        assert_true(all_zero(out, s->size));
    }
    api_msg_cleanup(s, out);
    assert_true(all_zero(out, s->size));
    free(out);
}

/* ---- round trips -------------------------------------------------------------- */

static void
round_trip(const struct api_schema *s, unsigned seed, enum tv_sample_mode mode)
{
    struct api_writer w1, w2;
    struct api_reader r;
    struct api_field_error err;
    void *in = malloc(s->size), *out = malloc(s->size);
    int rc;

    assert_non_null(in);
    assert_non_null(out);
    assert_int_equal(tv_sample_fill(s, in, seed, mode), 0);
    api_writer_init(&w1, BODY_MAX);
    api_writer_init(&w2, BODY_MAX);
    encode_ok(&w1, s, in);
    api_reader_init(&r, api_writer_data(&w1), api_writer_len(&w1));
    rc = api_msg_decode(s, &r, out, &err);
    if (rc != 0)
        fail_msg("%s mode %d: decode of own encoding failed: %s tag 0x%04x", s->name, mode,
                 api_strerror(rc), err.tag);
    encode_ok(&w2, s, out);
    assert_int_equal(api_writer_len(&w1), api_writer_len(&w2));
    if (api_writer_len(&w1) > 0)
        assert_memory_equal(api_writer_data(&w1), api_writer_data(&w2), api_writer_len(&w1));
    api_msg_cleanup(s, in);
    api_msg_cleanup(s, out);
    api_writer_cleanup(&w1);
    api_writer_cleanup(&w2);
    free(in);
    free(out);
}

static void
test_round_trip_every_message(void **state)
{
    size_t n;
    const struct api_schema *const *all = api_schema_all(&n);
    (void)state;

    for (size_t i = 0; i < n; i++) {
        for (unsigned seed = 0; seed < 8; seed++) {
            round_trip(all[i], seed, TV_SAMPLE_REQUIRED);
            round_trip(all[i], seed, TV_SAMPLE_ALL);
        }
        round_trip(all[i], 1, TV_SAMPLE_MAX);
        round_trip(all[i], 1, TV_SAMPLE_MIN);
    }
}

/* The decoded values are the sent ones, not merely re-encodable. */
static void
test_decoded_values(void **state)
{
    const struct api_schema *s = api_schema_request(API_OP_CARD_STORE);
    struct api_card_store_req in, out;
    struct api_writer w;
    struct api_reader r;
    (void)state;

    memset(&in, 0, sizeof(in));
    strcpy(in.merchant, "m-1001");
    strcpy(in.customer_number, "cust-42");
    strcpy(in.pan, "4111111111111111");
    in.exp_month = 12;
    in.exp_year = 2030;
    in.has_holder = true;
    strcpy(in.holder, "Zo\xc3\xab \xc3\x9cnal \xf0\x9f\x92\xb3"); /* ë, Ü and a 4-byte emoji */
    in.consent = true;
    in.verification = API_VERIFICATION_CVC2_3DS;
    api_writer_init(&w, BODY_MAX);
    encode_ok(&w, s, &in);
    api_reader_init(&r, api_writer_data(&w), api_writer_len(&w));
    assert_int_equal(api_msg_decode(s, &r, &out, NULL), 0);
    assert_string_equal(out.merchant, "m-1001");
    assert_string_equal(out.customer_number, "cust-42");
    assert_string_equal(out.pan, "4111111111111111");
    assert_int_equal(out.exp_month, 12);
    assert_int_equal(out.exp_year, 2030);
    assert_true(out.has_holder);
    assert_string_equal(out.holder, in.holder);
    assert_false(out.has_email);
    assert_false(out.has_need_cvc);
    assert_true(out.consent);
    assert_int_equal(out.verification, API_VERIFICATION_CVC2_3DS);
    /* Secrets are wiped with the struct. */
    api_msg_cleanup(s, &out);
    assert_true(all_zero(&out, sizeof(out)));
    api_writer_cleanup(&w);
}

/* ---- hostile inputs ------------------------------------------------------------- */

/* A valid CARD_STORE request body, every field present, built once. */
static uint8_t base[4096];
static size_t base_len;

static int
setup_base(void **state)
{
    const struct api_schema *s = api_schema_request(API_OP_CARD_STORE);
    struct api_card_store_req m;
    struct api_writer w;
    (void)state;

    if (tv_sample_fill(s, &m, 3, TV_SAMPLE_ALL) != 0)
        return -1;
    api_writer_init(&w, sizeof(base));
    if (api_msg_encode(&w, s, &m, NULL) != 0)
        return -1;
    base_len = api_writer_len(&w);
    memcpy(base, api_writer_data(&w), base_len);
    api_writer_cleanup(&w);
    api_msg_cleanup(s, &m);
    return 0;
}

/* Copies |in| field by field into |w|, dropping the field |tag| (value NULL)
 * or replacing its value, and appending |extra| raw bytes at the end. */
static void
rebuild(struct api_writer *w, const uint8_t *in, size_t in_len, uint16_t tag, const void *value,
        size_t value_len)
{
    struct api_reader r, v;
    uint16_t t;

    api_writer_reset(w);
    api_reader_init(&r, in, in_len);
    while (api_reader_len(&r) > 0) {
        assert_int_equal(api_reader_get_u16(&r, &t), 0);
        assert_int_equal(api_reader_get_u32_prefixed(&r, &v), 0);
        if (t == tag && value == NULL)
            continue;
        assert_int_equal(api_writer_put_u16(w, t), 0);
        if (t == tag) {
            assert_int_equal(api_writer_put_u32(w, (uint32_t)value_len), 0);
            assert_int_equal(api_writer_put_bytes(w, value, value_len), 0);
        } else {
            assert_int_equal(api_writer_put_u32(w, (uint32_t)v.len), 0);
            assert_int_equal(api_writer_put_bytes(w, v.data, v.len), 0);
        }
    }
}

static void
put_field(struct api_writer *w, uint16_t tag, const void *value, size_t len)
{
    assert_int_equal(api_writer_put_u16(w, tag), 0);
    assert_int_equal(api_writer_put_u32(w, (uint32_t)len), 0);
    assert_int_equal(api_writer_put_bytes(w, value, len), 0);
}

/* Replaces the value of |tag| in the base CARD_STORE body and expects |want|. */
static void
expect_store_field(uint16_t tag, const void *value, size_t len, int want)
{
    struct api_writer w;

    api_writer_init(&w, BODY_MAX);
    rebuild(&w, base, base_len, tag, value, len);
    expect_decode(api_schema_request(API_OP_CARD_STORE), api_writer_data(&w), api_writer_len(&w),
                  want, want != 0 ? tag : 0);
    api_writer_cleanup(&w);
}

#define STR(s) (s), (sizeof(s) - 1)

static void
test_base_is_valid(void **state)
{
    (void)state;
    expect_decode(api_schema_request(API_OP_CARD_STORE), base, base_len, 0, 0);
}

static void
test_framing_errors(void **state)
{
    const struct api_schema *s = api_schema_request(API_OP_CARD_STORE);
    uint8_t buf[sizeof(base) + 8];
    struct api_writer w;
    (void)state;

    /* 1..5 bytes after the last whole field. */
    for (size_t extra = 1; extra < API_FIELD_HEADER_LEN; extra++) {
        memcpy(buf, base, base_len);
        memset(buf + base_len, 0, extra);
        expect_decode(s, buf, base_len + extra, -API_STATUS_TRAILING_BYTES, 0);
    }
    /* Every truncation of the body. A cut inside a field is TRUNCATED or
     * TRAILING_BYTES; a cut between fields leaves a shorter body that lacks
     * required fields, or only optional ones at the end (valid). */
    for (size_t cut = 1; cut < base_len; cut++) {
        struct api_reader r;
        struct api_field_error err;
        struct api_card_store_req out;
        int rc;

        api_reader_init(&r, base, cut);
        rc = api_msg_decode(s, &r, &out, &err);
        if (rc != -API_STATUS_TRUNCATED && rc != -API_STATUS_TRAILING_BYTES &&
            rc != -API_STATUS_MISSING_FIELD && rc != 0)
            fail_msg("cut at %zu of %zu: %s", cut, base_len, api_strerror(rc));
        if (rc < 0)
            assert_true(all_zero(&out, sizeof(out)));
        api_msg_cleanup(s, &out);
    }
    /* A declared length far past the end, with the tag reported. */
    api_writer_init(&w, BODY_MAX);
    assert_int_equal(api_writer_put_u16(&w, API_TAG_MERCHANT), 0);
    assert_int_equal(api_writer_put_u32(&w, 0xffffffffu), 0);
    assert_int_equal(api_writer_put_bytes(&w, (const uint8_t *)"abc", 3), 0);
    expect_decode(s, api_writer_data(&w), api_writer_len(&w), -API_STATUS_TRUNCATED,
                  API_TAG_MERCHANT);
    /* More fields than API_FIELDS_MAX, refused before any is looked at. */
    api_writer_reset(&w);
    for (unsigned i = 0; i <= API_FIELDS_MAX; i++)
        put_field(&w, API_TAG_MERCHANT, "m", 1);
    expect_decode(s, api_writer_data(&w), api_writer_len(&w), -API_STATUS_TOO_MANY_FIELDS,
                  API_TAG_MERCHANT);
    /* An empty body: the first required field is missing. */
    expect_decode(s, base, 0, -API_STATUS_MISSING_FIELD, API_TAG_MERCHANT);
    api_writer_cleanup(&w);
}

static void
test_field_set_errors(void **state)
{
    const struct api_schema *s = api_schema_request(API_OP_CARD_STORE);
    struct api_writer w;
    static const uint16_t prohibited[] = {API_TAG_CVC, API_TAG_PIN_BLOCK, API_TAG_TRACK_DATA,
                                          API_TAG_CRYPTOGRAM};
    (void)state;

    api_writer_init(&w, BODY_MAX);
    /* Unknown tag: undefined anywhere, and defined but not in this message. */
    rebuild(&w, base, base_len, 0, NULL, 0);
    put_field(&w, 0x7777, "x", 1);
    expect_decode(s, api_writer_data(&w), api_writer_len(&w), -API_STATUS_UNKNOWN_FIELD, 0x7777);
    rebuild(&w, base, base_len, 0, NULL, 0);
    put_field(&w, API_TAG_NONCE, "0123456789abcdef", 16);
    expect_decode(s, api_writer_data(&w), api_writer_len(&w), -API_STATUS_UNKNOWN_FIELD,
                  API_TAG_NONCE);
    /* CVC, PIN block, track data, cryptogram: refused by name, wherever they
     * appear in the frame, before anything else about them is checked. */
    for (size_t i = 0; i < sizeof(prohibited) / sizeof(prohibited[0]); i++) {
        api_writer_reset(&w);
        put_field(&w, prohibited[i], "", 0);
        assert_int_equal(api_writer_put_bytes(&w, base, base_len), 0);
        expect_decode(s, api_writer_data(&w), api_writer_len(&w), -API_STATUS_PROHIBITED_DATA,
                      prohibited[i]);
    }
    /* The same field twice, even with the same value. */
    rebuild(&w, base, base_len, 0, NULL, 0);
    put_field(&w, API_TAG_CONSENT, "\x01", 1);
    expect_decode(s, api_writer_data(&w), api_writer_len(&w), -API_STATUS_DUPLICATE_FIELD,
                  API_TAG_CONSENT);
    /* Each required field missing in turn; optional ones may go. */
    for (size_t i = 0; i < s->num_fields; i++) {
        const struct api_field *f = &s->fields[i];

        rebuild(&w, base, base_len, f->tag, NULL, 0);
        expect_decode(s, api_writer_data(&w), api_writer_len(&w),
                      (f->flags & API_FIELD_REQUIRED) ? -API_STATUS_MISSING_FIELD : 0,
                      (f->flags & API_FIELD_REQUIRED) ? f->tag : 0);
    }
    api_writer_cleanup(&w);
}

static void
test_value_errors(void **state)
{
    char long_id[API_ID_MAX + 2];
    (void)state;

    /* BOOL */
    expect_store_field(API_TAG_CONSENT, "", 0, -API_STATUS_BAD_LENGTH);
    expect_store_field(API_TAG_CONSENT, "\x00\x01", 2, -API_STATUS_BAD_LENGTH);
    expect_store_field(API_TAG_CONSENT, "\x02", 1, -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_CONSENT, "\x00", 1, 0);
    /* U8 with a range: months 1..12 */
    expect_store_field(API_TAG_EXP_MONTH, "\x00", 1, -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_EXP_MONTH, "\x0d", 1, -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_EXP_MONTH, "\x00\x0c", 2, -API_STATUS_BAD_LENGTH);
    expect_store_field(API_TAG_EXP_MONTH, "\x0c", 1, 0);
    /* U16 with a range: years 2000..2099 */
    expect_store_field(API_TAG_EXP_YEAR, "\x07\xcf", 2, -API_STATUS_BAD_VALUE); /* 1999 */
    expect_store_field(API_TAG_EXP_YEAR, "\x08\x34", 2, -API_STATUS_BAD_VALUE); /* 2100 */
    expect_store_field(API_TAG_EXP_YEAR, "\x07\xd0", 2, 0);                     /* 2000 */
    expect_store_field(API_TAG_EXP_YEAR, "\x07", 1, -API_STATUS_BAD_LENGTH);
    /* ENUM: 0 is never valid, nor one past the last name */
    expect_store_field(API_TAG_VERIFICATION, "\x00", 1, -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_VERIFICATION, "\x06", 1, -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_VERIFICATION, "\x05", 1, 0);
    /* DIGITS: the PAN is 12..19 ASCII digits */
    expect_store_field(API_TAG_PAN, STR("41111111111"), -API_STATUS_BAD_LENGTH);
    expect_store_field(API_TAG_PAN, STR("41111111111111111111"), -API_STATUS_BAD_LENGTH);
    expect_store_field(API_TAG_PAN, STR("4111-1111-1111"), -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_PAN, STR("4111111111111111 "), -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_PAN, "411111111111\0" "111", 16, -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_PAN, STR("411111111111"), 0);
    expect_store_field(API_TAG_PAN, STR("4111111111111111111"), 0);
    /* ID: printable ASCII, 1..64 */
    memset(long_id, 'a', sizeof(long_id));
    expect_store_field(API_TAG_MERCHANT, "", 0, -API_STATUS_BAD_LENGTH);
    expect_store_field(API_TAG_MERCHANT, long_id, API_ID_MAX + 1, -API_STATUS_BAD_LENGTH);
    expect_store_field(API_TAG_MERCHANT, long_id, API_ID_MAX, 0);
    expect_store_field(API_TAG_MERCHANT, STR("m 1"), -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_MERCHANT, STR("m\x7f"), -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_MERCHANT, STR("m\xc3\xa9"), -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_MERCHANT, "m\0", 2, -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_CUSTOMER_NUMBER, long_id, API_CUSTOMER_NUMBER_MAX + 1,
                       -API_STATUS_BAD_LENGTH);
    /* TEXT: UTF-8, shortest form, no surrogates, no controls */
    expect_store_field(API_TAG_HOLDER, STR("J\xc3"), -API_STATUS_BAD_VALUE);           /* cut */
    expect_store_field(API_TAG_HOLDER, STR("\xc0\xaf"), -API_STATUS_BAD_VALUE);        /* overlong / */
    expect_store_field(API_TAG_HOLDER, STR("\xe0\x80\xaf"), -API_STATUS_BAD_VALUE);    /* overlong / */
    expect_store_field(API_TAG_HOLDER, STR("\xed\xa0\x80"), -API_STATUS_BAD_VALUE);    /* surrogate */
    expect_store_field(API_TAG_HOLDER, STR("\xf4\x90\x80\x80"), -API_STATUS_BAD_VALUE); /* > U+10FFFF */
    expect_store_field(API_TAG_HOLDER, STR("\xff"), -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_HOLDER, STR("\x80"), -API_STATUS_BAD_VALUE);
    expect_store_field(API_TAG_HOLDER, "J\0D", 3, -API_STATUS_BAD_VALUE);                /* NUL */
    expect_store_field(API_TAG_HOLDER, STR("J\nD"), -API_STATUS_BAD_VALUE);             /* log injection */
    expect_store_field(API_TAG_HOLDER, STR("J\x1b[31mD"), -API_STATUS_BAD_VALUE);        /* escape */
    expect_store_field(API_TAG_HOLDER, STR("J\x7f"), -API_STATUS_BAD_VALUE);             /* DEL */
    expect_store_field(API_TAG_HOLDER, STR("J\xc2\x85"), -API_STATUS_BAD_VALUE);         /* C1 NEL */
    expect_store_field(API_TAG_HOLDER, STR("Zo\xc3\xab \xe4\xb8\xad \xf0\x9f\x92\xb3"), 0);
    expect_store_field(API_TAG_HOLDER, "", 0, -API_STATUS_BAD_LENGTH);
    expect_store_field(API_TAG_EMAIL, STR("a@"), -API_STATUS_BAD_LENGTH);
    /* ID-typed optional field with a value, and its bad length */
    expect_store_field(API_TAG_INITIAL_TXN_ID, long_id, API_ID_MAX + 1, -API_STATUS_BAD_LENGTH);
}

/* Types not in CARD_STORE, through the messages that carry them. */
static void
expect_field_in(uint16_t opcode, int response, unsigned seed, uint16_t tag, const void *value,
                size_t len, int want)
{
    const struct api_schema *s = response ? api_schema_response(opcode) : api_schema_request(opcode);
    struct api_writer w1, w2;
    void *m = malloc(s->size);

    assert_non_null(m);
    assert_int_equal(tv_sample_fill(s, m, seed, TV_SAMPLE_ALL), 0);
    api_writer_init(&w1, BODY_MAX);
    api_writer_init(&w2, BODY_MAX);
    encode_ok(&w1, s, m);
    rebuild(&w2, api_writer_data(&w1), api_writer_len(&w1), tag, value, len);
    expect_decode(s, api_writer_data(&w2), api_writer_len(&w2), want, want != 0 ? tag : 0);
    api_msg_cleanup(s, m);
    free(m);
    api_writer_cleanup(&w1);
    api_writer_cleanup(&w2);
}

static void
test_value_errors_other_types(void **state)
{
    static const uint8_t sig31[31];
    static const uint8_t hash33[33];
    (void)state;

    /* CURRENCY: exactly three capital letters */
    expect_field_in(API_OP_QR_ISSUE, 0, 1, API_TAG_CURRENCY, STR("eur"), -API_STATUS_BAD_VALUE);
    expect_field_in(API_OP_QR_ISSUE, 0, 1, API_TAG_CURRENCY, STR("EURO"), -API_STATUS_BAD_LENGTH);
    expect_field_in(API_OP_QR_ISSUE, 0, 1, API_TAG_CURRENCY, STR("E1R"), -API_STATUS_BAD_VALUE);
    expect_field_in(API_OP_QR_ISSUE, 0, 1, API_TAG_CURRENCY, STR("BYN"), 0);
    /* U64 amount: 15 digits of minor units at most */
    expect_field_in(API_OP_QR_ISSUE, 0, 1, API_TAG_AMOUNT, "\x00\x03\x8d\x7e\xa4\xc6\x80\x00", 8,
                    -API_STATUS_BAD_VALUE); /* 10^15 */
    expect_field_in(API_OP_QR_ISSUE, 0, 1, API_TAG_AMOUNT, "\x00\x03\x8d\x7e\xa4\xc6\x7f\xff", 8, 0);
    expect_field_in(API_OP_QR_ISSUE, 0, 1, API_TAG_AMOUNT, "\x00\x00\x00\x01", 4,
                    -API_STATUS_BAD_LENGTH);
    /* U32 lifetime 1..30 days */
    expect_field_in(API_OP_QR_ISSUE, 0, 1, API_TAG_LIFETIME, "\x00\x00\x00\x00", 4,
                    -API_STATUS_BAD_VALUE);
    expect_field_in(API_OP_QR_ISSUE, 0, 1, API_TAG_LIFETIME, "\x00\x27\x8d\x01", 4,
                    -API_STATUS_BAD_VALUE); /* 2592001 */
    /* DATE: a real calendar date */
    expect_field_in(API_OP_MIT_AUTHORIZE, 0, 1, API_TAG_DATE, "\x07\xeb\x02\x1d", 4,
                    -API_STATUS_BAD_VALUE); /* 2027-02-29 */
    expect_field_in(API_OP_MIT_AUTHORIZE, 0, 1, API_TAG_DATE, "\x07\xec\x02\x1d", 4, 0); /* 2028-02-29 */
    expect_field_in(API_OP_MIT_AUTHORIZE, 0, 1, API_TAG_DATE, "\x08\x34\x02\x1d", 4,
                    -API_STATUS_BAD_VALUE); /* 2100-02-29 */
    expect_field_in(API_OP_MIT_AUTHORIZE, 0, 1, API_TAG_DATE, "\x07\xd0\x02\x1d", 4, 0); /* 2000-02-29 */
    expect_field_in(API_OP_MIT_AUTHORIZE, 0, 1, API_TAG_DATE, "\x07\xeb\x0d\x01", 4,
                    -API_STATUS_BAD_VALUE); /* month 13 */
    expect_field_in(API_OP_MIT_AUTHORIZE, 0, 1, API_TAG_DATE, "\x07\xeb\x04\x1f", 4,
                    -API_STATUS_BAD_VALUE); /* April 31 */
    expect_field_in(API_OP_MIT_AUTHORIZE, 0, 1, API_TAG_DATE, "\x07\xeb\x01\x00", 4,
                    -API_STATUS_BAD_VALUE); /* day 0 */
    expect_field_in(API_OP_MIT_AUTHORIZE, 0, 1, API_TAG_DATE, "\x07\xcf\x01\x01", 4,
                    -API_STATUS_BAD_VALUE); /* 1999 */
    expect_field_in(API_OP_MIT_AUTHORIZE, 0, 1, API_TAG_DATE, "\x07\xeb\x01", 3,
                    -API_STATUS_BAD_LENGTH);
    /* BYTES of fixed length */
    expect_field_in(API_OP_SESSION_CHECK, 0, 1, API_TAG_SIGNATURE, sig31, sizeof(sig31),
                    -API_STATUS_BAD_LENGTH);
    expect_field_in(API_OP_SESSION_CHECK, 0, 1, API_TAG_ACCESS_TOKEN_HASH, hash33, sizeof(hash33),
                    -API_STATUS_BAD_LENGTH);
    expect_field_in(API_OP_SESSION_CHECK, 0, 1, API_TAG_DEVICE_DATA, "", 0, -API_STATUS_BAD_LENGTH);
    /* BLOB: the packet may not be empty */
    expect_field_in(API_OP_WALLET_DECRYPT, 0, 1, API_TAG_PACKET, "", 0, -API_STATUS_BAD_LENGTH);
    /* A CVC is accepted where the protocol allows it, and checked. */
    expect_field_in(API_OP_CIT_AUTHORIZE, 0, 1, API_TAG_CVC, STR("12"), -API_STATUS_BAD_LENGTH);
    expect_field_in(API_OP_CIT_AUTHORIZE, 0, 1, API_TAG_CVC, STR("12a"), -API_STATUS_BAD_VALUE);
    expect_field_in(API_OP_CIT_AUTHORIZE, 0, 1, API_TAG_CVC, STR("1234"), 0);
}

static void
test_list_errors(void **state)
{
    const struct api_schema *s = api_schema_response(API_OP_CARD_LIST);
    struct api_card_list_resp m;
    struct api_writer w, item;
    size_t mark;
    (void)state;

    api_writer_init(&w, BODY_MAX);
    api_writer_init(&item, BODY_MAX);
    /* One valid item body. */
    assert_int_equal(tv_sample_fill(api_schema_response(API_OP_CARD_LIST), &m, 2, TV_SAMPLE_REQUIRED), 0);
    assert_true(m.num_cards >= 1);
    {
        const struct api_field *f = api_schema_field(s, API_TAG_CARDS);

        encode_ok(&item, f->item, &m.cards[0]);
    }
    api_msg_cleanup(s, &m);

    /* An empty list is a list of no cards. */
    put_field(&w, API_TAG_CARDS, "", 0);
    expect_decode(s, api_writer_data(&w), api_writer_len(&w), 0, 0);

    /* API_LIST_ITEMS_MAX items pass; one more is refused, counted from the
     * bytes present. */
    for (int extra = 0; extra <= 1; extra++) {
        api_writer_reset(&w);
        assert_int_equal(api_writer_put_u16(&w, API_TAG_CARDS), 0);
        assert_int_equal(api_writer_begin_u32(&w, &mark), 0);
        for (unsigned i = 0; i < API_LIST_ITEMS_MAX + (unsigned)extra; i++) {
            assert_int_equal(api_writer_put_u32(&w, (uint32_t)api_writer_len(&item)), 0);
            assert_int_equal(api_writer_put_bytes(&w, api_writer_data(&item), api_writer_len(&item)), 0);
        }
        assert_int_equal(api_writer_end_u32(&w, mark), 0);
        expect_decode(s, api_writer_data(&w), api_writer_len(&w),
                      extra ? -API_STATUS_TOO_MANY_FIELDS : 0, extra ? API_TAG_CARDS : 0);
    }

    /* An item whose length runs past the list. */
    api_writer_reset(&w);
    assert_int_equal(api_writer_put_u16(&w, API_TAG_CARDS), 0);
    assert_int_equal(api_writer_begin_u32(&w, &mark), 0);
    assert_int_equal(api_writer_put_u32(&w, (uint32_t)api_writer_len(&item) + 1), 0);
    assert_int_equal(api_writer_put_bytes(&w, api_writer_data(&item), api_writer_len(&item)), 0);
    assert_int_equal(api_writer_end_u32(&w, mark), 0);
    expect_decode(s, api_writer_data(&w), api_writer_len(&w), -API_STATUS_TRUNCATED, API_TAG_CARDS);

    /* 1..3 bytes after the last item. */
    for (size_t extra = 1; extra < 4; extra++) {
        api_writer_reset(&w);
        assert_int_equal(api_writer_put_u16(&w, API_TAG_CARDS), 0);
        assert_int_equal(api_writer_begin_u32(&w, &mark), 0);
        assert_int_equal(api_writer_put_u32(&w, (uint32_t)api_writer_len(&item)), 0);
        assert_int_equal(api_writer_put_bytes(&w, api_writer_data(&item), api_writer_len(&item)), 0);
        assert_int_equal(api_writer_put_bytes(&w, (const uint8_t *)"\0\0\0", extra), 0);
        assert_int_equal(api_writer_end_u32(&w, mark), 0);
        expect_decode(s, api_writer_data(&w), api_writer_len(&w), -API_STATUS_TRAILING_BYTES,
                      API_TAG_CARDS);
    }

    /* An item missing a field, an item with a field of another message, and a
     * second item failing after a first good one (its array is freed). */
    {
        struct api_writer bad;
        static const uint16_t drop[] = {API_TAG_TOKEN, API_TAG_NEED_CVC};

        api_writer_init(&bad, BODY_MAX);
        for (size_t d = 0; d < 2; d++) {
            rebuild(&bad, api_writer_data(&item), api_writer_len(&item), drop[d], NULL, 0);
            api_writer_reset(&w);
            assert_int_equal(api_writer_put_u16(&w, API_TAG_CARDS), 0);
            assert_int_equal(api_writer_begin_u32(&w, &mark), 0);
            assert_int_equal(api_writer_put_u32(&w, (uint32_t)api_writer_len(&item)), 0);
            assert_int_equal(api_writer_put_bytes(&w, api_writer_data(&item), api_writer_len(&item)), 0);
            assert_int_equal(api_writer_put_u32(&w, (uint32_t)api_writer_len(&bad)), 0);
            assert_int_equal(api_writer_put_bytes(&w, api_writer_data(&bad), api_writer_len(&bad)), 0);
            assert_int_equal(api_writer_end_u32(&w, mark), 0);
            expect_decode(s, api_writer_data(&w), api_writer_len(&w), -API_STATUS_MISSING_FIELD,
                          drop[d]);
        }
        rebuild(&bad, api_writer_data(&item), api_writer_len(&item), 0, NULL, 0);
        put_field(&bad, API_TAG_PAN, "4111111111111111", 16);
        api_writer_reset(&w);
        assert_int_equal(api_writer_put_u16(&w, API_TAG_CARDS), 0);
        assert_int_equal(api_writer_begin_u32(&w, &mark), 0);
        assert_int_equal(api_writer_put_u32(&w, (uint32_t)api_writer_len(&bad)), 0);
        assert_int_equal(api_writer_put_bytes(&w, api_writer_data(&bad), api_writer_len(&bad)), 0);
        assert_int_equal(api_writer_end_u32(&w, mark), 0);
        expect_decode(s, api_writer_data(&w), api_writer_len(&w), -API_STATUS_UNKNOWN_FIELD,
                      API_TAG_PAN);
        api_writer_cleanup(&bad);
    }
    /* The list field itself twice. */
    api_writer_reset(&w);
    put_field(&w, API_TAG_CARDS, "", 0);
    put_field(&w, API_TAG_CARDS, "", 0);
    expect_decode(s, api_writer_data(&w), api_writer_len(&w), -API_STATUS_DUPLICATE_FIELD,
                  API_TAG_CARDS);
    api_writer_cleanup(&w);
    api_writer_cleanup(&item);
}

/* ---- the encoder refuses what the decoder would refuse ------------------------- */

static void
expect_encode(const struct api_schema *s, const void *msg, size_t max, int want, uint16_t want_tag)
{
    struct api_writer w;
    struct api_field_error err;
    int rc;

    api_writer_init(&w, max);
    rc = api_msg_encode(&w, s, msg, &err);
    if (rc != want)
        fail_msg("%s: encode got %s want %s", s->name, api_strerror(rc), api_strerror(want));
    if (want_tag != 0)
        assert_int_equal(err.tag, want_tag);
    api_writer_cleanup(&w);
}

/* ---- CARD_GET's optional list of mappings ------------------------------------- */

/* A card_info with |n| mappings (items[] holds at least n), encoded, decoded
 * and compared value by value; with none the field is absent, not empty. */
static void
mappings_round_trip(struct api_card_mapping_item *items, size_t n)
{
    const struct api_schema *s = api_schema_response(API_OP_CARD_GET);
    struct api_card_info in, out;
    struct api_field_error err;
    struct api_writer w;
    struct api_reader r, v;
    size_t seen = 0;
    uint16_t tag;

    assert_int_equal(tv_sample_fill(s, &in, 3, TV_SAMPLE_ALL), 0);
    assert_true(in.num_mappings > 0); /* the sample fills the list too */
    api_msg_cleanup(s, &in);
    assert_int_equal(tv_sample_fill(s, &in, 3, TV_SAMPLE_REQUIRED), 0);
    in.mappings = n > 0 ? items : NULL;
    in.num_mappings = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(items[i].client_card_id, sizeof(items[i].client_card_id), "app-card-%zu", i);
        items[i].email_bound = i % 2 == 0;
    }
    /* Even the longest list fits a frame. */
    api_writer_init(&w, API_FRAME_MAX - API_HEADER_LEN);
    encode_ok(&w, s, &in);
    api_reader_init(&r, api_writer_data(&w), api_writer_len(&w));
    while (api_reader_len(&r) > 0) {
        assert_int_equal(api_reader_get_u16(&r, &tag), 0);
        assert_int_equal(api_reader_get_u32_prefixed(&r, &v), 0);
        if (tag == API_TAG_MAPPINGS)
            seen++;
    }
    assert_int_equal(seen, n > 0 ? 1 : 0);
    api_reader_init(&r, api_writer_data(&w), api_writer_len(&w));
    assert_int_equal(api_msg_decode(s, &r, &out, &err), 0);
    assert_int_equal(out.num_mappings, n);
    if (n == 0)
        assert_null(out.mappings);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(out.mappings[i].client_card_id, items[i].client_card_id);
        assert_int_equal(out.mappings[i].email_bound, items[i].email_bound);
    }
    assert_string_equal(out.token, in.token);
    api_msg_cleanup(s, &out); /* frees the decoder's array (ASan: no leak) */
    api_writer_cleanup(&w);
}

static void
test_card_mappings(void **state)
{
    const struct api_schema *s = api_schema_response(API_OP_CARD_GET);
    const struct api_schema *is = api_schema_field(s, API_TAG_MAPPINGS)->item;
    struct api_card_mapping_item items[API_CARD_MAPPINGS_MAX + 1];
    struct api_card_info m;
    struct api_writer w, info, item, bad;
    size_t mark;
    (void)state;

    assert_true(API_CARD_MAPPINGS_MAX <= API_LIST_ITEMS_MAX);
    assert_int_equal(api_tag_info(API_TAG_MAPPINGS)->max, API_CARD_MAPPINGS_MAX);
    assert_true(api_schema_field(s, API_TAG_MAPPINGS)->flags & API_FIELD_OPTIONAL);
    /* CARD_UPDATE answers the same struct. */
    assert_ptr_equal(api_schema_response(API_OP_CARD_UPDATE), s);
    memset(items, 0, sizeof(items));
    mappings_round_trip(items, 0);
    mappings_round_trip(items, 1);
    mappings_round_trip(items, API_CARD_MAPPINGS_MAX);

    /* One more than the limit: the encoder refuses it, and so does the
     * decoder, counting the items present. */
    assert_int_equal(tv_sample_fill(s, &m, 3, TV_SAMPLE_REQUIRED), 0);
    for (size_t i = 0; i < API_CARD_MAPPINGS_MAX + 1; i++) {
        snprintf(items[i].client_card_id, sizeof(items[i].client_card_id), "c%zu", i);
        items[i].email_bound = true;
    }
    m.mappings = items;
    m.num_mappings = API_CARD_MAPPINGS_MAX + 1;
    expect_encode(s, &m, BODY_MAX, -API_STATUS_TOO_MANY_FIELDS, API_TAG_MAPPINGS);
    m.num_mappings = 1;
    m.mappings = NULL;
    expect_encode(s, &m, BODY_MAX, -API_STATUS_BAD_VALUE, API_TAG_MAPPINGS);

    api_writer_init(&w, BODY_MAX);
    api_writer_init(&info, BODY_MAX);
    api_writer_init(&item, BODY_MAX);
    api_writer_init(&bad, BODY_MAX);
    m.num_mappings = 0;
    encode_ok(&info, s, &m);
    encode_ok(&item, is, &items[0]);
    for (int extra = 0; extra <= 1; extra++) {
        rebuild(&w, api_writer_data(&info), api_writer_len(&info), 0, NULL, 0);
        assert_int_equal(api_writer_put_u16(&w, API_TAG_MAPPINGS), 0);
        assert_int_equal(api_writer_begin_u32(&w, &mark), 0);
        for (unsigned i = 0; i < API_CARD_MAPPINGS_MAX + (unsigned)extra; i++) {
            assert_int_equal(api_writer_put_u32(&w, (uint32_t)api_writer_len(&item)), 0);
            assert_int_equal(api_writer_put_bytes(&w, api_writer_data(&item), api_writer_len(&item)), 0);
        }
        assert_int_equal(api_writer_end_u32(&w, mark), 0);
        expect_decode(s, api_writer_data(&w), api_writer_len(&w),
                      extra ? -API_STATUS_TOO_MANY_FIELDS : 0, extra ? API_TAG_MAPPINGS : 0);
    }
    /* Present but empty: an optional list is absent instead, so it has one
     * encoding. */
    rebuild(&w, api_writer_data(&info), api_writer_len(&info), 0, NULL, 0);
    put_field(&w, API_TAG_MAPPINGS, "", 0);
    expect_decode(s, api_writer_data(&w), api_writer_len(&w), -API_STATUS_BAD_LENGTH,
                  API_TAG_MAPPINGS);
    /* An item without emailBound; an item carrying an e-mail (never in this
     * answer). */
    {
        static const uint16_t drop[] = {API_TAG_CLIENT_CARD_ID, API_TAG_EMAIL_BOUND};

        for (size_t d = 0; d < 3; d++) {
            rebuild(&bad, api_writer_data(&item), api_writer_len(&item), d < 2 ? drop[d] : 0,
                    NULL, 0);
            if (d == 2)
                put_field(&bad, API_TAG_EMAIL, "a@b.example", 11);
            rebuild(&w, api_writer_data(&info), api_writer_len(&info), 0, NULL, 0);
            assert_int_equal(api_writer_put_u16(&w, API_TAG_MAPPINGS), 0);
            assert_int_equal(api_writer_begin_u32(&w, &mark), 0);
            assert_int_equal(api_writer_put_u32(&w, (uint32_t)api_writer_len(&item)), 0);
            assert_int_equal(api_writer_put_bytes(&w, api_writer_data(&item), api_writer_len(&item)), 0);
            assert_int_equal(api_writer_put_u32(&w, (uint32_t)api_writer_len(&bad)), 0);
            assert_int_equal(api_writer_put_bytes(&w, api_writer_data(&bad), api_writer_len(&bad)), 0);
            assert_int_equal(api_writer_end_u32(&w, mark), 0);
            expect_decode(s, api_writer_data(&w), api_writer_len(&w),
                          d < 2 ? -API_STATUS_MISSING_FIELD : -API_STATUS_UNKNOWN_FIELD,
                          d < 2 ? drop[d] : API_TAG_EMAIL);
        }
    }
    api_msg_cleanup(s, &m);
    api_writer_cleanup(&bad);
    api_writer_cleanup(&item);
    api_writer_cleanup(&info);
    api_writer_cleanup(&w);
}

static void
test_encoder_refuses_invalid(void **state)
{
    const struct api_schema *s = api_schema_request(API_OP_CARD_STORE);
    const struct api_schema *ls = api_schema_response(API_OP_CARD_LIST);
    struct api_card_store_req m;
    struct api_card_list_resp l;
    struct api_card_item items[API_LIST_ITEMS_MAX + 1];
    (void)state;

    assert_int_equal(tv_sample_fill(s, &m, 1, TV_SAMPLE_REQUIRED), 0);
    expect_encode(s, &m, BODY_MAX, 0, 0);
    strcpy(m.pan, "4111x11111111111");
    expect_encode(s, &m, BODY_MAX, -API_STATUS_BAD_VALUE, API_TAG_PAN);
    strcpy(m.pan, "4111111111111111");
    memset(m.merchant, 'a', sizeof(m.merchant)); /* no terminator */
    expect_encode(s, &m, BODY_MAX, -API_STATUS_BAD_LENGTH, API_TAG_MERCHANT);
    m.merchant[0] = '\0';
    expect_encode(s, &m, BODY_MAX, -API_STATUS_BAD_LENGTH, API_TAG_MERCHANT);
    strcpy(m.merchant, "m-1");
    m.verification = 0;
    expect_encode(s, &m, BODY_MAX, -API_STATUS_BAD_VALUE, API_TAG_VERIFICATION);
    m.verification = API_VERIFICATION_NONE;
    m.has_holder = true; /* flagged present but empty */
    expect_encode(s, &m, BODY_MAX, -API_STATUS_BAD_LENGTH, API_TAG_HOLDER);
    m.has_holder = false;
    expect_encode(s, &m, 20, -API_STATUS_TOO_LARGE, 0);
    api_msg_cleanup(s, &m);

    memset(&l, 0, sizeof(l));
    assert_int_equal(tv_sample_fill(api_schema_field(ls, API_TAG_CARDS)->item, &items[0], 1,
                                    TV_SAMPLE_REQUIRED), 0);
    for (size_t i = 1; i < API_LIST_ITEMS_MAX + 1; i++)
        items[i] = items[0];
    l.cards = items;
    l.num_cards = API_LIST_ITEMS_MAX + 1;
    expect_encode(ls, &l, BODY_MAX, -API_STATUS_TOO_MANY_FIELDS, API_TAG_CARDS);
    l.num_cards = API_LIST_ITEMS_MAX;
    expect_encode(ls, &l, BODY_MAX, 0, 0);
    l.cards = NULL;
    expect_encode(ls, &l, BODY_MAX, -API_STATUS_BAD_VALUE, API_TAG_CARDS);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_message),
        cmocka_unit_test(test_decoded_values),
        cmocka_unit_test(test_base_is_valid),
        cmocka_unit_test(test_framing_errors),
        cmocka_unit_test(test_field_set_errors),
        cmocka_unit_test(test_value_errors),
        cmocka_unit_test(test_value_errors_other_types),
        cmocka_unit_test(test_list_errors),
        cmocka_unit_test(test_encoder_refuses_invalid),
        cmocka_unit_test(test_card_mappings),
    };
    return cmocka_run_group_tests(tests, setup_base, NULL);
}
