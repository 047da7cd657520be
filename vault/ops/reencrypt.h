/*
 * reencrypt.h - moving card records from retired DEK versions to the
 * current one after a rotation, and their fingerprints to the current
 * fingerprint key after an FPK rotation, in the background (reencrypt.c).
 *
 * Threads: ops_reencrypt_tick and ops_reencrypt_pending on the loop; the
 * batches run in the writer.
 */
#ifndef TOKENVAULT_VAULT_OPS_REENCRYPT_H
#define TOKENVAULT_VAULT_OPS_REENCRYPT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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
    atomic_bool busy;           /* a batch is queued or running */
    atomic_uint clean_version;  /* a full pass found every record on this version */
    atomic_uint_least64_t moved; /* records moved since start */
    uint64_t pass_moved;        /* writer thread only */
    struct reencrypt_scan scan; /* writer thread only */
};

/* Queues the next batch when records may remain on a retired DEK and none
 * is queued. Called by a timer. */
void ops_reencrypt_tick(struct vault_service *svc);

/* Whether a pass has work left (STATUS, metrics). */
bool ops_reencrypt_pending(const struct vault_service *svc);

#endif
