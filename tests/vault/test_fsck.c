/*
 * test_fsck.c - the offline consistency check (vault/fsck.h) on a store the
 * real tokenvaultd wrote: cards (one linked to two customers), a card
 * mapping, a mandate, a sale session and a QR request. The store as written
 * is consistent; then each kind of damage, made on a copy with LMDB itself,
 * is found and named by its database: an index entry without its record, a
 * record without its index entry, a one-sided customer link or mapping, a
 * mandate of a card that does not exist, an undecodable session, a broken
 * audit chain, a session or QR request signed by a session tag key the
 * store does not hold. `tokenvault-admin check` reports the same with its exit code.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "api/client.h"
#include "tests/support/daemon.h"
#include "tests/support/store_check.h"
#include "vault/fsck.h"
#include "vault/store.h"

static struct tv_daemon d;
static char copy[400];
/* What the last check reported, one "db: sentence" per line. */
static char found[8192];

static void
collect(void *ctx, const char *db, const char *what)
{
    size_t n = strlen(found);

    (void)ctx;
    snprintf(found + n, sizeof(found) - n, "%s: %s\n", db, what);
}

/* Runs the check on |dir|; returns the number of problems. */
static uint64_t
check(const char *dir, struct fsck_counts *n)
{
    found[0] = '\0';
    tv_store_check(dir, collect, NULL, n);
    if (n->problems > 0)
        print_message("%s", found);
    return n->problems;
}

static void
store_card(struct api_client *c, const char *customer, const char *pan, char token[API_ID_MAX + 1])
{
    struct api_card_store_req q;
    struct api_card_store_resp resp;
    struct api_error_resp err;

    tv_card_store_req(&q, "m-1", customer, pan);
    assert_int_equal(api_call_card_store(c, &q, &resp, &err), 0);
    memcpy(token, resp.token, API_ID_MAX + 1);
    api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
    api_msg_cleanup(api_schema_response(API_OP_CARD_STORE), &resp);
}

static int
setup(void **state)
{
    struct api_client *c = NULL;
    char t1[API_ID_MAX + 1], t2[API_ID_MAX + 1];
    struct api_error_resp err;
    int r = -1;

    (void)state;
    if (tv_daemon_setup(&d, NULL) != 0 || tv_daemon_start(&d) != 0 ||
        tv_daemon_client(&d, "client", &c) != 0)
        return -1;
    store_card(c, "c-1", "4111111111111111", t1);
    store_card(c, "c-2", "4111111111111111", t2); /* the same card, linked */
    store_card(c, "c-1", "5555555555554444", t2);
    {
        struct api_card_map_req q = {0};
        struct api_empty resp;

        snprintf(q.merchant, sizeof(q.merchant), "m-1");
        snprintf(q.client_card_id, sizeof(q.client_card_id), "app-card-1");
        snprintf(q.token, sizeof(q.token), "%s", t1);
        if (api_call_card_map(c, &q, &resp, &err) != 0) {
            fprintf(stderr, "card_map: %s\n", err.message);
            goto out;
        }
    }
    {
        struct api_mandate_create_req q = {0};
        struct api_mandate_info resp;

        snprintf(q.merchant, sizeof(q.merchant), "m-1");
        snprintf(q.token, sizeof(q.token), "%s", t2);
        snprintf(q.customer_number, sizeof(q.customer_number), "c-1");
        q.kind = API_MANDATE_KIND_UNSCHEDULED;
        q.max_amount = 50000;
        memcpy(q.currency, "RUB", 4);
        q.recurring_max_date = tv_date_in_days(365);
        if (api_call_mandate_create(c, &q, &resp, &err) != 0) {
            fprintf(stderr, "mandate_create: %s\n", err.message);
            goto out;
        }
        api_msg_cleanup(api_schema_response(API_OP_MANDATE_CREATE), &resp);
    }
    {
        struct api_session_init_req q = {0};
        struct api_session_init_resp resp;

        snprintf(q.merchant, sizeof(q.merchant), "m-1");
        q.access_token_hash.len = API_HASH_LEN;
        q.device_data.len = (size_t)snprintf((char *)q.device_data.data, API_DEVICE_DATA_MAX,
                                             "model=Pixel 9;os=16");
        q.amount = 1000;
        memcpy(q.currency, "RUB", 4);
        if (api_call_session_init(c, &q, &resp, &err) != 0) {
            fprintf(stderr, "session_init: %s\n", err.message);
            goto out;
        }
        api_msg_cleanup(api_schema_response(API_OP_SESSION_INIT), &resp);
    }
    {
        struct api_qr_issue_req q = {0};
        struct api_qr_issue_resp resp;

        snprintf(q.merchant, sizeof(q.merchant), "m-1");
        snprintf(q.order_id, sizeof(q.order_id), "order-1");
        q.amount = 2500;
        memcpy(q.currency, "RUB", 4);
        q.lifetime = 600;
        if (api_call_qr_issue(c, &q, &resp, &err) != 0) {
            fprintf(stderr, "qr_issue: %s\n", err.message);
            goto out;
        }
        api_msg_cleanup(api_schema_response(API_OP_QR_ISSUE), &resp);
    }
    r = tv_daemon_stop(&d, SIGTERM);
out:
    api_client_free(c);
    snprintf(copy, sizeof(copy), "%s/damaged", d.token.dir);
    return r;
}

static int
teardown(void **state)
{
    (void)state;
    tv_daemon_teardown(&d);
    return 0;
}

/* A fresh copy of the daemon's store to damage. */
static void
fresh_copy(void)
{
    assert_int_equal(tv_run("rm -rf %s && cp -a %s %s", copy, d.store, copy), 0);
}

/* ---- LMDB itself, to damage the copy ---------------------------------------- */

struct raw {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
};

static void
raw_open(struct raw *w, enum store_db db)
{
    assert_int_equal(mdb_env_create(&w->env), 0);
    assert_int_equal(mdb_env_set_maxdbs(w->env, 32), 0);
    assert_int_equal(mdb_env_open(w->env, copy, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(w->env, NULL, 0, &w->txn), 0);
    assert_int_equal(mdb_dbi_open(w->txn, store_db_name(db), 0, &w->dbi), 0);
}

static void
raw_commit(struct raw *w)
{
    assert_int_equal(mdb_txn_commit(w->txn), 0);
    mdb_env_close(w->env);
}

/* Copies the |nth| entry (0: the first) of the open database. */
static void
raw_nth(struct raw *w, unsigned nth, uint8_t *key, size_t *key_len, uint8_t *val, size_t *val_len)
{
    MDB_cursor *c = NULL;
    MDB_val k, v;

    assert_int_equal(mdb_cursor_open(w->txn, w->dbi, &c), 0);
    assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_FIRST), 0);
    for (unsigned i = 0; i < nth; i++)
        assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_NEXT), 0);
    memcpy(key, k.mv_data, k.mv_size);
    *key_len = k.mv_size;
    memcpy(val, v.mv_data, v.mv_size);
    *val_len = v.mv_size;
    mdb_cursor_close(c);
}

static void
raw_del(struct raw *w, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len)
{
    MDB_val k = {key_len, (void *)key}, v = {val_len, (void *)val};

    assert_int_equal(mdb_del(w->txn, w->dbi, &k, val != NULL ? &v : NULL), 0);
}

static void
raw_put(struct raw *w, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len)
{
    MDB_val k = {key_len, (void *)key}, v = {val_len, (void *)val};

    assert_int_equal(mdb_put(w->txn, w->dbi, &k, &v, 0), 0);
}

/* How an entry is damaged: the key and value are the |nth| entry's, as
 * copied; the function edits them in place. DELETE removes the entry, PUT
 * writes the edited one (beside the original when the key changed). */
enum damage { DELETE, PUT };
typedef enum damage (*damage_fn)(uint8_t *key, size_t *key_len, uint8_t *val, size_t *val_len);

/* On a fresh copy of the store, damages the |nth| entry of |db|. */
static void
damage(enum store_db db, unsigned nth, damage_fn fn)
{
    struct raw w;
    uint8_t key[600], val[2048];
    size_t kl = 0, vl = 0;

    fresh_copy();
    raw_open(&w, db);
    raw_nth(&w, nth, key, &kl, val, &vl);
    if (fn == NULL || fn(key, &kl, val, &vl) == DELETE)
        raw_del(&w, key, kl, val, vl);
    else
        raw_put(&w, key, kl, val, vl);
    raw_commit(&w);
}

static void
delete_nth(enum store_db db, unsigned nth)
{
    damage(db, nth, NULL);
}

static enum damage
other_key(uint8_t *key, size_t *key_len, uint8_t *val, size_t *val_len)
{
    (void)key_len, (void)val, (void)val_len;
    key[0] ^= 0x01;
    return PUT;
}

static enum damage
truncated(uint8_t *key, size_t *key_len, uint8_t *val, size_t *val_len)
{
    (void)key, (void)key_len, (void)val;
    (*val_len)--;
    return PUT;
}

static enum damage
first_byte(uint8_t *key, size_t *key_len, uint8_t *val, size_t *val_len)
{
    (void)key, (void)key_len, (void)val_len;
    val[0] ^= 0xff;
    return PUT;
}

static enum damage
last_byte(uint8_t *key, size_t *key_len, uint8_t *val, size_t *val_len)
{
    (void)key, (void)key_len;
    val[*val_len - 1] ^= 0x01;
    return PUT;
}

static void
assert_found(const char *needle)
{
    if (strstr(found, needle) == NULL)
        fail_msg("no \"%s\" in:\n%s", needle, found);
}

/* ---- the tests -------------------------------------------------------------------- */

static void
test_written_store_is_consistent(void **state)
{
    struct fsck_counts n;

    (void)state;
    assert_int_equal(check(d.store, &n), 0);
    assert_int_equal(n.cards, 2);
    assert_int_equal(n.fingerprints, 2);
    assert_int_equal(n.customers, 3); /* c-1 holds two cards, c-2 one */
    assert_int_equal(n.links, 3);
    assert_int_equal(n.mappings, 2); /* forward and reverse */
    assert_int_equal(n.mandates, 1);
    assert_int_equal(n.sessions, 1);
    assert_int_equal(n.qr, 2); /* the request and its order index */
    assert_true(n.audit_entries >= 6);
    assert_int_equal(n.fpk_rebuilding, 0);
    /* The tool says the same, read-only. */
    assert_int_equal(tv_run("%s --store %s check | grep -q '^consistent$'", TV_ADMIN, d.store), 0);
}

static void
test_index_without_record(void **state)
{
    struct fsck_counts n;

    (void)state;
    /* The first card's record goes: its fingerprint, customer and link
     * entries now point at nothing. */
    delete_nth(STORE_DB_CARDS, 0);
    assert_true(check(copy, &n) >= 3);
    assert_found("fingerprints: names token");
    assert_found("customers: names token");
    assert_found("links: names token");
    assert_int_equal(tv_run("%s --store %s check >/dev/null", TV_ADMIN, copy), 3);
}

static void
test_record_without_index(void **state)
{
    struct fsck_counts n;

    (void)state;
    delete_nth(STORE_DB_FINGERPRINTS, 1);
    assert_int_equal(check(copy, &n), 1);
    assert_found("has no fingerprint entry");
}

static void
test_one_sided_customer(void **state)
{
    struct fsck_counts n;

    (void)state;
    delete_nth(STORE_DB_LINKS, 0);
    assert_int_equal(check(copy, &n), 1);
    assert_found("but links lacks it");
    delete_nth(STORE_DB_CUSTOMERS, 0);
    assert_int_equal(check(copy, &n), 1);
    assert_found("who does not hold it");
}

static void
test_one_sided_mapping(void **state)
{
    struct fsck_counts n;

    (void)state;
    delete_nth(STORE_DB_MAPPINGS, 0); /* the reverse entry sorts first (0x00) */
    assert_int_equal(check(copy, &n), 1);
    assert_found("has no reverse entry");
    delete_nth(STORE_DB_MAPPINGS, 1);
    assert_int_equal(check(copy, &n), 1);
    assert_found("has no forward entry naming it");
}

static void
test_mandate_of_no_card(void **state)
{
    struct fsck_counts n;

    (void)state;
    damage(STORE_DB_MANDATES, 0, other_key); /* the mandate under a token that does not exist */
    assert_int_equal(check(copy, &n), 1);
    assert_found("mandates: names token");
}

static void
test_undecodable_entries(void **state)
{
    struct fsck_counts n;

    (void)state;
    damage(STORE_DB_SESSIONS, 0, truncated);
    assert_int_equal(check(copy, &n), 1);
    assert_found("sessions: an entry");
    damage(STORE_DB_CARDS, 1, first_byte); /* the record's version byte */
    assert_true(check(copy, &n) >= 1);
    assert_found("does not decode");
}

/* The key version of a layout-2 session (after u8 version, u8 state) or
 * QR record (the same place) set to 9: a version the store never had. */
static enum damage
unknown_stk(uint8_t *key, size_t *key_len, uint8_t *val, size_t *val_len)
{
    (void)key, (void)key_len;
    assert_true(*val_len > 6 && val[0] == 2 && val[5] == 1); /* written with STK 1 */
    val[5] = 9;
    return PUT;
}

static void
test_unknown_session_key(void **state)
{
    struct fsck_counts n;

    (void)state;
    damage(STORE_DB_SESSIONS, 0, unknown_stk);
    assert_int_equal(check(copy, &n), 1);
    assert_found("sessions: a session of merchant m-1 names session tag key version 9");
    damage(STORE_DB_QR, 1, unknown_stk); /* 'O' sorts before 'R': the record is second */
    assert_int_equal(check(copy, &n), 1);
    assert_found("names session tag key version 9, which the store does not hold");
}

static void
test_broken_audit_chain(void **state)
{
    struct fsck_counts n;

    (void)state;
    damage(STORE_DB_AUDIT, 2, last_byte); /* one byte of the third entry */
    assert_int_equal(check(copy, &n), 1);
    assert_found("audit: the chain breaks at entry 4");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_written_store_is_consistent),
        cmocka_unit_test(test_index_without_record),
        cmocka_unit_test(test_record_without_index),
        cmocka_unit_test(test_one_sided_customer),
        cmocka_unit_test(test_one_sided_mapping),
        cmocka_unit_test(test_mandate_of_no_card),
        cmocka_unit_test(test_undecodable_entries),
        cmocka_unit_test(test_unknown_session_key),
        cmocka_unit_test(test_broken_audit_chain),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
