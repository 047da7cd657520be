/*
 * test_mandate.c - mandate records and the rules of a charge: the encoding
 * round trip, every way a malformed record is refused (by decode, and by
 * encode before it is written), the calendar arithmetic against timegm, and
 * each rule of mandate_charge_check at its boundary and in its order.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "vault/mandate.h"

/* Offsets in the encoding (vault/mandate.c, mandate_encode). */
enum {
    OFF_VERSION = 0,
    OFF_KIND = 1,
    OFF_STATUS = 2,
    OFF_CANCELLED_BY = 3,
    OFF_MIN = 4,
    OFF_MAX = 12,
    OFF_CURRENCY = 20,
    OFF_COUNT = 23,
    OFF_MAX_DATE = 25,
    OFF_HAS_LAST = 29,
    OFF_LAST = 30,
    OFF_CHARGES = 34,
    OFF_CREATED = 38,
    OFF_CANCELLED_AT = 46,
    OFF_MERCHANT = 54,
};

/* 2030-06-15T00:00:00Z: when the sample mandate was made. */
#define CREATED 1907712000u

static void
sample(struct mandate_record *m)
{
    memset(m, 0, sizeof(*m));
    m->kind = API_MANDATE_KIND_RECURRING;
    m->status = API_MANDATE_ACTIVE;
    m->min_amount = 500;
    m->max_amount = 2000;
    memcpy(m->currency, "RUB", 4);
    m->recurring_count = 30;
    m->max_date = (struct api_date){2031, 6, 15};
    m->created_at = CREATED;
    strcpy(m->merchant, "m-1");
    strcpy(m->customer, "c-1");
}

static size_t
encode(const struct mandate_record *m, uint8_t *out)
{
    struct api_writer w;
    size_t n;

    api_writer_init(&w, MANDATE_MAX);
    assert_int_equal(mandate_encode(&w, m), 0);
    n = api_writer_len(&w);
    memcpy(out, api_writer_data(&w), n);
    api_writer_cleanup(&w);
    return n;
}

/* Member by member, as padding is no part of a record; text fields whole,
 * bytes after the NUL included. */
static void
assert_record_equal(const struct mandate_record *a, const struct mandate_record *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->cancelled_by, b->cancelled_by);
    assert_int_equal(a->min_amount, b->min_amount);
    assert_int_equal(a->max_amount, b->max_amount);
    assert_memory_equal(a->currency, b->currency, sizeof(a->currency));
    assert_int_equal(a->recurring_count, b->recurring_count);
    assert_memory_equal(&a->max_date, &b->max_date, sizeof(a->max_date));
    assert_int_equal(a->has_last_charge, b->has_last_charge);
    assert_memory_equal(&a->last_charge, &b->last_charge, sizeof(a->last_charge));
    assert_int_equal(a->charge_count, b->charge_count);
    assert_int_equal(a->created_at, b->created_at);
    assert_int_equal(a->cancelled_at, b->cancelled_at);
    assert_memory_equal(a->merchant, b->merchant, sizeof(a->merchant));
    assert_memory_equal(a->customer, b->customer, sizeof(a->customer));
}

static void
round_trip(const struct mandate_record *m)
{
    uint8_t buf[MANDATE_MAX];
    struct mandate_record back;
    size_t n = encode(m, buf);

    assert_int_equal(mandate_decode(&back, buf, n), 0);
    assert_record_equal(&back, m);
}

static void
test_round_trip(void **state)
{
    struct mandate_record m;
    uint8_t buf[MANDATE_MAX];

    (void)state;
    sample(&m);
    round_trip(&m);
    m.has_last_charge = true;
    m.last_charge = (struct api_date){2030, 7, 1};
    m.charge_count = 3;
    m.status = API_MANDATE_CANCELLED;
    m.cancelled_by = API_CANCELLED_BY_PAYER;
    m.cancelled_at = CREATED + 100;
    round_trip(&m);
    sample(&m);
    m.kind = API_MANDATE_KIND_UNSCHEDULED;
    m.min_amount = 0;
    m.recurring_count = 0;
    round_trip(&m);

    /* The largest record fits MANDATE_MAX. */
    sample(&m);
    memset(m.merchant, 'm', API_ID_MAX);
    memset(m.customer, 'c', API_CUSTOMER_NUMBER_MAX);
    m.min_amount = m.max_amount = API_AMOUNT_MAX;
    m.recurring_count = API_RECURRING_COUNT_MAX;
    assert_int_equal(encode(&m, buf), 54 + 1 + API_ID_MAX + 1 + API_CUSTOMER_NUMBER_MAX);
    assert_true(54 + 1 + API_ID_MAX + 1 + API_CUSTOMER_NUMBER_MAX <= MANDATE_MAX);
    round_trip(&m);
}

/* Patches one byte of a good encoding; decode must refuse it. */
static void
refused_with(size_t off, uint8_t value)
{
    struct mandate_record m, out;
    uint8_t buf[MANDATE_MAX];
    size_t n;

    sample(&m);
    n = encode(&m, buf);
    buf[off] = value;
    assert_int_equal(mandate_decode(&out, buf, n), -API_STATUS_INTERNAL);
    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(((uint8_t *)&out)[i], 0); /* left zeroed */
}

static void
test_decode_refusals(void **state)
{
    struct mandate_record m, out;
    uint8_t buf[MANDATE_MAX + 1];
    size_t n;

    (void)state;
    sample(&m);
    n = encode(&m, buf);
    assert_int_equal(mandate_decode(&out, buf, n), 0);
    /* Every truncation, and a trailing byte. */
    for (size_t len = 0; len < n; len++)
        assert_int_equal(mandate_decode(&out, buf, len), -API_STATUS_INTERNAL);
    buf[n] = 0;
    assert_int_equal(mandate_decode(&out, buf, n + 1), -API_STATUS_INTERNAL);

    refused_with(OFF_VERSION, 2);
    refused_with(OFF_KIND, 0);
    refused_with(OFF_KIND, 3);
    refused_with(OFF_STATUS, 0);
    refused_with(OFF_STATUS, API_MANDATE_ENDED); /* derived, never stored */
    refused_with(OFF_STATUS, API_MANDATE_CANCELLED); /* without who cancelled */
    refused_with(OFF_CANCELLED_BY, API_CANCELLED_BY_MERCHANT); /* while active */
    refused_with(OFF_MIN + 5, 0xff); /* min above max */
    refused_with(OFF_MAX + 1, 0x10); /* max above API_AMOUNT_MAX */
    refused_with(OFF_CURRENCY, 'r');
    refused_with(OFF_CURRENCY + 2, 0);
    refused_with(OFF_COUNT + 1, 0);    /* count 0 on a recurring mandate */
    refused_with(OFF_COUNT, 0x04);     /* 30 + 1024: above 999 */
    refused_with(OFF_MAX_DATE + 2, 13); /* month 13 */
    refused_with(OFF_MAX_DATE + 3, 31); /* June 31 */
    refused_with(OFF_MAX_DATE, 0);     /* year 239 */
    refused_with(OFF_HAS_LAST, 2);
    refused_with(OFF_HAS_LAST, 1);     /* a last charge of 0000-00-00 */
    refused_with(OFF_LAST + 2, 1);     /* a date without has_last */
    refused_with(OFF_CHARGES + 3, 1);  /* charges without a last charge */
    refused_with(OFF_CREATED, 0xff);   /* past API_TIME_MAX */
    refused_with(OFF_CANCELLED_AT + 7, 1); /* cancelled_at while active */
    refused_with(OFF_MERCHANT, 0);     /* empty merchant */
    refused_with(OFF_MERCHANT + 2, 0); /* NUL inside the merchant */
    refused_with(OFF_MERCHANT + 4, 0); /* empty CustomerNumber */

    /* Unscheduled: no minimum, no count. */
    sample(&m);
    m.kind = API_MANDATE_KIND_UNSCHEDULED;
    m.min_amount = 0;
    m.recurring_count = 0;
    n = encode(&m, buf);
    buf[OFF_MIN + 7] = 1;
    assert_int_equal(mandate_decode(&out, buf, n), -API_STATUS_INTERNAL);
    buf[OFF_MIN + 7] = 0;
    buf[OFF_COUNT + 1] = 7;
    assert_int_equal(mandate_decode(&out, buf, n), -API_STATUS_INTERNAL);
}

/* encode refuses what decode would: nothing unreadable is written. */
static void
test_encode_refusals(void **state)
{
    struct mandate_record m;
    struct api_writer w;

    (void)state;
    api_writer_init(&w, MANDATE_MAX);
#define ENCODE_REFUSED(change)                                               \
    do {                                                                     \
        sample(&m);                                                          \
        change;                                                              \
        assert_int_equal(mandate_encode(&w, &m), -API_STATUS_INTERNAL);      \
        assert_int_equal(api_writer_len(&w), 0);                             \
    } while (0)
    ENCODE_REFUSED(m.kind = 0);
    ENCODE_REFUSED(m.status = API_MANDATE_ENDED);
    ENCODE_REFUSED(m.min_amount = 2001);
    ENCODE_REFUSED(m.max_amount = 0);
    ENCODE_REFUSED(m.recurring_count = 0);
    ENCODE_REFUSED(m.max_date.day = 0);
    ENCODE_REFUSED(m.charge_count = 1);
    ENCODE_REFUSED(m.has_last_charge = true);
    ENCODE_REFUSED(m.merchant[0] = '\0');
    ENCODE_REFUSED(m.customer[0] = '\0');
    ENCODE_REFUSED(memcpy(m.currency, "Rub", 3));
#undef ENCODE_REFUSED
    api_writer_cleanup(&w);
}

/* Day numbers agree with timegm on every day of 2000..2100, and the leap
 * rules hold at their edges. */
static void
test_dates(void **state)
{
    struct api_date dt;
    int32_t days = 0;

    (void)state;
    for (time_t t = 946684800; t < 4133980800; t += 86400) {
        struct tm tm;

        gmtime_r(&t, &tm);
        dt = (struct api_date){(uint16_t)(tm.tm_year + 1900), (uint8_t)(tm.tm_mon + 1),
                               (uint8_t)tm.tm_mday};
        assert_int_equal(mandate_date_days(&dt, &days), 0);
        assert_int_equal(days, (int32_t)(t / 86400));
        assert_int_equal(mandate_day_of(t), days);
        assert_int_equal(mandate_day_of(t + 86399), days);
    }
    dt = (struct api_date){2000, 2, 29};
    assert_int_equal(mandate_date_days(&dt, &days), 0);
    dt = (struct api_date){2024, 2, 29};
    assert_int_equal(mandate_date_days(&dt, &days), 0);
    days = 7;
    dt = (struct api_date){2100, 2, 29};
    assert_int_equal(mandate_date_days(&dt, &days), -API_STATUS_INVALID_ARGUMENT);
    assert_int_equal(days, 7); /* untouched */
    dt = (struct api_date){2027, 2, 29};
    assert_int_equal(mandate_date_days(&dt, &days), -API_STATUS_INVALID_ARGUMENT);
    dt = (struct api_date){1999, 12, 31};
    assert_int_equal(mandate_date_days(&dt, &days), -API_STATUS_INVALID_ARGUMENT);
    dt = (struct api_date){9999, 12, 31};
    assert_int_equal(mandate_date_days(&dt, &days), 0);
    dt = (struct api_date){2030, 4, 31};
    assert_int_equal(mandate_date_days(&dt, &days), -API_STATUS_INVALID_ARGUMENT);
    assert_int_equal(mandate_day_of(0), 0);
    assert_int_equal(mandate_day_of(-1), -1);
}

static void
test_status(void **state)
{
    struct mandate_record m;
    int32_t end = 0;

    (void)state;
    sample(&m);
    assert_int_equal(mandate_date_days(&m.max_date, &end), 0);
    assert_int_equal(mandate_status_on(&m, end), API_MANDATE_ACTIVE);
    assert_int_equal(mandate_status_on(&m, end + 1), API_MANDATE_ENDED);
    m.status = API_MANDATE_CANCELLED;
    m.cancelled_by = API_CANCELLED_BY_MERCHANT;
    assert_int_equal(mandate_status_on(&m, end), API_MANDATE_CANCELLED);
    assert_int_equal(mandate_status_on(&m, end + 1), API_MANDATE_CANCELLED);
}

/* The day |n| days after the mandate was made. */
static struct api_date
day_after(int n)
{
    time_t t = (time_t)CREATED + (time_t)n * 86400;
    struct tm tm;

    gmtime_r(&t, &tm);
    return (struct api_date){(uint16_t)(tm.tm_year + 1900), (uint8_t)(tm.tm_mon + 1),
                             (uint8_t)tm.tm_mday};
}

static void
check(const struct mandate_record *m, uint64_t amount, const char *currency, int date, int today,
      int status, uint16_t tag, const char *rule)
{
    struct mandate_refusal no = {0};
    struct api_date dt = day_after(date);

    assert_int_equal(mandate_charge_check(m, amount, currency, &dt,
                                          mandate_day_of((time_t)CREATED) + today, &no),
                     status);
    if (status == 0)
        return;
    assert_int_equal(no.status, (unsigned)-status);
    assert_int_equal(no.tag, tag);
    assert_non_null(no.message);
    if (rule == NULL)
        assert_null(no.rule);
    else
        assert_string_equal(no.rule, rule);
}

static void
test_charge_rules(void **state)
{
    struct mandate_record m;
    struct api_date dt;
    const int LIMIT = -API_STATUS_LIMIT_EXCEEDED, BAD = -API_STATUS_INVALID_ARGUMENT;

    (void)state;
    sample(&m); /* 500..2000 RUB, every 30 days, until 365 days after it was made */
    check(&m, 500, "RUB", 0, 0, 0, 0, NULL);
    check(&m, 2000, "RUB", 0, 0, 0, 0, NULL);
    check(&m, 499, "RUB", 0, 0, LIMIT, API_TAG_AMOUNT, MANDATE_RULE_MIN_AMOUNT);
    check(&m, 2001, "RUB", 0, 0, LIMIT, API_TAG_AMOUNT, MANDATE_RULE_MAX_AMOUNT);
    check(&m, 1000, "USD", 0, 0, -API_STATUS_MISMATCH, API_TAG_CURRENCY, NULL);
    check(&m, 1000, "RUB", 365, 365, 0, 0, NULL); /* the end date itself */
    check(&m, 1000, "RUB", 366, 400, LIMIT, API_TAG_DATE, MANDATE_RULE_END_DATE);
    check(&m, 1000, "RUB", 366, 0, LIMIT, API_TAG_DATE, MANDATE_RULE_END_DATE);
    check(&m, 1000, "RUB", 1, 0, BAD, API_TAG_DATE, NULL);   /* after today */
    check(&m, 1000, "RUB", -1, 0, BAD, API_TAG_DATE, NULL);  /* before it was made */
    /* The order: currency, end date, the date, maximum, minimum. */
    check(&m, 99999, "USD", 999, 0, -API_STATUS_MISMATCH, API_TAG_CURRENCY, NULL);
    check(&m, 99999, "RUB", 999, 0, LIMIT, API_TAG_DATE, MANDATE_RULE_END_DATE);
    check(&m, 99999, "RUB", 1, 0, BAD, API_TAG_DATE, NULL);

    /* Frequency: exactly RecurringCount days after the last charge passes. */
    dt = day_after(10);
    assert_int_equal(mandate_charge_record(&m, &dt), 0);
    assert_int_equal(m.charge_count, 1);
    check(&m, 1000, "RUB", 39, 50, LIMIT, API_TAG_DATE, MANDATE_RULE_FREQUENCY);
    check(&m, 1000, "RUB", 40, 50, 0, 0, NULL);
    check(&m, 1000, "RUB", 10, 50, LIMIT, API_TAG_DATE, MANDATE_RULE_FREQUENCY);
    check(&m, 1000, "RUB", 9, 50, BAD, API_TAG_DATE, NULL); /* before the last charge */
    check(&m, 2001, "RUB", 39, 50, LIMIT, API_TAG_AMOUNT, MANDATE_RULE_MAX_AMOUNT);
    check(&m, 1, "RUB", 39, 50, LIMIT, API_TAG_AMOUNT, MANDATE_RULE_MIN_AMOUNT);

    /* Unscheduled: no minimum, no frequency; the maximum and end date hold. */
    m.kind = API_MANDATE_KIND_UNSCHEDULED;
    m.min_amount = 0;
    m.recurring_count = 0;
    check(&m, 0, "RUB", 10, 50, 0, 0, NULL);
    check(&m, 2000, "RUB", 10, 50, 0, 0, NULL);
    check(&m, 2001, "RUB", 10, 50, LIMIT, API_TAG_AMOUNT, MANDATE_RULE_MAX_AMOUNT);
    check(&m, 1, "RUB", 366, 400, LIMIT, API_TAG_DATE, MANDATE_RULE_END_DATE);

    /* The count never wraps. */
    m.charge_count = UINT32_MAX;
    dt = day_after(20);
    assert_int_equal(mandate_charge_record(&m, &dt), -API_STATUS_INTERNAL);
    assert_int_equal(m.charge_count, UINT32_MAX);
    assert_int_equal(m.last_charge.day, day_after(10).day);
}

static void
test_key(void **state)
{
    uint8_t key[MANDATE_KEY_MAX];
    char big[API_ID_MAX + 1];

    (void)state;
    assert_int_equal(mandate_key(key, "tok", "id1"), 7);
    assert_int_equal(memcmp(key, "tok\0id1", 7), 0);
    memset(big, 'x', API_ID_MAX);
    big[API_ID_MAX] = '\0';
    assert_int_equal(mandate_key(key, big, big), MANDATE_KEY_MAX);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_decode_refusals),
        cmocka_unit_test(test_encode_refusals),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_charge_rules),
        cmocka_unit_test(test_key),
    };

    return cmocka_run_group_tests_name("mandate", tests, NULL, NULL);
}
