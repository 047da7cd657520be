/*
 * cards.c - card-on-file operations: STORE, GET, LIST, UPDATE, DELETE,
 * REVEAL (docs/PROTOCOL.md section 11).
 *
 * The HSM work (fingerprint, token, sealing, opening) runs on the worker;
 * every decision that depends on what the store holds (is the card known, is
 * the token free, is the customer full) runs in the writer's transaction, so
 * two concurrent requests cannot both decide on a state that is gone.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vault/log.h"
#include "vault/ops/ops.h"

/* Tokens tried before a STORE gives up: an opaque token never collides
 * (128 random bits); a PAN-shaped one of a 12-digit PAN has only 2 random
 * digits, and a merchant may have stored most of them. */
#define TOKEN_ATTEMPTS 16u

/* Index keys: merchant 0x00 CustomerNumber, and merchant 0x00 fingerprint.
 * Merchant ids are printable ASCII, so the 0x00 cannot occur inside one. */
#define CUSTOMER_KEY_MAX (API_ID_MAX + 1u + API_CUSTOMER_NUMBER_MAX)
/* The fingerprint's input: merchant 0x00 PAN. */
#define FP_INPUT_MAX (API_ID_MAX + 1u + API_PAN_MAX)

static size_t
join_key(uint8_t *out, const char *merchant, const void *tail, size_t tail_len)
{
    size_t mlen = strlen(merchant);

    memcpy(out, merchant, mlen);
    out[mlen] = 0;
    memcpy(out + mlen + 1, tail, tail_len);
    return mlen + 1 + tail_len;
}

static size_t
customer_key(uint8_t out[CUSTOMER_KEY_MAX], const char *merchant, const char *customer)
{
    return join_key(out, merchant, customer, strlen(customer));
}

int
ops_customer_holds(struct store_txn *t, const char *merchant, const char *customer,
                   const char *token)
{
    uint8_t ck[CUSTOMER_KEY_MAX];

    return store_get_both(t, STORE_DB_CUSTOMERS, ck, customer_key(ck, merchant, customer), token,
                          strlen(token));
}

size_t
ops_fp_key(uint8_t out[FP_KEY_LEN_MAX], const char *merchant, const uint8_t fp[RECORD_FINGERPRINT_LEN])
{
    return join_key(out, merchant, fp, RECORD_FINGERPRINT_LEN);
}

int
ops_card_fingerprint(hsm_session *s, hsm_key *fpk, const char *merchant, const char *pan,
                     uint8_t out[RECORD_FINGERPRINT_LEN])
{
    uint8_t in[FP_INPUT_MAX];
    size_t len = join_key(in, merchant, pan, strlen(pan));
    int r = hsm_hmac_sign(s, fpk, in, len, out);

    OPENSSL_cleanse(in, sizeof(in));
    return r == 0 ? 0 : vault_hsm_status(r);
}

void
ops_time_hsm(struct op_job *j, enum metrics_hsm_call call, uint64_t t0)
{
    metrics_hsm_call(j->svc->metrics, call, metrics_now_ns() - t0);
}

/* The card's fingerprint under the current FPK and, while the index is
 * rebuilt under it, under the one before (STORE must find a card indexed
 * under either). */
int
ops_card_fingerprints(struct op_job *j, hsm_session *s, const char *merchant)
{
    struct op_card_state *c = &j->u.card;
    hsm_key *prev = NULL, *cur = keys_fpk(&j->svc->keys, &c->fpk_version, &prev);
    uint64_t t0 = metrics_now_ns();
    int r = ops_card_fingerprint(s, cur, merchant, c->sec.pan, c->rec.fingerprint);

    c->has_fp_prev = r == 0 && prev != NULL;
    if (c->has_fp_prev)
        r = ops_card_fingerprint(s, prev, merchant, c->sec.pan, c->fp_prev);
    ops_time_hsm(j, METRICS_HSM_HMAC, t0);
    return r;
}

int
ops_card_load(struct store_txn *t, const char *merchant, const char *token, struct card_record *out)
{
    MDB_val v;
    int r;

    if ((r = store_get(t, STORE_DB_CARDS, token, strlen(token), &v)) != 0)
        return r;
    if ((r = record_decode(out, v.mv_data, v.mv_size)) != 0) {
        vlog_msg(VAULT_LOG_ERROR, "record_malformed", "merchant", merchant);
        return r;
    }
    return strcmp(out->merchant, merchant) == 0 ? 0 : -API_STATUS_NOT_FOUND;
}

int
ops_card_save(struct store_txn *t, const char *token, const struct card_record *rec, unsigned flags)
{
    struct api_writer w;
    int r;

    api_writer_init(&w, RECORD_MAX);
    r = record_encode(&w, rec);
    if (r == 0)
        r = store_put(t, STORE_DB_CARDS, token, strlen(token), api_writer_data(&w),
                      api_writer_len(&w), flags);
    else
        r = -API_STATUS_INTERNAL;
    api_writer_cleanup(&w);
    return r;
}


int
ops_card_token(struct op_job *j, hsm_session *s, const char *pan, char out[API_ID_MAX + 1])
{
    uint8_t rnd[CARDNUM_SHAPED_RANDOM_LEN];
    uint64_t t0 = metrics_now_ns();
    int e;

    e = hsm_random(s, rnd, j->token_format == VAULT_TOKEN_PAN_SHAPED ? sizeof(rnd)
                                                                    : CARDNUM_OPAQUE_RANDOM_LEN);
    ops_time_hsm(j, METRICS_HSM_RANDOM, t0);
    if (e != 0)
        return vault_hsm_status(e);
    e = j->token_format == VAULT_TOKEN_PAN_SHAPED
            ? cardnum_token_pan_shaped(out, API_ID_MAX + 1, pan, rnd)
            : cardnum_token_opaque(out, API_ID_MAX + 1, rnd);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return e;
}

int
ops_card_seal(struct op_job *j, hsm_session *s, const char *token, struct card_record *rec,
              const struct card_secret *sec)
{
    const struct vault_keys *k = &j->svc->keys;
    uint32_t version = keys_dek_current(k);
    uint64_t t0 = metrics_now_ns();
    int r = record_seal(s, keys_dek(k, version), version, token, rec, sec);

    ops_time_hsm(j, METRICS_HSM_GCM_ENCRYPT, t0);
    if (r == 0)
        ops_dek_sealed(j->svc);
    return r;
}

/* Opens a record's secrets; a record that does not open was altered or moved
 * and is reported as such in the log (never what it holds). */
static int
open_secret(struct op_job *j, hsm_session *s, const char *token, const struct card_record *rec,
            struct card_secret *out)
{
    hsm_key *dek = keys_dek(&j->svc->keys, rec->dek_version);
    uint64_t t0 = metrics_now_ns();
    struct vlog_line l;
    int r;

    if (dek == NULL) {
        r = -API_STATUS_INTERNAL;
    } else {
        r = record_open(s, dek, token, rec, out);
        ops_time_hsm(j, METRICS_HSM_GCM_DECRYPT, t0);
    }
    if (r == -API_STATUS_INTERNAL && vlog_begin(&l, VAULT_LOG_ERROR, "record_does_not_open")) {
        vlog_str(&l, "merchant", rec->merchant);
        vlog_str(&l, "token", token);
        vlog_u64(&l, "dek_version", rec->dek_version);
        vlog_end(&l);
    }
    return r;
}

static void
fill_info(struct api_card_info *out, const char *token, const struct card_record *rec)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->token, sizeof(out->token), "%s", token);
    out->kind = rec->kind;
    memcpy(out->bin, rec->bin, sizeof(out->bin));
    memcpy(out->last4, rec->last4, sizeof(out->last4));
    out->brand = rec->brand;
    out->exp_month = rec->exp_month;
    out->exp_year = rec->exp_year;
    out->active = (rec->flags & RECORD_F_ACTIVE) != 0;
    out->need_cvc = (rec->flags & RECORD_F_NEED_CVC) != 0;
    out->consent = (rec->flags & RECORD_F_CONSENT) != 0;
    out->verification = rec->verification;
    out->has_initial_txn_id = rec->initial_txn_id[0] != '\0';
    memcpy(out->initial_txn_id, rec->initial_txn_id, sizeof(out->initial_txn_id));
    out->created_at = rec->created_at;
    out->has_expires_at = rec->expires_at != 0;
    out->expires_at = rec->expires_at;
}

/* The answer of a write job: OK with the operation's reply, or its error. */
static void
fail_from_writer(struct op_job *j, int result)
{
    op_fail(j, result, j->err_tag, j->err_message);
}

/* A write job refuses a request with a tag and message done will send. */
static int
refuse(struct op_job *j, int status, uint16_t tag, const char *message)
{
    j->err_tag = tag;
    j->err_message = message;
    return -status;
}

/* ---- STORE ------------------------------------------------------------------ */

/* Links |token| to the customer (both indexes), unless the customer already
 * holds API_LIST_ITEMS_MAX cards: a CARD_LIST must fit in one answer. */
static int
link_customer(struct op_job *j, struct store_txn *t, const char *merchant, const char *customer,
              const char *token)
{
    uint8_t ck[CUSTOMER_KEY_MAX];
    size_t ck_len = customer_key(ck, merchant, customer), n = 0;
    int r;

    if ((r = store_dup_count(t, STORE_DB_CUSTOMERS, ck, ck_len, &n)) != 0)
        return r;
    if (n >= API_LIST_ITEMS_MAX)
        return refuse(j, API_STATUS_INVALID_ARGUMENT, API_TAG_CUSTOMER_NUMBER,
                      "the customer already holds the most cards a list can carry");
    if ((r = store_put(t, STORE_DB_CUSTOMERS, ck, ck_len, token, strlen(token), 0)) != 0 ||
        (r = store_put(t, STORE_DB_LINKS, token, strlen(token), customer, strlen(customer), 0)) != 0)
        return r;
    return 0;
}

/* The card is known for this merchant: link, update the expiry, or nothing. */
static int
store_known(struct op_job *j, struct store_txn *t, const struct card_filing *f, const MDB_val *tok)
{
    struct op_card_state *c = &j->u.card;
    uint8_t ck[CUSTOMER_KEY_MAX];
    size_t ck_len = customer_key(ck, f->merchant, f->customer);
    bool linked;
    int r;

    if (tok->mv_size == 0 || tok->mv_size > API_ID_MAX)
        return -API_STATUS_INTERNAL;
    memcpy(c->found_token, tok->mv_data, tok->mv_size);
    c->found_token[tok->mv_size] = '\0';
    if ((r = ops_card_load(t, f->merchant, c->found_token, &c->found)) != 0)
        return r == -API_STATUS_NOT_FOUND ? -API_STATUS_INTERNAL : r; /* a dangling index */
    r = store_get_both(t, STORE_DB_CUSTOMERS, ck, ck_len, c->found_token, strlen(c->found_token));
    if (r != 0 && r != -API_STATUS_NOT_FOUND)
        return r;
    linked = r == 0;
    if (!linked &&
        (r = link_customer(j, t, f->merchant, f->customer, c->found_token)) != 0)
        return r;
    c->dedup = linked ? API_DEDUP_EXISTING : API_DEDUP_LINKED;
    if (c->found.exp_month != f->exp_month || c->found.exp_year != f->exp_year) {
        c->found.exp_month = f->exp_month;
        c->found.exp_year = f->exp_year;
        if ((r = ops_card_save(t, c->found_token, &c->found, 0)) != 0)
            return r;
        if (linked)
            c->dedup = API_DEDUP_EXPIRY_UPDATED;
    }
    return 0;
}

int
ops_card_put_new(struct op_job *j, struct store_txn *t)
{
    struct op_card_state *c = &j->u.card;
    unsigned attempt;
    int r = 0;

    for (attempt = 0; attempt < TOKEN_ATTEMPTS; attempt++) {
        r = ops_card_save(t, c->token, &c->rec, STORE_PUT_NEW);
        if (r != -API_STATUS_CONFLICT)
            break;
        /* The token is taken: draw another and seal for it (the AAD binds
         * the token), with the writer's own session. */
        if (t->hsm == NULL)
            return -API_STATUS_HSM_UNAVAILABLE;
        if ((r = ops_card_token(j, t->hsm, c->sec.pan, c->token)) != 0 ||
            (r = ops_card_seal(j, t->hsm, c->token, &c->rec, &c->sec)) != 0)
            return r;
    }
    if (attempt == TOKEN_ATTEMPTS)
        return refuse(j, API_STATUS_CONFLICT, API_TAG_PAN,
                      "no free PAN-shaped token for this card; use opaque tokens");
    return r;
}

static int
store_new(struct op_job *j, struct store_txn *t, const struct card_filing *f, const uint8_t *fpk,
          size_t fpk_len)
{
    struct op_card_state *c = &j->u.card;
    int r;

    if ((r = ops_card_put_new(j, t)) != 0)
        return r;
    if ((r = store_put(t, STORE_DB_FINGERPRINTS, fpk, fpk_len, c->token, strlen(c->token),
                       STORE_PUT_NEW)) != 0 ||
        (r = link_customer(j, t, f->merchant, f->customer, c->token)) != 0)
        return r;
    c->found = c->rec;
    memcpy(c->found_token, c->token, sizeof(c->found_token));
    c->dedup = API_DEDUP_NEW;
    return 0;
}

int
ops_card_file(struct op_job *j, struct store_txn *t, const struct card_filing *f)
{
    const char *merchant = f->merchant;
    struct op_card_state *c = &j->u.card;
    uint8_t fpk[FP_KEY_LEN_MAX];
    size_t fpk_len;
    uint32_t now = 0;
    MDB_val tok;
    int r;

    /* The FPK moved since the worker computed the fingerprint: compute it
     * again here, where the index rebuild also runs, so no card is indexed
     * under a key the rebuild has already passed. */
    (void)keys_fpk(&j->svc->keys, &now, NULL);
    if (now != c->fpk_version) {
        if (t->hsm == NULL)
            return -API_STATUS_HSM_UNAVAILABLE;
        if ((r = ops_card_fingerprints(j, t->hsm, merchant)) != 0)
            return r;
    }
    fpk_len = ops_fp_key(fpk, merchant, c->rec.fingerprint);
    r = store_get(t, STORE_DB_FINGERPRINTS, fpk, fpk_len, &tok);
    if (r == -API_STATUS_NOT_FOUND && c->has_fp_prev) {
        uint8_t old[FP_KEY_LEN_MAX];

        r = store_get(t, STORE_DB_FINGERPRINTS, old, ops_fp_key(old, merchant, c->fp_prev), &tok);
    }
    if (r == 0)
        r = store_known(j, t, f, &tok);
    else if (r == -API_STATUS_NOT_FOUND)
        r = store_new(j, t, f, fpk, fpk_len);
    return r;
}

static int
store_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    const struct api_card_store_req *q = j->req->frame.msg;
    const struct card_filing f = {
        .merchant = q->merchant,
        .customer = q->customer_number,
        .exp_month = q->exp_month,
        .exp_year = q->exp_year,
    };
    int r;

    if ((r = ops_card_file(j, t, &f)) != 0)
        return r;
    return op_audit(j, t, API_STATUS_OK, j->u.card.found_token,
                    api_enum_name(API_TAG_DEDUP, j->u.card.dedup));
}

static void
store_done(struct op_job *j, int result)
{
    const struct op_card_state *c = &j->u.card;
    struct api_card_store_resp resp;

    if (result != 0) {
        fail_from_writer(j, result);
        return;
    }
    memset(&resp, 0, sizeof(resp));
    memcpy(resp.token, c->found_token, sizeof(resp.token));
    resp.kind = c->found.kind;
    memcpy(resp.bin, c->found.bin, sizeof(resp.bin));
    memcpy(resp.last4, c->found.last4, sizeof(resp.last4));
    resp.brand = c->found.brand;
    resp.exp_month = c->found.exp_month;
    resp.exp_year = c->found.exp_year;
    resp.need_cvc = (c->found.flags & RECORD_F_NEED_CVC) != 0;
    resp.active = (c->found.flags & RECORD_F_ACTIVE) != 0;
    resp.dedup = c->dedup;
    resp.created_at = c->found.created_at;
    op_reply(j, &resp);
}

/* Checks in the order docs/PROTOCOL.md gives: consent, card number, expiry. */
static int
store_check(struct op_job *j, const struct api_card_store_req *q, enum api_brand *brand)
{
    if (!q->consent) {
        op_fail(j, API_STATUS_CONSENT_REQUIRED, API_TAG_CONSENT,
                "the payer's consent is required to keep a card on file");
        return -1;
    }
    if (cardnum_check(q->pan, brand) != 0) {
        op_fail(j, API_STATUS_CARD_INVALID, API_TAG_PAN,
                "card number fails its length or Luhn check");
        return -1;
    }
    if (cardnum_expired(q->exp_month, q->exp_year, time(NULL))) {
        op_fail(j, API_STATUS_CARD_EXPIRED, API_TAG_EXP_YEAR, "card expiry is in the past");
        return -1;
    }
    return 0;
}

void
ops_card_store(struct op_job *j)
{
    const struct api_card_store_req *q = j->req->frame.msg;
    struct op_card_state *c = &j->u.card;
    struct card_record *rec = &c->rec;
    enum api_brand brand;
    hsm_session *s = NULL;
    size_t pan_len = strlen(q->pan);
    int r;

    if (store_check(j, q, &brand) != 0)
        return;
    rec->kind = API_CARD_KIND_CARD;
    rec->flags = RECORD_F_ACTIVE | RECORD_F_CONSENT |
                 (q->has_need_cvc && q->need_cvc ? RECORD_F_NEED_CVC : 0);
    rec->verification = q->verification;
    rec->brand = (uint8_t)brand;
    rec->exp_month = q->exp_month;
    rec->exp_year = q->exp_year;
    rec->created_at = (uint64_t)time(NULL);
    memcpy(rec->bin, q->pan, cardnum_bin_len(pan_len));
    memcpy(rec->last4, q->pan + pan_len - API_LAST4_LEN, API_LAST4_LEN);
    memcpy(rec->merchant, q->merchant, sizeof(rec->merchant));
    if (q->has_initial_txn_id)
        memcpy(rec->initial_txn_id, q->initial_txn_id, sizeof(rec->initial_txn_id));
    memcpy(c->sec.pan, q->pan, sizeof(c->sec.pan));
    if (q->has_holder)
        memcpy(c->sec.holder, q->holder, sizeof(c->sec.holder));
    if (q->has_email)
        memcpy(c->sec.email, q->email, sizeof(c->sec.email));

    if ((s = op_session(j)) == NULL)
        return;
    r = ops_card_fingerprints(j, s, q->merchant);
    if (r == 0)
        r = ops_card_token(j, s, q->pan, c->token);
    if (r == 0)
        r = ops_card_seal(j, s, c->token, rec, &c->sec);
    hsm_session_release(s);
    if (r != 0) {
        op_fail(j, r, 0, NULL);
        return;
    }
    op_submit_write(j, store_apply, store_done);
}

/* ---- GET, LIST ----------------------------------------------------------------- */

void
ops_card_get(struct op_job *j)
{
    const struct api_card_ref *q = j->req->frame.msg;
    struct api_card_info info;
    struct card_record rec;
    struct store_txn t;
    int r;

    if ((r = store_read_begin(j->svc->store, &t)) != 0) {
        op_fail(j, r, 0, NULL);
        return;
    }
    r = ops_card_load(&t, q->merchant, q->token, &rec);
    if (r == 0)
        fill_info(&info, q->token, &rec);
    /* Issue 7: a card's mappings are listed with it; read in the same
     * transaction, so the list is the card's as of that moment. */
    if (r == 0)
        r = ops_mappings_list(&t, &info.mappings, &info.num_mappings, q->merchant, q->token);
    store_read_end(&t);
    if (r != 0) {
        op_fail(j, r, r == -API_STATUS_NOT_FOUND ? API_TAG_TOKEN : 0, NULL);
        return;
    }
    op_reply(j, &info);
    free(info.mappings);
}

struct list_ctx {
    struct store_txn *t;
    const char *merchant;
    struct api_card_item *items;
    size_t n;
};

static int
list_one(void *arg, const MDB_val *val)
{
    struct list_ctx *c = arg;
    struct api_card_item *it;
    struct card_record rec;
    char token[API_ID_MAX + 1];
    int r;

    if (c->n == API_LIST_ITEMS_MAX || val->mv_size == 0 || val->mv_size > API_ID_MAX)
        return -API_STATUS_INTERNAL;
    memcpy(token, val->mv_data, val->mv_size);
    token[val->mv_size] = '\0';
    if ((r = ops_card_load(c->t, c->merchant, token, &rec)) != 0)
        return r == -API_STATUS_NOT_FOUND ? -API_STATUS_INTERNAL : r; /* a dangling index */
    it = &c->items[c->n++];
    memcpy(it->token, token, sizeof(it->token));
    memcpy(it->bin, rec.bin, sizeof(it->bin));
    memcpy(it->last4, rec.last4, sizeof(it->last4));
    it->brand = rec.brand;
    it->exp_month = rec.exp_month;
    it->exp_year = rec.exp_year;
    it->active = (rec.flags & RECORD_F_ACTIVE) != 0;
    it->need_cvc = (rec.flags & RECORD_F_NEED_CVC) != 0;
    return 0;
}

void
ops_card_list(struct op_job *j)
{
    const struct api_customer_ref *q = j->req->frame.msg;
    struct api_card_list_resp resp = {0};
    uint8_t ck[CUSTOMER_KEY_MAX];
    size_t ck_len = customer_key(ck, q->merchant, q->customer_number);
    struct store_txn t;
    struct list_ctx c = {.t = &t, .merchant = q->merchant};
    int r;

    /* A customer holds at most API_LIST_ITEMS_MAX cards (STORE enforces it). */
    if ((c.items = calloc(API_LIST_ITEMS_MAX, sizeof(*c.items))) == NULL) {
        op_fail(j, API_STATUS_INTERNAL, 0, NULL);
        return;
    }
    if ((r = store_read_begin(j->svc->store, &t)) == 0) {
        r = store_dup_each(&t, STORE_DB_CUSTOMERS, ck, ck_len, list_one, &c);
        store_read_end(&t);
    }
    if (r != 0) {
        if (r == -API_STATUS_INTERNAL)
            vlog_msg(VAULT_LOG_ERROR, "customer_index_inconsistent", "merchant", q->merchant);
        free(c.items);
        op_fail(j, r, 0, NULL);
        return;
    }
    resp.cards = c.items;
    resp.num_cards = c.n;
    op_reply(j, &resp);
    free(c.items);
}

/* ---- UPDATE ---------------------------------------------------------------------- */

static int
update_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    const struct api_card_update_req *q = j->req->frame.msg;
    struct op_card_state *c = &j->u.card;
    struct card_record *rec = &c->found;
    int r;

    if ((r = ops_card_load(t, q->merchant, q->token, rec)) != 0)
        return r == -API_STATUS_NOT_FOUND ? refuse(j, API_STATUS_NOT_FOUND, API_TAG_TOKEN, NULL) : r;
    memcpy(c->found_token, q->token, sizeof(c->found_token));
    if (q->has_exp_month) {
        rec->exp_month = q->exp_month;
        rec->exp_year = q->exp_year;
    }
    if (q->has_active)
        rec->flags = (uint8_t)((rec->flags & ~RECORD_F_ACTIVE) | (q->active ? RECORD_F_ACTIVE : 0));
    if (q->has_need_cvc)
        rec->flags =
            (uint8_t)((rec->flags & ~RECORD_F_NEED_CVC) | (q->need_cvc ? RECORD_F_NEED_CVC : 0));
    if (q->has_initial_txn_id)
        memcpy(rec->initial_txn_id, q->initial_txn_id, sizeof(rec->initial_txn_id));
    if (q->has_holder) {
        /* The holder is sealed with the PAN: open, replace, seal again under
         * the current DEK (which also moves the record off a retired one). */
        if (t->hsm == NULL)
            return -API_STATUS_HSM_UNAVAILABLE;
        r = open_secret(j, t->hsm, q->token, rec, &c->sec);
        if (r == 0) {
            memcpy(c->sec.holder, q->holder, sizeof(c->sec.holder));
            r = ops_card_seal(j, t->hsm, q->token, rec, &c->sec);
        }
        record_secret_wipe(&c->sec);
        if (r != 0)
            return r;
    }
    if ((r = ops_card_save(t, q->token, rec, 0)) != 0)
        return r;
    return op_audit(j, t, API_STATUS_OK, q->token, NULL);
}

static void
info_done(struct op_job *j, int result)
{
    struct api_card_info info;

    if (result != 0) {
        fail_from_writer(j, result);
        return;
    }
    fill_info(&info, j->u.card.found_token, &j->u.card.found);
    op_reply(j, &info);
}

void
ops_card_update(struct op_job *j)
{
    const struct api_card_update_req *q = j->req->frame.msg;

    if (q->has_exp_month != q->has_exp_year) {
        op_fail(j, API_STATUS_INVALID_ARGUMENT, q->has_exp_month ? API_TAG_EXP_YEAR : API_TAG_EXP_MONTH,
                "expMonth and expYear change together");
        return;
    }
    if (q->has_exp_month && cardnum_expired(q->exp_month, q->exp_year, time(NULL))) {
        op_fail(j, API_STATUS_CARD_EXPIRED, API_TAG_EXP_YEAR, "card expiry is in the past");
        return;
    }
    if (!q->has_exp_month && !q->has_active && !q->has_need_cvc && !q->has_holder &&
        !q->has_initial_txn_id) {
        op_fail(j, API_STATUS_INVALID_ARGUMENT, 0, "the request changes nothing");
        return;
    }
    op_submit_write(j, update_apply, info_done);
}

/* ---- DELETE ------------------------------------------------------------------------ */

/* The customers that hold a token, copied out before their entries go. */
struct links {
    char (*ids)[API_CUSTOMER_NUMBER_MAX + 1];
    size_t n, cap;
};

static int
collect_link(void *arg, const MDB_val *val)
{
    struct links *l = arg;

    if (val->mv_size == 0 || val->mv_size > API_CUSTOMER_NUMBER_MAX)
        return -API_STATUS_INTERNAL;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        void *p = realloc(l->ids, cap * sizeof(*l->ids));

        if (p == NULL)
            return -API_STATUS_INTERNAL;
        l->ids = p;
        l->cap = cap;
    }
    memcpy(l->ids[l->n], val->mv_data, val->mv_size);
    l->ids[l->n][val->mv_size] = '\0';
    l->n++;
    return 0;
}

static int
delete_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    const struct api_card_ref *q = j->req->frame.msg;
    struct card_record rec;
    struct links l = {0};
    uint8_t key[FP_KEY_LEN_MAX > CUSTOMER_KEY_MAX ? FP_KEY_LEN_MAX : CUSTOMER_KEY_MAX];
    size_t tlen = strlen(q->token);
    int r;

    if ((r = ops_card_load(t, q->merchant, q->token, &rec)) != 0)
        return r == -API_STATUS_NOT_FOUND ? refuse(j, API_STATUS_NOT_FOUND, API_TAG_TOKEN, NULL) : r;
    /* CONFLICT while a mandate on the card is active; the others go with it. */
    if ((r = ops_mandates_card_delete(j, t, q->token)) != 0)
        return r;
    /* The clientCardId mappings that point to the card (ops/sessions.c). */
    if ((r = ops_mappings_delete_card(t, q->merchant, q->token)) != 0)
        return r;
    if ((r = store_dup_each(t, STORE_DB_LINKS, q->token, tlen, collect_link, &l)) != 0)
        goto out;
    for (size_t i = 0; i < l.n; i++)
        if ((r = store_del(t, STORE_DB_CUSTOMERS, key, customer_key(key, q->merchant, l.ids[i]),
                           q->token, tlen)) != 0 && r != -API_STATUS_NOT_FOUND)
            goto out;
    r = store_del(t, STORE_DB_LINKS, q->token, tlen, NULL, 0);
    if (r == 0 || r == -API_STATUS_NOT_FOUND)
        r = store_del(t, STORE_DB_FINGERPRINTS, key, ops_fp_key(key, q->merchant, rec.fingerprint), NULL, 0);
    if (r == 0 || r == -API_STATUS_NOT_FOUND)
        r = store_del(t, STORE_DB_CARDS, q->token, tlen, NULL, 0);
    if (r == 0)
        r = op_audit(j, t, API_STATUS_OK, q->token, NULL);
out:
    free(l.ids);
    return r;
}

static void
delete_done(struct op_job *j, int result)
{
    struct api_empty empty = {0};

    if (result != 0)
        fail_from_writer(j, result);
    else
        op_reply(j, &empty);
}

void
ops_card_delete(struct op_job *j)
{
    op_submit_write(j, delete_apply, delete_done);
}

/* ---- REVEAL --------------------------------------------------------------------------- */

/* The reveal is recorded before the answer: the audit entry, with the
 * lookup's outcome, commits first; only then does done send the PAN. */
static int
reveal_apply(struct store_write *w, struct store_txn *t)
{
    struct op_job *j = op_job_of_write(w);
    const struct api_card_reveal_req *q = j->req->frame.msg;

    return op_audit(j, t, j->u.card.lookup, q->token,
                    api_enum_name(API_TAG_PURPOSE, q->purpose));
}

static void
reveal_done(struct op_job *j, int result)
{
    struct op_card_state *c = &j->u.card;
    struct api_card_reveal_resp resp;

    if (result != 0) {
        /* Fail closed: no audit record, no PAN. */
        op_fail(j, API_STATUS_AUDIT_UNAVAILABLE, 0, OP_MSG_AUDIT);
        return;
    }
    if (c->lookup != API_STATUS_OK) {
        op_fail(j, (int)c->lookup, API_TAG_TOKEN, NULL);
        return;
    }
    memset(&resp, 0, sizeof(resp));
    resp.kind = c->found.kind;
    memcpy(resp.pan, c->sec.pan, sizeof(resp.pan));
    resp.exp_month = c->found.exp_month;
    resp.exp_year = c->found.exp_year;
    resp.has_holder = c->sec.holder[0] != '\0';
    memcpy(resp.holder, c->sec.holder, sizeof(resp.holder));
    record_secret_wipe(&c->sec);
    op_reply(j, &resp);
    OPENSSL_cleanse(&resp, sizeof(resp));
}

void
ops_card_reveal(struct op_job *j)
{
    const struct api_card_reveal_req *q = j->req->frame.msg;
    struct op_card_state *c = &j->u.card;
    struct store_txn t;
    hsm_session *s;
    int r;

    if ((r = store_read_begin(j->svc->store, &t)) != 0) {
        op_fail(j, r, 0, NULL);
        return;
    }
    r = ops_card_load(&t, q->merchant, q->token, &c->found);
    store_read_end(&t);
    if (r == 0) {
        if ((s = op_session(j)) == NULL)
            return;
        r = open_secret(j, s, q->token, &c->found, &c->sec);
        hsm_session_release(s);
    }
    if (r != 0 && r != -API_STATUS_NOT_FOUND) {
        op_fail(j, r, 0, NULL);
        return;
    }
    /* A reveal of a token that does not exist is recorded too: someone asked. */
    c->lookup = r == 0 ? API_STATUS_OK : API_STATUS_NOT_FOUND;
    op_submit_write(j, reveal_apply, reveal_done);
}
