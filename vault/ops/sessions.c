/*
 * sessions.c - mobile sale sessions and card mappings (seed 002):
 * SESSION_INIT, SESSION_CHECK, CARD_MAP, MAP_RESOLVE (docs/PROTOCOL.md
 * section 11); what they store is described in sessions.h.
 *
 * As in cards.c, the worker does the HSM work (nonce, signature, signature
 * check, e-mail fingerprint) and the writer's transaction makes every
 * decision that depends on the store (does the session exist, is it
 * consumed, is the clientCardId mapped) and appends the audit entry before
 * the answer. Every request that reaches the writer is audited, refusals
 * included; the only refusals decided before it are those of the request's
 * own shape (INVALID_ARGUMENT), which read and change nothing, like a
 * decoding error.
 */
#include "vault/ops/sessions.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/hex.h"
#include "api/reader.h"
#include "vault/config.h"
#include "vault/log.h"
#include "vault/ops/ops.h"
#include "vault/ops/sweep.h"

/* Domain labels: the first field of every input the session MAC key signs,
 * so no input of one use can equal an input of another. */
#define SESSION_MAC_LABEL "tokenvault/session/v1"
#define EMAIL_FP_LABEL "tokenvault/map-email/v1"
/* The longest MAC input: labels, nonce, merchant, hashes, integers, the
 * longest e-mail, each with its u8 length. */
#define MAC_INPUT_MAX 512u

/* Key lengths: merchant 0x00 clientCardId; 0x00 token 0x00 clientCardId. */
#define FORWARD_KEY_MAX (API_ID_MAX + 1u + API_ID_MAX)
#define REVERSE_KEY_MAX (1u + API_ID_MAX + 1u + API_ID_MAX)

/* Fixed messages: the same refusal reads the same everywhere, and none
 * carries a value from the request. */
#define MSG_NO_SESSION "no such session for this merchant"
#define MSG_SIGNATURE "the session signature does not verify"
#define MSG_EXPIRED "the session has expired"
#define MSG_REPLAYED "the session was checked before"
#define MSG_MISMATCH "the sale differs from its session in this field"
#define MSG_NO_MAPPING "no such clientCardId for this merchant"
#define MSG_EMAIL "the e-mail differs from the one the clientCardId was mapped with"

/* ---- records ----------------------------------------------------------------------- */

static bool
currency_ok(const char *c)
{
    if (strlen(c) != API_CURRENCY_LEN)
        return false;
    for (size_t i = 0; i < API_CURRENCY_LEN; i++)
        if (c[i] < 'A' || c[i] > 'Z')
            return false;
    return true;
}

static bool
id_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > API_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7E)
            return false;
    return true;
}

/* What encode writes and decode takes. The lifetime bound is the
 * protocol's: a session never outlives API_LIFETIME_MAX (plus the second
 * the expiry is rounded up to). */
static bool
session_ok(const struct sale_session *s)
{
    return (s->state == OPS_SESSION_OPEN || s->state == OPS_SESSION_CONSUMED) &&
           id_ok(s->merchant) && s->amount <= API_AMOUNT_MAX && currency_ok(s->currency) &&
           s->created_at_ms <= API_TIME_MAX * 1000u && s->expires_at <= API_TIME_MAX &&
           s->expires_at * 1000u > s->created_at_ms &&
           s->expires_at * 1000u - s->created_at_ms <= (API_LIFETIME_MAX + 1u) * 1000ull;
}

int
ops_session_encode(struct api_writer *w, const struct sale_session *s)
{
    int e = 0;

    if (!session_ok(s))
        return -API_STATUS_INTERNAL;
    e = e ? e : api_writer_put_u8(w, s->key_version == 0 ? OPS_SESSION_VERSION_V1
                                                          : OPS_SESSION_VERSION);
    e = e ? e : api_writer_put_u8(w, s->state);
    if (s->key_version != 0)
        e = e ? e : api_writer_put_u32(w, s->key_version);
    e = e ? e : api_writer_put_str8(w, s->merchant);
    e = e ? e : api_writer_put_bytes(w, s->access_token_hash, sizeof(s->access_token_hash));
    e = e ? e : api_writer_put_u64(w, s->amount);
    e = e ? e : api_writer_put_bytes(w, (const uint8_t *)s->currency, API_CURRENCY_LEN);
    e = e ? e : api_writer_put_bytes(w, s->device_hash, sizeof(s->device_hash));
    e = e ? e : api_writer_put_u64(w, s->created_at_ms);
    e = e ? e : api_writer_put_u64(w, s->expires_at);
    return e;
}

int
ops_session_decode(struct sale_session *out, const uint8_t *data, size_t len)
{
    struct api_reader rd, v;
    uint8_t version;
    int r = -API_STATUS_INTERNAL;

    memset(out, 0, sizeof(*out));
    api_reader_init(&rd, data, len);
    if (api_reader_get_u8(&rd, &version) != 0 ||
        (version != OPS_SESSION_VERSION && version != OPS_SESSION_VERSION_V1) ||
        api_reader_get_u8(&rd, &out->state) != 0 ||
        (version == OPS_SESSION_VERSION &&
         (api_reader_get_u32(&rd, &out->key_version) != 0 || out->key_version == 0)) ||
        api_reader_get_str8(&rd, out->merchant, sizeof(out->merchant), 1, API_ID_MAX) != 0 ||
        api_reader_get_bytes(&rd, &v, API_HASH_LEN) != 0)
        goto out;
    memcpy(out->access_token_hash, v.data, API_HASH_LEN);
    if (api_reader_get_u64(&rd, &out->amount) != 0 ||
        api_reader_get_bytes(&rd, &v, API_CURRENCY_LEN) != 0)
        goto out;
    memcpy(out->currency, v.data, API_CURRENCY_LEN);
    if (api_reader_get_bytes(&rd, &v, API_HASH_LEN) != 0)
        goto out;
    memcpy(out->device_hash, v.data, API_HASH_LEN);
    if (api_reader_get_u64(&rd, &out->created_at_ms) != 0 ||
        api_reader_get_u64(&rd, &out->expires_at) != 0 || api_reader_len(&rd) != 0)
        goto out;
    /* currency_ok also refuses a NUL inside the three bytes. */
    if (session_ok(out))
        r = 0;
out:
    if (r != 0)
        memset(out, 0, sizeof(*out));
    return r;
}

int
ops_mapping_encode(struct api_writer *w, const struct card_mapping *m)
{
    int e = 0;

    if (!id_ok(m->token) || m->created_at > API_TIME_MAX)
        return -API_STATUS_INTERNAL;
    e = e ? e : api_writer_put_u8(w, OPS_MAPPING_VERSION);
    e = e ? e : api_writer_put_str8(w, m->token);
    e = e ? e : api_writer_put_u8(w, m->has_email ? 1 : 0);
    if (m->has_email)
        e = e ? e : api_writer_put_bytes(w, m->email_fp, sizeof(m->email_fp));
    e = e ? e : api_writer_put_u64(w, m->created_at);
    return e;
}

int
ops_mapping_decode(struct card_mapping *out, const uint8_t *data, size_t len)
{
    struct api_reader rd, v;
    uint8_t version, has_email;
    int r = -API_STATUS_INTERNAL;

    memset(out, 0, sizeof(*out));
    api_reader_init(&rd, data, len);
    if (api_reader_get_u8(&rd, &version) != 0 || version != OPS_MAPPING_VERSION ||
        api_reader_get_str8(&rd, out->token, sizeof(out->token), 1, API_ID_MAX) != 0 ||
        !id_ok(out->token) || api_reader_get_u8(&rd, &has_email) != 0 || has_email > 1)
        goto out;
    out->has_email = has_email == 1;
    if (out->has_email) {
        if (api_reader_get_bytes(&rd, &v, sizeof(out->email_fp)) != 0)
            goto out;
        memcpy(out->email_fp, v.data, sizeof(out->email_fp));
    }
    if (api_reader_get_u64(&rd, &out->created_at) != 0 || out->created_at > API_TIME_MAX ||
        api_reader_len(&rd) != 0)
        goto out;
    r = 0;
out:
    if (r != 0)
        memset(out, 0, sizeof(*out));
    return r;
}

/* A byte string with its u8 length (every MAC input field is one). */
static int
put_bytes8(struct api_writer *w, const void *data, size_t len)
{
    int e;

    if (len > 255)
        return -API_STATUS_INTERNAL;
    e = api_writer_put_u8(w, (uint8_t)len);
    return e ? e : api_writer_put_bytes(w, data, len);
}

int
ops_session_mac_input(struct api_writer *w, const uint8_t nonce[OPS_NONCE_LEN],
                      const struct sale_session *s)
{
    int e = 0;

    e = e ? e : api_writer_put_str8(w, SESSION_MAC_LABEL);
    e = e ? e : put_bytes8(w, nonce, OPS_NONCE_LEN);
    e = e ? e : api_writer_put_str8(w, s->merchant);
    e = e ? e : put_bytes8(w, s->access_token_hash, sizeof(s->access_token_hash));
    e = e ? e : api_writer_put_u64(w, s->amount);
    e = e ? e : api_writer_put_str8(w, s->currency);
    e = e ? e : put_bytes8(w, s->device_hash, sizeof(s->device_hash));
    e = e ? e : api_writer_put_u64(w, s->expires_at);
    return e;
}

/* ---- store helpers -------------------------------------------------------------------- */

static size_t
forward_key(uint8_t out[FORWARD_KEY_MAX], const char *merchant, const char *client_card_id)
{
    size_t m = strlen(merchant), c = strlen(client_card_id);

    memcpy(out, merchant, m);
    out[m] = 0;
    memcpy(out + m + 1, client_card_id, c);
    return m + 1 + c;
}

/* The reverse key of (token, clientCardId), or with |client_card_id| NULL
 * the prefix every reverse key of |token| starts with. */
static size_t
reverse_key(uint8_t out[REVERSE_KEY_MAX], const char *token, const char *client_card_id)
{
    size_t t = strlen(token), n = 0;

    out[n++] = 0;
    memcpy(out + n, token, t);
    n += t;
    out[n++] = 0;
    if (client_card_id != NULL) {
        memcpy(out + n, client_card_id, strlen(client_card_id));
        n += strlen(client_card_id);
    }
    return n;
}

/* The session of |nonce| if it is |merchant|'s: another merchant's nonce is
 * NOT_FOUND, so an answer never tells that it exists. */
static int
session_load(struct store_txn *t, const uint8_t *nonce, size_t nonce_len, const char *merchant,
             struct sale_session *out)
{
    MDB_val v;
    int r;

    if (nonce_len != OPS_NONCE_LEN) /* never issued: the vault's nonces are all this long */
        return -API_STATUS_NOT_FOUND;
    if ((r = store_get(t, STORE_DB_SESSIONS, nonce, nonce_len, &v)) != 0)
        return r;
    if ((r = ops_session_decode(out, v.mv_data, v.mv_size)) != 0) {
        vlog_msg(VAULT_LOG_ERROR, "session_malformed", "merchant", merchant);
        return r;
    }
    return strcmp(out->merchant, merchant) == 0 ? 0 : -API_STATUS_NOT_FOUND;
}

int
ops_session_save(struct store_txn *t, const uint8_t nonce[OPS_NONCE_LEN],
                 const struct sale_session *s, unsigned flags)
{
    struct api_writer w;
    int r;

    api_writer_init(&w, OPS_SESSION_MAX);
    r = ops_session_encode(&w, s) == 0 ? 0 : -API_STATUS_INTERNAL;
    if (r == 0)
        r = store_put(t, STORE_DB_SESSIONS, nonce, OPS_NONCE_LEN, api_writer_data(&w),
                      api_writer_len(&w), flags);
    api_writer_cleanup(&w);
    return r;
}

static int
mapping_load(struct store_txn *t, const char *merchant, const char *client_card_id,
             struct card_mapping *out)
{
    uint8_t key[FORWARD_KEY_MAX];
    MDB_val v;
    int r;

    if ((r = store_get(t, STORE_DB_MAPPINGS, key, forward_key(key, merchant, client_card_id), &v)) != 0)
        return r;
    if ((r = ops_mapping_decode(out, v.mv_data, v.mv_size)) != 0)
        vlog_msg(VAULT_LOG_ERROR, "mapping_malformed", "merchant", merchant);
    return r;
}

/* ---- shared by the operations ---------------------------------------------------------- */

/* The e-mail fingerprint (sessions.h) into ss->email_fp, in the HSM. */
static int
email_fingerprint(struct op_job *j, hsm_session *s, const char *merchant,
                  const char *client_card_id, const char *email)
{
    struct op_session_state *ss = &j->u.session;
    struct api_writer w;
    uint64_t t0 = metrics_now_ns();
    int e = 0;

    api_writer_init(&w, MAC_INPUT_MAX);
    e = e ? e : api_writer_put_str8(&w, EMAIL_FP_LABEL);
    e = e ? e : api_writer_put_str8(&w, merchant);
    e = e ? e : api_writer_put_str8(&w, client_card_id);
    e = e ? e : api_writer_put_str8(&w, email);
    if (e != 0)
        e = -API_STATUS_INTERNAL;
    else if ((e = hsm_hmac_sign(s, j->svc->keys.smk, api_writer_data(&w), api_writer_len(&w),
                                ss->email_fp)) != 0)
        e = vault_hsm_status(e);
    ops_time_hsm(j, METRICS_HSM_HMAC, t0);
    api_writer_cleanup(&w); /* wipes the e-mail */
    ss->has_email_fp = e == 0;
    return e;
}

/* The writer's verdict on a request: answered by done, audited by apply. */
static void
verdict(struct op_session_state *ss, unsigned status, uint16_t tag, const char *message)
{
    const struct api_tag_info *ti = tag != 0 ? api_tag_info(tag) : NULL;

    ss->status = status;
    ss->tag = tag;
    ss->message = message;
    /* The refused field's wire name ("amount"): which check, never a value. */
    ss->detail = ti != NULL ? ti->wire : NULL;
}

/* MAP_RESOLVE, and the repeat sale of SESSION_CHECK: the serverCardId of
 * |client_card_id| into ss->token when the e-mail binding agrees. Sets the
 * verdict for a refusal and returns 0; a negated status only for a store
 * failure. */
static int
resolve(struct op_job *j, struct store_txn *t, const char *merchant, const char *client_card_id)
{
    struct op_session_state *ss = &j->u.session;
    struct card_mapping m;
    struct card_record rec;
    int r = mapping_load(t, merchant, client_card_id, &m);

    if (r == -API_STATUS_NOT_FOUND) {
        verdict(ss, API_STATUS_NOT_FOUND, API_TAG_CLIENT_CARD_ID, MSG_NO_MAPPING);
        return 0;
    }
    if (r != 0)
        return r;
    /* Seed 002: a mapping made with consumer.email needs the same e-mail;
     * one made without needs none (an e-mail there is a different
     * consumer's claim, refused as well). */
    if (m.has_email != ss->has_email_fp ||
        (m.has_email && CRYPTO_memcmp(m.email_fp, ss->email_fp, sizeof(m.email_fp)) != 0)) {
        verdict(ss, API_STATUS_MISMATCH, API_TAG_EMAIL, MSG_EMAIL);
        return 0;
    }
    /* A mapping outlives its card only if the index is broken: CARD_DELETE
     * deletes both, and expiring device PANs are never mapped. */
    r = ops_card_load(t, merchant, m.token, &rec);
    if (r == -API_STATUS_NOT_FOUND) {
        vlog_msg(VAULT_LOG_ERROR, "mapping_dangling", "merchant", merchant);
        verdict(ss, API_STATUS_NOT_FOUND, API_TAG_CLIENT_CARD_ID, MSG_NO_MAPPING);
        return 0;
    }
    if (r != 0)
        return r;
    memcpy(ss->token, m.token, sizeof(ss->token));
    verdict(ss, API_STATUS_OK, 0, NULL);
    return 0;
}

/* The answer of a job the writer could not commit: nothing of it stayed,
 * its audit entry included. */
static void
fail_from_writer(struct op_job *j, int result)
{
    op_fail(j, result, j->err_tag, j->err_message);
}

static void
fail_verdict(struct op_job *j)
{
    const struct op_session_state *ss = &j->u.session;

    op_fail(j, (int)ss->status, ss->tag, ss->message);
}

void
ops_session_configure(struct op_job *j, const struct vault_config *cfg)
{
    j->u.session.lifetime_default_s = cfg->session_lifetime_seconds;
    j->u.session.lifetime_max_s = cfg->session_max_lifetime_seconds;
}

/* ---- SESSION_INIT ------------------------------------------------------------------------ */

static int
init_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    struct op_session_state *ss = &j->u.session;
    int r;

    /* A nonce is 256 bits from the HSM RNG: a collision means a broken RNG,
     * and is refused rather than overwriting a session. */
    r = ops_session_save(t, ss->nonce, &ss->sess, STORE_PUT_NEW);
    if (r == -API_STATUS_CONFLICT) {
        vlog_msg(VAULT_LOG_ERROR, "session_nonce_collision", "merchant", ss->sess.merchant);
        r = -API_STATUS_INTERNAL;
    }
    if (r != 0 ||
        (r = ops_sweep_schedule(t, ss->sess.expires_at * 1000u, SWEEP_SESSION, ss->nonce,
                                OPS_NONCE_LEN)) != 0)
        return r;
    return op_audit(j, t, API_STATUS_OK, ss->nonce_hex, NULL);
}

static void
init_done(struct op_job *j, int result)
{
    const struct op_session_state *ss = &j->u.session;
    struct api_session_init_resp resp;

    if (result != 0) {
        fail_from_writer(j, result);
        return;
    }
    memset(&resp, 0, sizeof(resp));
    resp.nonce.len = OPS_NONCE_LEN;
    memcpy(resp.nonce.data, ss->nonce, OPS_NONCE_LEN);
    resp.signature.len = API_SIGNATURE_LEN;
    memcpy(resp.signature.data, ss->signature, API_SIGNATURE_LEN);
    resp.expires_at = ss->sess.expires_at;
    op_reply(j, &resp);
    OPENSSL_cleanse(&resp, sizeof(resp)); /* nonce and signature pass a check */
}

/* Nonce and signature in the HSM. 0 or a negated status. */
static int
init_sign(struct op_job *j, hsm_session *s)
{
    struct op_session_state *ss = &j->u.session;
    struct api_writer w;
    hsm_key *key = NULL;
    uint64_t t0 = metrics_now_ns();
    int e = hsm_random(s, ss->nonce, OPS_NONCE_LEN);

    ops_time_hsm(j, METRICS_HSM_RANDOM, t0);
    if (e != 0)
        return vault_hsm_status(e);
    api_writer_init(&w, MAC_INPUT_MAX);
    if (ops_session_mac_input(&w, ss->nonce, &ss->sess) != 0 ||
        (key = keys_stk(&j->svc->keys, ss->sess.key_version)) == NULL) {
        e = -API_STATUS_INTERNAL;
    } else {
        t0 = metrics_now_ns();
        e = hsm_hmac_sign(s, key, api_writer_data(&w), api_writer_len(&w), ss->signature);
        ops_time_hsm(j, METRICS_HSM_HMAC, t0);
        e = e == 0 ? 0 : vault_hsm_status(e);
    }
    api_writer_cleanup(&w);
    return e;
}

void
ops_session_init(struct op_job *j)
{
    const struct api_session_init_req *q = j->req->frame.msg;
    struct op_session_state *ss = &j->u.session;
    struct sale_session *sess = &ss->sess;
    uint32_t lifetime = q->has_lifetime ? q->lifetime : ss->lifetime_default_s;
    hsm_session *s;
    int r;

    if (lifetime == 0 || lifetime > ss->lifetime_max_s) {
        op_fail(j, API_STATUS_INVALID_ARGUMENT, API_TAG_LIFETIME,
                "lifetime is outside what this service allows ([sessions] max_lifetime_seconds)");
        return;
    }
    sess->state = OPS_SESSION_OPEN;
    sess->key_version = keys_stk_current(&j->svc->keys);
    memcpy(sess->merchant, q->merchant, sizeof(sess->merchant));
    memcpy(sess->access_token_hash, q->access_token_hash.data, API_HASH_LEN);
    sess->amount = q->amount;
    memcpy(sess->currency, q->currency, sizeof(sess->currency));
    SHA256(q->device_data.data, q->device_data.len, sess->device_hash);
    sess->created_at_ms = audit_now_ms();
    /* Rounded up to a whole second, so expiresAt is exactly when the
     * session stops passing (a check at expiresAt * 1000 ms is EXPIRED). */
    sess->expires_at = (sess->created_at_ms + (uint64_t)lifetime * 1000u + 999u) / 1000u;

    if ((s = op_session(j)) == NULL)
        return;
    r = init_sign(j, s);
    hsm_session_release(s);
    if (r == 0 && hex_encode(ss->nonce_hex, sizeof(ss->nonce_hex), ss->nonce, OPS_NONCE_LEN) != 0)
        r = -API_STATUS_INTERNAL;
    if (r != 0) {
        op_fail(j, r, 0, NULL);
        return;
    }
    op_submit_write(j, init_apply, init_done);
}

/* ---- SESSION_CHECK ----------------------------------------------------------------------- */

/* The fields the signature covers (all but state) are the ones the worker
 * verified: sessions never change them, so this holds unless the store was
 * altered between the two reads. */
static bool
same_signed_fields(const struct sale_session *a, const struct sale_session *b)
{
    return a->key_version == b->key_version && strcmp(a->merchant, b->merchant) == 0 &&
           memcmp(a->access_token_hash, b->access_token_hash, API_HASH_LEN) == 0 &&
           a->amount == b->amount && strcmp(a->currency, b->currency) == 0 &&
           memcmp(a->device_hash, b->device_hash, API_HASH_LEN) == 0 &&
           a->expires_at == b->expires_at;
}

/* The checks in docs/PROTOCOL.md's order; the first that fails is the
 * verdict. 0, or a negated status for a store failure. */
static int
check_decide(struct op_job *j, struct store_txn *t, struct sale_session *cur)
{
    const struct api_session_check_req *q = j->req->frame.msg;
    struct op_session_state *ss = &j->u.session;
    int r = session_load(t, q->nonce.data, q->nonce.len, q->merchant, cur);

    if (r != 0 && r != -API_STATUS_NOT_FOUND)
        return r;
    if (r == -API_STATUS_NOT_FOUND || ss->found == API_STATUS_NOT_FOUND) {
        /* Also a session the worker did not see: its signature was never
         * checked, so it cannot pass. */
        verdict(ss, API_STATUS_NOT_FOUND, API_TAG_NONCE, MSG_NO_SESSION);
        return 0;
    }
    if (ss->found != API_STATUS_OK) {
        verdict(ss, API_STATUS_SIGNATURE_INVALID, API_TAG_SIGNATURE, MSG_SIGNATURE);
        return 0;
    }
    if (!same_signed_fields(cur, &ss->sess)) {
        vlog_msg(VAULT_LOG_ERROR, "session_changed_under_check", "merchant", q->merchant);
        return -API_STATUS_INTERNAL;
    }
    if (audit_now_ms() >= cur->expires_at * 1000u) {
        verdict(ss, API_STATUS_EXPIRED, API_TAG_NONCE, MSG_EXPIRED);
        return 0;
    }
    if (cur->state != OPS_SESSION_OPEN) {
        verdict(ss, API_STATUS_REPLAYED, API_TAG_NONCE, MSG_REPLAYED);
        return 0;
    }
    /* The app's data against the session's, in schema order. The hashes are
     * compared in constant time: the access-token hash stands for a bearer
     * credential. */
    if (CRYPTO_memcmp(q->access_token_hash.data, cur->access_token_hash, API_HASH_LEN) != 0)
        verdict(ss, API_STATUS_MISMATCH, API_TAG_ACCESS_TOKEN_HASH, MSG_MISMATCH);
    else if (q->amount != cur->amount)
        verdict(ss, API_STATUS_MISMATCH, API_TAG_AMOUNT, MSG_MISMATCH);
    else if (strcmp(q->currency, cur->currency) != 0)
        verdict(ss, API_STATUS_MISMATCH, API_TAG_CURRENCY, MSG_MISMATCH);
    else if (CRYPTO_memcmp(ss->device_hash, cur->device_hash, API_HASH_LEN) != 0)
        verdict(ss, API_STATUS_MISMATCH, API_TAG_DEVICE_DATA, MSG_MISMATCH);
    else if (q->has_client_card_id)
        return resolve(j, t, q->merchant, q->client_card_id);
    else
        verdict(ss, API_STATUS_OK, 0, NULL);
    return 0;
}

/* One transaction: the verdict, the session consumed when it is OK, the
 * audit entry. Two checks of one nonce run one after the other here, so
 * only the first can find it open. */
static int
check_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    const struct api_session_check_req *q = j->req->frame.msg;
    struct op_session_state *ss = &j->u.session;
    struct sale_session cur;
    int r;

    if ((r = check_decide(j, t, &cur)) != 0)
        return r;
    if (ss->status == API_STATUS_OK) {
        cur.state = OPS_SESSION_CONSUMED;
        if ((r = ops_session_save(t, q->nonce.data, &cur, 0)) != 0)
            return r;
        ss->detail = q->has_client_card_id ? "repeat_sale" : "sale";
    }
    return op_audit(j, t, ss->status, ss->nonce_hex, ss->detail);
}

static void
check_done(struct op_job *j, int result)
{
    const struct op_session_state *ss = &j->u.session;
    struct api_session_check_resp resp;

    if (result != 0) {
        fail_from_writer(j, result);
        return;
    }
    if (ss->status != API_STATUS_OK) {
        fail_verdict(j);
        return;
    }
    memset(&resp, 0, sizeof(resp));
    resp.has_token = ss->token[0] != '\0';
    memcpy(resp.token, ss->token, sizeof(resp.token));
    op_reply(j, &resp);
}

/* Worker: the session as stored now, its signature checked in the HSM
 * against the request's, and the e-mail fingerprinted for a repeat sale.
 * 0 or a negated status (the HSM or the store failed). */
static int
check_prepare(struct op_job *j, hsm_session *s)
{
    const struct api_session_check_req *q = j->req->frame.msg;
    struct op_session_state *ss = &j->u.session;
    struct store_txn t;
    struct api_writer w;
    hsm_key *key = NULL;
    uint64_t t0;
    int r;

    if ((r = store_read_begin(j->svc->store, &t)) != 0)
        return r;
    r = session_load(&t, q->nonce.data, q->nonce.len, q->merchant, &ss->sess);
    store_read_end(&t);
    if (r == -API_STATUS_NOT_FOUND) {
        ss->found = API_STATUS_NOT_FOUND;
        return 0;
    }
    if (r != 0)
        return r;
    /* Recomputed over the stored fields and compared inside the token: a
     * signature made for other data, another nonce or another merchant, or
     * altered in one bit, fails here. */
    api_writer_init(&w, MAC_INPUT_MAX);
    if (ops_session_mac_input(&w, q->nonce.data, &ss->sess) != 0) {
        api_writer_cleanup(&w);
        return -API_STATUS_INTERNAL;
    }
    /* The key the session names: an STK version, or vault-session-mac for
     * one stored before STKs. One the service does not hold (its KEK was
     * destroyed) can check nothing. */
    if ((key = keys_stk(&j->svc->keys, ss->sess.key_version)) == NULL) {
        api_writer_cleanup(&w);
        vlog_msg(VAULT_LOG_ERROR, "session_key_unavailable", "merchant", q->merchant);
        return -API_STATUS_INTERNAL;
    }
    t0 = metrics_now_ns();
    r = hsm_hmac_verify(s, key, api_writer_data(&w), api_writer_len(&w), q->signature.data,
                        q->signature.len);
    ops_time_hsm(j, METRICS_HSM_HMAC, t0);
    api_writer_cleanup(&w);
    if (r == HSM_ERR_VERIFY) {
        ss->found = API_STATUS_SIGNATURE_INVALID;
        return 0;
    }
    if (r != 0)
        return vault_hsm_status(r);
    ss->found = API_STATUS_OK;
    if (q->has_client_card_id && q->has_email)
        return email_fingerprint(j, s, q->merchant, q->client_card_id, q->email);
    return 0;
}

void
ops_session_check(struct op_job *j)
{
    const struct api_session_check_req *q = j->req->frame.msg;
    struct op_session_state *ss = &j->u.session;
    hsm_session *s;
    int r;

    /* The e-mail binds a clientCardId; without one it would be ignored,
     * which a gateway must not mistake for a check. */
    if (q->has_email && !q->has_client_card_id) {
        op_fail(j, API_STATUS_INVALID_ARGUMENT, API_TAG_EMAIL,
                "an e-mail is checked only with the clientCardId it was mapped with");
        return;
    }
    if (hex_encode(ss->nonce_hex, sizeof(ss->nonce_hex), q->nonce.data, q->nonce.len) != 0) {
        op_fail(j, API_STATUS_INTERNAL, 0, NULL);
        return;
    }
    SHA256(q->device_data.data, q->device_data.len, ss->device_hash);
    if ((s = op_session(j)) == NULL)
        return;
    r = check_prepare(j, s);
    hsm_session_release(s);
    if (r != 0) {
        op_fail(j, r, 0, NULL);
        return;
    }
    op_submit_write(j, check_apply, check_done);
}

/* ---- CARD_MAP ---------------------------------------------------------------------------- */

struct reverse_scan {
    uint8_t prefix[REVERSE_KEY_MAX];
    size_t prefix_len;
    size_t n;
    char ids[OPS_MAPPINGS_PER_TOKEN_MAX][API_ID_MAX + 1]; /* the clientCardIds found */
    bool full; /* more keys follow the ids collected */
};

/* Collects the clientCardIds of the reverse keys under the prefix. */
static int
collect_reverse(void *ctx, const MDB_val *key, const MDB_val *val)
{
    struct reverse_scan *sc = ctx;
    size_t id_len;

    (void)val;
    if (key->mv_size <= sc->prefix_len || memcmp(key->mv_data, sc->prefix, sc->prefix_len) != 0)
        return 1; /* past the token's keys */
    if (sc->n == OPS_MAPPINGS_PER_TOKEN_MAX) {
        sc->full = true;
        return 1;
    }
    id_len = key->mv_size - sc->prefix_len;
    if (id_len > API_ID_MAX)
        return -API_STATUS_INTERNAL;
    memcpy(sc->ids[sc->n], (const uint8_t *)key->mv_data + sc->prefix_len, id_len);
    sc->ids[sc->n][id_len] = '\0';
    sc->n++;
    return 0;
}

static int
reverse_collect(struct store_txn *t, const char *token, struct reverse_scan *sc)
{
    int r;

    sc->prefix_len = reverse_key(sc->prefix, token, NULL);
    sc->n = 0;
    sc->full = false;
    r = store_each(t, STORE_DB_MAPPINGS, sc->prefix, sc->prefix_len, collect_reverse, sc);
    return r < 0 ? r : 0;
}

static int
map_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    const struct api_card_map_req *q = j->req->frame.msg;
    struct op_session_state *ss = &j->u.session;
    struct card_mapping m, old;
    struct card_record rec;
    struct reverse_scan *sc = NULL;
    struct api_writer wr;
    uint8_t fk[FORWARD_KEY_MAX], rk[REVERSE_KEY_MAX];
    size_t fk_len = forward_key(fk, q->merchant, q->client_card_id);
    int r;

    r = ops_card_load(t, q->merchant, q->token, &rec);
    if (r == -API_STATUS_NOT_FOUND) {
        verdict(ss, API_STATUS_NOT_FOUND, API_TAG_TOKEN, OP_MSG_NOT_FOUND);
        goto audit;
    }
    if (r != 0)
        return r;
    /* A device PAN that is not on file is swept within the hour; a mapping
     * to it would outlive it. */
    if (rec.expires_at != 0) {
        verdict(ss, API_STATUS_INVALID_ARGUMENT, API_TAG_TOKEN,
                "a token that expires cannot be mapped; map a card kept on file");
        goto audit;
    }
    memset(&m, 0, sizeof(m));
    memcpy(m.token, q->token, sizeof(m.token));
    m.has_email = ss->has_email_fp;
    memcpy(m.email_fp, ss->email_fp, sizeof(m.email_fp));
    m.created_at = audit_now_ms() / 1000u;
    r = mapping_load(t, q->merchant, q->client_card_id, &old);
    if (r == 0) {
        /* Seed 002: changing the consumer's data needs a new card
         * reference. The same mapping again is a resent notification. */
        if (strcmp(old.token, m.token) == 0 && old.has_email == m.has_email &&
            CRYPTO_memcmp(old.email_fp, m.email_fp, sizeof(m.email_fp)) == 0) {
            verdict(ss, API_STATUS_OK, 0, NULL);
            ss->detail = "unchanged";
        } else {
            verdict(ss, API_STATUS_CONFLICT, API_TAG_CLIENT_CARD_ID,
                    "the clientCardId is mapped to another card or e-mail; use a new one");
        }
        goto audit;
    }
    if (r != -API_STATUS_NOT_FOUND)
        return r;
    if ((sc = calloc(1, sizeof(*sc))) == NULL)
        return -API_STATUS_INTERNAL;
    if ((r = reverse_collect(t, q->token, sc)) != 0)
        goto out;
    if (sc->n == OPS_MAPPINGS_PER_TOKEN_MAX) {
        verdict(ss, API_STATUS_INVALID_ARGUMENT, API_TAG_TOKEN,
                "the card is mapped from the most clientCardIds one card may have");
        goto audit;
    }
    api_writer_init(&wr, OPS_MAPPING_MAX);
    r = ops_mapping_encode(&wr, &m) == 0 ? 0 : -API_STATUS_INTERNAL;
    if (r == 0)
        r = store_put(t, STORE_DB_MAPPINGS, fk, fk_len, api_writer_data(&wr), api_writer_len(&wr),
                      STORE_PUT_NEW);
    api_writer_cleanup(&wr);
    if (r == 0)
        r = store_put(t, STORE_DB_MAPPINGS, rk, reverse_key(rk, q->token, q->client_card_id), "", 0,
                      0);
    if (r != 0)
        goto out;
    verdict(ss, API_STATUS_OK, 0, NULL);
    ss->detail = "mapped";
audit:
    r = op_audit(j, t, ss->status, q->token, ss->detail);
out:
    free(sc);
    return r;
}

static void
map_done(struct op_job *j, int result)
{
    struct api_empty empty = {0};

    if (result != 0)
        fail_from_writer(j, result);
    else if (j->u.session.status != API_STATUS_OK)
        fail_verdict(j);
    else
        op_reply(j, &empty);
}

void
ops_card_map(struct op_job *j)
{
    const struct api_card_map_req *q = j->req->frame.msg;
    hsm_session *s;
    int r = 0;

    if (q->has_email) {
        if ((s = op_session(j)) == NULL)
            return;
        r = email_fingerprint(j, s, q->merchant, q->client_card_id, q->email);
        hsm_session_release(s);
    }
    if (r != 0) {
        op_fail(j, r, 0, NULL);
        return;
    }
    op_submit_write(j, map_apply, map_done);
}

/* ---- MAP_RESOLVE ------------------------------------------------------------------------- */

/* Audited like every use of a mapping: who asked for which card. */
static int
resolve_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    const struct api_map_resolve_req *q = j->req->frame.msg;
    struct op_session_state *ss = &j->u.session;
    int r;

    if ((r = resolve(j, t, q->merchant, q->client_card_id)) != 0)
        return r;
    return op_audit(j, t, ss->status, ss->token[0] != '\0' ? ss->token : NULL, ss->detail);
}

static void
resolve_done(struct op_job *j, int result)
{
    const struct op_session_state *ss = &j->u.session;
    struct api_map_resolve_resp resp;

    if (result != 0) {
        fail_from_writer(j, result);
        return;
    }
    if (ss->status != API_STATUS_OK) {
        fail_verdict(j);
        return;
    }
    memset(&resp, 0, sizeof(resp));
    memcpy(resp.token, ss->token, sizeof(resp.token));
    op_reply(j, &resp);
}

void
ops_map_resolve(struct op_job *j)
{
    const struct api_map_resolve_req *q = j->req->frame.msg;
    hsm_session *s;
    int r = 0;

    if (q->has_email) {
        if ((s = op_session(j)) == NULL)
            return;
        r = email_fingerprint(j, s, q->merchant, q->client_card_id, q->email);
        hsm_session_release(s);
    }
    if (r != 0) {
        op_fail(j, r, 0, NULL);
        return;
    }
    op_submit_write(j, resolve_apply, resolve_done);
}

/* ---- hooks --------------------------------------------------------------------------------- */

int
ops_session_sweep(struct store_txn *t, const uint8_t *key, size_t key_len, uint64_t now_ms)
{
    struct sale_session s;
    MDB_val v;
    int r = store_get(t, STORE_DB_SESSIONS, key, key_len, &v);

    if (r == -API_STATUS_NOT_FOUND)
        return 0;
    if (r != 0)
        return r;
    if (ops_session_decode(&s, v.mv_data, v.mv_size) != 0 || s.expires_at * 1000u > now_ms)
        return 0;
    return store_del(t, STORE_DB_SESSIONS, key, key_len, NULL, 0);
}

int
ops_mappings_list(struct store_txn *t, struct api_card_mapping_item **out, size_t *out_num,
                  const char *merchant, const char *token)
{
    struct reverse_scan *sc = calloc(1, sizeof(*sc));
    struct api_card_mapping_item *items = NULL;
    struct card_mapping m;
    size_t n = 0;
    int r;

    *out = NULL;
    *out_num = 0;
    if (sc == NULL)
        return -API_STATUS_INTERNAL;
    if ((r = reverse_collect(t, token, sc)) != 0 || sc->n == 0)
        goto out;
    /* CARD_MAP keeps a token under the cap; more keys mean a broken index,
     * and the answer still fits the protocol's limit. */
    if (sc->full)
        vlog_msg(VAULT_LOG_ERROR, "mapping_index_over_cap", "merchant", merchant);
    if ((items = calloc(sc->n, sizeof(*items))) == NULL) {
        r = -API_STATUS_INTERNAL;
        goto out;
    }
    for (size_t i = 0; i < sc->n; i++) {
        r = mapping_load(t, merchant, sc->ids[i], &m);
        if (r == -API_STATUS_NOT_FOUND || (r == 0 && strcmp(m.token, token) != 0)) {
            r = 0;
            continue;
        }
        if (r != 0)
            goto out;
        memcpy(items[n].client_card_id, sc->ids[i], sizeof(items[n].client_card_id));
        items[n].email_bound = m.has_email;
        n++;
    }
out:
    if (r == 0 && n > 0) {
        *out = items;
        *out_num = n;
    } else {
        free(items);
    }
    free(sc);
    return r;
}

int
ops_mappings_delete_card(struct store_txn *t, const char *merchant, const char *token)
{
    struct reverse_scan *sc = calloc(1, sizeof(*sc));
    struct card_mapping m;
    uint8_t key[REVERSE_KEY_MAX > FORWARD_KEY_MAX ? REVERSE_KEY_MAX : FORWARD_KEY_MAX];
    int r;

    if (sc == NULL)
        return -API_STATUS_INTERNAL;
    /* CARD_MAP keeps a token under the cap, so one batch is all there is;
     * the loop only guards against an index that grew past it. */
    do {
        if ((r = reverse_collect(t, token, sc)) != 0)
            break;
        for (size_t i = 0; i < sc->n && r == 0; i++) {
            /* The forward entry only if it still points here. */
            r = mapping_load(t, merchant, sc->ids[i], &m);
            if (r == 0 && strcmp(m.token, token) == 0)
                r = store_del(t, STORE_DB_MAPPINGS, key, forward_key(key, merchant, sc->ids[i]),
                              NULL, 0);
            if (r == 0 || r == -API_STATUS_NOT_FOUND)
                r = store_del(t, STORE_DB_MAPPINGS, key, reverse_key(key, token, sc->ids[i]), NULL,
                              0);
            if (r == -API_STATUS_NOT_FOUND)
                r = 0;
        }
    } while (r == 0 && sc->full);
    free(sc);
    return r;
}
