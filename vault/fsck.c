/*
 * fsck.c - the offline consistency check of a store (fsck.h).
 *
 * Each database is walked once; for each entry, the entries it implies are
 * looked up. Keys are read with explicit bounds: a store that needs checking
 * may hold anything.
 */
#include "vault/fsck.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vault/audit.h"
#include "vault/mandate.h"
#include "vault/ops/qr.h"
#include "vault/keys.h"
#include "vault/ops/sessions.h"
#include "vault/record.h"

/* Longest problem sentence: a database key or two printed in it. */
#define FSCK_LINE_MAX 512u
/* meta key of an unfinished fingerprint index rebuild (vault/keys.c). */
#define META_FPK_REBUILD "fpk.rebuild"

struct fsck {
    struct store_txn *t;
    fsck_problem_fn fn;
    void *ctx;
    struct fsck_counts *n;
    bool rebuilding;
};

static void
problem(struct fsck *f, const char *db, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
problem(struct fsck *f, const char *db, const char *fmt, ...)
{
    char line[FSCK_LINE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    f->n->problems++;
    if (f->fn != NULL)
        f->fn(f->ctx, db, line);
}

/* |len| bytes as a C string of at most |cap| - 1 printable bytes; false if
 * they are not (a key written by this code never is). */
static bool
text(char *out, size_t cap, const uint8_t *p, size_t len)
{
    if (len == 0 || len >= cap)
        return false;
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x20 || p[i] > 0x7e)
            return false;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

/* Splits "first 0x00 rest": |first| as text, |rest| as bytes. */
static bool
split(const MDB_val *k, char *first, size_t cap, const uint8_t **rest, size_t *rest_len)
{
    const uint8_t *p = k->mv_data;
    const uint8_t *z = memchr(p, 0, k->mv_size);

    if (z == NULL || !text(first, cap, p, (size_t)(z - p)))
        return false;
    *rest = z + 1;
    *rest_len = k->mv_size - (size_t)(z - p) - 1;
    return true;
}

/* Reads the card of |token|. 0, -API_STATUS_NOT_FOUND, or
 * -API_STATUS_INTERNAL when its record does not decode. */
static int
card(struct fsck *f, const char *token, struct card_record *out)
{
    MDB_val v;
    int r = store_get(f->t, STORE_DB_CARDS, token, strlen(token), &v);

    if (r != 0)
        return r;
    return record_decode(out, v.mv_data, v.mv_size);
}

/* The card an index entry names, which must exist and be |merchant|'s
 * (NULL: anyone's). Reports and returns false otherwise. */
static bool
card_of(struct fsck *f, const char *db, const char *token, const char *merchant,
        struct card_record *out)
{
    int r = card(f, token, out);

    if (r == -API_STATUS_NOT_FOUND) {
        problem(f, db, "names token %s, which has no record", token);
        return false;
    }
    if (r != 0) {
        problem(f, db, "names token %s, whose record does not decode", token);
        return false;
    }
    if (merchant != NULL && strcmp(out->merchant, merchant) != 0) {
        problem(f, db, "names token %s of merchant %s under merchant %s", token, out->merchant,
                merchant);
        return false;
    }
    return true;
}

/* ---- cards --------------------------------------------------------------- */

static int
check_card(void *ctx, const MDB_val *k, const MDB_val *v)
{
    struct fsck *f = ctx;
    char token[API_ID_MAX + 1];
    uint8_t key[API_ID_MAX + 1 + RECORD_FINGERPRINT_LEN];
    struct card_record rec;
    size_t mlen;
    MDB_val got;
    int r;

    if (!text(token, sizeof(token), k->mv_data, k->mv_size)) {
        problem(f, "cards", "a key of %zu bytes is not a token", k->mv_size);
        return 0;
    }
    if (record_decode(&rec, v->mv_data, v->mv_size) != 0) {
        problem(f, "cards", "the record of token %s does not decode", token);
        return 0;
    }
    if (rec.kind == API_CARD_KIND_DPAN) {
        f->n->dpans++;
        return 0; /* device PANs are neither deduplicated nor filed under customers */
    }
    f->n->cards++;
    if (f->rebuilding)
        return 0;
    mlen = strlen(rec.merchant);
    memcpy(key, rec.merchant, mlen);
    key[mlen] = 0;
    memcpy(key + mlen + 1, rec.fingerprint, RECORD_FINGERPRINT_LEN);
    r = store_get(f->t, STORE_DB_FINGERPRINTS, key, mlen + 1 + RECORD_FINGERPRINT_LEN, &got);
    if (r == -API_STATUS_NOT_FOUND)
        problem(f, "cards", "token %s has no fingerprint entry", token);
    else if (r != 0)
        return r;
    else if (got.mv_size != strlen(token) || memcmp(got.mv_data, token, got.mv_size) != 0)
        problem(f, "cards", "the fingerprint entry of token %s names another token", token);
    return 0;
}

/* ---- fingerprints ---------------------------------------------------------- */

static int
check_fingerprint(void *ctx, const MDB_val *k, const MDB_val *v)
{
    struct fsck *f = ctx;
    char merchant[API_ID_MAX + 1], token[API_ID_MAX + 1];
    const uint8_t *fp = NULL;
    size_t fp_len = 0;
    struct card_record rec;

    f->n->fingerprints++;
    if (!split(k, merchant, sizeof(merchant), &fp, &fp_len) || fp_len != RECORD_FINGERPRINT_LEN ||
        !text(token, sizeof(token), v->mv_data, v->mv_size)) {
        problem(f, "fingerprints", "an entry of %zu bytes is malformed", k->mv_size);
        return 0;
    }
    if (!card_of(f, "fingerprints", token, merchant, &rec))
        return 0;
    /* Under a rebuild, entries of the previous key still name their cards. */
    if (!f->rebuilding && memcmp(rec.fingerprint, fp, RECORD_FINGERPRINT_LEN) != 0)
        problem(f, "fingerprints", "token %s is filed under another fingerprint than its record's",
                token);
    return 0;
}

/* ---- customers and links --------------------------------------------------- */

static int
check_customer(void *ctx, const MDB_val *k, const MDB_val *v)
{
    struct fsck *f = ctx;
    char merchant[API_ID_MAX + 1], customer[API_CUSTOMER_NUMBER_MAX + 1], token[API_ID_MAX + 1];
    const uint8_t *rest = NULL;
    size_t rest_len = 0;
    struct card_record rec;
    int r;

    f->n->customers++;
    if (!split(k, merchant, sizeof(merchant), &rest, &rest_len) ||
        !text(customer, sizeof(customer), rest, rest_len) ||
        !text(token, sizeof(token), v->mv_data, v->mv_size)) {
        problem(f, "customers", "an entry of %zu bytes is malformed", k->mv_size);
        return 0;
    }
    if (!card_of(f, "customers", token, merchant, &rec))
        return 0;
    r = store_get_both(f->t, STORE_DB_LINKS, token, strlen(token), customer, strlen(customer));
    if (r == -API_STATUS_NOT_FOUND)
        problem(f, "customers", "customer %s of merchant %s holds token %s, but links lacks it",
                customer, merchant, token);
    return r == -API_STATUS_NOT_FOUND ? 0 : r;
}

static int
check_link(void *ctx, const MDB_val *k, const MDB_val *v)
{
    struct fsck *f = ctx;
    char token[API_ID_MAX + 1], customer[API_CUSTOMER_NUMBER_MAX + 1];
    uint8_t key[API_ID_MAX + 1 + API_CUSTOMER_NUMBER_MAX];
    struct card_record rec;
    size_t mlen, clen;
    int r;

    f->n->links++;
    if (!text(token, sizeof(token), k->mv_data, k->mv_size) ||
        !text(customer, sizeof(customer), v->mv_data, v->mv_size)) {
        problem(f, "links", "an entry of %zu bytes is malformed", k->mv_size);
        return 0;
    }
    if (!card_of(f, "links", token, NULL, &rec))
        return 0;
    mlen = strlen(rec.merchant);
    clen = strlen(customer);
    memcpy(key, rec.merchant, mlen);
    key[mlen] = 0;
    memcpy(key + mlen + 1, customer, clen);
    r = store_get_both(f->t, STORE_DB_CUSTOMERS, key, mlen + 1 + clen, token, strlen(token));
    if (r == -API_STATUS_NOT_FOUND)
        problem(f, "links", "token %s links customer %s, who does not hold it", token, customer);
    return r == -API_STATUS_NOT_FOUND ? 0 : r;
}

/* ---- mappings -------------------------------------------------------------- */

/* The forward entry "merchant 0x00 clientCardId" and the reverse entry
 * "0x00 token 0x00 clientCardId" (ops/sessions.c) must name each other. */
static int
check_mapping(void *ctx, const MDB_val *k, const MDB_val *v)
{
    struct fsck *f = ctx;
    char first[API_ID_MAX + 1], id[API_ID_MAX + 1];
    uint8_t key[2 + 2 * API_ID_MAX];
    const uint8_t *rest = NULL;
    size_t rest_len = 0, n = 0;
    struct card_record rec;
    struct card_mapping m;
    MDB_val got;
    int r;

    f->n->mappings++;
    if (k->mv_size > 0 && ((const uint8_t *)k->mv_data)[0] == 0) {
        MDB_val tail = {k->mv_size - 1, (uint8_t *)k->mv_data + 1};

        if (!split(&tail, first, sizeof(first), &rest, &rest_len) ||
            !text(id, sizeof(id), rest, rest_len)) {
            problem(f, "mappings", "a reverse entry of %zu bytes is malformed", k->mv_size);
            return 0;
        }
        if (!card_of(f, "mappings", first, NULL, &rec))
            return 0;
        n = strlen(rec.merchant);
        memcpy(key, rec.merchant, n);
        key[n++] = 0;
        memcpy(key + n, id, strlen(id));
        n += strlen(id);
        r = store_get(f->t, STORE_DB_MAPPINGS, key, n, &got);
        if (r == -API_STATUS_NOT_FOUND ||
            (r == 0 && (ops_mapping_decode(&m, got.mv_data, got.mv_size) != 0 ||
                        strcmp(m.token, first) != 0)))
            problem(f, "mappings", "clientCardId %s of token %s has no forward entry naming it",
                    id, first);
        return r == -API_STATUS_NOT_FOUND ? 0 : r;
    }
    if (!split(k, first, sizeof(first), &rest, &rest_len) || !text(id, sizeof(id), rest, rest_len) ||
        ops_mapping_decode(&m, v->mv_data, v->mv_size) != 0) {
        problem(f, "mappings", "an entry of %zu bytes is malformed", k->mv_size);
        return 0;
    }
    if (!card_of(f, "mappings", m.token, first, &rec))
        return 0;
    key[n++] = 0;
    memcpy(key + n, m.token, strlen(m.token));
    n += strlen(m.token);
    key[n++] = 0;
    memcpy(key + n, id, strlen(id));
    n += strlen(id);
    r = store_get(f->t, STORE_DB_MAPPINGS, key, n, &got);
    if (r == -API_STATUS_NOT_FOUND)
        problem(f, "mappings", "clientCardId %s of merchant %s has no reverse entry", id, first);
    return r == -API_STATUS_NOT_FOUND ? 0 : r;
}

/* ---- mandates, sessions, QR ------------------------------------------------- */

static int
check_mandate(void *ctx, const MDB_val *k, const MDB_val *v)
{
    struct fsck *f = ctx;
    char token[API_ID_MAX + 1];
    const uint8_t *id = NULL;
    size_t id_len = 0;
    struct mandate_record m;
    struct card_record rec;

    f->n->mandates++;
    if (!split(k, token, sizeof(token), &id, &id_len) || id_len == 0 ||
        mandate_decode(&m, v->mv_data, v->mv_size) != 0) {
        problem(f, "mandates", "an entry of %zu bytes is malformed", k->mv_size);
        return 0;
    }
    (void)card_of(f, "mandates", token, m.merchant, &rec);
    return 0;
}

/* Whether the store holds the session tag key |version| names (0: the
 * token key vault-session-mac, of records from before STKs). A session or
 * QR request whose key is missing can never be checked. */
static bool
stk_known(struct fsck *f, uint32_t version)
{
    char name[32];
    MDB_val v;

    if (version == 0)
        return true;
    snprintf(name, sizeof(name), "stk.v%u", version);
    return store_get(f->t, STORE_DB_META, name, strlen(name), &v) == 0 &&
           v.mv_size == KEYS_WRAPPED_META_LEN;
}

static int
check_session(void *ctx, const MDB_val *k, const MDB_val *v)
{
    struct fsck *f = ctx;
    struct sale_session s;

    f->n->sessions++;
    if (k->mv_size != OPS_NONCE_LEN || ops_session_decode(&s, v->mv_data, v->mv_size) != 0)
        problem(f, "sessions", "an entry of %zu bytes is malformed", v->mv_size);
    else if (!stk_known(f, s.key_version))
        problem(f, "sessions", "a session of merchant %s names session tag key version %u, "
                "which the store does not hold", s.merchant, s.key_version);
    return 0;
}

/* Records under 'R' | request id; the order index 'O' | merchant 0x00 |
 * order id names the latest request of that order (ops/qr.h). */
static int
check_qr(void *ctx, const MDB_val *k, const MDB_val *v)
{
    struct fsck *f = ctx;
    const uint8_t *key = k->mv_data;
    char merchant[API_ID_MAX + 1], order[API_ID_MAX + 1];
    uint8_t rkey[QR_RECORD_KEY_LEN];
    const uint8_t *rest = NULL;
    size_t rest_len = 0;
    struct qr_record q;
    MDB_val tail, got;
    int r;

    f->n->qr++;
    if (k->mv_size == QR_RECORD_KEY_LEN && key[0] == 'R') {
        if (qr_record_decode(&q, v->mv_data, v->mv_size) != 0)
            problem(f, "qr", "a request record of %zu bytes does not decode", v->mv_size);
        else if (!stk_known(f, q.key_version))
            problem(f, "qr", "order %s of merchant %s names session tag key version %u, which "
                    "the store does not hold", q.order_id, q.merchant, q.key_version);
        return 0;
    }
    tail.mv_size = k->mv_size > 0 ? k->mv_size - 1 : 0;
    tail.mv_data = (uint8_t *)k->mv_data + 1;
    if (k->mv_size == 0 || key[0] != 'O' || !split(&tail, merchant, sizeof(merchant), &rest, &rest_len) ||
        !text(order, sizeof(order), rest, rest_len) || v->mv_size != QR_REQUEST_ID_LEN) {
        problem(f, "qr", "an entry of %zu bytes is malformed", k->mv_size);
        return 0;
    }
    rkey[0] = 'R';
    memcpy(rkey + 1, v->mv_data, QR_REQUEST_ID_LEN);
    r = store_get(f->t, STORE_DB_QR, rkey, sizeof(rkey), &got);
    if (r == -API_STATUS_NOT_FOUND ||
        (r == 0 && (qr_record_decode(&q, got.mv_data, got.mv_size) != 0 ||
                    strcmp(q.merchant, merchant) != 0 || strcmp(q.order_id, order) != 0)))
        problem(f, "qr", "order %s of merchant %s names no request of that order", order, merchant);
    return r == -API_STATUS_NOT_FOUND ? 0 : r;
}

/* ---- the walk ---------------------------------------------------------------- */

int
vault_fsck(struct store_txn *t, fsck_problem_fn fn, void *ctx, struct fsck_counts *out)
{
    static const struct {
        enum store_db db;
        store_visit2_fn visit;
    } walks[] = {
        {STORE_DB_CARDS, check_card},         {STORE_DB_FINGERPRINTS, check_fingerprint},
        {STORE_DB_CUSTOMERS, check_customer}, {STORE_DB_LINKS, check_link},
        {STORE_DB_MAPPINGS, check_mapping},   {STORE_DB_MANDATES, check_mandate},
        {STORE_DB_SESSIONS, check_session},   {STORE_DB_QR, check_qr},
    };
    struct fsck f = {.t = t, .fn = fn, .ctx = ctx, .n = out};
    uint64_t bad_seq = 0;
    MDB_val v;
    int r;

    memset(out, 0, sizeof(*out));
    r = store_get(t, STORE_DB_META, META_FPK_REBUILD, sizeof(META_FPK_REBUILD) - 1, &v);
    if (r != 0 && r != -API_STATUS_NOT_FOUND)
        return r;
    f.rebuilding = r == 0;
    out->fpk_rebuilding = f.rebuilding;
    for (size_t i = 0; i < sizeof(walks) / sizeof(walks[0]); i++)
        if ((r = store_each(t, walks[i].db, NULL, 0, walks[i].visit, &f)) != 0)
            return r;
    r = audit_verify(t, NULL, 0, &out->audit_entries, NULL, &bad_seq);
    if (r == -API_STATUS_SIGNATURE_INVALID)
        problem(&f, "audit", "the chain breaks at entry %llu", (unsigned long long)bad_seq);
    else if (r != 0)
        problem(&f, "audit", "an entry does not decode");
    return 0;
}
