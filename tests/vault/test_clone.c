/*
 * test_clone.c - backup on appliance A, restore on appliance B, as officers
 * and operators run it: A's daemon stores a card; `tokenvault-ceremony
 * backup` (the SO present) wraps A's keys under a transport key split 3-of-5;
 * `tokenvault-admin backup` copies A's store. On B, a fresh token without
 * keys: two shares, a tampered file, a share of another split and a file
 * whose set does not match are all refused and restore nothing; three shares
 * restore every key with matching check values; B's daemon, on the copied
 * store, reveals the card A stored.
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
#include <sys/stat.h>
#include <sys/wait.h>

#include "api/client.h"
#include "tests/support/daemon.h"

#define PAN "5555555555554444"

static struct tv_daemon a, b;
static char work[400], out_file[460], token[API_ID_MAX + 1];

static void
assert_output(const char *needle)
{
    assert_true(tv_file_has(out_file, needle));
}

/* tokenvault-ceremony on |d|'s token with its user PIN. */
static int
ceremony(const struct tv_daemon *d, const char *args)
{
    tv_daemon_use_token(d);
    /* In |work|: ceremonies leave their transcripts in the current directory. */
    return tv_run("cd %s && %s --module %s --token %s --pin-file %s %s >%s 2>&1", work, TV_CEREMONY,
                  TV_SOFTHSM_MODULE, TV_TEST_LABEL, d->token.pin_file, args, out_file);
}

static int
restore(const char *shares)
{
    char args[4096];

    snprintf(args, sizeof(args), "--in %s/keys.tvkb --set-file %s/transport.set %s restore", work,
             work, shares);
    return ceremony(&b, args);
}

static int
setup(void **state)
{
    struct tv_daemon_opts empty = {.no_keys = 1};

    (void)state;
    if (tv_daemon_setup(&a, NULL) != 0 || tv_daemon_setup(&b, &empty) != 0)
        return -1;
    snprintf(work, sizeof(work), "%s/ceremony", a.token.dir);
    snprintf(out_file, sizeof(out_file), "%s/tool.out", work);
    return tv_run("mkdir -m 700 %s %s/shares", work, work);
}

static int
teardown(void **state)
{
    (void)state;
    tv_daemon_teardown(&a);
    tv_daemon_teardown(&b);
    return 0;
}

static void
test_backup_on_a(void **state)
{
    struct api_client *c = NULL;
    struct api_card_store_req q;
    struct api_card_store_resp sr;
    struct api_error_resp err;
    char args[4096];

    (void)state;
    assert_int_equal(tv_daemon_start(&a), 0);
    assert_int_equal(tv_daemon_client(&a, "client", &c), 0);
    tv_card_store_req(&q, "m-1", "c-clone", PAN);
    assert_int_equal(api_call_card_store(c, &q, &sr, &err), 0);
    api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
    snprintf(token, sizeof(token), "%s", sr.token);
    api_client_free(c);

    assert_int_equal(tv_run("printf '%%s\\n' %s > %s/so-pin && chmod 600 %s/so-pin", TV_TEST_SO_PIN,
                         work, work), 0);
    assert_int_equal(tv_run("printf 'wrong-so-pin\\n' > %s/bad-so-pin && chmod 600 %s/bad-so-pin", work,
                         work), 0);
    /* A trust anchor travels with the keys (public data). */
    assert_int_equal(ceremony(&a, "--label g-roots --kind google-keys --in " TV_VECTORS_DIR
                                  "/google-test-root-keys/keys.json trust-anchor"), 0);
    /* Without the SO no key leaves: a wrong SO PIN, and nothing is written. */
    snprintf(args, sizeof(args),
             "--so-pin-file %s/bad-so-pin --threshold 3 --shares 5 --share-dir %s/shares "
             "--set-file %s/transport.set --out %s/keys.tvkb backup", work, work, work, work);
    assert_int_equal(ceremony(&a, args), 3);
    assert_int_equal(tv_run("test -e %s/keys.tvkb", work), 1);
    snprintf(args, sizeof(args),
             "--so-pin-file %s/so-pin --threshold 3 --shares 5 --share-dir %s/shares "
             "--set-file %s/transport.set --out %s/keys.tvkb --officer alice --officer bob "
             "--transcript %s/backup.txt --store %s backup",
             work, work, work, work, work, a.store);
    assert_int_equal(ceremony(&a, args), 0);
    assert_output("4 keys and 3 wallet objects backed up");
    assert_output("vault-kek-v1");
    assert_output("share 5: check value");
    assert_int_equal(tv_run("test \"$(stat -c %%a %s/keys.tvkb)\" = 600", work), 0);
    /* Its transcript, signed; and the ceremony in A's audit log, written
     * while A's daemon runs. */
    assert_output("ceremony recorded in the audit log");
    assert_int_equal(tv_run("grep -q '^officers: alice, bob' %s/backup.txt", work), 0);
    /* A's keys are still in A and A still serves after the SO step. */
    assert_int_equal(ceremony(&a, "keys"), 0);
    /* The store, hot, while A runs. */
    assert_int_equal(tv_run("mkdir -m 700 %s && %s backup --store %s --out %s >/dev/null", b.store,
                         TV_ADMIN, a.store, b.store), 0);
    assert_int_equal(tv_daemon_stop(&a, SIGTERM), 0);
    /* A's audit chain still verifies with the ceremony's entry in it. */
    assert_int_equal(ceremony(&a, "audit-key"), 0);
    assert_int_equal(tv_run("grep -v '^transcript\\|^ceremony' %s > %s/audit.pem", out_file, work), 0);
    assert_int_equal(tv_run("%s --store %s --pubkey %s/audit.pem audit-verify > %s 2>&1", TV_CEREMONY,
                            a.store, work, out_file), 0);
    assert_output("audit log verified");
}

static void
test_refused_restores(void **state)
{
    char shares[2048], args[4096];

    (void)state;
    /* Two shares of a 3-of-5 split. */
    snprintf(shares, sizeof(shares), "--share %s/shares/share-1-of-5.txt --share %s/shares/share-4-of-5.txt",
             work, work);
    assert_int_equal(restore(shares), 1);
    assert_output("fewer than the threshold");
    /* A share of another split (a second backup of A, shares kept apart). */
    assert_int_equal(tv_run("mkdir -m 700 %s/other", work), 0);
    snprintf(args, sizeof(args),
             "--so-pin-file %s/so-pin --threshold 2 --shares 2 --share-dir %s/other "
             "--set-file %s/other/t.set --out %s/other/k.tvkb backup", work, work, work, work);
    assert_int_equal(ceremony(&a, args), 0);
    snprintf(shares, sizeof(shares),
             "--share %s/shares/share-1-of-5.txt --share %s/shares/share-2-of-5.txt "
             "--share %s/other/share-1-of-2.txt", work, work, work);
    assert_int_equal(restore(shares), 1);
    assert_output("not of this set");
    /* The other backup's file with this set's shares: another transport key. */
    snprintf(args, sizeof(args),
             "--in %s/other/k.tvkb --set-file %s/transport.set --share %s/shares/share-1-of-5.txt "
             "--share %s/shares/share-2-of-5.txt --share %s/shares/share-3-of-5.txt restore",
             work, work, work, work, work);
    assert_int_equal(ceremony(&b, args), 1);
    assert_output("altered, or made with another transport key");
    /* One byte of the backup file changed. */
    assert_int_equal(tv_run("cp %s/keys.tvkb %s/tampered && printf 'X' | dd of=%s/tampered bs=1 seek=40 "
                         "conv=notrunc 2>/dev/null", work, work, work), 0);
    snprintf(args, sizeof(args),
             "--in %s/tampered --set-file %s/transport.set --share %s/shares/share-1-of-5.txt "
             "--share %s/shares/share-2-of-5.txt --share %s/shares/share-3-of-5.txt restore",
             work, work, work, work, work);
    assert_int_equal(ceremony(&b, args), 1);
    assert_output("altered");
    /* Nothing was restored by any of these. */
    assert_int_equal(ceremony(&b, "keys"), 0);
    assert_int_equal(tv_file_contains(out_file, "vault-kek", 9), 0);
}

static void
test_restore_on_b(void **state)
{
    struct api_client *c = NULL;
    struct api_card_reveal_req q = {0};
    struct api_card_reveal_resp resp;
    struct api_error_resp err;
    char shares[2048], args[600];

    (void)state;
    snprintf(shares, sizeof(shares),
             "--share %s/shares/share-5-of-5.txt --share %s/shares/share-2-of-5.txt "
             "--share %s/shares/share-3-of-5.txt --officer carol", work, work, work);
    assert_int_equal(restore(shares), 0);
    assert_output("4 keys and 3 wallet objects restored");
    assert_int_equal(ceremony(&b, "wallet-keys"), 0);
    assert_output("g-roots-ECv2-1");
    assert_int_equal(tv_file_contains(out_file, "MISMATCH", 8), 0);
    /* Restoring again is refused: the labels exist. */
    assert_int_equal(restore(shares), 1);
    assert_output("a key with this label exists");
    /* The restored keys carry the vault's attributes. Unwrapped keys are
     * never "always sensitive" (PKCS#11): without the backup, the listing
     * cannot tell a restored key from an exposed one and says so. */
    assert_int_equal(ceremony(&b, "keys"), 5);
    assert_output("vault-audit-sign");
    assert_output("UNSAFE:    not always sensitive");
    assert_output("give that file with --in");
    /* With the backup it was restored from, each key is named restored;
     * what is left is SoftHSM refusing MODIFIABLE=F in an unwrap template,
     * and nothing else. */
    snprintf(args, sizeof(args), "--in %s/keys.tvkb keys", work);
    assert_int_equal(ceremony(&b, args), 5);
    assert_output("restored from:");
    assert_int_equal(tv_run("test \"$(grep -c 'restored:  unwrapped' %s)\" -eq 4", out_file), 0);
    assert_int_equal(tv_file_contains(out_file, "not always sensitive", 20), 0);
    assert_int_equal(tv_file_contains(out_file, "imported:", 9), 0);
    assert_int_equal(tv_run("test \"$(grep -c '^ *UNSAFE:' %s)\" -eq \"$(grep -c 'UNSAFE:    modifiable' %s)\"",
                            out_file, out_file),
                     0);

    assert_int_equal(tv_daemon_start(&b), 0);
    assert_int_equal(tv_daemon_client(&b, "reveal-client", &c), 0);
    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    snprintf(q.token, sizeof(q.token), "%s", token);
    q.purpose = API_PURPOSE_AUTHORIZATION;
    assert_int_equal(api_call_card_reveal(c, &q, &resp, &err), 0);
    assert_string_equal(resp.pan, PAN);
    api_msg_cleanup(api_schema_response(API_OP_CARD_REVEAL), &resp);
    api_client_free(c);
    assert_int_equal(tv_daemon_stop(&b, SIGTERM), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_on_a),
        cmocka_unit_test(test_refused_restores),
        cmocka_unit_test(test_restore_on_b),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
