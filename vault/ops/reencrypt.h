/*
 * reencrypt.h - moving card records from retired DEK versions to the
 * current one after a rotation, and their fingerprints to the current
 * fingerprint key after an FPK rotation, in the background (reencrypt.c).
 *
 * Progress: before a pass, and again whenever the current DEK version
 * moves, a worker counts the records on an older version in one read
 * transaction (no batch is queued meanwhile, so the count sees every batch
 * before it and none after); each batch's moves are then taken off that
 * count as the batch commits. A run is the passes from the first count that
 * finds work to the one that finds none; its size is what it has moved plus
 * what the last count found. Records requests delete or re-seal meanwhile
 * leave the count high until the next pass counts again; a count that finds
 * nothing (and no fingerprint rebuild) ends the run without another pass.
 * After a restart the count starts over from the records themselves.
 *
 * Threads: ops_reencrypt_tick and ops_reencrypt_pending on the loop; the
 * count on a worker; the batches run in the writer; ops_reencrypt_progress
 * anywhere.
 */
#ifndef TOKENVAULT_VAULT_OPS_REENCRYPT_H
#define TOKENVAULT_VAULT_OPS_REENCRYPT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "api/proto.h"
#include "vault/store.h"

/* Records moved per batch; records looked at per batch at most, so that a
 * batch's transaction stays short when few records are old. */
#define REENCRYPT_BATCH 32u
#define REENCRYPT_SCAN_MAX 2048u

struct reencrypt_scan {
    uint32_t current;
    char tokens[REENCRYPT_BATCH][API_ID_MAX + 1];
    size_t num, seen;
    size_t num_old; /* of |num|, those on an older DEK version */
    char last[API_ID_MAX + 1]; /* where the next batch starts; "" from the first */
    bool skip_first;
    bool at_end;
    bool rebuilding; /* this pass also moves fingerprints to the current FPK */
    bool rebuilt;    /* this batch ended the rebuild pass */
};

struct vault_service;

struct reencrypt {
    struct store_write w; /* first: the writer hands it back */
    struct vault_service *svc;
    atomic_bool busy;           /* a batch or a count is queued or running */
    atomic_uint clean_version;  /* a full pass found every record on this version */
    atomic_uint_least64_t moved; /* records moved since start */
    uint64_t pass_moved;        /* the holder of |busy|: the writer, or the count */
    struct reencrypt_scan scan; /* the holder of |busy| */
    /* Progress. The fields below the atomics are handed between the loop,
     * the counting worker and the writer by |busy|: one of them at a time. */
    atomic_uint_least64_t remaining; /* records still on an older DEK version */
    atomic_uint_least64_t total;     /* the run's size: moved in it plus remaining */
    atomic_bool counted_once;        /* remaining and total mean something */
    uv_work_t count_work;
    uint32_t counted_version; /* the version the pass was counted for; 0: count first */
    uint32_t count_current;   /* worker: the version it counted against */
    uint64_t count_found;     /* worker: records on an older version */
    int count_result;         /* worker: 0 or a negated status */
    uint64_t run_moved;       /* records moved to a newer DEK in this run */
    bool run_open;            /* a run is under way */
};

/* Queues the next batch (or first the pass's count) when records may remain
 * on a retired DEK and none is queued. Called by a timer. */
void ops_reencrypt_tick(struct vault_service *svc);

/* Whether a pass has work left (STATUS, metrics). */
bool ops_reencrypt_pending(const struct vault_service *svc);

/* ops_reencrypt_progress: whether the job has counted since the service
 * started; if so, *out_remaining records are still sealed with an older DEK
 * version (0 once a run is complete) and *out_total is the size of the
 * current run, or of the last one (what it moved plus *out_remaining, never
 * below it). An estimate from the last count, not a scan: cheap to call. */
bool ops_reencrypt_progress(const struct vault_service *svc, uint64_t *out_remaining,
                            uint64_t *out_total);

#endif
