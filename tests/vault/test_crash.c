/*
 * test_crash.c - crash safety: the real tokenvaultd under a write load is
 * killed with SIGKILL at a random moment, again and again, and after every
 * restart nothing it acknowledged is lost:
 *   - every card whose CARD_STORE was answered is there and its PAN decrypts
 *     (CARD_REVEAL by the settlement client), under a token no other card has,
 *     and storing it again finds the same token (the fingerprint index holds);
 *   - every sale session whose SESSION_CHECK was answered OK stays consumed
 *     (checked again: REPLAYED);
 *   - the mandate's charge count is at least the highest count an approved
 *     MIT_AUTHORIZE answered;
 *   - the store is consistent (vault/fsck.h: every index entry points to a
 *     record, every record has its index entries, the audit chain is whole)
 *     after each kill, before the restart.
 * 0 lost is the only pass. Rounds: TV_CRASH_ROUNDS (default 5 here; the long
 * run is scripts/crash-soak, docs/OPERATIONS.md).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/client.h"
#include "tests/support/daemon.h"
#include "tests/support/store_check.h"

#define ROUNDS_DEFAULT 5
/* Load threads per round: cards, sessions, charges. */
#define CARD_THREADS 2
/* Acknowledged writes the test can remember over all rounds. */
#define CARDS_MAX 200000
#define SESSIONS_MAX 20000
/* The kill comes 150..900 ms into a round's load. */
#define KILL_MIN_MS 150
#define KILL_SPAN_MS 750

struct card_ack {
    unsigned pan_n;
    char token[API_ID_MAX + 1];
};

struct session_ack {
    struct api_session_check_req check;
};

static struct tv_daemon d;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct card_ack *cards;
static size_t num_cards;
static struct session_ack *sessions;
static size_t num_sessions;
static atomic_uint next_pan;
static atomic_bool stop_load;
static char mandate_token[API_ID_MAX + 1], mandate_id[API_ID_MAX + 1];
static uint32_t charges_acked; /* the highest charge count an approval answered */
static unsigned mit_seq;

/* ---- the load ------------------------------------------------------------------ */

static void *
card_load(void *arg)
{
    struct api_client *c = NULL;
    char pan[17], customer[32];

    (void)arg;
    if (tv_daemon_client(&d, "client", &c) != 0)
        return NULL;
    while (!atomic_load(&stop_load)) {
        struct api_card_store_req q;
        struct api_card_store_resp resp;
        struct api_error_resp err;
        unsigned n = atomic_fetch_add(&next_pan, 1);
        int r;

        tv_test_pan(n, pan);
        snprintf(customer, sizeof(customer), "crash-%u", n);
        tv_card_store_req(&q, "m-1", customer, pan);
        r = api_call_card_store(c, &q, &resp, &err);
        api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
        if (r != 0)
            break; /* the daemon is gone: this one is not acknowledged */
        pthread_mutex_lock(&mu);
        if (num_cards < CARDS_MAX) {
            cards[num_cards].pan_n = n;
            memcpy(cards[num_cards].token, resp.token, sizeof(resp.token));
            num_cards++;
        }
        pthread_mutex_unlock(&mu);
        api_msg_cleanup(api_schema_response(API_OP_CARD_STORE), &resp);
    }
    api_client_free(c);
    return NULL;
}

static void
session_init_req(struct api_session_init_req *q, unsigned n)
{
    memset(q, 0, sizeof(*q));
    snprintf(q->merchant, sizeof(q->merchant), "m-1");
    q->access_token_hash.len = API_HASH_LEN;
    memcpy(q->access_token_hash.data, &n, sizeof(n));
    q->amount = 100u + n % 1000u;
    memcpy(q->currency, "EUR", 4);
    q->device_data.len =
        (size_t)snprintf((char *)q->device_data.data, API_DEVICE_DATA_MAX, "crash device %u", n);
}

static void *
session_load(void *arg)
{
    struct api_client *c = NULL;

    (void)arg;
    if (tv_daemon_client(&d, "client", &c) != 0)
        return NULL;
    while (!atomic_load(&stop_load)) {
        struct api_session_init_req q;
        struct api_session_init_resp resp;
        struct api_session_check_req chk;
        struct api_session_check_resp cr;
        struct api_error_resp err;

        session_init_req(&q, atomic_fetch_add(&next_pan, 1));
        if (api_call_session_init(c, &q, &resp, &err) != 0)
            break;
        tv_session_check_req(&chk, &q, &resp);
        api_msg_cleanup(api_schema_response(API_OP_SESSION_INIT), &resp);
        if (api_call_session_check(c, &chk, &cr, &err) != 0)
            break;
        api_msg_cleanup(api_schema_response(API_OP_SESSION_CHECK), &cr);
        pthread_mutex_lock(&mu);
        if (num_sessions < SESSIONS_MAX)
            sessions[num_sessions++].check = chk;
        pthread_mutex_unlock(&mu);
    }
    api_client_free(c);
    return NULL;
}

static void *
charge_load(void *arg)
{
    struct api_client *c = NULL;

    (void)arg;
    if (tv_daemon_client(&d, "client", &c) != 0)
        return NULL;
    while (!atomic_load(&stop_load)) {
        struct api_mit_authorize_req q = {0};
        struct api_mit_authorize_resp resp;
        struct api_error_resp err;

        snprintf(q.merchant, sizeof(q.merchant), "m-1");
        memcpy(q.token, mandate_token, sizeof(q.token));
        memcpy(q.mandate_id, mandate_id, sizeof(q.mandate_id));
        q.amount = 100u + (mit_seq++ % 50u);
        memcpy(q.currency, "RUB", 4);
        q.date = tv_date_in_days(0);
        if (api_call_mit_authorize(c, &q, &resp, &err) != 0)
            break;
        pthread_mutex_lock(&mu);
        if (resp.charge_count > charges_acked)
            charges_acked = resp.charge_count;
        pthread_mutex_unlock(&mu);
        api_msg_cleanup(api_schema_response(API_OP_MIT_AUTHORIZE), &resp);
    }
    api_client_free(c);
    return NULL;
}

/* ---- the checks ------------------------------------------------------------------- */

static void
assert_store_consistent(void)
{
    struct fsck_counts n = tv_store_consistent(d.store);

    assert_true(n.cards >= num_cards);
}

static int
cmp_token(const void *a, const void *b)
{
    return strcmp(((const struct card_ack *)a)->token, ((const struct card_ack *)b)->token);
}

/* Every acknowledged card decrypts to its PAN; no token is shared; a
 * re-store of a sample finds the same token. */
static void
assert_cards_kept(void)
{
    struct api_client *rc = NULL, *gw = NULL;
    struct card_ack *sorted = malloc(num_cards * sizeof(*sorted) + 1);
    char pan[17], customer[32];

    assert_non_null(sorted);
    memcpy(sorted, cards, num_cards * sizeof(*sorted));
    qsort(sorted, num_cards, sizeof(*sorted), cmp_token);
    for (size_t i = 1; i < num_cards; i++)
        if (strcmp(sorted[i - 1].token, sorted[i].token) == 0)
            fail_msg("token %s was given to two cards", sorted[i].token);
    free(sorted);

    assert_int_equal(tv_daemon_client(&d, "reveal-client", &rc), 0);
    assert_int_equal(tv_daemon_client(&d, "client", &gw), 0);
    for (size_t i = 0; i < num_cards; i++) {
        struct api_card_reveal_req q = {0};
        struct api_card_reveal_resp resp;
        struct api_error_resp err;

        snprintf(q.merchant, sizeof(q.merchant), "m-1");
        memcpy(q.token, cards[i].token, sizeof(q.token));
        q.purpose = API_PURPOSE_AUTHORIZATION;
        if (api_call_card_reveal(rc, &q, &resp, &err) != 0)
            fail_msg("acknowledged card %s is lost: %s", cards[i].token, err.message);
        tv_test_pan(cards[i].pan_n, pan);
        assert_string_equal(resp.pan, pan);
        api_msg_cleanup(api_schema_response(API_OP_CARD_REVEAL), &resp);
        if (i % 50 == 0) {
            struct api_card_store_req sq;
            struct api_card_store_resp sr;

            snprintf(customer, sizeof(customer), "crash-%u", cards[i].pan_n);
            tv_card_store_req(&sq, "m-1", customer, pan);
            assert_int_equal(api_call_card_store(gw, &sq, &sr, &err), 0);
            assert_string_equal(sr.token, cards[i].token);
            assert_int_equal(sr.dedup, API_DEDUP_EXISTING);
            api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &sq);
            api_msg_cleanup(api_schema_response(API_OP_CARD_STORE), &sr);
        }
    }
    api_client_free(rc);
    api_client_free(gw);
}

static void
assert_sessions_consumed(void)
{
    struct api_client *c = NULL;

    assert_int_equal(tv_daemon_client(&d, "client", &c), 0);
    for (size_t i = 0; i < num_sessions; i++) {
        struct api_session_check_resp resp;
        struct api_error_resp err;
        int r = api_call_session_check(c, &sessions[i].check, &resp, &err);

        if (r == 0)
            fail_msg("session %zu was consumed, answered, and then accepted again", i);
        assert_int_equal(r, -API_STATUS_REPLAYED);
    }
    api_client_free(c);
}

static void
assert_charges_kept(void)
{
    struct api_client *c = NULL;
    struct api_mandate_ref q = {0};
    struct api_mandate_info info;
    struct api_error_resp err;

    assert_int_equal(tv_daemon_client(&d, "client", &c), 0);
    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    memcpy(q.token, mandate_token, sizeof(q.token));
    memcpy(q.mandate_id, mandate_id, sizeof(q.mandate_id));
    assert_int_equal(api_call_mandate_get(c, &q, &info, &err), 0);
    if (info.charge_count < charges_acked)
        fail_msg("%u charges approved and answered, %u recorded", charges_acked, info.charge_count);
    api_msg_cleanup(api_schema_response(API_OP_MANDATE_GET), &info);
    api_client_free(c);
}

/* ---- the test ------------------------------------------------------------------------- */

static int
setup(void **state)
{
    struct api_client *c = NULL;
    struct api_card_store_req q;
    struct api_card_store_resp resp;
    struct api_mandate_create_req m = {0};
    struct api_mandate_info info;
    struct api_error_resp err;
    char pan[17];
    int r = -1;

    (void)state;
    cards = calloc(CARDS_MAX, sizeof(*cards));
    sessions = calloc(SESSIONS_MAX, sizeof(*sessions));
    if (cards == NULL || sessions == NULL || tv_daemon_setup(&d, NULL) != 0 ||
        tv_daemon_start(&d) != 0 || tv_daemon_client(&d, "client", &c) != 0)
        return -1;
    /* The card with an unscheduled mandate the charges run on. */
    tv_test_pan(999999, pan);
    tv_card_store_req(&q, "m-1", "crash-mit", pan);
    if (api_call_card_store(c, &q, &resp, &err) != 0)
        goto out;
    memcpy(mandate_token, resp.token, sizeof(mandate_token));
    api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
    api_msg_cleanup(api_schema_response(API_OP_CARD_STORE), &resp);
    snprintf(m.merchant, sizeof(m.merchant), "m-1");
    memcpy(m.token, mandate_token, sizeof(m.token));
    snprintf(m.customer_number, sizeof(m.customer_number), "crash-mit");
    m.kind = API_MANDATE_KIND_UNSCHEDULED;
    m.max_amount = 100000;
    memcpy(m.currency, "RUB", 4);
    m.recurring_max_date = tv_date_in_days(0);
    m.recurring_max_date.year++;
    if (api_call_mandate_create(c, &m, &info, &err) != 0)
        goto out;
    memcpy(mandate_id, info.mandate_id, sizeof(mandate_id));
    api_msg_cleanup(api_schema_response(API_OP_MANDATE_CREATE), &info);
    atomic_store(&next_pan, 1);
    r = 0;
out:
    api_client_free(c);
    return r;
}

static int
teardown(void **state)
{
    (void)state;
    tv_daemon_teardown(&d);
    free(cards);
    free(sessions);
    return 0;
}

static void
test_kill_under_load(void **state)
{
    const char *env = getenv("TV_CRASH_ROUNDS");
    unsigned rounds = env != NULL ? (unsigned)strtoul(env, NULL, 10) : ROUNDS_DEFAULT;
    unsigned seed = (unsigned)time(NULL);
    uint64_t random_state = seed;

    (void)state;
    print_message("crash rounds: %u, seed %u\n", rounds, seed);
    for (unsigned round = 0; round < rounds; round++) {
        pthread_t th[CARD_THREADS + 2];
        unsigned ms = KILL_MIN_MS + (unsigned)(tv_random_next(&random_state) % KILL_SPAN_MS);

        atomic_store(&stop_load, false);
        for (size_t i = 0; i < CARD_THREADS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, card_load, NULL), 0);
        assert_int_equal(pthread_create(&th[CARD_THREADS], NULL, session_load, NULL), 0);
        assert_int_equal(pthread_create(&th[CARD_THREADS + 1], NULL, charge_load, NULL), 0);
        usleep(ms * 1000u);
        assert_int_equal(tv_daemon_stop(&d, SIGKILL), -1); /* died by the signal */
        atomic_store(&stop_load, true);
        for (size_t i = 0; i < CARD_THREADS + 2; i++)
            pthread_join(th[i], NULL);
        print_message("round %u: killed after %u ms; acknowledged so far: %zu cards, %zu sessions, "
                      "%u charges\n",
                      round, ms, num_cards, num_sessions, charges_acked);
        assert_store_consistent();
        assert_int_equal(tv_daemon_start(&d), 0);
    }
    assert_true(num_cards > 0 && num_sessions > 0 && charges_acked > 0);
    assert_cards_kept();
    assert_sessions_consumed();
    assert_charges_kept();
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);
    assert_store_consistent();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_under_load),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
