/*
 * qr.c - QR payment requests: QR_ISSUE, QR_REDEEM, QR_STATUS
 * (docs/PROTOCOL.md section 11; seeds 001 and 004). The token and record
 * formats are in qr.h.
 *
 * ISSUE: the worker draws the request id from the HSM RNG and has the HSM
 * make the tag; the writer, in one transaction, decides what the order index
 * allows (a new request, the same open request again, or CONFLICT), writes
 * the record, the index entry, the sweeper's entry and the audit entry.
 *
 * REDEEM: the worker parses the token (BAD_VALUE, nothing else happens),
 * reads the request and has the HSM verify the tag over what the record
 * says was issued (SIGNATURE_INVALID). The writer then decides on the store
 * as it is in its transaction: the merchant (NOT_FOUND), paid before
 * (REPLAYED), the expiry (EXPIRED), and marks the request paid. Every
 * outcome from the tag check on is audited in that transaction, so of many
 * concurrent redeems of one token exactly one finds it unpaid, and its
 * answer goes out only once "paid" is durable.
 *
 * STATUS reads the order index and the record on the worker.
 */
#include <openssl/crypto.h>
#include <string.h>

#include "vault/log.h"
#include "vault/ops/ops.h"
#include "vault/ops/sweep.h"

#define MSG_NOT_FOUND "no such QR payment request for this merchant"
#define MSG_BAD_TOKEN "the QR token is malformed"
#define MSG_SIGNATURE "the QR token was not issued by this vault"
#define MSG_EXPIRED "the QR payment request has expired"
#define MSG_REPLAYED "the QR payment request was already paid"

static uint64_t
now_s(void)
{
    return audit_now_ms() / 1000u;
}

/* The tag of request |id| as issued in |rec|, made in the HSM. */
static int
qr_tag(struct op_job *j, hsm_session *s, const uint8_t id[QR_REQUEST_ID_LEN],
       const struct qr_record *rec, uint8_t out[QR_TAG_LEN])
{
    hsm_key *key = keys_stk(&j->svc->keys, rec->key_version);
    uint8_t in[QR_MAC_INPUT_MAX];
    size_t len = 0;
    uint64_t t0;
    int r;

    if (key == NULL || qr_mac_input(in, &len, QR_TOKEN_VERSION, id, rec) != 0)
        return -API_STATUS_INTERNAL;
    t0 = metrics_now_ns();
    r = hsm_hmac_sign(s, key, in, len, out);
    ops_time_hsm(j, METRICS_HSM_HMAC, t0);
    return r == 0 ? 0 : vault_hsm_status(r);
}

int
ops_qr_load(struct store_txn *t, const uint8_t id[QR_REQUEST_ID_LEN], struct qr_record *out)
{
    uint8_t key[QR_RECORD_KEY_LEN];
    MDB_val v;
    int r;

    if ((r = store_get(t, STORE_DB_QR, key, qr_record_key(key, id), &v)) != 0)
        return r;
    if ((r = qr_record_decode(out, v.mv_data, v.mv_size)) != 0) {
        char idt[QR_REQUEST_ID_TEXT_LEN + 1];

        qr_request_id_text(idt, id);
        vlog_msg(VAULT_LOG_ERROR, "qr_record_malformed", "request", idt);
    }
    return r;
}

int
ops_qr_save(struct store_txn *t, const uint8_t id[QR_REQUEST_ID_LEN], const struct qr_record *rec,
            unsigned flags)
{
    uint8_t key[QR_RECORD_KEY_LEN];
    struct api_writer w;
    int r;

    api_writer_init(&w, QR_RECORD_MAX);
    if (qr_record_encode(&w, rec) != 0)
        r = -API_STATUS_INTERNAL;
    else
        r = store_put(t, STORE_DB_QR, key, qr_record_key(key, id), api_writer_data(&w),
                      api_writer_len(&w), flags);
    api_writer_cleanup(&w);
    return r;
}

/* The request id the order index holds for (merchant, order id): 0,
 * -API_STATUS_NOT_FOUND, or a store status (INTERNAL for a value that is no
 * request id). */
static int
qr_order_get(struct store_txn *t, const char *merchant, const char *order_id,
             uint8_t out[QR_REQUEST_ID_LEN])
{
    uint8_t key[QR_ORDER_KEY_MAX];
    MDB_val v;
    int r = store_get(t, STORE_DB_QR, key, qr_order_key(key, merchant, order_id), &v);

    if (r != 0)
        return r;
    if (v.mv_size != QR_REQUEST_ID_LEN) {
        vlog_msg(VAULT_LOG_ERROR, "qr_index_malformed", "merchant", merchant);
        return -API_STATUS_INTERNAL;
    }
    memcpy(out, v.mv_data, QR_REQUEST_ID_LEN);
    return 0;
}

/* A refusal the writer decided: kept in the job's state so the audit entry
 * commits and done answers it. */
static void
qr_refuse(struct op_qr_state *qs, unsigned status, uint16_t tag, const char *message,
          const char *detail)
{
    qs->status = status;
    qs->err_tag = tag;
    qs->err_message = message;
    qs->detail = detail;
}

static int
qr_audit(struct op_job *j, struct store_txn *t)
{
    struct op_qr_state *qs = &j->u.qr;
    char idt[QR_REQUEST_ID_TEXT_LEN + 1];

    qr_request_id_text(idt, qs->token.id);
    return op_audit(j, t, qs->status, idt, qs->detail);
}

/* ---- ISSUE --------------------------------------------------------------------- */

/* An open request for the order already: the same one again when the
 * amount and currency are the same (a gateway resending after a lost
 * answer gets the token it missed), else CONFLICT. Its tag is made again in
 * the HSM with the writer's session: tags are never stored, so reading the
 * store is never enough to make a token. */
static int
issue_existing(struct op_job *j, struct store_txn *t, const uint8_t id[QR_REQUEST_ID_LEN],
               const struct qr_record *old)
{
    struct op_qr_state *qs = &j->u.qr;
    int r;

    if (old->amount != qs->rec.amount || strcmp(old->currency, qs->rec.currency) != 0) {
        qr_refuse(qs, API_STATUS_CONFLICT, API_TAG_ORDER_ID,
                  "the order has an open QR payment request for another amount or currency",
                  "order_open");
        return 0;
    }
    if (t->hsm == NULL)
        return -API_STATUS_HSM_UNAVAILABLE;
    qs->rec = *old;
    qs->token.version = QR_TOKEN_VERSION;
    memcpy(qs->token.id, id, QR_REQUEST_ID_LEN);
    qs->token.expires_at = old->expires_at;
    if ((r = qr_tag(j, t->hsm, id, old, qs->token.tag)) != 0 ||
        (r = qr_token_encode(qs->text, &qs->token)) != 0)
        return r;
    qs->detail = "existing";
    return 0;
}

static int
issue_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    struct op_qr_state *qs = &j->u.qr;
    const struct qr_record *rec = &qs->rec;
    uint8_t old_id[QR_REQUEST_ID_LEN], key[QR_ORDER_KEY_MAX], rkey[QR_RECORD_KEY_LEN];
    struct qr_record old;
    size_t klen;
    int r;

    qs->status = API_STATUS_OK;
    qs->detail = "issued";
    r = qr_order_get(t, rec->merchant, rec->order_id, old_id);
    if (r == 0)
        r = ops_qr_load(t, old_id, &old);
    if (r == 0) {
        switch (qr_record_state(&old, now_s())) {
        case API_QR_PAID:
            /* Paid is final: the order is never offered for payment again. */
            memcpy(qs->token.id, old_id, QR_REQUEST_ID_LEN);
            qr_refuse(qs, API_STATUS_CONFLICT, API_TAG_ORDER_ID,
                      "the order was already paid by QR", "order_paid");
            return qr_audit(j, t);
        case API_QR_ISSUED:
            if ((r = issue_existing(j, t, old_id, &old)) != 0)
                return r;
            if (qs->status != API_STATUS_OK)
                memcpy(qs->token.id, old_id, QR_REQUEST_ID_LEN);
            return qr_audit(j, t);
        default:
            break; /* expired unpaid: a new request takes the order over */
        }
    } else if (r != -API_STATUS_NOT_FOUND) {
        return r;
    }
    /* 128 random bits never collide; a key that exists is a fault. */
    r = ops_qr_save(t, qs->token.id, rec, STORE_PUT_NEW);
    if (r == -API_STATUS_CONFLICT)
        r = -API_STATUS_INTERNAL;
    if (r != 0)
        return r;
    klen = qr_order_key(key, rec->merchant, rec->order_id);
    if ((r = store_put(t, STORE_DB_QR, key, klen, qs->token.id, QR_REQUEST_ID_LEN, 0)) != 0 ||
        (r = ops_sweep_schedule(t, (rec->expires_at + qs->retention_s) * 1000u, SWEEP_QR, rkey,
                                qr_record_key(rkey, qs->token.id))) != 0)
        return r;
    return qr_audit(j, t);
}

static void
issue_done(struct op_job *j, int result)
{
    struct op_qr_state *qs = &j->u.qr;
    struct api_qr_issue_resp resp;

    if (result != 0) {
        op_fail(j, result, j->err_tag, j->err_message);
        return;
    }
    if (qs->status != API_STATUS_OK) {
        op_fail(j, (int)qs->status, qs->err_tag, qs->err_message);
        return;
    }
    memset(&resp, 0, sizeof(resp));
    memcpy(resp.qr_token, qs->text, sizeof(qs->text));
    resp.expires_at = qs->token.expires_at;
    op_reply(j, &resp);
}

void
ops_qr_issue(struct op_job *j)
{
    const struct api_qr_issue_req *q = j->req->frame.msg;
    struct op_qr_state *qs = &j->u.qr;
    struct qr_record *rec = &qs->rec;
    hsm_session *s;
    uint64_t t0;
    int r;

    if (q->amount == 0) {
        op_fail(j, API_STATUS_INVALID_ARGUMENT, API_TAG_AMOUNT,
                "a QR payment request needs an amount above zero");
        return;
    }
    if (q->lifetime > j->qr_max_lifetime_s) {
        op_fail(j, API_STATUS_INVALID_ARGUMENT, API_TAG_LIFETIME,
                "the lifetime is longer than [qr] max_lifetime_seconds allows");
        return;
    }
    qs->retention_s = j->qr_retention_s;
    rec->state = API_QR_ISSUED;
    rec->key_version = keys_stk_current(&j->svc->keys);
    rec->created_at = now_s();
    rec->expires_at = rec->created_at + q->lifetime;
    rec->amount = q->amount;
    memcpy(rec->currency, q->currency, sizeof(rec->currency));
    memcpy(rec->merchant, q->merchant, sizeof(rec->merchant));
    memcpy(rec->order_id, q->order_id, sizeof(rec->order_id));
    qs->token.version = QR_TOKEN_VERSION;
    qs->token.expires_at = rec->expires_at;

    if ((s = op_session(j)) == NULL)
        return;
    t0 = metrics_now_ns();
    r = hsm_random(s, qs->token.id, sizeof(qs->token.id));
    ops_time_hsm(j, METRICS_HSM_RANDOM, t0);
    r = r == 0 ? 0 : vault_hsm_status(r);
    if (r == 0)
        r = qr_tag(j, s, qs->token.id, rec, qs->token.tag);
    hsm_session_release(s);
    if (r == 0)
        r = qr_token_encode(qs->text, &qs->token);
    if (r != 0) {
        op_fail(j, r, 0, NULL);
        return;
    }
    op_submit_write(j, issue_apply, issue_done);
}

/* ---- REDEEM ---------------------------------------------------------------------- */

static int
redeem_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    const struct api_qr_redeem_req *q = j->req->frame.msg;
    struct op_qr_state *qs = &j->u.qr;
    uint64_t now = now_s();
    int r;

    if (qs->status != API_STATUS_OK)
        return qr_audit(j, t); /* the tag did not verify: only recorded */
    r = ops_qr_load(t, qs->token.id, &qs->rec);
    if (r == -API_STATUS_NOT_FOUND) {
        /* Authentic a moment ago and gone now: the sweeper removed it,
         * which it does only after the request expired. */
        qr_refuse(qs, API_STATUS_EXPIRED, API_TAG_QR_TOKEN, MSG_EXPIRED, "expired");
        return qr_audit(j, t);
    }
    if (r != 0)
        return r;
    /* Another merchant's request is NOT_FOUND: the answer does not tell it
     * exists, nor whether it was paid or has expired. */
    if (strcmp(qs->rec.merchant, q->merchant) != 0)
        qr_refuse(qs, API_STATUS_NOT_FOUND, API_TAG_QR_TOKEN, MSG_NOT_FOUND, "merchant");
    else if (qs->rec.state == API_QR_PAID)
        qr_refuse(qs, API_STATUS_REPLAYED, API_TAG_QR_TOKEN, MSG_REPLAYED, "replayed");
    else if (now >= qs->rec.expires_at)
        qr_refuse(qs, API_STATUS_EXPIRED, API_TAG_QR_TOKEN, MSG_EXPIRED, "expired");
    if (qs->status != API_STATUS_OK)
        return qr_audit(j, t);
    qs->rec.state = API_QR_PAID;
    qs->rec.paid_at = now;
    memcpy(qs->rec.payer_ref, q->payer_ref, sizeof(qs->rec.payer_ref));
    qs->detail = "paid";
    if ((r = ops_qr_save(t, qs->token.id, &qs->rec, 0)) != 0)
        return r;
    return qr_audit(j, t);
}

static void
redeem_done(struct op_job *j, int result)
{
    struct op_qr_state *qs = &j->u.qr;
    struct api_qr_redeem_resp resp;

    if (result != 0) {
        /* Nothing committed: the request is not paid. */
        op_fail(j, result, j->err_tag, j->err_message);
        return;
    }
    if (qs->status != API_STATUS_OK) {
        op_fail(j, (int)qs->status, qs->err_tag, qs->err_message);
        return;
    }
    memset(&resp, 0, sizeof(resp));
    memcpy(resp.order_id, qs->rec.order_id, sizeof(resp.order_id));
    resp.amount = qs->rec.amount;
    memcpy(resp.currency, qs->rec.currency, sizeof(resp.currency));
    resp.paid_at = qs->rec.paid_at;
    op_reply(j, &resp);
}

/* The request the token names, read for the tag check. 0 with qs->rec;
 * 0 with qs->status SIGNATURE_INVALID when the vault holds no such request
 * (it cannot be authenticated: never issued, i.e. a forged or altered
 * request id, or swept long after it expired), or when the token's expiry
 * is not the record's; else a negated status. */
static int
redeem_lookup(struct op_job *j, struct op_qr_state *qs)
{
    struct store_txn t;
    int r;

    if ((r = store_read_begin(j->svc->store, &t)) != 0)
        return r;
    r = ops_qr_load(&t, qs->token.id, &qs->rec);
    store_read_end(&t);
    if (r == -API_STATUS_NOT_FOUND || (r == 0 && qs->rec.expires_at != qs->token.expires_at)) {
        qr_refuse(qs, API_STATUS_SIGNATURE_INVALID, API_TAG_QR_TOKEN, MSG_SIGNATURE, "signature");
        return 0;
    }
    return r;
}

/* The tag check, in the HSM (which compares in constant time), over what
 * the vault issued: the record's merchant, order id, amount and currency,
 * and the token's expiry (the record's, by redeem_lookup). A tag that does
 * not verify sets qs->status SIGNATURE_INVALID and is 0; else 0 or a
 * negated status when the check could not run. */
static int
redeem_verify(struct op_job *j, hsm_session *s, struct op_qr_state *qs)
{
    /* The key the record names: an STK version, or vault-session-mac for a
     * request stored before STKs. */
    hsm_key *key = keys_stk(&j->svc->keys, qs->rec.key_version);
    uint8_t in[QR_MAC_INPUT_MAX];
    size_t len = 0;
    uint64_t t0;
    int r;

    if (key == NULL) {
        vlog_msg(VAULT_LOG_ERROR, "qr_key_unavailable", "merchant", qs->rec.merchant);
        return -API_STATUS_INTERNAL;
    }
    if (qr_mac_input(in, &len, qs->token.version, qs->token.id, &qs->rec) != 0)
        return -API_STATUS_INTERNAL;
    t0 = metrics_now_ns();
    r = hsm_hmac_verify(s, key, in, len, qs->token.tag, sizeof(qs->token.tag));
    ops_time_hsm(j, METRICS_HSM_HMAC, t0);
    if (r == HSM_ERR_VERIFY) {
        qr_refuse(qs, API_STATUS_SIGNATURE_INVALID, API_TAG_QR_TOKEN, MSG_SIGNATURE, "signature");
        return 0;
    }
    return r == 0 ? 0 : vault_hsm_status(r);
}

void
ops_qr_redeem(struct op_job *j)
{
    const struct api_qr_redeem_req *q = j->req->frame.msg;
    struct op_qr_state *qs = &j->u.qr;
    hsm_session *s;
    int r;

    /* Malformed is a caller's bug, not an attempt on a request: answered at
     * once, nothing read, nothing written. */
    if (qr_token_parse(&qs->token, q->qr_token, strlen(q->qr_token)) != 0) {
        op_fail(j, API_STATUS_BAD_VALUE, API_TAG_QR_TOKEN, MSG_BAD_TOKEN);
        return;
    }
    qs->status = API_STATUS_OK;
    r = redeem_lookup(j, qs);
    if (r == 0 && qs->status == API_STATUS_OK) {
        if ((s = op_session(j)) == NULL)
            return;
        r = redeem_verify(j, s, qs);
        hsm_session_release(s);
    }
    if (r != 0) {
        op_fail(j, r, 0, NULL);
        return;
    }
    op_submit_write(j, redeem_apply, redeem_done);
}

/* ---- STATUS ---------------------------------------------------------------------- */

void
ops_qr_status(struct op_job *j)
{
    const struct api_qr_status_req *q = j->req->frame.msg;
    uint8_t id[QR_REQUEST_ID_LEN];
    struct api_qr_info info;
    struct qr_record rec;
    struct store_txn t;
    int r;

    if ((r = store_read_begin(j->svc->store, &t)) != 0) {
        op_fail(j, r, 0, NULL);
        return;
    }
    r = qr_order_get(&t, q->merchant, q->order_id, id);
    if (r == 0)
        r = ops_qr_load(&t, id, &rec);
    store_read_end(&t);
    /* The index is per merchant, so this only guards against a damaged one. */
    if (r == 0 && strcmp(rec.merchant, q->merchant) != 0)
        r = -API_STATUS_INTERNAL;
    if (r != 0) {
        op_fail(j, r, r == -API_STATUS_NOT_FOUND ? API_TAG_ORDER_ID : 0,
                r == -API_STATUS_NOT_FOUND ? MSG_NOT_FOUND : NULL);
        return;
    }
    memset(&info, 0, sizeof(info));
    memcpy(info.order_id, rec.order_id, sizeof(info.order_id));
    info.amount = rec.amount;
    memcpy(info.currency, rec.currency, sizeof(info.currency));
    info.state = qr_record_state(&rec, now_s());
    info.expires_at = rec.expires_at;
    info.has_paid_at = rec.state == API_QR_PAID;
    info.paid_at = rec.paid_at;
    info.has_payer_ref = rec.state == API_QR_PAID;
    memcpy(info.payer_ref, rec.payer_ref, sizeof(info.payer_ref));
    op_reply(j, &info);
}

/* ---- the sweeper ----------------------------------------------------------------- */

int
ops_qr_sweep(struct store_txn *t, const uint8_t *key, size_t len, uint64_t now_ms)
{
    uint8_t id[QR_REQUEST_ID_LEN], cur[QR_REQUEST_ID_LEN], okey[QR_ORDER_KEY_MAX];
    struct qr_record rec;
    int r;

    if (len != QR_RECORD_KEY_LEN || key[0] != QR_KEY_RECORD)
        return 0; /* never scheduled by qr.c */
    memcpy(id, key + 1, QR_REQUEST_ID_LEN);
    r = ops_qr_load(t, id, &rec);
    if (r == -API_STATUS_NOT_FOUND || r == -API_STATUS_INTERNAL)
        return 0; /* gone, or damaged: left for an operator (logged) */
    if (r != 0)
        return r;
    if (rec.expires_at * 1000u > now_ms)
        return 0;
    /* The order index names this request only until a newer one took the
     * order over; then it stays for the newer one. */
    r = qr_order_get(t, rec.merchant, rec.order_id, cur);
    if (r == 0 && CRYPTO_memcmp(cur, id, QR_REQUEST_ID_LEN) == 0)
        r = store_del(t, STORE_DB_QR, okey, qr_order_key(okey, rec.merchant, rec.order_id), NULL, 0);
    if (r != 0 && r != -API_STATUS_NOT_FOUND && r != -API_STATUS_INTERNAL)
        return r;
    return store_del(t, STORE_DB_QR, key, len, NULL, 0);
}
