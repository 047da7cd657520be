/*
 * test_sessions - the mobile sale of seed 002 end to end: SESSION_INIT,
 * SESSION_CHECK, CARD_MAP and MAP_RESOLVE through the real tokenvaultd (a
 * SoftHSM token with the vault's keys, LMDB on disk, mTLS, libtokenvault,
 * and raw TLS for frames the library will not build).
 *
 * A sale and a repeat sale go through; each refusal comes with its status
 * and errorTag (unknown nonce, another merchant's nonce, a tampered or
 * borrowed signature, each data field changed, an expired session, a
 * replay, an e-mail that differs on resolve and on a repeat sale, a map to
 * another merchant's token) and leaves the session unconsumed; many checks
 * of one nonce at once, over several connections, pass exactly once; a
 * consumed nonce survives kill -9 right after its answer; a deleted card
 * takes its mappings along; malformed frames change nothing; every request
 * that reached the writer is in the audit log, and no e-mail, device data
 * or signature is in the store file or the log.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/client.h"
#include "api/frame.h"
#include "tests/support/daemon.h"
#include "tests/support/raw_frame.h"
#include "vault/audit.h"
#include "vault/ops/sessions.h"
#include "vault/store.h"

#define MERCHANT "m-1"
#define DEFAULT_LIFETIME_S 600u
#define MAX_LIFETIME_S 7200u
/* Device data carries this marker, and mappings these e-mails: the files
 * are scanned for them at the end. */
#define DEVICE_MARK "DEVDATA-7f3a"
#define EMAIL_A "grace.hopper@example.org"
#define EMAIL_B "katherine.johnson@example.net"
#define CCID_SCAN "ccid-visible-in-store"

static struct tv_daemon d;
/* Signatures the vault issued: none may be in the store or the log. */
static uint8_t issued_sigs[8][API_SIGNATURE_LEN];
static size_t num_issued_sigs;

/* Requests that reached the writer, by opcode: each must have exactly one
 * audit entry (test_files_and_audit). */
static unsigned audited_init, audited_check, audited_map, audited_resolve, audited_denied;

static struct api_client *
client(const char *who)
{
    struct api_client *c = NULL;

    assert_int_equal(tv_daemon_client(&d, who, &c), 0);
    return c;
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Whether a refusal was decided before the writer (not audited): the
 * request's own shape. */
static bool
worker_refusal(int r, const struct api_error_resp *err)
{
    return r == -API_STATUS_INVALID_ARGUMENT &&
           (err->error_tag == API_TAG_LIFETIME || err->error_tag == API_TAG_EMAIL);
}

/* Counts a request the writer audited: everything but decoding errors,
 * RETRY statuses and the refusals of the request's own shape. DENIED is
 * audited by the dispatcher. */
static void
count_audited(unsigned *counter, int r, const struct api_error_resp *e)
{
    if (r == -API_STATUS_DENIED)
        audited_denied++;
    else if (r == 0 || (api_status_class((unsigned)-r) != API_CLASS_PROTOCOL &&
                        api_status_class((unsigned)-r) != API_CLASS_RETRY && !worker_refusal(r, e)))
        (*counter)++;
}

/* ---- requests ------------------------------------------------------------------------- */

static void
init_req(struct api_session_init_req *q, const char *merchant, unsigned n, uint64_t amount)
{
    char at[64];

    memset(q, 0, sizeof(*q));
    snprintf(q->merchant, sizeof(q->merchant), "%s", merchant);
    snprintf(at, sizeof(at), "access-token-%u", n);
    SHA256((const uint8_t *)at, strlen(at), q->access_token_hash.data);
    q->access_token_hash.len = API_HASH_LEN;
    q->amount = amount;
    snprintf(q->currency, sizeof(q->currency), "EUR");
    q->device_data.len = (size_t)snprintf((char *)q->device_data.data, API_DEVICE_DATA_MAX,
                                          DEVICE_MARK ";model=Pixel 9;os=16;install=%u", n);
}

static int
session_init(struct api_client *c, const struct api_session_init_req *q,
             struct api_session_init_resp *resp, struct api_error_resp *err)
{
    struct api_error_resp e;
    int r;

    memset(resp, 0, sizeof(*resp));
    memset(&e, 0, sizeof(e));
    r = api_call_session_init(c, q, resp, &e);
    count_audited(&audited_init, r, &e);
    if (r == 0 && num_issued_sigs < sizeof(issued_sigs) / sizeof(issued_sigs[0]))
        memcpy(issued_sigs[num_issued_sigs++], resp->signature.data, API_SIGNATURE_LEN);
    if (err != NULL)
        *err = e;
    return r;
}

/* A new session of |merchant| with its request and answer. */
static void
new_session(struct api_client *c, const char *merchant, unsigned n, struct api_session_init_req *q,
            struct api_session_init_resp *resp)
{
    init_req(q, merchant, n, 1000u + n);
    assert_int_equal(session_init(c, q, resp, NULL), 0);
}

/* Checks and returns the status; the errorTag and the token into the outs. */
static int
check(struct api_client *c, const struct api_session_check_req *q, uint16_t *out_tag,
      char *out_token)
{
    struct api_session_check_resp resp;
    struct api_error_resp err;
    int r;

    memset(&resp, 0, sizeof(resp));
    memset(&err, 0, sizeof(err));
    r = api_call_session_check(c, q, &resp, &err);
    count_audited(&audited_check, r, &err);
    if (out_tag != NULL)
        *out_tag = r == 0 ? 0 : err.error_tag;
    if (out_token != NULL)
        snprintf(out_token, API_ID_MAX + 1, "%s", resp.has_token ? resp.token : "");
    /* A refusal names the rule, never a value of the request. */
    if (r != 0 && err.message[0] != '\0') {
        char amount[32];

        snprintf(amount, sizeof(amount), "%llu", (unsigned long long)q->amount);
        assert_null(strstr(err.message, amount));
        assert_null(strstr(err.message, DEVICE_MARK));
        assert_null(strstr(err.message, "@"));
    }
    api_msg_cleanup(api_schema_response(API_OP_SESSION_CHECK), &resp);
    return r;
}

static void
want_check(struct api_client *c, const struct api_session_check_req *q, int status,
             uint16_t tag)
{
    uint16_t got = 0;

    assert_int_equal(check(c, q, &got, NULL), status);
    assert_int_equal(got, tag);
}

static int
map(struct api_client *c, const char *merchant, const char *ccid, const char *token,
    const char *email, uint16_t *out_tag)
{
    struct api_card_map_req q;
    struct api_empty resp;
    struct api_error_resp err;
    int r;

    memset(&q, 0, sizeof(q));
    memset(&err, 0, sizeof(err));
    snprintf(q.merchant, sizeof(q.merchant), "%s", merchant);
    snprintf(q.client_card_id, sizeof(q.client_card_id), "%s", ccid);
    snprintf(q.token, sizeof(q.token), "%s", token);
    if (email != NULL) {
        q.has_email = true;
        snprintf(q.email, sizeof(q.email), "%s", email);
    }
    r = api_call_card_map(c, &q, &resp, &err);
    count_audited(&audited_map, r, &err);
    if (out_tag != NULL)
        *out_tag = r == 0 ? 0 : err.error_tag;
    api_msg_cleanup(api_schema_request(API_OP_CARD_MAP), &q);
    return r;
}

static int
resolve(struct api_client *c, const char *merchant, const char *ccid, const char *email,
        char *out_token, uint16_t *out_tag)
{
    struct api_map_resolve_req q;
    struct api_map_resolve_resp resp;
    struct api_error_resp err;
    int r;

    memset(&q, 0, sizeof(q));
    memset(&resp, 0, sizeof(resp));
    memset(&err, 0, sizeof(err));
    snprintf(q.merchant, sizeof(q.merchant), "%s", merchant);
    snprintf(q.client_card_id, sizeof(q.client_card_id), "%s", ccid);
    if (email != NULL) {
        q.has_email = true;
        snprintf(q.email, sizeof(q.email), "%s", email);
    }
    r = api_call_map_resolve(c, &q, &resp, &err);
    count_audited(&audited_resolve, r, &err);
    if (out_token != NULL)
        snprintf(out_token, API_ID_MAX + 1, "%s", resp.token);
    if (out_tag != NULL)
        *out_tag = r == 0 ? 0 : err.error_tag;
    api_msg_cleanup(api_schema_request(API_OP_MAP_RESOLVE), &q);
    return r;
}

static void
want_resolve(struct api_client *c, const char *ccid, const char *email, int status,
               const char *want_token, uint16_t want_tag)
{
    char token[API_ID_MAX + 1] = "";
    uint16_t tag = 0;

    assert_int_equal(resolve(c, MERCHANT, ccid, email, token, &tag), status);
    assert_int_equal(tag, want_tag);
    if (want_token != NULL)
        assert_string_equal(token, want_token);
}

/* A card of |merchant| stored through |who|; its token into |out|. */
static void
store_card(const char *who, const char *merchant, const char *customer, const char *pan,
           char out[API_ID_MAX + 1])
{
    struct api_client *c = client(who);
    struct api_card_store_req q;
    struct api_card_store_resp resp;

    tv_card_store_req(&q, merchant, customer, pan);
    memset(&resp, 0, sizeof(resp));
    assert_int_equal(api_call_card_store(c, &q, &resp, NULL), 0);
    api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
    snprintf(out, API_ID_MAX + 1, "%s", resp.token);
    api_client_free(c);
}

/* CARD_GET of |merchant|'s |token|; its status. On success the answer's
 * mappings must be exactly |want| (n clientCardIds, in clientCardId order),
 * each e-mail bound when its entry in |bound| is. */
static int
want_listed(struct api_client *c, const char *merchant, const char *token, const char *const *want,
            const bool *bound, size_t n)
{
    const struct api_schema *s = api_schema_response(API_OP_CARD_GET);
    struct api_card_ref q;
    struct api_card_info info;
    int r;

    memset(&q, 0, sizeof(q));
    snprintf(q.merchant, sizeof(q.merchant), "%s", merchant);
    snprintf(q.token, sizeof(q.token), "%s", token);
    r = api_call_card_get(c, &q, &info, NULL);
    if (r != 0)
        return r;
    assert_string_equal(info.token, token);
    assert_int_equal(info.num_mappings, n);
    if (n == 0)
        assert_null(info.mappings);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(info.mappings[i].client_card_id, want[i]);
        assert_int_equal(info.mappings[i].email_bound, bound[i]);
    }
    api_msg_cleanup(s, &info);
    return 0;
}

static void
delete_card(const char *merchant, const char *token)
{
    struct api_client *c = client("client");
    struct api_card_ref q;
    struct api_empty resp;

    memset(&q, 0, sizeof(q));
    snprintf(q.merchant, sizeof(q.merchant), "%s", merchant);
    snprintf(q.token, sizeof(q.token), "%s", token);
    assert_int_equal(api_call_card_delete(c, &q, &resp, NULL), 0);
    api_client_free(c);
}

/* ---- raw TLS, for frames the client library will not build ---------------------------- */

/* A raw SESSION_CHECK of the session, with |nonce_len| bytes of its nonce,
 * |sig_len| of its signature and |device_len| of its device data. */
static void
raw_check(struct tv_raw *f, const struct api_session_check_req *q, size_t nonce_len, size_t sig_len,
          size_t device_len)
{
    tv_raw_begin(f, API_OP_SESSION_CHECK, 9);
    tv_raw_str(f, API_TAG_MERCHANT, q->merchant);
    tv_raw_field(f, API_TAG_NONCE, q->nonce.data, nonce_len);
    tv_raw_field(f, API_TAG_SIGNATURE, q->signature.data, sig_len);
    tv_raw_field(f, API_TAG_ACCESS_TOKEN_HASH, q->access_token_hash.data, q->access_token_hash.len);
    tv_raw_u64(f, API_TAG_AMOUNT, q->amount);
    tv_raw_str(f, API_TAG_CURRENCY, q->currency);
    tv_raw_field(f, API_TAG_DEVICE_DATA, q->device_data.data, device_len);
}

/* ---- fixture ---------------------------------------------------------------------------- */

static int
group_setup(void **state)
{
    struct tv_daemon_opts o = {.workers = 4, .max_in_flight = 64};
    char extra[256];

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    snprintf(extra, sizeof(extra),
             "[sessions]\ndefault_lifetime_seconds = %u\nmax_lifetime_seconds = %u\n",
             DEFAULT_LIFETIME_S, MAX_LIFETIME_S);
    if (tv_daemon_setup(&d, &o) != 0 || tv_daemon_write_config(&d, extra) != 0 ||
        tv_daemon_start(&d) != 0)
        return -1;
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

/* ---- the tests ---------------------------------------------------------------------------- */

/* Initiate sale, check sale: OK once, then REPLAYED. */
static void
test_sale(void **state)
{
    struct api_client *c = client("client");
    struct api_session_init_req q;
    struct api_session_init_resp resp;
    struct api_session_check_req cq;
    char token[API_ID_MAX + 1];
    uint64_t before = now_ms();

    (void)state;
    new_session(c, MERCHANT, 1, &q, &resp);
    assert_int_equal(resp.nonce.len, API_NONCE_MAX);
    assert_int_equal(resp.signature.len, API_SIGNATURE_LEN);
    /* The default lifetime, rounded up to the second. */
    assert_true(resp.expires_at * 1000u >= before + DEFAULT_LIFETIME_S * 1000u);
    assert_true(resp.expires_at * 1000u <= now_ms() + DEFAULT_LIFETIME_S * 1000u + 1000u);
    tv_session_check_req(&cq, &q, &resp);
    assert_int_equal(check(c, &cq, NULL, token), 0);
    assert_string_equal(token, ""); /* no clientCardId: no serverCardId */
    want_check(c, &cq, -API_STATUS_REPLAYED, API_TAG_NONCE);

    /* A lifetime of the caller's, within the maximum. */
    init_req(&q, MERCHANT, 2, 500);
    q.has_lifetime = true;
    q.lifetime = MAX_LIFETIME_S;
    before = now_ms();
    assert_int_equal(session_init(c, &q, &resp, NULL), 0);
    assert_true(resp.expires_at * 1000u >= before + MAX_LIFETIME_S * 1000u);
    assert_true(resp.expires_at * 1000u <= now_ms() + MAX_LIFETIME_S * 1000u + 1000u);
    /* Two sessions never share a nonce or a signature. */
    {
        struct api_session_init_resp again;

        assert_int_equal(session_init(c, &q, &again, NULL), 0);
        assert_memory_not_equal(again.nonce.data, resp.nonce.data, API_NONCE_MAX);
        assert_memory_not_equal(again.signature.data, resp.signature.data, API_SIGNATURE_LEN);
    }
    api_client_free(c);
}

/* Every refusal of a check, with its status and errorTag; none consumes
 * the session, which passes afterwards. */
static void
test_check_refusals(void **state)
{
    struct api_client *c = client("client");
    struct api_session_init_req q, q2;
    struct api_session_init_resp resp, resp2;
    struct api_session_check_req cq, bad;

    (void)state;
    new_session(c, MERCHANT, 10, &q, &resp);
    new_session(c, MERCHANT, 11, &q2, &resp2);
    tv_session_check_req(&cq, &q, &resp);

    /* An unknown nonce, a short one, another merchant's. */
    bad = cq;
    bad.nonce.data[0] ^= 0x01;
    want_check(c, &bad, -API_STATUS_NOT_FOUND, API_TAG_NONCE);
    bad = cq;
    bad.nonce.len = API_NONCE_MIN;
    want_check(c, &bad, -API_STATUS_NOT_FOUND, API_TAG_NONCE);
    bad = cq;
    snprintf(bad.merchant, sizeof(bad.merchant), "m-pan");
    want_check(c, &bad, -API_STATUS_NOT_FOUND, API_TAG_NONCE);

    /* A tampered signature (each end), and a genuine one of another session. */
    bad = cq;
    bad.signature.data[0] ^= 0x80;
    want_check(c, &bad, -API_STATUS_SIGNATURE_INVALID, API_TAG_SIGNATURE);
    bad = cq;
    bad.signature.data[API_SIGNATURE_LEN - 1] ^= 0x01;
    want_check(c, &bad, -API_STATUS_SIGNATURE_INVALID, API_TAG_SIGNATURE);
    bad = cq;
    memcpy(bad.signature.data, resp2.signature.data, API_SIGNATURE_LEN);
    want_check(c, &bad, -API_STATUS_SIGNATURE_INVALID, API_TAG_SIGNATURE);

    /* Each field of the app's data changed: MISMATCH naming it. */
    bad = cq;
    bad.access_token_hash.data[31] ^= 0x01;
    want_check(c, &bad, -API_STATUS_MISMATCH, API_TAG_ACCESS_TOKEN_HASH);
    bad = cq;
    bad.amount++;
    want_check(c, &bad, -API_STATUS_MISMATCH, API_TAG_AMOUNT);
    bad = cq;
    snprintf(bad.currency, sizeof(bad.currency), "USD");
    want_check(c, &bad, -API_STATUS_MISMATCH, API_TAG_CURRENCY);
    bad = cq;
    bad.device_data.data[bad.device_data.len - 1] ^= 0x01;
    want_check(c, &bad, -API_STATUS_MISMATCH, API_TAG_DEVICE_DATA);
    bad = cq;
    bad.device_data.len--;
    want_check(c, &bad, -API_STATUS_MISMATCH, API_TAG_DEVICE_DATA);
    /* Two fields changed: the first in schema order is named. */
    bad = cq;
    bad.amount++;
    bad.device_data.data[0] ^= 0x01;
    want_check(c, &bad, -API_STATUS_MISMATCH, API_TAG_AMOUNT);
    /* Another session's data under this nonce and signature. */
    tv_session_check_req(&bad, &q2, &resp2);
    memcpy(bad.nonce.data, resp.nonce.data, API_NONCE_MAX);
    memcpy(bad.signature.data, resp.signature.data, API_SIGNATURE_LEN);
    want_check(c, &bad, -API_STATUS_MISMATCH, API_TAG_ACCESS_TOKEN_HASH);
    /* An e-mail without the clientCardId it would bind. */
    bad = cq;
    bad.has_email = true;
    snprintf(bad.email, sizeof(bad.email), EMAIL_A);
    want_check(c, &bad, -API_STATUS_INVALID_ARGUMENT, API_TAG_EMAIL);

    /* None of that consumed either session. */
    want_check(c, &cq, 0, 0);
    tv_session_check_req(&cq, &q2, &resp2);
    want_check(c, &cq, 0, 0);
    want_check(c, &cq, -API_STATUS_REPLAYED, API_TAG_NONCE);
    api_client_free(c);
}

/* Lifetimes: bounded by the maximum; an expired session is EXPIRED, then
 * swept (NOT_FOUND); a consumed one is swept too. A SIGHUP changes the
 * default for new sessions. */
static void
test_expiry(void **state)
{
    struct api_client *c = client("client");
    struct api_session_init_req q;
    struct api_session_init_resp resp;
    struct api_session_check_req cq;
    struct api_error_resp err;
    uint16_t tag = 0;
    int r = 0;

    (void)state;
    init_req(&q, MERCHANT, 20, 700);
    q.has_lifetime = true;
    q.lifetime = MAX_LIFETIME_S + 1;
    assert_int_equal(session_init(c, &q, &resp, &err), -API_STATUS_INVALID_ARGUMENT);
    assert_int_equal(err.error_tag, API_TAG_LIFETIME);

    /* Checked the moment it expires: EXPIRED (or, if the sweeper came
     * first, NOT_FOUND; then again with a new session). */
    q.lifetime = 1;
    for (unsigned attempt = 0; attempt < 5; attempt++) {
        assert_int_equal(session_init(c, &q, &resp, NULL), 0);
        tv_session_check_req(&cq, &q, &resp);
        while (now_ms() < resp.expires_at * 1000u)
            usleep(20000);
        r = check(c, &cq, &tag, NULL);
        if (r != -API_STATUS_NOT_FOUND)
            break;
    }
    assert_int_equal(r, -API_STATUS_EXPIRED);
    assert_int_equal(tag, API_TAG_NONCE);
    /* The sweeper deletes it within a tick or two. */
    for (unsigned i = 0; i < 100; i++) {
        r = check(c, &cq, &tag, NULL);
        if (r != -API_STATUS_EXPIRED)
            break;
        usleep(100000);
    }
    assert_int_equal(r, -API_STATUS_NOT_FOUND);
    assert_int_equal(tag, API_TAG_NONCE);
    /* A consumed session: REPLAYED while it lives, then swept as well. */
    assert_int_equal(session_init(c, &q, &resp, NULL), 0);
    tv_session_check_req(&cq, &q, &resp);
    want_check(c, &cq, 0, 0);
    for (unsigned i = 0; i < 100; i++) {
        r = check(c, &cq, &tag, NULL);
        if (r == -API_STATUS_NOT_FOUND)
            break;
        assert_true(r == -API_STATUS_REPLAYED || r == -API_STATUS_EXPIRED);
        usleep(100000);
    }
    assert_int_equal(r, -API_STATUS_NOT_FOUND);

    /* SIGHUP: a new default applies to the next session. */
    assert_int_equal(tv_daemon_write_config(&d, "[sessions]\ndefault_lifetime_seconds = 30\n"
                                                "max_lifetime_seconds = 7200\n"),
                     0);
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    for (unsigned i = 0; i < 250 && tv_file_contains(d.log, "event=config_reloaded", 21) != 1; i++)
        usleep(20000);
    assert_int_equal(tv_file_contains(d.log, "event=config_reloaded", 21), 1);
    init_req(&q, MERCHANT, 21, 700);
    {
        uint64_t before = now_ms();

        assert_int_equal(session_init(c, &q, &resp, NULL), 0);
        assert_true(resp.expires_at * 1000u >= before + 30000u);
        assert_true(resp.expires_at * 1000u <= now_ms() + 31000u);
    }
    api_client_free(c);
}

/* CARD_MAP and MAP_RESOLVE: the e-mail binding, idempotent resend,
 * CONFLICT on a change, another merchant's token, deletion with the card. */
static void
test_mapping(void **state)
{
    struct api_client *c = client("client");
    char a[API_ID_MAX + 1], b[API_ID_MAX + 1], other[API_ID_MAX + 1];
    uint16_t tag = 0;

    (void)state;
    store_card("client", MERCHANT, "cust-map", "4111111111111111", a);
    store_card("client", MERCHANT, "cust-map", "5555555555554444", b);
    store_card("other-client", "m-2", "cust-other", "4012888888881881", other);

    /* Bound to an e-mail: resolved only with that e-mail. */
    assert_int_equal(map(c, MERCHANT, "ccid-1", a, EMAIL_A, &tag), 0);
    want_resolve(c, "ccid-1", EMAIL_A, 0, a, 0);
    want_resolve(c, "ccid-1", EMAIL_B, -API_STATUS_MISMATCH, "", API_TAG_EMAIL);
    want_resolve(c, "ccid-1", NULL, -API_STATUS_MISMATCH, "", API_TAG_EMAIL);
    /* Case matters: the seed asks for "the same consumer.email value". */
    want_resolve(c, "ccid-1", "Grace.Hopper@example.org", -API_STATUS_MISMATCH, "",
                   API_TAG_EMAIL);
    /* The same notification again: nothing changes. Any change: CONFLICT. */
    assert_int_equal(map(c, MERCHANT, "ccid-1", a, EMAIL_A, &tag), 0);
    assert_int_equal(map(c, MERCHANT, "ccid-1", b, EMAIL_A, &tag), -API_STATUS_CONFLICT);
    assert_int_equal(tag, API_TAG_CLIENT_CARD_ID);
    assert_int_equal(map(c, MERCHANT, "ccid-1", a, EMAIL_B, &tag), -API_STATUS_CONFLICT);
    assert_int_equal(tag, API_TAG_CLIENT_CARD_ID);
    assert_int_equal(map(c, MERCHANT, "ccid-1", a, NULL, &tag), -API_STATUS_CONFLICT);
    want_resolve(c, "ccid-1", EMAIL_A, 0, a, 0);

    /* Without an e-mail: resolved only without one. */
    assert_int_equal(map(c, MERCHANT, "ccid-2", a, NULL, &tag), 0);
    want_resolve(c, "ccid-2", NULL, 0, a, 0);
    want_resolve(c, "ccid-2", EMAIL_A, -API_STATUS_MISMATCH, "", API_TAG_EMAIL);
    assert_int_equal(map(c, MERCHANT, "ccid-2", a, EMAIL_A, &tag), -API_STATUS_CONFLICT);
    assert_int_equal(map(c, MERCHANT, CCID_SCAN, b, EMAIL_B, &tag), 0);

    /* Issue 7: CARD_GET lists a card's mappings, clientCardId and whether
     * it is bound to an e-mail; a refused map added nothing. */
    {
        static const char *const ids_a[] = {"ccid-1", "ccid-2"};
        static const bool bound_a[] = {true, false};
        static const char *const ids_b[] = {CCID_SCAN};
        static const bool bound_b[] = {true};
        struct api_client *lister = client("list-client");
        struct api_card_update_req up;
        struct api_card_info info;

        assert_int_equal(want_listed(c, MERCHANT, a, ids_a, bound_a, 2), 0);
        assert_int_equal(want_listed(c, MERCHANT, b, ids_b, bound_b, 1), 0);
        /* The list role is enough to see them. */
        assert_int_equal(want_listed(lister, MERCHANT, a, ids_a, bound_a, 2), 0);
        api_client_free(lister);
        /* A card never mapped: the field is absent. */
        lister = client("other-client");
        assert_int_equal(want_listed(lister, "m-2", other, NULL, NULL, 0), 0);
        api_client_free(lister);
        /* CARD_UPDATE answers the card without them (GET lists them). */
        memset(&up, 0, sizeof(up));
        snprintf(up.merchant, sizeof(up.merchant), "%s", MERCHANT);
        snprintf(up.token, sizeof(up.token), "%s", a);
        up.has_need_cvc = true;
        up.need_cvc = false;
        assert_int_equal(api_call_card_update(c, &up, &info, NULL), 0);
        assert_int_equal(info.num_mappings, 0);
        assert_null(info.mappings);
        api_msg_cleanup(api_schema_response(API_OP_CARD_UPDATE), &info);
    }

    /* Unknown clientCardId; another merchant's clientCardId namespace. */
    want_resolve(c, "ccid-none", NULL, -API_STATUS_NOT_FOUND, "", API_TAG_CLIENT_CARD_ID);
    {
        char token[API_ID_MAX + 1];

        assert_int_equal(resolve(c, "m-pan", "ccid-2", NULL, token, &tag), -API_STATUS_NOT_FOUND);
        assert_int_equal(tag, API_TAG_CLIENT_CARD_ID);
    }
    /* Another merchant's token, a token that does not exist. */
    assert_int_equal(map(c, MERCHANT, "ccid-3", other, NULL, &tag), -API_STATUS_NOT_FOUND);
    assert_int_equal(tag, API_TAG_TOKEN);
    assert_int_equal(map(c, MERCHANT, "ccid-3", "no-such-token", EMAIL_A, &tag), -API_STATUS_NOT_FOUND);
    assert_int_equal(tag, API_TAG_TOKEN);
    want_resolve(c, "ccid-3", NULL, -API_STATUS_NOT_FOUND, "", API_TAG_CLIENT_CARD_ID);
    /* A client without the session role. */
    {
        struct api_client *lister = client("list-client");

        assert_int_equal(resolve(lister, MERCHANT, "ccid-2", NULL, NULL, &tag), -API_STATUS_DENIED);
        api_client_free(lister);
    }

    /* The card goes, its mappings with it; the clientCardIds are free again. */
    delete_card(MERCHANT, a);
    want_resolve(c, "ccid-1", EMAIL_A, -API_STATUS_NOT_FOUND, "", API_TAG_CLIENT_CARD_ID);
    want_resolve(c, "ccid-2", NULL, -API_STATUS_NOT_FOUND, "", API_TAG_CLIENT_CARD_ID);
    want_resolve(c, CCID_SCAN, EMAIL_B, 0, b, 0); /* another card's mapping stays */
    /* Deleted with their card, a's mappings are listed nowhere: not under
     * a (gone), not under b. */
    assert_int_equal(want_listed(c, MERCHANT, a, NULL, NULL, 0), -API_STATUS_NOT_FOUND);
    {
        static const char *const ids_b[] = {CCID_SCAN};
        static const bool bound_b[] = {true};

        assert_int_equal(want_listed(c, MERCHANT, b, ids_b, bound_b, 1), 0);
    }
    assert_int_equal(map(c, MERCHANT, "ccid-1", b, EMAIL_B, &tag), 0);
    want_resolve(c, "ccid-1", EMAIL_B, 0, b, 0);
    {
        static const char *const ids_b[] = {"ccid-1", CCID_SCAN};
        static const bool bound_b[] = {true, true};

        assert_int_equal(want_listed(c, MERCHANT, b, ids_b, bound_b, 2), 0);
    }
    api_client_free(c);
}

static int
cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* One card takes at most OPS_MAPPINGS_PER_TOKEN_MAX clientCardIds; a delete
 * removes them all. */
static void
test_mapping_cap(void **state)
{
    struct api_client *c = client("client");
    char t[API_ID_MAX + 1], ccid[32];
    uint16_t tag = 0;

    (void)state;
    store_card("client", MERCHANT, "cust-cap", "378282246310005", t);
    for (unsigned i = 0; i < OPS_MAPPINGS_PER_TOKEN_MAX; i++) {
        snprintf(ccid, sizeof(ccid), "cap-%u", i);
        assert_int_equal(map(c, MERCHANT, ccid, t, NULL, &tag), 0);
    }
    assert_int_equal(map(c, MERCHANT, "cap-over", t, NULL, &tag), -API_STATUS_INVALID_ARGUMENT);
    assert_int_equal(tag, API_TAG_TOKEN);
    want_resolve(c, "cap-0", NULL, 0, t, 0);
    /* CARD_GET lists all of them: the protocol's limit is the cap. */
    {
        static char ids[OPS_MAPPINGS_PER_TOKEN_MAX][32];
        const char *want[OPS_MAPPINGS_PER_TOKEN_MAX];
        bool bound[OPS_MAPPINGS_PER_TOKEN_MAX] = {false};
        unsigned k = 0;

        /* In clientCardId (byte) order: "cap-0", "cap-1", "cap-10", ... */
        for (unsigned i = 0; i < OPS_MAPPINGS_PER_TOKEN_MAX; i++)
            snprintf(ids[i], sizeof(ids[i]), "cap-%u", i);
        for (unsigned i = 0; i < OPS_MAPPINGS_PER_TOKEN_MAX; i++)
            want[k++] = ids[i];
        qsort(want, k, sizeof(want[0]), cmp_str);
        assert_int_equal(want_listed(c, MERCHANT, t, want, bound, k), 0);
    }
    delete_card(MERCHANT, t);
    assert_int_equal(want_listed(c, MERCHANT, t, NULL, NULL, 0), -API_STATUS_NOT_FOUND);
    for (unsigned i = 0; i < OPS_MAPPINGS_PER_TOKEN_MAX; i += 17) {
        snprintf(ccid, sizeof(ccid), "cap-%u", i);
        want_resolve(c, ccid, NULL, -API_STATUS_NOT_FOUND, "", API_TAG_CLIENT_CARD_ID);
    }
    snprintf(ccid, sizeof(ccid), "cap-%u", OPS_MAPPINGS_PER_TOKEN_MAX - 1);
    want_resolve(c, ccid, NULL, -API_STATUS_NOT_FOUND, "", API_TAG_CLIENT_CARD_ID);
    api_client_free(c);
}

/* Repeat sale: the check resolves the clientCardId in the same step. */
static void
test_repeat_sale(void **state)
{
    struct api_client *c = client("client");
    struct api_session_init_req q;
    struct api_session_init_resp resp;
    struct api_session_check_req cq, bad;
    char card[API_ID_MAX + 1], token[API_ID_MAX + 1];
    uint16_t tag = 0;

    (void)state;
    store_card("client", MERCHANT, "cust-repeat", "6011111111111117", card);
    assert_int_equal(map(c, MERCHANT, "ccid-repeat", card, EMAIL_A, &tag), 0);

    new_session(c, MERCHANT, 30, &q, &resp);
    tv_session_check_req(&cq, &q, &resp);
    cq.has_client_card_id = true;
    snprintf(cq.client_card_id, sizeof(cq.client_card_id), "ccid-repeat");
    /* Refusals of the mapping step, each leaving the session open. */
    bad = cq;
    want_check(c, &bad, -API_STATUS_MISMATCH, API_TAG_EMAIL);
    bad.has_email = true;
    snprintf(bad.email, sizeof(bad.email), EMAIL_B);
    want_check(c, &bad, -API_STATUS_MISMATCH, API_TAG_EMAIL);
    snprintf(bad.client_card_id, sizeof(bad.client_card_id), "ccid-unknown");
    snprintf(bad.email, sizeof(bad.email), EMAIL_A);
    want_check(c, &bad, -API_STATUS_NOT_FOUND, API_TAG_CLIENT_CARD_ID);
    /* The session's own checks come first. */
    bad = cq;
    bad.amount++;
    want_check(c, &bad, -API_STATUS_MISMATCH, API_TAG_AMOUNT);

    cq.has_email = true;
    snprintf(cq.email, sizeof(cq.email), EMAIL_A);
    assert_int_equal(check(c, &cq, &tag, token), 0);
    assert_string_equal(token, card);
    want_check(c, &cq, -API_STATUS_REPLAYED, API_TAG_NONCE);
    api_client_free(c);
}

/* ---- concurrency ---------------------------------------------------------------------- */

#define CONNS 4u
#define PER_CONN 16u

struct racer {
    pthread_t thread;
    pthread_barrier_t *start;
    struct api_client *c;
    const struct api_session_check_req *q;
    unsigned ok, replayed, other;
    int failed; /* a client error: asserted on the main thread */
};

static void *
race(void *arg)
{
    struct racer *r = arg;
    uint64_t id;

    pthread_barrier_wait(r->start);
    for (unsigned i = 0; i < PER_CONN; i++)
        if (api_client_submit(r->c, API_OP_SESSION_CHECK, r->q, &id) != 0)
            r->failed = 1;
    while (!r->failed && api_client_in_flight(r->c) > 0) {
        struct api_reply rep;

        memset(&rep, 0, sizeof(rep));
        if (api_client_collect(r->c, &rep) != 0) {
            r->failed = 1;
            break;
        }
        if (rep.status == 0)
            r->ok++;
        else if (rep.status == -API_STATUS_REPLAYED && rep.error.error_tag == API_TAG_NONCE)
            r->replayed++;
        else
            r->other++;
        api_reply_cleanup(&rep);
    }
    return NULL;
}

/* Many checks of one nonce at once, pipelined on several connections:
 * exactly one passes, every other is REPLAYED. */
static void
test_concurrent_checks(void **state)
{
    struct api_client *c = client("client");
    struct racer racers[CONNS];
    pthread_barrier_t start;

    (void)state;
    for (unsigned round = 0; round < 5; round++) {
        struct api_session_init_req q;
        struct api_session_init_resp resp;
        struct api_session_check_req cq;
        unsigned ok = 0, replayed = 0;

        new_session(c, MERCHANT, 100 + round, &q, &resp);
        tv_session_check_req(&cq, &q, &resp);
        assert_int_equal(pthread_barrier_init(&start, NULL, CONNS), 0);
        for (unsigned i = 0; i < CONNS; i++) {
            memset(&racers[i], 0, sizeof(racers[i]));
            racers[i].start = &start;
            racers[i].q = &cq;
            racers[i].c = client("client");
            assert_int_equal(api_client_connect(racers[i].c), 0);
        }
        for (unsigned i = 0; i < CONNS; i++)
            assert_int_equal(pthread_create(&racers[i].thread, NULL, race, &racers[i]), 0);
        for (unsigned i = 0; i < CONNS; i++) {
            assert_int_equal(pthread_join(racers[i].thread, NULL), 0);
            assert_int_equal(racers[i].failed, 0);
            assert_int_equal(racers[i].other, 0);
            ok += racers[i].ok;
            replayed += racers[i].replayed;
            api_client_free(racers[i].c);
        }
        pthread_barrier_destroy(&start);
        assert_int_equal(ok, 1);
        assert_int_equal(replayed, CONNS * PER_CONN - 1);
        audited_check += CONNS * PER_CONN;
    }
    api_client_free(c);
}

/* A consumed nonce (and a mapping) survive kill -9 right after the answer. */
static void
test_kill9_durability(void **state)
{
    struct api_client *c = client("client");
    struct api_session_init_req q;
    struct api_session_init_resp resp;
    struct api_session_check_req cq;
    char card[API_ID_MAX + 1];
    uint16_t tag = 0;

    (void)state;
    store_card("client", MERCHANT, "cust-kill", "4000056655665556", card);
    new_session(c, MERCHANT, 200, &q, &resp);
    tv_session_check_req(&cq, &q, &resp);
    assert_int_equal(map(c, MERCHANT, "ccid-kill", card, EMAIL_B, &tag), 0);
    assert_int_equal(check(c, &cq, &tag, NULL), 0);
    assert_int_equal(tv_daemon_stop(&d, SIGKILL), -1); /* died by the signal */
    api_client_free(c);

    assert_int_equal(tv_daemon_start(&d), 0);
    c = client("client");
    want_check(c, &cq, -API_STATUS_REPLAYED, API_TAG_NONCE);
    want_resolve(c, "ccid-kill", EMAIL_B, 0, card, 0);
    api_client_free(c);
}

/* Malformed frames are refused by the decoder and change nothing: the
 * session they name still passes afterwards. */
static void
test_bad_input(void **state)
{
    struct api_client *c = client("client");
    struct api_session_init_req q;
    struct api_session_init_resp resp;
    struct api_session_check_req cq;
    struct tv_raw f;
    unsigned status;
    uint16_t tag;
    uint8_t zero[API_HASH_LEN + 1] = {0};

    (void)state;
    new_session(c, MERCHANT, 300, &q, &resp);
    tv_session_check_req(&cq, &q, &resp);

    raw_check(&f, &cq, API_NONCE_MIN - 1, API_SIGNATURE_LEN, cq.device_data.len);
    tv_raw_send(&d, "client", &f, &status, &tag);
    assert_int_equal(status, API_STATUS_BAD_LENGTH);
    assert_int_equal(tag, API_TAG_NONCE);
    raw_check(&f, &cq, API_NONCE_MAX, API_SIGNATURE_LEN - 1, cq.device_data.len);
    tv_raw_send(&d, "client", &f, &status, &tag);
    assert_int_equal(status, API_STATUS_BAD_LENGTH);
    assert_int_equal(tag, API_TAG_SIGNATURE);
    raw_check(&f, &cq, API_NONCE_MAX, API_SIGNATURE_LEN, 0);
    tv_raw_send(&d, "client", &f, &status, &tag);
    assert_int_equal(status, API_STATUS_BAD_LENGTH);
    assert_int_equal(tag, API_TAG_DEVICE_DATA);
    raw_check(&f, &cq, API_NONCE_MAX, API_SIGNATURE_LEN, cq.device_data.len);
    tv_raw_str(&f, API_TAG_CVC, "123");
    tv_raw_send(&d, "client", &f, &status, &tag);
    assert_int_equal(status, API_STATUS_PROHIBITED_DATA);
    raw_check(&f, &cq, API_NONCE_MAX, API_SIGNATURE_LEN, cq.device_data.len);
    tv_raw_str(&f, API_TAG_CUSTOMER_NUMBER, "c-1");
    tv_raw_send(&d, "client", &f, &status, &tag);
    assert_int_equal(status, API_STATUS_UNKNOWN_FIELD);
    raw_check(&f, &cq, API_NONCE_MAX, API_SIGNATURE_LEN, cq.device_data.len);
    tv_raw_field(&f, API_TAG_NONCE, cq.nonce.data, API_NONCE_MAX);
    tv_raw_send(&d, "client", &f, &status, &tag);
    assert_int_equal(status, API_STATUS_DUPLICATE_FIELD);

    /* INIT: an access-token hash of the wrong length, a zero lifetime, an
     * amount past the limit. */
    tv_raw_begin(&f, API_OP_SESSION_INIT, 9);
    tv_raw_str(&f, API_TAG_MERCHANT, MERCHANT);
    tv_raw_field(&f, API_TAG_ACCESS_TOKEN_HASH, zero, API_HASH_LEN + 1);
    tv_raw_u64(&f, API_TAG_AMOUNT, 1);
    tv_raw_str(&f, API_TAG_CURRENCY, "EUR");
    tv_raw_str(&f, API_TAG_DEVICE_DATA, DEVICE_MARK);
    tv_raw_send(&d, "client", &f, &status, &tag);
    assert_int_equal(status, API_STATUS_BAD_LENGTH);
    assert_int_equal(tag, API_TAG_ACCESS_TOKEN_HASH);
    tv_raw_begin(&f, API_OP_SESSION_INIT, 9);
    tv_raw_str(&f, API_TAG_MERCHANT, MERCHANT);
    tv_raw_field(&f, API_TAG_ACCESS_TOKEN_HASH, zero, API_HASH_LEN);
    tv_raw_u64(&f, API_TAG_AMOUNT, API_AMOUNT_MAX + 1);
    tv_raw_str(&f, API_TAG_CURRENCY, "EUR");
    tv_raw_str(&f, API_TAG_DEVICE_DATA, DEVICE_MARK);
    tv_raw_send(&d, "client", &f, &status, &tag);
    assert_int_equal(status, API_STATUS_BAD_VALUE);
    assert_int_equal(tag, API_TAG_AMOUNT);
    tv_raw_begin(&f, API_OP_SESSION_INIT, 9);
    tv_raw_str(&f, API_TAG_MERCHANT, MERCHANT);
    tv_raw_field(&f, API_TAG_ACCESS_TOKEN_HASH, zero, API_HASH_LEN);
    tv_raw_u64(&f, API_TAG_AMOUNT, 1);
    tv_raw_str(&f, API_TAG_CURRENCY, "eur");
    tv_raw_str(&f, API_TAG_DEVICE_DATA, DEVICE_MARK);
    tv_raw_send(&d, "client", &f, &status, &tag);
    assert_int_equal(status, API_STATUS_BAD_VALUE);
    assert_int_equal(tag, API_TAG_CURRENCY);

    /* MAP: an e-mail too short, a clientCardId with a blank. */
    tv_raw_begin(&f, API_OP_CARD_MAP, 9);
    tv_raw_str(&f, API_TAG_MERCHANT, MERCHANT);
    tv_raw_str(&f, API_TAG_CLIENT_CARD_ID, "ccid-raw");
    tv_raw_str(&f, API_TAG_TOKEN, "tok");
    tv_raw_str(&f, API_TAG_EMAIL, "a@");
    tv_raw_send(&d, "client", &f, &status, &tag);
    assert_int_equal(status, API_STATUS_BAD_LENGTH);
    assert_int_equal(tag, API_TAG_EMAIL);
    tv_raw_begin(&f, API_OP_CARD_MAP, 9);
    tv_raw_str(&f, API_TAG_MERCHANT, MERCHANT);
    tv_raw_str(&f, API_TAG_CLIENT_CARD_ID, "ccid raw");
    tv_raw_str(&f, API_TAG_TOKEN, "tok");
    tv_raw_send(&d, "client", &f, &status, &tag);
    assert_int_equal(status, API_STATUS_BAD_VALUE);
    assert_int_equal(tag, API_TAG_CLIENT_CARD_ID);

    /* Nothing of that touched the session. */
    want_check(c, &cq, 0, 0);
    api_client_free(c);
}

/* ---- what the files hold ------------------------------------------------------------------ */

struct audit_count {
    unsigned init, check, map, resolve, denied;
    unsigned with_email; /* entries whose strings hold an '@' */
};

static int
count_entry(void *ctx, const MDB_val *key, const MDB_val *val)
{
    struct audit_count *n = ctx;
    struct audit_entry e;

    (void)key;
    assert_int_equal(audit_decode(&e, val->mv_data, val->mv_size), 0);
    if (e.type != AUDIT_EVENT)
        return 0;
    if (strchr(e.token, '@') != NULL || strchr(e.detail, '@') != NULL)
        n->with_email++;
    if (e.status == API_STATUS_DENIED) {
        if (e.opcode >= API_OP_SESSION_INIT && e.opcode <= API_OP_MAP_RESOLVE)
            n->denied++;
        return 0;
    }
    switch (e.opcode) {
    case API_OP_SESSION_INIT:
        n->init++;
        assert_int_equal(strlen(e.token), 2 * API_NONCE_MAX); /* the session's id */
        break;
    case API_OP_SESSION_CHECK:
        n->check++;
        break;
    case API_OP_CARD_MAP:
        n->map++;
        break;
    case API_OP_MAP_RESOLVE:
        n->resolve++;
        break;
    default:
        break;
    }
    return 0;
}

/* Sessions and mappings left in the store, each decoding. */
static int
count_sessions(void *ctx, const MDB_val *key, const MDB_val *val)
{
    struct sale_session s;

    assert_int_equal(key->mv_size, OPS_NONCE_LEN);
    assert_int_equal(ops_session_decode(&s, val->mv_data, val->mv_size), 0);
    (*(unsigned *)ctx)++;
    return 0;
}

static int
check_mapping(void *ctx, const MDB_val *key, const MDB_val *val)
{
    struct card_mapping m;

    (void)ctx;
    if (((const uint8_t *)key->mv_data)[0] == 0) {
        assert_int_equal(val->mv_size, 0); /* a reverse entry */
        return 0;
    }
    assert_int_equal(ops_mapping_decode(&m, val->mv_data, val->mv_size), 0);
    return 0;
}

/* Every request that reached the writer is audited once; no e-mail, device
 * data or issued signature is in the store file or the log (the
 * clientCardId, which may be, is: the scan works). */
static void
test_files_and_audit(void **state)
{
    static const char *const secrets[] = {EMAIL_A, EMAIL_B, DEVICE_MARK, "Grace.Hopper"};
    struct vault_store *st = NULL;
    struct store_txn t;
    struct audit_count n = {0};
    unsigned sessions = 0;
    char msg[256], path[400];

    (void)state;
    assert_int_equal(tv_daemon_stop(&d, SIGTERM), 0);
    assert_int_equal(store_open(&st, d.store, 64ull << 20, msg, sizeof(msg)), 0);
    assert_int_equal(store_read_begin(st, &t), 0);
    assert_int_equal(store_each(&t, STORE_DB_AUDIT, NULL, 0, count_entry, &n), 0);
    assert_int_equal(store_each(&t, STORE_DB_SESSIONS, NULL, 0, count_sessions, &sessions), 0);
    assert_int_equal(store_each(&t, STORE_DB_MAPPINGS, NULL, 0, check_mapping, NULL), 0);
    store_read_end(&t);
    store_close(st);
    assert_int_equal(n.init, audited_init);
    assert_int_equal(n.check, audited_check);
    assert_int_equal(n.map, audited_map);
    assert_int_equal(n.resolve, audited_resolve);
    assert_int_equal(n.denied, audited_denied);
    assert_int_equal(n.with_email, 0);
    assert_true(sessions > 0 && sessions <= audited_init);

    snprintf(path, sizeof(path), "%s/data.mdb", d.store);
    assert_int_equal(tv_file_contains(path, CCID_SCAN, strlen(CCID_SCAN)), 1);
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        assert_int_equal(tv_file_contains(path, secrets[i], strlen(secrets[i])), 0);
        assert_int_equal(tv_file_contains(d.log, secrets[i], strlen(secrets[i])), 0);
    }
    assert_true(num_issued_sigs > 0);
    for (size_t i = 0; i < num_issued_sigs; i++) {
        assert_int_equal(tv_file_contains(path, issued_sigs[i], API_SIGNATURE_LEN), 0);
        assert_int_equal(tv_file_contains(d.log, issued_sigs[i], API_SIGNATURE_LEN), 0);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sale),
        cmocka_unit_test(test_check_refusals),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_mapping),
        cmocka_unit_test(test_mapping_cap),
        cmocka_unit_test(test_repeat_sale),
        cmocka_unit_test(test_concurrent_checks),
        cmocka_unit_test(test_kill9_durability),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_files_and_audit),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
