/*
 * sweep.h - what expires leaves the store: replay entries once their packet
 * could no longer pass its wallet's time checks, and device-PAN records once
 * their lifetime ([wallet] dpan_lifetime_seconds) is over.
 *
 * Whatever expires is scheduled in the expiry index (STORE_DB_EXPIRY) in the
 * same transaction that creates it: key = u64 big-endian expiry (ms) | u8
 * kind | the target's key. Every SWEEP_TICK_MS the loop submits one write
 * job that deletes at most SWEEP_BATCH due entries, oldest first, with their
 * targets; a target is deleted only if it is still the one scheduled (a
 * replay entry claimed again later, or a record that is no longer an
 * expiring DPAN, stays). A backlog is worked off batch by batch, so a
 * sweep never holds the writer for long.
 *
 * Threads: ops_sweep_schedule in a write job; ops_sweep_tick on the loop;
 * the sweep itself on the writer.
 */
#ifndef TOKENVAULT_VAULT_OPS_SWEEP_H
#define TOKENVAULT_VAULT_OPS_SWEEP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vault/store.h"

#define SWEEP_TICK_MS 1000u
#define SWEEP_BATCH 256u

enum sweep_kind {
    SWEEP_REPLAY = 1, /* target: a STORE_DB_REPLAY key */
    SWEEP_DPAN = 2,   /* target: a STORE_DB_CARDS token of kind dpan */
    SWEEP_QR = 3,     /* target: a STORE_DB_QR request key (ops/qr.c), [qr] retention_seconds
                       * after the request expires */
    SWEEP_SESSION = 4, /* target: a STORE_DB_SESSIONS nonce (ops/sessions.c), once it expires */
};

struct vault_service;

struct sweep {
    struct store_write w; /* first: the writer hands it back */
    struct vault_service *svc;
    atomic_bool busy;              /* a sweep is queued */
    atomic_uint_least64_t swept;   /* targets deleted since start (metrics, tests) */
    uint64_t now_ms;               /* writer thread: the sweep's clock */
    uint64_t batch;                /* writer thread: deleted in this batch */
};

/* ops_sweep_schedule adds |key| of |kind| to the expiry index at |at_ms|.
 * Inside a write job. 0 or a negated status. */
int ops_sweep_schedule(struct store_txn *t, uint64_t at_ms, enum sweep_kind kind, const void *key,
                       size_t key_len);

/* ops_sweep_tick submits a sweep unless one is queued (loop thread). */
void ops_sweep_tick(struct vault_service *svc);

#endif
