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
#include <stdint.h>
#include <uv.h>

#include "hsm/hsm.h"
#include "vault/audit.h"
#include "vault/config.h"
#include "vault/keys.h"
#include "vault/metrics.h"
#include "vault/server.h"
#include "vault/store.h"

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

    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t checkpoint_timer, metrics_timer;
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

#endif
