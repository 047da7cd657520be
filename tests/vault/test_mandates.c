/*
 * test_mandates.c - stored credentials through the real daemon (seed 003):
 * MANDATE_CREATE, MANDATE_GET, MANDATE_CANCEL, CIT_AUTHORIZE and
 * MIT_AUTHORIZE, driven through libtokenvault.
 *
 * One daemon for the group. Clients: "client" (gateway-test: store, list,
 * mandate, ... on m-1 and m-pan), "unknown-client" (CN=nobody, named here by
 * an extra config section: mandate and reveal on m-1, the processor
 * connector that receives PANs), "reveal-client" and "other-client" (no
 * mandate role). Each rule is shown refusing with its exact status, errorTag
 * and RULE, and passing; many concurrent charges in one period give exactly
 * one approval; the flow works through the tokenvault command line too; an
 * approved charge survives kill -9 right after its answer;
 * what the API cannot reach (a card without consent, an expired card, a
 * mandate past its end date, a charge a period ago) is made by editing the
 * stopped daemon's store; no PAN or CVC is in the store or the log; the
 * audit log holds every charge, refusals included.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/client.h"
#include "tests/support/daemon.h"
#include "vault/audit.h"
#include "vault/cardnum.h"
#include "vault/mandate.h"
#include "vault/record.h"
#include "vault/store.h"

static struct tv_daemon d;

#define DAY 86400
/* A CVC that appears nowhere else, so a scan for it means something. */
#define CVC "8642"
#define TXN_ID "MCC0001234567"
/* The connector: mandate and reveal on m-1 (the certificate CN=nobody). */
#define CONNECTOR "unknown-client"
#define EXTRA_CONFIG "[client nobody]\nsubject = CN=nobody\nroles = mandate, reveal\nmerchants = m-1\n"

/* Every PAN stored here, for the scan of the store and the log. */
static char pans[64][17];
static size_t num_pans;
/* Mandates created and charges approved over the whole group, checked
 * against the store and the audit log at the end. */
static unsigned created, approved, cit_approved, cit_pan;

/* Kept from the tests that make them for the restart test's store edits. */
static char tok_noconsent[API_ID_MAX + 1], tok_expired[API_ID_MAX + 1];
static char tok_ended[API_ID_MAX + 1], id_ended[API_ID_MAX + 1];
static char tok_period[API_ID_MAX + 1], id_period[API_ID_MAX + 1];
static char id_period_soon[API_ID_MAX + 1], tok_period_soon[API_ID_MAX + 1];

static struct api_client *
client(const char *who)
{
    struct api_client *c = NULL;

    assert_int_equal(tv_daemon_client(&d, who, &c), 0);
    return c;
}

/* A Luhn-valid Visa PAN numbered |n|, remembered for the scan. */
static const char *
new_pan(void)
{
    char *out = pans[num_pans];
    unsigned n = (unsigned)num_pans++;

    assert_true(num_pans <= sizeof(pans) / sizeof(pans[0]));
    snprintf(out, 17, "411122%09u0", 700 + n);
    for (int dgt = '0'; dgt <= '9'; dgt++) {
        out[15] = (char)dgt;
        if (cardnum_luhn(out, 16))
            break;
    }
    return out;
}


static bool
date_eq(struct api_date a, struct api_date b)
{
    return a.year == b.year && a.month == b.month && a.day == b.day;
}

/* Member by member, as padding is no part of a message; text fields whole,
 * bytes after the NUL included. */
static void
assert_info_equal(const struct api_mandate_info *a, const struct api_mandate_info *b)
{
    assert_memory_equal(a->mandate_id, b->mandate_id, sizeof(a->mandate_id));
    assert_memory_equal(a->token, b->token, sizeof(a->token));
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->has_min_amount, b->has_min_amount);
    assert_int_equal(a->min_amount, b->min_amount);
    assert_int_equal(a->max_amount, b->max_amount);
    assert_memory_equal(a->currency, b->currency, sizeof(a->currency));
    assert_int_equal(a->has_recurring_count, b->has_recurring_count);
    assert_int_equal(a->recurring_count, b->recurring_count);
    assert_true(date_eq(a->recurring_max_date, b->recurring_max_date));
    assert_int_equal(a->has_last_charge_date, b->has_last_charge_date);
    assert_true(date_eq(a->last_charge_date, b->last_charge_date));
    assert_int_equal(a->charge_count, b->charge_count);
    assert_int_equal(a->has_cancelled_by, b->has_cancelled_by);
    assert_int_equal(a->cancelled_by, b->cancelled_by);
    assert_int_equal(a->created_at, b->created_at);
}

/* Stores a fresh card for |customer| of m-1; its token into |out|. */
static void
store_card(struct api_client *c, const char *customer, bool need_cvc, char out[API_ID_MAX + 1])
{
    struct api_card_store_req q;
    struct api_card_store_resp resp;
    struct api_error_resp err;

    tv_card_store_req(&q, "m-1", customer, new_pan());
    q.has_need_cvc = true;
    q.need_cvc = need_cvc;
    q.has_initial_txn_id = true;
    snprintf(q.initial_txn_id, sizeof(q.initial_txn_id), "%s", TXN_ID);
    assert_int_equal(api_call_card_store(c, &q, &resp, &err), 0);
    assert_int_equal(resp.dedup, API_DEDUP_NEW);
    memcpy(out, resp.token, API_ID_MAX + 1);
    api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
}

static void
recurring_req(struct api_mandate_create_req *q, const char *token, const char *customer,
              uint64_t min, uint64_t max, uint16_t count, int end_days)
{
    memset(q, 0, sizeof(*q));
    snprintf(q->merchant, sizeof(q->merchant), "m-1");
    snprintf(q->token, sizeof(q->token), "%s", token);
    snprintf(q->customer_number, sizeof(q->customer_number), "%s", customer);
    q->kind = API_MANDATE_KIND_RECURRING;
    q->has_min_amount = true;
    q->min_amount = min;
    q->max_amount = max;
    memcpy(q->currency, "RUB", 4);
    q->has_recurring_count = true;
    q->recurring_count = count;
    q->recurring_max_date = tv_date_in_days(end_days);
}

static void
unscheduled_req(struct api_mandate_create_req *q, const char *token, const char *customer,
                uint64_t max, int end_days)
{
    recurring_req(q, token, customer, 0, max, 1, end_days);
    q->kind = API_MANDATE_KIND_UNSCHEDULED;
    q->has_min_amount = false;
    q->min_amount = 0;
    q->has_recurring_count = false;
    q->recurring_count = 0;
}

static int
create(struct api_client *c, const struct api_mandate_create_req *q, struct api_mandate_info *out,
       struct api_error_resp *err)
{
    int r = api_call_mandate_create(c, q, out, err);

    created += r == 0;
    return r;
}

/* A recurring mandate for |token| of |customer|; its id into |out_id|. */
static void
make_recurring(struct api_client *c, const char *token, const char *customer, uint64_t min,
               uint64_t max, uint16_t count, int end_days, char out_id[API_ID_MAX + 1])
{
    struct api_mandate_create_req q;
    struct api_mandate_info info;
    struct api_error_resp err;

    recurring_req(&q, token, customer, min, max, count, end_days);
    assert_int_equal(create(c, &q, &info, &err), 0);
    memcpy(out_id, info.mandate_id, API_ID_MAX + 1);
}

static void
mit_req(struct api_mit_authorize_req *q, const char *token, const char *id, uint64_t amount,
        const char *currency, int date_days)
{
    memset(q, 0, sizeof(*q));
    snprintf(q->merchant, sizeof(q->merchant), "m-1");
    snprintf(q->token, sizeof(q->token), "%s", token);
    snprintf(q->mandate_id, sizeof(q->mandate_id), "%s", id);
    q->amount = amount;
    memcpy(q->currency, currency, 4);
    q->date = tv_date_in_days(date_days);
}

static int
mit(struct api_client *c, const char *token, const char *id, uint64_t amount, const char *currency,
    int date_days, struct api_mit_authorize_resp *resp, struct api_error_resp *err)
{
    struct api_mit_authorize_req q;
    int r;

    mit_req(&q, token, id, amount, currency, date_days);
    memset(resp, 0, sizeof(*resp));
    r = api_call_mit_authorize(c, &q, resp, err);
    approved += r == 0;
    return r;
}

/* A MIT refused with |status|, |tag| and |rule| (NULL: no RULE). */
static void
mit_refused(struct api_client *c, const char *token, const char *id, uint64_t amount,
            const char *currency, int date_days, int status, uint16_t tag, const char *rule)
{
    struct api_mit_authorize_resp resp;
    struct api_error_resp err;

    assert_int_equal(mit(c, token, id, amount, currency, date_days, &resp, &err), status);
    assert_true(err.has_error_tag);
    assert_int_equal(err.error_tag, tag);
    if (rule != NULL) {
        assert_true(err.has_rule);
        assert_string_equal(err.rule, rule);
    } else {
        assert_false(err.has_rule);
    }
    assert_false(resp.has_pan);
}

static int
get(struct api_client *c, const char *token, const char *id, struct api_mandate_info *out,
    struct api_error_resp *err)
{
    struct api_mandate_ref q = {0};

    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    snprintf(q.token, sizeof(q.token), "%s", token);
    snprintf(q.mandate_id, sizeof(q.mandate_id), "%s", id);
    return api_call_mandate_get(c, &q, out, err);
}

static uint32_t
charges(struct api_client *c, const char *token, const char *id)
{
    struct api_mandate_info info;

    assert_int_equal(get(c, token, id, &info, NULL), 0);
    return info.charge_count;
}

static int
cancel(struct api_client *c, const char *token, const char *id, uint8_t by,
       struct api_mandate_info *out, struct api_error_resp *err)
{
    struct api_mandate_cancel_req q = {0};

    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    snprintf(q.token, sizeof(q.token), "%s", token);
    snprintf(q.mandate_id, sizeof(q.mandate_id), "%s", id);
    q.cancelled_by = by;
    return api_call_mandate_cancel(c, &q, out, err);
}

static int
cit(struct api_client *c, const char *token, const char *customer, const char *cvc,
    struct api_cit_authorize_resp *resp, struct api_error_resp *err)
{
    struct api_cit_authorize_req q = {0};
    int r;

    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    snprintf(q.token, sizeof(q.token), "%s", token);
    snprintf(q.customer_number, sizeof(q.customer_number), "%s", customer);
    q.amount = 12345;
    memcpy(q.currency, "RUB", 4);
    if (cvc != NULL) {
        q.has_cvc = true;
        snprintf(q.cvc, sizeof(q.cvc), "%s", cvc);
    }
    memset(resp, 0, sizeof(*resp));
    r = api_call_cit_authorize(c, &q, resp, err);
    api_msg_cleanup(api_schema_request(API_OP_CIT_AUTHORIZE), &q);
    cit_approved += r == 0;
    cit_pan += r == 0 && resp->has_pan;
    return r;
}

static void
card_active(struct api_client *c, const char *token, bool active)
{
    struct api_card_update_req up = {0};
    struct api_card_info info;

    snprintf(up.merchant, sizeof(up.merchant), "m-1");
    snprintf(up.token, sizeof(up.token), "%s", token);
    up.has_active = true;
    up.active = active;
    assert_int_equal(api_call_card_update(c, &up, &info, NULL), 0);
}

/* ---- fixture ------------------------------------------------------------------------ */

static int
group_setup(void **state)
{
    struct tv_daemon_opts o = {.max_in_flight = 64, .workers = 4};

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (tv_daemon_setup(&d, &o) != 0 || tv_daemon_write_config(&d, EXTRA_CONFIG) != 0 ||
        tv_daemon_start(&d) != 0)
        return -1;
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    tv_daemon_teardown(&d);
    return 0;
}

/* ---- MANDATE_CREATE, GET, CANCEL ------------------------------------------------------- */

/* A recurring mandate made, read, charged once, refused a second charge in
 * its period, cancelled by the payer, still readable, refused after. */
static void
test_recurring_lifecycle(void **state)
{
    struct api_client *c = client("client");
    struct api_mandate_create_req q;
    struct api_mandate_info info, again;
    struct api_mit_authorize_resp resp;
    struct api_error_resp err;
    char token[API_ID_MAX + 1];

    (void)state;
    store_card(c, "c-1", false, token);
    recurring_req(&q, token, "c-1", 500, 2000, 30, 365);
    assert_int_equal(create(c, &q, &info, &err), 0);
    assert_int_equal(strlen(info.mandate_id), CARDNUM_OPAQUE_LEN);
    assert_string_equal(info.token, token);
    assert_int_equal(info.kind, API_MANDATE_KIND_RECURRING);
    assert_int_equal(info.status, API_MANDATE_ACTIVE);
    assert_true(info.has_min_amount);
    assert_int_equal(info.min_amount, 500);
    assert_int_equal(info.max_amount, 2000);
    assert_string_equal(info.currency, "RUB");
    assert_true(info.has_recurring_count);
    assert_int_equal(info.recurring_count, 30);
    assert_true(date_eq(info.recurring_max_date, tv_date_in_days(365)));
    assert_false(info.has_last_charge_date);
    assert_int_equal(info.charge_count, 0);
    assert_false(info.has_cancelled_by);
    assert_true(info.created_at > 1700000000u);

    assert_int_equal(get(c, token, info.mandate_id, &again, &err), 0);
    assert_info_equal(&again, &info);

    assert_int_equal(mit(c, token, info.mandate_id, 1000, "RUB", 0, &resp, &err), 0);
    assert_int_equal(strlen(resp.approval), CARDNUM_OPAQUE_LEN);
    assert_true(date_eq(resp.last_charge_date, tv_date_in_days(0)));
    assert_int_equal(resp.charge_count, 1);
    assert_true(resp.has_initial_txn_id);
    assert_string_equal(resp.initial_txn_id, TXN_ID);
    assert_false(resp.has_pan); /* the gateway has no reveal role */
    assert_false(resp.has_exp_month);
    mit_refused(c, token, info.mandate_id, 1000, "RUB", 0, -API_STATUS_LIMIT_EXCEEDED, API_TAG_DATE,
                MANDATE_RULE_FREQUENCY);
    assert_int_equal(get(c, token, info.mandate_id, &again, &err), 0);
    assert_int_equal(again.charge_count, 1);
    assert_true(again.has_last_charge_date);
    assert_true(date_eq(again.last_charge_date, tv_date_in_days(0)));

    /* Cancelled by the payer (through the merchant): it stays readable. */
    assert_int_equal(cancel(c, token, info.mandate_id, API_CANCELLED_BY_PAYER, &again, &err), 0);
    assert_int_equal(again.status, API_MANDATE_CANCELLED);
    assert_true(again.has_cancelled_by);
    assert_int_equal(again.cancelled_by, API_CANCELLED_BY_PAYER);
    assert_int_equal(again.charge_count, 1);
    assert_int_equal(get(c, token, info.mandate_id, &again, &err), 0);
    assert_int_equal(again.status, API_MANDATE_CANCELLED);
    /* A second cancel changes nothing, not even who cancelled. */
    assert_int_equal(cancel(c, token, info.mandate_id, API_CANCELLED_BY_MERCHANT, &again, &err), 0);
    assert_int_equal(again.cancelled_by, API_CANCELLED_BY_PAYER);
    mit_refused(c, token, info.mandate_id, 1000, "RUB", 0, -API_STATUS_INACTIVE,
                API_TAG_MANDATE_ID, NULL);
    assert_int_equal(charges(c, token, info.mandate_id), 1);
    api_client_free(c);
}

/* Every refusal of MANDATE_CREATE, and none leaves a mandate behind. */
static void
test_create_refusals(void **state)
{
    struct api_client *c = client("client");
    struct api_mandate_create_req q;
    struct api_mandate_info info;
    struct api_error_resp err;
    char token[API_ID_MAX + 1], other[API_ID_MAX + 1], pan_tok[API_ID_MAX + 1];
    char id[API_ID_MAX + 1];
    unsigned before = created;

    (void)state;
    store_card(c, "c-2", false, token);
    store_card(c, "c-3", false, other);

#define REFUSED(status, tag)                                                       \
    do {                                                                           \
        assert_int_equal(create(c, &q, &info, &err), status);                      \
        assert_true(err.has_error_tag);                                            \
        assert_int_equal(err.error_tag, tag);                                      \
        assert_false(err.has_rule);                                                \
    } while (0)

    /* The request's own rules. */
    recurring_req(&q, token, "c-2", 500, 2000, 30, 365);
    q.has_min_amount = false;
    REFUSED(-API_STATUS_INVALID_ARGUMENT, API_TAG_MIN_AMOUNT);
    recurring_req(&q, token, "c-2", 500, 2000, 30, 365);
    q.has_recurring_count = false;
    REFUSED(-API_STATUS_INVALID_ARGUMENT, API_TAG_RECURRING_COUNT);
    unscheduled_req(&q, token, "c-2", 2000, 365);
    q.has_min_amount = true;
    REFUSED(-API_STATUS_INVALID_ARGUMENT, API_TAG_MIN_AMOUNT);
    unscheduled_req(&q, token, "c-2", 2000, 365);
    q.has_recurring_count = true;
    q.recurring_count = 7;
    REFUSED(-API_STATUS_INVALID_ARGUMENT, API_TAG_RECURRING_COUNT);
    recurring_req(&q, token, "c-2", 2001, 2000, 30, 365);
    REFUSED(-API_STATUS_INVALID_ARGUMENT, API_TAG_MIN_AMOUNT);
    recurring_req(&q, token, "c-2", 0, 0, 30, 365);
    REFUSED(-API_STATUS_INVALID_ARGUMENT, API_TAG_MAX_AMOUNT);
    recurring_req(&q, token, "c-2", 500, 2000, 30, -1);
    REFUSED(-API_STATUS_INVALID_ARGUMENT, API_TAG_RECURRING_MAX_DATE);

    /* The card's: another customer's token, an unknown one, another
     * merchant's (PAN-shaped, m-pan), an inactive card. */
    recurring_req(&q, other, "c-2", 500, 2000, 30, 365);
    REFUSED(-API_STATUS_NOT_FOUND, API_TAG_TOKEN);
    recurring_req(&q, "nosuchtoken", "c-2", 500, 2000, 30, 365);
    REFUSED(-API_STATUS_NOT_FOUND, API_TAG_TOKEN);
    {
        struct api_card_store_req sq;
        struct api_card_store_resp sr;

        tv_card_store_req(&sq, "m-pan", "c-2", new_pan());
        assert_int_equal(api_call_card_store(c, &sq, &sr, &err), 0);
        memcpy(pan_tok, sr.token, sizeof(pan_tok));
        api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &sq);
    }
    recurring_req(&q, pan_tok, "c-2", 500, 2000, 30, 365);
    REFUSED(-API_STATUS_NOT_FOUND, API_TAG_TOKEN);
    card_active(c, token, false);
    recurring_req(&q, token, "c-2", 500, 2000, 30, 365);
    REFUSED(-API_STATUS_INACTIVE, API_TAG_TOKEN);
    card_active(c, token, true);
#undef REFUSED
    assert_int_equal(created, before);

    /* The role: neither a reveal nor a store client may make mandates. */
    {
        struct api_client *rv = client("reveal-client"), *ot = client("other-client");

        assert_int_equal(api_call_mandate_create(rv, &q, &info, &err), -API_STATUS_DENIED);
        assert_int_equal(api_call_mandate_create(ot, &q, &info, &err), -API_STATUS_DENIED);
        api_client_free(rv);
        api_client_free(ot);
    }
    /* Once well formed it is made; an unscheduled one carries neither a
     * minimum nor a count. */
    assert_int_equal(create(c, &q, &info, &err), 0);
    unscheduled_req(&q, token, "c-2", 1500, 0); /* the end date may be today */
    assert_int_equal(create(c, &q, &info, &err), 0);
    assert_int_equal(info.kind, API_MANDATE_KIND_UNSCHEDULED);
    assert_false(info.has_min_amount);
    assert_false(info.has_recurring_count);
    assert_int_equal(info.status, API_MANDATE_ACTIVE);

    /* GET and CANCEL: unknown ids, another card's id, another merchant. */
    memcpy(id, info.mandate_id, sizeof(id));
    assert_int_equal(get(c, token, "nosuchmandate", &info, &err), -API_STATUS_NOT_FOUND);
    assert_int_equal(err.error_tag, API_TAG_MANDATE_ID);
    assert_int_equal(get(c, other, id, &info, &err), -API_STATUS_NOT_FOUND);
    assert_int_equal(err.error_tag, API_TAG_MANDATE_ID);
    assert_int_equal(get(c, pan_tok, id, &info, &err), -API_STATUS_NOT_FOUND);
    assert_int_equal(err.error_tag, API_TAG_TOKEN);
    {
        struct api_client *conn = client(CONNECTOR); /* m-1 only */
        struct api_mandate_ref ref = {0};

        snprintf(ref.merchant, sizeof(ref.merchant), "m-pan");
        snprintf(ref.token, sizeof(ref.token), "%s", token);
        snprintf(ref.mandate_id, sizeof(ref.mandate_id), "%s", id);
        assert_int_equal(api_call_mandate_get(conn, &ref, &info, &err), -API_STATUS_DENIED);
        assert_int_equal(api_call_mandate_get(c, &ref, &info, &err), -API_STATUS_NOT_FOUND);
        api_client_free(conn);
    }
    assert_int_equal(get(c, token, id, &info, &err), 0);
    assert_int_equal(cancel(c, token, "nosuchmandate", API_CANCELLED_BY_MERCHANT, &info, &err),
                     -API_STATUS_NOT_FOUND);
    assert_int_equal(err.error_tag, API_TAG_MANDATE_ID);

    /* A card carries at most 16 active mandates; a cancelled one frees a place. */
    {
        char third[API_ID_MAX + 1], ids[16][API_ID_MAX + 1];

        store_card(c, "c-2", false, third);
        for (unsigned i = 0; i < 16; i++)
            make_recurring(c, third, "c-2", 1, 10, 1, 10, ids[i]);
        recurring_req(&q, third, "c-2", 1, 10, 1, 10);
        assert_int_equal(create(c, &q, &info, &err), -API_STATUS_INVALID_ARGUMENT);
        assert_int_equal(err.error_tag, API_TAG_TOKEN);
        assert_int_equal(cancel(c, third, ids[3], API_CANCELLED_BY_MERCHANT, &info, &err), 0);
        assert_int_equal(create(c, &q, &info, &err), 0);
    }
    api_client_free(c);
}

/* ---- MIT_AUTHORIZE ---------------------------------------------------------------------- */

/* Each rule refusing with its status, errorTag and RULE; none changes the
 * mandate; then the boundaries pass. */
static void
test_mit_rules(void **state)
{
    struct api_client *c = client("client");
    struct api_mit_authorize_resp resp;
    struct api_error_resp err;
    char token[API_ID_MAX + 1], token2[API_ID_MAX + 1], id[API_ID_MAX + 1], id2[API_ID_MAX + 1];

    (void)state;
    store_card(c, "c-4", false, token);
    store_card(c, "c-4", false, token2);
    make_recurring(c, token, "c-4", 500, 2000, 7, 30, id);
    make_recurring(c, token2, "c-4", 1, 10, 1, 30, id2);

    mit_refused(c, token, id, 499, "RUB", 0, -API_STATUS_LIMIT_EXCEEDED, API_TAG_AMOUNT,
                MANDATE_RULE_MIN_AMOUNT);
    mit_refused(c, token, id, 2001, "RUB", 0, -API_STATUS_LIMIT_EXCEEDED, API_TAG_AMOUNT,
                MANDATE_RULE_MAX_AMOUNT);
    mit_refused(c, token, id, 1000, "RUB", 31, -API_STATUS_LIMIT_EXCEEDED, API_TAG_DATE,
                MANDATE_RULE_END_DATE);
    mit_refused(c, token, id, 1000, "USD", 0, -API_STATUS_MISMATCH, API_TAG_CURRENCY, NULL);
    mit_refused(c, token, id, 1000, "RUB", 1, -API_STATUS_INVALID_ARGUMENT, API_TAG_DATE, NULL);
    mit_refused(c, token, id, 1000, "RUB", -1, -API_STATUS_INVALID_ARGUMENT, API_TAG_DATE, NULL);
    /* CIT and MIT are not interchangeable: no mandate, no MIT. */
    mit_refused(c, token, "nosuchmandate", 1000, "RUB", 0, -API_STATUS_NOT_FOUND,
                API_TAG_MANDATE_ID, NULL);
    mit_refused(c, token, id2, 5, "RUB", 0, -API_STATUS_NOT_FOUND, API_TAG_MANDATE_ID, NULL);
    mit_refused(c, token2, id, 1000, "RUB", 0, -API_STATUS_NOT_FOUND, API_TAG_MANDATE_ID, NULL);
    mit_refused(c, "nosuchtoken", id, 1000, "RUB", 0, -API_STATUS_NOT_FOUND, API_TAG_TOKEN, NULL);
    card_active(c, token, false);
    mit_refused(c, token, id, 1000, "RUB", 0, -API_STATUS_INACTIVE, API_TAG_TOKEN, NULL);
    card_active(c, token, true);
    {
        struct api_client *ot = client("other-client");
        struct api_mit_authorize_req q;

        mit_req(&q, token, id, 1000, "RUB", 0);
        assert_int_equal(api_call_mit_authorize(ot, &q, &resp, &err), -API_STATUS_DENIED);
        snprintf(q.merchant, sizeof(q.merchant), "m-2");
        assert_int_equal(api_call_mit_authorize(ot, &q, &resp, &err), -API_STATUS_DENIED);
        api_client_free(ot);
    }
    assert_int_equal(charges(c, token, id), 0); /* nothing refused changed it */

    /* The minimum itself passes; then the maximum is too soon. */
    assert_int_equal(mit(c, token, id, 500, "RUB", 0, &resp, &err), 0);
    assert_int_equal(resp.charge_count, 1);
    mit_refused(c, token, id, 2000, "RUB", 0, -API_STATUS_LIMIT_EXCEEDED, API_TAG_DATE,
                MANDATE_RULE_FREQUENCY);
    assert_int_equal(charges(c, token, id), 1);

    /* A count of 1 day: the next charge is tomorrow's. The maximum passes. */
    assert_int_equal(mit(c, token2, id2, 10, "RUB", 0, &resp, &err), 0);
    mit_refused(c, token2, id2, 10, "RUB", 0, -API_STATUS_LIMIT_EXCEEDED, API_TAG_DATE,
                MANDATE_RULE_FREQUENCY);
    api_client_free(c);
}

/* An unscheduled mandate (seed 003, MIT COF): any amount up to the maximum,
 * at any time, until its end date. */
static void
test_mit_unscheduled(void **state)
{
    struct api_client *c = client("client");
    struct api_mandate_create_req q;
    struct api_mandate_info info;
    struct api_mit_authorize_resp resp;
    struct api_error_resp err;
    char token[API_ID_MAX + 1];

    (void)state;
    store_card(c, "c-5", false, token);
    unscheduled_req(&q, token, "c-5", 1000, 10);
    assert_int_equal(create(c, &q, &info, &err), 0);
    assert_int_equal(mit(c, token, info.mandate_id, 1000, "RUB", 0, &resp, &err), 0);
    assert_int_equal(mit(c, token, info.mandate_id, 1, "RUB", 0, &resp, &err), 0);
    assert_int_equal(mit(c, token, info.mandate_id, 0, "RUB", 0, &resp, &err), 0);
    assert_int_equal(resp.charge_count, 3);
    mit_refused(c, token, info.mandate_id, 1001, "RUB", 0, -API_STATUS_LIMIT_EXCEEDED,
                API_TAG_AMOUNT, MANDATE_RULE_MAX_AMOUNT);
    mit_refused(c, token, info.mandate_id, 10, "EUR", 0, -API_STATUS_MISMATCH, API_TAG_CURRENCY,
                NULL);
    mit_refused(c, token, info.mandate_id, 10, "RUB", 11, -API_STATUS_LIMIT_EXCEEDED, API_TAG_DATE,
                MANDATE_RULE_END_DATE);
    assert_int_equal(charges(c, token, info.mandate_id), 3);
    api_client_free(c);
}

/* ---- CIT_AUTHORIZE ----------------------------------------------------------------------- */

/* One click: the customer's card, active, its CVC when it needs one; the
 * PAN, expiry, CVC and initial transaction id only to a reveal caller. */
static void
test_cit(void **state)
{
    struct api_client *c = client("client"), *conn = client(CONNECTOR);
    struct api_cit_authorize_resp resp;
    struct api_error_resp err;
    char token[API_ID_MAX + 1], plain[API_ID_MAX + 1], other[API_ID_MAX + 1];

    (void)state;
    store_card(c, "c-6", true, token);
    store_card(c, "c-6", false, plain);
    store_card(c, "c-7", false, other);

    assert_int_equal(cit(c, token, "c-6", NULL, &resp, &err), -API_STATUS_CVC_REQUIRED);
    assert_int_equal(err.error_tag, API_TAG_CVC);
    assert_int_equal(cit(c, token, "c-6", CVC, &resp, &err), 0);
    assert_int_equal(strlen(resp.approval), CARDNUM_OPAQUE_LEN);
    assert_true(resp.need_cvc);
    assert_false(resp.has_pan);
    assert_false(resp.has_cvc);
    assert_false(resp.has_initial_txn_id);

    assert_int_equal(cit(conn, token, "c-6", CVC, &resp, &err), 0);
    assert_true(resp.has_pan);
    assert_string_equal(resp.pan, pans[num_pans - 3]);
    assert_true(resp.has_exp_month && resp.has_exp_year);
    assert_int_equal(resp.exp_month, 7);
    assert_int_equal(resp.exp_year, tv_future_year());
    assert_true(resp.has_cvc);
    assert_string_equal(resp.cvc, CVC);
    assert_true(resp.has_initial_txn_id);
    assert_string_equal(resp.initial_txn_id, TXN_ID);
    api_msg_cleanup(api_schema_response(API_OP_CIT_AUTHORIZE), &resp);

    /* A card without needCVC: no CVC needed, none passed on. */
    assert_int_equal(cit(conn, plain, "c-6", NULL, &resp, &err), 0);
    assert_false(resp.need_cvc);
    assert_string_equal(resp.pan, pans[num_pans - 2]);
    assert_false(resp.has_cvc);
    api_msg_cleanup(api_schema_response(API_OP_CIT_AUTHORIZE), &resp);

    /* Another customer's token, an unknown one, an inactive card. */
    assert_int_equal(cit(conn, other, "c-6", NULL, &resp, &err), -API_STATUS_NOT_FOUND);
    assert_int_equal(err.error_tag, API_TAG_TOKEN);
    assert_false(resp.has_pan);
    assert_int_equal(cit(c, token, "c-7", CVC, &resp, &err), -API_STATUS_NOT_FOUND);
    assert_int_equal(cit(c, "nosuchtoken", "c-6", CVC, &resp, &err), -API_STATUS_NOT_FOUND);
    card_active(c, plain, false);
    assert_int_equal(cit(conn, plain, "c-6", NULL, &resp, &err), -API_STATUS_INACTIVE);
    assert_int_equal(err.error_tag, API_TAG_TOKEN);
    assert_false(resp.has_pan);
    card_active(c, plain, true);
    {
        struct api_client *rv = client("reveal-client");

        assert_int_equal(cit(rv, token, "c-6", CVC, &resp, &err), -API_STATUS_DENIED);
        api_client_free(rv);
    }

    /* A MIT to the connector carries the PAN as well. */
    {
        struct api_mit_authorize_resp mr;
        char id[API_ID_MAX + 1];

        make_recurring(c, plain, "c-6", 100, 200, 30, 60, id);
        assert_int_equal(mit(conn, plain, id, 150, "RUB", 0, &mr, &err), 0);
        assert_true(mr.has_pan);
        assert_string_equal(mr.pan, pans[num_pans - 2]);
        assert_int_equal(mr.exp_month, 7);
        assert_string_equal(mr.initial_txn_id, TXN_ID);
        api_msg_cleanup(api_schema_response(API_OP_MIT_AUTHORIZE), &mr);
    }
    api_client_free(c);
    api_client_free(conn);
}

/* ---- CARD_DELETE and mandates ------------------------------------------------------------ */

static void
test_card_delete(void **state)
{
    struct api_client *c = client("client");
    struct api_card_ref ref = {0};
    struct api_empty empty;
    struct api_mandate_info info;
    struct api_error_resp err;
    char token[API_ID_MAX + 1], id[API_ID_MAX + 1];

    (void)state;
    store_card(c, "c-8", false, token);
    make_recurring(c, token, "c-8", 1, 100, 30, 60, id);
    snprintf(ref.merchant, sizeof(ref.merchant), "m-1");
    snprintf(ref.token, sizeof(ref.token), "%s", token);
    assert_int_equal(api_call_card_delete(c, &ref, &empty, &err), -API_STATUS_CONFLICT);
    assert_int_equal(err.error_tag, API_TAG_TOKEN);
    assert_int_equal(get(c, token, id, &info, &err), 0); /* nothing went */
    assert_int_equal(cancel(c, token, id, API_CANCELLED_BY_MERCHANT, &info, &err), 0);
    assert_int_equal(api_call_card_delete(c, &ref, &empty, &err), 0);
    assert_int_equal(get(c, token, id, &info, &err), -API_STATUS_NOT_FOUND);
    created--; /* deleted with its card */
    api_client_free(c);
}

/* ---- concurrency ----------------------------------------------------------------------- */

#define THREADS 4
#define PER_THREAD 16

struct racer {
    pthread_t th;
    pthread_barrier_t *go;
    const char *token, *id;
    unsigned ok, frequency, other;
};

static void *
race(void *arg)
{
    struct racer *r = arg;
    struct api_client *c = NULL;
    struct api_mit_authorize_req q;
    uint64_t rid;

    if (tv_daemon_client(&d, "client", &c) != 0 || api_client_connect(c) != 0) {
        r->other = PER_THREAD;
        pthread_barrier_wait(r->go);
        api_client_free(c);
        return NULL;
    }
    mit_req(&q, r->token, r->id, 1000, "RUB", 0);
    pthread_barrier_wait(r->go);
    for (unsigned i = 0; i < PER_THREAD; i++)
        if (api_client_submit(c, API_OP_MIT_AUTHORIZE, &q, &rid) != 0)
            r->other++;
    while (api_client_in_flight(c) > 0) {
        struct api_reply rep;

        if (api_client_collect(c, &rep) != 0) {
            r->other++;
            break;
        }
        if (rep.status == 0)
            r->ok++;
        else if (rep.status == -API_STATUS_LIMIT_EXCEEDED && rep.error.has_rule &&
                 strcmp(rep.error.rule, MANDATE_RULE_FREQUENCY) == 0)
            r->frequency++;
        else
            r->other++;
        api_reply_cleanup(&rep);
    }
    api_client_free(c);
    return NULL;
}

/* Many simultaneous charges of one mandate in one period: exactly one is
 * approved, every other is refused "frequency". */
static void
test_concurrent_mit(void **state)
{
    struct api_client *c = client("client");
    struct racer r[THREADS];
    pthread_barrier_t go;
    char token[API_ID_MAX + 1], id[API_ID_MAX + 1];
    unsigned ok = 0, frequency = 0, other = 0;

    (void)state;
    store_card(c, "c-9", false, token);
    make_recurring(c, token, "c-9", 1, 5000, 30, 365, id);
    pthread_barrier_init(&go, NULL, THREADS);
    for (unsigned i = 0; i < THREADS; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].go = &go;
        r[i].token = token;
        r[i].id = id;
        assert_int_equal(pthread_create(&r[i].th, NULL, race, &r[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(r[i].th, NULL);
        ok += r[i].ok;
        frequency += r[i].frequency;
        other += r[i].other;
    }
    pthread_barrier_destroy(&go);
    approved += ok;
    assert_int_equal(other, 0);
    assert_int_equal(ok, 1);
    assert_int_equal(frequency, THREADS * PER_THREAD - 1);
    assert_int_equal(charges(c, token, id), 1);
    api_client_free(c);
}

/* ---- the command line --------------------------------------------------------------- */

/* Runs the CLI as |who| with |args|, stdin from |in| (NULL: none), output
 * into the test directory's cli.out and cli.err; returns its exit status. */
static int
cli(const char *who, const char *in, const char *args)
{
    return tv_run("%s%s%s %s --server 127.0.0.1:%u --server-name localhost --ca %s/ca.pem "
                  "--cert %s/%s.pem --key %s/%s.key %s < %s > %s/cli.out 2> %s/cli.err",
                  in != NULL ? "printf '" : "", in != NULL ? in : "", in != NULL ? "' |" : "",
                  TV_CLI_PATH, d.port, d.certs, d.certs, who, d.certs, who, args,
                  in != NULL ? "/dev/stdin" : "/dev/null", d.token.dir, d.token.dir);
}

static void
cli_file(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", d.token.dir, name);
}

/* The flow through tokenvault: a mandate made with a seed 003 date
 * (DD.MM.YYYY), a MIT approved and the next refused with its rule and the
 * REFUSED exit code, a CIT with its CVC on stdin to the connector. */
static void
test_cli(void **state)
{
    struct api_client *c = client("client");
    char token[API_ID_MAX + 1], args[1024], out[400], err[400], id[API_ID_MAX + 1] = "";
    struct api_date end = tv_date_in_days(100), today = tv_date_in_days(0);
    FILE *f;

    (void)state;
    store_card(c, "c-12", true, token);
    api_client_free(c);
    cli_file("cli.out", out, sizeof(out));
    cli_file("cli.err", err, sizeof(err));
    snprintf(args, sizeof(args),
             "--json mandate create --merchant m-1 --token %s --customer-number c-12 "
             "--mandate-kind recurring --min-amount 100 --max-amount 900 --currency RUB "
             "--recurring-count 14 --recurring-max-date %02u.%02u.%04u",
             token, end.day, end.month, end.year);
    assert_int_equal(cli("client", NULL, args), 0);
    created++;
    assert_int_equal(tv_run("python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))"
                            "[\"mandateId\"])' %s > %s/cli.id", out, d.token.dir), 0);
    cli_file("cli.id", args, sizeof(args));
    assert_non_null(f = fopen(args, "r"));
    assert_non_null(fgets(id, sizeof(id), f));
    fclose(f);
    id[strcspn(id, "\n")] = '\0';
    assert_int_equal(strlen(id), CARDNUM_OPAQUE_LEN);

    snprintf(args, sizeof(args),
             "mit authorize --merchant m-1 --token %s --mandate-id %s --amount 900 --currency RUB "
             "--date %04u-%02u-%02u", token, id, today.year, today.month, today.day);
    assert_int_equal(cli("client", NULL, args), 0);
    approved++;
    assert_int_equal(tv_file_has(out, "chargeCount"), 1);
    assert_int_equal(cli("client", NULL, args), 6); /* REFUSED */
    assert_int_equal(tv_file_has(err, "LIMIT_EXCEEDED"), 1);
    assert_int_equal(tv_file_has(err, "(rule frequency)"), 1);

    snprintf(args, sizeof(args),
             "cit authorize --merchant m-1 --token %s --customer-number c-12 --amount 4990 "
             "--currency RUB", token);
    assert_int_equal(cli(CONNECTOR, "cvc=" CVC "\\n", args), 0);
    cit_approved++;
    cit_pan++;
    assert_int_equal(tv_file_has(out, pans[num_pans - 1]), 1);
    assert_int_equal(tv_file_has(out, CVC), 1);
    assert_int_equal(cli("client", NULL, args), 8); /* INPUT: CVC_REQUIRED */
    assert_int_equal(tv_file_has(err, "CVC_REQUIRED"), 1);
    /* The answer files hold a PAN and a CVC: gone before the scans. */
    assert_int_equal(tv_run("rm -f %s %s", out, err), 0);
}

/* ---- durability, edits to the store, what the files hold ------------------------------ */

/* Prepares what the store edits below work on: a card to lose its consent
 * flag, one to expire, a mandate to end, two charged "a period ago". */
static void
test_prepare_edits(void **state)
{
    struct api_client *c = client("client");
    struct api_mit_authorize_resp resp;
    struct api_error_resp err;

    (void)state;
    store_card(c, "c-10", false, tok_noconsent);
    store_card(c, "c-10", false, tok_expired);
    store_card(c, "c-10", false, tok_ended);
    make_recurring(c, tok_ended, "c-10", 1, 100, 1, 30, id_ended);
    store_card(c, "c-10", false, tok_period);
    make_recurring(c, tok_period, "c-10", 1, 100, 7, 60, id_period);
    store_card(c, "c-10", false, tok_period_soon);
    make_recurring(c, tok_period_soon, "c-10", 1, 100, 7, 60, id_period_soon);
    assert_int_equal(mit(c, tok_period, id_period, 50, "RUB", 0, &resp, &err), 0);
    assert_int_equal(mit(c, tok_period_soon, id_period_soon, 50, "RUB", 0, &resp, &err), 0);
    api_client_free(c);
}

static int
edit_card(struct store_txn *t, const char *token, void (*fn)(struct card_record *))
{
    struct card_record rec;
    struct api_writer w;
    MDB_val v;
    int r;

    if ((r = store_get(t, STORE_DB_CARDS, token, strlen(token), &v)) != 0 ||
        (r = record_decode(&rec, v.mv_data, v.mv_size)) != 0)
        return r;
    fn(&rec);
    api_writer_init(&w, RECORD_MAX);
    if ((r = record_encode(&w, &rec)) == 0)
        r = store_put(t, STORE_DB_CARDS, token, strlen(token), api_writer_data(&w),
                      api_writer_len(&w), 0);
    api_writer_cleanup(&w);
    return r;
}

static int
edit_mandate(struct store_txn *t, const char *token, const char *id,
             void (*fn)(struct mandate_record *))
{
    struct mandate_record m;
    struct api_writer w;
    uint8_t key[MANDATE_KEY_MAX];
    size_t klen = mandate_key(key, token, id);
    MDB_val v;
    int r;

    if ((r = store_get(t, STORE_DB_MANDATES, key, klen, &v)) != 0 ||
        (r = mandate_decode(&m, v.mv_data, v.mv_size)) != 0)
        return r;
    fn(&m);
    api_writer_init(&w, MANDATE_MAX);
    if ((r = mandate_encode(&w, &m)) == 0)
        r = store_put(t, STORE_DB_MANDATES, key, klen, api_writer_data(&w), api_writer_len(&w), 0);
    api_writer_cleanup(&w);
    return r;
}

static void
no_consent(struct card_record *r)
{
    r->flags &= (uint8_t)~RECORD_F_CONSENT;
}

static void
expired(struct card_record *r)
{
    r->exp_year = 2021;
}

/* Made 40 days ago, ended yesterday. */
static void
ended(struct mandate_record *m)
{
    m->created_at -= 40u * DAY;
    m->max_date = tv_date_in_days(-1);
}

/* Made 40 days ago, charged 7 days ago: today's charge is due. */
static void
charged_period_ago(struct mandate_record *m)
{
    m->created_at -= 40u * DAY;
    m->last_charge = tv_date_in_days(-7);
}

/* Charged 6 days ago: today's is one day too soon. */
static void
charged_6_days_ago(struct mandate_record *m)
{
    m->created_at -= 40u * DAY;
    m->last_charge = tv_date_in_days(-6);
}

static int
edit_apply(struct store_write *w, struct store_txn *t)
{
    int r;

    (void)w;
    if ((r = edit_card(t, tok_noconsent, no_consent)) != 0 ||
        (r = edit_card(t, tok_expired, expired)) != 0 ||
        (r = edit_mandate(t, tok_ended, id_ended, ended)) != 0 ||
        (r = edit_mandate(t, tok_period, id_period, charged_period_ago)) != 0 ||
        (r = edit_mandate(t, tok_period_soon, id_period_soon, charged_6_days_ago)) != 0)
        return r;
    return 0;
}

static void
edit_done(struct store_write *w, int result)
{
    (void)w;
    (void)result;
}

/* An approved charge survives kill -9 right after its answer: after the
 * restart the next charge of the period is refused "frequency". Then the
 * edits made while the daemon was down: a card saved without consent, an
 * expired card, an ended mandate, a charge a period ago. */
static void
test_kill_and_restart(void **state)
{
    struct api_client *c = client("client");
    struct api_mit_authorize_resp resp;
    struct api_mandate_info info;
    struct api_mandate_create_req q;
    struct api_cit_authorize_resp cr;
    struct api_error_resp err;
    struct vault_store *st = NULL;
    struct store_write w = {edit_apply, edit_done, NULL, 0};
    char token[API_ID_MAX + 1], id[API_ID_MAX + 1], msg[256];

    (void)state;
    store_card(c, "c-11", false, token);
    make_recurring(c, token, "c-11", 1, 100, 30, 365, id);
    assert_int_equal(mit(c, token, id, 99, "RUB", 0, &resp, &err), 0);
    assert_int_equal(tv_daemon_stop(&d, SIGKILL), -1);
    api_client_free(c);

    assert_int_equal(store_open(&st, d.store, 64ull << 20, msg, sizeof(msg)), 0);
    assert_int_equal(store_writer_start(st, NULL, 4), 0);
    assert_int_equal(store_write_wait(st, &w), 0);
    store_close(st);
    assert_int_equal(tv_daemon_start(&d), 0);

    c = client("client");
    assert_int_equal(charges(c, token, id), 1);
    mit_refused(c, token, id, 99, "RUB", 0, -API_STATUS_LIMIT_EXCEEDED, API_TAG_DATE,
                MANDATE_RULE_FREQUENCY);

    /* A card saved without the payer's consent (a device PAN kept for one
     * payment): no mandate, no CIT. */
    recurring_req(&q, tok_noconsent, "c-10", 1, 100, 30, 60);
    assert_int_equal(create(c, &q, &info, &err), -API_STATUS_CONSENT_REQUIRED);
    assert_int_equal(err.error_tag, API_TAG_TOKEN);
    assert_int_equal(cit(c, tok_noconsent, "c-10", NULL, &cr, &err), -API_STATUS_CONSENT_REQUIRED);

    /* An expired card. */
    recurring_req(&q, tok_expired, "c-10", 1, 100, 30, 60);
    assert_int_equal(create(c, &q, &info, &err), -API_STATUS_CARD_EXPIRED);
    assert_int_equal(cit(c, tok_expired, "c-10", NULL, &cr, &err), -API_STATUS_CARD_EXPIRED);
    assert_int_equal(err.error_tag, API_TAG_TOKEN);

    /* A mandate past its end date: ended, refused INACTIVE, a cancel
     * changes nothing. */
    assert_int_equal(get(c, tok_ended, id_ended, &info, &err), 0);
    assert_int_equal(info.status, API_MANDATE_ENDED);
    mit_refused(c, tok_ended, id_ended, 50, "RUB", 0, -API_STATUS_INACTIVE, API_TAG_MANDATE_ID,
                NULL);
    mit_refused(c, tok_ended, id_ended, 50, "RUB", -2, -API_STATUS_INACTIVE, API_TAG_MANDATE_ID,
                NULL);
    assert_int_equal(cancel(c, tok_ended, id_ended, API_CANCELLED_BY_MERCHANT, &info, &err), 0);
    assert_int_equal(info.status, API_MANDATE_ENDED);
    assert_false(info.has_cancelled_by);

    /* RecurringCount = 7: seven days after the last charge it is due, six
     * days after it is not; a date before the last charge is refused. */
    mit_refused(c, tok_period, id_period, 50, "RUB", -8, -API_STATUS_INVALID_ARGUMENT,
                API_TAG_DATE, NULL);
    mit_refused(c, tok_period_soon, id_period_soon, 50, "RUB", 0, -API_STATUS_LIMIT_EXCEEDED,
                API_TAG_DATE, MANDATE_RULE_FREQUENCY);
    assert_int_equal(mit(c, tok_period, id_period, 50, "RUB", 0, &resp, &err), 0);
    assert_int_equal(resp.charge_count, 2);
    assert_true(date_eq(resp.last_charge_date, tv_date_in_days(0)));
    api_client_free(c);
}

struct audit_count {
    unsigned mit_ok, mit_limit, cit_ok, cit_pan, create_ok, refusals;
};

static int
count_entry(void *arg, const MDB_val *k, const MDB_val *v)
{
    struct audit_count *a = arg;
    struct audit_entry e;

    (void)k;
    assert_int_equal(audit_decode(&e, v->mv_data, v->mv_size), 0);
    if (e.type != AUDIT_EVENT)
        return 0;
    if (e.opcode == API_OP_MIT_AUTHORIZE) {
        a->mit_ok += e.status == API_STATUS_OK;
        a->mit_limit += e.status == API_STATUS_LIMIT_EXCEEDED &&
                        (strcmp(e.detail, MANDATE_RULE_FREQUENCY) == 0 ||
                         strcmp(e.detail, MANDATE_RULE_MIN_AMOUNT) == 0 ||
                         strcmp(e.detail, MANDATE_RULE_MAX_AMOUNT) == 0 ||
                         strcmp(e.detail, MANDATE_RULE_END_DATE) == 0);
    }
    if (e.opcode == API_OP_CIT_AUTHORIZE) {
        a->cit_ok += e.status == API_STATUS_OK;
        a->cit_pan += e.status == API_STATUS_OK && strcmp(e.detail, "approved_pan") == 0;
    }
    a->create_ok += e.opcode == API_OP_MANDATE_CREATE && e.status == API_STATUS_OK;
    a->refusals += (e.opcode >= API_OP_MANDATE_CREATE && e.opcode <= API_OP_MIT_AUTHORIZE) &&
                   e.status != API_STATUS_OK && e.status != API_STATUS_DENIED;
    return 0;
}

/* No PAN or CVC in the store file or the log; the audit log holds every
 * approved charge and mandate, and the refusals the writer decided; the
 * mandates database holds exactly the mandates made. */
static void
test_files_and_audit(void **state)
{
    char path[400], msg[256];
    struct vault_store *st = NULL;
    struct store_txn t;
    struct store_stats stats;
    struct audit_count a = {0};
    uint64_t entries = 0;

    (void)state;
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);
    snprintf(path, sizeof(path), "%s/data.mdb", d.store);
    for (size_t i = 0; i < num_pans; i++) {
        assert_int_equal(tv_file_contains(path, pans[i], 16), 0);
        assert_int_equal(tv_file_contains(d.log, pans[i], 16), 0);
    }
    assert_int_equal(tv_file_contains(path, CVC, strlen(CVC)), 0);
    assert_int_equal(tv_file_contains(d.log, CVC, strlen(CVC)), 0);
    assert_int_equal(tv_file_contains(d.log, "op=mit_authorize status=LIMIT_EXCEEDED", 38), 1);
    assert_int_equal(tv_file_contains(path, "411122", 6), 1); /* the BIN: the scan works */

    assert_int_equal(store_open(&st, d.store, 64ull << 20, msg, sizeof(msg)), 0);
    assert_int_equal(store_stats_get(st, &stats), 0);
    assert_int_equal(stats.entries[STORE_DB_MANDATES], created);
    assert_int_equal(store_read_begin(st, &t), 0);
    assert_int_equal(audit_verify(&t, NULL, 0, &entries, NULL, NULL), 0);
    assert_int_equal(store_each(&t, STORE_DB_AUDIT, NULL, 0, count_entry, &a), 0);
    store_read_end(&t);
    store_close(st);
    assert_int_equal(a.mit_ok, approved);
    assert_int_equal(a.cit_ok, cit_approved);
    assert_int_equal(a.cit_pan, cit_pan);
    assert_true(cit_pan >= 3);
    assert_int_equal(a.create_ok, created + 1); /* one went with its card */
    assert_true(a.mit_limit >= THREADS * PER_THREAD - 1 + 10);
    assert_true(a.refusals > a.mit_limit);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recurring_lifecycle),
        cmocka_unit_test(test_create_refusals),
        cmocka_unit_test(test_mit_rules),
        cmocka_unit_test(test_mit_unscheduled),
        cmocka_unit_test(test_cit),
        cmocka_unit_test(test_card_delete),
        cmocka_unit_test(test_concurrent_mit),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_prepare_edits),
        cmocka_unit_test(test_kill_and_restart),
        cmocka_unit_test(test_files_and_audit),
    };

    return cmocka_run_group_tests_name("mandates", tests, group_setup, group_teardown);
}
