/*
 * wallets.c - WALLET_DECRYPT (docs/PROTOCOL.md section 11): a wallet packet
 * verified and decrypted in the HSM (vault/wallets.h), the device PAN sealed
 * into a record of kind dpan that expires, and the cryptogram handed back
 * once and never stored.
 *
 * Worker: the packet is opened, the DPAN checked, fingerprinted (when it is
 * to be kept on file), given a token and sealed. Writer, in one transaction:
 * the replay check (wallet | transaction id seen before and still inside its
 * validity: REPLAYED), the replay entry, the record, the sweeper's index
 * entries, and the audit entry; only when that has committed does the answer
 * go out. A packet refused by any check is audited the same way, with the
 * check's status and no token.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vault/be64.h"
#include "vault/log.h"
#include "vault/ops/ops.h"
#include "vault/ops/sweep.h"

/* The replay key: u8 wallet | transaction id. */
#define REPLAY_KEY_MAX (1u + API_TRANSACTION_ID_MAX)

static size_t
replay_key(uint8_t out[REPLAY_KEY_MAX], uint8_t wallet, const char *txid)
{
    size_t n = strlen(txid);

    out[0] = wallet;
    /* A database key of bytes, its length known from the key's size: no NUL. */
    memcpy(out + 1, txid, n); /* NOLINT(bugprone-not-null-terminated-result) */
    return 1 + n;
}

/* The error tag a refusal names: the field the gateway must look at. */
static uint16_t
refusal_tag(const struct op_wallet_state *ws)
{
    switch (ws->status) {
    case API_STATUS_MISMATCH:
        return strncmp(ws->why, "currency", 8) == 0 ? API_TAG_CURRENCY : API_TAG_AMOUNT;
    case API_STATUS_CONSENT_REQUIRED:
        return API_TAG_CONSENT;
    default:
        return API_TAG_PACKET;
    }
}

/* The replay check and entry. 0, a negated store status, or 1 when the
 * transaction was seen before and is still inside its validity. */
static int
replay_claim(struct store_txn *t, const struct op_wallet_state *ws)
{
    uint8_t key[REPLAY_KEY_MAX], until[8];
    size_t klen = replay_key(key, ws->card.wallet, ws->card.transaction_id);
    MDB_val v;
    int r = store_get(t, STORE_DB_REPLAY, key, klen, &v);

    if (r == 0 && v.mv_size == 8 && vault_get_be64(v.mv_data) > ws->now_ms)
        return 1;
    if (r != 0 && r != -API_STATUS_NOT_FOUND)
        return r;
    /* New, or an entry the sweeper has not reached yet: claim it. */
    vault_put_be64(until, ws->card.valid_until_ms);
    if ((r = store_put(t, STORE_DB_REPLAY, key, klen, until, sizeof(until), 0)) != 0)
        return r;
    return ops_sweep_schedule(t, ws->card.valid_until_ms, SWEEP_REPLAY, key, klen);
}

static int
decrypt_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    const struct api_wallet_decrypt_req *q = j->req->frame.msg;
    struct op_wallet_state *ws = &j->wallet;
    struct op_card_state *c = &j->u.card;
    const char *token = NULL;
    char detail[AUDIT_DETAIL_MAX + 1];
    int r;

    if (ws->status == API_STATUS_OK) {
        if ((r = replay_claim(t, ws)) < 0)
            return r;
        if (r == 1) {
            ws->status = API_STATUS_REPLAYED;
            ws->err_name = "REPLAYED";
            snprintf(ws->why, sizeof(ws->why),
                     "this %s transaction was decrypted before",
                     api_enum_name(API_TAG_WALLET, ws->card.wallet));
        }
    }
    if (ws->status == API_STATUS_OK) {
        if (ws->file) {
            const struct card_filing f = {
                .merchant = q->merchant,
                .customer = q->customer_number,
                .exp_month = c->rec.exp_month,
                .exp_year = c->rec.exp_year,
            };

            if ((r = ops_card_file(j, t, &f)) != 0)
                return r;
            token = c->found_token;
        } else {
            if ((r = ops_card_put_new(j, t)) != 0 ||
                (r = ops_sweep_schedule(t, c->rec.expires_at * 1000u, SWEEP_DPAN, c->token,
                                        strlen(c->token))) != 0)
                return r;
            c->found = c->rec;
            token = c->token;
        }
    }
    /* "apple_pay EC_v1", "google_pay SIGNATURE": which wallet, and the
     * version opened or the check that refused it. */
    snprintf(detail, sizeof(detail), "%s %s", api_enum_name(API_TAG_WALLET, q->wallet),
             ws->status == API_STATUS_OK ? ws->card.version : ws->err_name);
    return op_audit(j, t, ws->status, token, detail);
}

static void
decrypt_done(struct op_job *j, int result)
{
    struct op_wallet_state *ws = &j->wallet;
    const struct op_card_state *c = &j->u.card;
    struct api_wallet_decrypt_resp resp;

    if (result != 0) {
        /* Nothing committed: no audit entry, so nothing of the card goes out. */
        op_fail(j, result, j->err_tag, j->err_message);
        return;
    }
    if (ws->status != API_STATUS_OK) {
        op_fail(j, (int)ws->status, refusal_tag(ws), ws->why[0] != '\0' ? ws->why : NULL);
        return;
    }
    memset(&resp, 0, sizeof(resp));
    snprintf(resp.token, sizeof(resp.token), "%s", ws->file ? c->found_token : c->token);
    resp.kind = c->found.kind;
    resp.wallet = ws->card.wallet;
    memcpy(resp.wallet_version, ws->card.version, sizeof(resp.wallet_version));
    memcpy(resp.bin, c->found.bin, sizeof(resp.bin));
    memcpy(resp.last4, c->found.last4, sizeof(resp.last4));
    resp.brand = c->found.brand;
    resp.exp_month = c->found.exp_month;
    resp.exp_year = c->found.exp_year;
    resp.has_cryptogram = ws->card.has_cryptogram;
    memcpy(resp.cryptogram, ws->card.cryptogram, sizeof(resp.cryptogram));
    resp.has_eci = ws->card.has_eci;
    memcpy(resp.eci, ws->card.eci, sizeof(resp.eci));
    resp.has_amount = ws->card.has_amount;
    resp.amount = ws->card.amount;
    resp.has_currency = ws->card.has_currency;
    memcpy(resp.currency, ws->card.currency, sizeof(resp.currency));
    resp.auth_method = ws->card.auth_method;
    memcpy(resp.transaction_id, ws->card.transaction_id, sizeof(resp.transaction_id));
    resp.expires_at = c->found.expires_at;
    wallet_card_wipe(&ws->card);
    op_reply(j, &resp);
    OPENSSL_cleanse(&resp, sizeof(resp));
}

/* The card the packet carried, checked and sealed into j->u.card for the
 * writer. 0, or a negated status with ws->why set. */
static int
vault_card(struct op_job *j, hsm_session *s, const struct api_wallet_decrypt_req *q)
{
    struct op_wallet_state *ws = &j->wallet;
    struct op_card_state *c = &j->u.card;
    struct card_record *rec = &c->rec;
    size_t pan_len = strlen(ws->card.pan);
    enum api_brand brand;
    int r;

    if (cardnum_check(ws->card.pan, &brand) != 0) {
        snprintf(ws->why, sizeof(ws->why), "the device PAN fails its length or Luhn check");
        return -API_STATUS_CARD_INVALID;
    }
    if (cardnum_expired(ws->card.exp_month, ws->card.exp_year, (time_t)(ws->now_ms / 1000u))) {
        snprintf(ws->why, sizeof(ws->why), "the device PAN's expiry is in the past");
        return -API_STATUS_CARD_EXPIRED;
    }
    ws->file = q->has_customer_number && ws->card.cof_allowed;
    rec->kind = API_CARD_KIND_DPAN;
    rec->flags = RECORD_F_ACTIVE | (ws->file ? RECORD_F_CONSENT : 0);
    /* A cryptogram means the wallet verified the cardholder on the device;
     * PAN_ONLY (a card Google holds on file) was verified by nobody here. */
    rec->verification = ws->card.auth_method == API_AUTH_CRYPTOGRAM_3DS ? API_VERIFICATION_DEVICE
                                                                         : API_VERIFICATION_NONE;
    rec->brand = (uint8_t)brand;
    rec->exp_month = ws->card.exp_month;
    rec->exp_year = ws->card.exp_year;
    rec->created_at = ws->now_ms / 1000u;
    /* Kept on file: lives as a card does. Otherwise good for the payment
     * it came with, and swept after dpan_lifetime_seconds. */
    rec->expires_at = ws->file ? 0 : rec->created_at + ws->dpan_lifetime_s;
    memcpy(rec->bin, ws->card.pan, cardnum_bin_len(pan_len));
    memcpy(rec->last4, ws->card.pan + pan_len - API_LAST4_LEN, API_LAST4_LEN);
    memcpy(rec->merchant, q->merchant, sizeof(rec->merchant));
    memcpy(c->sec.pan, ws->card.pan, sizeof(c->sec.pan));
    if (ws->card.has_holder)
        memcpy(c->sec.holder, ws->card.holder, sizeof(c->sec.holder));
    if (ws->file && (r = ops_card_fingerprints(j, s, q->merchant)) != 0)
        return r;
    if ((r = ops_card_token(j, s, ws->card.pan, c->token)) != 0 ||
        (r = ops_card_seal(j, s, c->token, rec, &c->sec)) != 0)
        return r;
    return 0;
}

void
ops_wallet_decrypt(struct op_job *j)
{
    const struct api_wallet_decrypt_req *q = j->req->frame.msg;
    struct op_wallet_state *ws = &j->wallet;
    struct vault_wallet_expect expect = {
        .has_amount = q->has_amount,
        .amount = q->amount,
        .has_currency = q->has_currency,
    };
    struct vault_wallets *engine;
    hsm_session *s;
    int r;

    /* Keeping a card on file needs the payer's consent, as STORE does;
     * refused before anything is opened. */
    if (q->has_customer_number && !(q->has_consent && q->consent)) {
        op_fail(j, API_STATUS_CONSENT_REQUIRED, API_TAG_CONSENT,
                "the payer's consent is required to keep a card on file");
        return;
    }
    memcpy(expect.currency, q->currency, sizeof(expect.currency));
    ws->now_ms = audit_now_ms();
    if ((s = op_session(j)) == NULL)
        return;
    engine = vault_service_wallets(j->svc);
    ws->dpan_lifetime_s = vault_wallets_dpan_lifetime(engine);
    r = vault_wallets_open(engine, s, q->merchant, q->wallet, (const char *)q->packet.data,
                           q->packet.len, ws->now_ms, &expect, &ws->card, ws->why,
                           sizeof(ws->why));
    vault_wallets_free(engine);
    if (r != WALLET_OK) {
        ws->status = wallet_status(r);
        ws->err_name = wallet_err_name(r);
        if (r == WALLET_ERR_HSM || r == WALLET_ERR_NO_ANCHOR || r == WALLET_ERR_NO_MEMORY)
            vlog_msg(VAULT_LOG_ERROR, "wallet_decrypt_failed", "reason", ws->why);
    } else if ((r = vault_card(j, s, q)) != 0) {
        ws->status = (unsigned)-r;
        ws->err_name = api_status_name((unsigned)-r);
    } else {
        ws->status = API_STATUS_OK;
    }
    hsm_session_release(s);
    if (ws->status != API_STATUS_OK)
        wallet_card_wipe(&ws->card);
    op_submit_write(j, decrypt_apply, decrypt_done);
}
