/*
 * test_hsm_faults.c - the real tokenvaultd on a token whose PKCS#11 calls
 * fail: the daemon loads the FAULT-INJECTION wrapper (tests/support/
 * p11_fault.h) around SoftHSM, and the test makes chosen calls fail with
 * chosen CKR codes, slow down, or all fail as a removed token.
 *
 * For each call site the service's operations use, an injected failure
 *   - answers the client with a clear status (HSM_UNAVAILABLE when the token
 *     is lost, INTERNAL for a failure the vault does not expect);
 *   - leaves no partial state: the store checks consistent (vault/fsck.h:
 *     no record without its index, no index without its record, the audit
 *     chain whole), nothing was added, a session or QR request the failed
 *     check or redeem touched is not consumed, a charge is not counted;
 *   - and the service recovers by itself when the module works again
 *     (re-open, re-login, DEKs unwrapped again): the same request succeeds.
 * A token removed mid-load (every call failing for a while) is survived with
 * every acknowledged card intact.
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
#include <inttypes.h>
#include <unistd.h>

#include "api/client.h"
#include "tests/support/daemon.h"
#include "tests/support/gen_google.h"
#include "tests/support/p11_fault.h"
#include "tests/support/store_check.h"

/* Recovery: the hsm layer backs off up to HSM_BACKOFF_MAX_MS (10 s) between
 * re-login attempts; allow two of them. */
#define RECOVER_MS 25000
#define POLL_MS 100
#define HOUR_MS UINT64_C(3600000)
#define GOOGLE_DPAN "5204740000001002"

static struct tv_daemon d;
static char control[400];
static struct api_client *gw, *rc; /* gateway; settlement (reveal) */
static unsigned next_pan = 1;
static char mandate_token[API_ID_MAX + 1], mandate_id[API_ID_MAX + 1];
/* Google Pay ECv2 for merchant m-1: the recipient key's public half, the
 * Tink test signing keys that sign the packets. */
static uint8_t google_spki[HSM_SPKI_MAX];
static size_t google_spki_len;
static unsigned char *google_root, *google_inter;
static size_t google_root_len, google_inter_len;

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the store, read beside the running daemon ----------------------------------- */

static struct fsck_counts
store_counts(void)
{
    return tv_store_consistent(d.store);
}

/* Nothing of a refused operation may remain: the same counts as before. */
static void
assert_unchanged(const struct fsck_counts *before)
{
    struct fsck_counts now = store_counts();

    assert_int_equal(now.cards, before->cards);
    assert_int_equal(now.fingerprints, before->fingerprints);
    assert_int_equal(now.customers, before->customers);
    assert_int_equal(now.mappings, before->mappings);
    assert_int_equal(now.sessions, before->sessions);
    assert_int_equal(now.qr, before->qr);
    assert_int_equal(now.mandates, before->mandates);
}

/* ---- operations ------------------------------------------------------------------------- */

static int
store_card(unsigned n, char token[API_ID_MAX + 1])
{
    struct api_card_store_req q;
    struct api_card_store_resp resp;
    struct api_error_resp err;
    char pan[17], customer[32];
    int r;

    tv_test_pan(n, pan);
    snprintf(customer, sizeof(customer), "fault-%u", n);
    tv_card_store_req(&q, "m-1", customer, pan);
    r = api_call_card_store(gw, &q, &resp, &err);
    api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
    if (r == 0 && token != NULL)
        memcpy(token, resp.token, API_ID_MAX + 1);
    if (r == 0)
        api_msg_cleanup(api_schema_response(API_OP_CARD_STORE), &resp);
    return r;
}

static int
reveal(const char *token, unsigned n)
{
    struct api_card_reveal_req q = {0};
    struct api_card_reveal_resp resp;
    struct api_error_resp err;
    char pan[17];
    int r;

    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    snprintf(q.token, sizeof(q.token), "%s", token);
    q.purpose = API_PURPOSE_AUTHORIZATION;
    r = api_call_card_reveal(rc, &q, &resp, &err);
    if (r == 0) {
        tv_test_pan(n, pan);
        assert_string_equal(resp.pan, pan);
        api_msg_cleanup(api_schema_response(API_OP_CARD_REVEAL), &resp);
    }
    return r;
}

static void
session_init_req(struct api_session_init_req *q, unsigned n)
{
    memset(q, 0, sizeof(*q));
    snprintf(q->merchant, sizeof(q->merchant), "m-1");
    q->access_token_hash.len = API_HASH_LEN;
    memcpy(q->access_token_hash.data, &n, sizeof(n));
    q->amount = 1000u + n;
    memcpy(q->currency, "EUR", 4);
    q->device_data.len =
        (size_t)snprintf((char *)q->device_data.data, API_DEVICE_DATA_MAX, "fault device %u", n);
}

static int
session_check(const struct api_session_check_req *q)
{
    return tv_session_check(gw, q);
}

static int
qr_issue(char out[API_QR_TOKEN_MAX + 1])
{
    char order[32];

    snprintf(order, sizeof(order), "order-%u", next_pan++);
    return tv_qr_issue(gw, "m-1", order, out);
}

static int
qr_redeem(const char *token)
{
    return tv_qr_redeem(gw, "m-1", token, "payer-1");
}

/* Returns the status; the charge count of an approval in *count. */
static int
mit(uint32_t *count)
{
    struct api_mit_authorize_req q = {0};
    struct api_mit_authorize_resp resp;
    struct api_error_resp err;
    int r;

    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    memcpy(q.token, mandate_token, sizeof(q.token));
    memcpy(q.mandate_id, mandate_id, sizeof(q.mandate_id));
    q.amount = 500;
    memcpy(q.currency, "RUB", 4);
    q.date = tv_date_in_days(0);
    r = api_call_mit_authorize(gw, &q, &resp, &err);
    if (r == 0) {
        *count = resp.charge_count;
        api_msg_cleanup(api_schema_response(API_OP_MIT_AUTHORIZE), &resp);
    }
    return r;
}

static uint32_t
charge_count(void)
{
    struct api_mandate_ref q = {0};
    struct api_mandate_info info;
    struct api_error_resp err;
    uint32_t n;

    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    memcpy(q.token, mandate_token, sizeof(q.token));
    memcpy(q.mandate_id, mandate_id, sizeof(q.mandate_id));
    assert_int_equal(api_call_mandate_get(gw, &q, &info, &err), 0);
    n = info.charge_count;
    api_msg_cleanup(api_schema_response(API_OP_MANDATE_GET), &info);
    return n;
}

static int
card_map(const char *token, const char *client_card_id)
{
    struct api_card_map_req q = {0};
    struct api_empty resp;
    struct api_error_resp err;

    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    snprintf(q.client_card_id, sizeof(q.client_card_id), "%s", client_card_id);
    snprintf(q.token, sizeof(q.token), "%s", token);
    q.has_email = true;
    snprintf(q.email, sizeof(q.email), "%s", TV_EMAIL);
    return api_call_card_map(gw, &q, &resp, &err);
}

/* ---- faults ------------------------------------------------------------------------------ */

static void
inject(const char *rules)
{
    assert_int_equal(tv_p11_fault_set(control, rules), 0);
}

/* Runs |op| until it succeeds after the rules were cleared; each failure
 * on the way must be the token's (HSM_UNAVAILABLE: the service re-logs in
 * with backoff). */
#define RECOVERS(op)                                                                            \
    do {                                                                                        \
        int r_ = -1;                                                                            \
        inject(NULL);                                                                           \
        for (int w_ = 0; w_ < RECOVER_MS / POLL_MS; w_++) {                                     \
            if ((r_ = (op)) != -API_STATUS_HSM_UNAVAILABLE)                                     \
                break;                                                                          \
            usleep(POLL_MS * 1000);                                                             \
        }                                                                                       \
        if (r_ != 0)                                                                            \
            fail_msg("%s did not recover: %s", #op, api_status_name((unsigned)-r_));            \
    } while (0)

static void
assert_status(int got, int want)
{
    if (got != want)
        fail_msg("status %s, want %s", got == 0 ? "OK" : api_status_name((unsigned)-got),
                 api_status_name((unsigned)-want));
}

/* ---- fixture ---------------------------------------------------------------------------- */

static int
setup(void **state)
{
    struct tv_daemon_opts o = {.module = TV_P11_FAULT_MODULE};
    struct api_mandate_create_req m = {0};
    struct api_mandate_info info;
    struct api_error_resp err;

    hsm_session *s = NULL;
    hsm_key *k = NULL;
    uint8_t *root_spki = NULL;
    size_t root_spki_len = 0;

    (void)state;
    if (tv_daemon_setup(&d, &o) != 0)
        return -1;
    /* The Google Pay recipient key and its root anchor, made in the token
     * before the daemon takes it (as test_wallet_decrypt.c does). */
    google_root = tv_vector_b64(
        "tink-paymentmethodtoken/GOOGLE_SIGNING_EC_V2_PRIVATE_KEY_PKCS8_BASE64.txt", &google_root_len);
    google_inter = tv_vector_b64(
        "tink-paymentmethodtoken/GOOGLE_SIGNING_EC_V2_INTERMEDIATE_PRIVATE_KEY_PKCS8_BASE64.txt",
        &google_inter_len);
    if (tv_token_open(&d.token) != HSM_OK || hsm_session_acquire(d.token.h, &s) != HSM_OK ||
        hsm_key_generate(s, HSM_KIND_EC_DERIVE, "google-m1", &k) != HSM_OK ||
        hsm_key_public_spki(s, k, google_spki, sizeof(google_spki), &google_spki_len) != HSM_OK ||
        gen_google_spki(google_root, google_root_len, &root_spki, &root_spki_len) != 0 ||
        hsm_anchor_key_store(s, "google-root-test", HSM_ANCHOR_SET_GOOGLE_PREFIX "ECv2", root_spki,
                             root_spki_len, now_ms() + 24 * HOUR_MS) != HSM_OK)
        return -1;
    free(root_spki);
    hsm_session_release(s);
    hsm_close(d.token.h);
    d.token.h = NULL;
    if (tv_daemon_write_config(&d, "[merchant m-1]\n"
                                   "googlepay_recipient = merchant:m-1\n"
                                   "googlepay_keys = google-m1\n") != 0)
        return -1;
    snprintf(control, sizeof(control), "%s/p11-faults", d.token.dir);
    if (tv_p11_fault_env(control) != 0 || tv_daemon_start(&d) != 0 ||
        tv_daemon_client(&d, "client", &gw) != 0 || tv_daemon_client(&d, "reveal-client", &rc) != 0 ||
        store_card(999999, mandate_token) != 0)
        return -1;
    snprintf(m.merchant, sizeof(m.merchant), "m-1");
    memcpy(m.token, mandate_token, sizeof(m.token));
    snprintf(m.customer_number, sizeof(m.customer_number), "fault-999999");
    m.kind = API_MANDATE_KIND_UNSCHEDULED;
    m.max_amount = 100000;
    memcpy(m.currency, "RUB", 4);
    m.recurring_max_date = tv_date_in_days(365);
    if (api_call_mandate_create(gw, &m, &info, &err) != 0)
        return -1;
    memcpy(mandate_id, info.mandate_id, sizeof(mandate_id));
    api_msg_cleanup(api_schema_response(API_OP_MANDATE_CREATE), &info);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    api_client_free(gw);
    api_client_free(rc);
    tv_daemon_teardown(&d);
    free(google_root);
    free(google_inter);
    return 0;
}

/* ---- the tests ---------------------------------------------------------------------------- */

/* CARD_STORE: the token's random bytes, the fingerprint HMAC, the record's
 * IV and GCM seal. */
static void
test_store_faults(void **state)
{
    static const struct {
        const char *rules;
        int status;
    } cases[] = {
        {"C_GenerateRandom CKR_DEVICE_ERROR", -API_STATUS_HSM_UNAVAILABLE},
        {"C_GenerateRandom CKR_FUNCTION_FAILED", -API_STATUS_INTERNAL},
        {"C_SignInit CKR_DEVICE_REMOVED", -API_STATUS_HSM_UNAVAILABLE},
        {"C_Sign CKR_FUNCTION_FAILED", -API_STATUS_INTERNAL},
        {"C_EncryptInit CKR_SESSION_HANDLE_INVALID", -API_STATUS_HSM_UNAVAILABLE},
        {"C_Encrypt CKR_DEVICE_MEMORY", -API_STATUS_INTERNAL},
    };
    char token[API_ID_MAX + 1];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fsck_counts before = store_counts();
        unsigned n = next_pan++;

        print_message("fault: %s\n", cases[i].rules);
        inject(cases[i].rules);
        assert_status(store_card(n, token), cases[i].status);
        assert_unchanged(&before);
        RECOVERS(store_card(n, token));
        assert_int_equal(reveal(token, n), 0);
    }
}

/* CARD_REVEAL: the record opened in the HSM, audited before the answer. */
static void
test_reveal_faults(void **state)
{
    char token[API_ID_MAX + 1];
    unsigned n = next_pan++;

    (void)state;
    assert_int_equal(store_card(n, token), 0);
    inject("C_DecryptInit CKR_DEVICE_ERROR");
    assert_status(reveal(token, n), -API_STATUS_HSM_UNAVAILABLE);
    RECOVERS(reveal(token, n));
    inject("C_Decrypt CKR_FUNCTION_FAILED");
    assert_status(reveal(token, n), -API_STATUS_INTERNAL);
    RECOVERS(reveal(token, n));
    (void)store_counts(); /* the audit chain is whole */
}

/* SESSION_INIT (nonce, signature) and SESSION_CHECK (verify): a failed
 * check does not consume the session. */
static void
test_session_faults(void **state)
{
    struct api_session_init_req q;
    struct api_session_init_resp resp;
    struct api_session_check_req chk;
    struct api_error_resp err;
    struct fsck_counts before = store_counts();

    (void)state;
    session_init_req(&q, next_pan++);
    inject("C_GenerateRandom CKR_DEVICE_REMOVED");
    assert_status(api_call_session_init(gw, &q, &resp, &err), -API_STATUS_HSM_UNAVAILABLE);
    assert_unchanged(&before);
    inject("C_Sign CKR_GENERAL_ERROR");
    assert_status(api_call_session_init(gw, &q, &resp, &err), -API_STATUS_INTERNAL);
    assert_unchanged(&before);
    RECOVERS(api_call_session_init(gw, &q, &resp, &err));
    tv_session_check_req(&chk, &q, &resp);
    api_msg_cleanup(api_schema_response(API_OP_SESSION_INIT), &resp);

    inject("C_VerifyInit CKR_DEVICE_ERROR");
    assert_status(session_check(&chk), -API_STATUS_HSM_UNAVAILABLE);
    inject("C_Verify CKR_FUNCTION_FAILED");
    assert_status(session_check(&chk), -API_STATUS_INTERNAL);
    /* Not consumed by the failures: the real check passes once. */
    RECOVERS(session_check(&chk));
    assert_status(session_check(&chk), -API_STATUS_REPLAYED);
}

/* QR_ISSUE (tag made) and QR_REDEEM (tag verified): a failed redeem
 * leaves the request unpaid. */
static void
test_qr_faults(void **state)
{
    char token[API_QR_TOKEN_MAX + 1];
    struct fsck_counts before = store_counts();

    (void)state;
    inject("C_Sign CKR_DEVICE_REMOVED");
    assert_status(qr_issue(token), -API_STATUS_HSM_UNAVAILABLE);
    assert_unchanged(&before);
    RECOVERS(qr_issue(token));
    inject("C_Verify CKR_DEVICE_ERROR");
    assert_status(qr_redeem(token), -API_STATUS_HSM_UNAVAILABLE);
    RECOVERS(qr_redeem(token));
    assert_status(qr_redeem(token), -API_STATUS_REPLAYED);
}

/* MIT_AUTHORIZE (the approval id from the HSM RNG): a failed charge is not
 * counted against the mandate. */
static void
test_mit_faults(void **state)
{
    uint32_t before = charge_count(), count = 0;

    (void)state;
    inject("C_GenerateRandom CKR_DEVICE_ERROR");
    assert_status(mit(&count), -API_STATUS_HSM_UNAVAILABLE);
    assert_int_equal(charge_count(), before);
    RECOVERS(mit(&count));
    assert_int_equal(count, before + 1);
    assert_int_equal(charge_count(), before + 1);
}

/* CARD_MAP (the e-mail's keyed fingerprint). */
static void
test_map_faults(void **state)
{
    char token[API_ID_MAX + 1];
    struct fsck_counts before;

    (void)state;
    assert_int_equal(store_card(next_pan++, token), 0);
    before = store_counts();
    inject("C_SignInit CKR_USER_NOT_LOGGED_IN");
    assert_status(card_map(token, "app-card-fault"), -API_STATUS_HSM_UNAVAILABLE);
    assert_unchanged(&before);
    RECOVERS(card_map(token, "app-card-fault"));
}

/* The re-login itself fails for a while (the token answers nothing, then
 * refuses logins): requests are refused as HSM_UNAVAILABLE, and the
 * service comes back alone once the token does. */
static void
test_relogin_faults(void **state)
{
    char token[API_ID_MAX + 1];
    unsigned n = next_pan++;

    (void)state;
    inject("C_GenerateRandom CKR_DEVICE_REMOVED count 1\n"
           "C_OpenSession CKR_TOKEN_NOT_PRESENT count 3\n"
           "C_Login CKR_DEVICE_ERROR count 2\n");
    assert_status(store_card(n, token), -API_STATUS_HSM_UNAVAILABLE);
    assert_status(store_card(n, token), -API_STATUS_HSM_UNAVAILABLE);
    RECOVERS(store_card(n, token));
    assert_int_equal(reveal(token, n), 0); /* the DEK was unwrapped again */
}

/* A Google Pay ECv2 packet for m-1, signed with the Tink test keys. */
static char *
google_packet(void)
{
    static unsigned n;
    char *msg = NULL, *out = NULL;
    struct gen_google_params p = {
        .protocol = "ECv2",
        .recipient_spki = google_spki,
        .recipient_spki_len = google_spki_len,
        .recipient_id = "merchant:m-1",
        .key_expiration_ms = now_ms() + HOUR_MS,
        .root_pkcs8 = google_root,
        .root_pkcs8_len = google_root_len,
        .intermediate_pkcs8 = google_inter,
        .intermediate_pkcs8_len = google_inter_len,
    };

    assert_true(asprintf(&msg,
                         "{\"messageExpiration\":\"%" PRIu64 "\",\"messageId\":\"fault-%u\","
                         "\"paymentMethod\":\"CARD\",\"paymentMethodDetails\":{\"pan\":\"" GOOGLE_DPAN
                         "\",\"expirationMonth\":12,\"expirationYear\":2031,\"authMethod\":"
                         "\"CRYPTOGRAM_3DS\",\"cryptogram\":\"AAAAAA8AAAAAAAAAAAAAAAAAAAA=\","
                         "\"eciIndicator\":\"05\"}}",
                         now_ms() + HOUR_MS, n++) > 0);
    p.plaintext = (const uint8_t *)msg;
    p.plaintext_len = strlen(msg);
    assert_int_equal(gen_google_token(&p, &out, NULL), 0);
    free(msg);
    return out;
}

static int
wallet_decrypt(const char *packet)
{
    struct api_wallet_decrypt_req q;
    struct api_wallet_decrypt_resp resp;
    struct api_error_resp err;
    int r;

    memset(&q, 0, sizeof(q));
    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    q.wallet = API_WALLET_GOOGLE_PAY;
    q.packet.data = (const uint8_t *)packet;
    q.packet.len = strlen(packet);
    r = api_call_wallet_decrypt(gw, &q, &resp, &err);
    if (r == 0)
        api_msg_cleanup(api_schema_response(API_OP_WALLET_DECRYPT), &resp);
    return r;
}

/* WALLET_DECRYPT (Google Pay ECv2): the signatures verified in the HSM,
 * the ECDH, the per-message keys imported, the tag check and decryption,
 * the device PAN sealed. A packet refused for a token fault is not marked
 * seen: the same packet is accepted once the token works (not REPLAYED),
 * and only then. */
static void
test_wallet_faults(void **state)
{
    static const struct {
        const char *rules;
        int status;
    } cases[] = {
        /* The wallet engine answers any failure of the token (not of the
         * packet) HSM_UNAVAILABLE: the gateway may retry the same packet. */
        {"C_DeriveKey CKR_DEVICE_ERROR", -API_STATUS_HSM_UNAVAILABLE},
        {"C_Verify CKR_FUNCTION_FAILED", -API_STATUS_HSM_UNAVAILABLE},
        {"C_CreateObject CKR_DEVICE_REMOVED", -API_STATUS_HSM_UNAVAILABLE},
        {"C_Decrypt CKR_GENERAL_ERROR count 1", -API_STATUS_HSM_UNAVAILABLE},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fsck_counts before = store_counts(), after;
        char *packet = google_packet();

        print_message("fault: %s\n", cases[i].rules);
        inject(cases[i].rules);
        assert_status(wallet_decrypt(packet), cases[i].status);
        after = store_counts();
        assert_int_equal(after.dpans, before.dpans);
        RECOVERS(wallet_decrypt(packet));
        assert_status(wallet_decrypt(packet), -API_STATUS_REPLAYED);
        assert_int_equal(store_counts().dpans, before.dpans + 1);
        free(packet);
    }
}

/* A slow HSM: requests take longer and still succeed. */
static void
test_slow_hsm(void **state)
{
    char token[API_ID_MAX + 1];
    struct timespec a, b;
    unsigned n = next_pan++;

    (void)state;
    inject("C_Sign CKR_OK delay_ms 150");
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(store_card(n, token), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 >= 150);
    inject(NULL);
    assert_int_equal(reveal(token, n), 0);
}

/* The token removed and put back while cards are being stored. */
struct load {
    atomic_bool stop;
    unsigned acked[4096];
    char tokens[4096][API_ID_MAX + 1];
    size_t num_acked;
    unsigned refused, other;
    struct api_client *c;
};

static void *
load_main(void *arg)
{
    struct load *l = arg;

    while (!atomic_load(&l->stop) && l->num_acked < sizeof(l->acked) / sizeof(l->acked[0])) {
        struct api_card_store_req q;
        struct api_card_store_resp resp;
        struct api_error_resp err;
        char pan[17], customer[32];
        unsigned n = __atomic_fetch_add(&next_pan, 1, __ATOMIC_RELAXED);
        int r;

        tv_test_pan(n, pan);
        snprintf(customer, sizeof(customer), "fault-%u", n);
        tv_card_store_req(&q, "m-1", customer, pan);
        r = api_call_card_store(l->c, &q, &resp, &err);
        api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
        if (r == 0) {
            l->acked[l->num_acked] = n;
            memcpy(l->tokens[l->num_acked++], resp.token, API_ID_MAX + 1);
            api_msg_cleanup(api_schema_response(API_OP_CARD_STORE), &resp);
        } else if (r == -API_STATUS_HSM_UNAVAILABLE) {
            l->refused++;
            usleep(10000);
        } else {
            l->other++;
        }
    }
    return NULL;
}

static void
test_token_removed_mid_load(void **state)
{
    static struct load l;
    pthread_t th;
    size_t before_removal;

    (void)state;
    assert_int_equal(tv_daemon_client(&d, "client", &l.c), 0);
    assert_int_equal(pthread_create(&th, NULL, load_main, &l), 0);
    usleep(300 * 1000);
    before_removal = l.num_acked;
    inject("* CKR_DEVICE_REMOVED");
    usleep(1500 * 1000);
    inject(NULL);
    /* Back to storing within the backoff. */
    for (int w = 0; w < RECOVER_MS / POLL_MS && l.num_acked < before_removal + 50; w++)
        usleep(POLL_MS * 1000);
    atomic_store(&l.stop, true);
    pthread_join(th, NULL);
    api_client_free(l.c);
    print_message("stored %zu cards (%zu before the removal), %u refused HSM_UNAVAILABLE, "
                  "%u other\n",
                  l.num_acked, before_removal, l.refused, l.other);
    assert_true(before_removal > 0);
    assert_true(l.refused > 0);
    assert_int_equal(l.other, 0);
    assert_true(l.num_acked >= before_removal + 50);
    for (size_t i = 0; i < l.num_acked; i++)
        assert_int_equal(reveal(l.tokens[i], l.acked[i]), 0);
    (void)store_counts();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_faults),   cmocka_unit_test(test_reveal_faults),
        cmocka_unit_test(test_session_faults), cmocka_unit_test(test_qr_faults),
        cmocka_unit_test(test_mit_faults),     cmocka_unit_test(test_map_faults),
        cmocka_unit_test(test_relogin_faults), cmocka_unit_test(test_wallet_faults),
        cmocka_unit_test(test_slow_hsm),
        cmocka_unit_test(test_token_removed_mid_load),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
