/*
 * store.c - the LMDB environment, its databases and the writer thread.
 *
 * Group commit: the writer takes every job waiting (up to STORE_BATCH_MAX),
 * opens one write transaction, runs each job's apply in a nested transaction
 * of it (so one job's failure discards only that job's changes), commits and
 * syncs once, and only then tells each job its outcome. A request is thus
 * never answered before its changes are on disk, and one fsync serves many.
 */
#include "vault/store.h"

#include <errno.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "vault/log.h"

/* Names of the databases, in enum order. */
static const struct {
    const char *name;
    unsigned flags;
} db_defs[STORE_DB_COUNT_] = {
    [STORE_DB_META] = {"meta", 0},
    [STORE_DB_CARDS] = {"cards", 0},
    [STORE_DB_FINGERPRINTS] = {"fingerprints", 0},
    [STORE_DB_CUSTOMERS] = {"customers", MDB_DUPSORT},
    [STORE_DB_LINKS] = {"links", MDB_DUPSORT},
    [STORE_DB_AUDIT] = {"audit", 0},
    [STORE_DB_REPLAY] = {"replay", 0},
    [STORE_DB_EXPIRY] = {"expiry", 0},
    [STORE_DB_SESSIONS] = {"sessions", 0},
    [STORE_DB_MAPPINGS] = {"mappings", 0},
    [STORE_DB_MANDATES] = {"mandates", 0},
    [STORE_DB_QR] = {"qr", 0},
};

/* Named databases LMDB must make room for: today's and those later issues
 * add (mappings, sessions, mandates, qr, replay), so an upgrade does not need
 * a larger maxdbs than the store was created with. */
#define STORE_MAXDBS 32u

#define META_SCHEMA "schema"

struct vault_store {
    MDB_env *env;
    bool readonly; /* store_open_readonly: no writer, no changes */
    MDB_dbi dbi[STORE_DB_COUNT_];

    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* the writer waits for jobs */
    pthread_cond_t cv_done; /* store_write_wait waits for its job */
    struct store_write *head, *tail;
    unsigned queued, queue_max;
    bool stopping, running;
    pthread_t thread;
    hsm *hsm;

    /* statistics, under mu */
    uint64_t commits, jobs;
    uint64_t batch_hist[STORE_BATCH_BUCKETS];
};

static _Thread_local int last_mdb_error;

int
store_last_mdb_error(void)
{
    return last_mdb_error;
}

const char *
store_db_name(enum store_db db)
{
    return (unsigned)db < STORE_DB_COUNT_ ? db_defs[db].name : "?";
}

/* Maps an MDB_ code to a status, once, keeping the code for the log. */
static int
map_mdb(int rc)
{
    last_mdb_error = rc;
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return -API_STATUS_NOT_FOUND;
    case MDB_KEYEXIST:
        return -API_STATUS_CONFLICT;
    case MDB_MAP_FULL:
    case MDB_READERS_FULL:
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case MDB_PAGE_FULL:
    case MDB_MAP_RESIZED:
    case ENOSPC:
    case EIO:
    case ENOMEM:
        return -API_STATUS_STORE_UNAVAILABLE;
    default:
        return -API_STATUS_INTERNAL;
    }
}

static void
log_mdb(const char *event, int rc)
{
    struct vlog_line l;

    if (vlog_begin(&l, VAULT_LOG_ERROR, event)) {
        vlog_str(&l, "mdb", mdb_strerror(rc));
        vlog_i64(&l, "code", rc);
        vlog_end(&l);
    }
}

static int
check_dir(const char *path, char *err, size_t err_len)
{
    struct stat st;

    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_len, "%s: cannot create: %s", path, strerror(errno));
        return -API_STATUS_STORE_UNAVAILABLE;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, err_len, "%s: not a directory", path);
        return -API_STATUS_STORE_UNAVAILABLE;
    }
    /* The files hold ciphertext and fingerprints only, but their layout and
     * counts are still nobody else's business. */
    if ((st.st_mode & 077) != 0) {
        snprintf(err, err_len, "%s: mode %04o lets others in; use 0700", path,
                 (unsigned)(st.st_mode & 07777));
        return -API_STATUS_STORE_UNAVAILABLE;
    }
    return 0;
}

/* Opens the databases and checks or stamps the schema version, in one write
 * transaction. */
static int
open_dbs(struct vault_store *s, char *err, size_t err_len)
{
    MDB_txn *txn = NULL;
    MDB_val k = {sizeof(META_SCHEMA) - 1, (void *)META_SCHEMA}, v;
    unsigned create = s->readonly ? 0 : MDB_CREATE;
    uint8_t ver[4];
    int rc, r;

    if ((rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn)) != 0)
        goto mdb_fail;
    for (unsigned i = 0; i < STORE_DB_COUNT_; i++)
        if ((rc = mdb_dbi_open(txn, db_defs[i].name, db_defs[i].flags | create, &s->dbi[i])) != 0)
            goto mdb_fail;
    rc = mdb_get(txn, s->dbi[STORE_DB_META], &k, &v);
    if (rc == MDB_NOTFOUND && s->readonly) {
        snprintf(err, err_len, "store: no schema version: not a tokenvault store");
        r = -API_STATUS_INTERNAL;
        goto out;
    } else if (rc == MDB_NOTFOUND) {
        ver[0] = (uint8_t)(STORE_SCHEMA_VERSION >> 24);
        ver[1] = (uint8_t)(STORE_SCHEMA_VERSION >> 16);
        ver[2] = (uint8_t)(STORE_SCHEMA_VERSION >> 8);
        ver[3] = (uint8_t)STORE_SCHEMA_VERSION;
        v.mv_size = sizeof(ver);
        v.mv_data = ver;
        if ((rc = mdb_put(txn, s->dbi[STORE_DB_META], &k, &v, MDB_NOOVERWRITE)) != 0)
            goto mdb_fail;
    } else if (rc != 0) {
        goto mdb_fail;
    } else {
        const uint8_t *p = v.mv_data;
        uint32_t have;

        if (v.mv_size != 4) {
            snprintf(err, err_len, "store: meta schema record is malformed");
            r = -API_STATUS_INTERNAL;
            goto out;
        }
        have = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (have != STORE_SCHEMA_VERSION) {
            snprintf(err, err_len, "store: schema version %u, this build reads %u only", have,
                     STORE_SCHEMA_VERSION);
            r = -API_STATUS_INTERNAL;
            goto out;
        }
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        goto mdb_fail;
    return 0;

mdb_fail:
    snprintf(err, err_len, "store: %s", mdb_strerror(rc));
    r = map_mdb(rc);
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    return r;
}

/* Both opens: |map_size| 0 keeps the size the store recorded. */
static int
open_env(struct vault_store **out, const char *path, uint64_t map_size, bool readonly, char *err,
         size_t err_len)
{
    struct vault_store *s = NULL;
    int rc, r;

    if ((s = calloc(1, sizeof(*s))) == NULL) {
        snprintf(err, err_len, "store: out of memory");
        return -API_STATUS_INTERNAL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv_work, NULL);
    pthread_cond_init(&s->cv_done, NULL);
    if ((rc = mdb_env_create(&s->env)) != 0 || (rc = mdb_env_set_maxdbs(s->env, STORE_MAXDBS)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, STORE_READERS_MAX)) != 0 ||
        (map_size != 0 && (rc = mdb_env_set_mapsize(s->env, (size_t)map_size)) != 0)) {
        snprintf(err, err_len, "store: %s", mdb_strerror(rc));
        r = map_mdb(rc);
        goto fail;
    }
    /* MDB_NOTLS: read transactions are begun and ended by libuv's worker
     * threads, which LMDB must not pin to reader slots. Durability is LMDB's
     * default (sync at every commit): group commit pays for it. */
    s->readonly = readonly;
    rc = mdb_env_open(s->env, path, MDB_NOTLS | (readonly ? MDB_RDONLY : 0), 0600);
    if (rc != 0) {
        snprintf(err, err_len, "store: %s: %s", path, mdb_strerror(rc));
        r = map_mdb(rc);
        goto fail;
    }
    /* A process killed mid-read (SIGKILL, a crash) leaves its reader slots
     * taken, and a slot of a dead pid pins the pages it saw: the map would
     * fill with pages nobody can free. LMDB resets the reader table only
     * when the opener is alone; if another process keeps the environment
     * open (a backup, tokenvault-admin check), the dead slots stay. Clear
     * them whenever the service opens its store; live readers are kept. */
    if (!readonly) {
        int dead = 0;

        if ((rc = mdb_reader_check(s->env, &dead)) != 0) {
            snprintf(err, err_len, "store: %s: reader check: %s", path, mdb_strerror(rc));
            r = map_mdb(rc);
            goto fail;
        }
        if (dead > 0) {
            struct vlog_line l;

            if (vlog_begin(&l, VAULT_LOG_INFO, "store_stale_readers_cleared")) {
                vlog_u64(&l, "count", (uint64_t)dead);
                vlog_end(&l);
            }
        }
    }
    if ((r = open_dbs(s, err, err_len)) != 0)
        goto fail;
    *out = s;
    return 0;

fail:
    store_close(s);
    return r;
}

int
store_open(struct vault_store **out, const char *path, uint64_t map_size, char *err, size_t err_len)
{
    int r;

    if ((r = check_dir(path, err, err_len)) != 0)
        return r;
    return open_env(out, path, map_size, false, err, err_len);
}

int
store_open_readonly(struct vault_store **out, const char *path, char *err, size_t err_len)
{
    return open_env(out, path, 0, true, err, err_len);
}

void
store_close(struct vault_store *s)
{
    if (s == NULL)
        return;
    store_writer_stop(s);
    if (s->env != NULL)
        mdb_env_close(s->env);
    pthread_cond_destroy(&s->cv_work);
    pthread_cond_destroy(&s->cv_done);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- reads ---------------------------------------------------------------- */

int
store_read_begin(struct vault_store *s, struct store_txn *out)
{
    int rc;

    out->store = s;
    out->hsm = NULL;
    out->txn = NULL;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &out->txn)) != 0) {
        out->txn = NULL;
        log_mdb("store_read_begin", rc);
        return map_mdb(rc);
    }
    return 0;
}

void
store_read_end(struct store_txn *t)
{
    if (t->txn != NULL)
        mdb_txn_abort(t->txn);
    t->txn = NULL;
}

static int
key_ok(size_t key_len)
{
    return key_len > 0 && key_len <= STORE_KEY_MAX ? 0 : -API_STATUS_INTERNAL;
}

int
store_get(struct store_txn *t, enum store_db db, const void *key, size_t key_len, MDB_val *out)
{
    MDB_val k = {key_len, (void *)key};
    int r;

    if ((r = key_ok(key_len)) != 0)
        return r;
    return map_mdb(mdb_get(t->txn, t->store->dbi[db], &k, out));
}

/* Opens a cursor on |db|; the caller closes it. */
static int
cursor_open(struct store_txn *t, enum store_db db, MDB_cursor **out)
{
    int rc = mdb_cursor_open(t->txn, t->store->dbi[db], out);

    return rc == 0 ? 0 : map_mdb(rc);
}

int
store_get_both(struct store_txn *t, enum store_db db, const void *key, size_t key_len,
               const void *val, size_t val_len)
{
    MDB_cursor *c = NULL;
    MDB_val k = {key_len, (void *)key}, v = {val_len, (void *)val};
    int r;

    if ((r = key_ok(key_len)) != 0 || (r = cursor_open(t, db, &c)) != 0)
        return r;
    r = map_mdb(mdb_cursor_get(c, &k, &v, MDB_GET_BOTH));
    mdb_cursor_close(c);
    return r;
}

int
store_dup_count(struct store_txn *t, enum store_db db, const void *key, size_t key_len, size_t *out)
{
    MDB_cursor *c = NULL;
    MDB_val k = {key_len, (void *)key}, v;
    size_t n = 0;
    int r;

    if ((r = key_ok(key_len)) != 0 || (r = cursor_open(t, db, &c)) != 0)
        return r;
    r = map_mdb(mdb_cursor_get(c, &k, &v, MDB_SET));
    if (r == -API_STATUS_NOT_FOUND) {
        *out = 0;
        r = 0;
    } else if (r == 0 && (r = map_mdb(mdb_cursor_count(c, &n))) == 0) {
        *out = (size_t)n;
    }
    mdb_cursor_close(c);
    return r;
}

int
store_dup_each(struct store_txn *t, enum store_db db, const void *key, size_t key_len,
               store_visit_fn fn, void *ctx)
{
    MDB_cursor *c = NULL;
    MDB_val k = {key_len, (void *)key}, v;
    int r, rc;

    if ((r = key_ok(key_len)) != 0 || (r = cursor_open(t, db, &c)) != 0)
        return r;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET);
    for (r = 0; rc == 0 && r == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP))
        r = fn(ctx, &v);
    if (r == 0 && rc != MDB_NOTFOUND)
        r = map_mdb(rc);
    mdb_cursor_close(c);
    return r;
}

int
store_last(struct store_txn *t, enum store_db db, MDB_val *out_key, MDB_val *out_val)
{
    MDB_cursor *c = NULL;
    int r;

    if ((r = cursor_open(t, db, &c)) != 0)
        return r;
    r = map_mdb(mdb_cursor_get(c, out_key, out_val, MDB_LAST));
    mdb_cursor_close(c);
    return r;
}

int
store_each(struct store_txn *t, enum store_db db, const void *from, size_t from_len,
           store_visit2_fn fn, void *ctx)
{
    MDB_cursor *c = NULL;
    MDB_val k = {from_len, (void *)from}, v;
    int r, rc;

    if ((r = cursor_open(t, db, &c)) != 0)
        return r;
    rc = mdb_cursor_get(c, &k, &v, from != NULL ? MDB_SET_RANGE : MDB_FIRST);
    for (r = 0; rc == 0 && r == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        r = fn(ctx, &k, &v);
    if (r == 0 && rc != MDB_NOTFOUND)
        r = map_mdb(rc);
    mdb_cursor_close(c);
    return r;
}

/* ---- writes ----------------------------------------------------------------- */

int
store_put(struct store_txn *t, enum store_db db, const void *key, size_t key_len, const void *val,
          size_t val_len, unsigned flags)
{
    MDB_val k = {key_len, (void *)key}, v = {val_len, (void *)val};
    unsigned mf = 0;
    int r;

    if ((r = key_ok(key_len)) != 0)
        return r;
    if (db_defs[db].flags & MDB_DUPSORT)
        mf = MDB_NODUPDATA;
    else if (flags & STORE_PUT_NEW)
        mf = MDB_NOOVERWRITE;
    return map_mdb(mdb_put(t->txn, t->store->dbi[db], &k, &v, mf));
}

int
store_del(struct store_txn *t, enum store_db db, const void *key, size_t key_len, const void *val,
          size_t val_len)
{
    MDB_val k = {key_len, (void *)key}, v = {val_len, (void *)val};
    int r;

    if ((r = key_ok(key_len)) != 0)
        return r;
    return map_mdb(mdb_del(t->txn, t->store->dbi[db], &k, val != NULL ? &v : NULL));
}

/* ---- the writer ---------------------------------------------------------------- */

static unsigned
batch_bucket(unsigned n)
{
    unsigned b = 0;

    while (n > 1 && b < STORE_BATCH_BUCKETS - 1) {
        n >>= 1;
        b++;
    }
    return b;
}

/* Runs one batch: every job's apply in its own nested transaction, one commit,
 * then every job's done. */
static void
run_batch(struct vault_store *s, hsm_session *hs, struct store_write *batch, unsigned n)
{
    struct store_txn parent = {NULL, s, hs}, child = {NULL, s, hs};
    struct store_write *w, *next;
    int rc, commit_r = 0;
    unsigned kept = 0;

    rc = mdb_txn_begin(s->env, NULL, 0, &parent.txn);
    if (rc != 0) {
        log_mdb("store_write_begin", rc);
        commit_r = map_mdb(rc) == -API_STATUS_INTERNAL ? -API_STATUS_INTERNAL
                                                       : -API_STATUS_STORE_UNAVAILABLE;
        for (w = batch; w != NULL; w = w->next_)
            w->result_ = commit_r;
        goto done;
    }
    for (w = batch; w != NULL; w = w->next_) {
        rc = mdb_txn_begin(s->env, parent.txn, 0, &child.txn);
        if (rc != 0) {
            log_mdb("store_write_nested", rc);
            w->result_ = -API_STATUS_STORE_UNAVAILABLE;
            continue;
        }
        w->result_ = w->apply(w, &child);
        if (w->result_ == 0) {
            rc = mdb_txn_commit(child.txn);
            if (rc != 0) {
                log_mdb("store_write_nested_commit", rc);
                w->result_ = -API_STATUS_STORE_UNAVAILABLE;
            } else {
                kept++;
            }
        } else {
            mdb_txn_abort(child.txn);
        }
        child.txn = NULL;
    }
    rc = mdb_txn_commit(parent.txn);
    if (rc != 0) {
        log_mdb("store_commit", rc);
        commit_r = -API_STATUS_STORE_UNAVAILABLE;
        for (w = batch; w != NULL; w = w->next_)
            if (w->result_ == 0)
                w->result_ = commit_r;
        kept = 0;
    }

done:
    pthread_mutex_lock(&s->mu);
    if (commit_r == 0) {
        s->commits++;
        s->jobs += kept;
        s->batch_hist[batch_bucket(n)]++;
    }
    pthread_mutex_unlock(&s->mu);
    for (w = batch; w != NULL; w = next) {
        next = w->next_; /* done may free w */
        w->done(w, w->result_);
    }
}

static void *
writer_main(void *arg)
{
    struct vault_store *s = arg;
    hsm_session *hs;

    for (;;) {
        struct store_write *batch = NULL, **tail = &batch;
        unsigned n = 0;

        pthread_mutex_lock(&s->mu);
        while (s->head == NULL && !s->stopping)
            pthread_cond_wait(&s->cv_work, &s->mu);
        if (s->head == NULL && s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        while (s->head != NULL && n < STORE_BATCH_MAX) {
            struct store_write *w = s->head;

            s->head = w->next_;
            w->next_ = NULL;
            *tail = w;
            tail = &w->next_;
            n++;
        }
        if (s->head == NULL)
            s->tail = NULL;
        s->queued -= n;
        pthread_mutex_unlock(&s->mu);

        /* A session per batch, from the pool: one that failed goes back
         * closed and the next batch gets a fresh one once the token answers
         * again. Without one, a job that needs the HSM sees hsm == NULL and
         * answers HSM_UNAVAILABLE; the others commit. */
        hs = NULL;
        if (s->hsm != NULL && hsm_session_acquire(s->hsm, &hs) != 0)
            hs = NULL;
        run_batch(s, hs, batch, n);
        hsm_session_release(hs);
    }
    return NULL;
}

int
store_writer_start(struct vault_store *s, hsm *h, unsigned queue_max)
{
    int rc;

    if (s->running || s->readonly)
        return -API_STATUS_INTERNAL;
    s->hsm = h;
    s->queue_max = queue_max;
    s->stopping = false;
    if ((rc = pthread_create(&s->thread, NULL, writer_main, s)) != 0) {
        vlog_msg(VAULT_LOG_ERROR, "store_writer_start", "reason", strerror(rc));
        return -API_STATUS_INTERNAL;
    }
    s->running = true;
    return 0;
}

int
store_write_submit(struct vault_store *s, struct store_write *w)
{
    int r = 0;

    w->next_ = NULL;
    w->result_ = 0;
    pthread_mutex_lock(&s->mu);
    if (!s->running || s->stopping)
        r = -API_STATUS_SHUTTING_DOWN;
    else if (s->queued >= s->queue_max)
        r = -API_STATUS_OVERLOADED;
    if (r == 0) {
        if (s->tail != NULL)
            s->tail->next_ = w;
        else
            s->head = w;
        s->tail = w;
        s->queued++;
        pthread_cond_signal(&s->cv_work);
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* store_write_wait wraps the caller's job: its done records the result and
 * wakes the waiter, after running the caller's own done. */
struct wait_job {
    struct store_write w;
    struct store_write *inner;
    struct vault_store *s;
    bool finished;
    int result;
};

static int
wait_apply(struct store_write *w, struct store_txn *t)
{
    struct wait_job *j = (struct wait_job *)w;

    return j->inner->apply(j->inner, t);
}

static void
wait_done(struct store_write *w, int result)
{
    struct wait_job *j = (struct wait_job *)w;

    if (j->inner->done != NULL)
        j->inner->done(j->inner, result);
    pthread_mutex_lock(&j->s->mu);
    j->result = result;
    j->finished = true;
    pthread_cond_broadcast(&j->s->cv_done);
    pthread_mutex_unlock(&j->s->mu);
}

int
store_write_wait(struct vault_store *s, struct store_write *w)
{
    struct wait_job j = {.w = {.apply = wait_apply, .done = wait_done}, .inner = w, .s = s};
    int r;

    if ((r = store_write_submit(s, &j.w)) != 0)
        return r;
    pthread_mutex_lock(&s->mu);
    while (!j.finished)
        pthread_cond_wait(&s->cv_done, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return j.result;
}

void
store_writer_stop(struct vault_store *s)
{
    if (s == NULL || !s->running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->running = false;
}

/* ---- statistics ----------------------------------------------------------------- */

int
store_stats_get(struct vault_store *s, struct store_stats *out)
{
    struct store_txn t;
    MDB_envinfo info;
    MDB_stat st;
    int r, rc;

    memset(out, 0, sizeof(*out));
    if ((r = store_read_begin(s, &t)) != 0)
        return r;
    for (unsigned i = 0; i < STORE_DB_COUNT_; i++) {
        if ((rc = mdb_stat(t.txn, s->dbi[i], &st)) != 0) {
            store_read_end(&t);
            return map_mdb(rc);
        }
        out->entries[i] = st.ms_entries;
    }
    store_read_end(&t);
    if ((rc = mdb_env_info(s->env, &info)) != 0 || (rc = mdb_env_stat(s->env, &st)) != 0)
        return map_mdb(rc);
    out->map_size = info.me_mapsize;
    out->map_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    pthread_mutex_lock(&s->mu);
    out->commits = s->commits;
    out->jobs = s->jobs;
    out->queued = s->queued;
    memcpy(out->batch_hist, s->batch_hist, sizeof(out->batch_hist));
    pthread_mutex_unlock(&s->mu);
    return 0;
}
