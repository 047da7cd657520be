/*
 * reencrypt.c - the background job that moves card records from retired DEK
 * versions to the current one, after a rotation, and that rebuilds the
 * fingerprint index after a fingerprint-key rotation.
 *
 * Each batch is one write job in the writer thread, so it serializes with
 * every request's write and no record is read and written by two at once:
 * it scans the cards database from where the last batch stopped, takes up to
 * REENCRYPT_BATCH records sealed with an older DEK version, opens each under
 * its DEK and seals it again under the current one (both in the HSM, new IV),
 * and audits the batch, in the batch's transaction. A pass ends at the end of
 * the database; a pass that found nothing left makes the job idle until the
 * current version moves. The state that matters is in the records
 * themselves (each names its DEK version), so a restart resumes by scanning
 * again: nothing is re-encrypted twice and nothing is skipped.
 *
 * While the fingerprint index is rebuilt (a previous FPK is loaded), every
 * record is opened once per pass: its fingerprint under the current FPK
 * replaces the old one in the record and in the index. That is idempotent,
 * so the pass needs no state but its position; a restart starts it again.
 * The batch that ends a full pass removes the rebuild marker (in its own
 * transaction) and the previous FPK is retired.
 *
 * Progress (reencrypt.h): a pass starts with a count of the records on an
 * older DEK version, on a worker in a read transaction while no batch is
 * queued; the batches take their moves off it. The count also ends a run
 * whose last pass left nothing, so the common end of a run costs one read
 * scan rather than a pass of write batches.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "vault/log.h"
#include "vault/ops/ops.h"
#include "vault/ops/reencrypt.h"

static int
scan_visit(void *ctx, const MDB_val *key, const MDB_val *val)
{
    struct reencrypt_scan *sc = ctx;
    struct card_record rec;

    if (sc->skip_first) {
        sc->skip_first = false;
        if (key->mv_size == strlen(sc->last) && memcmp(key->mv_data, sc->last, key->mv_size) == 0)
            return 0;
    }
    if (key->mv_size > API_ID_MAX)
        return 0; /* not a token: left alone */
    memcpy(sc->last, key->mv_data, key->mv_size);
    sc->last[key->mv_size] = '\0';
    sc->seen++;
    if (record_decode(&rec, val->mv_data, val->mv_size) == 0 &&
        (rec.dek_version < sc->current || sc->rebuilding)) {
        memcpy(sc->tokens[sc->num], sc->last, key->mv_size + 1);
        if (rec.dek_version < sc->current)
            sc->num_old++;
        sc->num++;
    }
    return sc->num == REENCRYPT_BATCH || sc->seen == REENCRYPT_SCAN_MAX ? 1 : 0;
}

/* Opens the record; seals it under |current| if it is on an older DEK;
 * while the index is rebuilt, moves its fingerprint to the current FPK. */
static int
move_record(struct vault_service *svc, struct store_txn *t, const char *token, uint32_t current,
            hsm_key *fpk)
{
    uint8_t fp[RECORD_FINGERPRINT_LEN], key[FP_KEY_LEN_MAX];
    struct card_record rec;
    struct card_secret sec;
    bool changed = false;
    hsm_key *old;
    MDB_val v;
    int r;

    memset(&sec, 0, sizeof(sec));
    if ((r = store_get(t, STORE_DB_CARDS, token, strlen(token), &v)) != 0 ||
        (r = record_decode(&rec, v.mv_data, v.mv_size)) != 0)
        return r;
    if (rec.dek_version >= current && fpk == NULL)
        return 0;
    if ((old = keys_dek(&svc->keys, rec.dek_version)) == NULL)
        return -API_STATUS_INTERNAL;
    if ((r = record_open(t->hsm, old, token, &rec, &sec)) != 0)
        goto out;
    if (fpk != NULL) {
        if ((r = ops_card_fingerprint(t->hsm, fpk, rec.merchant, sec.pan, fp)) != 0)
            goto out;
        if (CRYPTO_memcmp(fp, rec.fingerprint, sizeof(fp)) != 0) {
            r = store_del(t, STORE_DB_FINGERPRINTS, key, ops_fp_key(key, rec.merchant, rec.fingerprint),
                          NULL, 0);
            if (r != 0 && r != -API_STATUS_NOT_FOUND)
                goto out;
            memcpy(rec.fingerprint, fp, sizeof(fp));
            if ((r = store_put(t, STORE_DB_FINGERPRINTS, key, ops_fp_key(key, rec.merchant, fp),
                               token, strlen(token), 0)) != 0)
                goto out;
            changed = true;
        }
    }
    /* Not counted toward automatic rotation (ops/dekpolicy.h): a move is
     * bounded by the number of records, and counting it would make a small
     * limit rotate again after every pass. */
    if (rec.dek_version < current) {
        if ((r = record_seal(t->hsm, keys_dek(&svc->keys, current), current, token, &rec, &sec)) != 0)
            goto out;
        changed = true;
    }
    r = changed ? ops_card_save(t, token, &rec, 0) : 0;
out:
    record_secret_wipe(&sec);
    return r;
}

static int
batch_apply(struct store_write *w, struct store_txn *t)
{
    struct reencrypt *re = (struct reencrypt *)w;
    struct vault_service *svc = re->svc;
    struct reencrypt_scan *sc = &re->scan;
    char detail[AUDIT_DETAIL_MAX + 1];
    struct audit_event ev = {.event = "dek_reencrypt", .client = "tokenvaultd",
                             .status = API_STATUS_OK};
    int r;

    hsm_key *fpk, *prev = NULL;
    uint32_t fpk_version = 0;

    if (t->hsm == NULL)
        return -API_STATUS_HSM_UNAVAILABLE;
    memset(sc->tokens, 0, sizeof(sc->tokens));
    sc->current = keys_dek_current(&svc->keys);
    fpk = keys_fpk(&svc->keys, &fpk_version, &prev);
    /* A rebuild pass starts from the first record: a pass begun before the
     * rebuild did not look at the records behind it. */
    if (prev != NULL && !sc->rebuilding)
        sc->last[0] = '\0';
    sc->rebuilding = prev != NULL;
    sc->rebuilt = false;
    sc->num = sc->seen = sc->num_old = 0;
    sc->skip_first = sc->last[0] != '\0';
    r = store_each(t, STORE_DB_CARDS, sc->last[0] != '\0' ? sc->last : NULL, strlen(sc->last),
                   scan_visit, sc);
    if (r < 0 && r != -API_STATUS_NOT_FOUND)
        return r;
    /* The visitor stops early only on a full batch or the scan bound. */
    sc->at_end = sc->num < REENCRYPT_BATCH && sc->seen < REENCRYPT_SCAN_MAX;
    for (size_t i = 0; i < sc->num; i++)
        if ((r = move_record(svc, t, sc->tokens[i], sc->current, sc->rebuilding ? fpk : NULL)) != 0)
            return r;
    /* The end of a rebuild pass: every record is indexed under the current
     * FPK. Removing the marker commits with the last batch. */
    if (sc->rebuilding && sc->at_end) {
        if ((r = keys_fpk_rebuilt(&svc->audit, t, fpk_version)) != 0)
            return r;
        sc->rebuilt = true;
    }
    if (sc->num > 0) {
        snprintf(detail, sizeof(detail), "n=%zu to v%u", sc->num, sc->current);
        ev.detail = detail;
        if ((r = audit_append(&svc->audit, t, &ev)) != 0)
            return r;
    }
    return 0;
}

/* Every record is on |version|: the job is idle until the version moves.
 * Called by the holder of |busy|. */
static void
run_complete(struct reencrypt *re, uint32_t version)
{
    struct vlog_line l;

    atomic_store(&re->clean_version, version);
    atomic_store(&re->remaining, 0);
    re->run_open = false;
    if (vlog_begin(&l, VAULT_LOG_INFO, "reencrypt_complete")) {
        vlog_u64(&l, "dek_version", version);
        vlog_u64(&l, "moved_since_start", atomic_load(&re->moved));
        vlog_u64(&l, "run_total", atomic_load(&re->total));
        vlog_end(&l);
    }
}

static void
batch_done(struct store_write *w, int result)
{
    struct reencrypt *re = (struct reencrypt *)w;
    struct reencrypt_scan *sc = &re->scan;
    uint64_t left;

    if (result != 0) {
        /* Nothing of the batch committed; the next tick tries again from
         * the same place. */
        vlog_msg(VAULT_LOG_ERROR, "reencrypt_failed", "status", api_status_name((unsigned)-result));
    } else {
        if (sc->rebuilt) {
            keys_fpk_retire(&re->svc->keys);
            sc->rebuilding = false;
            vlog_msg(VAULT_LOG_INFO, "fpk_rebuilt", NULL, NULL);
        }
        atomic_fetch_add(&re->moved, sc->num);
        re->pass_moved += sc->num;
        /* Below zero only when the count missed records (the version moved
         * after it): the next tick counts again. */
        left = atomic_load(&re->remaining);
        atomic_store(&re->remaining, left > sc->num_old ? left - sc->num_old : 0);
        re->run_moved += sc->num_old;
        if (sc->at_end) {
            /* A pass that moved nothing found every record current. */
            if (re->pass_moved == 0)
                run_complete(re, sc->current);
            re->pass_moved = 0;
            re->counted_version = 0; /* the next pass starts with a count */
            sc->last[0] = '\0';
        }
    }
    atomic_store(&re->busy, false);
}

/* ---- the count ---------------------------------------------------------------- */

struct count_ctx {
    uint32_t current;
    uint64_t found;
};

static int
count_visit(void *ctx, const MDB_val *key, const MDB_val *val)
{
    struct count_ctx *c = ctx;
    struct card_record rec;

    /* As scan_visit: what is not a token or not a record is left alone. */
    if (key->mv_size <= API_ID_MAX && record_decode(&rec, val->mv_data, val->mv_size) == 0 &&
        rec.dek_version < c->current)
        c->found++;
    return 0;
}

/* A worker, while |busy| keeps every batch out. */
static void
count_work(uv_work_t *w)
{
    struct reencrypt *re = w->data;
    struct count_ctx c = {.current = keys_dek_current(&re->svc->keys)};
    struct store_txn t = {0};
    int r = 0;

    /* Version 1 has no older version: nothing to read. */
    if (c.current > 1) {
        if ((r = store_read_begin(re->svc->store, &t)) == 0)
            r = store_each(&t, STORE_DB_CARDS, NULL, 0, count_visit, &c);
        store_read_end(&t);
    }
    re->count_current = c.current;
    re->count_found = c.found;
    re->count_result = r;
}

static void
count_after(uv_work_t *w, int status)
{
    struct reencrypt *re = w->data;
    struct vault_service *svc = re->svc;
    hsm_key *prev = NULL;

    if (status != 0 || re->count_result != 0) {
        /* Counted again at the next tick; no batch runs before. */
        vlog_msg(VAULT_LOG_ERROR, "reencrypt_count_failed", "status",
                 status != 0 ? uv_err_name(status)
                             : api_status_name((unsigned)-re->count_result));
        atomic_store(&re->busy, false);
        return;
    }
    if (!re->run_open) {
        re->run_open = true;
        re->run_moved = 0;
    }
    re->counted_version = re->count_current;
    atomic_store(&re->remaining, re->count_found);
    atomic_store(&re->total, re->run_moved + re->count_found);
    atomic_store(&re->counted_once, true);
    /* Nothing left on an older version and no index to rebuild: the run is
     * complete; a pass would only find the same. */
    (void)keys_fpk(&svc->keys, NULL, &prev);
    if (re->count_found == 0 && prev == NULL && re->count_current == keys_dek_current(&svc->keys)) {
        run_complete(re, re->count_current);
        re->pass_moved = 0;
        re->counted_version = 0;
        re->scan.last[0] = '\0';
    }
    atomic_store(&re->busy, false);
}

void
ops_reencrypt_tick(struct vault_service *svc)
{
    struct reencrypt *re = &svc->reencrypt;

    if (svc->sealed || !ops_reencrypt_pending(svc) || atomic_exchange(&re->busy, true))
        return;
    re->svc = svc;
    /* A pass, and a version that moved during one, starts with a count. */
    if (re->counted_version != keys_dek_current(&svc->keys)) {
        re->count_work.data = re;
        if (uv_queue_work(svc->loop, &re->count_work, count_work, count_after) != 0)
            atomic_store(&re->busy, false);
        return;
    }
    re->w.apply = batch_apply;
    re->w.done = batch_done;
    if (store_write_submit(svc->store, &re->w) != 0)
        atomic_store(&re->busy, false);
}

bool
ops_reencrypt_pending(const struct vault_service *svc)
{
    uint32_t current = keys_dek_current(&svc->keys);
    hsm_key *prev = NULL;

    (void)keys_fpk(&svc->keys, NULL, &prev);
    if (svc->sealed)
        return false;
    return prev != NULL || (current > 1 && atomic_load(&svc->reencrypt.clean_version) != current);
}

bool
ops_reencrypt_progress(const struct vault_service *svc, uint64_t *out_remaining, uint64_t *out_total)
{
    const struct reencrypt *re = &svc->reencrypt;
    uint64_t remaining, total;

    if (svc->sealed || !atomic_load(&re->counted_once))
        return false;
    remaining = atomic_load(&re->remaining);
    total = atomic_load(&re->total);
    *out_remaining = remaining;
    /* A count stores remaining, then total: read between the two, a new
     * run's remaining may exceed the last run's total. */
    *out_total = total > remaining ? total : remaining;
    return true;
}
