/*
 * test_cli_args.c - the command line into request structs: every type's
 * accepted forms and its hostile ones, the secret rule (never on argv, only
 * secret fields in the secret lines), required fields, the packet bounds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "api/msg.h"
#include "tools/cli_args.h"

static struct cli_request req;
static char why[CLI_WHY_MAX];

static void
start(const char *area, const char *verb)
{
    const struct cli_op *op = cli_op_find(area, verb);

    assert_non_null(op);
    cli_request_cleanup(&req);
    assert_int_equal(cli_request_init(&req, op), 0);
    why[0] = '\0';
}

static int
set(const char *option, const char *value)
{
    const struct api_field *f = cli_option_find(req.schema, option);

    assert_non_null(f);
    return cli_request_set(&req, f, value, CLI_SRC_ARGV, why);
}

static int
teardown(void **state)
{
    (void)state;
    cli_request_cleanup(&req);
    return 0;
}

static void
test_ops_from_table(void **state)
{
    size_t num = 0;
    const struct cli_op *ops = cli_op_all(&num);
    (void)state;

    assert_int_equal(num, 23);
    for (size_t i = 0; i < num; i++) {
        assert_ptr_equal(cli_op_find(ops[i].area, ops[i].verb), &ops[i]);
        assert_non_null(api_schema_request(ops[i].opcode));
        assert_true(cli_area_exists(ops[i].area));
    }
    assert_int_equal(cli_op_find("card", "store")->opcode, API_OP_CARD_STORE);
    assert_int_equal(cli_op_find("map", "resolve")->opcode, API_OP_MAP_RESOLVE);
    assert_int_equal(cli_op_find("officer", "unseal")->role, API_ROLE_OFFICER);
    assert_null(cli_op_find("card", "steal"));
    assert_null(cli_op_find("cards", "store"));
    assert_false(cli_area_exists("cards"));
}

static void
test_option_names(void **state)
{
    char name[CLI_OPTION_NAME_MAX];
    const struct api_schema *s = api_schema_request(API_OP_MANDATE_CREATE);
    (void)state;

    assert_int_equal(cli_option_name(name, API_TAG_CUSTOMER_NUMBER), 0);
    assert_string_equal(name, "customer-number");
    assert_int_equal(cli_option_name(name, API_TAG_MIN_AMOUNT), 0);
    assert_string_equal(name, "min-amount");
    assert_int_equal(cli_option_name(name, 0x7777), CLI_ERR_USAGE);
    assert_int_equal(cli_option_find(s, "min-amount")->tag, API_TAG_MIN_AMOUNT);
    assert_int_equal(cli_option_find(s, "recurring-max-date")->tag, API_TAG_RECURRING_MAX_DATE);
    assert_null(cli_option_find(s, "MIN_AMOUNT"));
    assert_null(cli_option_find(s, "--min-amount"));
    assert_null(cli_option_find(s, "pan"));
    /* Lists are answers, never options. */
    assert_null(cli_option_find(api_schema_response(API_OP_CARD_LIST), "cards"));
}

static void
test_bool_and_integers(void **state)
{
    const struct api_card_store_req *m;
    static const char *const bad_ints[] = {"", "+1", "-1", " 1", "1 ", "0x1", "1e3", "13", "0",
                                           "99999999999999999999999"};
    (void)state;

    start("card", "store");
    m = req.msg;
    assert_int_equal(set("consent", "yes"), 0);
    assert_true(m->consent);
    assert_int_equal(set("need-cvc", "0"), 0);
    assert_true(m->has_need_cvc);
    assert_false(m->need_cvc);
    assert_int_equal(set("exp-month", "12"), 0);
    assert_int_equal(m->exp_month, 12);
    assert_int_equal(set("exp-year", "2099"), 0);
    assert_int_equal(m->exp_year, 2099);

    start("card", "store");
    assert_int_equal(set("consent", "maybe"), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "--consent"));
    assert_int_equal(set("consent", "TRUE"), CLI_ERR_USAGE);
    for (size_t i = 0; i < sizeof(bad_ints) / sizeof(bad_ints[0]); i++) {
        assert_int_equal(set("exp-month", bad_ints[i]), CLI_ERR_USAGE);
        assert_non_null(strstr(why, "--exp-month: must be a decimal integer in 1..12"));
    }
    assert_int_equal(set("exp-year", "1999"), CLI_ERR_USAGE);
    assert_int_equal(set("exp-year", "2100"), CLI_ERR_USAGE);
    /* A refused value leaves the option free to be given correctly. */
    assert_int_equal(set("exp-year", "2030"), 0);
    assert_int_equal(set("exp-year", "2031"), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "given twice"));
}

static void
test_amounts(void **state)
{
    const struct api_qr_issue_req *m;
    (void)state;

    start("qr", "issue");
    m = req.msg;
    assert_int_equal(set("amount", "999999999999999"), 0);
    assert_int_equal(m->amount, API_AMOUNT_MAX);
    start("qr", "issue");
    m = req.msg;
    assert_int_equal(set("amount", "1000000000000000"), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "minor units"));
    assert_int_equal(set("amount", "12.50"), CLI_ERR_USAGE);
    assert_int_equal(set("amount", "18446744073709551616"), CLI_ERR_USAGE);
    assert_int_equal(set("lifetime", "0"), CLI_ERR_USAGE);
    assert_int_equal(set("lifetime", "2592001"), CLI_ERR_USAGE);
    assert_int_equal(set("lifetime", "2592000"), 0);
    assert_int_equal(m->lifetime, API_LIFETIME_MAX);
}

static void
test_enum_currency_id(void **state)
{
    const struct api_card_store_req *m;
    const struct api_qr_issue_req *q;
    char long_id[API_CUSTOMER_NUMBER_MAX + 2];
    (void)state;

    start("card", "store");
    m = req.msg;
    assert_int_equal(set("verification", "3ds"), 0);
    assert_int_equal(m->verification, API_VERIFICATION_THREE_DS);
    start("card", "store");
    m = req.msg;
    assert_int_equal(set("verification", "3DS"), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "none, cvc2_3ds, 3ds, cvc2, device"));
    assert_int_equal(set("verification", "1"), CLI_ERR_USAGE);
    assert_int_equal(set("verification", ""), CLI_ERR_USAGE);

    assert_int_equal(set("merchant", ""), CLI_ERR_USAGE);
    assert_int_equal(set("merchant", "m 1"), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "printable ASCII"));
    assert_int_equal(set("merchant", "m\x7f"), CLI_ERR_USAGE);
    assert_int_equal(set("merchant", "m\xc3\xa9"), CLI_ERR_USAGE);
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_int_equal(set("customer-number", long_id), CLI_ERR_USAGE);
    long_id[API_CUSTOMER_NUMBER_MAX] = '\0';
    assert_int_equal(set("customer-number", long_id), 0);
    assert_string_equal(m->customer_number, long_id);

    start("qr", "issue");
    q = req.msg;
    assert_int_equal(set("currency", "EU"), CLI_ERR_USAGE);
    assert_int_equal(set("currency", "EURO"), CLI_ERR_USAGE);
    assert_int_equal(set("currency", "E1R"), CLI_ERR_USAGE);
    assert_int_equal(set("currency", "eur"), 0);
    assert_string_equal(q->currency, "EUR");
}

static void
test_dates(void **state)
{
    const struct api_mandate_create_req *m;
    static const char *const bad[] = {"2027-02-29", "29.02.2027", "2028-13-01", "2028-00-10",
                                      "2028-01-32", "1999-12-31", "2028/01/01", "2028-1-1",
                                      "28-01-2028", "2028-01-01x", "", "20280101",
                                      "2028-0a-01", "31.04.2028"};
    (void)state;

    start("mandate", "create");
    m = req.msg;
    assert_int_equal(set("recurring-max-date", "29.02.2028"), 0);
    assert_int_equal(m->recurring_max_date.year, 2028);
    assert_int_equal(m->recurring_max_date.month, 2);
    assert_int_equal(m->recurring_max_date.day, 29);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        start("mandate", "create");
        assert_int_equal(set("recurring-max-date", bad[i]), CLI_ERR_USAGE);
        assert_non_null(strstr(why, "YYYY-MM-DD or DD.MM.YYYY"));
    }
    start("mit", "authorize");
    assert_int_equal(set("date", "2000-01-01"), 0);
    assert_int_equal(((struct api_mit_authorize_req *)req.msg)->date.year, 2000);
}

static void
test_bytes(void **state)
{
    const struct api_session_init_req *m;
    char hex[2 * API_HASH_LEN + 3];
    (void)state;

    start("session", "init");
    m = req.msg;
    memset(hex, 'A', 2 * API_HASH_LEN);
    hex[2 * API_HASH_LEN] = '\0';
    hex[0] = 'f';
    hex[1] = '0';
    assert_int_equal(set("access-token-hash", hex), 0);
    assert_int_equal(m->access_token_hash.len, API_HASH_LEN);
    assert_int_equal(m->access_token_hash.data[0], 0xf0);
    assert_int_equal(m->access_token_hash.data[31], 0xaa);

    start("session", "init");
    m = req.msg;
    hex[2 * API_HASH_LEN - 2] = '\0';
    assert_int_equal(set("access-token-hash", hex), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "must be 32 bytes (64 hex digits)"));
    hex[2 * API_HASH_LEN - 2] = 'A';
    hex[2 * API_HASH_LEN] = 'A';
    hex[2 * API_HASH_LEN + 1] = 'A';
    hex[2 * API_HASH_LEN + 2] = '\0';
    assert_int_equal(set("access-token-hash", hex), CLI_ERR_USAGE);
    hex[2 * API_HASH_LEN + 1] = '\0';
    assert_int_equal(set("access-token-hash", hex), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "even"));
    hex[2 * API_HASH_LEN] = '\0';
    hex[7] = 'g';
    assert_int_equal(set("access-token-hash", hex), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "not hex"));
    assert_int_equal(set("device-data", ""), CLI_ERR_USAGE);
    assert_int_equal(set("device-data", "00"), 0);
    assert_int_equal(m->device_data.len, 1);
}

static void
test_secret_never_on_argv(void **state)
{
    (void)state;

    start("card", "store");
    assert_int_equal(set("pan", "4111111111111111"), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "--pan: secret"));
    assert_non_null(strstr(why, "stdin"));
    /* The value is never repeated in the message. */
    assert_null(strstr(why, "4111"));
    assert_int_equal(set("holder", "A B"), CLI_ERR_USAGE);
    assert_int_equal(set("email", "a@b.c"), CLI_ERR_USAGE);
    start("cit", "authorize");
    assert_int_equal(set("cvc", "123"), CLI_ERR_USAGE);
    start("officer", "unseal");
    assert_int_equal(set("share", "0102"), CLI_ERR_USAGE);
    assert_int_equal(((struct api_unseal_share_req *)req.msg)->share.len, 0);
}

static int
secrets(const char *text)
{
    return cli_request_set_secrets(&req, text, strlen(text), why);
}

static void
test_secret_lines(void **state)
{
    const struct api_card_store_req *m;
    bool required = false;
    char big[CLI_SECRETS_MAX + 2];
    (void)state;

    start("card", "store");
    m = req.msg;
    assert_true(cli_request_has_secrets(&req, &required));
    assert_true(required);
    assert_int_equal(secrets("# card\n\npan=4111111111111111\r\nholder=J\xc3\xa9 Doe=x\n"
                             "email=a@b.c"),
                     0);
    assert_string_equal(m->pan, "4111111111111111");
    assert_true(m->has_holder);
    assert_string_equal(m->holder, "J\xc3\xa9 Doe=x");
    assert_string_equal(m->email, "a@b.c");

    start("card", "store");
    assert_int_equal(secrets("pan=1\n"), CLI_ERR_USAGE);
    assert_null(strstr(why, "=1"));
    assert_int_equal(secrets("pan=41111111111111x1\n"), CLI_ERR_USAGE);
    assert_int_equal(secrets("4111111111111111\n"), CLI_ERR_USAGE);
    assert_null(strstr(why, "4111"));
    assert_int_equal(secrets("cvc=123\n"), CLI_ERR_USAGE);   /* not in card store */
    assert_int_equal(secrets("merchant=m1\n"), CLI_ERR_USAGE); /* not a secret */
    assert_non_null(strstr(why, "not a secret"));
    assert_int_equal(secrets("holder=a\x01" "b\n"), CLI_ERR_USAGE);
    assert_int_equal(cli_request_set_secrets(&req, "pan=41\0x", 8, why), CLI_ERR_USAGE);
    assert_int_equal(secrets("pan=4111111111111111\npan=4111111111111111\n"), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "given twice"));
    memset(big, '#', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(secrets(big), CLI_ERR_USAGE);

    start("officer", "unseal");
    assert_int_equal(secrets("share=01ff\n"), 0);
    assert_int_equal(((struct api_unseal_share_req *)req.msg)->share.len, 2);
    start("service", "ping");
    assert_false(cli_request_has_secrets(&req, &required));
    assert_false(required);
    start("map", "resolve");
    assert_true(cli_request_has_secrets(&req, &required));
    assert_false(required);
}

static void
test_required_and_check(void **state)
{
    (void)state;

    start("card", "store");
    assert_int_equal(cli_request_check(&req, why), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "--merchant: required"));
    assert_int_equal(set("merchant", "m1"), 0);
    assert_int_equal(set("customer-number", "c1"), 0);
    assert_int_equal(cli_request_check(&req, why), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "--pan: required: give it on stdin"));
    assert_int_equal(secrets("pan=4111111111111111\n"), 0);
    assert_int_equal(set("exp-month", "1"), 0);
    assert_int_equal(set("exp-year", "2030"), 0);
    assert_int_equal(set("verification", "none"), 0);
    assert_int_equal(cli_request_check(&req, why), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "--consent"));
    assert_int_equal(set("consent", "false"), 0);
    assert_int_equal(cli_request_check(&req, why), 0);

    start("service", "status");
    assert_int_equal(cli_request_check(&req, why), 0);
    start("service", "ping");
    assert_int_equal(cli_request_check(&req, why), 0);
}

static void
test_blob(void **state)
{
    const struct api_field *f;
    const struct api_wallet_decrypt_req *m;
    uint8_t *data;
    (void)state;

    start("wallet", "decrypt");
    m = req.msg;
    f = cli_option_find(req.schema, "packet");
    assert_non_null(f);
    assert_int_equal(set("packet", "x.json"), CLI_ERR_USAGE);
    assert_int_equal(cli_request_set_blob(&req, f, malloc(1), 0, why), CLI_ERR_USAGE);
    data = malloc(API_PACKET_MAX + 1);
    assert_non_null(data);
    assert_int_equal(cli_request_set_blob(&req, f, data, API_PACKET_MAX + 1, why), CLI_ERR_USAGE);
    assert_non_null(strstr(why, "1..60000"));
    data = malloc(3);
    assert_non_null(data);
    memcpy(data, "{ }", 3);
    assert_int_equal(cli_request_set_blob(&req, f, data, 3, why), 0);
    assert_ptr_equal(m->packet.data, data);
    assert_int_equal(m->packet.len, 3);
    data = malloc(3);
    assert_non_null(data);
    assert_int_equal(cli_request_set_blob(&req, f, data, 3, why), CLI_ERR_USAGE);
    /* Not a BLOB field. */
    data = malloc(3);
    assert_non_null(data);
    assert_int_equal(cli_request_set_blob(&req, cli_option_find(req.schema, "merchant"), data, 3,
                                          why),
                     CLI_ERR_USAGE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_ops_from_table, teardown),
        cmocka_unit_test_teardown(test_option_names, teardown),
        cmocka_unit_test_teardown(test_bool_and_integers, teardown),
        cmocka_unit_test_teardown(test_amounts, teardown),
        cmocka_unit_test_teardown(test_enum_currency_id, teardown),
        cmocka_unit_test_teardown(test_dates, teardown),
        cmocka_unit_test_teardown(test_bytes, teardown),
        cmocka_unit_test_teardown(test_secret_never_on_argv, teardown),
        cmocka_unit_test_teardown(test_secret_lines, teardown),
        cmocka_unit_test_teardown(test_required_and_check, teardown),
        cmocka_unit_test_teardown(test_blob, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
