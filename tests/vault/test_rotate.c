/*
 * test_rotate.c - DEK rotation on a running appliance: `tokenvault-ceremony
 * rotate --kind dek` adds DEK 2 to the live store while gateways store and
 * reveal cards; SIGHUP loads it; the background job moves every record to
 * DEK 2; no request fails; every card still reveals. Then DEK 3, with the
 * daemon killed (SIGKILL) in the middle of moving the records: after a
 * restart the job resumes and finishes. STATUS and the metrics follow the
 * job's progress (records left, the run's size) through both. Then automatic
 * rotation: with dek_max_encryptions = 40 the service makes DEK 4 by itself
 * once 40 more records were sealed, and moves the records to it; and by age,
 * once the current DEK's usage record says it was made two days ago.
 * And the session tag keys (STK): sale sessions and QR requests signed
 * before a rotation pass after it, each under its own version; a store
 * from before STKs gets STK 1 at its first start and its old sessions and
 * QR requests, signed with vault-session-mac, still pass. And the
 * fingerprint keys, kept wrapped: a KEK rotation moves the index to a new
 * one; a store from before, indexed under the token key vault-fingerprint,
 * moves to a wrapped key with one rotation. Retired DEK and STK versions
 * whose KEK is gone are left unloaded; a current one stops the start.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <openssl/sha.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/client.h"
#include "api/writer.h"
#include "tests/support/daemon.h"
#include "vault/keys.h"
#include "vault/ops/qr.h"
#include "vault/ops/sessions.h"
#include "vault/record.h"
#include "vault/store.h"

#define CARDS 300

static struct tv_daemon d;
static char tokens[CARDS][API_ID_MAX + 1], out_file[400];

/* A Visa PAN for |n|: 4000 + 11 digits of n + the Luhn digit. */

static int
store_card(struct api_client *c, const char *customer, const char *pan, char *token)
{
    struct api_card_store_req q;
    struct api_card_store_resp sr;
    struct api_error_resp err;
    int r;

    tv_card_store_req(&q, "m-1", customer, pan);
    r = api_call_card_store(c, &q, &sr, &err);
    api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
    if (r == 0 && token != NULL)
        snprintf(token, API_ID_MAX + 1, "%s", sr.token);
    return r;
}

static int
reveal_is(struct api_client *c, const char *token, const char *pan)
{
    struct api_card_reveal_req q = {0};
    struct api_card_reveal_resp resp;
    struct api_error_resp err;
    int r;

    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    snprintf(q.token, sizeof(q.token), "%s", token);
    q.purpose = API_PURPOSE_AUTHORIZATION;
    r = api_call_card_reveal(c, &q, &resp, &err);
    if (r == 0 && strcmp(resp.pan, pan) != 0)
        r = -1;
    if (r == 0)
        api_msg_cleanup(api_schema_response(API_OP_CARD_REVEAL), &resp);
    return r;
}

/* Gateways at work during the rotation: store a card, reveal it, again. */
static atomic_bool traffic_stop;
static atomic_uint traffic_ok, traffic_failed;

static void *
traffic(void *arg)
{
    struct api_client *gw = NULL, *rv = NULL;
    char pan[17], token[API_ID_MAX + 1], customer[32];

    (void)arg;
    if (tv_daemon_client(&d, "client", &gw) != 0 || tv_daemon_client(&d, "reveal-client", &rv) != 0) {
        atomic_fetch_add(&traffic_failed, 1);
        goto out;
    }
    for (unsigned i = 0; !atomic_load(&traffic_stop); i++) {
        tv_test_pan(900000 + i, pan);
        snprintf(customer, sizeof(customer), "c-traffic-%u", i);
        if (store_card(gw, customer, pan, token) != 0 || reveal_is(rv, token, pan) != 0)
            atomic_fetch_add(&traffic_failed, 1);
        else
            atomic_fetch_add(&traffic_ok, 1);
    }
out:
    api_client_free(gw);
    api_client_free(rv);
    return NULL;
}

/* Counts the records on each DEK version in the stopped daemon's store. */
struct versions {
    unsigned on[8];
};

static int
count_visit(void *ctx, const MDB_val *key, const MDB_val *val)
{
    struct versions *v = ctx;
    struct card_record rec;

    (void)key;
    if (record_decode(&rec, val->mv_data, val->mv_size) == 0 && rec.dek_version < 8)
        v->on[rec.dek_version]++;
    return 0;
}

static struct versions
count_versions(void)
{
    struct versions v;
    struct vault_store *st = NULL;
    struct store_txn t = {0};
    char err[256];

    memset(&v, 0, sizeof(v));
    assert_int_equal(store_open_readonly(&st, d.store, err, sizeof(err)), 0);
    assert_int_equal(store_read_begin(st, &t), 0);
    assert_int_equal(store_each(&t, STORE_DB_CARDS, NULL, 0, count_visit, &v), 0);
    store_read_end(&t);
    store_close(st);
    return v;
}

/* Every card stored at the start reveals its own PAN; then SIGTERM. */
static void
reveal_all_then_stop(void)
{
    struct api_client *rv = NULL;
    char pan[17];

    assert_int_equal(tv_daemon_client(&d, "reveal-client", &rv), 0);
    for (unsigned i = 0; i < CARDS; i++) {
        tv_test_pan(i, pan);
        assert_int_equal(reveal_is(rv, tokens[i], pan), 0);
    }
    api_client_free(rv);
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);
}

static int
rotate_on(const struct tv_daemon *dd, const char *kind)
{
    return tv_run("cd %s && %s --module %s --token %s --pin-file %s --kind %s --store %s "
                  "--officer alice rotate > %s 2>&1", dd->token.dir, TV_CEREMONY,
                  TV_SOFTHSM_MODULE, TV_TEST_LABEL, dd->token.pin_file, kind, dd->store, out_file);
}

static int
rotate_kind(const char *kind)
{
    return rotate_on(&d, kind);
}

static int
rotate(void)
{
    return rotate_kind("dek");
}

/* How many times |dd|'s log (all its runs) holds |event|. */
static int
log_count_of(const struct tv_daemon *dd, const char *event)
{
    char cmd[600], line[32] = "", *end = NULL;
    FILE *p;
    long n;

    snprintf(cmd, sizeof(cmd), "grep -c 'event=%s' %s", event, dd->log);
    if ((p = popen(cmd, "r")) == NULL)
        return -1;
    if (fgets(line, sizeof(line), p) == NULL)
        line[0] = '\0';
    pclose(p);
    /* grep -c prints a count and a newline; no output (no log yet) is 0. */
    if (line[0] == '\0')
        return 0;
    errno = 0;
    n = strtol(line, &end, 10);
    if (errno != 0 || end == line || (*end != '\n' && *end != '\0') || n < 0 || n > INT_MAX)
        return -1;
    return (int)n;
}

static int
log_count(const char *event)
{
    return log_count_of(&d, event);
}

/* Waits (up to 60 s) until |dd|'s log holds |event| more than |before| times. */
static int
wait_log_after_of(const struct tv_daemon *dd, const char *event, int before)
{
    for (int i = 0; i < 6000; i++) {
        if (log_count_of(dd, event) > before)
            return 0;
        usleep(10000);
    }
    return -1;
}

static int
wait_log_after(const char *event, int before)
{
    return wait_log_after_of(&d, event, before);
}

/* From |dd|'s KEY_STATUS: the version of the current key whose label starts
 * with |prefix|, and whether a key labelled |other| is listed in |state|. */
static uint32_t
key_current_of(const struct tv_daemon *dd, const char *prefix, const char *other, uint8_t state,
               bool *out_listed)
{
    struct api_client_config cfg = {.unix_path = dd->officer, .request_timeout_ms = 10000};
    struct api_client *c = NULL;
    struct api_empty e = {0};
    struct api_key_status_resp ks;
    uint32_t cur = 0;

    *out_listed = false;
    assert_int_equal(api_client_new(&c, &cfg), 0);
    assert_int_equal(api_call_key_status(c, &e, &ks, NULL), 0);
    for (size_t i = 0; i < ks.num_keys; i++) {
        if (strncmp(ks.keys[i].label, prefix, strlen(prefix)) == 0 &&
            ks.keys[i].state == API_KEY_STATE_CURRENT)
            cur = ks.keys[i].version;
        if (strcmp(ks.keys[i].label, other) == 0 && ks.keys[i].state == state)
            *out_listed = true;
    }
    api_msg_cleanup(api_schema_response(API_OP_KEY_STATUS), &ks);
    api_client_free(c);
    return cur;
}

static void
status_get(struct api_client *c, struct api_status_resp *st)
{
    struct api_empty e = {0};

    assert_int_equal(api_call_status(c, &e, st, NULL), 0);
}

/* What STATUS showed while the job moved records to DEK |version|. */
struct progress {
    unsigned working;        /* answers with records left */
    uint64_t first;          /* records left in the first of them */
    bool decreased;          /* a later answer showed fewer */
    struct api_status_resp last; /* the first answer with the job idle on |version| */
};

/* Asks STATUS every millisecond until the job is idle on DEK |version| (60 s
 * at most), checking that every answer's progress holds together. */
static struct progress
watch_progress(struct api_client *c, uint32_t version)
{
    struct progress p;
    struct api_status_resp st;

    memset(&p, 0, sizeof(p));
    for (int i = 0; i < 60000; i++) {
        status_get(c, &st);
        assert_true(st.has_reencrypt_remaining == st.has_reencrypt_total);
        if (st.has_reencrypt_remaining)
            assert_true(st.reencrypt_remaining <= st.reencrypt_total);
        if (st.dek_version == version && st.has_reencrypt_remaining && st.reencrypt_remaining > 0) {
            assert_true(st.reencrypt_pending);
            if (p.working++ == 0)
                p.first = st.reencrypt_remaining;
            else if (st.reencrypt_remaining < p.first)
                p.decreased = true;
        }
        if (st.dek_version == version && !st.reencrypt_pending) {
            p.last = st;
            print_message("DEK %u: %u answers with records left, the first %llu of %llu\n",
                          version, p.working, (unsigned long long)p.first,
                          (unsigned long long)st.reencrypt_total);
            return p;
        }
        usleep(1000);
    }
    fail_msg("the re-encryption to DEK %u did not end", version);
    return p;
}

/* Waits (up to 10 s: the file is rewritten every second) until the metrics
 * file says |remaining| records left of a run of |total|. */
static int
wait_metrics_progress(uint64_t remaining, uint64_t total)
{
    char a[96], b[96];

    snprintf(a, sizeof(a), "tokenvault_reencrypt_remaining %llu\n", (unsigned long long)remaining);
    snprintf(b, sizeof(b), "tokenvault_reencrypt_run_records %llu\n", (unsigned long long)total);
    for (int i = 0; i < 1000; i++) {
        if (tv_file_contains(d.metrics, a, strlen(a)) == 1 &&
            tv_file_contains(d.metrics, b, strlen(b)) == 1)
            return 0;
        usleep(10000);
    }
    (void)tv_file_has(d.metrics, a); /* prints the file */
    return -1;
}

static int
setup(void **state)
{
    (void)state;
    if (tv_daemon_setup(&d, NULL) != 0)
        return -1;
    snprintf(out_file, sizeof(out_file), "%s/tool.out", d.token.dir);
    return tv_daemon_start(&d);
}

static int
teardown(void **state)
{
    (void)state;
    tv_daemon_teardown(&d);
    return 0;
}

static void
test_rotate_under_traffic(void **state)
{
    struct api_client *gw = NULL, *sc = NULL;
    char pan[17], customer[32];
    int done, loaded;
    pthread_t th;
    struct versions v;
    struct progress p;
    struct api_status_resp st0;

    (void)state;
    assert_int_equal(tv_daemon_client(&d, "client", &gw), 0);
    assert_int_equal(tv_daemon_client(&d, "client", &sc), 0);
    /* DEK 1 only: nothing was ever counted, so no progress is shown. */
    status_get(sc, &st0);
    assert_false(st0.reencrypt_pending);
    assert_false(st0.has_reencrypt_remaining || st0.has_reencrypt_total);
    for (unsigned i = 0; i < CARDS; i++) {
        tv_test_pan(i, pan);
        snprintf(customer, sizeof(customer), "c-%u", i);
        assert_int_equal(store_card(gw, customer, pan, tokens[i]), 0);
    }
    api_client_free(gw);

    assert_int_equal(pthread_create(&th, NULL, traffic, NULL), 0);
    usleep(200000);
    done = log_count("reencrypt_complete");
    loaded = log_count("dek_loaded");
    assert_int_equal(rotate(), 0);
    assert_true(tv_file_has(out_file, "vault-dek-v2 generated in the HSM"));
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    /* While the job runs, STATUS shows records left, no more than the run's
     * size, fewer as batches commit, and none at the end. */
    p = watch_progress(sc, 2);
    assert_true(p.working > 0);
    assert_true(p.decreased);
    assert_true(p.last.reencrypt_total >= CARDS);
    assert_true(p.last.has_reencrypt_remaining);
    assert_int_equal(p.last.reencrypt_remaining, 0);
    assert_true(p.last.reencrypt_total >= p.first);
    api_client_free(sc);
    assert_int_equal(wait_log_after("dek_loaded", loaded), 0);
    assert_int_equal(wait_log_after("reencrypt_complete", done), 0);
    usleep(200000);
    atomic_store(&traffic_stop, true);
    pthread_join(th, NULL);
    /* No request failed, and traffic did run through the rotation. */
    assert_int_equal(atomic_load(&traffic_failed), 0);
    assert_true(atomic_load(&traffic_ok) > 0);
    assert_true(tv_file_has(d.metrics, "tokenvault_key_version{key=\"dek\"} 2"));
    /* STATUS says where the rotation stands. */
    {
        struct api_client *c = NULL;
        struct api_empty e = {0};
        struct api_status_resp st;

        assert_int_equal(tv_daemon_client(&d, "client", &c), 0);
        assert_int_equal(api_call_status(c, &e, &st, NULL), 0);
        assert_true(st.has_dek_version && st.has_reencrypt_pending && st.has_reencrypted);
        assert_int_equal(st.dek_version, 2);
        assert_false(st.reencrypt_pending);
        assert_true(st.reencrypted >= CARDS);
        /* The run moved every record on DEK 1 (the cards and the traffic's
         * before the rotation), and nothing is left. */
        assert_true(st.has_reencrypt_remaining && st.has_reencrypt_total);
        assert_int_equal(st.reencrypt_remaining, 0);
        assert_int_equal(st.reencrypt_total, st.reencrypted);
        assert_int_equal(wait_metrics_progress(0, st.reencrypt_total), 0);
        api_client_free(c);
    }
    /* KEY_STATUS on the officer socket: DEK 2 current, DEK 1 retired. */
    {
        struct api_client_config cfg = {.unix_path = d.officer, .request_timeout_ms = 10000};
        struct api_client *c = NULL;
        struct api_empty e = {0};
        struct api_key_status_resp ks;
        int dek1 = 0, dek2 = 0, kek = 0;

        assert_int_equal(api_client_new(&c, &cfg), 0);
        assert_int_equal(api_call_key_status(c, &e, &ks, NULL), 0);
        for (size_t i = 0; i < ks.num_keys; i++) {
            const struct api_key_item *it = &ks.keys[i];

            assert_int_equal(it->kcv.len, 3);
            if (strcmp(it->label, "vault-dek-v1") == 0)
                dek1 = it->state == API_KEY_STATE_RETIRED && it->version == 1;
            if (strcmp(it->label, "vault-dek-v2") == 0)
                dek2 = it->state == API_KEY_STATE_CURRENT && it->version == 2;
            if (strcmp(it->label, "vault-kek-v1") == 0)
                kek = it->state == API_KEY_STATE_CURRENT && it->key_class == API_KEY_CLASS_AES;
        }
        assert_true(dek1 && dek2 && kek);
        assert_int_equal(ks.num_keys, 7); /* KEK, 2 DEKs, FPK, STK, session MAC, audit */
        api_msg_cleanup(api_schema_response(API_OP_KEY_STATUS), &ks);
        api_client_free(c);
    }

    /* Every card still reveals, and every record is on DEK 2. */
    reveal_all_then_stop();
    v = count_versions();
    assert_int_equal(v.on[1], 0);
    assert_true(v.on[2] >= CARDS);
    /* The rotation (written by the ceremony's process) and the moves (by
     * the daemon) are in one audit chain that verifies. */
    assert_int_equal(tv_run("%s --module %s --token %s --pin-file %s audit-key > %s/audit.pem",
                            TV_CEREMONY, TV_SOFTHSM_MODULE, TV_TEST_LABEL, d.token.pin_file,
                            d.token.dir), 0);
    assert_int_equal(tv_run("%s --store %s --pubkey %s/audit.pem audit-verify > %s 2>&1",
                            TV_CEREMONY, d.store, d.token.dir, out_file), 0);
    assert_true(tv_file_has(out_file, "audit log verified"));
}

static void
test_restart_mid_job(void **state)
{
    struct api_client *c = NULL;
    struct versions v;
    struct progress p;
    unsigned left;
    int loaded, done;

    (void)state;
    assert_int_equal(tv_daemon_start(&d), 0);
    loaded = log_count("dek_loaded");
    assert_int_equal(rotate(), 0);
    assert_true(tv_file_has(out_file, "vault-dek-v3 generated in the HSM"));
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    assert_int_equal(wait_log_after("dek_loaded", loaded), 0);
    /* Killed while moving records: as soon as the first batch committed
     * (a reader beside the running daemon sees it), with batches of
     * REENCRYPT_BATCH every 20 ms still to come. */
    for (int i = 0; i < 20000; i++) {
        v = count_versions();
        if (v.on[3] > 0)
            break;
        usleep(200);
    }
    assert_int_equal(tv_daemon_stop(&d, SIGKILL), -1);
    v = count_versions();
    print_message("at the kill: %u records on DEK 2, %u on DEK 3\n", v.on[2], v.on[3]);
    assert_int_equal(v.on[1], 0);
    assert_true(v.on[3] > 0 && v.on[2] > 0); /* mid-job */
    left = v.on[2];

    done = log_count("reencrypt_complete");
    assert_int_equal(tv_daemon_start(&d), 0);
    /* The restarted job counts again: its run is exactly the records the
     * killed one had not moved, and it ends with none left. */
    assert_int_equal(tv_daemon_client(&d, "client", &c), 0);
    p = watch_progress(c, 3);
    api_client_free(c);
    assert_true(p.working > 0);
    assert_true(p.first <= left);
    assert_true(p.last.has_reencrypt_remaining);
    assert_int_equal(p.last.reencrypt_remaining, 0);
    assert_int_equal(p.last.reencrypt_total, left);
    assert_int_equal(wait_metrics_progress(0, left), 0);
    assert_int_equal(wait_log_after("reencrypt_complete", done), 0);
    reveal_all_then_stop();
    v = count_versions();
    assert_int_equal(v.on[1] + v.on[2], 0);
    assert_true(v.on[3] >= CARDS);
}

static void
test_automatic_rotation(void **state)
{
    struct api_client *gw = NULL;
    char pan[17], customer[32];
    struct versions v;
    int rotated;

    (void)state;
    d.opts.dek_max_encryptions = 40;
    assert_int_equal(tv_daemon_write_config(&d, NULL), 0);
    rotated = log_count("dek_rotated");
    assert_int_equal(tv_daemon_start(&d), 0);
    assert_int_equal(tv_daemon_client(&d, "client", &gw), 0);
    for (unsigned i = 0; i < 45; i++) {
        tv_test_pan(500000 + i, pan);
        snprintf(customer, sizeof(customer), "c-auto-%u", i);
        assert_int_equal(store_card(gw, customer, pan, NULL), 0);
    }
    api_client_free(gw);
    /* Counted within a second, rotated on the next tick, then every record
     * (those 45 and the earlier ones) moved. */
    assert_int_equal(wait_log_after("dek_rotated", rotated), 0);
    /* Then every record moves to DEK 4 (a pass may have been running for
     * DEK 3 at the start: wait for DEK 4's own). */
    for (int i = 0; i < 6000 && log_count("reencrypt_complete dek_version=4") < 1; i++)
        usleep(10000);
    assert_int_equal(log_count("reencrypt_complete dek_version=4"), 1);
    reveal_all_then_stop();
    v = count_versions();
    assert_int_equal(v.on[1] + v.on[2] + v.on[3], 0);
    /* Exactly one rotation: the moves do not count toward the limit. */
    assert_true(v.on[4] >= CARDS + 45);
    assert_int_equal(v.on[5] + v.on[6] + v.on[7], 0);
}

/* KEK rotation: a new KEK, a new DEK under it, every record moved to it;
 * the old KEK is then retired (it wraps only DEKs no record uses), and a
 * restart finds the new KEK. */
static void
test_kek_rotation(void **state)
{
    struct api_client_config cfg = {.unix_path = d.officer, .request_timeout_ms = 10000};
    struct api_client *c = NULL;
    struct api_empty e = {0};
    struct api_key_status_resp ks;
    struct versions v;
    int kek1 = 0, kek2 = 0, loaded, rebuilt;

    (void)state;
    assert_int_equal(tv_daemon_start(&d), 0);
    loaded = log_count("dek_loaded");
    assert_int_equal(rotate_kind("kek"), 0);
    assert_true(tv_file_has(out_file, "vault-kek-v2 generated in the HSM"));
    assert_true(tv_file_has(out_file, "vault-stk-v2 generated in the HSM"));
    assert_true(tv_file_has(out_file, "vault-dek-v5 generated in the HSM"));
    /* The fingerprint key moves too (the store made v1 wrapped under the
     * old KEK): the index is rebuilt in the pass that moves the records. */
    assert_true(tv_file_has(out_file, "vault-fpk-v2 generated in the HSM"));
    rebuilt = log_count("fpk_rebuilt");
    assert_int_equal(rotate_kind("pan"), 2); /* no such key: refused, nothing made */
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    assert_int_equal(wait_log_after("dek_loaded", loaded), 0);
    for (int i = 0; i < 6000 && log_count("reencrypt_complete dek_version=5") < 1; i++)
        usleep(10000);
    assert_int_equal(log_count("reencrypt_complete dek_version=5"), 1);
    assert_int_equal(wait_log_after("fpk_rebuilt", rebuilt), 0);
    assert_int_equal(api_client_new(&c, &cfg), 0);
    assert_int_equal(api_call_key_status(c, &e, &ks, NULL), 0);
    for (size_t i = 0; i < ks.num_keys; i++) {
        if (strcmp(ks.keys[i].label, "vault-kek-v1") == 0)
            kek1 = ks.keys[i].state == API_KEY_STATE_RETIRED;
        if (strcmp(ks.keys[i].label, "vault-kek-v2") == 0)
            kek2 = ks.keys[i].state == API_KEY_STATE_CURRENT && ks.keys[i].version == 2;
    }
    api_msg_cleanup(api_schema_response(API_OP_KEY_STATUS), &ks);
    api_client_free(c);
    assert_true(kek1 && kek2);
    /* The metrics file is rewritten every second. */
    for (int i = 0; i < 300 && tv_file_contains(d.metrics, "key=\"kek\"} 2", 12) != 1; i++)
        usleep(10000);
    assert_true(tv_file_has(d.metrics, "tokenvault_key_version{key=\"kek\"} 2"));
    reveal_all_then_stop();
    v = count_versions();
    assert_true(v.on[5] >= CARDS);
    /* A restart loads every DEK under the KEK version each names. */
    assert_int_equal(tv_daemon_start(&d), 0);
    reveal_all_then_stop();
}

/* STORE of card |i| again, as at the start: the same token (existing). */
static void
assert_dedup(struct api_client *gw, unsigned i)
{
    struct api_card_store_req q;
    struct api_card_store_resp sr;
    struct api_error_resp err;
    char pan[17], customer[32];

    tv_test_pan(i, pan);
    snprintf(customer, sizeof(customer), "c-%u", i);
    tv_card_store_req(&q, "m-1", customer, pan);
    assert_int_equal(api_call_card_store(gw, &q, &sr, &err), 0);
    api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
    assert_string_equal(sr.token, tokens[i]);
    assert_int_equal(sr.dedup, API_DEDUP_EXISTING);
}

static int
count_visit_any(void *ctx, const MDB_val *key, const MDB_val *val)
{
    (void)key;
    (void)val;
    (*(unsigned *)ctx)++;
    return 0;
}

/* The card records and fingerprint index entries in the stopped daemon's
 * store at |dir|. */
static void
count_cards_and_index(const char *dir, unsigned *cards, unsigned *index)
{
    struct vault_store *st = NULL;
    struct store_txn t = {0};
    char msg[256];

    *cards = *index = 0;
    assert_int_equal(store_open_readonly(&st, dir, msg, sizeof(msg)), 0);
    assert_int_equal(store_read_begin(st, &t), 0);
    assert_int_equal(store_each(&t, STORE_DB_CARDS, NULL, 0, count_visit_any, cards), 0);
    assert_int_equal(store_each(&t, STORE_DB_FINGERPRINTS, NULL, 0, count_visit_any, index), 0);
    store_read_end(&t);
    store_close(st);
}

/* Fingerprint-key rotation: the index is rebuilt under the new key in the
 * background; duplicates are found before, during and after; a deleted card
 * leaves no index entry; and a second rotation waits for the rebuild. */
static void
test_fpk_rotation(void **state)
{
    struct api_client *gw = NULL;
    struct api_card_ref ref = {0};
    struct api_empty none;
    struct api_error_resp err;
    unsigned cards = 0, index = 0;
    int loaded, rebuilt;
    char want[64];
    uint32_t v0;
    bool listed = false;

    (void)state;
    assert_int_equal(tv_daemon_start(&d), 0);
    assert_int_equal(tv_daemon_client(&d, "client", &gw), 0);
    assert_dedup(gw, 0);
    /* The store's FPKs are wrapped ones (v1 made at its first start, v2 by
     * the KEK rotation). */
    v0 = key_current_of(&d, "vault-fpk-v", "", 0, &listed);
    assert_true(v0 >= 1);
    loaded = log_count("fpk_loaded");
    rebuilt = log_count("fpk_rebuilt");
    assert_int_equal(rotate_kind("fpk"), 0);
    snprintf(want, sizeof(want), "vault-fpk-v%u generated in the HSM", v0 + 1);
    assert_true(tv_file_has(out_file, want));
    /* Before the service loads it: duplicates still found; and a second
     * rotation is refused until the index is rebuilt. */
    assert_dedup(gw, 1);
    assert_int_equal(rotate_kind("fpk"), 1);
    assert_true(tv_file_has(out_file, "still being rebuilt"));
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    assert_int_equal(wait_log_after("fpk_loaded", loaded), 0);
    assert_dedup(gw, 2); /* during the rebuild, or just after */
    assert_int_equal(wait_log_after("fpk_rebuilt", rebuilt), 0);
    for (unsigned i = 3; i < 12; i++)
        assert_dedup(gw, i);
    /* A deleted card leaves no index entry: storing it again makes a new one. */
    snprintf(ref.merchant, sizeof(ref.merchant), "m-1");
    snprintf(ref.token, sizeof(ref.token), "%s", tokens[5]);
    assert_int_equal(api_call_card_delete(gw, &ref, &none, &err), 0);
    {
        struct api_card_store_req q;
        struct api_card_store_resp sr;
        char pan[17];

        tv_test_pan(5, pan);
        tv_card_store_req(&q, "m-1", "c-5", pan);
        assert_int_equal(api_call_card_store(gw, &q, &sr, &err), 0);
        api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
        assert_int_equal(sr.dedup, API_DEDUP_NEW);
        snprintf(tokens[5], sizeof(tokens[5]), "%s", sr.token);
    }
    api_client_free(gw);
    /* The new one is current; the old wrapped one, no longer needed once
     * the index is rebuilt, is no longer loaded or listed. */
    snprintf(want, sizeof(want), "vault-fpk-v%u", v0);
    assert_int_equal(key_current_of(&d, "vault-fpk-v", want, API_KEY_STATE_RETIRED, &listed),
                     v0 + 1);
    assert_false(listed);
    reveal_all_then_stop();
    /* One index entry per record, no more. */
    count_cards_and_index(d.store, &cards, &index);
    assert_int_equal(index, cards);
    /* After a restart the new key is current and duplicates are found. */
    assert_int_equal(tv_daemon_start(&d), 0);
    assert_int_equal(tv_daemon_client(&d, "client", &gw), 0);
    assert_dedup(gw, 7);
    api_client_free(gw);
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);
}

/* ---- session tag keys ------------------------------------------------------- */

/* A sale session of m-1 started now; *chk is the check the app would send. */
static void
session_start(struct api_client *gw, struct api_session_check_req *chk)
{
    struct api_session_init_req q = {0};
    struct api_session_init_resp resp;
    struct api_error_resp err;

    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    q.access_token_hash.len = API_HASH_LEN;
    memset(q.access_token_hash.data, 0x5a, API_HASH_LEN);
    q.device_data.len = (size_t)snprintf((char *)q.device_data.data, API_DEVICE_DATA_MAX,
                                         "model=Pixel 9;os=16");
    q.amount = 4200;
    memcpy(q.currency, "EUR", 4);
    assert_int_equal(api_call_session_init(gw, &q, &resp, &err), 0);
    tv_session_check_req(chk, &q, &resp);
    api_msg_cleanup(api_schema_response(API_OP_SESSION_INIT), &resp);
}

static int
session_check(struct api_client *gw, const struct api_session_check_req *chk)
{
    return tv_session_check(gw, chk);
}

static void
qr_issue(struct api_client *gw, const char *order, char token[API_QR_TOKEN_MAX + 1])
{
    assert_int_equal(tv_qr_issue(gw, "m-1", order, token), 0);
    assert_int_equal(strlen(token), QR_TOKEN_TEXT_LEN);
}

static int
qr_redeem(struct api_client *gw, const char *token)
{
    return tv_qr_redeem(gw, "m-1", token, "wallet-1");
}

/* The current STK version and whether |retired| is listed retired. */
static uint32_t
stk_status(uint32_t retired, bool *out_retired_listed)
{
    char label[HSM_LABEL_MAX + 1];

    assert_int_equal(hsm_key_versioned_label(label, sizeof(label), KEYS_STK_BASE, retired), 0);
    return key_current_of(&d, "vault-stk-v", label, API_KEY_STATE_RETIRED, out_retired_listed);
}

/* Sessions in the stopped daemon's store signed by STK version |v|. */
static int
count_sessions_visit(void *ctx, const MDB_val *key, const MDB_val *val)
{
    unsigned *on = ctx;
    struct sale_session s;

    (void)key;
    if (ops_session_decode(&s, val->mv_data, val->mv_size) == 0 && s.key_version < 16)
        on[s.key_version]++;
    return 0;
}

static void
count_sessions(unsigned on[16])
{
    struct vault_store *st = NULL;
    struct store_txn t = {0};
    char err[256];

    memset(on, 0, 16 * sizeof(on[0]));
    assert_int_equal(store_open_readonly(&st, d.store, err, sizeof(err)), 0);
    assert_int_equal(store_read_begin(st, &t), 0);
    assert_int_equal(store_each(&t, STORE_DB_SESSIONS, NULL, 0, count_sessions_visit, on), 0);
    store_read_end(&t);
    store_close(st);
}

/* STK rotation beside the running service: what the old version signed
 * passes after the reload, what is signed from then on is signed with the
 * new version, and after a restart both still check. */
static void
test_stk_rotation(void **state)
{
    struct api_client *gw = NULL;
    struct api_session_check_req before, after, pending;
    char qr_before[API_QR_TOKEN_MAX + 1], qr_after[API_QR_TOKEN_MAX + 1], want[96];
    unsigned on[16];
    uint32_t v0;
    bool listed = false;
    int loaded;

    (void)state;
    assert_int_equal(tv_daemon_start(&d), 0);
    assert_int_equal(tv_daemon_client(&d, "client", &gw), 0);
    v0 = stk_status(1, &listed);
    assert_true(v0 >= 1);
    session_start(gw, &before);
    qr_issue(gw, "order-stk-1", qr_before);
    loaded = log_count("stk_loaded");
    assert_int_equal(rotate_kind("stk"), 0);
    snprintf(want, sizeof(want), "vault-stk-v%u generated in the HSM", v0 + 1);
    assert_true(tv_file_has(out_file, want));
    /* Until the reload the service signs with the version it holds. */
    assert_int_equal(stk_status(v0, &listed), v0);
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    assert_int_equal(wait_log_after("stk_loaded", loaded), 0);
    assert_int_equal(stk_status(v0, &listed), v0 + 1);
    assert_true(listed);
    session_start(gw, &after);
    session_start(gw, &pending);
    qr_issue(gw, "order-stk-2", qr_after);
    /* Each passes once, under the version that signed it. */
    assert_int_equal(session_check(gw, &before), 0);
    assert_int_equal(session_check(gw, &after), 0);
    assert_int_equal(session_check(gw, &before), -API_STATUS_REPLAYED);
    assert_int_equal(qr_redeem(gw, qr_before), 0);
    assert_int_equal(qr_redeem(gw, qr_after), 0);
    /* A signature moved to another session fails whatever its version. */
    memcpy(pending.signature.data, after.signature.data, after.signature.len);
    assert_int_equal(session_check(gw, &pending), -API_STATUS_SIGNATURE_INVALID);
    for (int i = 0; i < 300 && !tv_file_has(d.metrics, "key=\"stk\"}"); i++)
        usleep(10000);
    snprintf(want, sizeof(want), "tokenvault_key_version{key=\"stk\"} %u", v0 + 1);
    for (int i = 0; i < 300 && tv_file_contains(d.metrics, want, strlen(want)) != 1; i++)
        usleep(10000);
    assert_true(tv_file_has(d.metrics, want));
    session_start(gw, &pending);
    api_client_free(gw);
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);
    /* The store says which version signed which session. */
    count_sessions(on);
    assert_true(on[v0] >= 1);
    assert_true(on[v0 + 1] >= 3);
    /* A restart loads every version: the pending session still passes. */
    assert_int_equal(tv_daemon_start(&d), 0);
    assert_int_equal(tv_daemon_client(&d, "client", &gw), 0);
    assert_int_equal(session_check(gw, &pending), 0);
    api_client_free(gw);
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);
}

/* What a build before STKs left in a store: a session and a QR request
 * signed with vault-session-mac (layout 1, key version 0), and no STK. */
struct legacy_job {
    struct store_write w;
    uint8_t nonce[OPS_NONCE_LEN], id[QR_REQUEST_ID_LEN];
    struct sale_session sess;
    struct qr_record rec;
    uint32_t stk_versions;
};

static int
legacy_apply(struct store_write *w, struct store_txn *t)
{
    struct legacy_job *j = (struct legacy_job *)w;
    struct api_writer sw, qw;
    uint8_t rkey[QR_RECORD_KEY_LEN], okey[QR_ORDER_KEY_MAX];
    char name[32];
    int r = 0;

    for (uint32_t v = 1; v <= j->stk_versions && r == 0; v++) {
        snprintf(name, sizeof(name), "stk.v%u", v);
        r = store_del(t, STORE_DB_META, name, strlen(name), NULL, 0);
    }
    if (r != 0 || (r = store_del(t, STORE_DB_META, "stk.current", 11, NULL, 0)) != 0)
        return r;
    api_writer_init(&sw, OPS_SESSION_MAX);
    api_writer_init(&qw, QR_RECORD_MAX);
    if (ops_session_encode(&sw, &j->sess) != 0 || api_writer_data(&sw)[0] != 1 ||
        qr_record_encode(&qw, &j->rec) != 0 || api_writer_data(&qw)[0] != 1)
        r = -1;
    if (r == 0)
        r = store_put(t, STORE_DB_SESSIONS, j->nonce, sizeof(j->nonce), api_writer_data(&sw),
                      api_writer_len(&sw), 0);
    if (r == 0)
        r = store_put(t, STORE_DB_QR, rkey, qr_record_key(rkey, j->id), api_writer_data(&qw),
                      api_writer_len(&qw), 0);
    if (r == 0)
        r = store_put(t, STORE_DB_QR, okey, qr_order_key(okey, "m-1", j->rec.order_id), j->id,
                      sizeof(j->id), 0);
    api_writer_cleanup(&sw);
    api_writer_cleanup(&qw);
    return r;
}

static void
legacy_done(struct store_write *w, int result)
{
    (void)w;
    (void)result;
}

static void
test_store_from_before_stks(void **state)
{
    struct legacy_job j = {.w = {.apply = legacy_apply, .done = legacy_done}};
    struct api_client *gw = NULL;
    struct api_session_check_req chk = {0};
    struct qr_token qt = {.version = QR_TOKEN_VERSION};
    char qr[API_QR_TOKEN_MAX + 1], err[256];
    uint8_t in[QR_MAC_INPUT_MAX];
    struct api_writer w;
    struct vault_store *st = NULL;
    hsm_session *s = NULL;
    hsm_key *smk = NULL;
    size_t in_len = 0;
    bool listed = false;
    uint64_t now = (uint64_t)time(NULL);
    int generated;

    (void)state;
    /* The stores this build wrote hold STKs up to the current version. */
    assert_int_equal(tv_daemon_start(&d), 0);
    j.stk_versions = stk_status(1, &listed);
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);

    /* A session and a QR request as the old build made them. */
    for (size_t i = 0; i < sizeof(j.nonce); i++)
        j.nonce[i] = (uint8_t)(0xA0 + i);
    memset(j.id, 0x3c, sizeof(j.id));
    j.sess.state = OPS_SESSION_OPEN;
    snprintf(j.sess.merchant, sizeof(j.sess.merchant), "m-1");
    memset(j.sess.access_token_hash, 0x11, API_HASH_LEN);
    j.sess.amount = 990;
    memcpy(j.sess.currency, "EUR", 4);
    chk.device_data.len = 5;
    memcpy(chk.device_data.data, "old-1", 5);
    SHA256(chk.device_data.data, chk.device_data.len, j.sess.device_hash);
    j.sess.created_at_ms = now * 1000u;
    j.sess.expires_at = now + 600;
    j.rec = (struct qr_record){.state = API_QR_ISSUED, .created_at = now,
                               .expires_at = now + 600, .amount = 770};
    memcpy(j.rec.currency, "EUR", 4);
    snprintf(j.rec.merchant, sizeof(j.rec.merchant), "m-1");
    snprintf(j.rec.order_id, sizeof(j.rec.order_id), "order-old-1");
    snprintf(chk.merchant, sizeof(chk.merchant), "m-1");
    chk.nonce.len = OPS_NONCE_LEN;
    memcpy(chk.nonce.data, j.nonce, OPS_NONCE_LEN);
    chk.access_token_hash.len = API_HASH_LEN;
    memcpy(chk.access_token_hash.data, j.sess.access_token_hash, API_HASH_LEN);
    chk.amount = j.sess.amount;
    memcpy(chk.currency, "EUR", 4);
    chk.signature.len = API_SIGNATURE_LEN;
    memcpy(qt.id, j.id, sizeof(qt.id));
    qt.expires_at = j.rec.expires_at;
    /* Signed with the token key, in the token, as that build did. */
    assert_int_equal(tv_token_open(&d.token), HSM_OK);
    assert_int_equal(hsm_session_acquire(d.token.h, &s), HSM_OK);
    assert_int_equal(hsm_key_find(s, KEYS_SESSION_MAC_LABEL, &smk), HSM_OK);
    api_writer_init(&w, 512);
    assert_int_equal(ops_session_mac_input(&w, j.nonce, &j.sess), 0);
    assert_int_equal(hsm_hmac_sign(s, smk, api_writer_data(&w), api_writer_len(&w),
                                   chk.signature.data), HSM_OK);
    api_writer_cleanup(&w);
    assert_int_equal(qr_mac_input(in, &in_len, QR_TOKEN_VERSION, j.id, &j.rec), 0);
    assert_int_equal(hsm_hmac_sign(s, smk, in, in_len, qt.tag), HSM_OK);
    assert_int_equal(qr_token_encode(qr, &qt), 0);
    hsm_session_release(s);
    hsm_close(d.token.h);
    d.token.h = NULL;
    assert_int_equal(store_open(&st, d.store, 64u << 20, err, sizeof(err)), 0);
    assert_int_equal(store_writer_start(st, NULL, 4), 0);
    assert_int_equal(store_write_wait(st, &j.w), 0);
    store_writer_stop(st);
    store_close(st);

    /* The first start makes STK 1 and audits it; the old ones pass. */
    generated = log_count("stk_generate");
    assert_int_equal(tv_daemon_start(&d), 0);
    assert_int_equal(log_count("stk_generate"), generated + 1);
    assert_int_equal(stk_status(1, &listed), 1);
    assert_int_equal(tv_daemon_client(&d, "client", &gw), 0);
    chk.signature.data[0] ^= 1; /* altered: refused, and not consumed */
    assert_int_equal(session_check(gw, &chk), -API_STATUS_SIGNATURE_INVALID);
    chk.signature.data[0] ^= 1;
    assert_int_equal(session_check(gw, &chk), 0);
    assert_int_equal(session_check(gw, &chk), -API_STATUS_REPLAYED);
    assert_int_equal(qr_redeem(gw, qr), 0);
    assert_int_equal(qr_redeem(gw, qr), -API_STATUS_REPLAYED);
    /* New ones are signed with STK 1 and pass. */
    session_start(gw, &chk);
    assert_int_equal(session_check(gw, &chk), 0);
    api_client_free(gw);
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);
}

/* ---- a store from before wrapped fingerprint keys ------------------------------ */

static struct tv_daemon d2; /* a second appliance: its store starts from scratch */

/* What such a store has: no "fpk.v1" and no "fpk.current", so FPK 1 is the
 * token key vault-fingerprint the init ceremony made. */
static int
forget_fpk_apply(struct store_write *w, struct store_txn *t)
{
    int r;

    (void)w;
    if ((r = store_del(t, STORE_DB_META, "fpk.v1", 6, NULL, 0)) != 0)
        return r;
    return store_del(t, STORE_DB_META, "fpk.current", 11, NULL, 0);
}

static void
forget_fpk_done(struct store_write *w, int result)
{
    (void)w;
    (void)result;
}

/* STORE of test card |i| on |gw| (it must pass): its token, and *dedup. */
static void
store_nth(struct api_client *gw, unsigned i, char token[API_ID_MAX + 1], uint8_t *dedup)
{
    struct api_card_store_req q;
    struct api_card_store_resp sr;
    struct api_error_resp err;
    char pan[17], customer[32];

    tv_test_pan(500000 + i, pan);
    snprintf(customer, sizeof(customer), "c-old-%u", i);
    tv_card_store_req(&q, "m-1", customer, pan);
    assert_int_equal(api_call_card_store(gw, &q, &sr, &err), 0);
    api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
    snprintf(token, API_ID_MAX + 1, "%s", sr.token);
    *dedup = sr.dedup;
}

/* An appliance upgraded from a build that kept the fingerprint key in the
 * token: its cards are indexed under vault-fingerprint, which keeps working;
 * one rotate --kind fpk moves the index to a wrapped key, with duplicates
 * found throughout, and the old token key retired. */
static void
test_fpk_from_token_key(void **state)
{
    struct store_write w = {.apply = forget_fpk_apply, .done = forget_fpk_done};
    char old_tokens[40][API_ID_MAX + 1], token[API_ID_MAX + 1], err[256];
    struct vault_store *st = NULL;
    struct api_client *gw = NULL;
    unsigned cards = 0, index = 0;
    uint8_t dedup = 0;
    bool listed = false;
    int rebuilt;

    (void)state;
    assert_int_equal(tv_daemon_setup(&d2, NULL), 0);
    assert_int_equal(tv_daemon_start(&d2), 0);
    assert_int_equal(tv_daemon_stop(&d2, SIGTERM), 0);
    assert_int_equal(store_open(&st, d2.store, 64u << 20, err, sizeof(err)), 0);
    assert_int_equal(store_writer_start(st, NULL, 4), 0);
    assert_int_equal(store_write_wait(st, &w), 0);
    store_writer_stop(st);
    store_close(st);

    assert_int_equal(tv_daemon_start(&d2), 0);
    assert_int_equal(key_current_of(&d2, "vault-fingerprint", "", 0, &listed), 1);
    assert_int_equal(tv_daemon_client(&d2, "client", &gw), 0);
    for (unsigned i = 0; i < 40; i++) {
        store_nth(gw, i, old_tokens[i], &dedup);
        assert_int_equal(dedup, API_DEDUP_NEW);
    }
    store_nth(gw, 0, token, &dedup);
    assert_int_equal(dedup, API_DEDUP_EXISTING);

    rebuilt = log_count_of(&d2, "fpk_rebuilt");
    assert_int_equal(rotate_on(&d2, "fpk"), 0);
    assert_true(tv_file_has(out_file, "vault-fpk-v2 generated in the HSM"));
    assert_int_equal(kill(d2.pid, SIGHUP), 0);
    assert_int_equal(wait_log_after_of(&d2, "fpk_rebuilt", rebuilt), 0);
    for (unsigned i = 0; i < 40; i++) {
        store_nth(gw, i, token, &dedup);
        assert_int_equal(dedup, API_DEDUP_EXISTING);
        assert_string_equal(token, old_tokens[i]);
    }
    assert_int_equal(key_current_of(&d2, "vault-fpk-v", "vault-fingerprint", API_KEY_STATE_RETIRED,
                                    &listed),
                     2);
    assert_true(listed);
    api_client_free(gw);
    assert_int_equal(tv_daemon_stop(&d2, SIGTERM), 0);
    /* One index entry per card, each under the wrapped key. */
    count_cards_and_index(d2.store, &cards, &index);
    assert_int_equal(cards, 40);
    assert_int_equal(index, cards);
    /* A restart finds it again. */
    assert_int_equal(tv_daemon_start(&d2), 0);
    assert_int_equal(tv_daemon_client(&d2, "client", &gw), 0);
    store_nth(gw, 7, token, &dedup);
    assert_int_equal(dedup, API_DEDUP_EXISTING);
    api_client_free(gw);
    assert_int_equal(tv_daemon_stop(&d2, SIGTERM), 0);
    tv_daemon_teardown(&d2);
    tv_daemon_use_token(&d);
}

/* ---- a retired key whose KEK is gone ------------------------------------------- */

/* Points the meta entries |names| at KEK version |kek| (the first four bytes
 * of "dek.v<N>" and "stk.v<N>"), with the daemon stopped: as the store looks
 * once the officers have destroyed the KEK an old version was wrapped under
 * (no KEK of that version is in the token). */
struct kek_job {
    struct store_write w;
    const char *names[2];
    uint32_t kek;
};

static int
kek_apply(struct store_write *w, struct store_txn *t)
{
    struct kek_job *j = (struct kek_job *)w;
    uint8_t val[KEYS_WRAPPED_META_LEN];
    MDB_val v;
    int r;

    for (size_t i = 0; i < 2 && j->names[i] != NULL; i++) {
        if ((r = store_get(t, STORE_DB_META, j->names[i], strlen(j->names[i]), &v)) != 0)
            return r;
        if (v.mv_size != sizeof(val))
            return -1;
        memcpy(val, v.mv_data, sizeof(val));
        val[0] = (uint8_t)(j->kek >> 24), val[1] = (uint8_t)(j->kek >> 16);
        val[2] = (uint8_t)(j->kek >> 8), val[3] = (uint8_t)j->kek;
        if ((r = store_put(t, STORE_DB_META, j->names[i], strlen(j->names[i]), val, sizeof(val),
                           0)) != 0)
            return r;
    }
    return 0;
}

static void
kek_done(struct store_write *w, int result)
{
    (void)w;
    (void)result;
}

static void
meta_kek_set(const char *a, const char *b, uint32_t kek)
{
    struct kek_job j = {.w = {.apply = kek_apply, .done = kek_done}, .names = {a, b}, .kek = kek};
    struct vault_store *st = NULL;
    char err[256];

    assert_int_equal(store_open(&st, d.store, 64u << 20, err, sizeof(err)), 0);
    assert_int_equal(store_writer_start(st, NULL, 4), 0);
    assert_int_equal(store_write_wait(st, &j.w), 0);
    store_writer_stop(st);
    store_close(st);
}

/* Retired versions whose KEK is gone: the service starts without them
 * (event=key_unavailable), every card still reveals (all are on the current
 * DEK), and a session or QR request signed by such an STK version is
 * refused with INTERNAL, logged; a current version whose KEK is gone stops
 * the start. */
static void
test_retired_key_without_its_kek(void **state)
{
    struct api_client *gw = NULL;
    struct api_session_check_req old;
    char stk_old[32], stk_cur[32], qr[API_QR_TOKEN_MAX + 1];
    bool listed = false;
    uint32_t stk;
    int unavailable, refused;

    (void)state;
    assert_int_equal(tv_daemon_start(&d), 0);
    assert_int_equal(tv_daemon_client(&d, "client", &gw), 0);
    stk = stk_status(1, &listed);
    session_start(gw, &old);
    qr_issue(gw, "order-gone-kek", qr);
    api_client_free(gw);
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);
    assert_int_equal(rotate_kind("stk"), 0);
    snprintf(stk_old, sizeof(stk_old), "stk.v%u", stk);
    snprintf(stk_cur, sizeof(stk_cur), "stk.v%u", stk + 1);
    meta_kek_set("dek.v1", stk_old, 99);

    unavailable = log_count("key_unavailable");
    refused = log_count("session_key_unavailable");
    assert_int_equal(tv_daemon_start(&d), 0);
    assert_int_equal(log_count("key_unavailable"), unavailable + 2);
    assert_int_equal(tv_daemon_client(&d, "client", &gw), 0);
    assert_int_equal(tv_session_check(gw, &old), -API_STATUS_INTERNAL);
    assert_int_equal(log_count("session_key_unavailable"), refused + 1);
    refused = log_count("qr_key_unavailable");
    assert_int_equal(qr_redeem(gw, qr), -API_STATUS_INTERNAL);
    assert_int_equal(log_count("qr_key_unavailable"), refused + 1);
    api_client_free(gw);
    reveal_all_then_stop();

    /* The current version cannot be skipped. */
    meta_kek_set(stk_cur, NULL, 99);
    assert_int_not_equal(tv_daemon_start(&d), 0);
    assert_true(tv_file_has(d.log, "session tag key"));
}

/* Makes DEK |version|'s usage record say it was made at |created_ms|,
 * keeping its count: with the daemon stopped, in a write job of the store's
 * own writer. keys_dek_usage_add keeps a record's creation time and gives a
 * new one |now_ms|, so the record is deleted and made again. */
struct backdate_job {
    struct store_write w;
    uint32_t version;
    uint64_t created_ms, was_ms;
};

static int
backdate_apply(struct store_write *w, struct store_txn *t)
{
    struct backdate_job *j = (struct backdate_job *)w;
    uint64_t sealed = 0, created = 0;
    char name[32];
    int r;

    snprintf(name, sizeof(name), "dek.v%u.usage", j->version);
    if ((r = keys_dek_usage_add(t, j->version, 0, j->created_ms, &sealed, &j->was_ms)) != 0 ||
        (r = store_del(t, STORE_DB_META, name, strlen(name), NULL, 0)) != 0 ||
        (r = keys_dek_usage_add(t, j->version, sealed, j->created_ms, &sealed, &created)) != 0)
        return r;
    return created == j->created_ms ? 0 : -1;
}

static void
backdate_done(struct store_write *w, int result)
{
    (void)w;
    (void)result;
}

static void
backdate_dek(uint32_t version, uint64_t created_ms, uint64_t *out_was_ms)
{
    struct backdate_job j = {.w = {.apply = backdate_apply, .done = backdate_done},
                             .version = version, .created_ms = created_ms};
    struct vault_store *st = NULL;
    char err[256];

    assert_int_equal(store_open(&st, d.store, 64u << 20, err, sizeof(err)), 0);
    assert_int_equal(store_writer_start(st, NULL, 4), 0);
    assert_int_equal(store_write_wait(st, &j.w), 0);
    store_writer_stop(st);
    store_close(st);
    *out_was_ms = j.was_ms;
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Automatic rotation by age: with dek_max_age_days = 1 (and an encryption
 * limit out of reach) a DEK made minutes ago stays current; once its usage
 * record says it was made two days ago, the service rotates it by itself on
 * its next tick and moves every record to the new DEK. */
static void
test_automatic_rotation_by_age(void **state)
{
    struct api_client *gw = NULL;
    struct api_status_resp st;
    struct versions v;
    char pan[17], event[64];
    uint64_t was_ms = 0, two_days_ago;
    uint32_t current;
    int rotated, done;

    (void)state;
    d.opts.dek_max_encryptions = 1000000000;
    d.opts.dek_max_age_days = 1;
    assert_int_equal(tv_daemon_write_config(&d, NULL), 0);

    /* Control: young enough. Three policy ticks (a second each) see it. */
    rotated = log_count("dek_rotated");
    assert_int_equal(tv_daemon_start(&d), 0);
    assert_int_equal(tv_daemon_client(&d, "client", &gw), 0);
    tv_test_pan(700000, pan);
    assert_int_equal(store_card(gw, "c-age-0", pan, NULL), 0);
    status_get(gw, &st);
    assert_true(st.has_dek_version);
    current = st.dek_version;
    usleep(3500000);
    assert_int_equal(log_count("dek_rotated"), rotated);
    status_get(gw, &st);
    assert_int_equal(st.dek_version, current);
    api_client_free(gw);
    gw = NULL;
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);

    /* The same DEK, made two days ago as far as its usage record says. */
    two_days_ago = now_ms() - 2u * 86400000u;
    backdate_dek(current, two_days_ago, &was_ms);
    assert_true(was_ms > two_days_ago + 86400000u); /* it was young */

    done = log_count("reencrypt_complete");
    assert_int_equal(tv_daemon_start(&d), 0);
    assert_int_equal(tv_daemon_client(&d, "client", &gw), 0);
    tv_test_pan(700001, pan);
    assert_int_equal(store_card(gw, "c-age-1", pan, NULL), 0);
    assert_int_equal(wait_log_after("dek_rotated", rotated), 0);
    snprintf(event, sizeof(event), "dek_rotated by=policy dek_version=%u", current + 1);
    assert_int_equal(log_count(event), 1);
    snprintf(event, sizeof(event), "reencrypt_complete dek_version=%u", current + 1);
    for (int i = 0; i < 6000 && log_count(event) < 1; i++)
        usleep(10000);
    assert_int_equal(log_count(event), 1);
    assert_true(log_count("reencrypt_complete") > done);
    status_get(gw, &st);
    assert_int_equal(st.dek_version, current + 1);
    assert_false(st.reencrypt_pending);
    assert_true(st.has_reencrypt_remaining && st.reencrypt_remaining == 0);
    assert_true(st.reencrypt_total >= CARDS);
    api_client_free(gw);
    reveal_all_then_stop();
    /* Every record on the new DEK, and only one rotation: the new DEK is
     * young and far from the encryption limit. */
    v = count_versions();
    for (uint32_t i = 1; i <= current; i++)
        assert_int_equal(v.on[i], 0);
    assert_true(v.on[current + 1] >= CARDS + 2);
    for (uint32_t i = current + 2; i < 8; i++)
        assert_int_equal(v.on[i], 0);
    assert_int_equal(log_count("dek_rotated"), rotated + 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotate_under_traffic),
        cmocka_unit_test(test_restart_mid_job),
        cmocka_unit_test(test_automatic_rotation),
        cmocka_unit_test(test_kek_rotation),
        cmocka_unit_test(test_fpk_rotation),
        cmocka_unit_test(test_stk_rotation),
        cmocka_unit_test(test_store_from_before_stks),
        cmocka_unit_test(test_automatic_rotation_by_age),
        cmocka_unit_test(test_fpk_from_token_key),
        cmocka_unit_test(test_retired_key_without_its_kek),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
