/*
 * dekpolicy.h - automatic DEK rotation: the service counts the records it
 * seals under the current DEK, adds the count to the DEK's usage in the
 * store every DEKPOLICY_TICK_MS, and rotates the DEK by itself
 * (keys_dek_rotate, then keys_refresh; the re-encryption job follows) once
 * the DEK has sealed [store] dek_max_encryptions records or is
 * dek_max_age_days old.
 *
 * Counted: records sealed by requests. Not counted: records the
 * re-encryption job moves to the DEK, at most one per record in the store
 * (counting them would make a limit below the record count rotate again
 * after every pass). So a DEK seals at most dek_max_encryptions plus the
 * number of records; with the default limit (2^30) and a store of up to 2^30
 * records that stays a factor of two below the 2^32 that GCM with random
 * IVs must stay under. A crash loses at most one tick's count.
 *
 * Threads: ops_dek_sealed anywhere; ops_dekpolicy_tick and
 * ops_dekpolicy_configure on the loop; the usage write in the writer; the
 * rotation on a worker.
 */
#ifndef TOKENVAULT_VAULT_OPS_DEKPOLICY_H
#define TOKENVAULT_VAULT_OPS_DEKPOLICY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "vault/store.h"

#define DEKPOLICY_TICK_MS 1000u

struct vault_service;

struct dekpolicy {
    struct store_write w; /* first: the writer hands it back */
    struct vault_service *svc;
    atomic_bool busy;                 /* a usage write is queued */
    atomic_uint_least64_t unsaved;    /* records sealed, not yet in the store */
    atomic_uint_least64_t max_encryptions;
    atomic_uint max_age_days;
    atomic_bool due;                  /* the current DEK reached a limit */
    uint64_t delta;                   /* writer thread: the count being saved */
    uv_work_t work;
    bool rotating;                    /* loop thread */
};

/* Counts one record sealed under the current DEK. */
void ops_dek_sealed(struct vault_service *svc);

/* Takes the limits from the config (start and SIGHUP). */
void ops_dekpolicy_configure(struct vault_service *svc, uint64_t max_encryptions,
                             unsigned max_age_days);

/* Saves the count, and rotates when due. */
void ops_dekpolicy_tick(struct vault_service *svc);

#endif
