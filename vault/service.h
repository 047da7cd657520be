/*
 * service.h - tokenvaultd put together: config, HSM, store, keys, audit,
 * metrics and the server, and the dispatcher that sends each request to its
 * operation.
 *
 * The dispatcher runs on the loop thread and decides, in this order
 * (docs/PROTOCOL.md section 10): whether the operation is served here at all,
 * whether the caller may ask for it (role and merchant; a refusal is DENIED
 * and audited), and whether there is room (queue_depth; else OVERLOADED).
 * Then the operation runs on a worker thread and, for what it changes or
 * reveals, in the writer thread.
 */
#ifndef TOKENVAULT_VAULT_SERVICE_H
#define TOKENVAULT_VAULT_SERVICE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "hsm/hsm.h"
#include "vault/audit.h"
#include "vault/config.h"
#include "vault/keys.h"
#include "vault/metrics.h"
#include "vault/ops/dekpolicy.h"
#include "vault/ops/reencrypt.h"
#include "vault/ops/sweep.h"
#include "vault/seal.h"
#include "vault/server.h"
#include "vault/store.h"
#include "vault/wallets.h"

/* The service's version text (STATUS). */
#define VAULT_VERSION_TEXT "tokenvaultd 0.1.0"

struct vault_service {
    uv_loop_t *loop;
    struct vault_config *cfg; /* current; replaced on SIGHUP, read on the loop only */
    hsm_pin_source *pin;
    hsm *hsm;
    struct vault_store *store;
    struct vault_keys keys;
    struct vault_audit audit;
    struct vault_metrics *metrics;
    struct vault_server *server;
    atomic_uint queued; /* requests waiting for a worker */
    uint64_t started_at; /* unix seconds */
    bool stopping;
    bool failed; /* stopped because it could not run (tokenvaultd exits 1) */

    /* Sealed start (pin_source = sealed): until unsealed only the officer
     * socket listens and only PING, STATUS and UNSEAL_SHARE are served. */
    bool sealed;
    struct vault_seal seal;
    uv_work_t unseal_work;
    struct vault_request *unseal_req; /* the share that completed the set */
    int unseal_result;
    char unseal_reason[256];

    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t checkpoint_timer, metrics_timer, reencrypt_timer, dekpolicy_timer, sweep_timer;
    struct sweep sweep; /* expired replay entries and DPAN records */

    /* The wallet engine (keys and anchors resolved against the token):
     * loaded with the keys, replaced on SIGHUP. Requests take a reference
     * (vault_service_wallets) under the lock. */
    pthread_mutex_t wallets_lock;
    struct vault_wallets *wallets;
    struct dekpolicy dekpolicy; /* automatic DEK rotation */

    /* DEK rotation: new versions loaded on SIGHUP (a worker), records moved
     * by the background job. */
    struct reencrypt reencrypt;
    uv_work_t refresh_work;
    bool refreshing;
};

/* vault_service_open loads |config_path| and opens everything: the HSM (PIN
 * from the file), the store, the writer, the keys, the metrics, the server.
 * Returns 0, or -1 with the reason logged. |svc| is then ready to run on
 * |loop|. */
int vault_service_open(struct vault_service *svc, uv_loop_t *loop, const char *config_path);

/* Closes what open opened, in reverse. Safe on a partly opened service. */
void vault_service_close(struct vault_service *svc);

/* The dispatcher given to the server (ctx is the service). */
void vault_service_dispatch(void *ctx, struct vault_request *req);

/* vault_service_stop drains and stops, as SIGTERM does (loop thread). */
void vault_service_stop(struct vault_service *svc);

/* Start-up steps shared by a normal start and an unseal: open the HSM with
 * svc->pin, then start the writer and load the keys. 0, or -1 with a reason. */
int vault_service_open_hsm(struct vault_service *svc, char *reason, size_t reason_len);
int vault_service_open_keys(struct vault_service *svc, char *reason, size_t reason_len);
/* The service_started log line. */
void vault_service_log_started(struct vault_service *svc);

/* The current wallet engine, with a reference the caller drops with
 * vault_wallets_free. Any thread. */
struct vault_wallets *vault_service_wallets(struct vault_service *svc);

/* ops/officer.c, on the loop thread: UNSEAL_SHARE (counts a share, and with
 * the M-th opens the HSM on a worker and answers when the service runs), and
 * STATUS while sealed (the seal's progress; no HSM). */
void vault_service_unseal_share(struct vault_service *svc, struct vault_request *req);
void vault_service_status_sealed(struct vault_service *svc, struct vault_request *req);

#endif
