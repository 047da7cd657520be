/*
 * test_wallet_decrypt - WALLET_DECRYPT end to end: the real tokenvaultd on a
 * SoftHSM token holding one merchant's Apple Pay, Google Pay and Samsung Pay
 * keys (made in the token, as the ceremonies make them) and test trust
 * anchors (a test Apple CA with the marker OIDs; Tink's Google test signing
 * key), packets generated the way each wallet makes them at the real clock,
 * over mTLS with the client library. Each decrypt vaults the device PAN; the
 * reveal role gets it back; a replay, a spoilt packet, a wrong amount, a
 * client without the wallet role and a merchant without keys are refused
 * with their own status; every decrypt is in the audit log; an expired DPAN
 * record is swept.
 */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/daemon.h"
#include "tests/support/gen_apple.h"
#include "tests/support/gen_google.h"
#include "tests/support/gen_samsung.h"
#include "vault/audit.h"
#include "vault/store.h"

#define MERCHANT "m-1"
#define SAMSUNG_KID "samsung-kid-1"
#define DPAN_LIFETIME_S 3u
#define HOUR_MS UINT64_C(3600000)
/* [hsm] recycle_after_objects for this daemon: about one wallet packet. */
#define RECYCLE_AFTER_OBJECTS 3u

#define APPLE_DPAN "4761120010000492"
#define GOOGLE_DPAN "5204740000001002"
#define SAMSUNG_DPAN "4895370012003478"

static struct tv_daemon d;
static struct gen_apple_ca *apple_ca;
static uint8_t apple_spki[HSM_SPKI_MAX], google_spki[HSM_SPKI_MAX], samsung_spki[HSM_SPKI_MAX];
static size_t apple_spki_len, google_spki_len, samsung_spki_len;
static uint8_t merchant_id[32];
static uint8_t *google_root, *google_inter;
static size_t google_root_len, google_inter_len;

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct api_client *
client(const char *who)
{
    struct api_client *c = NULL;

    assert_int_equal(tv_daemon_client(&d, who, &c), 0);
    return c;
}

/* ---- packets ---------------------------------------------------------------------- */

/* An Apple EC_v1 packet for the merchant; |plain| NULL: the default one. */
static char *
apple_packet(const char *plain)
{
    static const char def[] = "{\"applicationPrimaryAccountNumber\":\"" APPLE_DPAN "\","
                              "\"applicationExpirationDate\":\"301231\",\"currencyCode\":\"826\","
                              "\"transactionAmount\":4250,\"deviceManufacturerIdentifier\":\"040010030273\","
                              "\"paymentDataType\":\"3DSecure\","
                              "\"paymentData\":{\"onlinePaymentCryptogram\":\"AgAAAAAABk4DWZ4C28yUQAAAAAA=\","
                              "\"eciIndicator\":\"7\"}}";
    char *p = gen_apple_token(apple_ca, "EC_v1", apple_spki, apple_spki_len, merchant_id,
                              plain != NULL ? plain : def, time(NULL), NULL);

    assert_non_null(p);
    return p;
}

static char *
google_packet(void)
{
    char *msg = NULL, *out = NULL;
    struct gen_google_params p = {
        .protocol = "ECv2",
        .recipient_spki = google_spki,
        .recipient_spki_len = google_spki_len,
        .recipient_id = "merchant:" MERCHANT,
        .key_expiration_ms = now_ms() + HOUR_MS,
        .root_pkcs8 = google_root,
        .root_pkcs8_len = google_root_len,
        .intermediate_pkcs8 = google_inter,
        .intermediate_pkcs8_len = google_inter_len,
    };
    static unsigned n;

    assert_true(asprintf(&msg,
                         "{\"messageExpiration\":\"%" PRIu64 "\",\"messageId\":\"AH2Ejt-e2e-%u\","
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

static char *
samsung_packet(void)
{
    char *plain = NULL, *out = NULL;
    struct gen_samsung_params p = {
        .recipient_spki = samsung_spki,
        .recipient_spki_len = samsung_spki_len,
        .kid = SAMSUNG_KID,
        .alg = "RSA1_5",
        .enc = "A128GCM",
        .payment_credential = true,
    };

    assert_true(asprintf(&plain,
                         "{\"amount\":\"1999\",\"currency_code\":\"USD\",\"utc\":\"%" PRIu64 "\","
                         "\"eci_indicator\":\"5\",\"tokenPAN\":\"" SAMSUNG_DPAN "\","
                         "\"tokenPanExpiration\":\"1230\",\"cryptogram\":\"AkkHJQYMK0P6ADfrsRHVAoACFA==\"}",
                         now_ms()) > 0);
    p.plaintext = (const uint8_t *)plain;
    p.plaintext_len = strlen(plain);
    assert_int_equal(gen_samsung_packet(&p, &out, NULL), 0);
    free(plain);
    return out;
}

static void
req_init(struct api_wallet_decrypt_req *q, const char *merchant, int wallet, const char *packet)
{
    memset(q, 0, sizeof(*q));
    snprintf(q->merchant, sizeof(q->merchant), "%s", merchant);
    q->wallet = (uint8_t)wallet;
    q->packet.data = (const uint8_t *)packet;
    q->packet.len = strlen(packet);
}

static int
decrypt(struct api_client *c, struct api_wallet_decrypt_req *q,
        struct api_wallet_decrypt_resp *resp, struct api_error_resp *err)
{
    memset(resp, 0, sizeof(*resp));
    memset(err, 0, sizeof(*err));
    return api_call_wallet_decrypt(c, q, resp, err);
}

static void
reveal(const char *token, const char *want_pan)
{
    struct api_client *c = client("reveal-client");
    struct api_card_reveal_req q = { 0 };
    struct api_card_reveal_resp resp;
    struct api_error_resp err;

    snprintf(q.merchant, sizeof(q.merchant), MERCHANT);
    snprintf(q.token, sizeof(q.token), "%s", token);
    q.purpose = API_PURPOSE_AUTHORIZATION;
    memset(&resp, 0, sizeof(resp));
    if (want_pan != NULL) {
        assert_int_equal(api_call_card_reveal(c, &q, &resp, &err), 0);
        assert_int_equal(resp.kind, API_CARD_KIND_DPAN);
        assert_string_equal(resp.pan, want_pan);
        api_msg_cleanup(api_schema_response(API_OP_CARD_REVEAL), &resp);
    } else {
        assert_int_equal(api_call_card_reveal(c, &q, &resp, &err), -API_STATUS_NOT_FOUND);
    }
    api_client_free(c);
}

/* ---- setup: keys and anchors in the token, then the daemon ---------------------------- */

/* A setup step that failed says which, with the HSM's detail. */
static int
setup_failed(const char *what)
{
    fprintf(stderr, "group setup: %s failed (hsm: %s)\n", what, hsm_last_detail());
    return -1;
}

static int
group_setup(void **state)
{
    hsm_session *s = NULL;
    hsm_key *k = NULL;
    uint8_t *cert = NULL, *root_spki = NULL;
    size_t cert_len = 0, root_spki_len = 0;
    char extra[1024];
    /* The module is recycled every 3 transient objects (about one wallet
     * packet): every format, refusal and replay below also runs across the
     * module's re-initialization (SoftHSM 2.6 keeps destroyed objects). */
    struct tv_daemon_opts opts = {.recycle_after_objects = RECYCLE_AFTER_OBJECTS};

    (void)state;
    if (tv_daemon_setup(&d, &opts) != 0 || tv_token_open(&d.token) != HSM_OK ||
        hsm_session_acquire(d.token.h, &s) != HSM_OK)
        return setup_failed("the token");
    SHA256((const uint8_t *)"merchant.com.example.e2e", 24, merchant_id);
    /* Apple: a key made in the HSM, its Payment Processing certificate from
     * the test CA, and the test root as the pinned anchor. */
    if ((apple_ca = gen_apple_ca_new(0)) == NULL ||
        hsm_key_generate(s, HSM_KIND_EC_DERIVE, "apple-m1", &k) != HSM_OK ||
        hsm_key_public_spki(s, k, apple_spki, sizeof(apple_spki), &apple_spki_len) != HSM_OK ||
        gen_apple_merchant_cert(apple_ca, apple_spki, apple_spki_len, merchant_id, &cert,
                                &cert_len) != 0 ||
        hsm_key_cert_store(s, k, cert, cert_len) != HSM_OK ||
        hsm_anchor_cert_store(s, "apple-root-test", HSM_ANCHOR_SET_APPLE_ROOT, apple_ca->root_der,
                              (size_t)apple_ca->root_der_len) != HSM_OK)
        return setup_failed("Apple key, certificate and root");
    free(cert);
    /* Google: a recipient key, and Tink's test root key as the ECv2 anchor. */
    google_root = tv_vector_b64("tink-paymentmethodtoken/GOOGLE_SIGNING_EC_V2_PRIVATE_KEY_PKCS8_BASE64.txt",
                           &google_root_len);
    google_inter = tv_vector_b64(
        "tink-paymentmethodtoken/GOOGLE_SIGNING_EC_V2_INTERMEDIATE_PRIVATE_KEY_PKCS8_BASE64.txt",
        &google_inter_len);
    if (google_root == NULL || google_inter == NULL ||
        hsm_key_generate(s, HSM_KIND_EC_DERIVE, "google-m1", &k) != HSM_OK ||
        hsm_key_public_spki(s, k, google_spki, sizeof(google_spki), &google_spki_len) != HSM_OK ||
        gen_google_spki(google_root, google_root_len, &root_spki, &root_spki_len) != 0 ||
        hsm_anchor_key_store(s, "google-root-test", HSM_ANCHOR_SET_GOOGLE_PREFIX "ECv2", root_spki,
                             root_spki_len, now_ms() + 24 * HOUR_MS) != HSM_OK)
        return setup_failed("Google key and root");
    free(root_spki);
    /* Samsung: an RSA-2048 unwrap key. */
    if (hsm_key_generate(s, HSM_KIND_RSA_UNWRAP, "samsung-m1", &k) != HSM_OK ||
        hsm_key_public_spki(s, k, samsung_spki, sizeof(samsung_spki), &samsung_spki_len) != HSM_OK)
        return setup_failed("Samsung key");
    /* The daemon reads the token on its own; this process lets go of it. */
    hsm_session_release(s);
    hsm_close(d.token.h);
    d.token.h = NULL;

    snprintf(extra, sizeof(extra),
             "[merchant " MERCHANT "]\n"
             "applepay_keys = apple-m1\n"
             "googlepay_recipient = merchant:" MERCHANT "\n"
             "googlepay_keys = google-m1\n"
             "samsungpay_keys = samsung-m1:" SAMSUNG_KID "\n"
             "[wallet]\n"
             "dpan_lifetime_seconds = %u\n",
             DPAN_LIFETIME_S);
    if (tv_daemon_write_config(&d, extra) != 0)
        return setup_failed("the config");
    if (tv_daemon_start(&d) != 0) {
        (void)tv_file_has(d.log, "event=service_started"); /* prints the log */
        return setup_failed("the daemon's start");
    }
    return tv_file_has(d.log, "wallet_merchants=1") ? 0 : -1;
}

static int
group_teardown(void **state)
{
    (void)state;
    if (getenv("TV_KEEP_LOG") != NULL)
        tv_run("grep -v level=debug %s >&2", d.log);
    tv_daemon_teardown(&d);
    gen_apple_ca_free(apple_ca);
    if (google_root != NULL)
        OPENSSL_cleanse(google_root, google_root_len);
    free(google_root);
    free(google_inter);
    return 0;
}

/* ---- the tests ------------------------------------------------------------------------ */

/* One packet of each wallet: decrypted, vaulted, revealed; the replay refused. */
static void
test_each_wallet(void **state)
{
    struct api_client *c = client("client");
    struct {
        int wallet;
        char *packet;
        const char *pan, *version, *currency;
        uint64_t amount;
        bool has_amount;
    } cases[] = {
        { API_WALLET_APPLE_PAY, apple_packet(NULL), APPLE_DPAN, "EC_v1", "GBP", 4250, true },
        { API_WALLET_GOOGLE_PAY, google_packet(), GOOGLE_DPAN, "ECv2", NULL, 0, false },
        { API_WALLET_SAMSUNG_PAY, samsung_packet(), SAMSUNG_DPAN, "RSA1_5/A128GCM", "USD", 1999,
          true },
    };
    struct api_wallet_decrypt_req q;
    struct api_wallet_decrypt_resp resp;
    struct api_error_resp err;
    uint64_t before = (uint64_t)time(NULL);

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].pan);

        req_init(&q, MERCHANT, cases[i].wallet, cases[i].packet);
        assert_int_equal(decrypt(c, &q, &resp, &err), 0);
        assert_int_equal(resp.kind, API_CARD_KIND_DPAN);
        assert_int_equal(resp.wallet, cases[i].wallet);
        assert_string_equal(resp.wallet_version, cases[i].version);
        assert_string_equal(resp.last4, cases[i].pan + n - 4);
        assert_int_equal(strncmp(resp.bin, cases[i].pan, strlen(resp.bin)), 0);
        assert_true(strlen(resp.bin) >= 6);
        assert_null(strstr(resp.token, cases[i].pan)); /* the token is not the DPAN */
        assert_int_equal(resp.auth_method, API_AUTH_CRYPTOGRAM_3DS);
        assert_true(resp.has_cryptogram);
        assert_true(resp.has_eci);
        assert_int_equal(resp.has_amount, cases[i].has_amount);
        if (cases[i].has_amount) {
            assert_int_equal(resp.amount, cases[i].amount);
            assert_string_equal(resp.currency, cases[i].currency);
        }
        assert_true(resp.transaction_id[0] != '\0');
        assert_true(resp.expires_at >= before + DPAN_LIFETIME_S &&
                    resp.expires_at <= (uint64_t)time(NULL) + DPAN_LIFETIME_S);
        reveal(resp.token, cases[i].pan);
        api_msg_cleanup(api_schema_response(API_OP_WALLET_DECRYPT), &resp);

        /* The same packet again: REPLAYED, and nothing of the card. */
        assert_int_equal(decrypt(c, &q, &resp, &err), -API_STATUS_REPLAYED);
        assert_string_equal(resp.token, "");
        assert_false(resp.has_cryptogram);
        free(cases[i].packet);
    }
    api_client_free(c);
}

/* Refusals, each with its status, and nothing vaulted. */
static void
test_refusals(void **state)
{
    struct api_client *c = client("client"), *lister = client("list-client");
    struct api_wallet_decrypt_req q;
    struct api_wallet_decrypt_resp resp;
    struct api_error_resp err;
    char *apple = apple_packet(NULL), *google = google_packet(), *spoilt;

    (void)state;
    /* A client without the wallet role. */
    req_init(&q, MERCHANT, API_WALLET_APPLE_PAY, apple);
    assert_int_equal(decrypt(lister, &q, &resp, &err), -API_STATUS_DENIED);
    /* The gateway expects another amount, or another currency. */
    q.has_amount = true;
    q.amount = 4251;
    assert_int_equal(decrypt(c, &q, &resp, &err), -API_STATUS_MISMATCH);
    assert_int_equal(err.error_tag, API_TAG_AMOUNT);
    q.amount = 4250;
    q.has_currency = true;
    snprintf(q.currency, sizeof(q.currency), "EUR");
    assert_int_equal(decrypt(c, &q, &resp, &err), -API_STATUS_MISMATCH);
    assert_int_equal(err.error_tag, API_TAG_CURRENCY);
    /* A refused packet is not consumed: with the right expectations it opens. */
    snprintf(q.currency, sizeof(q.currency), "GBP");
    assert_int_equal(decrypt(c, &q, &resp, &err), 0);
    api_msg_cleanup(api_schema_response(API_OP_WALLET_DECRYPT), &resp);
    /* The wrong wallet for the packet. */
    req_init(&q, MERCHANT, API_WALLET_SAMSUNG_PAY, google);
    assert_int_equal(decrypt(c, &q, &resp, &err), -API_STATUS_BAD_VALUE);
    /* A merchant without wallet keys (the gateway may act for m-pan). */
    req_init(&q, "m-pan", API_WALLET_GOOGLE_PAY, google);
    assert_int_equal(decrypt(c, &q, &resp, &err), -API_STATUS_NOT_FOUND);
    /* A spoilt signature: one character of the signedMessage's signature. */
    spoilt = strdup(google);
    {
        char *sig = strstr(spoilt, "\"signature\":\"");

        assert_non_null(sig);
        sig += 20;
        *sig = *sig == 'A' ? 'B' : 'A';
    }
    req_init(&q, MERCHANT, API_WALLET_GOOGLE_PAY, spoilt);
    assert_int_equal(decrypt(c, &q, &resp, &err), -API_STATUS_SIGNATURE_INVALID);
    assert_string_equal(resp.token, "");
    /* Keeping a card on file without the payer's consent. */
    req_init(&q, MERCHANT, API_WALLET_GOOGLE_PAY, google);
    q.has_customer_number = true;
    snprintf(q.customer_number, sizeof(q.customer_number), "cust-1");
    assert_int_equal(decrypt(c, &q, &resp, &err), -API_STATUS_CONSENT_REQUIRED);
    /* The unspoilt packet still opens: none of the refusals consumed it. */
    q.has_customer_number = false;
    assert_int_equal(decrypt(c, &q, &resp, &err), 0);
    api_msg_cleanup(api_schema_response(API_OP_WALLET_DECRYPT), &resp);
    free(spoilt);
    free(apple);
    free(google);
    api_client_free(lister);
    api_client_free(c);
}

/* A merchant token (Apple's merchantTokenIdentifier) kept on file for the
 * customer when asked, with consent: no expiry, in the customer's list. */
static void
test_card_on_file(void **state)
{
    static const char plain[] =
        "{\"applicationPrimaryAccountNumber\":\"5204740000001002\","
        "\"applicationExpirationDate\":\"311130\",\"currencyCode\":\"840\","
        "\"transactionAmount\":100,\"deviceManufacturerIdentifier\":\"040010030273\","
        "\"merchantTokenIdentifier\":\"DNITHE302308980427388297\","
        "\"paymentDataType\":\"3DSecure\","
        "\"paymentData\":{\"onlinePaymentCryptogram\":\"AgAAAAAABk4DWZ4C28yUQAAAAAA=\"}}";
    struct api_client *c = client("client");
    struct api_wallet_decrypt_req q;
    struct api_wallet_decrypt_resp resp;
    struct api_error_resp err;
    struct api_customer_ref lq = { 0 };
    struct api_card_list_resp list;
    char *apple = apple_packet(plain), *plain_dpan = apple_packet(NULL);

    (void)state;
    req_init(&q, MERCHANT, API_WALLET_APPLE_PAY, apple);
    q.has_customer_number = true;
    snprintf(q.customer_number, sizeof(q.customer_number), "cust-cof");
    q.has_consent = true;
    q.consent = true;
    assert_int_equal(decrypt(c, &q, &resp, &err), 0);
    assert_int_equal(resp.expires_at, 0);
    snprintf(lq.merchant, sizeof(lq.merchant), MERCHANT);
    snprintf(lq.customer_number, sizeof(lq.customer_number), "cust-cof");
    memset(&list, 0, sizeof(list));
    assert_int_equal(api_call_card_list(c, &lq, &list, &err), 0);
    assert_int_equal(list.num_cards, 1);
    assert_string_equal(list.cards[0].token, resp.token);
    api_msg_cleanup(api_schema_response(API_OP_CARD_LIST), &list);
    api_msg_cleanup(api_schema_response(API_OP_WALLET_DECRYPT), &resp);
    /* A DPAN that is no merchant token is not kept on file: it expires. */
    req_init(&q, MERCHANT, API_WALLET_APPLE_PAY, plain_dpan);
    q.has_customer_number = true;
    snprintf(q.customer_number, sizeof(q.customer_number), "cust-other");
    q.has_consent = true;
    q.consent = true;
    assert_int_equal(decrypt(c, &q, &resp, &err), 0);
    assert_true(resp.expires_at != 0);
    api_msg_cleanup(api_schema_response(API_OP_WALLET_DECRYPT), &resp);
    free(apple);
    free(plain_dpan);
    api_client_free(c);
}

/* An expired DPAN record is swept: the reveal finds nothing. */
static void
test_sweep(void **state)
{
    struct api_client *c = client("client");
    struct api_wallet_decrypt_req q;
    struct api_wallet_decrypt_resp resp;
    struct api_error_resp err;
    char *packet = samsung_packet(), token[API_ID_MAX + 1];
    struct api_card_reveal_req rq = { 0 };
    struct api_card_reveal_resp rr;
    struct api_client *rv = client("reveal-client");
    int r = 0;

    (void)state;
    req_init(&q, MERCHANT, API_WALLET_SAMSUNG_PAY, packet);
    assert_int_equal(decrypt(c, &q, &resp, &err), 0);
    snprintf(token, sizeof(token), "%s", resp.token);
    api_msg_cleanup(api_schema_response(API_OP_WALLET_DECRYPT), &resp);
    reveal(token, SAMSUNG_DPAN);
    snprintf(rq.merchant, sizeof(rq.merchant), MERCHANT);
    snprintf(rq.token, sizeof(rq.token), "%s", token);
    rq.purpose = API_PURPOSE_AUTHORIZATION;
    /* Lifetime plus two sweeper ticks, with room for a slow machine. */
    for (unsigned i = 0; i < 100; i++) {
        memset(&rr, 0, sizeof(rr));
        r = api_call_card_reveal(rv, &rq, &rr, &err);
        if (r != 0)
            break;
        api_msg_cleanup(api_schema_response(API_OP_CARD_REVEAL), &rr);
        usleep(100000);
    }
    assert_int_equal(r, -API_STATUS_NOT_FOUND);
    free(packet);
    api_client_free(rv);
    api_client_free(c);
}

/* A reload naming a key the token lacks is refused as a whole: the service
 * keeps the wallets it has. */
static void
test_reload_missing_key(void **state)
{
    struct api_client *c;
    struct api_wallet_decrypt_req q;
    struct api_wallet_decrypt_resp resp;
    struct api_error_resp err;
    char *packet = google_packet();
    unsigned i;

    (void)state;
    assert_int_equal(tv_daemon_write_config(&d, "[merchant " MERCHANT "]\n"
                                                "googlepay_recipient = merchant:" MERCHANT "\n"
                                                "googlepay_keys = google-m1-missing\n"),
                     0);
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    for (i = 0; i < 100 && tv_file_contains(d.log, "google-m1-missing", 17) != 1; i++)
        usleep(50000);
    assert_true(tv_file_has(d.log, "event=config_reload_failed"));
    assert_true(tv_file_has(d.log, "google-m1-missing': no such key in the token"));
    c = client("client");
    req_init(&q, MERCHANT, API_WALLET_GOOGLE_PAY, packet);
    assert_int_equal(decrypt(c, &q, &resp, &err), 0);
    api_msg_cleanup(api_schema_response(API_OP_WALLET_DECRYPT), &resp);
    free(packet);
    api_client_free(c);
}

/* The audit log holds every decrypt, refused ones included, and never a DPAN
 * or a cryptogram; neither does the store or the service log. */
struct audit_count {
    unsigned ok, refused;
};

static int
count_decrypts(void *ctx, const MDB_val *key, const MDB_val *val)
{
    struct audit_count *n = ctx;
    struct audit_entry e;

    (void)key;
    assert_int_equal(audit_decode(&e, val->mv_data, val->mv_size), 0);
    if (e.type == AUDIT_EVENT && e.opcode == API_OP_WALLET_DECRYPT) {
        if (e.status == API_STATUS_OK)
            n->ok++;
        else
            n->refused++;
    }
    return 0;
}

static void
test_audited_no_clear_data(void **state)
{
    static const char *const secrets[] = { APPLE_DPAN, GOOGLE_DPAN, SAMSUNG_DPAN,
                                           "AgAAAAAABk4DWZ4C28yUQAAAAAA=",
                                           "AAAAAA8AAAAAAAAAAAAAAAAAAAA=" };
    struct vault_store *st = NULL;
    struct store_txn t;
    struct audit_count n = { 0 };
    char msg[256], path[400];

    (void)state;
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);
    assert_int_equal(store_open(&st, d.store, 1ull << 20, msg, sizeof(msg)), 0);
    assert_int_equal(store_read_begin(st, &t), 0);
    assert_int_equal(store_each(&t, STORE_DB_AUDIT, NULL, 0, count_decrypts, &n), 0);
    store_read_end(&t);
    store_close(st);
    /* test_each_wallet: 3 OK + 3 REPLAYED; test_refusals: 2 OK and DENIED
     * (audited by the dispatcher), 2 MISMATCH, FORMAT, NOT_FOUND, SIGNATURE
     * (the consent refusal comes before anything is opened: no decrypt);
     * test_card_on_file 2 OK; test_sweep 1 OK; test_reload_missing_key 1 OK. */
    assert_int_equal(n.ok, 3 + 2 + 2 + 1 + 1);
    assert_int_equal(n.refused, 3 + 6);
    snprintf(path, sizeof(path), "%s/data.mdb", d.store);
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        assert_int_equal(tv_file_contains(path, secrets[i], strlen(secrets[i])), 0);
        assert_int_equal(tv_file_contains(d.log, secrets[i], strlen(secrets[i])), 0);
    }
}

/* The tests above ran across module recycles: the metrics count them. */
static void
test_recycled(void **state)
{
    static const char zero[] = "tokenvault_hsm_recycles_total 0\n";
    static const char some[] = "tokenvault_hsm_recycles_total ";
    int i;
    (void)state;

    /* The file is rewritten every second; wait for one written after them. */
    sleep(2);
    for (i = 0; i < 30 && tv_file_contains(d.metrics, some, strlen(some)) != 1; i++)
        usleep(100 * 1000);
    assert_int_equal(tv_file_contains(d.metrics, some, strlen(some)), 1);
    assert_int_equal(tv_file_contains(d.metrics, zero, strlen(zero)), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_wallet),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_card_on_file),
        cmocka_unit_test(test_sweep),
        cmocka_unit_test(test_reload_missing_key),
        cmocka_unit_test(test_audited_no_clear_data),
        cmocka_unit_test(test_recycled),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
