/*
 * test_frame.c - the length prefix and the 16-byte header: every malformed
 * header gets its exact status, the request id survives for the answer, the
 * largest message of every kind fits a frame, and error responses decode into
 * the error body whatever the opcode.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "api/frame.h"
#include "tests/support/sample.h"

/* A 16-byte header with the given values. */
static void
header(uint8_t out[API_HEADER_LEN], uint16_t magic, uint8_t version, uint8_t flags,
       uint16_t opcode, uint16_t status, uint64_t id)
{
    out[0] = (uint8_t)(magic >> 8);
    out[1] = (uint8_t)magic;
    out[2] = version;
    out[3] = flags;
    out[4] = (uint8_t)(opcode >> 8);
    out[5] = (uint8_t)opcode;
    out[6] = (uint8_t)(status >> 8);
    out[7] = (uint8_t)status;
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)(id >> (56 - 8 * i));
}

static void
expect_frame(const uint8_t *data, size_t len, enum api_direction dir, int want, uint64_t want_id)
{
    struct api_frame f;
    struct api_field_error err;
    int rc = api_frame_decode(&f, data, len, dir, &err);

    if (rc != want)
        fail_msg("got %s want %s", api_strerror(rc), api_strerror(want));
    if (want < 0) {
        assert_null(f.msg);
        assert_int_equal(err.status, (unsigned)-want);
    }
    assert_true(f.hdr.request_id == want_id);
    api_frame_cleanup(&f);
}

static void
test_length_prefix(void **state)
{
    static const uint8_t max[4] = {0x00, 0x01, 0x00, 0x00};
    static const uint8_t over[4] = {0x00, 0x01, 0x00, 0x01};
    static const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    static const uint8_t short_[4] = {0x00, 0x00, 0x00, 0x0f};
    static const uint8_t hdr[4] = {0x00, 0x00, 0x00, 0x10};
    uint32_t len = 0;
    (void)state;

    assert_int_equal(api_frame_length(max, &len), 0);
    assert_int_equal(len, API_FRAME_MAX);
    assert_int_equal(api_frame_length(over, &len), -API_STATUS_TOO_LARGE);
    assert_int_equal(api_frame_length(huge, &len), -API_STATUS_TOO_LARGE);
    assert_int_equal(api_frame_length(short_, &len), -API_STATUS_BAD_REQUEST);
    assert_int_equal(len, API_FRAME_MAX); /* untouched on failure */
    assert_int_equal(api_frame_length(hdr, &len), 0);
    assert_int_equal(len, API_HEADER_LEN);
}

static void
test_header_errors(void **state)
{
    uint8_t h[API_HEADER_LEN + 8];
    const uint64_t id = 0x0102030405060708ULL;
    (void)state;

    /* A PING request with no fields is a whole valid frame. */
    header(h, API_MAGIC, API_VERSION, 0, API_OP_PING, 0, id);
    expect_frame(h, API_HEADER_LEN, API_DIR_REQUEST, 0, id);
    /* Too short for a header. */
    expect_frame(h, API_HEADER_LEN - 1, API_DIR_REQUEST, -API_STATUS_TRUNCATED, 0);
    expect_frame(h, 0, API_DIR_REQUEST, -API_STATUS_TRUNCATED, 0);
    /* Wrong magic ("HT" of an HTTP request, a TLS record). */
    header(h, 0x4854, API_VERSION, 0, API_OP_PING, 0, id);
    expect_frame(h, API_HEADER_LEN, API_DIR_REQUEST, -API_STATUS_BAD_REQUEST, id);
    header(h, 0x1603, API_VERSION, 0, API_OP_PING, 0, id);
    expect_frame(h, API_HEADER_LEN, API_DIR_REQUEST, -API_STATUS_BAD_REQUEST, id);
    /* Versions other than ours. */
    header(h, API_MAGIC, 0, 0, API_OP_PING, 0, id);
    expect_frame(h, API_HEADER_LEN, API_DIR_REQUEST, -API_STATUS_UNSUPPORTED_VERSION, id);
    header(h, API_MAGIC, API_VERSION + 1, 0, API_OP_PING, 0, id);
    expect_frame(h, API_HEADER_LEN, API_DIR_REQUEST, -API_STATUS_UNSUPPORTED_VERSION, id);
    /* Reserved flag bits, each one. */
    for (unsigned bit = 1; bit < 8; bit++) {
        header(h, API_MAGIC, API_VERSION, (uint8_t)(1u << bit), API_OP_PING, 0, id);
        expect_frame(h, API_HEADER_LEN, API_DIR_REQUEST, -API_STATUS_BAD_REQUEST, id);
    }
    /* A response where a request is expected, and a request with a status. */
    header(h, API_MAGIC, API_VERSION, API_FLAG_RESPONSE, API_OP_PING, 0, id);
    expect_frame(h, API_HEADER_LEN, API_DIR_REQUEST, -API_STATUS_BAD_REQUEST, id);
    header(h, API_MAGIC, API_VERSION, 0, API_OP_PING, API_STATUS_NOT_FOUND, id);
    expect_frame(h, API_HEADER_LEN, API_DIR_REQUEST, -API_STATUS_BAD_REQUEST, id);
    /* Unknown opcodes. */
    header(h, API_MAGIC, API_VERSION, 0, 0x0000, 0, id);
    expect_frame(h, API_HEADER_LEN, API_DIR_REQUEST, -API_STATUS_UNKNOWN_OPCODE, id);
    header(h, API_MAGIC, API_VERSION, 0, 0x0107, 0, id);
    expect_frame(h, API_HEADER_LEN, API_DIR_REQUEST, -API_STATUS_UNKNOWN_OPCODE, id);
    /* Field errors after a good header keep the id for the answer. */
    header(h, API_MAGIC, API_VERSION, 0, API_OP_PING, 0, id);
    memset(h + API_HEADER_LEN, 0, 3);
    expect_frame(h, API_HEADER_LEN + 3, API_DIR_REQUEST, -API_STATUS_TRAILING_BYTES, id);
    /* Responses: the flag is required, and the status must be a defined one. */
    header(h, API_MAGIC, API_VERSION, 0, API_OP_STATUS, 0, id);
    expect_frame(h, API_HEADER_LEN, API_DIR_RESPONSE, -API_STATUS_BAD_REQUEST, id);
    header(h, API_MAGIC, API_VERSION, API_FLAG_RESPONSE, API_OP_PING, 999, id);
    expect_frame(h, API_HEADER_LEN, API_DIR_RESPONSE, -API_STATUS_BAD_REQUEST, id);
    /* A frame longer than the maximum, whatever it holds. */
    {
        uint8_t *big = calloc(1, API_FRAME_MAX + 1);

        assert_non_null(big);
        header(big, API_MAGIC, API_VERSION, 0, API_OP_PING, 0, id);
        expect_frame(big, API_FRAME_MAX + 1, API_DIR_REQUEST, -API_STATUS_TOO_LARGE, 0);
        free(big);
    }
}

/* Writes |msg| as a frame and decodes it back; returns the decoded frame. */
static void
write_and_read(const struct api_header *h, const struct api_schema *s, const void *msg,
               enum api_direction dir, struct api_frame *out)
{
    struct api_writer w;
    uint32_t len;
    int rc;

    api_writer_init(&w, API_FRAME_MAX + API_LEN_PREFIX);
    rc = api_frame_write(&w, h, s, msg, NULL);
    if (rc != 0)
        fail_msg("%s: frame write %s", s ? s->name : "-", api_strerror(rc));
    assert_int_equal(api_frame_length(api_writer_data(&w), &len), 0);
    assert_int_equal(len, api_writer_len(&w) - API_LEN_PREFIX);
    rc = api_frame_decode(out, api_writer_data(&w) + API_LEN_PREFIX, len, dir, NULL);
    if (rc != 0)
        fail_msg("%s: frame decode %s", s ? s->name : "-", api_strerror(rc));
    api_writer_cleanup(&w);
}

/* The largest possible message of every operation fits one frame, in both
 * directions, and comes back through the frame layer intact. */
static void
test_largest_messages_fit(void **state)
{
    static const uint16_t ops[] = {
#define OPNUM(name, num, area, verb, role, lower, summary) num,
        API_OP_LIST(OPNUM)
#undef OPNUM
    };
    (void)state;

    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        for (int dir = 0; dir < 2; dir++) {
            const struct api_schema *s =
                dir == 0 ? api_schema_request(ops[i]) : api_schema_response(ops[i]);
            struct api_header h = {API_VERSION, dir ? API_FLAG_RESPONSE : 0, ops[i], 0, i + 1};
            struct api_frame f;
            void *m = malloc(s->size);

            assert_non_null(m);
            assert_int_equal(tv_sample_fill(s, m, 5, TV_SAMPLE_MAX), 0);
            write_and_read(&h, s, m, dir ? API_DIR_RESPONSE : API_DIR_REQUEST, &f);
            assert_int_equal(f.hdr.opcode, ops[i]);
            assert_true(f.hdr.request_id == i + 1);
            assert_ptr_equal(f.schema, s);
            api_frame_cleanup(&f);
            api_frame_cleanup(&f); /* twice is fine */
            api_msg_cleanup(s, m);
            free(m);
        }
    }
}

static void
test_error_response(void **state)
{
    struct api_header req = {API_VERSION, 0, API_OP_CARD_STORE, 0, 77};
    struct api_writer w;
    struct api_frame f;
    const struct api_error_resp *e;
    uint32_t len;
    (void)state;

    api_writer_init(&w, API_FRAME_MAX);
    assert_int_equal(api_frame_write_error(&w, &req, API_STATUS_MISSING_FIELD, API_TAG_PAN,
                                           "required field absent"), 0);
    assert_int_equal(api_frame_length(api_writer_data(&w), &len), 0);
    assert_int_equal(api_frame_decode(&f, api_writer_data(&w) + 4, len, API_DIR_RESPONSE, NULL), 0);
    assert_int_equal(f.hdr.status, API_STATUS_MISSING_FIELD);
    assert_int_equal(f.hdr.flags, API_FLAG_RESPONSE);
    assert_int_equal(f.hdr.opcode, API_OP_CARD_STORE);
    assert_true(f.hdr.request_id == 77);
    assert_ptr_equal(f.schema, api_schema_error());
    e = f.msg;
    assert_string_equal(e->message, "required field absent");
    assert_true(e->has_error_tag);
    assert_int_equal(e->error_tag, API_TAG_PAN);
    assert_false(e->has_rule);
    api_frame_cleanup(&f);

    /* No message given: the status description stands in; no tag, no field. */
    api_writer_reset(&w);
    assert_int_equal(api_frame_write_error(&w, &req, API_STATUS_OVERLOADED, 0, NULL), 0);
    assert_int_equal(api_frame_length(api_writer_data(&w), &len), 0);
    assert_int_equal(api_frame_decode(&f, api_writer_data(&w) + 4, len, API_DIR_RESPONSE, NULL), 0);
    e = f.msg;
    assert_string_equal(e->message, api_status_description(API_STATUS_OVERLOADED));
    assert_false(e->has_error_tag);
    api_frame_cleanup(&f);

    /* An overlong message is cut at a character boundary, never inside a
     * UTF-8 sequence (which the encoder would refuse). */
    {
        char longmsg[API_MESSAGE_MAX + 8];

        memset(longmsg, 'x', API_MESSAGE_MAX - 1);
        memcpy(longmsg + API_MESSAGE_MAX - 1, "\xc3\xa9tail", sizeof("\xc3\xa9tail"));
        api_writer_reset(&w);
        assert_int_equal(api_frame_write_error(&w, &req, API_STATUS_INTERNAL, 0, longmsg), 0);
        assert_int_equal(api_frame_length(api_writer_data(&w), &len), 0);
        assert_int_equal(api_frame_decode(&f, api_writer_data(&w) + 4, len, API_DIR_RESPONSE,
                                          NULL), 0);
        e = f.msg;
        assert_int_equal(strlen(e->message), API_MESSAGE_MAX - 1);
        api_frame_cleanup(&f);
    }
    api_writer_cleanup(&w);
}

/* The writer refuses a header the decoder would refuse; an error response
 * decodes whatever its opcode (the answer to an unknown or unreadable one). */
static void
test_header_rules_both_ways(void **state)
{
    struct api_writer w;
    struct api_frame f;
    uint32_t len;
    const struct api_header bad[] = {
        {API_VERSION + 1, 0, API_OP_PING, 0, 1},
        {API_VERSION, 0x80, API_OP_PING, 0, 1},
        {API_VERSION, 0, API_OP_PING, API_STATUS_NOT_FOUND, 1},
        {API_VERSION, API_FLAG_RESPONSE, API_OP_PING, 999, 1},
        {API_VERSION, 0, 0x7777, 0, 1},
        {API_VERSION, API_FLAG_RESPONSE, 0x7777, 0, 1},
    };
    const struct api_header unknown_op = {API_VERSION, 0, 0x7777, 0, 9};
    (void)state;

    api_writer_init(&w, API_FRAME_MAX);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(api_frame_write(&w, &bad[i], NULL, NULL, NULL), API_ERR_INVALID_ARG);
        assert_int_equal(api_writer_len(&w), 0);
    }
    assert_int_equal(api_frame_write_error(&w, &unknown_op, API_STATUS_OK, 0, "x"),
                     API_ERR_INVALID_ARG);
    assert_int_equal(api_frame_write_error(&w, &unknown_op, 999, 0, "x"), API_ERR_INVALID_ARG);
    assert_int_equal(api_writer_len(&w), 0);
    assert_int_equal(api_frame_write_error(&w, &unknown_op, API_STATUS_UNKNOWN_OPCODE, 0, NULL), 0);
    assert_int_equal(api_frame_length(api_writer_data(&w), &len), 0);
    assert_int_equal(api_frame_decode(&f, api_writer_data(&w) + 4, len, API_DIR_RESPONSE, NULL), 0);
    assert_int_equal(f.hdr.opcode, 0x7777);
    assert_int_equal(f.hdr.status, API_STATUS_UNKNOWN_OPCODE);
    assert_true(f.hdr.request_id == 9);
    assert_ptr_equal(f.schema, api_schema_error());
    api_frame_cleanup(&f);
    api_writer_cleanup(&w);
}

/* A failed frame write leaves the frames before it whole. */
static void
test_write_rolls_back(void **state)
{
    struct api_header h = {API_VERSION, 0, API_OP_CARD_STORE, 0, 1};
    struct api_card_store_req m;
    struct api_writer w;
    size_t first;
    (void)state;

    api_writer_init(&w, 4 * API_FRAME_MAX);
    assert_int_equal(tv_sample_fill(api_schema_request(API_OP_CARD_STORE), &m, 1, TV_SAMPLE_ALL), 0);
    assert_int_equal(api_frame_write(&w, &h, api_schema_request(API_OP_CARD_STORE), &m, NULL), 0);
    first = api_writer_len(&w);
    strcpy(m.pan, "4111x11111111111");
    assert_int_equal(api_frame_write(&w, &h, api_schema_request(API_OP_CARD_STORE), &m, NULL),
                     -API_STATUS_BAD_VALUE);
    assert_int_equal(api_writer_len(&w), first);
    /* And the writer still works. */
    strcpy(m.pan, "4111111111111111");
    assert_int_equal(api_frame_write(&w, &h, api_schema_request(API_OP_CARD_STORE), &m, NULL), 0);
    assert_true(api_writer_len(&w) > first + API_LEN_PREFIX + API_HEADER_LEN);
    api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &m);
    api_writer_cleanup(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_prefix),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_largest_messages_fit),
        cmocka_unit_test(test_error_response),
        cmocka_unit_test(test_write_rolls_back),
        cmocka_unit_test(test_header_rules_both_ways),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
