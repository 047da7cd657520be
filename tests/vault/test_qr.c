/*
 * test_qr - QR payment requests (vault/ops/qr.c, qr_codec.c): the token and
 * record codecs on their own, then QR_ISSUE, QR_REDEEM and QR_STATUS through
 * the real tokenvaultd (SoftHSM, LMDB on disk, mTLS, libtokenvault).
 *
 * The happy path issue -> status -> redeem -> status; every refusal with its
 * exact status and errorTag: each byte of a token altered, truncated and
 * garbage tokens, an expired request, a second redeem, another merchant's
 * redeem and status, an unknown order, an order issued twice; many
 * simultaneous redeems of one token (exactly one is paid) and issues of one
 * order (one request); a paid request that survives kill -9 right after
 * its answer; [qr] settings and the sweeper; and the audit log holding every
 * redeem that got past the token's parse.
 */
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/writer.h"
#include "tests/support/daemon.h"
#include "vault/audit.h"
#include "vault/ops/qr.h"
#include "vault/store.h"

#define MERCHANT "m-1"
#define OTHER_MERCHANT "m-pan" /* the same gateway client holds both */
#define LIFETIME 600u
#define AMOUNT 12345u          /* $123.45, seed 001's example */
#define CURRENCY "USD"

static struct tv_daemon d;

/* Redeems answered OK and refused after the parse, counted by the tests to
 * compare with the audit log at the end. */
static unsigned redeem_ok, redeem_refused;

/* ---- the codecs on their own ------------------------------------------------------- */

static void
sample_record(struct qr_record *r)
{
    memset(r, 0, sizeof(*r));
    r->state = API_QR_ISSUED;
    r->key_version = 3;
    r->created_at = 1795000000;
    r->expires_at = 1795000600;
    r->amount = AMOUNT;
    memcpy(r->currency, CURRENCY, 4);
    snprintf(r->merchant, sizeof(r->merchant), MERCHANT);
    snprintf(r->order_id, sizeof(r->order_id), "SN129803");
}

static void
test_codec_token(void **state)
{
    struct qr_token t = {.version = QR_TOKEN_VERSION, .expires_at = 1795000600}, back;
    char text[QR_TOKEN_TEXT_LEN + 1], bad[QR_TOKEN_TEXT_LEN + 2];

    (void)state;
    for (size_t i = 0; i < QR_REQUEST_ID_LEN; i++)
        t.id[i] = (uint8_t)(0xf0 + i);
    for (size_t i = 0; i < QR_TAG_LEN; i++)
        t.tag[i] = (uint8_t)(i * 7);
    assert_int_equal(qr_token_encode(text, &t), 0);
    assert_int_equal(strlen(text), QR_TOKEN_TEXT_LEN);
    assert_int_equal(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     QR_TOKEN_TEXT_LEN);
    assert_int_equal(qr_token_parse(&back, text, strlen(text)), 0);
    assert_memory_equal(&back, &t, sizeof(t));

    /* Refused: every other length, every character outside the alphabet,
     * another version, an expiry past API_TIME_MAX. */
    assert_int_equal(qr_token_parse(&back, text, QR_TOKEN_TEXT_LEN - 1), -API_STATUS_BAD_VALUE);
    assert_int_equal(qr_token_parse(&back, text, 0), -API_STATUS_BAD_VALUE);
    snprintf(bad, sizeof(bad), "%sA", text);
    assert_int_equal(qr_token_parse(&back, bad, strlen(bad)), -API_STATUS_BAD_VALUE);
    for (const char *c = "=+/ .~\x7f"; *c != '\0'; c++) {
        memcpy(bad, text, sizeof(text));
        bad[QR_TOKEN_TEXT_LEN / 2] = *c;
        assert_int_equal(qr_token_parse(&back, bad, QR_TOKEN_TEXT_LEN), -API_STATUS_BAD_VALUE);
    }
    t.version = 2;
    assert_int_equal(qr_token_encode(text, &t), -API_STATUS_INTERNAL);
    t.version = QR_TOKEN_VERSION;
    assert_int_equal(qr_token_encode(text, &t), 0);
    memcpy(bad, text, sizeof(text));
    bad[0] = 'B'; /* version byte 0x05 */
    assert_int_equal(qr_token_parse(&back, bad, QR_TOKEN_TEXT_LEN), -API_STATUS_BAD_VALUE);
    t.expires_at = API_TIME_MAX + 1;
    assert_int_equal(qr_token_encode(text, &t), -API_STATUS_INTERNAL);
}

static void
test_codec_record(void **state)
{
    struct qr_record r, back;
    struct api_writer w;
    uint8_t in[QR_MAC_INPUT_MAX], id[QR_REQUEST_ID_LEN] = {1, 2, 3};
    size_t len = 0;

    (void)state;
    sample_record(&r);
    for (int paid = 0; paid < 4; paid++) {
        /* Then both states again as records of key version 0 (layout 1,
         * from before the session tag keys). */
        if (paid == 2)
            sample_record(&r), r.key_version = 0;
        if (paid % 2) {
            r.state = API_QR_PAID;
            r.paid_at = 1795000100;
            snprintf(r.payer_ref, sizeof(r.payer_ref), "wallet-7");
        }
        api_writer_init(&w, QR_RECORD_MAX);
        assert_int_equal(qr_record_encode(&w, &r), 0);
        assert_int_equal(api_writer_data(&w)[0], paid < 2 ? QR_RECORD_VERSION : QR_RECORD_VERSION_V1);
        assert_int_equal(qr_record_decode(&back, api_writer_data(&w), api_writer_len(&w)), 0);
        assert_memory_equal(&back, &r, sizeof(r));
        /* Every proper prefix, and a byte more, are refused. */
        for (size_t n = 0; n < api_writer_len(&w); n++)
            assert_int_equal(qr_record_decode(&back, api_writer_data(&w), n), -API_STATUS_INTERNAL);
        api_writer_cleanup(&w);
    }
    /* The longest record fits QR_RECORD_MAX. */
    r.key_version = UINT32_MAX;
    memset(r.merchant, 'm', API_ID_MAX);
    memset(r.order_id, 'o', API_ID_MAX);
    memset(r.payer_ref, 'p', API_ID_MAX);
    api_writer_init(&w, QR_RECORD_MAX);
    assert_int_equal(qr_record_encode(&w, &r), 0);
    assert_int_equal(api_writer_len(&w), QR_RECORD_MAX);
    /* Layout 2 always names a key: version 0 there is refused; so is a
     * layout this build does not know. */
    {
        uint8_t buf[QR_RECORD_MAX];

        memcpy(buf, api_writer_data(&w), QR_RECORD_MAX);
        memset(buf + 2, 0, 4);
        assert_int_equal(qr_record_decode(&back, buf, QR_RECORD_MAX), -API_STATUS_INTERNAL);
        buf[5] = 1;
        assert_int_equal(qr_record_decode(&back, buf, QR_RECORD_MAX), 0);
        assert_int_equal(back.key_version, 1);
        buf[0] = QR_RECORD_VERSION + 1;
        assert_int_equal(qr_record_decode(&back, buf, QR_RECORD_MAX), -API_STATUS_INTERNAL);
    }
    api_writer_cleanup(&w);

    /* Inconsistent records are never written: paid without payer, issued
     * with one, no amount, a bad currency, expiry before creation, the
     * derived state "expired". */
    sample_record(&r);
    r.state = API_QR_PAID;
    r.paid_at = 1795000100;
    api_writer_init(&w, QR_RECORD_MAX);
    assert_int_equal(qr_record_encode(&w, &r), -API_STATUS_INTERNAL);
    sample_record(&r);
    snprintf(r.payer_ref, sizeof(r.payer_ref), "w");
    assert_int_equal(qr_record_encode(&w, &r), -API_STATUS_INTERNAL);
    sample_record(&r);
    r.amount = 0;
    assert_int_equal(qr_record_encode(&w, &r), -API_STATUS_INTERNAL);
    sample_record(&r);
    memcpy(r.currency, "usd", 4);
    assert_int_equal(qr_record_encode(&w, &r), -API_STATUS_INTERNAL);
    sample_record(&r);
    r.created_at = r.expires_at + 1;
    assert_int_equal(qr_record_encode(&w, &r), -API_STATUS_INTERNAL);
    sample_record(&r);
    r.state = API_QR_EXPIRED; /* derived, never stored */
    assert_int_equal(qr_record_encode(&w, &r), -API_STATUS_INTERNAL);
    api_writer_cleanup(&w);

    /* Derived state. */
    sample_record(&r);
    assert_int_equal(qr_record_state(&r, r.expires_at - 1), API_QR_ISSUED);
    assert_int_equal(qr_record_state(&r, r.expires_at), API_QR_EXPIRED);

    /* The tag's input: label, version, id, merchant, order, amount,
     * currency, expiry; a change in any is a different input. */
    assert_int_equal(qr_mac_input(in, &len, QR_TOKEN_VERSION, id, &r), 0);
    assert_int_equal(len, sizeof(QR_MAC_LABEL) + 1 + QR_REQUEST_ID_LEN + 1 + strlen(MERCHANT) + 1 +
                              strlen("SN129803") + 8 + 3 + 8);
    assert_memory_equal(in, QR_MAC_LABEL, sizeof(QR_MAC_LABEL));
    r.merchant[0] = '\0';
    assert_int_equal(qr_mac_input(in, &len, QR_TOKEN_VERSION, id, &r), -API_STATUS_INTERNAL);
}

/* ---- through the daemon -------------------------------------------------------------- */

static struct api_client *
client(const char *who)
{
    struct api_client *c = NULL;

    assert_int_equal(tv_daemon_client(&d, who, &c), 0);
    return c;
}

static int
issue(struct api_client *c, const char *merchant, const char *order, uint64_t amount,
      uint32_t lifetime, struct api_qr_issue_resp *out, struct api_error_resp *err)
{
    struct api_qr_issue_req q;

    memset(&q, 0, sizeof(q));
    snprintf(q.merchant, sizeof(q.merchant), "%s", merchant);
    snprintf(q.order_id, sizeof(q.order_id), "%s", order);
    q.amount = amount;
    memcpy(q.currency, CURRENCY, sizeof(q.currency));
    q.lifetime = lifetime;
    memset(out, 0, sizeof(*out));
    return api_call_qr_issue(c, &q, out, err);
}

static int
redeem(struct api_client *c, const char *merchant, const char *token, const char *payer,
       struct api_qr_redeem_resp *out, struct api_error_resp *err)
{
    struct api_qr_redeem_req q;
    int r;

    memset(&q, 0, sizeof(q));
    snprintf(q.merchant, sizeof(q.merchant), "%s", merchant);
    snprintf(q.qr_token, sizeof(q.qr_token), "%s", token);
    snprintf(q.payer_ref, sizeof(q.payer_ref), "%s", payer);
    memset(out, 0, sizeof(*out));
    r = api_call_qr_redeem(c, &q, out, err);
    if (r == 0)
        redeem_ok++;
    else if (r != -API_STATUS_BAD_VALUE && r != -API_STATUS_BAD_LENGTH && r != -API_STATUS_DENIED)
        redeem_refused++;
    return r;
}

static int
status(struct api_client *c, const char *merchant, const char *order, struct api_qr_info *out,
       struct api_error_resp *err)
{
    struct api_qr_status_req q;

    memset(&q, 0, sizeof(q));
    snprintf(q.merchant, sizeof(q.merchant), "%s", merchant);
    snprintf(q.order_id, sizeof(q.order_id), "%s", order);
    memset(out, 0, sizeof(*out));
    return api_call_qr_status(c, &q, out, err);
}

/* A redeem that must be refused with |st| and errorTag QR_TOKEN. */
static void
redeem_refused_with(struct api_client *c, const char *merchant, const char *token, int st)
{
    struct api_qr_redeem_resp resp;
    struct api_error_resp err;

    assert_int_equal(redeem(c, merchant, token, "payer-x", &resp, &err), -st);
    assert_int_equal(err.error_tag, API_TAG_QR_TOKEN);
}

/* The state STATUS reports for an order. */
static uint8_t
state_of(struct api_client *c, const char *order)
{
    struct api_qr_info info;
    struct api_error_resp err;

    assert_int_equal(status(c, MERCHANT, order, &info, &err), 0);
    return info.state;
}

static void
test_happy_path(void **state)
{
    struct api_client *c = client("client");
    struct api_qr_issue_resp tok;
    struct api_qr_redeem_resp paid;
    struct api_qr_info info;
    struct api_error_resp err;
    uint64_t before = (uint64_t)time(NULL);

    (void)state;
    assert_int_equal(issue(c, MERCHANT, "SN129803", AMOUNT, LIFETIME, &tok, &err), 0);
    assert_int_equal(strlen(tok.qr_token), QR_TOKEN_TEXT_LEN);
    assert_true(tok.expires_at >= before + LIFETIME && tok.expires_at <= (uint64_t)time(NULL) + LIFETIME);

    assert_int_equal(status(c, MERCHANT, "SN129803", &info, &err), 0);
    assert_string_equal(info.order_id, "SN129803");
    assert_int_equal(info.amount, AMOUNT);
    assert_string_equal(info.currency, CURRENCY);
    assert_int_equal(info.state, API_QR_ISSUED);
    assert_int_equal(info.expires_at, tok.expires_at);
    assert_false(info.has_paid_at);
    assert_false(info.has_payer_ref);

    assert_int_equal(redeem(c, MERCHANT, tok.qr_token, "wallet-paytm-42", &paid, &err), 0);
    assert_string_equal(paid.order_id, "SN129803");
    assert_int_equal(paid.amount, AMOUNT);
    assert_string_equal(paid.currency, CURRENCY);
    assert_true(paid.paid_at >= before && paid.paid_at <= (uint64_t)time(NULL));

    assert_int_equal(status(c, MERCHANT, "SN129803", &info, &err), 0);
    assert_int_equal(info.state, API_QR_PAID);
    assert_true(info.has_paid_at);
    assert_int_equal(info.paid_at, paid.paid_at);
    assert_true(info.has_payer_ref);
    assert_string_equal(info.payer_ref, "wallet-paytm-42");

    /* A second redeem, by anyone, is REPLAYED; the payer stays the first. */
    redeem_refused_with(c, MERCHANT, tok.qr_token, API_STATUS_REPLAYED);
    assert_int_equal(status(c, MERCHANT, "SN129803", &info, &err), 0);
    assert_string_equal(info.payer_ref, "wallet-paytm-42");
    api_client_free(c);
}

/* Issuing an order again: the same open request for the same amount and
 * currency (a retry), CONFLICT for another amount or once paid; amount 0 is
 * refused. */
static void
test_issue_again(void **state)
{
    struct api_client *c = client("client");
    struct api_qr_issue_resp a, b;
    struct api_qr_redeem_resp paid;
    struct api_error_resp err;

    (void)state;
    assert_int_equal(issue(c, MERCHANT, "o-again", 500, LIFETIME, &a, &err), 0);
    assert_int_equal(issue(c, MERCHANT, "o-again", 500, LIFETIME + 60, &b, &err), 0);
    assert_string_equal(a.qr_token, b.qr_token);
    assert_int_equal(a.expires_at, b.expires_at);
    assert_int_equal(issue(c, MERCHANT, "o-again", 501, LIFETIME, &b, &err), -API_STATUS_CONFLICT);
    assert_int_equal(err.error_tag, API_TAG_ORDER_ID);
    /* The same order id of another merchant is another order. */
    assert_int_equal(issue(c, OTHER_MERCHANT, "o-again", 501, LIFETIME, &b, &err), 0);
    assert_string_not_equal(a.qr_token, b.qr_token);

    assert_int_equal(redeem(c, MERCHANT, a.qr_token, "payer-1", &paid, &err), 0);
    assert_int_equal(issue(c, MERCHANT, "o-again", 500, LIFETIME, &b, &err), -API_STATUS_CONFLICT);
    assert_int_equal(err.error_tag, API_TAG_ORDER_ID);

    assert_int_equal(issue(c, MERCHANT, "o-zero", 0, LIFETIME, &b, &err), -API_STATUS_INVALID_ARGUMENT);
    assert_int_equal(err.error_tag, API_TAG_AMOUNT);
    api_client_free(c);
}

/* Token bytes <-> text, without the parser's checks: the test alters bytes
 * the parser would refuse too. 57 bytes are whole base64 groups. */
static void
token_bytes(const char *text, uint8_t out[QR_TOKEN_BIN_LEN])
{
    char std[QR_TOKEN_TEXT_LEN + 1];
    uint8_t buf[QR_TOKEN_BIN_LEN + 3];

    for (size_t i = 0; i <= QR_TOKEN_TEXT_LEN; i++)
        std[i] = text[i] == '-' ? '+' : text[i] == '_' ? '/' : text[i];
    assert_int_equal(EVP_DecodeBlock(buf, (const unsigned char *)std, QR_TOKEN_TEXT_LEN),
                     QR_TOKEN_BIN_LEN);
    memcpy(out, buf, QR_TOKEN_BIN_LEN);
}

static void
token_text(const uint8_t bin[QR_TOKEN_BIN_LEN], char out[QR_TOKEN_TEXT_LEN + 1])
{
    assert_int_equal(EVP_EncodeBlock((unsigned char *)out, bin, QR_TOKEN_BIN_LEN), QR_TOKEN_TEXT_LEN);
    for (size_t i = 0; i < QR_TOKEN_TEXT_LEN; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

/* Every byte of the token altered in turn: the version byte is malformed
 * (BAD_VALUE), as is an expiry pushed past API_TIME_MAX; anything else in
 * the request id, the expiry or the tag fails the tag check in the HSM
 * (SIGNATURE_INVALID). None of it changes the request, which then pays. */
static void
test_tampered(void **state)
{
    struct api_client *c = client("client");
    struct api_qr_issue_resp tok;
    struct api_qr_redeem_resp paid;
    struct api_error_resp err;
    uint8_t bin[QR_TOKEN_BIN_LEN], spoilt[QR_TOKEN_BIN_LEN];
    char text[QR_TOKEN_TEXT_LEN + 1];
    unsigned bad_value = 0, bad_sig = 0;

    (void)state;
    assert_int_equal(issue(c, MERCHANT, "o-tamper", 777, LIFETIME, &tok, &err), 0);
    token_bytes(tok.qr_token, bin);
    token_text(bin, text);
    assert_string_equal(text, tok.qr_token);
    for (size_t i = 0; i < QR_TOKEN_BIN_LEN; i++) {
        uint64_t exp = 0;
        int want;

        memcpy(spoilt, bin, sizeof(bin));
        spoilt[i] ^= (uint8_t)(1u << (i % 8));
        for (size_t k = 0; k < 8; k++)
            exp = exp << 8 | spoilt[1 + QR_REQUEST_ID_LEN + k];
        want = i == 0 || exp > API_TIME_MAX ? API_STATUS_BAD_VALUE : API_STATUS_SIGNATURE_INVALID;
        want == API_STATUS_BAD_VALUE ? bad_value++ : bad_sig++;
        token_text(spoilt, text);
        redeem_refused_with(c, MERCHANT, text, want);
    }
    /* Version, and the expiry's top bytes; the rest reached the HSM. */
    assert_true(bad_value >= 4);
    assert_true(bad_sig >= QR_REQUEST_ID_LEN + QR_TAG_LEN);
    assert_int_equal(state_of(c, "o-tamper"), API_QR_ISSUED);
    assert_int_equal(redeem(c, MERCHANT, tok.qr_token, "payer-t", &paid, &err), 0);
    assert_int_equal(paid.amount, 777);
    api_client_free(c);
}

/* Malformed tokens: each refused by the codec or the token parser. */
static void
test_garbage(void **state)
{
    struct api_client *c = client("client");
    struct api_qr_issue_resp tok;
    struct api_qr_redeem_resp paid;
    struct api_error_resp err;
    char text[API_QR_TOKEN_MAX + 1];
    uint8_t bin[QR_TOKEN_BIN_LEN];

    (void)state;
    assert_int_equal(issue(c, MERCHANT, "o-garbage", 900, LIFETIME, &tok, &err), 0);
    /* Truncated by one, by half; one character too many. */
    snprintf(text, sizeof(text), "%.*s", (int)QR_TOKEN_TEXT_LEN - 1, tok.qr_token);
    redeem_refused_with(c, MERCHANT, text, API_STATUS_BAD_VALUE);
    snprintf(text, sizeof(text), "%.*s", (int)QR_TOKEN_TEXT_LEN / 2, tok.qr_token);
    redeem_refused_with(c, MERCHANT, text, API_STATUS_BAD_VALUE);
    snprintf(text, sizeof(text), "%.*sA", (int)QR_TOKEN_TEXT_LEN, tok.qr_token);
    redeem_refused_with(c, MERCHANT, text, API_STATUS_BAD_VALUE);
    /* Standard base64 characters, padding, a character no alphabet has. */
    for (const char *ch = "+/=.~"; *ch != '\0'; ch++) {
        snprintf(text, sizeof(text), "%s", tok.qr_token);
        text[10] = *ch;
        redeem_refused_with(c, MERCHANT, text, API_STATUS_BAD_VALUE);
    }
    /* The longest id the codec takes. (A blank or a control character is
     * refused by the codec itself, before the operation; the client
     * library does not even send one: tests/api/test_codec.c.) */
    memset(text, 'A', API_QR_TOKEN_MAX);
    text[API_QR_TOKEN_MAX] = '\0';
    redeem_refused_with(c, MERCHANT, text, API_STATUS_BAD_VALUE);
    /* Well formed, made up: version 1, an id no request has, a plausible
     * expiry, a tag of nothing. It reaches the lookup and cannot be
     * authenticated. */
    memset(bin, 0x5a, sizeof(bin));
    bin[0] = QR_TOKEN_VERSION;
    memset(bin + 1 + QR_REQUEST_ID_LEN, 0, 4);
    token_text(bin, text);
    redeem_refused_with(c, MERCHANT, text, API_STATUS_SIGNATURE_INVALID);

    assert_int_equal(state_of(c, "o-garbage"), API_QR_ISSUED);
    assert_int_equal(redeem(c, MERCHANT, tok.qr_token, "payer-g", &paid, &err), 0);
    api_client_free(c);
}

/* Another merchant of the same client: NOT_FOUND for its redeem and its
 * status, which change nothing; an unknown order is NOT_FOUND. */
static void
test_other_merchant(void **state)
{
    struct api_client *c = client("client");
    struct api_qr_issue_resp tok;
    struct api_qr_redeem_resp paid;
    struct api_qr_info info;
    struct api_error_resp err;

    (void)state;
    assert_int_equal(issue(c, MERCHANT, "o-mine", 1500, LIFETIME, &tok, &err), 0);
    redeem_refused_with(c, OTHER_MERCHANT, tok.qr_token, API_STATUS_NOT_FOUND);
    assert_int_equal(status(c, OTHER_MERCHANT, "o-mine", &info, &err), -API_STATUS_NOT_FOUND);
    assert_int_equal(err.error_tag, API_TAG_ORDER_ID);
    assert_int_equal(status(c, MERCHANT, "o-never-issued", &info, &err), -API_STATUS_NOT_FOUND);
    assert_int_equal(err.error_tag, API_TAG_ORDER_ID);
    assert_int_equal(state_of(c, "o-mine"), API_QR_ISSUED);
    assert_int_equal(redeem(c, MERCHANT, tok.qr_token, "payer-m", &paid, &err), 0);
    /* Paid now, and still NOT_FOUND (not REPLAYED) for the other merchant. */
    redeem_refused_with(c, OTHER_MERCHANT, tok.qr_token, API_STATUS_NOT_FOUND);
    api_client_free(c);
}

/* Clients without the qr role, or without the merchant, are DENIED. */
static void
test_denied(void **state)
{
    struct api_client *c = client("client"), *other = client("other-client");
    struct api_qr_issue_resp tok;
    struct api_qr_redeem_resp paid;
    struct api_error_resp err;

    (void)state;
    assert_int_equal(issue(c, MERCHANT, "o-denied", 100, LIFETIME, &tok, &err), 0);
    assert_int_equal(redeem(other, MERCHANT, tok.qr_token, "p", &paid, &err), -API_STATUS_DENIED);
    assert_int_equal(issue(other, "m-2", "o-denied", 100, LIFETIME, &tok, &err), -API_STATUS_DENIED);
    assert_int_equal(issue(c, "m-2", "o-denied", 100, LIFETIME, &tok, &err), -API_STATUS_DENIED);
    api_client_free(other);
    api_client_free(c);
}

/* An expired request: EXPIRED to a redeem, "expired" in its status; the
 * order may then be issued again, and only the new token pays. */
static void
test_expired(void **state)
{
    struct api_client *c = client("client");
    struct api_qr_issue_resp old, fresh;
    struct api_qr_redeem_resp paid;
    struct api_error_resp err;
    unsigned i;

    (void)state;
    assert_int_equal(issue(c, MERCHANT, "o-expire", 250, 1, &old, &err), 0);
    for (i = 0; i < 50 && state_of(c, "o-expire") != API_QR_EXPIRED; i++)
        usleep(100000);
    assert_int_equal(state_of(c, "o-expire"), API_QR_EXPIRED);
    redeem_refused_with(c, MERCHANT, old.qr_token, API_STATUS_EXPIRED);
    assert_int_equal(state_of(c, "o-expire"), API_QR_EXPIRED);

    assert_int_equal(issue(c, MERCHANT, "o-expire", 250, LIFETIME, &fresh, &err), 0);
    assert_string_not_equal(fresh.qr_token, old.qr_token);
    assert_int_equal(state_of(c, "o-expire"), API_QR_ISSUED);
    redeem_refused_with(c, MERCHANT, old.qr_token, API_STATUS_EXPIRED);
    assert_int_equal(redeem(c, MERCHANT, fresh.qr_token, "payer-e", &paid, &err), 0);
    assert_int_equal(state_of(c, "o-expire"), API_QR_PAID);
    api_client_free(c);
}

/* ---- concurrency --------------------------------------------------------------------- */

#define THREADS 8u
#define PIPELINE 8u /* requests in flight on each connection */

struct racer {
    pthread_t th;
    pthread_barrier_t *go;
    uint16_t opcode;
    const void *req;
    unsigned ok, replayed, other;
    char token[THREADS * PIPELINE][QR_TOKEN_TEXT_LEN + 1]; /* ISSUE answers */
};

static void *
race(void *arg)
{
    struct racer *r = arg;
    struct api_client *c = NULL;
    struct api_reply reply;
    uint64_t id;

    if (tv_daemon_client(&d, "client", &c) != 0) {
        r->other = PIPELINE;
        pthread_barrier_wait(r->go);
        return NULL;
    }
    pthread_barrier_wait(r->go);
    for (unsigned i = 0; i < PIPELINE; i++)
        if (api_client_submit(c, r->opcode, r->req, &id) != 0)
            r->other++;
    while (api_client_in_flight(c) > 0) {
        if (api_client_collect(c, &reply) != 0) {
            r->other++;
            break;
        }
        if (reply.status == 0) {
            if (r->opcode == API_OP_QR_ISSUE)
                snprintf(r->token[r->ok], sizeof(r->token[0]), "%.*s", (int)QR_TOKEN_TEXT_LEN,
                         ((const struct api_qr_issue_resp *)reply.msg)->qr_token);
            r->ok++;
        } else if (reply.status == -API_STATUS_REPLAYED) {
            r->replayed++;
        } else {
            r->other++;
        }
        api_reply_cleanup(&reply);
    }
    api_client_free(c);
    return NULL;
}

static void
race_all(uint16_t opcode, const void *req, struct racer *r, unsigned *ok, unsigned *replayed)
{
    pthread_barrier_t go;

    assert_int_equal(pthread_barrier_init(&go, NULL, THREADS), 0);
    for (unsigned i = 0; i < THREADS; i++) {
        r[i] = (struct racer){.go = &go, .opcode = opcode, .req = req};
        assert_int_equal(pthread_create(&r[i].th, NULL, race, &r[i]), 0);
    }
    *ok = *replayed = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(r[i].th, NULL), 0);
        assert_int_equal(r[i].other, 0);
        *ok += r[i].ok;
        *replayed += r[i].replayed;
    }
    pthread_barrier_destroy(&go);
}

/* 64 redeems of one token at once, over 8 connections: exactly one pays;
 * then 64 issues of one order at once: one request, every answer its
 * token. */
static void
test_concurrent(void **state)
{
    static struct racer r[THREADS];
    struct api_client *c = client("client");
    struct api_qr_issue_resp tok;
    struct api_qr_redeem_req rq;
    struct api_qr_issue_req iq;
    struct api_qr_info info;
    struct api_error_resp err;
    unsigned ok, replayed;

    (void)state;
    assert_int_equal(issue(c, MERCHANT, "o-race", 4200, LIFETIME, &tok, &err), 0);
    memset(&rq, 0, sizeof(rq));
    snprintf(rq.merchant, sizeof(rq.merchant), MERCHANT);
    snprintf(rq.qr_token, sizeof(rq.qr_token), "%s", tok.qr_token);
    snprintf(rq.payer_ref, sizeof(rq.payer_ref), "racer");
    race_all(API_OP_QR_REDEEM, &rq, r, &ok, &replayed);
    assert_int_equal(ok, 1);
    assert_int_equal(replayed, THREADS * PIPELINE - 1);
    redeem_ok += ok;
    redeem_refused += replayed;
    assert_int_equal(status(c, MERCHANT, "o-race", &info, &err), 0);
    assert_int_equal(info.state, API_QR_PAID);

    memset(&iq, 0, sizeof(iq));
    snprintf(iq.merchant, sizeof(iq.merchant), MERCHANT);
    snprintf(iq.order_id, sizeof(iq.order_id), "o-race-issue");
    iq.amount = 4300;
    memcpy(iq.currency, CURRENCY, sizeof(iq.currency));
    iq.lifetime = LIFETIME;
    race_all(API_OP_QR_ISSUE, &iq, r, &ok, &replayed);
    assert_int_equal(ok, THREADS * PIPELINE);
    for (unsigned i = 0; i < THREADS; i++)
        for (unsigned k = 0; k < r[i].ok; k++)
            assert_string_equal(r[i].token[k], r[0].token[0]);
    api_client_free(c);
}

/* ---- durability, settings, the sweeper, the audit log ---------------------------------- */

/* A redeem answered OK is on disk: the daemon killed right after the answer
 * comes back with the request paid (REPLAYED). */
static void
test_kill_after_redeem(void **state)
{
    struct api_client *c = client("client");
    struct api_qr_issue_resp tok;
    struct api_qr_redeem_resp paid;
    struct api_qr_info info;
    struct api_error_resp err;

    (void)state;
    assert_int_equal(issue(c, MERCHANT, "o-durable", 6100, LIFETIME, &tok, &err), 0);
    assert_int_equal(redeem(c, MERCHANT, tok.qr_token, "payer-d", &paid, &err), 0);
    assert_int_equal(tv_daemon_stop(&d, SIGKILL), -1);
    api_client_free(c);

    assert_int_equal(tv_daemon_start(&d), 0);
    c = client("client");
    redeem_refused_with(c, MERCHANT, tok.qr_token, API_STATUS_REPLAYED);
    assert_int_equal(status(c, MERCHANT, "o-durable", &info, &err), 0);
    assert_int_equal(info.state, API_QR_PAID);
    assert_int_equal(info.paid_at, paid.paid_at);
    assert_string_equal(info.payer_ref, "payer-d");
    api_client_free(c);
}

static int
log_count(const char *needle)
{
    FILE *f = fopen(d.log, "r");
    char line[4096];
    int n = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* [qr] max_lifetime_seconds and retention_seconds, set by a SIGHUP: a longer
 * lifetime is refused; an expired request is swept retention_seconds later
 * (its order index entry with it, unless a newer request took the order
 * over), after which its token cannot be authenticated. */
static void
test_settings_and_sweep(void **state)
{
    struct api_client *c;
    struct api_qr_issue_resp a, b, x;
    struct api_qr_redeem_resp paid;
    struct api_qr_info info;
    struct api_error_resp err;
    int reloaded = log_count("event=config_reloaded");
    unsigned i;
    int r = 0;

    (void)state;
    assert_int_equal(tv_daemon_write_config(&d, "[qr]\nmax_lifetime_seconds = 900\n"
                                                "retention_seconds = 1\n"),
                     0);
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    for (i = 0; i < 100 && log_count("event=config_reloaded") == reloaded; i++)
        usleep(50000);
    assert_true(log_count("event=config_reloaded") > reloaded);
    c = client("client");
    assert_int_equal(issue(c, MERCHANT, "o-long", 100, 901, &x, &err), -API_STATUS_INVALID_ARGUMENT);
    assert_int_equal(err.error_tag, API_TAG_LIFETIME);
    assert_int_equal(issue(c, MERCHANT, "o-long", 100, 900, &x, &err), 0);

    /* Swept alone: status NOT_FOUND, the token unauthenticated, the order
     * free again. */
    assert_int_equal(issue(c, MERCHANT, "o-sweep", 100, 1, &a, &err), 0);
    for (i = 0; i < 100; i++) {
        if ((r = status(c, MERCHANT, "o-sweep", &info, &err)) != 0)
            break;
        usleep(100000);
    }
    assert_int_equal(r, -API_STATUS_NOT_FOUND);
    redeem_refused_with(c, MERCHANT, a.qr_token, API_STATUS_SIGNATURE_INVALID);
    assert_int_equal(issue(c, MERCHANT, "o-sweep", 100, 900, &b, &err), 0);
    assert_int_equal(redeem(c, MERCHANT, b.qr_token, "payer-s", &paid, &err), 0);

    /* Taken over before the sweep: the old request goes, the new one's
     * index entry stays. */
    assert_int_equal(issue(c, MERCHANT, "o-takeover", 100, 1, &a, &err), 0);
    for (i = 0; i < 50 && state_of(c, "o-takeover") != API_QR_EXPIRED; i++)
        usleep(100000);
    assert_int_equal(issue(c, MERCHANT, "o-takeover", 100, 900, &b, &err), 0);
    for (i = 0; i < 100; i++) {
        struct api_qr_redeem_resp ignored;

        r = redeem(c, MERCHANT, a.qr_token, "p", &ignored, &err);
        if (r != -API_STATUS_EXPIRED)
            break;
        usleep(100000);
    }
    assert_int_equal(r, -API_STATUS_SIGNATURE_INVALID);
    assert_int_equal(state_of(c, "o-takeover"), API_QR_ISSUED);
    assert_int_equal(redeem(c, MERCHANT, b.qr_token, "payer-o", &paid, &err), 0);
    api_client_free(c);
}

struct audit_count {
    unsigned ok, refused, issued;
};

static int
count_qr(void *ctx, const MDB_val *key, const MDB_val *val)
{
    struct audit_count *n = ctx;
    struct audit_entry e;

    (void)key;
    assert_int_equal(audit_decode(&e, val->mv_data, val->mv_size), 0);
    if (e.type != AUDIT_EVENT)
        return 0;
    if (e.opcode == API_OP_QR_REDEEM && e.status != API_STATUS_DENIED) {
        assert_int_equal(strlen(e.token), QR_REQUEST_ID_TEXT_LEN);
        if (e.status == API_STATUS_OK)
            n->ok++;
        else
            n->refused++;
    }
    if (e.opcode == API_OP_QR_ISSUE && e.status == API_STATUS_OK &&
        strcmp(e.detail, "issued") == 0)
        n->issued++;
    return 0;
}

/* Every redeem past the parse is in the audit log, refused ones included;
 * a malformed token is not (nothing was attempted on a request). */
static void
test_audited(void **state)
{
    struct vault_store *st = NULL;
    struct store_txn t;
    struct audit_count n = {0};
    char msg[256];

    (void)state;
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);
    assert_int_equal(store_open(&st, d.store, 1ull << 20, msg, sizeof(msg)), 0);
    assert_int_equal(store_read_begin(st, &t), 0);
    assert_int_equal(store_each(&t, STORE_DB_AUDIT, NULL, 0, count_qr, &n), 0);
    store_read_end(&t);
    store_close(st);
    print_message("audited: %u paid, %u refused, %u issued\n", n.ok, n.refused, n.issued);
    assert_int_equal(n.ok, redeem_ok);
    assert_int_equal(n.refused, redeem_refused);
    assert_true(n.issued >= 15);
}

static int
group_setup(void **state)
{
    (void)state;
    if (tv_daemon_setup(&d, NULL) != 0 || tv_daemon_start(&d) != 0) {
        fprintf(stderr, "group setup: the daemon did not start\n");
        return -1;
    }
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    if (getenv("TV_KEEP_LOG") != NULL)
        tv_run("grep -v level=debug %s >&2", d.log);
    tv_daemon_teardown(&d);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest codec[] = {
        cmocka_unit_test(test_codec_token),
        cmocka_unit_test(test_codec_record),
    };
    const struct CMUnitTest daemon[] = {
        cmocka_unit_test(test_happy_path),
        cmocka_unit_test(test_issue_again),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_other_merchant),
        cmocka_unit_test(test_denied),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_kill_after_redeem),
        cmocka_unit_test(test_settings_and_sweep),
        cmocka_unit_test(test_audited),
    };
    int failed = cmocka_run_group_tests_name("qr codec", codec, NULL, NULL);

    return failed + cmocka_run_group_tests_name("qr through tokenvaultd", daemon, group_setup,
                                                group_teardown);
}
