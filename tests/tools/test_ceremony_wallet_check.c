/*
 * test_ceremony_wallet_check.c - `tokenvault-ceremony wallet-check` as
 * support staff run it, on a token set up as officers do: the real
 * gala-2023 Apple Pay merchant key and certificate and the moov Google Pay
 * recipient key (imported: the vectors' keys were made outside any HSM),
 * Apple Root CA - G3 and Google's test root keys stored by the trust-anchor
 * ceremony, and a tokenvault.conf naming them per merchant.
 *
 * What is checked: each check of the format is listed with its outcome;
 * the real packets open at their own time and fail today with the check
 * and status that fails; the card is shown as BIN and last 4 and the PAN
 * and cryptogram never appear (output, JSON, transcript); the transcript
 * is written, signed, and names the merchant and the packet's SHA-256;
 * --store records the ceremony in the audit log; every refusal of the
 * command line.
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

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "tests/support/daemon.h"
#include "tests/support/token.h"
#include "vault/wallets.h"

/* gala-2023 (its README): CMS signingTime, the PAN and cryptogram of
 * expected_plaintext.json, and what may be shown of the PAN (cardnum: the
 * first 8 of a 16-digit PAN, and the last 4). */
#define GALA_SIGNED "2021-09-01T19:03:06Z"
#define GALA_SIGNED_MS "1630522986000"
/* 301 s after the signing time: outside Apple's 5-minute window, while the
 * certificates are still valid. */
#define GALA_SIGNED_301 "2021-09-01T19:08:07Z"
#define GALA_PAN "5353756319181169"
#define GALA_CRYPTOGRAM "AMwBRjPWDnAgAA7Rls7mAoABFA=="
#define GALA_SHOWN "BIN 53537563, last 4 1169"
/* moov-googlepay (its README): a time before messageExpiration, the PAN
 * and the recipient id it was sealed for. */
#define MOOV_NOW "1645500000000"
#define MOOV_PAN "4111111111111111"
#define MOOV_RECIPIENT "merchant:12345678901234567890"

#define APPLE_KEY "applepay-gala-2023"
#define GOOGLE_KEY "googlepay-moov"

static struct tv_daemon d;
static char out_file[400], err_file[400], gala_sha[2 * SHA256_DIGEST_LENGTH + 1];

/* ---- the token and the config, as officers and operators make them ----------- */

/* A vector's PEM private key (SEC1 or PKCS#8) as DER, malloc'd. */
static uint8_t *
pem_key_der(const char *rel, size_t *out_len)
{
    char *pem = tv_vector_read(rel, NULL);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    unsigned char *der = NULL;
    uint8_t *copy;
    int n;

    assert_non_null(pk);
    n = i2d_PrivateKey(pk, &der);
    assert_true(n > 0);
    copy = malloc((size_t)n);
    assert_non_null(copy);
    memcpy(copy, der, (size_t)n);
    OPENSSL_clear_free(der, (size_t)n);
    EVP_PKEY_free(pk);
    BIO_free(bio);
    OPENSSL_cleanse(pem, strlen(pem));
    free(pem);
    *out_len = (size_t)n;
    return copy;
}

/* The two merchant keys, imported (hsm_ec_private_import: no ceremony makes
 * a key from outside yet). */
static void
import_keys(void)
{
    hsm_session *s = NULL;
    hsm_key *k = NULL;
    uint8_t *der;
    size_t len = 0;
    char *b64;

    assert_hsm(tv_token_open(&d.token), HSM_OK);
    assert_hsm(hsm_session_acquire(d.token.h, &s), HSM_OK);
    der = pem_key_der("gala-2023/private_key.pem", &len);
    assert_hsm(hsm_ec_private_import(s, APPLE_KEY, der, len, &k), HSM_OK);
    OPENSSL_cleanse(der, len);
    free(der);
    b64 = tv_vector_read("moov-googlepay/merchant_private_key_pkcs8.b64", NULL);
    der = tv_b64(b64, &len);
    assert_hsm(hsm_ec_private_import(s, GOOGLE_KEY, der, len, &k), HSM_OK);
    OPENSSL_cleanse(der, len);
    free(der);
    free(b64);
    hsm_session_release(s);
    /* The tool is another process; this one lets go of the token. */
    hsm_close(d.token.h);
    d.token.h = NULL;
}

/* Runs tokenvault-ceremony on the test token in the token's directory
 * (where transcripts land by default): stdout to out_file, stderr to
 * err_file. Returns the exit code. */
static int ceremony(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int check(const char *transcript, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
ceremony(const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(args));
    return tv_run("cd %s && %s --module %s --token %s --pin-file %s %s > %s 2> %s", d.token.dir,
                  TV_CEREMONY, TV_SOFTHSM_MODULE, TV_TEST_LABEL, d.token.pin_file, args, out_file,
                  err_file);
}

/* wallet-check with the config and the transcript at |transcript| (a name
 * in the token's directory). */
static int
check(const char *transcript, const char *fmt, ...)
{
    char args[1536];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(args));
    return ceremony("--transcript %s/%s --config %s %s wallet-check", d.token.dir, transcript,
                    d.conf, args);
}

static int
has(const char *path, const char *needle)
{
    return tv_file_has(path, needle);
}

/* |needle| is nowhere in the file. */
static int
lacks(const char *path, const char *needle)
{
    int r = tv_file_contains(path, needle, strlen(needle));

    if (r != 0)
        (void)tv_run("echo '%s holds %s:' >&2; cat %s >&2", path, needle, path);
    return r == 0;
}

static int
group_setup(void **state)
{
    char *tok;
    size_t len = 0;
    uint8_t md[SHA256_DIGEST_LENGTH];

    (void)state;
    if (tv_daemon_setup(&d, NULL) != 0)
        return -1;
    snprintf(out_file, sizeof(out_file), "%s/out.txt", d.token.dir);
    snprintf(err_file, sizeof(err_file), "%s/err.txt", d.token.dir);
    /* The store exists as on an appliance: the daemon ran once. */
    if (tv_daemon_start(&d) != 0 || tv_daemon_stop(&d, SIGTERM) != 0)
        goto fail;
    import_keys();
    if (ceremony("--label " APPLE_KEY " --in " TV_VECTORS_DIR "/gala-2023/certificate.pem "
                 "applepay-cert") != 0 ||
        ceremony("--label apple-root-g3 --kind apple-root --in " TV_VECTORS_DIR
                 "/apple-root-ca/AppleRootCA-G3.pem trust-anchor") != 0 ||
        ceremony("--label google-test-roots --kind google-keys --in " TV_VECTORS_DIR
                 "/google-test-root-keys/keys.json trust-anchor") != 0) {
        (void)tv_run("cat %s %s >&2", out_file, err_file);
        goto fail;
    }
    /* m-2002 is m-2001 with Google's other TEST merchant id: the packet's
     * signatures are over the recipient id, so they do not verify for it.
     * m-pan (harness) takes no wallet. */
    if (tv_daemon_write_config(&d, "[merchant m-1001]\n"
                                   "applepay_keys = " APPLE_KEY "\n"
                                   "[merchant m-2001]\n"
                                   "googlepay_recipient = " MOOV_RECIPIENT "\n"
                                   "googlepay_keys = " GOOGLE_KEY "\n"
                                   "[merchant m-2002]\n"
                                   "googlepay_recipient = merchant:12345\n"
                                   "googlepay_keys = " GOOGLE_KEY "\n"
                                   "[wallet]\n"
                                   "apple_signing_window_seconds = 300\n") != 0)
        goto fail;
    tok = tv_vector_read("gala-2023/token.json", &len);
    SHA256((const uint8_t *)tok, len, md);
    for (size_t i = 0; i < sizeof(md); i++)
        snprintf(gala_sha + 2 * i, 3, "%02x", md[i]);
    free(tok);
    return 0;
fail:
    /* cmocka runs no group teardown after a failed setup. */
    tv_daemon_teardown(&d);
    return -1;
}

static int
group_teardown(void **state)
{
    (void)state;
    tv_daemon_teardown(&d);
    return 0;
}

/* Every check of |wallet| is in the output as "<name>: <state>", where the
 * check failing with |fail| (0: none) says FAILED, those before it ok, and
 * those after it not run. */
static void
assert_checks(int wallet, int fail)
{
    const struct vault_wallet_check *c = vault_wallets_checks(wallet);
    char line[256];
    int seen = fail == 0;

    assert_non_null(c);
    for (; c->name != NULL; c++) {
        const char *st;

        if (c->err == WALLET_ERR_MISMATCH)
            st = "not asked"; /* no expectation is given to wallet-check */
        else if (!seen && c->err == fail)
            st = "FAILED: ";
        else
            st = seen ? (fail == 0 ? "ok" : "not run") : "ok";
        snprintf(line, sizeof(line), "  %s: %s", c->name, st);
        assert_true(has(out_file, line));
        if (!seen && c->err == fail)
            seen = 1;
    }
    assert_true(seen);
}

/* No PAN and no cryptogram in any file the run left. */
static void
assert_no_secrets(const char *transcript)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s", d.token.dir, transcript);
    assert_true(lacks(out_file, GALA_PAN));
    assert_true(lacks(out_file, GALA_CRYPTOGRAM));
    assert_true(lacks(out_file, MOOV_PAN));
    assert_true(lacks(err_file, GALA_PAN));
    assert_true(lacks(err_file, MOOV_PAN));
    assert_true(lacks(path, GALA_PAN));
    assert_true(lacks(path, GALA_CRYPTOGRAM));
    assert_true(lacks(path, MOOV_PAN));
}

/* ---- Apple Pay ------------------------------------------------------------------- */

static void
test_apple_at_signing_time(void **state)
{
    char path[512], line[160];

    (void)state;
    assert_int_equal(check("apple-ok.txt", "--packet " TV_VECTORS_DIR "/gala-2023/token.json "
                                           "--merchant m-1001 --at " GALA_SIGNED),
                     0);
    assert_checks(API_WALLET_APPLE_PAY, 0);
    assert_true(has(out_file, "result:                opened"));
    assert_true(has(out_file, "wallet:                apple_pay (told from the packet's shape)"));
    assert_true(has(out_file, "verification time:     2021-09-01T19:03:06.000Z (epoch ms " GALA_SIGNED_MS ")"));
    assert_true(has(out_file, "card number:         " GALA_SHOWN " (16 digits"));
    assert_true(has(out_file, "version:             EC_v1"));
    assert_true(has(out_file, "expiry:              09/2024"));
    assert_true(has(out_file, "auth method:         CRYPTOGRAM_3DS"));
    assert_true(has(out_file, "cryptogram:          present (not shown)"));
    assert_true(has(out_file, "ECI:                 absent"));
    assert_true(has(out_file, "amount:              100 (minor units)"));
    assert_true(has(out_file, "currency:            USD"));
    assert_true(has(out_file, "transaction id:      "));
    assert_true(has(out_file, "valid until:         2021-09-01T"));
    assert_true(has(out_file, "card on file:        "));
    snprintf(line, sizeof(line), "packet SHA-256:        %s", gala_sha);
    assert_true(has(out_file, line));
    assert_true(has(out_file, "transcript written to"));
    /* The transcript: the ceremony, the merchant, the packet's hash, the
     * wallet, the time and the result, signed with the audit key. */
    snprintf(path, sizeof(path), "%s/apple-ok.txt", d.token.dir);
    assert_true(has(path, "ceremony: wallet-check"));
    assert_true(has(path, "result: done (exit 0)"));
    assert_true(has(path, "merchant:              m-1001"));
    assert_true(has(path, line));
    assert_true(has(path, "wallet:                apple_pay"));
    assert_true(has(path, "verification time:     2021-09-01T19:03:06.000Z"));
    assert_true(has(path, "signature: ecdsa-p256-sha256 vault-audit-sign "));
    assert_true(has(path, GALA_SHOWN));
    assert_no_secrets("apple-ok.txt");
    /* The same time as epoch milliseconds, the wallet named: the same. */
    assert_int_equal(check("apple-ok-ms.txt", "--packet " TV_VECTORS_DIR "/gala-2023/token.json "
                                              "--merchant m-1001 --wallet apple_pay --at " GALA_SIGNED_MS),
                     0);
    assert_true(has(out_file, "wallet:                apple_pay (--wallet)"));
    assert_true(has(out_file, GALA_SHOWN));
    assert_no_secrets("apple-ok-ms.txt");
}

static void
test_apple_today(void **state)
{
    char path[512];

    (void)state;
    /* Today the leaf (valid to 2024-05-16) has expired. */
    assert_int_equal(check("apple-today.txt", "--packet " TV_VECTORS_DIR "/gala-2023/token.json "
                                              "--merchant m-1001"),
                     1);
    assert_checks(API_WALLET_APPLE_PAY, WALLET_ERR_EXPIRED);
    assert_true(has(out_file, "FAILED: EXPIRED/EXPIRED: "));
    assert_true(has(out_file, "result:                FAILED: EXPIRED/EXPIRED: "));
    assert_true(lacks(out_file, "card number"));
    assert_true(lacks(out_file, "BIN "));
    snprintf(path, sizeof(path), "%s/apple-today.txt", d.token.dir);
    assert_true(has(path, "result: FAILED (exit 1)"));
    assert_true(has(path, "merchant:              m-1001"));
    assert_no_secrets("apple-today.txt");
    /* Within the certificates' validity but 301 s after the signing time. */
    assert_int_equal(check("apple-late.txt", "--packet " TV_VECTORS_DIR "/gala-2023/token.json "
                                             "--merchant m-1001 --at " GALA_SIGNED_301),
                     1);
    assert_checks(API_WALLET_APPLE_PAY, WALLET_ERR_SIGNING_TIME);
    assert_true(has(out_file, "FAILED: SIGNING_TIME/EXPIRED: "));
    assert_true(has(out_file, "verification time:     2021-09-01T19:08:07.000Z"));
    assert_no_secrets("apple-late.txt");
    /* An Apple packet read as a Google one is no Google token. */
    assert_int_equal(check("apple-as-google.txt", "--packet " TV_VECTORS_DIR "/gala-2023/token.json "
                                                  "--merchant m-2001 --wallet google_pay --at " GALA_SIGNED),
                     1);
    assert_checks(API_WALLET_GOOGLE_PAY, WALLET_ERR_FORMAT);
}

/* ---- Google Pay ------------------------------------------------------------------ */

static void
test_google(void **state)
{
    (void)state;
    assert_int_equal(check("google-ok.txt", "--packet " TV_VECTORS_DIR "/moov-googlepay/token_ecv2.json "
                                            "--merchant m-2001 --at " MOOV_NOW),
                     0);
    assert_checks(API_WALLET_GOOGLE_PAY, 0);
    assert_true(has(out_file, "wallet:                google_pay (told from the packet's shape)"));
    assert_true(has(out_file, "verification time:     2022-02-22T03:20:00.000Z"));
    assert_true(has(out_file, "card number:         BIN 41111111, last 4 1111 (16 digits"));
    assert_true(has(out_file, "version:             ECv2"));
    assert_true(has(out_file, "expiry:              12/2027"));
    assert_true(has(out_file, "auth method:         PAN_ONLY"));
    assert_true(has(out_file, "cryptogram:          absent"));
    assert_true(has(out_file, "transaction id:      AH2EjtdXWjOx"));
    assert_true(has(out_file, "valid until:         2022-02-22T03:37:49.135Z"));
    assert_no_secrets("google-ok.txt");

    /* The same packet for a merchant with another recipient id: the
     * signatures are over the recipient, so they fail. */
    assert_int_equal(check("google-recipient.txt", "--packet " TV_VECTORS_DIR "/moov-googlepay/token_ecv2.json "
                                                   "--merchant m-2002 --at " MOOV_NOW),
                     1);
    assert_checks(API_WALLET_GOOGLE_PAY, WALLET_ERR_SIGNATURE);
    assert_true(has(out_file, "FAILED: SIGNATURE/SIGNATURE_INVALID: "));
    assert_no_secrets("google-recipient.txt");

    /* Today the message has expired. */
    assert_int_equal(check("google-today.txt", "--packet " TV_VECTORS_DIR "/moov-googlepay/token_ecv2.json "
                                               "--merchant m-2001"),
                     1);
    assert_checks(API_WALLET_GOOGLE_PAY, WALLET_ERR_EXPIRED);
    assert_true(has(out_file, "FAILED: EXPIRED/EXPIRED: "));
}

/* ---- --json ---------------------------------------------------------------------- */

/* Runs python3 on the first line of out_file (the JSON object) with |code|,
 * which sees it as |o|. */
static int
json_holds(const char *code)
{
    return tv_run("head -n 1 %s | python3 -c 'import json, sys\n"
                  "o = json.loads(sys.stdin.read())\n"
                  "%s' >&2", out_file, code);
}

static void
test_json(void **state)
{
    (void)state;
    assert_int_equal(check("json-ok.txt", "--json --packet " TV_VECTORS_DIR "/gala-2023/token.json "
                                          "--merchant m-1001 --at " GALA_SIGNED),
                     0);
    assert_int_equal(json_holds("assert o[\"result\"] == \"opened\", o\n"
                                "assert o[\"failure\"] is None\n"
                                "assert o[\"merchant\"] == \"m-1001\"\n"
                                "assert o[\"wallet\"] == \"apple_pay\" and o[\"walletDetected\"]\n"
                                "assert o[\"verificationTime\"] == \"2021-09-01T19:03:06.000Z\"\n"
                                "assert o[\"verificationTimeMs\"] == " GALA_SIGNED_MS "\n"
                                "assert all(c[\"result\"] in (\"ok\", \"not_asked\") for c in o[\"checks\"])\n"
                                "c = o[\"card\"]\n"
                                "assert c[\"bin\"] == \"53537563\" and c[\"last4\"] == \"1169\"\n"
                                "assert c[\"panLength\"] == 16 and c[\"cryptogramPresent\"] is True\n"
                                "assert c[\"expiryMonth\"] == 9 and c[\"expiryYear\"] == 2024\n"
                                "assert c[\"amount\"] == 100 and c[\"currency\"] == \"USD\"\n"
                                "assert c[\"eci\"] is None and c[\"authMethod\"] == \"CRYPTOGRAM_3DS\"\n"
                                "assert \"pan\" not in c and \"cryptogram\" not in c"),
                     0);
    {
        char want[120];

        snprintf(want, sizeof(want), "\"packetSha256\":\"%s\"", gala_sha);
        assert_true(has(out_file, want));
    }
    assert_true(has(out_file, "transcript written to"));
    assert_no_secrets("json-ok.txt");
    /* The failure, the same as in text. */
    assert_int_equal(check("json-today.txt", "--json --packet " TV_VECTORS_DIR "/gala-2023/token.json "
                                             "--merchant m-1001"),
                     1);
    assert_int_equal(json_holds("assert o[\"result\"] == \"failed\", o\n"
                                "assert o[\"card\"] is None\n"
                                "f = o[\"failure\"]\n"
                                "assert f[\"error\"] == \"EXPIRED\" and f[\"status\"] == \"EXPIRED\"\n"
                                "assert f[\"why\"]\n"
                                "r = [c[\"result\"] for c in o[\"checks\"]]\n"
                                "i = r.index(\"failed\")\n"
                                "assert all(x == \"ok\" for x in r[:i])\n"
                                "assert all(x in (\"not_run\", \"not_asked\") for x in r[i + 1:])\n"
                                "assert o[\"checks\"][i][\"error\"] == \"EXPIRED\""),
                     0);
    assert_int_equal(check("json-google.txt", "--json --packet " TV_VECTORS_DIR "/moov-googlepay/token_ecv2.json "
                                              "--merchant m-2002 --at " MOOV_NOW),
                     1);
    assert_int_equal(json_holds("assert o[\"failure\"][\"error\"] == \"SIGNATURE\"\n"
                                "assert o[\"failure\"][\"status\"] == \"SIGNATURE_INVALID\""),
                     0);
}

/* ---- the audit log ------------------------------------------------------------------ */

static void
test_store(void **state)
{
    char pem[400];

    (void)state;
    assert_int_equal(check("store.txt", "--store %s --officer support-ann --packet " TV_VECTORS_DIR
                                        "/gala-2023/token.json --merchant m-1001 --at " GALA_SIGNED,
                           d.store),
                     0);
    assert_true(has(out_file, "ceremony recorded in the audit log of"));
    /* The chain still verifies with the entry in it. */
    snprintf(pem, sizeof(pem), "%s/audit.pem", d.token.dir);
    assert_int_equal(ceremony("audit-key"), 0);
    assert_int_equal(tv_run("grep -v '^transcript\\|^ceremony' %s > %s", out_file, pem), 0);
    assert_int_equal(tv_run("%s --store %s --pubkey %s audit-verify > %s 2>&1", TV_CEREMONY, d.store,
                            pem, out_file),
                     0);
    assert_true(has(out_file, "audit log verified"));
    /* The transcript names the officer and verifies offline. */
    assert_int_equal(tv_run("grep -q '^officers: support-ann' %s/store.txt", d.token.dir), 0);
    assert_int_equal(tv_run("%s --in %s/store.txt --pubkey %s transcript-verify > %s 2>&1",
                            TV_CEREMONY, d.token.dir, pem, out_file),
                     0);
    assert_no_secrets("store.txt");
}

/* ---- refusals ---------------------------------------------------------------------- */

static void
test_unknown_merchant(void **state)
{
    (void)state;
    assert_int_equal(check("unknown.txt", "--packet " TV_VECTORS_DIR "/gala-2023/token.json "
                                          "--merchant m-9999 --at " GALA_SIGNED),
                     4);
    assert_true(has(err_file, "merchant m-9999: "));
    assert_true(has(err_file, "has no [merchant m-9999] section"));
    assert_true(lacks(out_file, "result:"));
    /* A merchant the config names, without keys for this wallet. */
    assert_int_equal(check("nokeys.txt", "--packet " TV_VECTORS_DIR "/gala-2023/token.json "
                                         "--merchant m-pan --at " GALA_SIGNED),
                     4);
    assert_true(has(err_file, "configures no apple_pay keys"));
    assert_int_equal(check("nokeys2.txt", "--packet " TV_VECTORS_DIR "/gala-2023/token.json "
                                          "--merchant m-2001 --at " GALA_SIGNED),
                     4);
    assert_true(has(err_file, "configures no apple_pay keys"));
}

/* wallet-keys --config: the keys each merchant's section names, found in
 * the token with their kind, KCV and certificate expiry; a key the config
 * names and the token lacks is MISSING, exit 4. */
static void
test_wallet_keys_by_merchant(void **state)
{
    char conf[400];

    (void)state;
    assert_int_equal(ceremony("--config %s wallet-keys", d.conf), 0);
    assert_true(has(out_file, "by merchant, as "));
    assert_true(has(out_file, "merchant m-1001"));
    assert_true(has(out_file, "  Apple Pay    " APPLE_KEY));
    assert_true(has(out_file, "merchant m-2001"));
    assert_true(has(out_file, "  Google Pay   recipient " MOOV_RECIPIENT));
    assert_true(has(out_file, "  Google Pay   " GOOGLE_KEY));
    assert_true(lacks(out_file, "merchant m-pan")); /* takes no wallet */
    assert_true(lacks(out_file, "MISSING"));
    /* gala-2023's certificate, as stored by applepay-cert, with its expiry. */
    assert_int_equal(tv_run("grep -A3 '  Apple Pay    " APPLE_KEY "' %s | grep -q 'expires'",
                            out_file),
                     0);
    /* Without --config: the token alone, no merchant section. */
    assert_int_equal(ceremony("wallet-keys"), 0);
    assert_true(lacks(out_file, "by merchant"));
    /* A config naming a key the token does not hold. */
    snprintf(conf, sizeof(conf), "%s/missing.conf", d.token.dir);
    assert_int_equal(tv_run("cp %s %s && chmod 600 %s && printf '[merchant m-3003]\\n"
                            "applepay_keys = applepay-nowhere\\n' >> %s",
                            d.conf, conf, conf, conf),
                     0);
    assert_int_equal(ceremony("--config %s wallet-keys", conf), 4);
    assert_true(has(out_file, "applepay-nowhere"));
    assert_true(has(out_file, "MISSING from the token"));
}

static void
test_usage(void **state)
{
    const char *pkt = "--packet " TV_VECTORS_DIR "/gala-2023/token.json";
    static const char *const bad_times[] = {
        "2021-09-01T19:03:06+02:00", /* UTC only */
        "2021-09-01 19:03:06Z",      "2021-09-01T19:03:06",  "2021-02-29T00:00:00Z",
        "2021-13-01T00:00:00Z",      "2021-09-01T24:00:00Z", "1969-12-31T23:59:59Z",
        "2021-09-01T19:03:06.Z",     "yesterday",           "-1",
        "1630522986000x",            "9999999999999999",    "",
    };
    char path[512];

    (void)state;
    assert_int_equal(check("u1.txt", "--merchant m-1001"), 2);
    assert_true(has(err_file, "wallet-check needs --config FILE, --packet FILE and --merchant M"));
    assert_int_equal(ceremony("%s --merchant m-1001 wallet-check", pkt), 2);
    assert_int_equal(check("u2.txt", "%s", pkt), 2);
    assert_int_equal(check("u3.txt", "%s --merchant 'm 1'", pkt), 2);
    assert_int_equal(check("u4.txt", "%s --merchant m-1001 --wallet paypal", pkt), 2);
    assert_true(has(err_file, "--wallet: apple_pay, google_pay or samsung_pay"));
    for (size_t i = 0; i < sizeof(bad_times) / sizeof(bad_times[0]); i++) {
        assert_int_equal(check("u5.txt", "%s --merchant m-1001 --at '%s'", pkt, bad_times[i]), 2);
        assert_true(has(err_file, "--at: RFC 3339 in UTC"));
    }
    /* A command line refused did nothing: no transcript. */
    snprintf(path, sizeof(path), "%s/u5.txt", d.token.dir);
    assert_int_equal(tv_run("test -e %s", path), 1);
    /* Fractions of a second and a leap day are times. */
    assert_int_equal(check("t1.txt", "%s --merchant m-1001 --at 2021-09-01T19:03:06.999999Z", pkt), 0);
    assert_true(has(out_file, "verification time:     2021-09-01T19:03:06.999Z"));
    assert_int_equal(check("t2.txt", "%s --merchant m-1001 --at 2024-02-29T00:00:00Z", pkt), 1);
    assert_true(has(out_file, "verification time:     2024-02-29T00:00:00.000Z"));

    /* Packets: one whose wallet cannot be told, an empty one, one over
     * WALLET_PACKET_MAX, one that is not there. */
    assert_int_equal(tv_run("printf 'hello' > %s/what.txt", d.token.dir), 0);
    assert_int_equal(check("p1.txt", "--packet %s/what.txt --merchant m-1001", d.token.dir), 2);
    assert_true(has(err_file, "cannot tell which wallet made this packet"));
    assert_int_equal(tv_run(": > %s/empty.txt", d.token.dir), 0);
    assert_int_equal(check("p2.txt", "--packet %s/empty.txt --merchant m-1001", d.token.dir), 1);
    assert_true(has(err_file, "empty"));
    assert_int_equal(tv_run("head -c %u /dev/zero | tr '\\0' ' ' > %s/big.txt",
                            (unsigned)WALLET_PACKET_MAX + 1, d.token.dir),
                     0);
    assert_int_equal(check("p3.txt", "--packet %s/big.txt --merchant m-1001", d.token.dir), 1);
    assert_true(has(err_file, "larger than"));
    assert_int_equal(check("p4.txt", "--packet %s/none.txt --merchant m-1001", d.token.dir), 1);
    /* A config that does not load. */
    assert_int_equal(ceremony("--transcript %s/c1.txt --config %s/none.conf %s --merchant m-1001 "
                              "wallet-check", d.token.dir, d.token.dir, pkt),
                     1);
    assert_true(has(err_file, "none.conf"));
    /* Hostile packets are refused by the engine's checks, not the tool. */
    assert_int_equal(tv_run("printf '{\"version\":\"EC_v1\",\"header\":{}}' > %s/hostile.json",
                            d.token.dir),
                     0);
    assert_int_equal(check("p5.txt", "--packet %s/hostile.json --merchant m-1001", d.token.dir), 1);
    assert_checks(API_WALLET_APPLE_PAY, WALLET_ERR_FORMAT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apple_at_signing_time),
        cmocka_unit_test(test_apple_today),
        cmocka_unit_test(test_google),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_unknown_merchant),
        cmocka_unit_test(test_wallet_keys_by_merchant),
        cmocka_unit_test(test_usage),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
