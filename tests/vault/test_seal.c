/*
 * test_seal.c - sealed start end to end, as officers run it: `tokenvault-
 * ceremony init` on an empty SoftHSM token, `pin-split` 3-of-5 (a fresh
 * PIN nobody sees), tokenvaultd started sealed, and `tokenvault-ceremony
 * unseal` run by one officer after another: two shares leave it sealed, a
 * damaged share, a share of another set and a repeated share are refused and
 * not counted, the third share unseals it. Then cards are served over mTLS,
 * the audit log names the officers, and a restart unseals with another three
 * of the five shares.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/client.h"
#include "tests/support/daemon.h"
#include "vault/audit.h"
#include "vault/shares.h"
#include "vault/store.h"

static struct tv_daemon d;
static char shares_dir[400], set_file[400], out_file[400];

static int
unseal(const char *share_file, const char *officer)
{
    return tv_run("%s --socket %s --share %s --officer %s unseal >%s 2>&1", TV_CEREMONY, d.officer,
               share_file, officer, out_file);
}

static int
unseal_share(unsigned i, const char *officer)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/share-%u-of-5.txt", shares_dir, i);
    return unseal(path, officer);
}

static void
assert_output(const char *needle)
{
    assert_true(tv_file_has(out_file, needle));
}

static struct api_client *
officer_client(void)
{
    struct api_client_config cfg = {.unix_path = d.officer, .request_timeout_ms = 10000};
    struct api_client *c = NULL;

    assert_int_equal(api_client_new(&c, &cfg), 0);
    return c;
}

static void
assert_status(bool sealed, unsigned received)
{
    struct api_client *c = officer_client();
    struct api_empty e = {0};
    struct api_status_resp st;

    assert_int_equal(api_call_status(c, &e, &st, NULL), 0);
    assert_int_equal(st.sealed, sealed);
    assert_int_equal(st.shares_needed, 3);
    assert_int_equal(st.shares_received, received);
    assert_int_equal(st.hsm_ready, !sealed);
    api_client_free(c);
}

static int
setup(void **state)
{
    struct tv_daemon_opts empty = {.no_keys = 1};

    (void)state;
    /* An empty token: the keys come from the init ceremony, as in production. */
    if (tv_daemon_setup(&d, &empty) != 0)
        return -1;
    snprintf(shares_dir, sizeof(shares_dir), "%s/shares", d.token.dir);
    snprintf(set_file, sizeof(set_file), "%s/pin.set", d.token.dir);
    snprintf(out_file, sizeof(out_file), "%s/tool.out", d.token.dir);
    return tv_run("mkdir -m 700 %s", shares_dir);
}

static int
teardown(void **state)
{
    (void)state;
    tv_daemon_teardown(&d);
    return 0;
}

static void
test_pin_split(void **state)
{
    hsm_pin_source *pin = NULL;
    hsm_config hc = {.module_path = TV_SOFTHSM_MODULE, .token_label = TV_TEST_LABEL};
    hsm *h = NULL;

    (void)state;
    /* Refusals first: a threshold of 1, M > N, no set file. */
    /* Ceremonies leave their transcripts in the current directory. */
    assert_int_equal(chdir(d.token.dir), 0);
    assert_int_equal(tv_run("%s --module %s --token %s --pin-file %s --officer alice init >%s 2>&1",
                            TV_CEREMONY, TV_SOFTHSM_MODULE, TV_TEST_LABEL, d.token.pin_file,
                            out_file), 0);
    assert_output("vault-audit-sign");
    assert_int_equal(tv_run("%s --module %s --token %s --pin-file %s --threshold 1 --shares 5 "
                         "--share-dir %s --set-file %s pin-split >/dev/null 2>&1",
                         TV_CEREMONY, TV_SOFTHSM_MODULE, TV_TEST_LABEL, d.token.pin_file,
                         shares_dir, set_file), 2);
    assert_int_equal(tv_run("%s --module %s --token %s --pin-file %s --threshold 6 --shares 5 "
                         "--share-dir %s --set-file %s pin-split >/dev/null 2>&1",
                         TV_CEREMONY, TV_SOFTHSM_MODULE, TV_TEST_LABEL, d.token.pin_file,
                         shares_dir, set_file), 2);
    assert_int_equal(tv_run("%s --module %s --token %s --pin-file %s --threshold 3 --shares 5 "
                         "--share-dir %s pin-split >/dev/null 2>&1",
                         TV_CEREMONY, TV_SOFTHSM_MODULE, TV_TEST_LABEL, d.token.pin_file,
                         shares_dir), 2);
    assert_int_equal(tv_run("%s --module %s --token %s --pin-file %s --threshold 3 --shares 5 "
                         "--share-dir %s --set-file %s --officer alice --officer bob pin-split >%s 2>&1",
                         TV_CEREMONY, TV_SOFTHSM_MODULE, TV_TEST_LABEL, d.token.pin_file,
                         shares_dir, set_file, out_file), 0);
    assert_output("a new user PIN");
    /* Its signed transcript: the set and check values, never a share. */
    assert_int_equal(tv_run("grep -q '^ceremony: pin-split' %s/ceremony-pin-split-*.txt", d.token.dir), 0);
    assert_int_equal(tv_run("grep -q '^officers: alice, bob' %s/ceremony-pin-split-*.txt", d.token.dir), 0);
    assert_int_equal(tv_run("grep -q 'tokenvault-share-1:' %s/ceremony-pin-split-*.txt", d.token.dir), 1);
    assert_output("share 5: check value ");
    /* Each share file is 0600 and new; a second split into the same place
     * is refused rather than overwriting a share. */
    assert_int_equal(tv_run("test \"$(stat -c %%a %s/share-1-of-5.txt)\" = 600", shares_dir), 0);
    assert_int_equal(tv_run("test \"$(stat -c %%a %s)\" = 600", set_file), 0);
    /* The old PIN file no longer logs in: nobody holds the PIN now. */
    assert_int_equal(hsm_pin_source_file(&pin, d.token.pin_file), HSM_OK);
    assert_int_equal(hsm_open(&h, &hc, pin), HSM_ERR_LOGIN);
    hsm_pin_source_free(pin);
    /* share-check: an officer confirms a share against the public set. */
    assert_int_equal(tv_run("%s --share %s/share-2-of-5.txt --set-file %s share-check >%s 2>&1",
                         TV_CEREMONY, shares_dir, set_file, out_file), 0);
    assert_output("share 2 of 5 (any 3 rebuild the HSM user PIN)");
    assert_output("it belongs to the set");
}

/* A share file altered in one hex digit of its value, and a share of
 * another split made here. */
static void
make_bad_shares(char *damaged, char *foreign, size_t cap)
{
    struct share_set set;
    struct share sh[3];
    char text[SHARE_FILE_MAX];
    size_t len = 0;
    uint8_t any[8] = "12345678";

    snprintf(damaged, cap, "%s/damaged.txt", d.token.dir);
    snprintf(foreign, cap, "%s/foreign.txt", d.token.dir);
    /* The last hex digit before the newline: part of the share's value. */
    assert_int_equal(tv_run("sed '/^tokenvault-share-1:/ { s/0$/Z/; s/[1-9a-f]$/0/; s/Z$/1/ }' "
                         "%s/share-4-of-5.txt > %s",
                         shares_dir, damaged), 0);
    assert_int_equal(tv_run("cmp -s %s/share-4-of-5.txt %s", shares_dir, damaged), 1);
    assert_int_equal(share_split(&set, sh, SHARE_KIND_PIN, 3, 3, any, sizeof(any)), 0);
    assert_int_equal(share_format(&sh[0], text, sizeof(text), &len), 0);
    assert_int_equal(tv_write_file(foreign, text, 0600), 0);
}

static void
test_sealed_start(void **state)
{
    struct api_client *c = NULL;
    struct api_card_store_req q;
    struct api_card_store_resp sr;
    struct api_error_resp err;
    struct api_empty e = {0};
    struct api_key_status_resp ks;
    char damaged[512], foreign[512];

    (void)state;
    d.opts.share_set = set_file;
    assert_int_equal(tv_daemon_write_config(&d, NULL), 0);
    assert_int_equal(tv_daemon_start_until(&d, "service_sealed"), 0);
    assert_status(true, 0);
    /* While sealed no TCP port listens, and the officer socket answers
     * SEALED to anything but PING, STATUS and UNSEAL_SHARE. */
    assert_int_equal(tv_daemon_client(&d, "client", &c), 0);
    assert_int_equal(api_client_connect(c), API_ERR_CONNECT);
    api_client_free(c);
    c = officer_client();
    assert_int_equal(api_call_key_status(c, &e, &ks, &err), -API_STATUS_SEALED);
    assert_true(err.has_retry_after_ms);
    api_client_free(c);

    assert_int_equal(unseal_share(1, "alice"), 0);
    assert_output("share accepted: 1 of 3");
    /* The same share again: refused, not counted. */
    assert_int_equal(unseal_share(1, "alice"), 1);
    assert_output("already given");
    assert_int_equal(unseal_share(2, "bob"), 0);
    assert_output("share accepted: 2 of 3");
    assert_status(true, 2);
    /* A damaged share and one of another set: refused without saying which
     * check failed, not counted. */
    make_bad_shares(damaged, foreign, sizeof(damaged));
    assert_int_equal(unseal(damaged, "mallory"), 1);
    assert_output("share refused: the share was not accepted");
    assert_int_equal(unseal(foreign, "mallory"), 1);
    assert_output("share refused: the share was not accepted");
    assert_status(true, 2);
    /* A file that is no share at all is refused by the tool itself. */
    assert_int_equal(unseal(set_file, "carol"), 1);
    assert_status(true, 2);

    assert_int_equal(unseal_share(3, "carol"), 0);
    assert_output("the service is unsealed");
    assert_status(false, 3);
    /* Cards are served now, over mTLS. */
    assert_int_equal(tv_daemon_client(&d, "client", &c), 0);
    tv_card_store_req(&q, "m-1", "c-sealed", "4111111111111111");
    assert_int_equal(api_call_card_store(c, &q, &sr, &err), 0);
    api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
    api_client_free(c);
    /* A share after unseal changes nothing (CONFLICT on the wire). */
    assert_int_equal(unseal_share(4, "dave"), 0);
    assert_output("the service is not sealed");
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);
}

struct audit_scan {
    unsigned shares, unsealed;
    char officers[64];
    char detail[AUDIT_DETAIL_MAX + 1];
};

static int
scan_visit(void *ctx, const MDB_val *key, const MDB_val *val)
{
    struct audit_scan *a = ctx;
    struct audit_entry e;

    (void)key;
    if (audit_decode(&e, val->mv_data, val->mv_size) != 0 || e.type != AUDIT_EVENT)
        return 0;
    if (strcmp(e.event, "unseal_share") == 0) {
        a->shares++;
        size_t n = strlen(a->officers);

        snprintf(a->officers + n, sizeof(a->officers) - n, "%s,", e.client);
    } else if (strcmp(e.event, "unsealed") == 0) {
        a->unsealed++;
        snprintf(a->detail, sizeof(a->detail), "%s", e.detail);
    }
    return 0;
}

/* The unseal is in the audit log: who gave a share, how many were refused. */
static void
test_unseal_audited(void **state)
{
    struct vault_store *st = NULL;
    struct store_txn t = {0};
    struct audit_scan a;
    char err[256];

    (void)state;
    memset(&a, 0, sizeof(a));
    assert_int_equal(store_open_readonly(&st, d.store, err, sizeof(err)), 0);
    assert_int_equal(store_read_begin(st, &t), 0);
    assert_int_equal(store_each(&t, STORE_DB_AUDIT, NULL, 0, scan_visit, &a), 0);
    store_read_end(&t);
    store_close(st);
    assert_int_equal(a.shares, 3);
    assert_int_equal(a.unsealed, 1);
    assert_string_equal(a.officers, "alice,bob,carol,");
    /* The repeated share, the damaged one and the foreign one. */
    assert_string_equal(a.detail, "refused=3");
}

/* Any three of the five: a restart unseals with shares 3, 4 and 5. */
static void
test_restart_other_shares(void **state)
{
    (void)state;
    assert_int_equal(tv_daemon_start_until(&d, "service_sealed"), 0);
    assert_int_equal(unseal_share(5, "erin"), 0);
    assert_int_equal(unseal_share(4, "dave"), 0);
    assert_status(true, 2);
    assert_int_equal(unseal_share(3, "carol"), 0);
    assert_output("the service is unsealed");
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pin_split),
        cmocka_unit_test(test_sealed_start),
        cmocka_unit_test(test_unseal_audited),
        cmocka_unit_test(test_restart_other_shares),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
