/*
 * test_schema.c - the tables of api/proto.h and api/schema.c agree with each
 * other and with the structs of api/msg.h: every member has the size its
 * tag's type and limit demand, every opcode has both messages, names and
 * numbers are unique, and data that must never be stored has no field to
 * arrive in except where the protocol allows it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "api/msg.h"

/* The size a struct member must have for a tag. */
static void
check_member(const struct api_schema *s, const struct api_field *f)
{
    const struct api_tag_info *info = api_tag_info(f->tag);
    size_t want = 0;

    assert_non_null(info);
    switch (info->type) {
    case API_T_BOOL: want = sizeof(bool); break;
    case API_T_U8:
    case API_T_ENUM: want = 1; break;
    case API_T_U16: want = 2; break;
    case API_T_U32: want = 4; break;
    case API_T_U64: want = 8; break;
    case API_T_TEXT:
    case API_T_ID:
    case API_T_DIGITS: want = (size_t)info->max + 1; break;
    case API_T_CURRENCY: want = API_CURRENCY_LEN + 1; break;
    case API_T_DATE: want = sizeof(struct api_date); break;
    case API_T_BLOB: want = sizeof(struct api_slice); break;
    case API_T_BYTES:
        /* API_BYTES(max): a size_t and max bytes, padded to size_t alignment. */
        want = sizeof(size_t) + ((size_t)info->max + sizeof(size_t) - 1) / sizeof(size_t) *
                                    sizeof(size_t);
        break;
    case API_T_LIST:
        want = sizeof(void *);
        assert_non_null(f->item);
        for (size_t i = 0; i < f->item->num_fields; i++)
            assert_int_not_equal(api_tag_info(f->item->fields[i].tag)->type, API_T_LIST);
        break;
    }
    if (f->size != want)
        fail_msg("%s: member for %s is %u bytes, its type needs %zu", s->name, info->name, f->size,
                 want);
    assert_true(f->off + f->size <= s->size);
    assert_true((f->flags & API_FIELD_REQUIRED) != (f->flags & API_FIELD_OPTIONAL));
    if (f->flags & API_FIELD_OPTIONAL)
        assert_int_not_equal(f->aux, f->off);
    if (info->type == API_T_LIST) {
        assert_true(info->max <= API_LIST_ITEMS_MAX);
        /* An optional list is absent when empty: its tag may not allow an
         * empty one too, or one message would have two encodings. */
        if (f->flags & API_FIELD_OPTIONAL)
            assert_true(info->min >= 1);
        else
            assert_int_equal(info->min, 0);
    }
}

static void
test_schemas_match_structs(void **state)
{
    size_t n;
    const struct api_schema *const *all = api_schema_all(&n);
    (void)state;

    assert_true(n > 30);
    for (size_t i = 0; i < n; i++) {
        const struct api_schema *s = all[i];

        assert_true(s->num_fields <= API_FIELDS_MAX);
        for (size_t k = 0; k < s->num_fields; k++) {
            check_member(s, &s->fields[k]);
            for (size_t j = k + 1; j < s->num_fields; j++)
                assert_int_not_equal(s->fields[k].tag, s->fields[j].tag);
        }
    }
}

static void
test_every_opcode_has_messages(void **state)
{
    static const uint16_t ops[] = {
#define OPNUM(name, num, area, verb, role, lower, summary) num,
        API_OP_LIST(OPNUM)
#undef OPNUM
    };
    size_t msgs = 0;
    (void)state;

#define COUNT(op, lower, req, resp) msgs++;
    API_MSG_LIST(COUNT)
#undef COUNT
    assert_int_equal(msgs, sizeof(ops) / sizeof(ops[0]));
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        assert_non_null(api_schema_request(ops[i]));
        assert_non_null(api_schema_response(ops[i]));
        for (size_t k = i + 1; k < sizeof(ops) / sizeof(ops[0]); k++)
            assert_int_not_equal(ops[i], ops[k]);
    }
    assert_null(api_schema_request(0x0000));
    assert_null(api_schema_response(0xffff));
}

static void
test_tags_sorted_and_enums_complete(void **state)
{
    size_t n;
    const struct api_tag_info *tags = api_tag_all(&n);
    (void)state;

    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            assert_true(tags[i - 1].tag < tags[i].tag);
        assert_ptr_equal(api_tag_info(tags[i].tag), &tags[i]);
        assert_true(tags[i].min <= tags[i].max);
        for (size_t k = i + 1; k < n; k++) {
            assert_string_not_equal(tags[i].name, tags[k].name);
            assert_string_not_equal(tags[i].wire, tags[k].wire);
        }
        if (tags[i].type == API_T_ENUM) {
            assert_non_null(tags[i].enum_names);
            assert_int_equal(tags[i].min, 1);
            assert_null(api_enum_name(tags[i].tag, 0));
            assert_null(api_enum_name(tags[i].tag, (unsigned)tags[i].max + 1));
            for (unsigned v = 1; v <= tags[i].max; v++) {
                const char *name = api_enum_name(tags[i].tag, v);

                assert_non_null(name); /* values run 1..n without gaps */
                assert_int_equal(api_enum_from_name(tags[i].tag, name), (int)v);
            }
        } else {
            assert_null(tags[i].enum_names);
        }
        /* A value of every length-limited type fits a frame with room for
         * the rest. */
        if (tags[i].type == API_T_TEXT || tags[i].type == API_T_ID ||
            tags[i].type == API_T_DIGITS || tags[i].type == API_T_BYTES ||
            tags[i].type == API_T_BLOB)
            assert_true(tags[i].max < API_FRAME_MAX - API_HEADER_LEN - API_FIELD_HEADER_LEN);
    }
    assert_null(api_tag_info(0x7777));
    assert_int_equal(api_enum_from_name(API_TAG_BRAND, "no-such-brand"), -1);
    assert_int_equal(api_enum_from_name(API_TAG_MERCHANT, "visa"), -1);
}

static void
test_status_and_role_names(void **state)
{
    static const unsigned nums[] = {
#define SNUM(name, num, cls, desc) num,
        API_STATUS_LIST(SNUM)
#undef SNUM
    };
    (void)state;

    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        const char *name = api_status_name(nums[i]);

        assert_non_null(name);
        assert_non_null(api_status_description(nums[i]));
        assert_int_equal(api_status_from_name(name), (int)nums[i]);
        assert_string_equal(api_strerror(-(int)nums[i]), name);
        for (size_t k = i + 1; k < sizeof(nums) / sizeof(nums[0]); k++)
            assert_int_not_equal(nums[i], nums[k]);
    }
    assert_null(api_status_name(999));
    assert_int_equal(api_status_class(999), API_CLASS_INTERNAL);
    assert_int_equal(api_status_class(API_STATUS_OVERLOADED), API_CLASS_RETRY);
    assert_int_equal(api_status_class(API_STATUS_DENIED), API_CLASS_DENIED);
    assert_string_equal(api_strerror(0), "OK");
    assert_string_equal(api_strerror(API_ERR_TIMEOUT), "API_ERR_TIMEOUT");
    assert_string_equal(api_strerror(-999), "API_ERR_UNKNOWN");
    assert_string_equal(api_strerror(12345), "API_ERR_UNKNOWN");
    for (int r = 0; r < (int)API_ROLE_COUNT_; r++)
        assert_int_equal(api_role_from_name(api_role_name((enum api_role)r)), r);
    assert_null(api_role_name(API_ROLE_COUNT_));
    assert_int_equal(api_role_from_name("root"), -1);
}

/* Security rule 2: CVC, PIN data, track data and cryptograms are never
 * stored. PIN blocks and track data have no field in any message; a CVC is
 * accepted only by CIT_AUTHORIZE (passed through for one authorization); a
 * cryptogram only leaves the vault in the wallet decrypt response. */
static void
test_never_stored_data_has_nowhere_to_go(void **state)
{
    size_t n;
    const struct api_schema *const *all = api_schema_all(&n);
    (void)state;

    for (size_t i = 0; i < n; i++) {
        const struct api_schema *s = all[i];

        for (size_t k = 0; k < s->num_fields; k++) {
            uint16_t tag = s->fields[k].tag;

            if (!(api_tag_info(tag)->flags & API_TAG_NEVER_STORED))
                continue;
            assert_int_not_equal(tag, API_TAG_PIN_BLOCK);
            assert_int_not_equal(tag, API_TAG_TRACK_DATA);
            if (tag == API_TAG_CVC)
                assert_true(s == api_schema_request(API_OP_CIT_AUTHORIZE) ||
                            s == api_schema_response(API_OP_CIT_AUTHORIZE));
            if (tag == API_TAG_CRYPTOGRAM)
                assert_ptr_equal(s, api_schema_response(API_OP_WALLET_DECRYPT));
        }
    }
    /* The card store request takes the card but no verification data. */
    assert_null(api_schema_field(api_schema_request(API_OP_CARD_STORE), API_TAG_CVC));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schemas_match_structs),
        cmocka_unit_test(test_every_opcode_has_messages),
        cmocka_unit_test(test_tags_sorted_and_enums_complete),
        cmocka_unit_test(test_status_and_role_names),
        cmocka_unit_test(test_never_stored_data_has_nowhere_to_go),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
