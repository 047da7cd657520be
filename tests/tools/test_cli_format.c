/*
 * test_cli_format.c - message structs as CLI text and JSON: every field of
 * every message formats to text the command line parses back to the same
 * bytes; the JSON object and the lines have the documented shape.
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
#include "tools/cli_args.h"
#include "tools/cli_format.h"

/* Formats every present field of |msg| and parses it back into a fresh
 * struct through cli_request_set, then compares the members byte for byte. */
static void
roundtrip(const struct api_schema *s, const void *msg)
{
    size_t num = 0;
    struct cli_request r = {cli_op_all(&num), s, calloc(1, s->size), 0, NULL, 0};
    char why[CLI_WHY_MAX];

    assert_non_null(r.msg);
    for (size_t i = 0; i < s->num_fields; i++) {
        const struct api_field *f = &s->fields[i];
        const struct api_tag_info *info = api_tag_info(f->tag);
        const uint8_t *a = (const uint8_t *)msg, *b = r.msg;
        char *text = NULL;

        assert_non_null(info);
        if (!api_field_present(f, a))
            continue;
        if (info->type == API_T_LIST) {
            const uint8_t *items;
            size_t n;

            memcpy(&items, a + f->off, sizeof(items));
            memcpy(&n, a + f->aux, sizeof(n));
            for (size_t k = 0; k < n; k++)
                roundtrip(f->item, items + k * f->item->size);
            assert_int_equal(cli_value_format(&text, f, msg), CLI_ERR_USAGE);
            continue;
        }
        assert_int_equal(cli_value_format(&text, f, msg), 0);
        if (info->type == API_T_BLOB) {
            struct api_slice sl;

            memcpy(&sl, a + f->off, sizeof(sl));
            assert_int_equal(strlen(text), 2 * sl.len);
            cli_text_free(text);
            continue;
        }
        assert_int_equal(cli_request_set(&r, f, text,
                                         (info->flags & API_TAG_SECRET) ? CLI_SRC_SECRET
                                                                        : CLI_SRC_ARGV,
                                         why),
                         0);
        assert_memory_equal(a + f->off, b + f->off, f->size);
        if (f->flags & API_FIELD_OPTIONAL)
            assert_true(*(const bool *)(b + f->aux));
        cli_text_free(text);
    }
    cli_request_cleanup(&r);
}

static void
test_every_field_round_trips(void **state)
{
    static const enum tv_sample_mode modes[] = {TV_SAMPLE_REQUIRED, TV_SAMPLE_ALL, TV_SAMPLE_MAX,
                                                TV_SAMPLE_MIN};
    size_t num = 0;
    const struct api_schema *const *all = api_schema_all(&num);
    (void)state;

    assert_true(num > 20);
    for (size_t i = 0; i < num; i++) {
        for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
            for (unsigned seed = 1; seed < 14; seed += 6) {
                void *msg = calloc(1, all[i]->size);

                assert_non_null(msg);
                assert_int_equal(tv_sample_fill(all[i], msg, seed, modes[m]), 0);
                roundtrip(all[i], msg);
                api_msg_cleanup(all[i], msg);
                free(msg);
            }
        }
    }
}

static char *
dump(json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);

    assert_non_null(s);
    return s;
}

static void
test_json_shape(void **state)
{
    struct api_card_item items[2];
    struct api_card_list_resp list = {items, 2};
    struct api_ping_resp ping = {.has_echo = true, .server_time = UINT64_MAX};
    struct api_mandate_info mandate = {0};
    json_t *obj = NULL;
    char *s;
    (void)state;

    memset(items, 0, sizeof(items));
    strcpy(items[0].token, "t1");
    strcpy(items[0].bin, "411111");
    strcpy(items[0].last4, "1111");
    items[0].brand = API_BRAND_VISA;
    items[0].exp_month = 3;
    items[0].exp_year = 2030;
    items[0].active = true;
    items[1] = items[0];
    strcpy(items[1].token, "t2");
    items[1].need_cvc = true;
    assert_int_equal(cli_msg_json(&obj, api_schema_response(API_OP_CARD_LIST), &list), 0);
    s = dump(obj);
    assert_string_equal(s, "{\"cards\":["
                           "{\"serverCardId\":\"t1\",\"bin\":\"411111\",\"last4\":\"1111\","
                           "\"brand\":\"visa\",\"expMonth\":3,\"expYear\":2030,\"active\":true,"
                           "\"needCVC\":false},"
                           "{\"serverCardId\":\"t2\",\"bin\":\"411111\",\"last4\":\"1111\","
                           "\"brand\":\"visa\",\"expMonth\":3,\"expYear\":2030,\"active\":true,"
                           "\"needCVC\":true}]}");
    free(s);
    json_decref(obj);

    /* Above INT64_MAX a JSON number would lose digits: a string. */
    ping.echo.len = 2;
    ping.echo.data[0] = 0xAB;
    ping.echo.data[1] = 0x01;
    assert_int_equal(cli_msg_json(&obj, api_schema_response(API_OP_PING), &ping), 0);
    s = dump(obj);
    assert_string_equal(s, "{\"echo\":\"ab01\",\"serverTime\":\"18446744073709551615\"}");
    free(s);
    json_decref(obj);

    /* Absent optional fields are left out; dates and enums by name. */
    strcpy(mandate.mandate_id, "md-1");
    strcpy(mandate.token, "t1");
    mandate.kind = API_MANDATE_KIND_UNSCHEDULED;
    mandate.status = API_MANDATE_ACTIVE;
    mandate.max_amount = 1050;
    strcpy(mandate.currency, "EUR");
    mandate.recurring_max_date = (struct api_date){2027, 1, 31};
    mandate.created_at = 1700000000;
    assert_int_equal(cli_msg_json(&obj, api_schema_response(API_OP_MANDATE_GET), &mandate), 0);
    s = dump(obj);
    assert_string_equal(s, "{\"mandateId\":\"md-1\",\"serverCardId\":\"t1\","
                           "\"mandateKind\":\"unscheduled\",\"mandateStatus\":\"active\","
                           "\"RecurringMaxAmount\":1050,\"currency\":\"EUR\","
                           "\"RecurringMaxDate\":\"2027-01-31\",\"chargeCount\":0,"
                           "\"createdAt\":1700000000}");
    free(s);
    json_decref(obj);

    assert_int_equal(cli_msg_json(&obj, api_schema_response(API_OP_CARD_DELETE), &mandate), 0);
    s = dump(obj);
    assert_string_equal(s, "{}");
    free(s);
    json_decref(obj);
}

static void
test_lines(void **state)
{
    struct api_key_item keys[1];
    struct api_key_status_resp ks = {keys, 1};
    struct api_card_list_resp none = {NULL, 0};
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    (void)state;

    memset(keys, 0, sizeof(keys));
    strcpy(keys[0].label, "vault-kek-v1");
    keys[0].key_class = API_KEY_CLASS_AES;
    keys[0].version = 1;
    keys[0].state = API_KEY_STATE_CURRENT;
    keys[0].kcv.len = 3;
    memcpy(keys[0].kcv.data, "\x01\x02\xfe", 3);
    f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(cli_msg_print(f, api_schema_response(API_OP_KEY_STATUS), &ks), 0);
    assert_int_equal(cli_msg_print(f, api_schema_response(API_OP_CARD_LIST), &none), 0);
    assert_int_equal(fclose(f), 0);
    assert_string_equal(buf, "keys[1]:\n"
                             "  label: vault-kek-v1\n"
                             "  keyClass: aes\n"
                             "  keyVersion: 1\n"
                             "  keyState: current\n"
                             "  kcv: 0102fe\n"
                             "cards: none\n");
    free(buf);
}

static void
test_option_help(void **state)
{
    const struct api_schema *s = api_schema_request(API_OP_CARD_STORE);
    char *text = NULL;
    (void)state;

    assert_int_equal(cli_option_help(&text, api_schema_field(s, API_TAG_VERIFICATION)), 0);
    assert_string_equal(text, "enum: none | cvc2_3ds | 3ds | cvc2 | device");
    cli_text_free(text);
    assert_int_equal(cli_option_help(&text, api_schema_field(s, API_TAG_PAN)), 0);
    assert_string_equal(text, "digits: 12..19");
    cli_text_free(text);
    s = api_schema_request(API_OP_WALLET_DECRYPT);
    assert_int_equal(cli_option_help(&text, api_schema_field(s, API_TAG_PACKET)), 0);
    assert_non_null(strstr(text, "1..60000 bytes read from FILE"));
    cli_text_free(text);
    assert_int_equal(cli_option_help(&text, api_schema_field(s, API_TAG_AMOUNT)), 0);
    assert_string_equal(text, "integer 0..999999999999999 (integer minor units)");
    cli_text_free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_field_round_trips),
        cmocka_unit_test(test_json_shape),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_option_help),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
