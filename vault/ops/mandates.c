/*
 * mandates.c - stored credentials (seed 003): MANDATE_CREATE, MANDATE_GET,
 * MANDATE_CANCEL, CIT_AUTHORIZE and MIT_AUTHORIZE (docs/PROTOCOL.md
 * section 11).
 *
 * As in cards.c, the worker does the HSM work: a mandate id or an approval
 * id from the HSM RNG and, for a caller that also holds the reveal role, the
 * card's PAN opened. Every decision that depends on what the store holds
 * (is the card this merchant's and this customer's, is it active, is the
 * mandate active, is the charge inside its rules) is made in the writer's
 * apply, in the transaction that records an approved charge and the audit
 * entry. Refusals are audited there too (apply returns 0 and done sends the
 * refusal). Two charges on one mandate are thus decided one after the other,
 * each on the state the other left: within one period exactly one passes.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vault/log.h"
#include "vault/ops/ops.h"

/* Active mandates one card may carry: a bound on what a CREATE or a DELETE
 * scans, and more than any subscription model needs. */
#define MANDATES_ACTIVE_MAX 16u

/* Audit details (docs/AUDIT.md: a short word): whether an approved CIT or
 * MIT handed the PAN out, which rule refused a charge, or the mandate id. */
#define DETAIL_APPROVED "approved"
#define DETAIL_PAN "approved_pan"

#define MSG_NO_MANDATE "no such mandate for this card"

static bool
caller_reveals(const struct op_job *j)
{
    return (j->roles & (1u << API_ROLE_REVEAL)) != 0;
}

static int
mandate_load(struct store_txn *t, const char *merchant, const char *token, const char *id,
             struct mandate_record *out)
{
    uint8_t key[MANDATE_KEY_MAX];
    MDB_val v;
    int r;

    if ((r = store_get(t, STORE_DB_MANDATES, key, mandate_key(key, token, id), &v)) != 0)
        return r;
    if ((r = mandate_decode(out, v.mv_data, v.mv_size)) != 0) {
        vlog_msg(VAULT_LOG_ERROR, "mandate_malformed", "token", token);
        return r;
    }
    /* The card was this merchant's: its mandates can be no one else's. */
    if (strcmp(out->merchant, merchant) != 0) {
        vlog_msg(VAULT_LOG_ERROR, "mandate_inconsistent", "token", token);
        return -API_STATUS_INTERNAL;
    }
    return 0;
}

static int
mandate_save(struct store_txn *t, const char *token, const char *id,
             const struct mandate_record *m, unsigned flags)
{
    uint8_t key[MANDATE_KEY_MAX];
    struct api_writer w;
    int r;

    api_writer_init(&w, MANDATE_MAX);
    r = mandate_encode(&w, m);
    if (r == 0)
        r = store_put(t, STORE_DB_MANDATES, key, mandate_key(key, token, id), api_writer_data(&w),
                      api_writer_len(&w), flags);
    else
        r = -API_STATUS_INTERNAL;
    api_writer_cleanup(&w);
    return r;
}

/* 26 characters of base32 over 128 bits of the HSM RNG: a mandate id or an
 * approval id (the opaque token shape, vault/cardnum.h). */
static int
random_id(struct op_job *j, hsm_session *s, char out[API_ID_MAX + 1])
{
    uint8_t rnd[CARDNUM_OPAQUE_RANDOM_LEN];
    uint64_t t0 = metrics_now_ns();
    int e = hsm_random(s, rnd, sizeof(rnd));

    metrics_hsm_call(j->svc->metrics, METRICS_HSM_RANDOM, metrics_now_ns() - t0);
    if (e != 0)
        return vault_hsm_status(e);
    e = cardnum_token_opaque(out, API_ID_MAX + 1, rnd);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return e;
}

/* Opens the card's secrets into the job (a reveal caller's CIT or MIT). A
 * record that does not open was altered or moved: logged, never what it
 * holds (as cards.c). */
static int
open_card(struct op_job *j, hsm_session *s, const char *token, const struct card_record *rec)
{
    struct op_mandate_state *ms = &j->u.mandate;
    hsm_key *dek = keys_dek(&j->svc->keys, rec->dek_version);
    uint64_t t0 = metrics_now_ns();
    struct vlog_line l;
    int r;

    if (dek == NULL) {
        r = -API_STATUS_INTERNAL;
    } else {
        r = record_open(s, dek, token, rec, &ms->sec);
        metrics_hsm_call(j->svc->metrics, METRICS_HSM_GCM_DECRYPT, metrics_now_ns() - t0);
    }
    if (r == -API_STATUS_INTERNAL && vlog_begin(&l, VAULT_LOG_ERROR, "record_does_not_open")) {
        vlog_str(&l, "merchant", rec->merchant);
        vlog_str(&l, "token", token);
        vlog_u64(&l, "dek_version", rec->dek_version);
        vlog_end(&l);
    }
    if (r == 0) {
        ms->have_sec = true;
        memcpy(ms->sec_fp, rec->fingerprint, sizeof(ms->sec_fp));
        ms->sec_created = rec->created_at;
    }
    return r;
}

/* The worker's part of a CIT or MIT: the approval id and, for a reveal
 * caller, the PAN of the card as the store holds it now (the writer checks
 * that it is still that card). A card not found here is left to the writer,
 * which decides and audits NOT_FOUND. 0, or the job is failed. */
static int
prepare_charge(struct op_job *j, const char *merchant, const char *token)
{
    struct op_mandate_state *ms = &j->u.mandate;
    struct card_record rec;
    struct store_txn t;
    hsm_session *s;
    int r, found = -API_STATUS_NOT_FOUND;

    if (caller_reveals(j)) {
        if ((r = store_read_begin(j->svc->store, &t)) != 0) {
            op_fail(j, r, 0, NULL);
            return -1;
        }
        found = ops_card_load(&t, merchant, token, &rec);
        store_read_end(&t);
        if (found != 0 && found != -API_STATUS_NOT_FOUND) {
            op_fail(j, found, 0, NULL);
            return -1;
        }
    }
    if ((s = op_session(j)) == NULL)
        return -1;
    r = random_id(j, s, ms->approval);
    if (r == 0 && found == 0)
        r = open_card(j, s, token, &rec);
    hsm_session_release(s);
    if (r != 0) {
        record_secret_wipe(&ms->sec);
        op_fail(j, r, 0, NULL);
        return -1;
    }
    return 0;
}

/* In the writer, once a charge is approved for a reveal caller: the PAN the
 * worker opened is used only if it is the card's that the writer decided on
 * (same fingerprint and creation time); otherwise (the card was stored after
 * the worker looked, or replaced under a reused PAN-shaped token) it is
 * opened again with the writer's session. */
static int
charge_secret(struct op_job *j, struct store_txn *t, const char *token, const struct card_record *rec)
{
    struct op_mandate_state *ms = &j->u.mandate;

    if (!caller_reveals(j))
        return 0;
    if (ms->have_sec && ms->sec_created == rec->created_at &&
        CRYPTO_memcmp(ms->sec_fp, rec->fingerprint, sizeof(ms->sec_fp)) == 0)
        return 0;
    record_secret_wipe(&ms->sec);
    ms->have_sec = false;
    if (t->hsm == NULL)
        return -API_STATUS_HSM_UNAVAILABLE;
    return open_card(j, t->hsm, token, rec);
}

/* The writer's decision, for done to send (apply returns 0 and the audit
 * entry records it). */
static void
decide(struct op_job *j, unsigned status, uint16_t tag, const char *rule, const char *message)
{
    j->u.mandate.status = status;
    j->u.mandate.rule = rule;
    j->err_tag = tag;
    j->err_message = message;
}

/* The card checks every operation here shares, in order: this merchant's
 * card (NOT_FOUND), then, when |customer| is given, that customer's
 * (NOT_FOUND too: the answer does not tell a token of another customer from
 * one that does not exist). 0 with ms->card loaded, 1 when a refusal was
 * decided, or a negated status for a store fault. */
static int
check_card(struct op_job *j, struct store_txn *t, const char *merchant, const char *token,
           const char *customer)
{
    struct op_mandate_state *ms = &j->u.mandate;
    int r = ops_card_load(t, merchant, token, &ms->card);

    if (r == 0 && customer != NULL)
        r = ops_customer_holds(t, merchant, customer, token);
    if (r == -API_STATUS_NOT_FOUND) {
        decide(j, API_STATUS_NOT_FOUND, API_TAG_TOKEN, NULL, OP_MSG_NOT_FOUND);
        return 1;
    }
    return r;
}

/* Active, not expired: a stored credential that can be charged. 0, or 1
 * with the refusal decided. */
static int
check_card_usable(struct op_job *j, time_t now)
{
    const struct card_record *c = &j->u.mandate.card;

    if ((c->flags & RECORD_F_ACTIVE) == 0) {
        decide(j, API_STATUS_INACTIVE, API_TAG_TOKEN, NULL, "the card is not active");
        return 1;
    }
    if (cardnum_expired(c->exp_month, c->exp_year, now)) {
        decide(j, API_STATUS_CARD_EXPIRED, API_TAG_TOKEN, NULL, "the card has expired");
        return 1;
    }
    return 0;
}

/* done for every operation here: a writer failure (the audit entry or the
 * commit) or the decided refusal is answered, and no card data leaves.
 * Returns true when it answered. */
static bool
answer_refusal(struct op_job *j, int result)
{
    struct op_mandate_state *ms = &j->u.mandate;

    if (result != 0) {
        record_secret_wipe(&ms->sec);
        op_fail(j, result, 0, NULL);
        return true;
    }
    if (ms->status == API_STATUS_OK)
        return false;
    record_secret_wipe(&ms->sec);
    if (ms->rule != NULL)
        op_fail_rule(j, (int)ms->status, j->err_tag, ms->rule, j->err_message);
    else
        op_fail(j, (int)ms->status, j->err_tag, j->err_message);
    return true;
}

static void
fill_info(struct api_mandate_info *out, const char *token, const char *id,
          const struct mandate_record *m, int32_t today)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->mandate_id, sizeof(out->mandate_id), "%s", id);
    snprintf(out->token, sizeof(out->token), "%s", token);
    out->kind = m->kind;
    out->status = (uint8_t)mandate_status_on(m, today);
    out->has_min_amount = m->kind == API_MANDATE_KIND_RECURRING;
    out->min_amount = m->min_amount;
    out->max_amount = m->max_amount;
    memcpy(out->currency, m->currency, sizeof(out->currency));
    out->has_recurring_count = m->kind == API_MANDATE_KIND_RECURRING;
    out->recurring_count = m->recurring_count;
    out->recurring_max_date = m->max_date;
    out->has_last_charge_date = m->has_last_charge;
    out->last_charge_date = m->last_charge;
    out->charge_count = m->charge_count;
    out->has_cancelled_by = m->status == API_MANDATE_CANCELLED;
    out->cancelled_by = m->cancelled_by;
    out->created_at = m->created_at;
}

static void
info_done(struct op_job *j, int result)
{
    struct op_mandate_state *ms = &j->u.mandate;
    struct api_mandate_info info;

    if (answer_refusal(j, result))
        return;
    fill_info(&info, ms->token, ms->id, &ms->m, mandate_day_of(time(NULL)));
    op_reply(j, &info);
}

/* ---- a card's mandates ------------------------------------------------------------ */

struct card_mandates {
    uint8_t prefix[API_ID_MAX + 1]; /* token 0x00 */
    size_t prefix_len;
    int32_t today;
    size_t active;
    uint8_t (*keys)[MANDATE_KEY_MAX]; /* collected for a delete, else NULL */
    size_t *key_lens;
    size_t n, cap;
    bool collect;
};

/* The scan stops at the first key past the token's: store_each runs on in
 * key order, and the prefix ends in 0x00, which no token contains. */
#define SCAN_STOP 1

static int
visit_mandate(void *arg, const MDB_val *k, const MDB_val *v)
{
    struct card_mandates *c = arg;
    struct mandate_record m;

    if (k->mv_size < c->prefix_len || memcmp(k->mv_data, c->prefix, c->prefix_len) != 0)
        return SCAN_STOP;
    if (k->mv_size > MANDATE_KEY_MAX || mandate_decode(&m, v->mv_data, v->mv_size) != 0)
        return -API_STATUS_INTERNAL;
    c->active += mandate_status_on(&m, c->today) == API_MANDATE_ACTIVE;
    if (!c->collect)
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        void *p = realloc(c->keys, cap * sizeof(*c->keys)), *q;

        if (p == NULL)
            return -API_STATUS_INTERNAL;
        c->keys = p;
        if ((q = realloc(c->key_lens, cap * sizeof(*c->key_lens))) == NULL)
            return -API_STATUS_INTERNAL;
        c->key_lens = q;
        c->cap = cap;
    }
    memcpy(c->keys[c->n], k->mv_data, k->mv_size);
    c->key_lens[c->n++] = k->mv_size;
    return 0;
}

/* Scans the mandates of |token| (keys collected when |collect|). */
static int
scan_mandates(struct store_txn *t, const char *token, bool collect, struct card_mandates *out)
{
    /* Every caller passes the token array of a request. The analyzer reads
     * check_card's "customer != NULL", on a member of that same request, as
     * a test of the request pointer, and so takes the token to be NULL. */
    size_t tlen = strlen(token); /* NOLINT(clang-analyzer-core.NonNullParamChecker) */
    int r;

    memset(out, 0, sizeof(*out));
    memcpy(out->prefix, token, tlen);
    out->prefix[tlen] = 0;
    out->prefix_len = tlen + 1;
    out->today = mandate_day_of(time(NULL));
    out->collect = collect;
    r = store_each(t, STORE_DB_MANDATES, out->prefix, out->prefix_len, visit_mandate, out);
    if (r == -API_STATUS_INTERNAL)
        vlog_msg(VAULT_LOG_ERROR, "mandate_malformed", "token", token);
    return r == SCAN_STOP ? 0 : r;
}

static void
scan_free(struct card_mandates *c)
{
    free(c->keys);
    free(c->key_lens);
    c->keys = NULL;
    c->key_lens = NULL;
}

int
ops_mandates_card_delete(struct op_job *j, struct store_txn *t, const char *token)
{
    struct card_mandates c;
    int r;

    if ((r = scan_mandates(t, token, true, &c)) == 0 && c.active > 0) {
        j->err_tag = API_TAG_TOKEN;
        j->err_message = "the card has an active mandate; cancel it first";
        r = -API_STATUS_CONFLICT;
    }
    for (size_t i = 0; r == 0 && i < c.n; i++)
        r = store_del(t, STORE_DB_MANDATES, c.keys[i], c.key_lens[i], NULL, 0);
    scan_free(&c);
    return r;
}

/* ---- MANDATE_CREATE -------------------------------------------------------------- */

static int
create_decide(struct op_job *j, struct store_txn *t, const struct api_mandate_create_req *q)
{
    struct op_mandate_state *ms = &j->u.mandate;
    struct card_mandates c;
    int r;

    if ((r = check_card(j, t, q->merchant, q->token, q->customer_number)) != 0)
        return r > 0 ? 0 : r;
    /* seed 003: subsequent operations need the payer's consent to keep the card */
    if ((ms->card.flags & RECORD_F_CONSENT) == 0) {
        decide(j, API_STATUS_CONSENT_REQUIRED, API_TAG_TOKEN, NULL,
               "the card was saved without the payer's consent");
        return 0;
    }
    if (check_card_usable(j, time(NULL)) != 0)
        return 0;
    if ((r = scan_mandates(t, q->token, false, &c)) != 0)
        return r;
    if (c.active >= MANDATES_ACTIVE_MAX) {
        decide(j, API_STATUS_INVALID_ARGUMENT, API_TAG_TOKEN, NULL,
               "the card already carries the most active mandates allowed");
        return 0;
    }
    /* 128 random bits cannot collide in practice; if they do, INTERNAL. */
    r = mandate_save(t, q->token, ms->id, &ms->m, STORE_PUT_NEW);
    if (r == -API_STATUS_CONFLICT)
        r = -API_STATUS_INTERNAL;
    if (r != 0)
        return r;
    decide(j, API_STATUS_OK, 0, NULL, NULL);
    return 0;
}

static int
create_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    const struct api_mandate_create_req *q = j->req->frame.msg;
    struct op_mandate_state *ms = &j->u.mandate;
    int r;

    if ((r = create_decide(j, t, q)) != 0)
        return r;
    return op_audit(j, t, ms->status, q->token, ms->status == API_STATUS_OK ? ms->id : NULL);
}

/* The checks on the request alone, in the order docs/PROTOCOL.md gives. */
static int
create_check(struct op_job *j, const struct api_mandate_create_req *q)
{
    bool recurring = q->kind == API_MANDATE_KIND_RECURRING;
    int32_t end = 0;

    if (recurring && !q->has_min_amount) {
        op_fail(j, API_STATUS_INVALID_ARGUMENT, API_TAG_MIN_AMOUNT,
                "a recurring mandate needs RecurringMinAmount");
        return -1;
    }
    if (recurring && !q->has_recurring_count) {
        op_fail(j, API_STATUS_INVALID_ARGUMENT, API_TAG_RECURRING_COUNT,
                "a recurring mandate needs RecurringCount");
        return -1;
    }
    if (!recurring && q->has_min_amount) {
        op_fail(j, API_STATUS_INVALID_ARGUMENT, API_TAG_MIN_AMOUNT,
                "an unscheduled mandate has no RecurringMinAmount");
        return -1;
    }
    if (!recurring && q->has_recurring_count) {
        op_fail(j, API_STATUS_INVALID_ARGUMENT, API_TAG_RECURRING_COUNT,
                "an unscheduled mandate has no RecurringCount");
        return -1;
    }
    if (q->max_amount == 0) {
        op_fail(j, API_STATUS_INVALID_ARGUMENT, API_TAG_MAX_AMOUNT,
                "RecurringMaxAmount must be above zero");
        return -1;
    }
    if (recurring && q->min_amount > q->max_amount) {
        op_fail(j, API_STATUS_INVALID_ARGUMENT, API_TAG_MIN_AMOUNT,
                "RecurringMinAmount is above RecurringMaxAmount");
        return -1;
    }
    if (mandate_date_days(&q->recurring_max_date, &end) != 0 ||
        end < mandate_day_of(time(NULL))) {
        op_fail(j, API_STATUS_INVALID_ARGUMENT, API_TAG_RECURRING_MAX_DATE,
                "RecurringMaxDate is in the past");
        return -1;
    }
    return 0;
}

void
ops_mandate_create(struct op_job *j)
{
    const struct api_mandate_create_req *q = j->req->frame.msg;
    struct op_mandate_state *ms = &j->u.mandate;
    struct mandate_record *m = &ms->m;
    hsm_session *s;
    int r;

    if (create_check(j, q) != 0)
        return;
    m->kind = q->kind;
    m->status = API_MANDATE_ACTIVE;
    m->min_amount = q->has_min_amount ? q->min_amount : 0;
    m->max_amount = q->max_amount;
    memcpy(m->currency, q->currency, sizeof(m->currency));
    m->recurring_count = q->has_recurring_count ? q->recurring_count : 0;
    m->max_date = q->recurring_max_date;
    m->created_at = (uint64_t)time(NULL);
    memcpy(m->merchant, q->merchant, sizeof(m->merchant));
    memcpy(m->customer, q->customer_number, sizeof(m->customer));
    memcpy(ms->token, q->token, sizeof(ms->token));
    if ((s = op_session(j)) == NULL)
        return;
    r = random_id(j, s, ms->id);
    hsm_session_release(s);
    if (r != 0) {
        op_fail(j, r, 0, NULL);
        return;
    }
    op_submit_write(j, create_apply, info_done);
}

/* ---- MANDATE_GET ------------------------------------------------------------------- */

void
ops_mandate_get(struct op_job *j)
{
    const struct api_mandate_ref *q = j->req->frame.msg;
    struct op_mandate_state *ms = &j->u.mandate;
    struct api_mandate_info info;
    struct store_txn t;
    uint16_t tag = API_TAG_TOKEN;
    int r;

    if ((r = store_read_begin(j->svc->store, &t)) != 0) {
        op_fail(j, r, 0, NULL);
        return;
    }
    r = ops_card_load(&t, q->merchant, q->token, &ms->card);
    if (r == 0) {
        tag = API_TAG_MANDATE_ID;
        r = mandate_load(&t, q->merchant, q->token, q->mandate_id, &ms->m);
    }
    store_read_end(&t);
    if (r != 0) {
        op_fail(j, r, r == -API_STATUS_NOT_FOUND ? tag : 0,
                r == -API_STATUS_NOT_FOUND && tag == API_TAG_MANDATE_ID ? MSG_NO_MANDATE : NULL);
        return;
    }
    fill_info(&info, q->token, q->mandate_id, &ms->m, mandate_day_of(time(NULL)));
    op_reply(j, &info);
}

/* ---- MANDATE_CANCEL ---------------------------------------------------------------- */

static int
cancel_decide(struct op_job *j, struct store_txn *t, const struct api_mandate_cancel_req *q)
{
    struct op_mandate_state *ms = &j->u.mandate;
    time_t now = time(NULL);
    int r;

    if ((r = check_card(j, t, q->merchant, q->token, NULL)) != 0)
        return r > 0 ? 0 : r;
    r = mandate_load(t, q->merchant, q->token, q->mandate_id, &ms->m);
    if (r == -API_STATUS_NOT_FOUND) {
        decide(j, API_STATUS_NOT_FOUND, API_TAG_MANDATE_ID, NULL, MSG_NO_MANDATE);
        return 0;
    }
    if (r != 0)
        return r;
    /* A mandate no longer active (cancelled, ended) stays as it is. */
    if (mandate_status_on(&ms->m, mandate_day_of(now)) == API_MANDATE_ACTIVE) {
        ms->m.status = API_MANDATE_CANCELLED;
        ms->m.cancelled_by = q->cancelled_by;
        ms->m.cancelled_at = (uint64_t)now;
        if ((r = mandate_save(t, q->token, q->mandate_id, &ms->m, 0)) != 0)
            return r;
    }
    decide(j, API_STATUS_OK, 0, NULL, NULL);
    return 0;
}

static int
cancel_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    const struct api_mandate_cancel_req *q = j->req->frame.msg;
    int r;

    if ((r = cancel_decide(j, t, q)) != 0)
        return r;
    return op_audit(j, t, j->u.mandate.status, q->token,
                    j->u.mandate.status == API_STATUS_OK ? q->mandate_id : NULL);
}

void
ops_mandate_cancel(struct op_job *j)
{
    const struct api_mandate_cancel_req *q = j->req->frame.msg;
    struct op_mandate_state *ms = &j->u.mandate;

    memcpy(ms->token, q->token, sizeof(ms->token));
    memcpy(ms->id, q->mandate_id, sizeof(ms->id));
    op_submit_write(j, cancel_apply, info_done);
}

/* ---- CIT_AUTHORIZE ------------------------------------------------------------------ */

static int
cit_decide(struct op_job *j, struct store_txn *t, const struct api_cit_authorize_req *q)
{
    struct op_mandate_state *ms = &j->u.mandate;
    int r;

    if ((r = check_card(j, t, q->merchant, q->token, q->customer_number)) != 0)
        return r > 0 ? 0 : r;
    if ((ms->card.flags & RECORD_F_CONSENT) == 0) {
        decide(j, API_STATUS_CONSENT_REQUIRED, API_TAG_TOKEN, NULL,
               "the card was saved without the payer's consent");
        return 0;
    }
    if (check_card_usable(j, time(NULL)) != 0)
        return 0;
    if ((ms->card.flags & RECORD_F_NEED_CVC) != 0 && !q->has_cvc) {
        decide(j, API_STATUS_CVC_REQUIRED, API_TAG_CVC, NULL, "this card needs its CVC");
        return 0;
    }
    if ((r = charge_secret(j, t, q->token, &ms->card)) != 0)
        return r;
    decide(j, API_STATUS_OK, 0, NULL, NULL);
    return 0;
}

static int
cit_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    const struct api_cit_authorize_req *q = j->req->frame.msg;
    struct op_mandate_state *ms = &j->u.mandate;
    int r;

    if ((r = cit_decide(j, t, q)) != 0)
        return r;
    return op_audit(j, t, ms->status, q->token,
                    ms->status != API_STATUS_OK ? NULL
                                                : caller_reveals(j) ? DETAIL_PAN : DETAIL_APPROVED);
}

static void
cit_done(struct op_job *j, int result)
{
    const struct api_cit_authorize_req *q = j->req->frame.msg;
    struct op_mandate_state *ms = &j->u.mandate;
    struct api_cit_authorize_resp resp;

    if (answer_refusal(j, result))
        return;
    memset(&resp, 0, sizeof(resp));
    memcpy(resp.approval, ms->approval, sizeof(resp.approval));
    resp.need_cvc = (ms->card.flags & RECORD_F_NEED_CVC) != 0;
    if (caller_reveals(j)) {
        resp.has_pan = true;
        memcpy(resp.pan, ms->sec.pan, sizeof(resp.pan));
        resp.has_exp_month = resp.has_exp_year = true;
        resp.exp_month = ms->card.exp_month;
        resp.exp_year = ms->card.exp_year;
        /* The CVC goes from the request to this answer and nowhere else
         * (SECURITY.md rule 2): no record, audit entry or log line has it. */
        resp.has_cvc = q->has_cvc;
        memcpy(resp.cvc, q->cvc, sizeof(resp.cvc));
        resp.has_initial_txn_id = ms->card.initial_txn_id[0] != '\0';
        memcpy(resp.initial_txn_id, ms->card.initial_txn_id, sizeof(resp.initial_txn_id));
    }
    record_secret_wipe(&ms->sec);
    op_reply(j, &resp);
    OPENSSL_cleanse(&resp, sizeof(resp));
}

void
ops_cit_authorize(struct op_job *j)
{
    const struct api_cit_authorize_req *q = j->req->frame.msg;

    if (prepare_charge(j, q->merchant, q->token) != 0)
        return;
    op_submit_write(j, cit_apply, cit_done);
}

/* ---- MIT_AUTHORIZE ------------------------------------------------------------------ */

static int
mit_decide(struct op_job *j, struct store_txn *t, const struct api_mit_authorize_req *q)
{
    struct op_mandate_state *ms = &j->u.mandate;
    struct mandate_refusal no = {0};
    time_t now = time(NULL);
    int32_t today = mandate_day_of(now);
    enum api_mandate_status st;
    int r;

    if ((r = check_card(j, t, q->merchant, q->token, NULL)) != 0)
        return r > 0 ? 0 : r;
    /* CIT and MIT are not interchangeable: a MIT needs a mandate of this card. */
    r = mandate_load(t, q->merchant, q->token, q->mandate_id, &ms->m);
    if (r == -API_STATUS_NOT_FOUND) {
        decide(j, API_STATUS_NOT_FOUND, API_TAG_MANDATE_ID, NULL, MSG_NO_MANDATE);
        return 0;
    }
    if (r != 0)
        return r;
    if ((st = mandate_status_on(&ms->m, today)) != API_MANDATE_ACTIVE) {
        decide(j, API_STATUS_INACTIVE, API_TAG_MANDATE_ID, NULL,
               st == API_MANDATE_CANCELLED ? "the mandate is cancelled" : "the mandate has ended");
        return 0;
    }
    if (check_card_usable(j, now) != 0)
        return 0;
    if (mandate_charge_check(&ms->m, q->amount, q->currency, &q->date, today, &no) != 0) {
        decide(j, no.status, no.tag, no.rule, no.message);
        return 0;
    }
    /* Recorded in the transaction that checked it: the next charge sees it. */
    if ((r = mandate_charge_record(&ms->m, &q->date)) != 0 ||
        (r = mandate_save(t, q->token, q->mandate_id, &ms->m, 0)) != 0 ||
        (r = charge_secret(j, t, q->token, &ms->card)) != 0)
        return r;
    decide(j, API_STATUS_OK, 0, NULL, NULL);
    return 0;
}

static int
mit_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    const struct api_mit_authorize_req *q = j->req->frame.msg;
    struct op_mandate_state *ms = &j->u.mandate;
    int r;

    if ((r = mit_decide(j, t, q)) != 0)
        return r;
    /* A refusal's detail is the rule (LIMIT_EXCEEDED); the status says the rest. */
    return op_audit(j, t, ms->status, q->token,
                    ms->status != API_STATUS_OK ? ms->rule
                                                : caller_reveals(j) ? DETAIL_PAN : DETAIL_APPROVED);
}

static void
mit_done(struct op_job *j, int result)
{
    struct op_mandate_state *ms = &j->u.mandate;
    struct api_mit_authorize_resp resp;

    if (answer_refusal(j, result))
        return;
    memset(&resp, 0, sizeof(resp));
    memcpy(resp.approval, ms->approval, sizeof(resp.approval));
    resp.last_charge_date = ms->m.last_charge;
    resp.charge_count = ms->m.charge_count;
    /* The network id of the initial authorization, which the MIT references. */
    resp.has_initial_txn_id = ms->card.initial_txn_id[0] != '\0';
    memcpy(resp.initial_txn_id, ms->card.initial_txn_id, sizeof(resp.initial_txn_id));
    if (caller_reveals(j)) {
        resp.has_pan = true;
        memcpy(resp.pan, ms->sec.pan, sizeof(resp.pan));
        resp.has_exp_month = resp.has_exp_year = true;
        resp.exp_month = ms->card.exp_month;
        resp.exp_year = ms->card.exp_year;
    }
    record_secret_wipe(&ms->sec);
    op_reply(j, &resp);
    OPENSSL_cleanse(&resp, sizeof(resp));
}

void
ops_mit_authorize(struct op_job *j)
{
    const struct api_mit_authorize_req *q = j->req->frame.msg;

    if (prepare_charge(j, q->merchant, q->token) != 0)
        return;
    op_submit_write(j, mit_apply, mit_done);
}
