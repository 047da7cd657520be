/*
 * store.h - the LMDB environment of tokenvaultd: its databases, read
 * transactions for any thread, and the one writer thread that commits many
 * requests per durable transaction (group commit).
 *
 * Errors: every function returns 0 or a negated API status, so an operation
 * can hand the result straight to its caller: -API_STATUS_NOT_FOUND (no such
 * key), -API_STATUS_CONFLICT (a put that must not overwrite found the key),
 * -API_STATUS_STORE_UNAVAILABLE (map full, disk error, too many readers),
 * -API_STATUS_OVERLOADED (the writer queue is full), -API_STATUS_SHUTTING_DOWN
 * (the writer is stopping), -API_STATUS_INTERNAL (anything LMDB should never
 * say; the MDB_ code is logged). The MDB_ code of the last failure on this
 * thread is in store_last_mdb_error() for the log.
 *
 * Threads: store_read_* from any thread (the environment is opened with
 * MDB_NOTLS, so a read transaction is not tied to a thread slot, but it must
 * be ended by the thread that began it). Writes happen only inside the
 * writer thread, through store_write jobs.
 */
#ifndef TOKENVAULT_VAULT_STORE_H
#define TOKENVAULT_VAULT_STORE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/proto.h"
#include "hsm/hsm.h"

/* The schema this build reads and writes, kept in meta under "schema". A store
 * with another version is refused at open: no silent migrations. */
#define STORE_SCHEMA_VERSION 1u

/* Jobs committed in one write transaction at most. Larger batches amortise the
 * fsync further but hold the answered requests longer. */
#define STORE_BATCH_MAX 256u
/* Readers LMDB will allow (worker threads, the writer, backups, tools). */
#define STORE_READERS_MAX 512u
/* Largest key or value the vault writes; LMDB's own key limit is 511. */
#define STORE_KEY_MAX 511u

/* The databases of DESIGN.md section 5 that exist so far. Later issues add
 * mappings, sessions, mandates, qr and replay. */
enum store_db {
    STORE_DB_META,         /* name -> value: schema, DEKs, appliance id, audit checkpoint */
    STORE_DB_CARDS,        /* token -> card record (record.h) */
    STORE_DB_FINGERPRINTS, /* merchant 0x00 HMAC(FPK, merchant 0x00 PAN) -> token */
    STORE_DB_CUSTOMERS,    /* merchant 0x00 CustomerNumber -> token (dupsort) */
    STORE_DB_LINKS,        /* token -> CustomerNumber (dupsort): the reverse of customers */
    STORE_DB_AUDIT,        /* u64 big-endian sequence -> audit entry (audit.h) */
    STORE_DB_REPLAY,       /* u8 wallet | transaction id -> u64 big-endian valid-until (ms) */
    STORE_DB_EXPIRY,       /* u64 big-endian expiry (ms) | u8 kind | key -> "" (the sweeper's
                            * index: expiring replay entries and device-PAN records) */
    STORE_DB_SESSIONS,     /* nonce -> sale session (ops/sessions.c) */
    STORE_DB_MAPPINGS,     /* merchant 0x00 clientCardId -> mapping, and the reverse index
                            * 0x00 token 0x00 clientCardId -> "" (ops/sessions.c) */
    STORE_DB_MANDATES,     /* token 0x00 mandate id -> mandate (ops/mandates.c) */
    STORE_DB_QR,           /* request id -> QR payment request (ops/qr.c) */
    STORE_DB_COUNT_,
};

/* Name of a database as LMDB knows it ("cards"). */
const char *store_db_name(enum store_db db);

struct vault_store;

/* A transaction: LMDB's, the store it belongs to, and (in the writer only) the
 * writer's own PKCS#11 session, for the rare job that needs the HSM while it
 * holds the transaction (a token collision, a holder change, an audit
 * checkpoint signature). hsm is NULL in read transactions. */
struct store_txn {
    MDB_txn *txn;
    struct vault_store *store;
    hsm_session *hsm;
};

/* store_open opens (creating when absent) the environment in directory |path|
 * with a map of |map_size| bytes, opens every database and checks the schema
 * version: a new store is stamped with STORE_SCHEMA_VERSION, an existing one
 * must carry it. The directory is created 0700 when missing and must not be
 * accessible to group or others. Returns 0 with *out, or a negated status with
 * a one-line reason in |err|. */
int store_open(struct vault_store **out, const char *path, uint64_t map_size, char *err,
               size_t err_len);

/* store_open_readonly opens an existing store (a live one or a copy) to
 * read it only: nothing is created or written, no writer may start, and the
 * map keeps the size the store recorded. For tools (audit verification).
 * Returns 0 or a negated status with a reason in |err|; a directory that
 * holds no tokenvault store, or one of another schema version, is refused. */
int store_open_readonly(struct vault_store **out, const char *path, char *err, size_t err_len);

/* store_close stops the writer (store_writer_stop) if running and closes the
 * environment. Accepts NULL. No read transaction may be open. */
void store_close(struct vault_store *s);

/* The MDB_ code of the last failure on this thread (0 if none), for the log. */
int store_last_mdb_error(void);

/* ---- reads ---------------------------------------------------------------- */

int store_read_begin(struct vault_store *s, struct store_txn *out);
/* Ends a read transaction; accepts one whose begin failed (txn NULL). */
void store_read_end(struct store_txn *t);

/* store_get looks |key| up in |db|. *out points into the map and is valid until
 * the transaction ends or (in a write transaction) the next write to |db|. */
int store_get(struct store_txn *t, enum store_db db, const void *key, size_t key_len,
              MDB_val *out);

/* store_get_both: whether the dupsort |db| holds exactly (key, val). 0 or
 * -API_STATUS_NOT_FOUND. */
int store_get_both(struct store_txn *t, enum store_db db, const void *key, size_t key_len,
                   const void *val, size_t val_len);

/* store_dup_count sets *out to the number of values under |key| in a dupsort
 * database (0 when absent). */
int store_dup_count(struct store_txn *t, enum store_db db, const void *key, size_t key_len,
                    size_t *out);

/* store_dup_each calls |fn| for each value under |key| of a dupsort database,
 * in order, until fn returns non-zero (which store_dup_each then returns).
 * 0 when the key is absent. */
typedef int (*store_visit_fn)(void *ctx, const MDB_val *val);
int store_dup_each(struct store_txn *t, enum store_db db, const void *key, size_t key_len,
                   store_visit_fn fn, void *ctx);

/* store_last reads the last (highest) key and its value of |db|. 0, or
 * -API_STATUS_NOT_FOUND when the database is empty. */
int store_last(struct store_txn *t, enum store_db db, MDB_val *out_key, MDB_val *out_val);

/* Visits every (key, value) of |db| in key order from |from| (NULL: the
 * first) until fn returns non-zero. For tools (audit export, verification). */
typedef int (*store_visit2_fn)(void *ctx, const MDB_val *key, const MDB_val *val);
int store_each(struct store_txn *t, enum store_db db, const void *from, size_t from_len,
               store_visit2_fn fn, void *ctx);

/* ---- writes (inside a write job only) -------------------------------------- */

/* store_put writes (key, val). With STORE_PUT_NEW an existing key is
 * -API_STATUS_CONFLICT and nothing is written; on a dupsort database an existing
 * (key, val) pair is -API_STATUS_CONFLICT as well. */
#define STORE_PUT_NEW 0x1u
int store_put(struct store_txn *t, enum store_db db, const void *key, size_t key_len,
              const void *val, size_t val_len, unsigned flags);

/* store_del deletes |key| (all its values), or only (key, val) when |val| is not
 * NULL. -API_STATUS_NOT_FOUND when there is nothing to delete. */
int store_del(struct store_txn *t, enum store_db db, const void *key, size_t key_len,
              const void *val, size_t val_len);

/* ---- the writer ------------------------------------------------------------ */

/* A write job. The submitter fills apply and done and keeps the job alive
 * until done has run.
 *   apply runs on the writer thread inside a nested transaction of the batch's
 *     transaction. It returns 0 to keep its changes or a negated status to
 *     discard them (the other jobs of the batch are unaffected). It must not
 *     block on anything but the HSM.
 *   done runs on the writer thread once the outcome is final: |result| is
 *     apply's error, or 0 when the batch transaction has been committed and
 *     synced to disk, or -API_STATUS_STORE_UNAVAILABLE when the commit failed
 *     (then nothing of the job stayed). done may free the job. */
struct store_write {
    int (*apply)(struct store_write *w, struct store_txn *t);
    void (*done)(struct store_write *w, int result);
    /* private to the store */
    struct store_write *next_;
    int result_;
};

/* store_writer_start starts the writer thread with its own session from |h|
 * (which must outlive the writer). |queue_max| bounds the jobs waiting; past
 * it store_write_submit returns -API_STATUS_OVERLOADED. */
int store_writer_start(struct vault_store *s, hsm *h, unsigned queue_max);

/* store_write_submit queues |w| for the writer. Any thread. 0, or
 * -API_STATUS_OVERLOADED / -API_STATUS_SHUTTING_DOWN (then done never runs). */
int store_write_submit(struct vault_store *s, struct store_write *w);

/* store_write_wait submits |w| and waits until done has run; returns the
 * result done received (or the submit error). For start-up and tools; never on
 * the event loop. */
int store_write_wait(struct vault_store *s, struct store_write *w);

/* store_writer_stop refuses new jobs, lets the queued ones commit, and joins
 * the thread. Accepts a store whose writer never started. */
void store_writer_stop(struct vault_store *s);

/* ---- statistics and backup ---------------------------------------------- */

struct store_stats {
    uint64_t entries[STORE_DB_COUNT_];
    uint64_t map_size;  /* bytes */
    uint64_t map_used;  /* bytes: (last page + 1) * page size */
    uint64_t commits;   /* write transactions committed since open */
    uint64_t jobs;      /* jobs committed since open */
    uint64_t queued;    /* jobs waiting now */
    /* batch sizes: how many commits carried 1, 2-3, 4-7, ... jobs */
#define STORE_BATCH_BUCKETS 10
    uint64_t batch_hist[STORE_BATCH_BUCKETS];
};
int store_stats_get(struct vault_store *s, struct store_stats *out);

/* store_backup writes a consistent, compacted copy of the environment at
 * |env_path| (a live store is fine: LMDB copies under a read transaction) into
 * the directory |dest_dir|, which must exist and be empty (a backup is never
 * written over another). Opens the environment read-only; any process. */
int store_backup(const char *env_path, const char *dest_dir, char *err, size_t err_len);

#endif
