/*
 * mandate.c - mandate records and the rules of a merchant-initiated charge.
 */
#include "vault/mandate.h"

#include <string.h>

#include "api/reader.h"

/* Seconds in a UTC day: unix time has no leap seconds. */
#define DAY_SECONDS 86400
/* DATE fields carry years 2000..9999 (api/msg.h). */
#define YEAR_MIN 2000u
#define YEAR_MAX 9999u

static bool
leap(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool
date_ok(const struct api_date *d)
{
    static const uint8_t mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (d->year < YEAR_MIN || d->year > YEAR_MAX || d->month < 1 || d->month > 12 || d->day < 1)
        return false;
    return d->day <= mdays[d->month - 1] + (d->month == 2 && leap(d->year));
}

int
mandate_date_days(const struct api_date *d, int32_t *out)
{
    /* H. Hinnant's days_from_civil, for years >= 2000 (no negative eras). */
    unsigned y, m, doy, yoe, doe, era;

    if (!date_ok(d))
        return -API_STATUS_INVALID_ARGUMENT;
    y = d->year - (d->month <= 2);
    m = d->month;
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d->day - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    *out = (int32_t)(era * 146097u + doe) - 719468;
    return 0;
}

int32_t
mandate_day_of(time_t now)
{
    return (int32_t)(now >= 0 ? now / DAY_SECONDS : (now - (DAY_SECONDS - 1)) / DAY_SECONDS);
}

enum api_mandate_status
mandate_status_on(const struct mandate_record *m, int32_t today)
{
    int32_t end = 0;

    if (m->status == API_MANDATE_CANCELLED)
        return API_MANDATE_CANCELLED;
    /* A record that decoded has a real end date; one that did not never
     * gets here, but a bad date must not read as "still active". */
    if (mandate_date_days(&m->max_date, &end) != 0 || today > end)
        return API_MANDATE_ENDED;
    return API_MANDATE_ACTIVE;
}

static bool
currency_ok(const char *c)
{
    for (size_t i = 0; i < API_CURRENCY_LEN; i++)
        if (c[i] < 'A' || c[i] > 'Z')
            return false;
    return c[API_CURRENCY_LEN] == '\0';
}

static bool
zero_date(const struct api_date *d)
{
    return d->year == 0 && d->month == 0 && d->day == 0;
}

/* Every invariant of a stored mandate: what encode writes and decode takes. */
static bool
record_ok(const struct mandate_record *m)
{
    bool cancelled = m->status == API_MANDATE_CANCELLED;

    if (m->status != API_MANDATE_ACTIVE && !cancelled)
        return false;
    if (cancelled ? (m->cancelled_by < 1 || m->cancelled_by > API_ENUM_MAX(CANCELLED_BY))
                  : (m->cancelled_by != 0 || m->cancelled_at != 0))
        return false;
    if (m->max_amount < 1 || m->max_amount > API_AMOUNT_MAX || m->min_amount > m->max_amount)
        return false;
    switch (m->kind) {
    case API_MANDATE_KIND_RECURRING:
        if (m->recurring_count < 1 || m->recurring_count > API_RECURRING_COUNT_MAX)
            return false;
        break;
    case API_MANDATE_KIND_UNSCHEDULED:
        /* seed 003, MIT COF: neither the amounts' floor nor the interval is fixed */
        if (m->min_amount != 0 || m->recurring_count != 0)
            return false;
        break;
    default:
        return false;
    }
    if (!currency_ok(m->currency) || !date_ok(&m->max_date))
        return false;
    if (m->has_last_charge ? (!date_ok(&m->last_charge) || m->charge_count == 0)
                           : (!zero_date(&m->last_charge) || m->charge_count != 0))
        return false;
    return m->created_at <= API_TIME_MAX && m->cancelled_at <= API_TIME_MAX;
}

static int
put_date(struct api_writer *w, const struct api_date *d)
{
    int e = api_writer_put_u16(w, d->year);

    e = e ? e : api_writer_put_u8(w, d->month);
    e = e ? e : api_writer_put_u8(w, d->day);
    return e;
}

int
mandate_encode(struct api_writer *w, const struct mandate_record *m)
{
    int e = 0;

    if (!record_ok(m) || strlen(m->merchant) < 1 || strlen(m->customer) < 1)
        return -API_STATUS_INTERNAL;
    e = e ? e : api_writer_put_u8(w, MANDATE_VERSION);
    e = e ? e : api_writer_put_u8(w, m->kind);
    e = e ? e : api_writer_put_u8(w, m->status);
    e = e ? e : api_writer_put_u8(w, m->cancelled_by);
    e = e ? e : api_writer_put_u64(w, m->min_amount);
    e = e ? e : api_writer_put_u64(w, m->max_amount);
    e = e ? e : api_writer_put_bytes(w, (const uint8_t *)m->currency, API_CURRENCY_LEN);
    e = e ? e : api_writer_put_u16(w, m->recurring_count);
    e = e ? e : put_date(w, &m->max_date);
    e = e ? e : api_writer_put_u8(w, m->has_last_charge ? 1 : 0);
    e = e ? e : put_date(w, &m->last_charge);
    e = e ? e : api_writer_put_u32(w, m->charge_count);
    e = e ? e : api_writer_put_u64(w, m->created_at);
    e = e ? e : api_writer_put_u64(w, m->cancelled_at);
    e = e ? e : api_writer_put_str8(w, m->merchant);
    e = e ? e : api_writer_put_str8(w, m->customer);
    return e;
}

static int
get_date(struct api_reader *rd, struct api_date *d)
{
    if (api_reader_get_u16(rd, &d->year) != 0 || api_reader_get_u8(rd, &d->month) != 0 ||
        api_reader_get_u8(rd, &d->day) != 0)
        return -API_STATUS_INTERNAL;
    return 0;
}

int
mandate_decode(struct mandate_record *out, const uint8_t *data, size_t len)
{
    struct api_reader rd, v;
    uint8_t version = 0, has_last = 0;
    int r = -API_STATUS_INTERNAL;

    memset(out, 0, sizeof(*out));
    api_reader_init(&rd, data, len);
    if (api_reader_get_u8(&rd, &version) != 0 || version != MANDATE_VERSION ||
        api_reader_get_u8(&rd, &out->kind) != 0 || api_reader_get_u8(&rd, &out->status) != 0 ||
        api_reader_get_u8(&rd, &out->cancelled_by) != 0 ||
        api_reader_get_u64(&rd, &out->min_amount) != 0 ||
        api_reader_get_u64(&rd, &out->max_amount) != 0 ||
        api_reader_get_bytes(&rd, &v, API_CURRENCY_LEN) != 0)
        goto out;
    memcpy(out->currency, v.data, API_CURRENCY_LEN);
    if (api_reader_get_u16(&rd, &out->recurring_count) != 0 || get_date(&rd, &out->max_date) != 0 ||
        api_reader_get_u8(&rd, &has_last) != 0 || has_last > 1 ||
        get_date(&rd, &out->last_charge) != 0 || api_reader_get_u32(&rd, &out->charge_count) != 0 ||
        api_reader_get_u64(&rd, &out->created_at) != 0 ||
        api_reader_get_u64(&rd, &out->cancelled_at) != 0)
        goto out;
    out->has_last_charge = has_last == 1;
    if (!record_ok(out))
        goto out;
    if (api_reader_get_str8(&rd, out->merchant, sizeof(out->merchant), 1, API_ID_MAX) != 0 ||
        api_reader_get_str8(&rd, out->customer, sizeof(out->customer), 1,
                            API_CUSTOMER_NUMBER_MAX) != 0 ||
        api_reader_len(&rd) != 0)
        goto out;
    r = 0;
out:
    if (r != 0)
        memset(out, 0, sizeof(*out));
    return r;
}

size_t
mandate_key(uint8_t out[MANDATE_KEY_MAX], const char *token, const char *id)
{
    size_t tlen = strnlen(token, API_ID_MAX), ilen = strnlen(id, API_ID_MAX);

    memcpy(out, token, tlen);
    out[tlen] = 0;
    memcpy(out + tlen + 1, id, ilen);
    return tlen + 1 + ilen;
}

static int
refuse(struct mandate_refusal *out, unsigned status, uint16_t tag, const char *rule,
       const char *message)
{
    out->status = status;
    out->tag = tag;
    out->rule = rule;
    out->message = message;
    return -(int)status;
}

int
mandate_charge_check(const struct mandate_record *m, uint64_t amount, const char *currency,
                     const struct api_date *date, int32_t today, struct mandate_refusal *out)
{
    bool recurring = m->kind == API_MANDATE_KIND_RECURRING;
    int32_t day = 0, end = 0, last = 0;

    if (strncmp(currency, m->currency, API_CURRENCY_LEN + 1) != 0)
        return refuse(out, API_STATUS_MISMATCH, API_TAG_CURRENCY, NULL,
                      "the currency is not the mandate's");
    if (mandate_date_days(date, &day) != 0 || mandate_date_days(&m->max_date, &end) != 0 ||
        (m->has_last_charge && mandate_date_days(&m->last_charge, &last) != 0))
        return refuse(out, API_STATUS_INVALID_ARGUMENT, API_TAG_DATE, NULL, "not a real date");
    if (day > end)
        return refuse(out, API_STATUS_LIMIT_EXCEEDED, API_TAG_DATE, MANDATE_RULE_END_DATE,
                      "the charge date is after the mandate's RecurringMaxDate");
    if (day > today)
        return refuse(out, API_STATUS_INVALID_ARGUMENT, API_TAG_DATE, NULL,
                      "the charge date is after today (UTC)");
    /* Dates may be earlier than today (a charge submitted late), but never
     * before the payer agreed, nor before a charge already approved: the
     * frequency is measured between charge dates, so a date may not go back
     * in time to make room. */
    if (day < mandate_day_of((time_t)m->created_at))
        return refuse(out, API_STATUS_INVALID_ARGUMENT, API_TAG_DATE, NULL,
                      "the charge date is before the mandate was made");
    if (m->has_last_charge && day < last)
        return refuse(out, API_STATUS_INVALID_ARGUMENT, API_TAG_DATE, NULL,
                      "the charge date is before the last approved charge");
    if (amount > m->max_amount)
        return refuse(out, API_STATUS_LIMIT_EXCEEDED, API_TAG_AMOUNT, MANDATE_RULE_MAX_AMOUNT,
                      "the amount is above the mandate's RecurringMaxAmount");
    if (recurring && amount < m->min_amount)
        return refuse(out, API_STATUS_LIMIT_EXCEEDED, API_TAG_AMOUNT, MANDATE_RULE_MIN_AMOUNT,
                      "the amount is below the mandate's RecurringMinAmount");
    if (recurring && m->has_last_charge && day - last < (int32_t)m->recurring_count)
        return refuse(out, API_STATUS_LIMIT_EXCEEDED, API_TAG_DATE, MANDATE_RULE_FREQUENCY,
                      "fewer than RecurringCount days since the last approved charge");
    return 0;
}

int
mandate_charge_record(struct mandate_record *m, const struct api_date *date)
{
    if (m->charge_count == UINT32_MAX || !date_ok(date))
        return -API_STATUS_INTERNAL;
    m->last_charge = *date;
    m->has_last_charge = true;
    m->charge_count++;
    return 0;
}
