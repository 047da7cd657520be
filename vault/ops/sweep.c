/*
 * sweep.c - the expiry index and its sweeper; see sweep.h.
 */
#include "vault/ops/sweep.h"

#include <string.h>

#include "vault/be64.h"
#include "vault/log.h"
#include "vault/ops/ops.h"

/* Longest target key: a replay key (u8 wallet | transaction id) or a token. */
#define TARGET_MAX (1u + API_TRANSACTION_ID_MAX)
#define EXPIRY_KEY_MAX (8u + 1u + TARGET_MAX)

int
ops_sweep_schedule(struct store_txn *t, uint64_t at_ms, enum sweep_kind kind, const void *key,
                   size_t key_len)
{
    uint8_t k[EXPIRY_KEY_MAX];

    if (key_len == 0 || key_len > TARGET_MAX)
        return -API_STATUS_INTERNAL;
    vault_put_be64(k, at_ms);
    k[8] = (uint8_t)kind;
    memcpy(k + 9, key, key_len);
    return store_put(t, STORE_DB_EXPIRY, k, 9 + key_len, "", 0, 0);
}

/* Due entries, collected first: the cursor is not used while deleting. */
struct due {
    uint64_t now_ms;
    size_t n;
    size_t len[SWEEP_BATCH];
    uint8_t key[SWEEP_BATCH][EXPIRY_KEY_MAX];
};

static int
collect(void *ctx, const MDB_val *key, const MDB_val *val)
{
    struct due *d = ctx;
    const uint8_t *k = key->mv_data;
    uint64_t at = 0;

    (void)val;
    if (key->mv_size < 10 || key->mv_size > EXPIRY_KEY_MAX)
        return 0; /* not ours; never written by ops_sweep_schedule */
    at = vault_get_be64(k);
    if (at > d->now_ms)
        return 1; /* key order is time order: the rest is later */
    memcpy(d->key[d->n], k, key->mv_size);
    d->len[d->n++] = key->mv_size;
    return d->n == SWEEP_BATCH;
}

/* The replay entry, if it still expires when this index entry says. */
static int
sweep_replay(struct store_txn *t, const uint8_t *k, size_t len)
{
    MDB_val v;
    int r = store_get(t, STORE_DB_REPLAY, k + 9, len - 9, &v);

    if (r == -API_STATUS_NOT_FOUND)
        return 0;
    if (r != 0)
        return r;
    if (v.mv_size != 8 || memcmp(v.mv_data, k, 8) != 0)
        return 0; /* claimed again since: its own index entry removes it */
    return store_del(t, STORE_DB_REPLAY, k + 9, len - 9, NULL, 0);
}

/* The DPAN record, if it is still one that expires by now. */
static int
sweep_dpan(struct store_txn *t, const uint8_t *k, size_t len, uint64_t now_ms)
{
    struct card_record rec;
    MDB_val v;
    int r = store_get(t, STORE_DB_CARDS, k + 9, len - 9, &v);

    if (r == -API_STATUS_NOT_FOUND)
        return 0;
    if (r != 0)
        return r;
    if (record_decode(&rec, v.mv_data, v.mv_size) != 0 || rec.kind != API_CARD_KIND_DPAN ||
        rec.expires_at == 0 || rec.expires_at * 1000u > now_ms)
        return 0;
    return store_del(t, STORE_DB_CARDS, k + 9, len - 9, NULL, 0);
}

static int
sweep_apply(struct store_write *w, struct store_txn *t)
{
    struct sweep *sw = (struct sweep *)w;
    static struct due d; /* the writer thread's only: one sweep at a time */
    int r;

    d.now_ms = sw->now_ms;
    d.n = 0;
    sw->batch = 0;
    /* store_each passes collect's 1 (stop) back; only a negative is an error. */
    if ((r = store_each(t, STORE_DB_EXPIRY, NULL, 0, collect, &d)) < 0)
        return r;
    for (size_t i = 0; i < d.n; i++) {
        switch (d.key[i][8]) {
        case SWEEP_REPLAY:
            r = sweep_replay(t, d.key[i], d.len[i]);
            break;
        case SWEEP_DPAN:
            r = sweep_dpan(t, d.key[i], d.len[i], d.now_ms);
            break;
        case SWEEP_QR:
            r = ops_qr_sweep(t, d.key[i] + 9, d.len[i] - 9, d.now_ms);
            break;
        case SWEEP_SESSION:
            r = ops_session_sweep(t, d.key[i] + 9, d.len[i] - 9, d.now_ms);
            break;
        default:
            r = 0;
        }
        if (r == 0)
            r = store_del(t, STORE_DB_EXPIRY, d.key[i], d.len[i], NULL, 0);
        if (r != 0 && r != -API_STATUS_NOT_FOUND)
            return r;
        sw->batch++;
    }
    return 0;
}

static void
sweep_done(struct store_write *w, int result)
{
    struct sweep *sw = (struct sweep *)w;

    if (result == 0)
        atomic_fetch_add(&sw->swept, sw->batch);
    else
        vlog_msg(VAULT_LOG_WARN, "sweep_failed", "status", api_status_name((unsigned)-result));
    atomic_store(&sw->busy, false);
}

void
ops_sweep_tick(struct vault_service *svc)
{
    struct sweep *sw = &svc->sweep;
    bool idle = false;

    if (svc->sealed || svc->stopping || !atomic_compare_exchange_strong(&sw->busy, &idle, true))
        return;
    sw->svc = svc;
    sw->now_ms = audit_now_ms();
    sw->w.apply = sweep_apply;
    sw->w.done = sweep_done;
    if (store_write_submit(svc->store, &sw->w) != 0)
        atomic_store(&sw->busy, false);
}
